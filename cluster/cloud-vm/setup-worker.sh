#!/usr/bin/env bash
# Turns a fresh Ubuntu GPU VM (22.04 or 24.04) into Quorum workers: one container per GPU,
# connected to the coordinator, restarted by Docker after a crash or a reboot.
#
#   sudo ./setup-worker.sh            settings from /etc/quorum/worker.env (cloud-init.yaml
#                                     writes it) and the environment (which wins)
#
# Steps, each skipped when already done (running it again is safe and quick):
#   1. the NVIDIA driver: nvidia-smi must list the GPUs. QUORUM_INSTALL_DRIVER=yes installs
#      Ubuntu's recommended server driver (ubuntu-drivers), arranges for this script to run
#      again at boot, and reboots.
#   2. Docker (Ubuntu's engine, through its compose plugin) and the NVIDIA Container Toolkit, Docker configured to
#      use it.
#   3. The image (docker pull).
#   4. The keys in QUORUM_KEYS (/etc/quorum/keys): worker.key, this machine's secret key
#      (from `quorum keys generate`, or generated here with QUORUM_GENERATE_KEY=yes), and
#      coordinator.pub; the secret key made readable by the image's user only.
#   5. `quorum doctor` in the image on the first GPU, then a container per GPU,
#      quorum-worker-N, named NAME-gpuN, --restart unless-stopped; containers of GPUs no
#      longer wanted are removed.
#
# Settings:
#   QUORUM_COORDINATOR    tcp://HOST:5555, the coordinator (required)
#   QUORUM_IMAGE          the Quorum image, e.g. registry.example.com/quorum:latest
#                         (required; `docker login` first if the registry needs it)
#   QUORUM_WORKER_NAME    the prefix of this machine's worker names (default: host name)
#   QUORUM_GPUS           "all" (default) or GPU indices, e.g. "0 1"
#   QUORUM_KEYS           the key folder (default /etc/quorum/keys)
#   QUORUM_DATA           a host folder mounted read-only at /data (optional)
#   QUORUM_UID            the image's user id (default 10001, the Dockerfile's)
#   QUORUM_DOCTOR         "warn" (default: print doctor's findings and go on; the coordinator
#                         may not be up yet) or "require" (stop on them)
#   QUORUM_INSTALL_DRIVER "no" (default) or "yes"
#   QUORUM_GENERATE_KEY   "no" (default) or "yes": without a worker.key, make the pair here
#                         and print the public key for the coordinator's allow-list
#   NVIDIA_CTK_REPO       the base address of NVIDIA's apt repository for the NVIDIA
#                         Container Toolkit (NVIDIA's install guide names it); needed only
#                         where the configured apt sources have no nvidia-container-toolkit
#
# Exit status: 0 the workers run; 1 something is missing or wrong (the message says what);
# 3 a driver was installed and the machine reboots (the script runs again at boot).
set -euo pipefail

# The file's settings, then the environment's, which win.
config=${QUORUM_WORKER_ENV:-/etc/quorum/worker.env}
if [ -f "$config" ]; then
  environment=$(export -p | grep -E '^declare -x (QUORUM_[A-Z_]*|NVIDIA_CTK_REPO)=' || true)
  # shellcheck disable=SC1090  # the file is the user's
  . "$config"
  eval "$environment"
fi

coordinator=${QUORUM_COORDINATOR:-}
image=${QUORUM_IMAGE:-}
worker_name=${QUORUM_WORKER_NAME:-$(hostname -s)}
gpus_wanted=${QUORUM_GPUS:-all}
keys=${QUORUM_KEYS:-/etc/quorum/keys}
data=${QUORUM_DATA:-}
uid=${QUORUM_UID:-10001}
doctor_mode=${QUORUM_DOCTOR:-warn}
install_driver=${QUORUM_INSTALL_DRIVER:-no}
generate_key=${QUORUM_GENERATE_KEY:-no}
self=$(readlink -f "$0")
state=${QUORUM_STATE:-/var/lib/quorum}
boot_unit=/etc/systemd/system/quorum-setup-worker.service

