#!/bin/bash
# Stop sge_execd and sge_qmaster started by sge-start.sh: TERM, up to 15 s grace, KILL.
# qmaster takes ~5-10 s for its "controlled shutdown".  Safe to call twice or after a
# failed start.  Jobs still queued stay spooled for the next start; running ones are lost
# with execd (the tests delete their jobs first).
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
# running = exists and is not a zombie (PID 1 here reaps late; kill -0 succeeds on zombies)
running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
pids=
for f in /var/run/gridengine/execd.pid /var/spool/gridengine/qmaster/qmaster.pid; do
  p=$(cat "$f" 2>/dev/null) && [ -n "$p" ] && running "$p" && pids="$pids $p"
done
[ -n "$pids" ] || exit 0
# shellcheck disable=SC2086
kill -TERM $pids 2>/dev/null
for _ in $(seq 1 150); do
  left=; for p in $pids; do running "$p" && left="$left $p"; done
  [ -z "$left" ] && exit 0
  sleep 0.1
done
# shellcheck disable=SC2086
kill -KILL $left 2>/dev/null
exit 0
