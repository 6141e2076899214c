"""Fixture ``torque_env``: the Torque-compatible PBS wrappers (slurm-wlm-torque) on the private Slurm.

The wrappers are unpacked (not installed: the package conflicts with gridengine-client) by
``scripts/torque-wrappers-install.sh [PREFIX]``; PREFIX defaults to /opt/hpcpull-torque and
can be changed with the environment variable HPCPULL_TORQUE_PREFIX.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

DEFAULT_PREFIX = "/opt/hpcpull-torque"
WRAPPERS = ("qsub", "qstat", "qdel", "qhold", "qrls")
# the wrappers run "${FindBin::Bin}/sbatch" etc.: Slurm's clients must sit next to them
SLURM_CLIENTS = ("sbatch", "squeue", "scontrol", "scancel")
# the perl modules they load (libslurm-perl, libslurmdb-perl, libswitch-perl)
PERL_CHECK = 'for my $m ("Slurm.pm", "Slurmdb.pm", "Switch.pm") { grep({ -f "$_/$m" } @INC) or die "$m\\n" }'


def torque_bin() -> Path:
    return Path(os.environ.get("HPCPULL_TORQUE_PREFIX", DEFAULT_PREFIX)) / "usr" / "bin"


@pytest.fixture(scope="session")
def torque_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """``slurm_env`` with the wrappers' directory first on PATH: qsub/qstat/... talk to the private Slurm.

    The wrappers are checked first, so that a missing install skips without starting Slurm.
    """
    bindir = torque_bin()
    missing = [name for name in WRAPPERS + SLURM_CLIENTS if not os.access(bindir / name, os.X_OK)]
    if missing:
        pytest.skip(
            f"Torque wrappers not installed under {bindir.parent.parent} (missing {', '.join(missing)}): "
            "run scripts/torque-wrappers-install.sh as root"
        )
    perl = subprocess.run(["perl", "-e", PERL_CHECK], capture_output=True, text=True, timeout=30)
    if perl.returncode != 0:
        pytest.skip(
            f"perl modules for the Torque wrappers missing ({perl.stderr.strip()}): "
            "run scripts/torque-wrappers-install.sh as root"
        )
    slurm_env: dict[str, str] = request.getfixturevalue("slurm_env")
    path = os.pathsep.join([str(bindir), slurm_env.get("PATH", os.defpath)])
    return dict(slurm_env, PATH=path)
