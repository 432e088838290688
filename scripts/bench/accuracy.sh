#!/usr/bin/env bash
# Accuracy of the reference recipe (docs/benchmark-protocol.md), Quorum side by side with
# PyTorch: for each seed, `quorum train` with its defaults (no validation split), then
# scripts/bench/pytorch_accuracy.py with the same seed; one JSON line per run, in the same
# shape, goes to RESULTS; then a markdown table of the runs and their means.
#
#   scripts/bench/accuracy.sh                      # FMNIST-LT-100, seeds 0 1 2, 15 epochs
#   DATA=full SEEDS="0" EPOCHS=15 scripts/bench/accuracy.sh
#   PEER=0 QUORUM=path/to/quorum scripts/bench/accuracy.sh
#   DROPOUT=0.5 SEEDS="0 1 2 3 4" scripts/bench/accuracy.sh
#   CYCLE_MOMENTUM=1 scripts/bench/accuracy.sh
#   BATCHING=ragged FOLDS=5 FOLD=1 scripts/bench/accuracy.sh   # 11,909 examples: a last batch of 5
#
# Env: SEEDS ("0 1 2"), EPOCHS (15), DATA (lt100 or full), DROPOUT (0.2, both engines: the
# dropout before the classifier), CYCLE_MOMENTUM (0; 1: one-cycle's momentum cycling in both
# engines, run folders get a -cycled suffix), BATCHING (empty: each engine's own cut, Quorum
# even and PyTorch ragged as its DataLoader; even or ragged: that cut in both engines),
# FOLDS and FOLD (train both engines on all folds but FOLD of a stratified FOLDS-fold split;
# Quorum then keeps its last epoch, as PyTorch does, instead of the best on the held-out
# fold), QUORUM (.build/release/quorum),
# RESULTS (bench-results/accuracy-$DATA.jsonl), PEER (1; 0 skips PyTorch), THREADS (2),
# PYTHON (python3). Run folders go to bench-results/runs/quorum-$DATA-dropout$DROPOUT-seed$seed.
# Needs: python3 with scripts/bench/requirements.txt installed (for the peer); Quorum
# built with `swift build -c release` (done here if the default binary is missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

readonly default_quorum=.build/release/quorum
SEEDS=${SEEDS:-0 1 2}
EPOCHS=${EPOCHS:-15}
DROPOUT=${DROPOUT:-0.2}
CYCLE_MOMENTUM=${CYCLE_MOMENTUM:-0}
cycle_flags=()
suffix=""
if [ "$CYCLE_MOMENTUM" != 0 ]; then cycle_flags=(--cycle-momentum); suffix=-cycled; fi
BATCHING=${BATCHING:-}
batching_flags=()
case "$BATCHING" in
  "") ;;
  even | ragged) batching_flags=(--batching "$BATCHING"); suffix+=-$BATCHING ;;
  *)
    echo "accuracy: BATCHING must be even, ragged or empty, not '$BATCHING'" >&2
    exit 1
    ;;
esac
FOLDS=${FOLDS:-}
FOLD=${FOLD:-0}
quorum_split=(--validation-fraction 0)
peer_split=()
if [ -n "$FOLDS" ]; then
  quorum_split=(--folds "$FOLDS" --fold "$FOLD" --no-restore-best)
  peer_split=(--folds "$FOLDS" --fold "$FOLD")
  suffix+=-fold$FOLD-of-$FOLDS
fi
DATA=${DATA:-lt100}
QUORUM=${QUORUM:-$default_quorum}
RESULTS=${RESULTS:-bench-results/accuracy-$DATA.jsonl}
PEER=${PEER:-1}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-python3}

case "$DATA" in
  lt100)
    quorum_data=(--long-tail-ratio 100)
    peer_data=(--long-tail-ratio 100)
    ;;
  full)
    quorum_data=()
    peer_data=(--long-tail-ratio 1)
    ;;
  *)
    echo "accuracy: DATA must be lt100 or full, not '$DATA'" >&2
    exit 1
    ;;
esac
read -r -a seeds <<<"$SEEDS"
if [ "${#seeds[@]}" -eq 0 ]; then
  echo "accuracy: SEEDS is empty" >&2
  exit 1
fi

if [ ! -x "$QUORUM" ]; then
  if [ "$QUORUM" != "$default_quorum" ]; then
    echo "accuracy: QUORUM=$QUORUM is not an executable" >&2
    exit 1
  fi
  echo "accuracy: $QUORUM missing, building it (swift build -c release)" >&2
  swift build -c release
