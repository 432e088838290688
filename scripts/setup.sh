#!/usr/bin/env bash
# Installs every system dependency Quorum needs on Debian/Ubuntu. Idempotent: packages
# already present are skipped, so running it twice costs a few seconds.
#   scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail

packages=(
  pkg-config          # the system-library targets find their flags through it
  libzmq3-dev         # ZeroMQ: coordinator <-> worker transport
  liblz4-dev          # LZ4 frames for logits on the wire
  libopenblas-dev     # the CPU backend's GEMMs
  zlib1g-dev          # gzip'd IDX files
  libpng-dev          # PNG images (CSV + image folder, class folders)
  libturbojpeg0-dev   # JPEG images (TurboJPEG: errors as return codes)
  dataset-fashion-mnist  # the embedded default data set
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all system packages present"
  exit 0
fi

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "setup: installing ${missing[*]}"
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
