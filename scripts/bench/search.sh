#!/usr/bin/env bash
# A search against the reference recipe on FMNIST-LT-100 (issue 21): one experiment with
# the recipe's settings as its single member, one that first runs a TPE search with
# successive halving over the learning rate, weight decay, label smoothing and the
# imbalance tools, then trains its best configuration as the member; both on the same
# folds, scored by balanced accuracy. Prints each member's out-of-fold and test balanced
# accuracy, and the search's cost in trial epochs against the same trials without halving.
#
#   scripts/bench/search.sh
#   TRIALS=24 EPOCHS=15 FOLDS=5 WIDTH=1.0 scripts/bench/search.sh
#
# Env: TRIALS (16), PARALLEL (2: trials per batch), TRIAL_EPOCHS (3), EPOCHS (10: the
# members'), FOLDS (3), WIDTH (0.5), WORKERS (2), THREADS (1 per worker), SEED (0),
# QUORUM (.build/release/quorum), DATA (/usr/share/datasets/fashion-mnist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

TRIALS=${TRIALS:-16}
PARALLEL=${PARALLEL:-2}
TRIAL_EPOCHS=${TRIAL_EPOCHS:-3}
EPOCHS=${EPOCHS:-10}
FOLDS=${FOLDS:-3}
WIDTH=${WIDTH:-0.5}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-1}
SEED=${SEED:-0}
QUORUM=${QUORUM:-.build/release/quorum}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
work=bench-results/search
rm -rf "$work"
mkdir -p "$work"
[ -x "$QUORUM" ] || swift build -c release --product quorum

common="metric: balanced_accuracy
data: {train: $DATA, long_tail_ratio: 100}
folds: {k: $FOLDS, seed: 0}
training: {width: $WIDTH, epochs: $EPOCHS}"
cat >"$work/reference.yaml" <<EOF
name: reference
run_directory: $work/runs/reference
$common
EOF
cat >"$work/searched.yaml" <<EOF
name: searched
run_directory: $work/runs/searched
$common
search:
  sampler: tpe
  trials: $TRIALS
  parallel: $PARALLEL
  epochs: $TRIAL_EPOCHS
  seed: $SEED
  halving: {min_epochs: 1, reduction: 3}
  space:
    learning_rate: {log_uniform: [0.02, 0.5]}
    weight_decay: {log_uniform: [0.00001, 0.002]}
    label_smoothing: {uniform: [0, 0.2]}
    sampling: {choice: [shuffle, class-balanced]}
    logit_adjustment: {choice: [0, 1]}
EOF

# One member's "| name | OOF acc | OOF bal | F1 | lowest recall | test bal |" row.
member_row() { grep -E "^\| $2 \| [0-9]" "$1" | head -1; }
for name in reference searched; do
  start=$(date +%s)
  "$QUORUM" run "$work/$name.yaml" --workers "$WORKERS" --threads "$THREADS" >"$work/$name.log" 2>&1
  echo "search: $name took $(($(date +%s) - start)) s" >&2
done

reference=$(member_row "$work/reference.log" default)
searched=$(member_row "$work/searched.log" best-1)
trial_epochs=$(grep -c '"task":"trial-' "$work/runs/searched/progress.jsonl")
chosen=$(grep -E "^search: best-1 is" "$work/searched.log")
echo
echo "| member | OOF balanced accuracy | test balanced accuracy |"
echo "| --- | ---: | ---: |"
for row in "$reference" "$searched"; do
  IFS='|' read -r _ name _ balanced _ _ test _ <<<"$row"
  echo "|$name|$balanced|$test|"
done
echo
echo "$chosen"
echo "Trial epochs: $trial_epochs with successive halving, against $((TRIALS * TRIAL_EPOCHS)) for the same $TRIALS trials run in full;" \
  "the members: $((FOLDS * EPOCHS)) epochs each."
echo
"$QUORUM" search show "$work/runs/searched"
