#!/usr/bin/env bash
# A search against the reference recipe on FMNIST-LT-100 (issue 21): one experiment with
# the recipe's settings as its single member, one that first runs a TPE search with
# successive halving over the learning rate, weight decay, label smoothing and the
# imbalance tools, then trains its best configuration as the member; both on the same
# folds, scored by balanced accuracy. Prints each member's out-of-fold and test balanced
# accuracy, and the search's cost in trial epochs against the same trials without halving.
#
#   scripts/bench/search.sh
#   for seed in 0 1 2; do SEED=$seed scripts/bench/search.sh; SEED=$seed SCHEDULE=batches ARMS=searched scripts/bench/search.sh; done
#   TRIALS=24 EPOCHS=15 FOLDS=5 WIDTH=1.0 scripts/bench/search.sh
#
# Env: TRIALS (16), SCHEDULE (asynchronous, or batches), PARALLEL (2: trials at once; a
# batch's size), TRIAL_EPOCHS (3), EPOCHS (10: the members'), FOLDS (3), WIDTH (0.5),
# WORKERS (2), THREADS (1 per worker), SEED (0: the search's and the members' training
# seed), ARMS ("reference searched"), QUORUM (.build/release/quorum), DATA
# (/usr/share/datasets/fashion-mnist). Each run's files: bench-results/search-SCHEDULE-SEED.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

TRIALS=${TRIALS:-16}
SCHEDULE=${SCHEDULE:-asynchronous}
PARALLEL=${PARALLEL:-2}
ARMS=${ARMS:-reference searched}
TRIAL_EPOCHS=${TRIAL_EPOCHS:-3}
EPOCHS=${EPOCHS:-10}
FOLDS=${FOLDS:-3}
WIDTH=${WIDTH:-0.5}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-1}
SEED=${SEED:-0}
QUORUM=${QUORUM:-.build/release/quorum}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
work=bench-results/search-$SCHEDULE-$SEED
rm -rf "$work"
mkdir -p "$work"
[ -x "$QUORUM" ] || swift build -c release --product quorum

common="metric: balanced_accuracy
data: {train: $DATA, long_tail_ratio: 100}
folds: {k: $FOLDS, seed: 0}
training: {width: $WIDTH, epochs: $EPOCHS, seed: $SEED}"
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
  schedule: $SCHEDULE
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
declare -A seconds
for name in $ARMS; do
  start=$(date +%s.%N)
  # Each line with the seconds since the start (for the search's own time below).
  "$QUORUM" run "$work/$name.yaml" --workers "$WORKERS" --threads "$THREADS" 2>&1 \
    | while IFS= read -r line; do printf '%s\t%s\n' "$(echo "$EPOCHREALTIME - $start" | bc)" "$line"; done >"$work/$name.timed.log"
  cut -f2- "$work/$name.timed.log" >"$work/$name.log"
  seconds[$name]=$(echo "$(date +%s.%N) - $start" | bc)
  echo "search: $name took ${seconds[$name]} s" >&2
done

echo
echo "seed $SEED, schedule $SCHEDULE:"
echo "| member | OOF balanced accuracy | test balanced accuracy | wall clock (s) |"
echo "| --- | ---: | ---: | ---: |"
for name in $ARMS; do
  member=default
  [ "$name" = searched ] && member=best-1
  IFS='|' read -r _ shown _ balanced _ _ test _ <<<"$(member_row "$work/$name.log" "$member")"
  printf '|%s|%s|%s| %.0f |\n' "$shown" "$balanced" "$test" "${seconds[$name]}"
done
if [[ " $ARMS " == *" searched "* ]]; then
  trial_epochs=$(grep -c '"task":"trial-' "$work/runs/searched/progress.jsonl")
  echo
  grep -E "^search: best-1 is" "$work/searched.log"
  echo "Trial epochs: $trial_epochs with successive halving, against $((TRIALS * TRIAL_EPOCHS)) for the same $TRIALS trials run in full;" \
    "the members: $((FOLDS * EPOCHS)) epochs each."
  # The search's own time: from the start to the choice of the members.
  search_seconds=$(grep -m1 "every trial is done" "$work/searched.timed.log" | cut -f1)
  printf 'The trials took %.0f s of the run (to "every trial is done").\n' "$search_seconds"
  echo
  "$QUORUM" search show "$work/runs/searched"
fi
