#!/usr/bin/env bash
# Runs the test suite the way CI does. Tests run in release mode: the compute kernels are
# exercised at the speed users get, and the suite takes a few minutes instead of an hour.
# The tests are XCTest cases; swift-testing is off so that the run ends with their
# summary, and a plain "N passed, N failed" line closes the output.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# NVRTC for the CUDA kernels' compilation check (pip's wheel; no GPU needed).
nvrtc=$(scripts/cuda-tools.sh)
export LD_LIBRARY_PATH="$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# quorum runs itself again with the best OpenBLAS core when OpenBLAS's own detection falls
# short of the CPU (BLASCore); XCTest's process cannot, as OpenBLAS reads the core before
# any test code runs. Name the core quorum uses, so the tests multiply with the kernels a
# user's quorum does (a user's own OPENBLAS_CORETYPE wins here as there).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  case " $* " in *" --skip-build "*) ;; *) swift build -c release --product quorum ;; esac
  OPENBLAS_CORETYPE=$(.build/release/quorum doctor --blas-core)
  export OPENBLAS_CORETYPE
  echo "test: OpenBLAS's $OPENBLAS_CORETYPE kernels, as quorum chooses them here"
fi
status=0
swift test -c release --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
  executed=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
  # XCTest's "failures" counts failed assertions; a test case fails once however many it has.
  failed=$(grep -cE "^Test Case '.*' failed \(" "$log" || true)
  echo "$((executed - failed)) passed, $failed failed"
fi
exit "$status"
