#!/usr/bin/env bash
# Runs the test suite the way CI does. Tests run in release mode: the compute kernels are
# exercised at the speed users get, and the suite takes a few minutes instead of an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
swift test -c release "$@"
