#!/usr/bin/env bash
# The coordinator under load (issue: the cluster): real ZeroMQ sockets on loopback, the
# fsync'd journal and the result store, with in-process workers whose tasks only wait and
# return 1,000 × 10 logits, so the coordinator is what is measured.
#   1. load: 64 workers, 2,000 tasks of zero length: tasks and messages per second;
#   2. scaling: 1, 2, 4, 8 workers, 8 fixed-length tasks each (0.25 s): throughput
#      against 1 worker's × the workers (linear), target ≥ 95 % at 8.
# Prints a markdown table; JSON lines go to bench-results/coordinator/.
#
#   scripts/bench/coordinator.sh
#   REPEATS=5 TASK_SECONDS=0.1 scripts/bench/coordinator.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

QUORUM=${QUORUM:-.build/release/quorum}
REPEATS=${REPEATS:-3}
TASK_SECONDS=${TASK_SECONDS:-0.25}
OUT=${OUT:-bench-results/coordinator}
[ -x "$QUORUM" ] || swift build -c release
mkdir -p "$OUT"
: >"$OUT/load.jsonl"
: >"$OUT/scaling.jsonl"

for _ in $(seq "$REPEATS"); do
  "$QUORUM" bench coordinator --workers 64 --tasks 2000 >>"$OUT/load.jsonl"
  for workers in 1 2 4 8; do
    "$QUORUM" bench coordinator --workers "$workers" --tasks $((8 * workers)) --task-seconds "$TASK_SECONDS" >>"$OUT/scaling.jsonl"
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
load = [json.loads(line) for line in open(f"{out}/load.jsonl")]
print("| load | tasks/s | messages/s | seconds |")
print("| --- | ---: | ---: | ---: |")
for key in ("tasks_per_second", "messages_per_second", "seconds"):
    pass
median = lambda rows, key: statistics.median(r[key] for r in rows)
print(f"| 64 workers, {load[0]['tasks']} zero-length tasks (median of {len(load)}) | {median(load, 'tasks_per_second'):,.0f} "
      f"| {median(load, 'messages_per_second'):,.0f} | {median(load, 'seconds'):.2f} |")
print()
scaling = [json.loads(line) for line in open(f"{out}/scaling.jsonl")]
by_workers = {}
for row in scaling:
    by_workers.setdefault(row["workers"], []).append(row)
one = median(by_workers[1], "tasks_per_second")
print(f"| workers | tasks | task length | tasks/s (median of {len(by_workers[1])}) | efficiency against linear | against the ideal time |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
for workers in sorted(by_workers):
    rows = by_workers[workers]
    rate = median(rows, "tasks_per_second")
    ideal = rows[0]["ideal_seconds"] / median(rows, "seconds")
    print(f"| {workers} | {rows[0]['tasks']} | {rows[0]['task_seconds']} s | {rate:.2f} | {100 * rate / (workers * one):.1f} % | {100 * ideal:.1f} % |")
PY
