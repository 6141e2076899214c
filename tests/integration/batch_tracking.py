"""Shared by the adapter tests: a batch system whose jobs never outlive the test."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator, Optional, TypeVar

from hpcpull.lrms.base import BatchSystem

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


def unique_name(tag: str) -> str:
    return f"hpcpull-test-{tag}-{uuid.uuid4().hex[:8]}"
