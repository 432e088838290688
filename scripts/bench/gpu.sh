#!/usr/bin/env bash
# The GPU check, in one command, for a bare GPU machine with no Swift (docs/cuda.md):
#   1. the CUDA parity and training tests against the real driver, NVRTC and cuBLASLt
#      (the CUDATests and CUDAWorkerTests of the test binary, on QUORUM_TEST_DEVICE);
#   2. training steps, Quorum (the step replayed as a CUDA graph, and launched op by op)
#      beside PyTorch eager (channels_last, bf16 autocast) and torch.compile, alternated, on the cifar and imagenet presets at batch 256 and 1024,
#      with a device-to-device copy measured in PyTorch's process (achieved bandwidth);
#   3. with DATA (a Fashion-MNIST folder), the whole command: `quorum train` (the images in
#      device memory, again with --no-device-data, and again with --no-cuda-graphs) of
#      FMNIST-LT-100 with the reference recipe beside PyTorch's whole loop on the same GPU.
# It writes OUT/results.jsonl and OUT/summary.md (the table for docs/benchmarks.md).
#
# Runs from a bundle made by scripts/bench/gpu-bundle.sh (quorum, the test binary, their
# libraries and these scripts in one folder):
#   tar xJf .gpu-check.tar.xz && .gpu-check/gpu.sh
# or from a checkout after `swift build -c release --build-tests`.
#   --smoke   tiny sizes, a few tests, on DEVICE=cuda-emulated by default: what CI runs so
#             that this script cannot rot (PyTorch's side runs on the CPU, if it is there).
# Environment: DEVICE (cuda:0), OUT (gpu-results), DATA, REPEATS (2), PYTHON (python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true

if [ -x "$here/quorum" ]; then
  # A bundle: the binaries, their libraries in lib/, the Python peers beside this script.
  bin=$here
  export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  bin=$(cd "$here/../.." && swift build -c release --show-bin-path)
fi
# The CUDA libraries of the machine's Python wheels (nvidia/*/lib), where there are any.
PYTHON=${PYTHON:-python3}
nv=$("$PYTHON" -c 'import glob, nvidia; print(":".join(d for p in nvidia.__path__ for d in glob.glob(p + "/*/lib")))' 2>/dev/null || true)
[ -n "$nv" ] && export LD_LIBRARY_PATH="$nv:${LD_LIBRARY_PATH:-}"

if $smoke; then DEVICE=${DEVICE:-cuda-emulated}; else DEVICE=${DEVICE:-cuda:0}; fi
OUT=${OUT:-gpu-results}
REPEATS=${REPEATS:-2}
mkdir -p "$OUT"
results="$OUT/results.jsonl"
: >"$results"
log() { echo "gpu.sh: $*" >&2; }
started=$(date +%s)

# Appends one JSON line; anything else fails here rather than in the summary.
record() {
  local line
  line=$("$@" | tail -n 1)
  if [[ "$line" == "{"*"}" ]]; then
    printf '%s\n' "$line" >>"$results"
  else
    log "expected a JSON line from: $*"
    exit 1
  fi
}

torch_device=cpu
if "$PYTHON" -c "import torch, torchvision" 2>/dev/null; then
  "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" && torch_device=cuda
  have_torch=true
else
  have_torch=false
  log "no PyTorch here (pip install -r scripts/bench/requirements.txt): Quorum's side only"
fi

# 1. The tests, on the device.
if $smoke; then
  tests="CUDATests.KernelParityTests,CUDATests.CUDABackendTrainingTests/testOneTrainingStepMatchesTheCPUBackend"
else
  tests="CUDATests,TrainingTests.CUDAWorkerTests"
fi
log "tests on $DEVICE: $tests"
test_log="$OUT/tests.log"
test_start=$(date +%s)
test_status=0
# The tests' process cannot restart itself with the OpenBLAS core quorum chooses from the
# CPU's features (quorum does, before OpenBLAS initialises): name it for them, as
# scripts/test.sh does (a core already named wins).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && core=$("$bin/quorum" doctor --blas-core); then
  export OPENBLAS_CORETYPE=$core
fi
QUORUM_TEST_DEVICE=$DEVICE QUORUM_EMULATOR_CHECKS=fast "$bin/QuorumPackageTests.xctest" "$tests" >"$test_log" 2>&1 || test_status=$?
summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$test_log" | tail -n 1 || true)
executed=$(echo "$summary" | sed -nE 's/.*Executed ([0-9]+) tests?.*/\1/p')
failures=$(echo "$summary" | sed -nE 's/.*with ([0-9]+) failures?.*/\1/p')
printf '{"check": "tests", "device": "%s", "filter": "%s", "executed": %s, "failures": %s, "status": %d, "seconds": %d}\n' \
  "$DEVICE" "$tests" "${executed:-0}" "${failures:-0}" "$test_status" "$(($(date +%s) - test_start))" >>"$results"
