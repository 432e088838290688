#!/bin/sh
# The Docker image's HEALTHCHECK (installed as /usr/local/bin/quorum-healthcheck). One image
# serves every role, so the check asks what runs in the container:
#   quorum coordinator ...  healthy when its status endpoint answers (`quorum status`),
#                           on the port of its --status option (default 8750);
#                           --status off: healthy while it runs
#   anything else           healthy while it runs (a worker has no endpoint; it reconnects
#                           to its coordinator by itself)
# QUORUM_STATUS_URL overrides the address asked, e.g. http://127.0.0.1:9000.
set -eu

status=""
found=""
for cmdline in /proc/[0-9]*/cmdline; do
  # The arguments, one a line (NUL-separated in /proc); unreadable entries are skipped.
  args=$(tr '\000' '\n' < "$cmdline" 2>/dev/null) || continue
  program=$(printf '%s\n' "$args" | sed -n 1p)
  role=$(printf '%s\n' "$args" | sed -n 2p)
  case "$program" in quorum|*/quorum) ;; *) continue ;; esac
  [ "$role" = coordinator ] || continue
  found=1
  # The value after --status (or --status=VALUE).
  status=$(printf '%s\n' "$args" | awk '
    previous == "--status" { print; exit }
    /^--status=/ { sub(/^--status=/, ""); print; exit }
    { previous = $0 }')
  break
done

[ -n "$found" ] || exit 0
[ "$status" != off ] || exit 0

if [ -n "${QUORUM_STATUS_URL:-}" ]; then
  url=$QUORUM_STATUS_URL
else
  port=${status##*:}
  case "$port" in '' | *[!0-9]*) port=8750 ;; esac
  url="http://127.0.0.1:$port"
fi
exec quorum status "$url"
