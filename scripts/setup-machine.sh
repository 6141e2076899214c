#!/bin/bash
# Install what hpcpull's demo and tests need on a fresh Debian machine (run as root):
# Slurm + munge from Debian (started privately by the tests, never as a service), the
# Torque-compatible PBS wrappers (unpacked under /opt/hpcpull-torque, not installed: they
# conflict with Grid Engine's qsub), Grid Engine, and hpcpull itself with its test tools.
#   HPCPULL_SKIP_GRIDENGINE=1  leaves Grid Engine out (its tests are then skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
fi
bash scripts/torque-wrappers-install.sh
if [ -z "${HPCPULL_SKIP_GRIDENGINE:-}" ]; then
  bash scripts/sge-install.sh
fi
# The test tools and hpcpull go into the Python that runs the tests.  Debian 12's own
# python3 refuses pip installs (PEP 668, externally-managed-environment); on a machine set
# up only to run these tests, they go into it anyway.  (Gateways install hpcpull into a
# venv: README, Install; the real-router tests and the demo do exactly that.)
pip_install() {
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@" 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --break-system-packages "$@"
}
# setuptools and wheel: the install test builds hpcpull without network isolation.
pip_install "setuptools>=68" wheel
pip_install ".[test]"
# The real-router tests and the demo make venvs with the system python3.
if ! /usr/bin/python3 -c "import ensurepip" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
