"""Fixture ``lsf_env``: the labelled fake LSF commands (tests/fakes/lsf) on PATH.

No real LSF can be installed here; the fake is a test double that says so on stderr
(see tests/fakes/lsf/fakelsf.py).  Each test gets a fresh state directory, and the jobs
the fake started for it are ended when it finishes.
"""

from __future__ import annotations

import json
import os
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
