"""Fixture ``sge_env``: a real Grid Engine (Debian gridengine-*) started for the test session.

Debian's Grid Engine is one cell per host ("default" under /var/lib/gridengine, fixed ports
6444/6445, root/sgeadmin-owned), so this starts the system's cell with
scripts/sge-start.sh (configured on first use: root may submit, 1-s scheduling, queues
all.q and long.q, PEs smp and mpi) and stops it with scripts/sge-stop.sh at the end of the
session (qmaster's shutdown takes 5-10 s).  Install it with scripts/sge-install.sh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SGE_ROOT = "/var/lib/gridengine"
SGE_CELL = "default"


def _unavailable(reason: str) -> None:
    """Skip; but in CI (CI=true) a Grid Engine that is installed must start: fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"Grid Engine: {reason}")
    pytest.skip(f"Grid Engine: {reason}")


@pytest.fixture(scope="session")
def sge_env() -> Iterator[dict[str, str]]:
    """Environment (SGE_ROOT, SGE_CELL) for the host's Grid Engine cell, running for this session."""
    if not (shutil.which("qsub") and Path("/usr/sbin/sge_qmaster").exists() and Path(SGE_ROOT).is_dir()):
        pytest.skip("Grid Engine is not installed (run scripts/sge-install.sh as root)")
    if os.geteuid() != 0:
        pytest.skip("Grid Engine: starting the host's cell needs root")
    env = dict(os.environ, SGE_ROOT=SGE_ROOT, SGE_CELL=SGE_CELL)
    try:
        try:
            proc = subprocess.run(
                [str(SCRIPTS / "sge-start.sh")], env=env, capture_output=True, text=True, timeout=120,
            )
        except subprocess.TimeoutExpired:
            _unavailable("scripts/sge-start.sh did not finish within 120 s")
        if proc.returncode != 0:
            _unavailable(f"scripts/sge-start.sh failed (rc={proc.returncode}): {proc.stderr.strip()[-2000:]}")
        yield env
    finally:
        subprocess.run([str(SCRIPTS / "sge-stop.sh")], env=env, capture_output=True, timeout=60)
