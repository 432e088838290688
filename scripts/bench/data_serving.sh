#!/usr/bin/env bash
# Time to first task for workers that join at once (issue 15): N workers with empty caches
# fetch the FMNIST-LT-100 data set from the coordinator (data_access: served), against N
# workers that read the files themselves (--shared-data); and the bytes the coordinator
# sent. "Time to first task": from the workers' start to each one's "data ready" (its
# data set loaded, its first task about to train), on one machine over loopback.
#
#   scripts/bench/data_serving.sh
#
# Env: COUNTS ("2 8": workers joining at once), REPEATS (3), QUORUM
# (.build/release/quorum), DATA (/usr/share/datasets/fashion-mnist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

COUNTS=${COUNTS:-2 8}
REPEATS=${REPEATS:-3}
QUORUM=${QUORUM:-.build/release/quorum}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
work=bench-results/data-serving
rm -rf "$work"
mkdir -p "$work"
[ -x "$QUORUM" ] || swift build -c release --product quorum

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT

results=$work/results.md
{
  echo "| workers | data | repeat | first worker ready (s) | last worker ready (s) | bytes sent |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: |"
} >"$results"
for n in $COUNTS; do
  for repeat in $(seq 1 "$REPEATS"); do
    for mode in served shared; do
      run="$work/$mode-$n-$repeat"
      mkdir -p "$run"
      seeds=$(seq -s, 0 $((n - 1)))
      cat >"$run/experiment.yaml" <<YAML
name: serving
run_directory: $run/runs
data: {train: $DATA, long_tail_ratio: 100}
folds: {k: 2, seed: 0}
training: {width: 0.35, epochs: 1}
grid: {seed: [$seeds]}
YAML
      port=$((30000 + RANDOM % 20000))
      status_port=$((port + 1))
      "$QUORUM" coordinator "$run/experiment.yaml" --bind "tcp://127.0.0.1:$port" --status "127.0.0.1:$status_port" >"$run/coordinator.log" 2>&1 &
      pids+=($!)
      # The coordinator is ready once it says where it serves its tasks.
      for _ in $(seq 1 600); do grep -q " tasks on tcp" "$run/coordinator.log" && break; sleep 0.1; done
      flag=()
      [ "$mode" = shared ] && flag=(--shared-data)
      start=$EPOCHREALTIME
      for i in $(seq 1 "$n"); do
        # Each line with the seconds since the workers started.
        "$QUORUM" worker --connect "tcp://127.0.0.1:$port" --name "w$i" --threads 1 --cache "$run/cache-$i" "${flag[@]}" 2>&1 \
          | while IFS= read -r line; do printf '%s\t%s\n' "$(echo "$EPOCHREALTIME - $start" | bc)" "$line"; done >"$run/worker-$i.log" &
        pids+=($!)
      done
      for _ in $(seq 1 1200); do
        ready=$( (grep -l "data ready" "$run"/worker-*.log 2>/dev/null || true) | wc -l)
        [ "$ready" -ge "$n" ] && break
        sleep 0.1
      done
      times=$(for i in $(seq 1 "$n"); do grep -m1 "data ready" "$run/worker-$i.log" | cut -f1; done | sort -n)
      bytes=$(python3 -c "import json, urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:$status_port/status'))['counters']['data_bytes_served'])")
      stop_all
      pkill -9 -f "$run/experiment.yaml" 2>/dev/null || true
      pkill -9 -f "tcp://127.0.0.1:$port" 2>/dev/null || true
      printf '| %d | %s | %d | %.2f | %.2f | %s |\n' "$n" "$mode" "$repeat" "$(echo "$times" | head -1)" "$(echo "$times" | tail -1)" "$bytes" >>"$results"
    done
  done
done
cat "$results"
grep -h "serving the data set" "$work"/served-*/coordinator.log | head -1
