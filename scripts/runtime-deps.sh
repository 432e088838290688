#!/usr/bin/env bash
# The run-time system packages of the release binary, from scripts/runtime-packages.txt.
#   scripts/runtime-deps.sh list            the package names for this Debian/Ubuntu release
#   scripts/runtime-deps.sh install         apt-get installs them (as root), --no-install-recommends;
#                                           idempotent: nothing to do when all are installed
#   scripts/runtime-deps.sh check BINARY    every shared library BINARY needs must come from a
#                                           listed package, libc6/libgcc-s1, or lie next to it
#                                           (PREFIX/lib); exit 1 naming the ones that don't
# The Dockerfile's runtime stage runs `install`, its build stage runs `check` on the binary it
# ships. A machine that runs a binary from scripts/build-release.sh without Docker needs
# `sudo scripts/runtime-deps.sh install` and nothing else.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
list_file=${QUORUM_RUNTIME_PACKAGES:-$here/runtime-packages.txt}
# Essential packages of every Debian/Ubuntu image: never listed, always accepted.
base_packages=(libc6 libgcc-s1)

die() { echo "runtime-deps: $*" >&2; exit 1; }

# One line per library: its alternatives, separated by spaces.
alternatives() {
  sed -e 's/#.*//' -e 's/|/ /g' "$list_file" | awk 'NF { $1 = $1; print }'
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
has_candidate() {
  local candidate
  candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

# The package to use for each line: an installed alternative, else the first apt can install.
resolve() {
  local line name chosen
  while read -r line; do
    chosen=""
    for name in $line; do
      if installed "$name"; then chosen=$name; break; fi
    done
    if [ -z "$chosen" ]; then
      for name in $line; do
        if has_candidate "$name"; then chosen=$name; break; fi
      done
    fi
    [ -n "$chosen" ] || die "none of '$line' is installed or known to apt (run apt-get update?)"
    echo "$chosen"
  done < <(alternatives)
}

cmd_install() {
  local line name missing=() ok
  # Lines with an installed alternative need nothing; the others are resolved after an update.
  while read -r line; do
    ok=0
    for name in $line; do
      if installed "$name"; then ok=1; break; fi
    done
    [ "$ok" -eq 1 ] || missing+=("$line")
  done < <(alternatives)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "runtime-deps: all runtime packages present"
    return 0
  fi
  local as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  local packages=() chosen
  for line in "${missing[@]}"; do
    chosen=""
    for name in $line; do
      if has_candidate "$name"; then chosen=$name; break; fi
    done
    [ -n "$chosen" ] || die "none of '$line' is known to apt on this system"
    packages+=("$chosen")
  done
  echo "runtime-deps: installing ${packages[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${packages[@]}"
}

# The package that owns a file, trying the path as given and with/without the /usr merge.
owner() {
  local path=$1 real candidate
  real=$(readlink -f "$path")
  for candidate in "$real" "$path" "${real#/usr}" "/usr$real" "${path#/usr}" "/usr$path"; do
    [ -e "$candidate" ] || continue
    dpkg-query -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
  done
  return 1
}

needed() {
  if command -v readelf >/dev/null; then
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
  elif command -v objdump >/dev/null; then
    objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }'
  else
    die "check needs readelf or objdump (binutils)"
  fi
}

cmd_check() {
  local binary=${1:-}
  if [ -z "$binary" ] || [ ! -x "$binary" ]; then
    die "usage: runtime-deps.sh check BINARY (an executable file)"
  fi
  local bin_dir lib_dir allowed=() failures=0 lib path package line
  bin_dir=$(cd "$(dirname "$binary")" && pwd)
  lib_dir=$(cd "$bin_dir/.." && pwd)/lib
  while read -r line; do
    # shellcheck disable=SC2206  # the alternatives are words
    allowed+=($line)
  done < <(alternatives)
  allowed+=("${base_packages[@]}")

  local ldd_output
  ldd_output=$(ldd "$binary") || die "ldd $binary failed"
  if grep -q "not found" <<<"$ldd_output"; then
    grep "not found" <<<"$ldd_output" >&2
    die "$binary: libraries not found"
  fi
  # The binary's NEEDED libraries; for those shipped in PREFIX/lib (a toolchain without
  # static linking), their NEEDED libraries too.
  local queue=() seen=" " shipped
  mapfile -t queue < <(needed "$binary")
  while [ ${#queue[@]} -gt 0 ]; do
    lib=${queue[0]}
    queue=("${queue[@]:1}")
    case "$seen" in *" $lib "*) continue ;; esac
    seen+="$lib "
    case "$lib" in ld-linux*|linux-vdso*) continue ;; esac
    if [ -f "$lib_dir/$lib" ]; then
      echo "runtime-deps: $lib -> $lib_dir (shipped next to the binary)"
      mapfile -t shipped < <(needed "$lib_dir/$lib")
      queue+=("${shipped[@]}")
      continue
    fi
    path=$(awk -v lib="$lib" '$1 == lib && $2 == "=>" { print $3 }' <<<"$ldd_output")
    [ -n "$path" ] || { echo "runtime-deps: $lib: not resolved by ldd" >&2; failures=$((failures + 1)); continue; }
    if ! package=$(owner "$path"); then
      echo "runtime-deps: $lib -> $path belongs to no package (a toolchain library? build with --static-swift-stdlib or install it into PREFIX/lib)" >&2
      failures=$((failures + 1))
      continue
    fi
    if printf '%s\n' "${allowed[@]}" | grep -qxF "$package"; then
      echo "runtime-deps: $lib -> $package"
    else
      echo "runtime-deps: $lib -> $package, which is not in $(basename "$list_file")" >&2
      failures=$((failures + 1))
    fi
  done
  [ "$failures" -eq 0 ] || die "$failures of $binary's libraries are not covered by $list_file"
  echo "runtime-deps: every library $binary needs comes from $(basename "$list_file") or the base system"
}

case "${1:-}" in
  list) resolve ;;
  install) cmd_install ;;
  check) shift; cmd_check "$@" ;;
  *) die "usage: runtime-deps.sh list | install | check BINARY" ;;
esac