fi
if [ "$PEER" != 0 ]; then
  "$PYTHON" -c "import torch, torchvision, numpy" || {
    echo "accuracy: the peer needs: pip install -r scripts/bench/requirements.txt (or PEER=0)" >&2
    exit 1
  }
fi

# Appends one result line; refuses anything that is not a single JSON object, so a
# stray log line on stdout fails here rather than in the summary.
record() {
  local line
  line=$("$@")
  if [[ "$line" != *$'\n'* && "$line" == "{"*"}" ]]; then
    printf '%s\n' "$line" >>"$RESULTS"
  else
    echo "accuracy: expected one JSON line from: $*" >&2
    printf '%s\n' "$line" >&2
    exit 1
  fi
}

# One JSON line in pytorch_accuracy.py's shape from a Quorum run's metrics.json.
quorum_line() {
  "$PYTHON" - "$@" <<'PY'
import json
import sys

path, data, seed, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(path) as file:
    metrics = json.load(file)
model = metrics["configuration"]["model"]
presets = {(2, (1, 2, 2, 2, 1, 2, 1)): "imagenet", (1, (1, 1, 2, 2, 1, 2, 1)): "cifar"}
preset = presets.get((model["stemStride"], tuple(model["stageStrides"])), "custom")
history = [{
    "epoch": record["epoch"],
    "train_loss": record["training_loss"],
    "seconds": record["seconds"],
    "test_accuracy": record["test"]["accuracy"],
    "test_balanced_accuracy": record["test"]["balanced_accuracy"],
    "test_macro_f1": record["test"]["macro_f1"],
    "test_lowest_recall": record["test"]["lowest_recall"],
} for record in metrics["history"]]
seconds_total = sum(record["seconds"] for record in metrics["history"])
images = sum(record["images_per_second"] * record["seconds"] for record in metrics["history"])
test = metrics["test"]
print(json.dumps({
    "engine": "quorum",
    "data": data,
    "preset": preset,
    "width": float(model["width"]),
    "epochs": len(history),
    "seed": seed,
    "threads": threads,
    "train_examples": metrics["training_examples"],
    "seconds_total": seconds_total,
    "train_images_per_second": images / seconds_total if seconds_total > 0 else None,
    "history": history,
    "test_accuracy": test["accuracy"],
    "test_balanced_accuracy": test["balanced_accuracy"],
    "test_macro_f1": test["macro_f1"],
    "test_lowest_recall": test["lowest_recall"],
    "test_per_class_recall": test["per_class_recall"],
    "backend": metrics.get("backend"),
}))
PY
}

if [ "$DATA" = lt100 ]; then data_name=fmnist-lt-100; else data_name=fmnist; fi

mkdir -p "$(dirname "$RESULTS")" bench-results/runs
: >"$RESULTS"

for seed in "${seeds[@]}"; do
  run="bench-results/runs/quorum-$DATA-dropout$DROPOUT$suffix-seed$seed"
  echo "accuracy: quorum, $DATA, dropout $DROPOUT, seed $seed, $EPOCHS epochs -> $run" >&2
  rm -f "$run/metrics.json"  # never summarise a stale run
  "$QUORUM" train ${quorum_data[@]+"${quorum_data[@]}"} "${quorum_split[@]}" --epochs "$EPOCHS" --seed "$seed" \
    --dropout "$DROPOUT" ${cycle_flags[@]+"${cycle_flags[@]}"} ${batching_flags[@]+"${batching_flags[@]}"} \
    --threads "$THREADS" --output "$run" --progress lines
  record quorum_line "$run/metrics.json" "$data_name" "$seed" "$THREADS"

  if [ "$PEER" != 0 ]; then
    echo "accuracy: pytorch, $DATA, dropout $DROPOUT, seed $seed, $EPOCHS epochs" >&2
    record "$PYTHON" scripts/bench/pytorch_accuracy.py "${peer_data[@]}" ${peer_split[@]+"${peer_split[@]}"} --seed "$seed" \
      --epochs "$EPOCHS" --dropout "$DROPOUT" ${cycle_flags[@]+"${cycle_flags[@]}"} \
      ${batching_flags[@]+"${batching_flags[@]}"} --threads "$THREADS"
  fi
done

"$PYTHON" scripts/bench/summarize_accuracy.py "$RESULTS" \
  --command "SEEDS='$SEEDS' EPOCHS=$EPOCHS DATA=$DATA DROPOUT=$DROPOUT CYCLE_MOMENTUM=$CYCLE_MOMENTUM BATCHING=$BATCHING FOLDS=$FOLDS FOLD=$FOLD PEER=$PEER THREADS=$THREADS QUORUM=$QUORUM RESULTS=$RESULTS scripts/bench/accuracy.sh"
