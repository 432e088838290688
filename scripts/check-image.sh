#!/usr/bin/env bash
# CI's check of the container image (docs/deploy.md, "Checking the image"): builds the real
# Dockerfile and runs a containerised cluster with it.
#   1. engine      Docker if its daemon answers; else Debian's podman with runc, installed
#                  (apt-get, as root) and configured for this run only (CONTAINERS_CONF)
#   2. bases       stand-ins for the Dockerfile's two base images, which no registry here
#                  serves: Debian 12 from Debian's archive (debootstrap), and Debian 12 with
#                  the Swift toolchain that built the project, mounted at its own path
#   3. build       the Dockerfile with those bases as its build arguments; the package's
#                  Swift dependencies resolve through the host's git configuration
#   4. image       `quorum --version`, `quorum doctor` (no GPU: reported, not a crash), the
#                  health check's command, the user, the size, the start-up time
#   5. keys        `quorum keys generate` into a volume
#   6. cluster     a coordinator and two worker containers with CURVE keys run
#                  examples/smoke.yaml (2 tasks, width 0.35, one epoch): one worker
#                  container killed mid-task, the coordinator container restarted once a
#                  result is stored; the run finishes with every task stored once, the
#                  results owned by the image's user and read by Python on the host
#   7. compose     cluster/compose's recipe under podman-compose or docker compose, on the
#                  same experiment
# Every step prints its time. Exit status 77: no engine can be set up here (not root and
# no Docker daemon): .ci/run reports the check as skipped.
#
# Environment: QUORUM_CHECK_IMAGE (the tag to build, default localhost/quorum:check),
# QUORUM_CHECK_WORK (default .build/image-check: the engine's configuration, the Debian
# root file system, logs), CUDA_WHEELS (default empty: no PyPI here; see docs/deploy.md for
# what that leaves untested; with them, PIP_CERT names a CA bundle for pip behind a proxy),
# KEEP=1 leaves the containers and volumes for a look.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

image=${QUORUM_CHECK_IMAGE:-localhost/quorum:check}
work=${QUORUM_CHECK_WORK:-.build/image-check}
mkdir -p "$work"
work=$(cd "$work" && pwd)
prefix=quorum-check
debian_image=localhost/quorum-check/debian:bookworm

say() { echo "check-image: $*"; }
# Failures and the log tails that explain them go to standard output: CI keeps that stream
# as the run's record, and a failure without its cause cannot be acted on.
die() { echo "check-image: FAILED: $*"; exit 1; }
# The last $2 lines of log $1, indented, on standard output.
show_tail() { echo "check-image: the last $2 lines of $1:"; tail -n "$2" "$1" | sed 's/^/  | /'; }
# A command that fails outside any test of ours ends the check under `set -e` without a
# word; this names the step, the line and the command, so that no failure is silent.
# (Only where `set -e` is on: a command whose failure is expected runs under `set +e`.)
failed() { if [[ $- == *e* ]]; then echo "check-image: FAILED: step ${step_name:-start}, line $3: $2 (exit $1)"; fi; }
trap 'failed $? "$BASH_COMMAND" $LINENO' ERR

started=$SECONDS
step_started=$SECONDS
step_name=""
step() {
  [ -z "$step_name" ] || say "$step_name: done in $((SECONDS - step_started)) s"
  step_name=$1
  step_started=$SECONDS
  echo
  say "== $step_name"
}

