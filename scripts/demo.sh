#!/bin/bash
# The demo: one ordinary HTCondor job, submitted with condor_submit by an ordinary user,
# routed by the stock condor_job_router of a personal HTCondor pool through hpcpull's hooks
# into a private throwaway Slurm, and back.  Run as root from a checkout:
#   bash scripts/demo.sh [WORKDIR]          (default WORKDIR: ./demo-output)
# It installs Slurm (Debian packages) if missing and hpcpull as the README's Install section
# says (a venv of the system python3 under $HPCPULL_PREFIX, default /opt/hpcpull), starts the
# Slurm and the pool, and stops both again by pid, also on failure or Ctrl-C.  Where no
# HTCondor is found (HPCPULL_CONDOR_RELEASE, condor_master on PATH, or the archive beside the
# checkout), one line says so and the job goes through the job router simulation instead.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
work=$(realpath -m "${1:-$PWD/demo-output}")
prefix=${HPCPULL_PREFIX:-/opt/hpcpull}
started=$SECONDS

if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo.sh: run me as root (it installs packages, starts a Slurm and an HTCondor pool)" >&2
  exit 2
fi

# running = exists and is not a zombie (PID 1 may reap a daemon late)
running() { [ -r /proc/"$1"/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/"$1"/status; }
cluster=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  # The pool, should the demo's Python have died without stopping it: by its master's pid.
  if [ -f "$work/.demo-pool" ]; then
    local pidfile base pid
    { read -r pidfile; read -r base; } < "$work/.demo-pool"
    pid=$(awk 'NR == 1 {print $1}' "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = condor_master ]; then
      kill -QUIT "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do running "$pid" || break; sleep 0.2; done
      running "$pid" && kill -KILL "$pid" 2>/dev/null
      echo "== The pool's condor_master (pid $pid) is stopped"
    fi
    case "$base" in /var/tmp/hpcpull-demo-*) rm -rf "$base" ;; esac
    rm -f "$work/.demo-pool"
  fi
  if [ -n "$cluster" ]; then
    bash scripts/private-slurm-stop.sh "$cluster/slurm" --rm
    rm -rf "$cluster"
    echo "== The private Slurm is stopped"
  fi
  echo "== Demo finished in $((SECONDS - started)) s (exit $rc); files in $work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "== 0. Installing what the demo needs"
if ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  echo "   apt-get install slurmctld slurmd slurm-client munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
fi
if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "   apt-get install python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
echo "   hpcpull, as the README's Install section says:"
echo "     /usr/bin/python3 -m venv $prefix && $prefix/bin/pip install $checkout && chmod -R a+rX $prefix"
# hpcpull.testing.personal_pool.install_hpcpull runs exactly these steps (from a copy of the
# checkout, which stays clean); the lock keeps two demos from installing at the same time.
mkdir -p "$(dirname "$prefix")"
flock /tmp/hpcpull-demo-install.lock env PYTHONPATH="$checkout" /usr/bin/python3 -c '
import sys
from pathlib import Path
from hpcpull.testing.personal_pool import install_hpcpull
install_hpcpull(Path(sys.argv[1]))
' "$prefix"
echo "   installed: $("$prefix/bin/python" -c 'import hpcpull; print("hpcpull", hpcpull.__version__)') in $prefix"

rm -rf "$work" && mkdir -p "$work"
# The job owner's hooks run Slurm's commands too: the cluster lives where every user can
# reach its slurm.conf and munge socket.
cluster=$(mktemp -d /var/tmp/hpcpull-demo-slurm.XXXXXX)
chmod 755 "$cluster"
echo "== 0. Starting a private Slurm in $cluster/slurm"
eval "$(bash scripts/private-slurm-start.sh "$cluster/slurm")"
sinfo | sed 's/^/   /'
echo
# The checkout's code drives the demo (hpcpull.testing finds the HTCondor archive beside it);
# the hooks run from the installed venv ($prefix/bin), as on a real gateway.
PYTHONPATH="$checkout" "$prefix/bin/python" -m hpcpull.admin.demo --workdir "$work" --bin-dir "$prefix/bin"
