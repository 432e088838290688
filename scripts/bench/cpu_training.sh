#!/usr/bin/env bash
# CPU training and inference speed, Quorum side by side with PyTorch in one run
# (docs/benchmark-protocol.md). Runs ours and the peer alternately, REPEATS times, so
# that a noisy neighbour hurts both; then prints a markdown table of the medians.
#
#   scripts/bench/cpu_training.sh
#   REPEATS=5 QUORUM=path/to/quorum RESULTS=bench-results/x.jsonl scripts/bench/cpu_training.sh
#
# Needs: python3 with scripts/bench/requirements.txt installed; Quorum built with
# `swift build -c release` (done here if the default binary is missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

readonly default_quorum=.build/release/quorum
QUORUM=${QUORUM:-$default_quorum}
REPEATS=${REPEATS:-3}
RESULTS=${RESULTS:-bench-results/cpu_training.jsonl}
PYTHON=${PYTHON:-python3}

readonly batch=128 threads=2 warmup=2 steps=5
# "preset width input": Fashion-MNIST's size, and colour photos at 96×96 (issue 20).
# CONFIGURATIONS="imagenet 1.0 96x96x3" runs only those (one per line or ;-separated).
default_configurations="imagenet 1.0 28x28x1;imagenet 0.5 28x28x1;cifar 1.0 28x28x1;cifar 0.5 28x28x1;imagenet 1.0 96x96x3;imagenet 0.5 96x96x3"
IFS=';' read -r -a configurations <<<"${CONFIGURATIONS:-$default_configurations}"
readonly configurations
readonly modes=(train inference)

if [ ! -x "$QUORUM" ]; then
  if [ "$QUORUM" != "$default_quorum" ]; then
    echo "cpu_training: QUORUM=$QUORUM is not an executable" >&2
    exit 1
  fi
  echo "cpu_training: $QUORUM missing, building it (swift build -c release)" >&2
  swift build -c release
fi
"$PYTHON" -c "import torch, torchvision" || {
  echo "cpu_training: the peer needs: pip install -r scripts/bench/requirements.txt" >&2
  exit 1
}

# Appends one result line; refuses anything that is not a single JSON object, so a
# stray log line on stdout fails here rather than in the summary.
record() {
  local line
  line=$("$@")
  if [[ "$line" != *$'\n'* && "$line" == "{"*"}" ]]; then
    printf '%s\n' "$line" >>"$RESULTS"
  else
    echo "cpu_training: expected one JSON line from: $*" >&2
    printf '%s\n' "$line" >&2
    exit 1
  fi
}

mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"

record "$QUORUM" bench sgemm --size 512 --threads "$threads"
for ((repeat = 1; repeat <= REPEATS; repeat++)); do
  for configuration in "${configurations[@]}"; do
    read -r preset width input <<<"$configuration"
    for mode in "${modes[@]}"; do
      echo "cpu_training: repeat $repeat/$REPEATS $preset $width $input $mode" >&2
      common=(--preset "$preset" --width "$width" --input "${input:-28x28x1}" --batch "$batch" --threads "$threads"
        --warmup "$warmup" --steps "$steps" --mode "$mode")
      record "$QUORUM" bench step "${common[@]}"
      record "$PYTHON" scripts/bench/pytorch_peer.py "${common[@]}" --layout channels_last
    done
  done
done

"$PYTHON" scripts/bench/summarize.py "$RESULTS" \
  --command "${CONFIGURATIONS:+CONFIGURATIONS=\"$CONFIGURATIONS\" }REPEATS=$REPEATS QUORUM=$QUORUM scripts/bench/cpu_training.sh"
