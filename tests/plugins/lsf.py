"""Fixtures ``lsf_env`` and ``lsf_gateway_env``: the labelled fake LSF commands (tests/fakes/lsf) on PATH.

No real LSF can be installed here; the fake is a test double that says so on stderr
(see tests/fakes/lsf/fakelsf.py).  ``lsf_env`` gives each test a fresh state directory, and
the jobs the fake started for it are ended when it finishes.  ``lsf_gateway_env`` is one
state directory for the session that every local user can use: a real HTCondor gateway
runs bsub as the job owner (the hooks) and bjobs as the condor user (the poller).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Iterator

import pytest

FAKE_LSF_BIN = Path(__file__).resolve().parents[1] / "fakes" / "lsf"


@pytest.fixture
def lsf_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment with the fake LSF first on PATH and HPCPULL_FAKE_LSF_DIR set."""
    state = tmp_path / "fake-lsf-state"
    state.mkdir()
    env = dict(os.environ)
    env["PATH"] = f"{FAKE_LSF_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HPCPULL_FAKE_LSF_DIR"] = str(state)
    try:
        yield env
    finally:
        _end_fake_jobs(state)


@pytest.fixture(scope="session")
def lsf_gateway_env() -> Iterator[dict[str, str]]:
    """The fake LSF for a real gateway: a state directory every local user can write.

    fakelsf.py keeps its state as files in HPCPULL_FAKE_LSF_DIR: bsub (run by the hooks as
    the job owner) writes ``next_id`` and ``jobs/<id>.*`` and locks ``lock``; bjobs (run by
    the poller as the condor user) only reads, but creates ``jobs/`` when it is missing.  So
    the directory and ``jobs/`` are made sticky and world-writable, like /tmp, and ``lock``
    writable by all, before anyone runs a command.  PATH is the fake's directory in front of
    the system directories only: a python3 under root's home is not usable by other users.
    """
    from hpcpull.testing.personal_pool import SYSTEM_PATH, world_readable_dir

    root = world_readable_dir("hpcpull-fake-lsf-")
    state = root / "state"
    (state / "jobs").mkdir(parents=True)
    for path in (state, state / "jobs"):
        path.chmod(0o1777)
    lock = state / "lock"
    lock.touch()
    lock.chmod(0o666)
    env = dict(os.environ, PATH=f"{FAKE_LSF_BIN}{os.pathsep}{SYSTEM_PATH}", HPCPULL_FAKE_LSF_DIR=str(state))
    try:
        yield env
    finally:
        _end_fake_jobs(state)
        shutil.rmtree(root, ignore_errors=True)


def _end_fake_jobs(state: Path) -> None:
    """Kill what the fake started for this test and did not finish: job process groups,
    then their supervisors (a finished job's supervisor has exited; its pid may be reused)."""
    for record_file in (state / "jobs").glob("*.json"):
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            continue
        if record.get("pgid"):
            _quietly(os.killpg, record["pgid"])
        if record.get("supervisor_pid") and record.get("stat") not in ("DONE", "EXIT"):
            _quietly(os.kill, record["supervisor_pid"])  # still waiting or running: alive


def _quietly(kill, target: int) -> None:  # type: ignore[no-untyped-def]
    try:
        kill(target, signal.SIGKILL)
    except OSError:
        pass  # already gone
