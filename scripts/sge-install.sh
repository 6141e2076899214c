#!/bin/bash
# Noninteractive install of Debian's Grid Engine (master + exec + client) on this host, as
# root. Idempotent: does nothing when the three packages are already installed.
# The debconf answers below preseed the packages' questions (cell name, master host,
# whether to configure automatically), so apt-get runs without a prompt.
# NOTE: gridengine-client Conflicts with slurm-wlm-torque (both ship qsub/qstat/qdel), so
# installing this REMOVES an installed slurm-wlm-torque; hpcpull's Torque tests do not
# install that package but unpack it elsewhere, so they are unaffected.
set -euo pipefail
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if installed gridengine-master && installed gridengine-exec && installed gridengine-client; then
  exit 0
fi
H=$(hostname)
for p in gridengine-common gridengine-master gridengine-client gridengine-exec; do
  cat <<SEL
$p shared/gridengineconfig boolean true
$p shared/gridenginecell string default
$p shared/gridenginemaster string $H
SEL
done | debconf-set-selections
if ! apt-cache show gridengine-master >/dev/null 2>&1; then
  apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  gridengine-master gridengine-exec gridengine-client >/dev/null
