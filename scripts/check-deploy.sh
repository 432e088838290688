#!/usr/bin/env bash
# Checks the deployment files (Dockerfile, cluster/, the scripts) the way CI does:
#   hadolint           Dockerfile
#   ShellCheck         every *.sh, the sbatch script and .ci/run
#   compose schema     cluster/compose/compose.yaml against the compose specification's
#                      JSON schema (vendored in check-jsonschema), plus scripts/deploy_checks.py
#   kubernetes-validate  every manifest of cluster/kubernetes/kustomization.yaml, strictly,
#                      against the oldest and newest Kubernetes versions we claim
#   cloud-init         cluster/cloud-vm/cloud-init.yaml: #cloud-config, YAML, known keys, the
#                      setup script embedded verbatim (cloud-init's own schema check too,
#                      where cloud-init is installed)
#   runtime packages   scripts/runtime-packages.txt is well formed and the Dockerfile uses it
#   no secrets         no key file is tracked or waiting to be
# The tools come from PyPI (scripts/deploy-tools.txt, pinned) into a virtual environment,
# ${QUORUM_DEPLOY_TOOLS:-.build/deploy-tools}, installed once and again only when the list
# changes; the checks themselves fetch nothing.
#   scripts/check-deploy.sh          run every check; exit 1 if any fails
#   scripts/check-deploy.sh --fix    first copy cluster/cloud-vm/setup-worker.sh into
#                                    cloud-init.yaml, then check
set -euo pipefail
cd "$(dirname "$0")/.."

tools=${QUORUM_DEPLOY_TOOLS:-.build/deploy-tools}
requirements=scripts/deploy-tools.txt
kubernetes_versions=(1.28.0 1.37.0)
fix=0
[ "${1:-}" != --fix ] || fix=1

say() { echo "check-deploy: $*"; }

# --- the tools ---------------------------------------------------------------------------
install_tools() {
  local stamp=$tools/requirements.installed
  if [ -x "$tools/bin/python" ] && cmp -s "$requirements" "$stamp"; then
    return 0
  fi
  say "installing the tools of $requirements into $tools"
  if [ ! -x "$tools/bin/python" ]; then
    rm -rf "$tools"
    if ! python3 -m venv "$tools" >/dev/null 2>&1; then
      rm -rf "$tools"
      echo "check-deploy: python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$requirements"
  cp "$requirements" "$stamp"
}
install_tools
bin=$tools/bin
python=$bin/python

# --- the checks --------------------------------------------------------------------------
passed=()
failed=()
check() {
  local name=$1
  shift
  local output status=0
  output=$("$@" 2>&1) || status=$?
  if [ "$status" -eq 0 ]; then
    passed+=("$name")
    say "ok    $name"
  else
    failed+=("$name")
    say "FAIL  $name"
    printf '%s\n' "$output" | sed 's/^/    /' >&2
  fi
}

# Files git knows or would add (untracked, not ignored); every file outside git.
project_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- "$@"
  else
    local pattern
    for pattern in "$@"; do
      find . -path ./.build -prune -o -path ./.git -prune -o -type f -name "${pattern##*/}" -print \
        | sed 's|^\./||'
    done
  fi
}

hadolint_check() { "$bin/hadolint" --no-color Dockerfile; }

shellcheck_check() {
  local files=()
  mapfile -t files < <(project_files '*.sh' '*.sbatch' | sort -u)
  files+=(.ci/run)
  echo "shellcheck: ${#files[@]} files"
  "$bin/shellcheck" --severity=style "${files[@]}"
}

# The functions below run inside $(...) in an || list, where set -e does not act: each
# command's status is collected by hand.

compose_check() {
  local status=0
  "$bin/check-jsonschema" --builtin-schema vendor.compose-spec cluster/compose/compose.yaml || status=1
  "$python" scripts/deploy_checks.py compose cluster/compose/compose.yaml \
    cluster/compose/.env.example || status=1
  return "$status"
}

kubernetes_check() {
  local manifests=() version status=0 list
  list=$("$python" scripts/deploy_checks.py kustomize cluster/kubernetes) || status=1
  mapfile -t manifests <<<"$list"
  [ -n "$list" ] || return 1
  for version in "${kubernetes_versions[@]}"; do
    "$bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}" || status=1
  done
  if command -v kubectl >/dev/null; then
    kubectl kustomize cluster/kubernetes >/dev/null || status=1
  fi
  return "$status"
}

cloud_init_check() {
  local arguments=(cloud-init cluster/cloud-vm/cloud-init.yaml cluster/cloud-vm/setup-worker.sh)
  [ "$fix" -eq 0 ] || arguments+=(--fix)
  local status=0
  "$python" scripts/deploy_checks.py "${arguments[@]}" || status=1
  if command -v cloud-init >/dev/null; then
    cloud-init schema --config-file cluster/cloud-vm/cloud-init.yaml || status=1
  fi
  return "$status"
}

runtime_packages_check() {
  local bad
  bad=$(sed -e 's/#.*//' scripts/runtime-packages.txt \
    | awk 'NF' | tr '|' '\n' | awk '{ $1 = $1; print }' \
    | grep -Ev '^[a-z0-9][a-z0-9+.-]+$' || true)
  if [ -n "$bad" ]; then
    echo "scripts/runtime-packages.txt: not package names: $bad"
    return 1
  fi
  grep -q 'runtime-packages.txt' Dockerfile || { echo "the Dockerfile does not install scripts/runtime-packages.txt"; return 1; }
  grep -q 'runtime-deps.sh install' Dockerfile || { echo "the Dockerfile does not run runtime-deps.sh install"; return 1; }
  grep -q 'runtime-deps.sh check' Dockerfile || { echo "the Dockerfile does not check its binary against the list"; return 1; }
  grep -qx 'ENTRYPOINT \["quorum"\]' Dockerfile || { echo "the Dockerfile's entrypoint is not [\"quorum\"]"; return 1; }
}

no_secrets_check() {
  local keys
  keys=$(project_files '*.key' | grep -v '^Tests/' || true)
  if [ -n "$keys" ]; then
    echo "secret key files would be committed (add them to .gitignore, or move them): $keys"
    return 1
  fi
}

check "hadolint Dockerfile" hadolint_check
check "shellcheck" shellcheck_check
check "compose specification" compose_check
check "kubernetes manifests (${kubernetes_versions[*]})" kubernetes_check
check "cloud-init" cloud_init_check
check "runtime package list" runtime_packages_check
check "no secret keys" no_secrets_check

total=$(( ${#passed[@]} + ${#failed[@]} ))
if [ ${#failed[@]} -eq 0 ]; then
  say "OK, all $total checks"
else
  say "${#failed[@]} of $total checks FAILED: $(IFS=,; echo "${failed[*]}")"
  exit 1
fi
