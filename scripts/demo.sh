#!/bin/bash
# Set up this machine, start a private throwaway Slurm, run one HTCondor job through the
# hpcpull hooks into it and back, then stop Slurm again.
set -euo pipefail
cd "$(dirname "$0")/.."
HPCPULL_SKIP_GRIDENGINE=1 bash scripts/setup-machine.sh  # the demo needs Slurm only
work=${1:-$PWD/demo-output}
rm -rf "$work" && mkdir -p "$work"
cluster=$(mktemp -d /tmp/hpcpull-demo-slurm.XXXXXX)
trap 'bash scripts/private-slurm-stop.sh "$cluster" --rm' EXIT
echo "== 0. Starting a private Slurm in $cluster"
eval "$(bash scripts/private-slurm-start.sh "$cluster")"
sinfo
hpcpull demo --workdir "$work"
