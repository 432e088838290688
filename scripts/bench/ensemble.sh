#!/usr/bin/env bash
# The ensembles on FMNIST-LT-100 with the reference recipe (issue: ensembling): 5 folds ×
# 3 seeds of MobileNetV2 (imagenet preset, width 1.0, 15 epochs, the defaults of
# `quorum train`), trained by `quorum run` on this machine's CPU, then every method of
# `quorum report`. Prints a markdown table of each method's balanced test accuracy (= test
# accuracy: the test set is balanced) and lowest class recall, and the members' spread.
#
#   scripts/bench/ensemble.sh                        # about an hour on 2 cores
#   EPOCHS=4 WIDTH=0.5 scripts/bench/ensemble.sh     # a quick look
#
# Then one Noisy Student round (5 fold students on their fold plus the confidently
# pseudo-labelled test images, with dropout and stochastic depth as noise), a width-0.5
# student distilled from the submitted ensemble (on the unlabelled test images too) and the
# same student trained on the labels alone.
#
# Env: EPOCHS (15), WIDTH (1.0), SEEDS ("0, 1, 2"), STUDENT_WIDTH (0.5), THREADS (2), QUORUM
# (.build/release/quorum), OUT (bench-results/ensemble). Running it again resumes the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

QUORUM=${QUORUM:-.build/release/quorum}
EPOCHS=${EPOCHS:-15}
WIDTH=${WIDTH:-1.0}
SEEDS=${SEEDS:-0, 1, 2}
STUDENT_WIDTH=${STUDENT_WIDTH:-0.5}
THREADS=${THREADS:-2}
OUT=${OUT:-bench-results/ensemble}
[ -x "$QUORUM" ] || swift build -c release
mkdir -p "$OUT"

cat >"$OUT/experiment.yaml" <<YAML
name: ensemble-reference
run_directory: $OUT/run
device: cpu
data:
  train: /usr/share/datasets/fashion-mnist
  layout: idx
  long_tail_ratio: 100
folds:
  k: 5
  seed: 0
training:
  preset: imagenet
  width: $WIDTH
  epochs: $EPOCHS
grid:
  seed: [$SEEDS]
ensemble:
  objective: balanced_accuracy
noisy_student:
  rounds: 1
  confidence: 0.8
  training: {dropout: 0.5, stochastic_depth: 0.2}
distill:
  temperature: 2
  hard_label_weight: 0.5
  unlabelled: true
  training: {width: $STUDENT_WIDTH}
YAML

start=$(date +%s)
"$QUORUM" run "$OUT/experiment.yaml" --threads "$THREADS" | tee "$OUT/run.log"
echo "wall clock: $(( $(date +%s) - start )) s" | tee -a "$OUT/run.log"

python3 - "$OUT/run/scores.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| method | test balanced accuracy | test lowest recall | test macro-F1 | test NLL | OOF balanced accuracy |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for row in rows:
    if row["method"].startswith("member "):
        continue
    print(f"| {row['method']} | {float(row['test_balanced_accuracy']):.4f} | {float(row['test_lowest_recall']):.3f} "
          f"| {float(row['test_macro_f1']):.4f} | {float(row['test_nll']):.4f} | {float(row['oof_balanced_accuracy']):.4f} |")
def grid_member(row):
    return row["method"].startswith("member ") and not row["method"].startswith("member noisy-")
members = [float(r["test_balanced_accuracy"]) for r in rows if grid_member(r)]
lowest = [float(r["test_lowest_recall"]) for r in rows if grid_member(r)]
for r in rows:
    if r["method"].startswith("member noisy-"):
        print(f"Noisy Student round {r['method'][len('member noisy-'):]}: test balanced accuracy "
              f"{float(r['test_balanced_accuracy']):.4f}, lowest recall {float(r['test_lowest_recall']):.3f}, "
              f"OOF balanced accuracy {float(r['oof_balanced_accuracy']):.4f}")
import os
print()
run = os.path.dirname(sys.argv[1])
for student in ("student", "student-alone"):
    path = f"{run}/logits/{student}/all.test.npy"
    print(f"{student}: {'trained' if os.path.exists(path) else 'missing'} ({path})")
print()
print(f"Members ({len(members)} seeds, each the 5 fold models averaged): test balanced accuracy "
      f"{statistics.mean(members):.4f} ± {statistics.stdev(members) if len(members) > 1 else 0:.4f} "
      f"(min {min(members):.4f}, max {max(members):.4f}); lowest recall {min(lowest):.3f}–{max(lowest):.3f}")
PY
