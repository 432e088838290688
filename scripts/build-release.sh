#!/usr/bin/env bash
# Builds the release binary and installs it under ${PREFIX:-dist}:
#   PREFIX/bin/quorum   the command line, with the Swift runtime (stdlib, Foundation,
#                       Dispatch) linked in statically
#   PREFIX/lib/*.so     only with a toolchain that cannot link the Swift runtime
#                       statically: its libraries, found by the binary through $ORIGIN/../lib
# What the binary still needs from the system is scripts/runtime-packages.txt:
# `scripts/runtime-deps.sh install` installs it, `scripts/runtime-deps.sh check
# PREFIX/bin/quorum` checks the binary against it. The Dockerfile runs this script.
#
#   scripts/build-release.sh                     -> dist/bin/quorum
#   PREFIX=/usr/local scripts/build-release.sh   -> /usr/local/bin/quorum
#
# Environment: PREFIX; SWIFT, the swift driver (default: swift on PATH); QUORUM_TARGET_CPU,
# the CPU to compile for (Package.swift; default haswell); SCRATCH_PATH, SwiftPM's build
# folder (default .build). Static and dynamic linking compile the modules differently, so
# alternating this script with a plain `swift build -c release` in one scratch folder
# rebuilds everything each time: give it a folder of its own (SCRATCH_PATH=.build/dist) on a
# machine that also develops, and always inside a running `swift test`, which holds .build.
#
# Idempotent: a second run rebuilds nothing that is up to date and installs the same files.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${PREFIX:-dist}
swift=${SWIFT:-swift}
build=("$swift" build -c release --product quorum)
if [ -n "${SCRATCH_PATH:-}" ]; then
  build+=(--scratch-path "$SCRATCH_PATH")
fi

if "$swift" build --help 2>/dev/null | grep -q -- '--static-swift-stdlib'; then
  static=1
  build+=(--static-swift-stdlib)
else
  static=0
  # The runtime libraries will lie in PREFIX/lib, beside PREFIX/bin.
  # shellcheck disable=SC2016  # $ORIGIN is for the dynamic linker, not for the shell
  build+=(-Xlinker -rpath -Xlinker '$ORIGIN/../lib')
fi

echo "build-release: ${build[*]}"
"${build[@]}"
bin_path=$("${build[@]}" --show-bin-path)

install -d "$prefix/bin"
install -m 0755 "$bin_path/quorum" "$prefix/bin/quorum"

if [ "$static" -eq 0 ]; then
  # The toolchain's runtime folder (usr/lib/swift/linux): every library the binary loads
  # from there is copied next to it.
  runtime_dir=$("$swift" -print-target-info 2>/dev/null \
    | sed -n '/"runtimeLibraryPaths"/,/]/ s/^ *"\(\/[^"]*\)".*/\1/p' | head -n 1)
  if [ -z "$runtime_dir" ]; then
    runtime_dir=$(dirname "$(dirname "$(readlink -f "$(command -v "$swift")")")")/lib/swift/linux
  fi
  [ -d "$runtime_dir" ] || { echo "build-release: no Swift runtime folder at $runtime_dir" >&2; exit 1; }
  install -d "$prefix/lib"
  copied=0
  while read -r library; do
    install -m 0644 "$library" "$prefix/lib/"
    copied=$((copied + 1))
  done < <(ldd "$prefix/bin/quorum" | awk -v dir="$runtime_dir/" 'index($3, dir) == 1 { print $3 }')
  echo "build-release: copied $copied Swift runtime libraries from $runtime_dir to $prefix/lib"
fi

# The binary starts: the Swift runtime is inside it (or beside it) and the system
# libraries are there.
echo "build-release: $prefix/bin/quorum $("$prefix/bin/quorum" --version)"