# ------------------------------------------------------------------------------------
step "engine"
engine_flags=()
build_flags=()
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
else
  if [ "$(id -u)" -ne 0 ]; then
    say "skipped: no Docker daemon, and installing podman needs root"
    exit 77
  fi
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || { say "skipped: no Docker daemon and no apt-get for podman"; exit 77; }
    # dnsname: containers of a compose network find each other by service name; catatonit:
    # compose's `init: true`.
    say "installing podman, runc, debootstrap, podman-compose"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      podman runc debootstrap podman-compose golang-github-containernetworking-plugin-dnsname \
      catatonit >"$work/apt.log" 2>&1 \
      || { show_tail "$work/apt.log" 20; die "apt-get install podman failed ($work/apt.log)"; }
  fi
  engine=podman
  # crun refuses these machines' hybrid cgroup layout, and their sandbox cannot raise
  # limits: runc, cgroupfs and ulimits no higher than the host's. In a file of this run's
  # own, so that podman-compose's podman gets them too and the host's configuration stays.
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] || [ "$nofile" -gt 4096 ] && nofile=4096
  [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ] && nproc=4096
  cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  export CONTAINERS_CONF=$work/containers.conf
  engine_flags=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
  # Docker's image format: the OCI format has no SHELL and no HEALTHCHECK, and podman
  # would drop both from the Dockerfile.
  build_flags=(--format docker)
fi
say "engine: $engine ($("$engine" --version))"
run_flags=("${engine_flags[@]}")
# podman runs health checks from systemd timers. Without systemd it says so on every `run`
# ("unable to get systemd connection to add healthchecks") and runs the container anyway:
# those lines are dropped, and `podman healthcheck run` runs the image's check when asked.
if [ "$engine" = podman ]; then
  podman() { command podman "$@" 2> >(grep -v "unable to get systemd connection" >&2); }
fi
# The image's HEALTHCHECK in a running container, as the engine runs it.
healthcheck() {
  if [ "$engine" = podman ]; then podman healthcheck run "$1"
  else docker exec "$1" quorum-healthcheck
  fi
}
# Waits up to 60 s for container $1's health check to pass; $2 names it in the failure.
wait_healthy() {
  local deadline=$((SECONDS + 60))
  until healthcheck "$1" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$2's health check did not pass within 60 s"
    sleep 0.5
  done
}

compose_down() { :; }
cleanup() {
  [ "${KEEP:-0}" = 1 ] && { say "KEEP=1: containers and volumes left"; return; }
  compose_down
  "$engine" rm -f "$prefix-coordinator" "$prefix-worker-0" "$prefix-worker-1" >/dev/null 2>&1 || true
  "$engine" volume rm -f "$prefix-keys" "$prefix-runs" >/dev/null 2>&1 || true
  rm -rf "$work/compose"
}
trap cleanup EXIT
cleanup

# ------------------------------------------------------------------------------------
step "bases"
image_exists() { "$engine" image inspect "$1" >/dev/null 2>&1; }
if image_exists "$debian_image"; then
  say "$debian_image: already made"
else
  # The host's Debian mirror (no registry, but Debian's archive answers); its apt sources
  # go into the image too, so that it sees the same suites as the host.
  mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  rootfs=$work/debian-rootfs
  rm -rf "$rootfs"
  say "debootstrap --variant=minbase bookworm (mirror: ${mirror:-the default})"
  # shellcheck disable=SC2086  # an empty mirror is no argument
  debootstrap --variant=minbase bookworm "$rootfs" ${mirror} >"$work/debootstrap.log" 2>&1 \
    || { show_tail "$work/debootstrap.log" 20; die "debootstrap failed ($work/debootstrap.log)"; }
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    rm -f "$rootfs/etc/apt/sources.list"
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "$engine" import --quiet - "$debian_image" >/dev/null
  rm -rf "$rootfs"
  say "$debian_image: made (stands in for debian:bookworm-slim)"
fi

# The toolchain that built the project: usr/bin/swift under its root.
swift_usr=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
[ -x "$swift_usr/bin/swift" ] || die "no Swift toolchain found from 'command -v swift'"
swift_version=$("$swift_usr/bin/swift" --version 2>&1 | sed -n 's/.*Swift version \([0-9.]*\).*/\1/p' | head -n 1)
swift_image=localhost/quorum-check/swift:${swift_version:-unknown}-bookworm
if image_exists "$swift_image"; then
  say "$swift_image: already made"
else
  # What the official Swift image installs for its toolchain to run, on Debian 12.
  cat >"$work/Containerfile.swift" <<EOF
