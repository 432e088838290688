#!/usr/bin/env bash
# Issue 18's GEMM candidates side by side on this machine: OpenBLAS (the kernels it picks,
# and forced to Prescott, Haswell and SkylakeX), BLIS (its own run-time dispatch), oneDNN's
# sgemm (JIT on the CPU's features, and capped at AVX2), and PyTorch's torch.mm as the
# reference, alternated round by round. Each prints the seconds of the GEMMs of one
# MobileNetV2 training step at the shapes Quorum multiplies (scripts/bench/gemm_candidates.c)
# and a 512³ sgemm's GFLOP/s; the table gives medians over the rounds. MODE=chunked (the
# default) splits each product over THREADS threads of the benchmark's own with the library
# on one thread, as the CPU backend does; MODE=native gives the library THREADS threads.
#
#   scripts/bench/gemm_candidates.sh
#   ROUNDS=5 PRESET=cifar PYTHON=<venv>/bin/python scripts/bench/gemm_candidates.sh
#
# Needs gcc and the -dev packages of the candidates: libopenblas-dev, libblis-dev,
# libdnnl-dev (apt-get install, not part of scripts/setup.sh: Quorum links OpenBLAS only).
# Env: ROUNDS (3), THREADS (2), MODE (chunked), PRESET (imagenet), WIDTH (1), PYTHON (python3; skipped
# without torch), RESULTS (bench-results/gemm_candidates.jsonl).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PRESET=${PRESET:-imagenet}
WIDTH=${WIDTH:-1}
MODE=${MODE:-chunked}
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-bench-results/gemm_candidates.jsonl}
build=bench-results/gemm_candidates
mkdir -p "$build" "$(dirname "$RESULTS")"
: >"$RESULTS"

source=scripts/bench/gemm_candidates.c
blis_include=$(dirname "$(find /usr/include -path '*blis*' -name blis.h | head -1)")
blis_library=$(dirname "$(find /usr/lib -path '*blis*' -name 'libblis.so' | head -1)")
gcc -O2 -DUSE_OPENBLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread "$source" -o "$build/openblas" -lopenblas -lpthread -lm
gcc -O2 -DUSE_BLIS -I"$blis_include" "$source" -o "$build/blis" -L"$blis_library" -Wl,-rpath,"$blis_library" -lblis -lpthread -lm
gcc -O2 -DUSE_ONEDNN "$source" -o "$build/onednn" -ldnnl -lgomp -lm

torch=0
if "$PYTHON" -c "import torch" 2>/dev/null; then torch=1; fi

# name, environment, command: one arm per line.
arms=(
  "openblas||$build/openblas"
  "openblas-prescott|OPENBLAS_CORETYPE=Prescott|$build/openblas"
  "openblas-haswell|OPENBLAS_CORETYPE=Haswell|$build/openblas"
  "openblas-skylakex|OPENBLAS_CORETYPE=SkylakeX|$build/openblas"
  "blis|BLIS_NUM_THREADS=$THREADS|$build/blis"
  "onednn|OMP_NUM_THREADS=$THREADS|$build/onednn"
  "onednn-avx2|OMP_NUM_THREADS=$THREADS ONEDNN_MAX_CPU_ISA=AVX2|$build/onednn"
)

for round in $(seq 1 "$ROUNDS"); do
  for arm in "${arms[@]}"; do
    IFS='|' read -r name environment command <<<"$arm"
    read -r -a variables <<<"$environment"
    env "${variables[@]}" "$command" "$PRESET" "$WIDTH" "$THREADS" 7 "$MODE" |
      sed "s/^{/{\"arm\":\"$name\",\"round\":$round,/" >>"$RESULTS"
  done
  if [ "$torch" = 1 ]; then
    "$PYTHON" - "$THREADS" "$round" >>"$RESULTS" <<'PY'
import json, statistics, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(512, 512), torch.randn(512, 512)
times = []
for repeat in range(22):
    start = time.perf_counter()
    torch.mm(a, b)
    if repeat >= 2:
        times.append(time.perf_counter() - start)
print(json.dumps({"arm": "pytorch", "round": int(sys.argv[2]), "engine": "pytorch", "kernels": torch.__version__,
                  "threads": int(sys.argv[1]), "size": 512, "gflops": 2 * 512**3 / statistics.median(times) / 1e9}))
PY
  fi
  echo "gemm_candidates: round $round of $ROUNDS done" >&2
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
arms = list(dict.fromkeys(r["arm"] for r in rows))
print("| candidate | kernels it ran | GEMMs of one step (median) | their GFLOP/s | 512³ GFLOP/s (median) |")
print("| --- | --- | ---: | ---: | ---: |")
for arm in arms:
    step = [r for r in rows if r["arm"] == arm and "step_gemm_seconds" in r]
    square = [r["gflops"] for r in rows if r["arm"] == arm and "size" in r]
    kernels = next(r["kernels"] for r in rows if r["arm"] == arm)
    seconds = f"{statistics.median(r['step_gemm_seconds'] for r in step) * 1e3:.1f} ms" if step else ""
    gflops = f"{statistics.median(r['step_gemm_gflops'] for r in step):.0f}" if step else ""
    print(f"| {arm} | {kernels} | {seconds} | {gflops} | {statistics.median(square):.0f} |")
PY
