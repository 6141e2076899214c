"""Shared by the adapter tests: a batch system whose jobs never outlive the test."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

import pytest

from hpcpull.lrms.base import BatchJobStatus, BatchSystem

System = TypeVar("System", bound=BatchSystem)


def tracked(system: System) -> Iterator[System]:
    """Yield ``system`` with ``submit``'s output path optional; cancel what it submitted after."""
    submitted: list[str] = []
    real_submit = system.submit

    def submit(script: Path, job_name: str, workdir: Path, output: Optional[Path] = None) -> str:
        job_id = real_submit(script, job_name, workdir, output or workdir / f"{job_name}.out")
        submitted.append(job_id)
        return job_id

    system.submit = submit  # type: ignore[method-assign]
    yield system
    for job_id in submitted:
        system.cancel(job_id)


def settled_slurm_state(env: dict[str, str], job_id: str, wait_s: float = 30.0) -> str:
    """Slurm's state of ``job_id`` (``squeue -t all %T``) once it is no longer COMPLETING.

    A cancelled job shows as COMPLETING until slurmd has reaped its processes (Slurm's
    job_state_string names the COMPLETING flag before the base state), while the job is
    already over for every other purpose."""
    deadline = time.monotonic() + wait_s
    while True:
        state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], env=env,
                               capture_output=True, text=True, timeout=30).stdout.strip()
        if state != "COMPLETING" or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def unique_name(tag: str) -> str:
    return f"hpcpull-test-{tag}-{uuid.uuid4().hex[:8]}"


def wait_for(
    batch: BatchSystem, job_ids: list[str], done: Callable[[BatchJobStatus], bool], wait_s: float = 60.0,
    poll_s: float = 0.2,
) -> dict[str, BatchJobStatus]:
    """Poll bulk_status until every job in job_ids satisfies done; return the last snapshot."""
    deadline = time.monotonic() + wait_s
    while True:
        jobs = batch.bulk_status()
        if all(i in jobs and done(jobs[i]) for i in job_ids):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs {job_ids} not there after {wait_s} s: {[jobs.get(i) for i in job_ids]}")
        time.sleep(poll_s)


def is_terminal(status: BatchJobStatus) -> bool:
    return status.state.is_terminal


def record_commands(batch: BatchSystem, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The argv of every batch command ``batch`` runs from now on (to count status queries)."""
    commands: list[list[str]] = []
    real_run = batch._run

    def recording_run(
        argv: list[str], cwd: Optional[Path] = None, stdin: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        commands.append(argv)
        return real_run(argv, cwd, stdin)

    monkeypatch.setattr(batch, "_run", recording_run)
    return commands