FROM $debian_image
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      binutils ca-certificates gcc git libc6-dev libcurl4 libedit2 libncurses6 libpython3.11 \\
      libsqlite3-0 libstdc++-12-dev libxml2 pkg-config tzdata zlib1g-dev \\
    && rm -rf /var/lib/apt/lists/*
ENV PATH=$swift_usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
  "$engine" build "${engine_flags[@]}" "${build_flags[@]}" -t "$swift_image" -f "$work/Containerfile.swift" "$work" \
    >"$work/swift-image.log" 2>&1 || { show_tail "$work/swift-image.log" 20; die "the Swift stand-in did not build ($work/swift-image.log)"; }
  say "$swift_image: made (stands in for swift:$swift_version-bookworm, the toolchain mounted from $swift_usr)"
fi
"$engine" run --rm "${run_flags[@]}" -v "$swift_usr:$swift_usr:ro" "$swift_image" swift --version 2>&1 | head -n 1

# ------------------------------------------------------------------------------------
step "build"
# SwiftPM resolves the dependencies with git; where the host's git configuration redirects
# them (url.<base>.insteadOf) to folders, the build sees that configuration and those
# folders, read-only.
build_volumes=(--volume "$swift_usr:$swift_usr:ro")
if [ -f /etc/gitconfig ]; then
  build_volumes+=(--volume /etc/gitconfig:/etc/gitconfig:ro)
  while read -r key _; do
    base=${key#url.}
    base=${base%.insteadof}
    [ -d "$base" ] && build_volumes+=(--volume "$base:$base:ro")
  done < <(git config --system --get-regexp '^url\..*\.insteadof$' 2>/dev/null | sort -u)
fi
# A CA bundle for pip behind a TLS-inspecting proxy, when the CUDA wheels are wanted.
# Mounted beside the image's own bundle, which its ca-certificates package rewrites.
pip_cert=""
if [ -n "${PIP_CERT:-}" ]; then
  pip_cert=/etc/pip-ca.crt
  build_volumes+=(--volume "$PIP_CERT:$pip_cert:ro")
fi
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The build stage needs about 1.5 GB beside the image's 0.5 GB: say so before a build dies
# half-way with the engine's own message.
storage=$("$engine" info --format '{{.Store.GraphRoot}}' 2>/dev/null || echo /var/lib/containers)
[ -d "$storage" ] || storage=/var
free_kib=$(df -Pk "$storage" | awk 'NR == 2 { print $4 }')
[ "${free_kib:-0}" -ge $((3 * 1024 * 1024)) ] \
  || die "$((free_kib / 1024)) MiB free under $storage; the image build needs 3 GiB (podman image prune removes unused images)"
previous_image=$("$engine" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
build_image() {
  "$engine" build "${engine_flags[@]}" "${build_flags[@]}" "${build_volumes[@]}" \
    --build-arg BUILD_IMAGE="$swift_image" \
    --build-arg RUNTIME_IMAGE="$debian_image" \
    --build-arg CUDA_WHEELS="${CUDA_WHEELS:-}" \
    --build-arg PIP_CERT="$pip_cert" \
    --build-arg QUORUM_REVISION="$revision" \
    "$@" -t "$image" . >"$work/build.log" 2>&1
}
# A second try without the layer cache: a cache left by an interrupted earlier build is the
# one cause of failure here that a rebuild cures. Its first failure stays in the record.
if ! build_image; then
  show_tail "$work/build.log" 40
  cp "$work/build.log" "$work/build-first-try.log"
  say "the image did not build; trying once more without the layer cache"
  build_image --no-cache || { show_tail "$work/build.log" 40; die "the image did not build ($work/build.log)"; }
fi
# The image this check built last time, now untagged, is this check's to remove.
if [ -n "$previous_image" ] && [ "$previous_image" != "$("$engine" image inspect --format '{{.Id}}' "$image")" ]; then
  "$engine" rmi "$previous_image" >/dev/null 2>&1 || true
fi
# A build whose every layer came from the cache (the same commit built before) prints no
# build lines: say so rather than let an empty grep end the check.
if ! grep -E "build-release: |runtime-deps: every" "$work/build.log" | tail -n 3; then
  say "build: every layer came from the engine's cache ($image $("$engine" image inspect --format '{{.Id}}' "$image" | cut -c1-12))"
fi

# ------------------------------------------------------------------------------------
step "image"
q() { "$engine" run --rm "${run_flags[@]}" "$@"; }
version_started=$(date +%s%N)
version=$(q "$image" --version)
version_ended=$(date +%s%N)
version_ms=$(( (version_ended - version_started) / 1000000 ))
say "quorum --version: $version ($version_ms ms for 'run --rm IMAGE --version')"
user=$(q --entrypoint id "$image" -u)
[ "$user" = 10001 ] || die "the image runs as uid $user, not the non-root 10001"
say "runs as uid $user"
size=$("$engine" image inspect "$image" --format '{{.Size}}')
say "image size: $((size / 1000000)) MB"

set +e
doctor=$(q "$image" doctor 2>&1)
doctor_status=$?
set -e
while IFS= read -r line; do echo "  | $line"; done <<<"$doctor"
# No GPU here: the GPU check fails (exit 1) with the driver's absence in words.
[ "$doctor_status" -eq 1 ] || die "quorum doctor without a GPU exited $doctor_status, not 1"
grep -q "CUDA driver" <<<"$doctor" || die "quorum doctor did not name the CUDA driver's absence"
# The CUDA libraries load without a driver: present with the wheels, named as missing without.
if [ -n "${CUDA_WHEELS:-}" ]; then
  grep -q "^ok *CUDA libs *NVRTC 12\.[0-9]* (/usr/local/cuda/lib64/libnvrtc.so.12), cuBLASLt 12" <<<"$doctor" \
    || die "quorum doctor did not load NVRTC and cuBLASLt from the image's /usr/local/cuda/lib64"
else
  grep -q "^FAILED *CUDA libs *NVRTC not found" <<<"$doctor" \
    || die "quorum doctor in an image without the CUDA wheels did not say that NVRTC is missing"
fi
q "$image" doctor --device cpu >/dev/null || die "quorum doctor --device cpu failed in the image"
say "doctor: no GPU reported (exit 1); --device cpu passes"
q --entrypoint quorum-healthcheck "$image" || die "the health check fails in a container that is not a coordinator"
say "health check without a coordinator: healthy"

# ------------------------------------------------------------------------------------
step "keys"
"$engine" volume create "$prefix-keys" >/dev/null
"$engine" volume create "$prefix-runs" >/dev/null
keys=(-v "$prefix-keys:/keys")
for name in coordinator worker-0 worker-1; do
  q "${keys[@]}" "$image" keys generate "$name" --dir /keys
done
q "${keys[@]}" --entrypoint /bin/sh "$image" -c 'mkdir -p /keys/workers && cp /keys/worker-*.pub /keys/workers/ && ls -l /keys'

# ------------------------------------------------------------------------------------
step "cluster"
# Host networking: the workers reach the coordinator on the loopback, as the containers
# of one pod would; a port of its own.
port=$((20000 + RANDOM % 20000))
status_port=$((port + 1))
runs_path=$("$engine" volume inspect "$prefix-runs" --format '{{.Mountpoint}}')
journal=$runs_path/smoke/journal.jsonl
# --init, as the recipes run it: a process that forwards signals, so that a restart stops
# the coordinator at once.
common=(-d --init "${run_flags[@]}" --network host "${keys[@]}")
start_coordinator() {
  "$engine" run "${common[@]}" --name "$prefix-coordinator" -v "$prefix-runs:/srv/quorum/runs" \
    "$image" coordinator examples/smoke.yaml --bind "tcp://127.0.0.1:$port" \
    --key /keys/coordinator.key --allow /keys/workers --status "127.0.0.1:$status_port" >/dev/null
}
# The workers see an empty tmpfs where the image keeps its data set: they train on the one
# the coordinator serves.
start_worker() {
  "$engine" run "${common[@]}" --name "$prefix-$1" --tmpfs /usr/share/datasets "$image" worker --connect "tcp://127.0.0.1:$port" \
    --name "$1" --key "/keys/$1.key" --server-key /keys/coordinator.pub --threads 1 >/dev/null
}
# Waits up to $2 seconds for a journal line matching $1 (an extended regular expression).
wait_for_journal() {
  local deadline=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ -f "$journal" ] && grep -Eq "$1" "$journal" && return 0
    sleep 0.2
  done
  die "no journal line matching '$1' within $2 s ($journal)"
}
running() { [ "$("$engine" inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }

start_coordinator
wait_healthy "$prefix-coordinator" "the coordinator"
say "coordinator healthy (the image's HEALTHCHECK) at $((SECONDS - step_started)) s"
start_worker worker-0
start_worker worker-1
# worker-1 is killed holding its first task; its lease expires and worker-0 takes the task
# as attempt 2 once its own is stored. The coordinator is restarted as that lease starts:
# its journal has one result stored and one task running.
wait_for_journal '"kind":"leased".*"worker":"worker-1"' 120
"$engine" kill "$prefix-worker-1" >/dev/null
say "worker-1 killed holding a lease at $((SECONDS - step_started)) s"
wait_for_journal '"attempt":2,"kind":"leased".*"worker":"worker-0"' 300
"$engine" restart "$prefix-coordinator" >/dev/null
say "coordinator restarted while worker-0 runs the killed worker's task, at $((SECONDS - step_started)) s"
deadline=$((SECONDS + 300))
while running "$prefix-coordinator"; do
  [ "$SECONDS" -lt "$deadline" ] || die "the experiment did not finish within 300 s after the restart"
  sleep 1
done
coordinator_log=$("$engine" logs "$prefix-coordinator" 2>&1)
exit_code=$("$engine" inspect -f '{{.State.ExitCode}}' "$prefix-coordinator")
[ "$exit_code" = 0 ] || { echo "$coordinator_log" | tail -30 | sed "s/^/  | /"; die "the coordinator exited $exit_code"; }
resumed=$(grep "resuming from" <<<"$coordinator_log") || die "the restarted coordinator did not resume from its journal"
echo "  | $resumed"
grep -q "1 of 2 tasks already stored" <<<"$resumed" \
  || die "the restart did not find one task stored and one running, so it checked no resumption"
say "experiment finished at $((SECONDS - step_started)) s"
fetched=$("$engine" logs "$prefix-worker-0" 2>&1 | grep -m1 "fetched the data set") \
  || die "worker-0, which cannot see the data files, did not fetch the data set from the coordinator"
echo "  | ${fetched}"

# The results, from the host: every task stored once, owned by the image's user, readable.
python3 - "$runs_path/smoke" <<'EOF'
import json, os, struct, sys
run = sys.argv[1]
events = [json.loads(line) for line in open(os.path.join(run, "journal.jsonl"))]
tasks = sorted({e["task"] for e in events if "task" in e})
stored = [e["task"] for e in events if e["kind"] == "stored"]
expired = [e for e in events if e["kind"] not in ("leased", "stored")]
assert sorted(stored) == tasks and len(tasks) == 2, f"stored {stored} of tasks {tasks}"
assert any(e["kind"] == "expired" and e.get("worker") == "worker-1" for e in events), "worker-1's lease never expired"
print(f"  | journal: {len(tasks)} tasks, each stored once; other events: {[e['kind'] for e in expired]}")
for task in tasks:
    variant, fold = task.split("/")
    oof = os.path.join(run, "logits", variant, fold + ".oof.npy")
    with open(oof, "rb") as f:
        assert f.read(6) == b"\x93NUMPY", oof
        f.read(2)
        (length,) = struct.unpack("<H", f.read(2))
        header = f.read(length).decode()
    checkpoint = os.path.join(run, "checkpoints", variant, fold + ".safetensors")
    with open(checkpoint, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        tensors = json.loads(f.read(length))
    for path in (oof, checkpoint):
        assert os.stat(path).st_uid == 10001, f"{path} is owned by uid {os.stat(path).st_uid}"
    print(f"  | {task}: {header.strip()}; {len(tensors) - ('__metadata__' in tensors)} tensors; owned by 10001")
EOF

# ------------------------------------------------------------------------------------
step "compose"
# cluster/compose/compose.yaml as a user runs it, its settings from the environment (as
# from .env): this image, the check's experiment file, keys and run folder of its own, two
# of its four workers. The workers' GPU reservations are ignored by podman-compose, and
# they train on the CPU (--device auto without a GPU).
if [ "$engine" = podman ] && command -v podman-compose >/dev/null; then
  compose_dir=$work/compose
  rm -rf "$compose_dir"
  mkdir -p "$compose_dir/experiments" "$compose_dir/runs" "$compose_dir/data"
  cp examples/smoke.yaml "$compose_dir/experiments/smoke.yaml"
  # The keys of the cluster step, with their owner (the image's user) and modes.
  cp -a "$("$engine" volume inspect "$prefix-keys" --format '{{.Mountpoint}}')" "$compose_dir/keys"
  for i in 2 3; do cp -a "$compose_dir/keys/worker-0.key" "$compose_dir/keys/worker-$i.key"; done
  chown -R 10001:10001 "$compose_dir/runs"
  compose=(podman-compose -p "$prefix" -f cluster/compose/compose.yaml)
  export QUORUM_IMAGE=$image QUORUM_UID=10001 QUORUM_GID=10001 QUORUM_KEYS=$compose_dir/keys \
    QUORUM_RUNS=$compose_dir/runs QUORUM_EXPERIMENTS=$compose_dir/experiments \
    QUORUM_DATA=$compose_dir/data QUORUM_EXPERIMENT=experiments/smoke.yaml QUORUM_STATUS_PORT=$status_port
  compose_down() { "${compose[@]}" down >/dev/null 2>&1 || true; }
  compose_down
  "${compose[@]}" up -d coordinator worker-0 worker-1 >"$work/compose.log" 2>&1 \
    || { show_tail "$work/compose.log" 30; die "podman-compose up failed ($work/compose.log)"; }
  coordinator=${prefix}_coordinator_1
  # The recipe's own health check (its status endpoint), run by the engine.
  wait_healthy "$coordinator" "the compose coordinator"
  say "compose: coordinator healthy (the recipe's health check)"
  deadline=$((SECONDS + 300))
  while running "$coordinator"; do
    [ "$SECONDS" -lt "$deadline" ] || { compose_down; die "the compose experiment did not finish within 300 s"; }
    sleep 1
  done
  exit_code=$("$engine" inspect -f '{{.State.ExitCode}}' "$coordinator")
  "$engine" logs "$coordinator" >"$work/compose-coordinator.log" 2>&1 || true
  compose_down
  [ "$exit_code" = 0 ] || { show_tail "$work/compose-coordinator.log" 30; die "the compose coordinator exited $exit_code"; }
  stored=$(grep -c '"kind":"stored"' "$compose_dir/runs/smoke/journal.jsonl" || true)
  [ "$stored" = 2 ] || die "the compose run stored $stored results, not 2"
  for fold in 0 1; do
    [ -s "$compose_dir/runs/smoke/logits/default/fold$fold.oof.npy" ] || die "compose: fold$fold's logits are missing"
  done
  workers=$(sed -n 's/.*"kind":"leased".*"worker":"\([^"]*\)".*/\1/p' "$compose_dir/runs/smoke/journal.jsonl" | sort -u | tr '\n' ' ')
  say "compose: the recipe's coordinator and workers finished the experiment: 2 results stored, leased to ${workers% }"
else
  say "compose: skipped: podman-compose runs the recipe here; with Docker, run 'docker compose' by hand (docs/deploy.md)"
fi

step "done"
say "all steps passed in $((SECONDS - started)) s"
