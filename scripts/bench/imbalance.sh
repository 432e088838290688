#!/usr/bin/env bash
# What each imbalance tool does to the tail classes of FMNIST-LT-100 (issue: data and
# the imbalance toolkit): a short CPU run per tool, same seed and recipe otherwise, scored
# on the balanced test set. Prints a markdown table: balanced accuracy, lowest recall,
# recall of the three rarest classes.
#
#   scripts/bench/imbalance.sh                 # 8 epochs, seed 0
#   EPOCHS=15 SEED=1 scripts/bench/imbalance.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

QUORUM=${QUORUM:-.build/release/quorum}
EPOCHS=${EPOCHS:-8}
SEED=${SEED:-0}
THREADS=${THREADS:-2}
OUT=${OUT:-bench-results/imbalance}
[ -x "$QUORUM" ] || swift build -c release

drw_epoch=$(( EPOCHS * 3 / 4 + 1 ))
declare -A tools=(
  ["plain cross-entropy"]=""
  ["balanced softmax"]="--logit-adjustment 1"
  ["class-balanced sampling"]="--sampling class-balanced"
  ["DRW (effective number, from epoch $drw_epoch)"]="--class-weights effective-number --reweight-from-epoch $drw_epoch"
)
order=("plain cross-entropy" "balanced softmax" "class-balanced sampling" "DRW (effective number, from epoch $drw_epoch)")

mkdir -p "$OUT"
for name in "${order[@]}"; do
  folder="$OUT/$(echo "$name" | tr -c 'a-z0-9\n' '-' | cut -c1-40)"
  echo "imbalance: $name" >&2
  # shellcheck disable=SC2086  # the options are a word list on purpose
  "$QUORUM" train --long-tail-ratio 100 --validation-fraction 0 --epochs "$EPOCHS" --seed "$SEED" \
    --threads "$THREADS" --progress none --output "$folder" ${tools[$name]}
  printf '%s\t%s\n' "$name" "$folder" >>"$OUT/runs.tsv.tmp"
done
mv "$OUT/runs.tsv.tmp" "$OUT/runs.tsv"

python3 - "$OUT/runs.tsv" "$EPOCHS" "$SEED" <<'PY'
import json, sys
runs = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
print("| tool | balanced accuracy | macro-F1 | lowest recall | recall of classes 7, 8, 9 (166, 100, 60 examples) | seconds |")
print("| --- | ---: | ---: | ---: | --- | ---: |")
for name, folder in runs:
    m = json.load(open(folder + "/metrics.json"))
    t = m["test"]
    tail = ", ".join(f"{r:.3f}" for r in t["per_class_recall"][7:])
    seconds = sum(h["seconds"] for h in m["history"])
    print(f"| {name} | {t['balanced_accuracy']:.4f} | {t['macro_f1']:.4f} | {t['lowest_recall']:.3f} | {tail} | {seconds:.0f} |")
print(f"\nFMNIST-LT-100, imagenet preset, width 1.0, reference recipe, {sys.argv[2]} epochs, seed {sys.argv[3]}.")
PY
echo "Command: EPOCHS=$EPOCHS SEED=$SEED scripts/bench/imbalance.sh"
