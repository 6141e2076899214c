#!/bin/bash
# Install Debian's Torque/PBS-compatible wrappers for Slurm (package slurm-wlm-torque:
# qsub/qstat/qdel/qhold/qrls/pbsnodes, pure perl) under PREFIX, WITHOUT installing the
# package: it Conflicts with gridengine-client (both ship /usr/bin/qsub ...), which the
# Grid Engine tests need on the same machine. Run as root; idempotent and quiet.
#   usage: torque-wrappers-install.sh [PREFIX]      (default /opt/hpcpull-torque)
# Afterwards: PATH=PREFIX/usr/bin:$PATH qsub ...   (with SLURM_CONF set for the cluster)
set -euo pipefail
PREFIX=$(realpath -m "${1:-/opt/hpcpull-torque}")
BIN="$PREFIX/usr/bin"

# Slurm's own clients must be there: the wrappers call them (and the perl API links libslurm).
need_apt=
for b in sbatch salloc srun squeue scontrol scancel; do
  command -v "$b" >/dev/null || need_apt=1
done
# the wrappers' perl modules (Slurm.pm, Slurmdb.pm, Switch.pm)
for p in libslurm-perl libslurmdb-perl libswitch-perl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_apt=1
done
if [ -n "$need_apt" ]; then
  # quiet, but show apt's output when it fails
  log=$( { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
             --no-install-recommends slurm-client libslurm-perl libslurmdb-perl libswitch-perl; } 2>&1 ) \
    || { printf '%s\n' "$log" >&2; exit 1; }
fi

# Unpack the wrappers (once; again if the package version changed).
want=$(dpkg-query -W -f='${Version}' slurm-client)
have=$(cat "$PREFIX/.slurm-wlm-torque-version" 2>/dev/null || true)
if [ "$want" != "$have" ] || [ ! -x "$BIN/qsub" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # same version as the installed Slurm: the wrappers use its perl API (libslurm-perl)
  if ! (cd "$tmp" && apt-get download -qq "slurm-wlm-torque=$want" >/dev/null 2>&1); then
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    (cd "$tmp" && apt-get download -qq "slurm-wlm-torque=$want" >/dev/null)
  fi
  mkdir -p "$PREFIX"
  dpkg-deb -x "$tmp"/slurm-wlm-torque_*.deb "$PREFIX"
  echo "$want" > "$PREFIX/.slurm-wlm-torque-version"
fi

# The wrappers run "${FindBin::Bin}/sbatch" etc.: Slurm's clients must sit next to them.
# (Look them up on PATH without BIN itself, which may already be first on PATH.)
real_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN" | paste -sd: -)
for b in sbatch salloc srun squeue scontrol scancel; do
  target=$(PATH="$real_path" command -v "$b")
  ln -sfn "$target" "$BIN/$b"
done
# Check the perl modules are found (loading Slurm.pm itself needs a reachable slurm.conf).
perl -MSwitch -e 'for my $m ("Slurm.pm", "Slurmdb.pm") {
    grep({ -f "$_/$m" } @INC) or die "perl module $m not found\n" }' \
  || { echo "torque wrappers under $PREFIX cannot run" >&2; exit 1; }
