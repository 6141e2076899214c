"""Fixture ``sge_env``: a real Grid Engine (Debian gridengine-*) started for the test session.

Debian's Grid Engine is one cell per host ("default" under /var/lib/gridengine, fixed ports
6444/6445, root/sgeadmin-owned), so this starts the system's cell with
scripts/sge-start.sh (configured on first use: root may submit, 1-s scheduling, queues
all.q and long.q, PEs smp and mpi) and at the end of the session stops the daemons it
started, by pid, as scripts/sge-stop.sh does (qmaster's shutdown takes 5-10 s).  Daemons
that were already running (another session's, on a shared machine) are used and left
running.  Every local user can submit to it: hooks of a real HTCondor gateway run qsub as
the job owner and the poller runs qstat/qacct as the condor user.  Install it with
scripts/sge-install.sh.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SGE_ROOT = "/var/lib/gridengine"
SGE_CELL = "default"
# Where the daemons started by scripts/sge-start.sh record their pids (sge_qmaster ignores
# SGE_MASTER_PIDFILE and always writes the first; the script gives execd the second).
PID_FILES = ("/var/spool/gridengine/qmaster/qmaster.pid", "/var/run/gridengine/execd.pid")


def _running_daemons() -> set[int]:
    """Pids of the cell's daemons that are alive now (a zombie is not: PID 1 reaps late here)."""
    alive = set()
    for pid_file in PID_FILES:
        try:
            pid = int(Path(pid_file).read_text().split()[0])
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        if not any(line.startswith("State:") and "Z" in line.split()[1:2] for line in status.splitlines()):
            alive.add(pid)
    return alive


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
    already_running = _running_daemons()
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
        _stop(_running_daemons() - already_running)


def _stop(pids: set[int], grace: float = 15.0) -> None:
    """End the daemons this session started, as scripts/sge-stop.sh does: TERM, then KILL
    after ``grace`` seconds (qmaster's controlled shutdown takes 5-10 s)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pids & _running_daemons():
        time.sleep(0.1)
    for pid in pids & _running_daemons():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
