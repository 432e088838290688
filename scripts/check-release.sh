#!/usr/bin/env bash
# CI's check of the release binary the Docker image ships (issue: deployment):
#   1. scripts/build-release.sh builds it (Swift runtime linked in) into .build/dist-install;
#   2. scripts/runtime-deps.sh checks with ldd that every library it needs comes from
#      scripts/runtime-packages.txt (what the image installs) or the base system;
#   3. it runs `quorum --version` and a short `quorum run` (examples/smoke.yaml: 2 tasks).
# Its own scratch folder (.build/dist): a static build compiles differently from the
# tests' release build, and sharing one folder would rebuild both every time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

prefix=.build/dist-install
SCRATCH_PATH=.build/dist PREFIX=$prefix scripts/build-release.sh
scripts/runtime-deps.sh check "$prefix/bin/quorum"
"$prefix/bin/quorum" --version

run_folder=$(mktemp -d)
trap 'rm -rf "$run_folder"' EXIT
sed "s|^run_directory: .*|run_directory: $run_folder/smoke|" examples/smoke.yaml >"$run_folder/smoke.yaml"
"$prefix/bin/quorum" run "$run_folder/smoke.yaml" --threads 2 | tee "$run_folder/output.txt"
grep -q "| default |" "$run_folder/output.txt" || { echo "check-release: no score table in the output" >&2; exit 1; }
for fold in 0 1; do
  for file in "logits/default/fold$fold.oof.npy" "checkpoints/default/fold$fold.safetensors"; do
    [ -s "$run_folder/smoke/$file" ] || { echo "check-release: $file is missing" >&2; exit 1; }
  done
done
echo "check-release: OK"
