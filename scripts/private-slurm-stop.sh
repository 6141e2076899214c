#!/bin/bash
# Stop the private cluster started by private-slurm-start.sh DIR; remove DIR if --rm.
# Jobs first (slurmstepd and job processes survive a daemon shutdown), then all
# daemons at once: TERM, up to 5 s grace, then KILL. Safe to call twice or after
# a failed start.
D=$(realpath -m "${1:?usage: $0 DIR [--rm]}")
export SLURM_CONF="$D/slurm.conf"
# running = exists and is not a zombie (PID 1 may reap late; kill -0 succeeds on zombies)
running() { [ -r /proc/$1/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status; }
pid_of() { local p; p=$(cat "$D/run/$1.pid" 2>/dev/null) && [ -n "$p" ] && running "$p" && echo "$p"; }

kill_tree() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c"; done
              kill -KILL "$1" 2>/dev/null; }
if ctld=$(pid_of slurmctld); then
  ids=$(timeout 3 squeue -h -o %i 2>/dev/null)      # owner of the cluster = Slurm admin
  [ -n "$ids" ] && timeout 5 scancel --quiet $ids 2>/dev/null
  for i in $(seq 1 100); do                 # wait (max 10 s) until no job is left
    [ -z "$(timeout 3 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1
  done
fi
pids=
for d in slurmctld slurmd slurmdbd mariadb munged; do
  p=$(pid_of $d) && pids="$pids $p"
done
[ -n "$pids" ] && kill -TERM $pids 2>/dev/null
for i in $(seq 1 50); do
  left=; for p in $pids; do running "$p" && left="$left $p"; done
  [ -z "$left" ] && break; sleep 0.1
done
[ -n "${left:-}" ] && kill -KILL $left 2>/dev/null
# safety net (e.g. slurmctld had crashed): a slurmstepd still running for THIS cluster
# (its environment names our SLURM_CONF) is killed with its job processes
for e in /proc/[0-9]*/environ; do
  p=${e#/proc/}; p=${p%/environ}
  [ "$(cat /proc/$p/comm 2>/dev/null)" = slurmstepd ] || continue
  { tr '\0' '\n' < "$e"; } 2>/dev/null | grep -qx "SLURM_CONF=$D/slurm.conf" && kill_tree "$p"
done
[ "${2:-}" = --rm ] && rm -rf "$D"
exit 0