log() { echo "setup-worker: $*"; }
die() { echo "setup-worker: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
[ -n "$coordinator" ] || die "QUORUM_COORDINATOR is not set (tcp://HOST:5555), in $config or the environment"
[ -n "$image" ] || die "QUORUM_IMAGE is not set, in $config or the environment"
case "$coordinator" in
  *REPLACE*) die "QUORUM_COORDINATOR still holds cloud-init.yaml's placeholder: set it in $config" ;;
  tcp://*:*) ;;
  *) die "QUORUM_COORDINATOR must look like tcp://HOST:5555, not '$coordinator'" ;;
esac
case "$doctor_mode" in warn|require) ;; *) die "QUORUM_DOCTOR is warn or require, not '$doctor_mode'" ;; esac
mkdir -p "$state"

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
}
has_candidate() {
  local candidate
  candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

# --- 1. The NVIDIA driver ----------------------------------------------------------------
if nvidia-smi -L >/dev/null 2>&1; then
  log "driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1), $(nvidia-smi -L | wc -l) GPU(s)"
elif [ "$install_driver" = yes ]; then
  log "driver: none working; installing Ubuntu's recommended server (GPGPU) driver"
  apt_update
  apt-get install -y -qq ubuntu-drivers-common
  version=$(ubuntu-drivers list --gpgpu 2>/dev/null \
    | sed -n 's/^nvidia-driver-\([0-9]*\)-server.*/\1/p' | sort -n | tail -n 1)
  ubuntu-drivers install --gpgpu
  if [ -n "$version" ]; then
    apt-get install -y -qq "nvidia-utils-$version-server"   # nvidia-smi
  fi
  # Run again at boot, when the driver is loaded; the unit goes away once setup is done.
  cat >"$boot_unit" <<EOF
[Unit]
Description=Quorum worker setup (after a driver install)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=$self

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable quorum-setup-worker.service
  log "driver installed; rebooting, setup goes on at boot"
  systemctl reboot
  exit 3
else
  die "nvidia-smi finds no GPU: this VM needs the NVIDIA driver. Use a GPU image that has it, or set QUORUM_INSTALL_DRIVER=yes (installs Ubuntu's server driver and reboots)"
fi

# --- 2. Docker and the NVIDIA Container Toolkit ------------------------------------------
if ! command -v docker >/dev/null; then
  log "docker: installing Ubuntu's Docker engine (docker-compose-v2 depends on it)"
  apt_update
  apt-get install -y -qq docker-compose-v2
fi
systemctl enable --now docker >/dev/null 2>&1 || true
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (systemctl status docker)"

if ! command -v nvidia-ctk >/dev/null; then
  apt_update
  if ! has_candidate nvidia-container-toolkit; then
    [ -n "${NVIDIA_CTK_REPO:-}" ] || die "apt knows no nvidia-container-toolkit here. Set NVIDIA_CTK_REPO to the repository base address from NVIDIA's 'Installing the NVIDIA Container Toolkit' guide (or add that repository yourself) and run this again"
    log "nvidia-container-toolkit: adding NVIDIA's apt repository"
    apt-get install -y -qq ca-certificates curl gnupg
    curl -fsSL "$NVIDIA_CTK_REPO/gpgkey" \
      | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
    echo "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] $NVIDIA_CTK_REPO/stable/deb/\$(ARCH) /" \
      >/etc/apt/sources.list.d/nvidia-container-toolkit.list
    apt-get update -qq
  fi
  log "nvidia-container-toolkit: installing"
  apt-get install -y -qq nvidia-container-toolkit
fi
daemon_json=/etc/docker/daemon.json
before=$(sha256sum "$daemon_json" 2>/dev/null || true)
nvidia-ctk runtime configure --runtime=docker >/dev/null
if [ "$before" != "$(sha256sum "$daemon_json" 2>/dev/null || true)" ]; then
  log "docker: configured for the NVIDIA runtime; restarting the daemon"
  systemctl restart docker
fi

# --- 3. The image ------------------------------------------------------------------------
if ! docker pull -q "$image" >/dev/null; then
  docker image inspect "$image" >/dev/null 2>&1 \
    || die "cannot pull $image (docker login to its registry first?)"
  log "image: pull failed, using the local copy of $image"
fi
image_id=$(docker image inspect -f '{{.Id}}' "$image")

# --- 4. The keys -------------------------------------------------------------------------
key=$keys/worker.key
server_key=$keys/coordinator.pub
mkdir -p "$keys"
if [ "$generate_key" = yes ] && { [ ! -s "$key" ] || grep -q "REPLACE WITH" "$key"; }; then
  # A key pair made here: the secret key never leaves this machine.
  rm -f "$key" "$keys/worker.pub"
  docker run --rm --user 0:0 -v "$keys:/keys" "$image" keys generate worker --dir /keys >/dev/null
  log "generated $key; add this public key to the coordinator's allow-list: $(cat "$keys/worker.pub")"
fi
for file in "$key" "$server_key"; do
  [ -s "$file" ] || die "$file is missing or empty: copy it here (docs/deploy.md, Keys)"
  if grep -q "REPLACE WITH" "$file"; then
    die "$file still holds cloud-init.yaml's placeholder: put the real key in it"
  fi
done
chown "root:$uid" "$keys"
chmod 0750 "$keys"
chown "$uid:$uid" "$key"
chmod 0600 "$key"
chmod 0644 "$server_key"

# --- 5. quorum doctor, then a worker container per GPU ----------------------------------
if [ "$gpus_wanted" = all ]; then
  mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader | tr -d ' ')
