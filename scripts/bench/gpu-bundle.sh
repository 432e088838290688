#!/usr/bin/env bash
# Packs what scripts/bench/gpu.sh needs on a bare GPU machine with no Swift: the release
# `quorum`, the test binary (its CUDA tests run there against the real libraries), the
# shared libraries they link that such a machine may lack, the tests' resources and the
# Python peers, into FOLDER and FOLDER.tar.xz. The CUDA libraries themselves are not in
# it: they come from the machine (the driver) and its Python nvidia-* wheels (NVRTC,
# cuBLASLt), which gpu.sh finds.
#   scripts/bench/gpu-bundle.sh [FOLDER]        (default .gpu-check)
# There:  tar xJf .gpu-check.tar.xz && .gpu-check/gpu.sh
# NO_TAR=1 leaves the folder only (CI's smoke run uses it in place).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${1:-.gpu-check}
swift build -c release --build-tests >&2
bin=$(swift build -c release --show-bin-path)
rm -rf "$out"
mkdir -p "$out/lib"
cp "$bin/quorum" "$bin/QuorumPackageTests.xctest" "$out/"
for resources in "$bin"/*.resources; do [ -e "$resources" ] && cp -r "$resources" "$out/"; done
# Every library either binary resolves, but the C runtime (the GPU machine has its own,
# newer one) and the CUDA libraries (loaded at run time from the machine).
for binary in "$bin/quorum" "$bin/QuorumPackageTests.xctest"; do ldd "$binary"; done | awk '/=> \//{print $3}' | sort -u |
  while read -r library; do
    case "$(basename "$library")" in
      libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | ld-linux* | libstdc++.so* | libgcc_s.so* | libcuda* | libnvrtc* | libcublas*) ;;
      *) cp -L "$library" "$out/lib/" ;;
    esac
  done
cp scripts/bench/gpu.sh scripts/bench/summarize_gpu.py scripts/bench/pytorch_gpu_peer.py scripts/bench/pytorch_accuracy.py \
  scripts/bench/mobilenet_reference.py "$out/"
if [ -z "${NO_TAR:-}" ]; then
  tar -cJf "$out.tar.xz" "$out"
  du -sh "$out.tar.xz" >&2
fi
echo "gpu-bundle: $out${NO_TAR:+ (no tarball)}; on the GPU machine: tar xJf $out.tar.xz && $out/gpu.sh" >&2
