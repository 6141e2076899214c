"""Shared fixtures: a private throwaway Slurm cluster, started once per test session."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment (with SLURM_CONF) for a private single-node Slurm started for this session.

    The cluster runs under a temp dir, on loopback, as the current user; every Slurm
    client command must get this environment.
    """
    if not shutil.which("slurmctld"):
        pytest.skip("Slurm is not installed (run scripts/setup-machine.sh)")
    cluster_dir = tmp_path_factory.mktemp("slurm")
    port = 20000 + random.randrange(4000) * 4
    env = dict(os.environ, SLURM_TEST_ACCT="jobcomp")
    try:
        subprocess.run(
            [str(SCRIPTS / "private-slurm-start.sh"), str(cluster_dir), str(port)],
            env=env, check=True, capture_output=True, text=True, timeout=120,
        )
        yield dict(os.environ, SLURM_CONF=str(cluster_dir / "slurm.conf"))
    finally:
        subprocess.run([str(SCRIPTS / "private-slurm-stop.sh"), str(cluster_dir)], timeout=120)