else
  read -r -a gpus <<<"$gpus_wanted"
fi
[ ${#gpus[@]} -gt 0 ] || die "no GPU to run a worker on"

mounts=(-v "$keys:/keys:ro")
if [ -n "$data" ]; then
  [ -d "$data" ] || die "QUORUM_DATA=$data is not a folder"
  mounts+=(-v "$data:/data:ro")
fi
identity=(--key /keys/worker.key --server-key /keys/coordinator.pub)

doctor_status=0
docker run --rm --gpus "device=${gpus[0]}" "${mounts[@]}" "$image" \
  doctor --connect "$coordinator" "${identity[@]}" || doctor_status=$?
case "$doctor_status" in
  0) log "doctor: all is well" ;;
  1) if [ "$doctor_mode" = require ]; then die "quorum doctor found problems (above)"; fi
     log "doctor: found problems (above); starting the workers anyway (QUORUM_DOCTOR=require stops here)" ;;
  *) die "quorum doctor failed with status $doctor_status" ;;
esac

wanted=()
for gpu in "${gpus[@]}"; do
  container=quorum-worker-$gpu
  wanted+=("$container")
  args=(worker --connect "$coordinator" "${identity[@]}" --name "$worker_name-gpu$gpu" --device auto)
  # The container is recreated only when what it runs changes (the keys included: a
  # rotated key takes effect on the next run of this script).
  fingerprint=$( (printf '%s\n' "$image_id" "$gpu" "${mounts[@]}" "${args[@]}"; cat "$key" "$server_key") \
    | sha256sum | cut -c1-16)
  current=$(docker inspect -f '{{index .Config.Labels "quorum.fingerprint"}} {{.State.Running}}' "$container" 2>/dev/null || true)
  if [ "$current" = "$fingerprint true" ]; then
    log "$container: running, unchanged"
    continue
  fi
  docker rm -f -v "$container" >/dev/null 2>&1 || true
  docker run -d --name "$container" --restart unless-stopped --init \
    --gpus "device=$gpu" "${mounts[@]}" \
    --label quorum.role=worker --label "quorum.fingerprint=$fingerprint" \
    --log-opt max-size=50m --log-opt max-file=5 \
    "$image" "${args[@]}" >/dev/null
  log "$container: started on GPU $gpu as $worker_name-gpu$gpu"
done

while read -r container; do
  [ -n "$container" ] || continue
  if ! printf '%s\n' "${wanted[@]}" | grep -qxF "$container"; then
    docker rm -f -v "$container" >/dev/null
    log "$container: removed (its GPU is no longer wanted)"
  fi
done < <(docker ps -a --filter label=quorum.role=worker --format '{{.Names}}')

if [ -f "$boot_unit" ]; then
  systemctl disable quorum-setup-worker.service >/dev/null 2>&1 || true
  rm -f "$boot_unit"
  systemctl daemon-reload
fi
date -u +%FT%TZ >"$state/setup-worker.done"
log "done: ${#wanted[@]} worker(s) connecting to $coordinator (docker logs -f ${wanted[0]})"
