#!/usr/bin/env bash
# Installs every system dependency Quorum needs on Debian/Ubuntu. Idempotent: packages
# already present are skipped, so running it twice costs a few seconds.
#   scripts/setup.sh            (as root, or with sudo available)
#   scripts/setup.sh --build    only what building the release binary needs (the -dev
#                               packages and the data set): the Dockerfile's build stage
set -euo pipefail

build_only=0
case "${1:-}" in
  "") ;;
  --build) build_only=1 ;;
  *) echo "usage: scripts/setup.sh [--build]" >&2; exit 64 ;;
esac

packages=(
  pkg-config          # the system-library targets find their flags through it
  libzmq3-dev         # ZeroMQ: coordinator <-> worker transport
  liblz4-dev          # LZ4 frames for logits on the wire
  libopenblas-dev     # GEMMs where oneDNN has no fast kernels (arm64), and the stacking MLP
  libdnnl-dev         # oneDNN: the CPU backend's GEMMs on x86-64 (JIT for AVX2, AVX-512, AMX)
  zlib1g-dev          # gzip'd IDX files
  libpng-dev          # PNG images (CSV + image folder, class folders)
  libturbojpeg0-dev   # JPEG images (TurboJPEG: errors as return codes)
)
# Developing and testing, not building.
development_packages=(
  python3-venv        # scripts/check-deploy.sh and scripts/cuda-tools.sh install their pinned tools into venvs
  chromium            # the tests open report.html in headless Chromium (plots render, the page's check runs)
)
[ "$build_only" -eq 1 ] || packages+=("${development_packages[@]}")
# Installed where the distribution has them, skipped with a warning where it does not.
# Debian has the data set; Ubuntu has it in its universe component, which an image may
# lack. Quorum builds without it; only the embedded default (examples/fmnist-lt.yaml) and
# the image's examples need it.
optional_packages=(
  dataset-fashion-mnist  # the embedded default data set, /usr/share/datasets/fashion-mnist
)

missing=()
for package in "${packages[@]}" "${optional_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all system packages present"
  exit 0
fi

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
"${as_root[@]}" apt-get update -qq

# An optional package apt has no candidate for (after the update) is left out.
install=()
for package in "${missing[@]}"; do
  if [[ " ${optional_packages[*]} " == *" $package "* ]]; then
    candidate=$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
      echo "setup: warning: $package is not available here; skipping it (optional)" >&2
      continue
    fi
  fi
  install+=("$package")
done
[ ${#install[@]} -gt 0 ] || { echo "setup: done"; exit 0; }

echo "setup: installing ${install[*]}"
# env passes DEBIAN_FRONTEND through sudo, which resets the environment.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${install[@]}"
echo "setup: done"
