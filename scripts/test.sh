#!/bin/bash
# Set up this machine and run hpcpull's whole test suite (lint, unit, golden, real Slurm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-machine.sh
python3 -m ruff check .
python3 -m pytest -ra "$@"