grep -E "error:|failed \(" "$test_log" | head -n 40 >&2 || true
log "tests: ${executed:-0} executed, ${failures:-?} failures (log: $test_log)"

# 2. Training steps, alternated: Quorum, PyTorch eager, torch.compile.
if $smoke; then
  configurations=("cifar 0.35 8")
  steps=(--warmup 1 --steps 2)
  peer_steps=(--warmup 1 --steps 2 --copy-mib 8)
  repeats=1
else
  configurations=("cifar 1.0 256" "cifar 1.0 1024" "imagenet 1.0 256" "imagenet 1.0 1024")
  steps=(--warmup 5 --steps 30)
  peer_steps=(--warmup 20 --steps 100)
  repeats=$REPEATS
fi
for ((repeat = 1; repeat <= repeats; repeat++)); do
  for configuration in "${configurations[@]}"; do
    read -r preset width batch <<<"$configuration"
    log "steps, repeat $repeat/$repeats: $preset width $width batch $batch"
    record "$bin/quorum" bench step --device "$DEVICE" --preset "$preset" --width "$width" --batch "$batch" "${steps[@]}"
    record "$bin/quorum" bench step --device "$DEVICE" --preset "$preset" --width "$width" --batch "$batch" "${steps[@]}" --no-cuda-graphs
    if $have_torch; then
      modes=(eager compile)
      $smoke && modes=(eager)
      for mode in "${modes[@]}"; do
        record "$PYTHON" "$here/pytorch_gpu_peer.py" --device "$torch_device" --preset "$preset" --width "$width" --batch "$batch" \
          --mode "$mode" "${peer_steps[@]}"
      done
    fi
  done
done

# 3. The whole command on FMNIST-LT-100, the reference recipe, beside PyTorch's loop.
now() { "$PYTHON" -c 'import time; print(time.time())'; }
# (Not in --smoke: the emulated device trains a few images a second.)
if [ -n "${DATA:-}" ] && ! $smoke; then
  epochs=15
  for ((repeat = 1; repeat <= repeats; repeat++)); do
    # Quorum three times: the images held in device memory and each step one CUDA graph
    # launch (the default); the host assembling every batch (--no-device-data), which says
    # what holding them is worth; every operation launched one by one (--no-cuda-graphs),
    # which says what the graph is worth.
    for data_option in --device-data --no-device-data --no-cuda-graphs; do
      log "whole command, repeat $repeat/$repeats, $data_option"
      run="$OUT/train-$repeat$data_option"
      start=$(now)
      "$bin/quorum" train --data "$DATA" --long-tail-ratio 100 --validation-fraction 0 --epochs "$epochs" --device "$DEVICE" \
        "$data_option" --output "$run" --progress none >"$run.log" 2>&1
      "$PYTHON" - "$run/metrics.json" "$start" "$(now)" "$DEVICE" "$data_option" >>"$results" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))
test = metrics.get("test") or {}
engine = {"--device-data": "quorum", "--no-device-data": "quorum-host-batches", "--no-cuda-graphs": "quorum-op-by-op"}[sys.argv[5]]
print(json.dumps({"check": "whole-command", "engine": engine, "device": sys.argv[4],
                  "seconds": float(sys.argv[3]) - float(sys.argv[2]), "balanced_accuracy": test.get("balanced_accuracy")}))
PY
    done
    if $have_torch; then
      start=$(now)
      "$PYTHON" "$here/pytorch_accuracy.py" --data "$DATA" --epochs "$epochs" --device "$torch_device" --bf16 \
        >"$OUT/pytorch-$repeat.json" 2>"$OUT/pytorch-$repeat.log"
      "$PYTHON" - "$OUT/pytorch-$repeat.json" "$start" "$(now)" "$torch_device" >>"$results" <<'PY'
import json, sys
result = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")][-1]
print(json.dumps({"check": "whole-command", "engine": "pytorch-eager-bf16", "device": sys.argv[4],
                  "seconds": float(sys.argv[3]) - float(sys.argv[2]), "balanced_accuracy": result.get("test_balanced_accuracy")}))
PY
    fi
  done
fi

"$PYTHON" "$here/summarize_gpu.py" "$results" >"$OUT/summary.md"
cat "$OUT/summary.md"
log "done in $(($(date +%s) - started)) s: $results, $OUT/summary.md"
exit "$test_status"
