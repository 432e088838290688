#!/usr/bin/env bash
# Fuzzes the wire decoder and every file reader with libFuzzer (the Swift toolchain's
# -sanitize=fuzzer, with AddressSanitizer) for a bounded time each; exits non-zero on the
# first crash, trap, leak or memory error, leaving the input that caused it in
# .build/fuzz/crash-*. CI runs it; run it longer by hand to search further.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# The harnesses are Tests/Fuzz/*Fuzz.swift, each compiled with the sources it exercises
# into one module, so no package target needs fuzzing flags.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
swiftc=${SWIFTC:-swiftc}
out=.build/fuzz
mkdir -p "$out"

build() {  # NAME MODULE SOURCES... -- FLAGS...
  local name=$1 module=$2
  shift 2
  local sources=()
  while [ "$1" != "--" ]; do sources+=("$1"); shift; done
  shift
  echo "fuzz: building $name"
  # (The linker's warnings about ASan's local symbols are noise: shown only on failure.)
  if ! "$swiftc" -module-name "$module" -parse-as-library -O -sanitize=fuzzer,address \
    -suppress-warnings "${sources[@]}" "$@" -o "$out/$name" 2> "$out/$name.build.log"; then
    cat "$out/$name.build.log"
    exit 1
  fi
}

build wire Wire Sources/Wire/*.swift Tests/Fuzz/WireFuzz.swift -- -I Sources/CLZ4 -llz4
# The readers span three package modules (Files, Data, Training), compiled here as one:
# copies without the imports of each other.
readers=()
for source in Sources/Files/{DataError,FileBytes,Folders,DeclaredSize,NumPy}.swift Sources/Data/{IDX,ImageCodec,CSV}.swift \
  Sources/Training/Safetensors.swift; do
  mkdir -p "$out/readers-src"
  sed -e '/^import Files$/d' -e '/^import Data$/d' "$source" > "$out/readers-src/$(basename "$source")"
  readers+=("$out/readers-src/$(basename "$source")")
done
build readers Readers "${readers[@]}" Tests/Fuzz/ReadersFuzz.swift -- \
  -I Sources/CZlib -I Sources/CPNG -I Sources/CTurboJPEG -lz -lpng16 -lturbojpeg

# Seeds: a few well-formed inputs, so the search starts inside the formats.
seed() {  # TARGET NAME PRINTF-FORMAT
  mkdir -p "$out/corpus-$1"
  # shellcheck disable=SC2059  # the format is the seed
  printf "$3" > "$out/corpus-$1/$2"
}
meta='{"task":"v/fold0","attempt":1,"tensors":[{"name":"oof","shape":[2,2],"precision":"float32","chunks":[16]}]}'
seed wire result "\x05\x01\x$(printf '%02x' ${#meta})\x00${meta}\x10\x00aaaabbbbccccdddd"
seed wire hello '\x01\x00\x55\x00{"worker":"w","version":"0.1.0","devices":["cpu"],"threads":2,"running":{},"slots":1}'
seed readers idx3 '\x00\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x01\x01\x02\x03\x04'
seed readers idx1 '\x01\x00\x00\x08\x01\x00\x00\x00\x03\x00\x01\x02'
seed readers npy "\x02\x93NUMPY\x01\x00\x47\x00{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }           \n\x01\x02\x03\x04"
seed readers csv '\x04id,label\na,1\nb,2\n'
mkdir -p "$out/corpus-readers" && { printf '\x05'; printf 'gzip'"'"'d bytes' | gzip -c; } > "$out/corpus-readers/gzip"
seed readers safetensors '\x06\x3a\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}    \x00\x00\x80\x3f'

for target in wire readers; do
  echo "fuzz: $target for $seconds s"
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1 "./$target" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="./crash-$target-" "corpus-$target" 2>&1 | tail -n 12)
  # A crash makes libFuzzer exit non-zero, and pipefail carries it here.
done
echo "fuzz: no crash in ${seconds} s per target"
