#!/usr/bin/env bash
# The headline CPU number (docs/benchmark-protocol.md): the whole `quorum train` a user
# runs, as a process, beside PyTorch's whole loop of the same recipe, alternated run by
# run, REPEATS times; wall-clock seconds and peak RSS of each process (data loading,
# training, the test evaluation, the outputs), medians and ranges in a markdown table.
#
# Arms (ARMS, space-separated, in the order they alternate):
#   quorum           quorum train as a user starts it (GEMMs by oneDNN on x86-64 with AVX2);
#   quorum-openblas  the same with QUORUM_GEMM=openblas: OpenBLAS's GEMMs, its kernels
#                    chosen from the CPU's features (what issue 18 first shipped);
#   quorum-prescott  QUORUM_GEMM=openblas and OPENBLAS_CORETYPE=Prescott: the SSE3 kernels
#                    that Debian's OpenBLAS 0.3.21 falls back to on a CPU newer than its
#                    table (issue 18), i.e. what such a machine ran before;
#   quorum-baseline  quorum train from another build, BASELINE (e.g. the previous
#                    commit's release binary copied aside): a change measured against
#                    what it replaces, in the same alternated run;
#   pytorch          scripts/bench/pytorch_accuracy.py with the same recipe.
#
#   scripts/bench/whole_command.sh
#   REPEATS=5 EPOCHS=1 ARMS="quorum pytorch" scripts/bench/whole_command.sh
#   PRESET=cifar ARMS="quorum pytorch" scripts/bench/whole_command.sh
#   DATA=bench-results/colour LONG_TAIL=1 ARMS="quorum pytorch" scripts/bench/whole_command.sh
#     (colour photos at 96×96×3: python3 scripts/bench/colour_data.py bench-results/colour)
#   BASELINE=/tmp/quorum-before ARMS="quorum-baseline quorum pytorch" scripts/bench/whole_command.sh
#
# Env: REPEATS (3), EPOCHS (1), THREADS (2), PRESET (imagenet, or cifar),
# ARMS ("quorum quorum-openblas quorum-prescott pytorch"), QUORUM (.build/release/quorum),
# BASELINE (for quorum-baseline), PYTHON (python3), RESULTS (bench-results/whole_command.jsonl),
# DATA (an IDX folder, default Fashion-MNIST's), LONG_TAIL (100: FMNIST-LT-100; 1: the whole
# set). FMNIST-LT-100, imagenet preset, width 1, the reference recipe, no validation split:
# the protocol's CPU row (PRESET=cifar: its cifar row).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

REPEATS=${REPEATS:-3}
EPOCHS=${EPOCHS:-1}
THREADS=${THREADS:-2}
PRESET=${PRESET:-imagenet}
ARMS=${ARMS:-quorum quorum-openblas quorum-prescott pytorch}
QUORUM=${QUORUM:-.build/release/quorum}
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-bench-results/whole_command.jsonl}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
LONG_TAIL=${LONG_TAIL:-100}
read -r -a arms <<<"$ARMS"

if [ ! -x "$QUORUM" ]; then
  echo "whole_command: $QUORUM is not an executable (swift build -c release)" >&2
  exit 1
fi
if [[ " $ARMS " == *" quorum-baseline "* ]] && [ ! -x "${BASELINE:-}" ]; then
  echo "whole_command: the quorum-baseline arm needs BASELINE, the path of another quorum binary" >&2
  exit 1
fi
if [[ " $ARMS " == *" pytorch "* ]]; then
  "$PYTHON" -c "import torch, torchvision" || {
    echo "whole_command: the peer needs: pip install -r scripts/bench/requirements.txt" >&2
    exit 1
  }
fi
mkdir -p "$(dirname "$RESULTS")" bench-results/runs
: >"$RESULTS"

# Runs one arm as a whole process under GNU time; appends {"arm", "repeat", "seconds",
# "peak_rss_mib", "status"} to RESULTS.
run_arm() {
  local arm=$1 repeat=$2 log=bench-results/runs/whole-$1-$2.log
  local command=()
  case "$arm" in
    quorum | quorum-openblas | quorum-prescott | quorum-baseline)
      local binary=$QUORUM
      [ "$arm" != quorum-baseline ] || binary=$BASELINE
      command=("$binary" train --data "$DATA" --long-tail-ratio "$LONG_TAIL" --validation-fraction 0 --epochs "$EPOCHS" --threads "$THREADS"
        --preset "$PRESET" --progress lines --output "bench-results/runs/whole-$arm")
      ;;
    pytorch)
      command=("$PYTHON" scripts/bench/pytorch_accuracy.py --data "$DATA" --long-tail-ratio "$LONG_TAIL" --epochs "$EPOCHS" --threads "$THREADS"
        --preset "$PRESET")
      ;;
    *)
      echo "whole_command: unknown arm '$arm'" >&2
      exit 1
      ;;
  esac
  local environment=()
  case "$arm" in
    quorum-openblas) environment=(QUORUM_GEMM=openblas) ;;
    quorum-prescott) environment=(QUORUM_GEMM=openblas OPENBLAS_CORETYPE=Prescott) ;;
  esac
  local status=0
  env "${environment[@]}" /usr/bin/time -f "%e %M" -o "$log.time" "${command[@]}" >"$log" 2>&1 || status=$?
  read -r seconds kib <"$log.time"
  printf '{"arm":"%s","preset":"%s","repeat":%d,"seconds":%s,"peak_rss_mib":%d,"status":%d}\n' \
    "$arm" "$PRESET" "$repeat" "$seconds" $((kib / 1024)) "$status" >>"$RESULTS"
  echo "whole_command: $arm #$repeat: ${seconds} s, $((kib / 1024)) MiB, status $status ($log)" >&2
}

for repeat in $(seq 1 "$REPEATS"); do
  for arm in "${arms[@]}"; do run_arm "$arm" "$repeat"; done
done

"$PYTHON" - "$RESULTS" <<'PY'
import json
import statistics
import sys

runs = [json.loads(line) for line in open(sys.argv[1])]
arms = list(dict.fromkeys(run["arm"] for run in runs))
medians = {arm: statistics.median(r["seconds"] for r in runs if r["arm"] == arm and r["status"] == 0) for arm in arms
           if any(r["arm"] == arm and r["status"] == 0 for r in runs)}
print("| arm | runs | median | range | peak RSS (median) | PyTorch's time / this |")
print("| --- | ---: | ---: | --- | ---: | ---: |")
for arm in arms:
    ok = [r for r in runs if r["arm"] == arm and r["status"] == 0]
    failed = sum(1 for r in runs if r["arm"] == arm and r["status"] != 0)
    if not ok:
        print(f"| {arm} | 0 ({failed} failed) | | | | |")
        continue
    seconds = [r["seconds"] for r in ok]
    ratio = f"{medians['pytorch'] / medians[arm]:.2f}×" if "pytorch" in medians and arm != "pytorch" else ""
    runs_text = f"{len(ok)}" + (f" ({failed} failed)" if failed else "")
    print(f"| {arm} | {runs_text} | {medians[arm]:.1f} s | {min(seconds):.1f}–{max(seconds):.1f} | "
          f"{statistics.median(r['peak_rss_mib'] for r in ok):.0f} MiB | {ratio} |")
PY
