#!/usr/bin/env bash
# Installs NVRTC (pip's nvidia-cuda-nvrtc wheel, pinned in scripts/cuda-tools.txt) into a
# virtual environment, ${QUORUM_CUDA_TOOLS:-.build/cuda-tools}, once, and prints the folder
# holding libnvrtc.so: scripts/test.sh puts it on LD_LIBRARY_PATH, where the CUDA
# backend's loader looks, so that CI compiles every kernel without a GPU or a toolkit.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=${QUORUM_CUDA_TOOLS:-.build/cuda-tools}
requirements=scripts/cuda-tools.txt
stamp=$tools/requirements.installed
if ! { [ -x "$tools/bin/python" ] && cmp -s "$requirements" "$stamp"; }; then
  echo "cuda-tools: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $tools" >&2
  if [ ! -x "$tools/bin/python" ]; then
    rm -rf "$tools"
    python3 -m venv "$tools" >/dev/null 2>&1 || {
      rm -rf "$tools"
      echo "cuda-tools: python3 -m venv failed: install python3-venv (scripts/setup.sh does)" >&2
      exit 1
    }
  fi
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
library=$(find "$tools"/lib/python3*/site-packages/nvidia -name 'libnvrtc.so*' -not -name '*builtins*' | head -n 1)
[ -n "$library" ] || { echo "cuda-tools: no libnvrtc.so under $tools" >&2; exit 1; }
cd "$(dirname "$library")" && pwd
