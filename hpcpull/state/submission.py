"""Submit a job's batch script exactly once, whatever happens to the hook processes.

The state file in the job's control directory is the record; an exclusive lock
serialises the hooks that change it.  Before calling the submit command we record a
fresh submission token, which is also the batch job's name.  If a hook dies between
the submit command returning and the id being recorded, the next one finds the token
without an id and asks the batch system for a job of that name (and the job dir for
the launcher's "started" file) before it would ever submit again.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from hpcpull.faults import crash_point
from hpcpull.lrms.base import BatchSystem
from hpcpull.state.atomicfile import write_atomically
from hpcpull.state.jobdir import BATCH_OUTPUT, LOCK, STARTED, STATE, JobDir


@dataclass
class SubmissionState:
    token: Optional[str] = None           # makes the batch job name unique to this submission
    job_name: Optional[str] = None        # the batch job's name (batch_job_name), recorded before submitting
    batch_job_id: Optional[str] = None
    submitted_at: Optional[float] = None
    terminal_seen_at: Optional[float] = None  # first time the LRMS showed it ended w/o exit_status
    missing_since: Optional[float] = None     # first time the LRMS no longer knew it
    cleaned: bool = False
    requeues: int = 0                     # resubmissions after node failure / preemption
    outputs_returned: bool = False        # FINALIZE returned the whole output sandbox
    throttled: bool = False               # the submission waited for a throttle (logged once)
    # The router gave the job back for re-routing (a failed UPDATE push or FINALIZE) while its
    # batch job was alive or had ended: the job dir and batch job wait for the re-route,
    # which adopts them instead of submitting the job a second time.
    parked: bool = False
    # The route and batch system of the batch job: whoever finishes this job dir later (a
    # killed CLEANUP finished by another job's hook, a re-route on another route) cancels
    # the batch job with these, never with the batch system of the route it serves itself.
    route: Optional[str] = None
    lrms: Optional[str] = None
    # UPDATE gave the job back (HPCPULL_MAX_IDLE_TIME) and the schedd has not yet applied
    # both the HpcPullUndoneRoutes edit and the removal of the copy: the reason, until it has.
    give_back: Optional[str] = None
    source_held_seen: bool = False        # UPDATE saw the source job held (its copy's hold mirrored)
    outputs_missing_since: Optional[float] = None  # first time UPDATE missed a promised output


def load_state(job: JobDir) -> SubmissionState:
    try:
        data = json.loads(job.file(STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SubmissionState()
    known = SubmissionState.__dataclass_fields__
    return SubmissionState(**{k: v for k, v in data.items() if k in known})


def save_state(job: JobDir, state: SubmissionState) -> None:
    """Atomic and durable: a crash leaves either the old or the new state, never half."""
    write_atomically(job.file(STATE), json.dumps(asdict(state)))


class JobLock:
    """An exclusive flock on the job's lock file; ``acquired`` is False if it timed out."""

    def __init__(self, job: JobDir, wait: float = 0.0) -> None:
        self.path = job.file(LOCK)
        self.wait = wait
        self.acquired = False
        self._handle = None

    def __enter__(self) -> JobLock:
        self._handle = open(self.path, "a+")
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.acquired = True
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return self
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()


def batch_job_name(source_job_id: str, token: str, route: str = "") -> str:
    """``hpcpull-<route>-<ClusterId.ProcId>-<token>``: a site admin reading squeue sees the
    route and the HTCondor job; the schedd cron poller counts jobs per route from it."""
    return f"hpcpull-{route}-{source_job_id}-{token}" if route else f"hpcpull-{source_job_id}-{token}"


_BATCH_NAME = re.compile(r"hpcpull-([A-Za-z0-9_]+)-[0-9]+\.[0-9]+-[0-9a-f]+")


def route_of_batch_job(name: str) -> Optional[str]:
    """The route in a batch job name (None for other jobs and names without a route)."""
    match = _BATCH_NAME.fullmatch(name)
    return match.group(1) if match else None


def _started_batch_id(job: JobDir) -> Optional[str]:
    try:
        value = json.loads(job.file(STARTED).read_text(encoding="utf-8")).get("batch_job_id")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def recover(job: JobDir, state: SubmissionState, batch: BatchSystem, source_job_id: str) -> bool:
    """After a crash between submit and record: adopt the job if it exists. Caller holds the lock."""
    if state.batch_job_id or not state.token:
        return bool(state.batch_job_id)
    found = batch.find_by_name(state.job_name or batch_job_name(source_job_id, state.token)) or [
        i for i in [_started_batch_id(job)] if i
    ]
    if found:
        state.batch_job_id = found[0]
        state.submitted_at = state.submitted_at or time.time()
        save_state(job, state)
        return True
    return False


def submit_once(job: JobDir, batch: BatchSystem, script: Path, source_job_id: str, route: str = "",
                hook: str = "update") -> str:
    """Return the batch job id, submitting only if no job was ever submitted.

    The caller (the ``hook`` TRANSLATE or UPDATE) holds the JobLock.  Errors from the batch
    system propagate (LrmsError).
    """
    state = load_state(job)
    if recover(job, state, batch, source_job_id):
        assert state.batch_job_id is not None
        return state.batch_job_id
    state.token = os.urandom(6).hex()
    state.job_name = batch_job_name(source_job_id, state.token, route)
    state.route, state.lrms = route or state.route, batch.name
    state.submitted_at = time.time()
    save_state(job, state)  # recorded *before* submitting: see the module docstring
    crash_point(f"{hook}:before-submit")
    job_id = batch.submit(script, state.job_name, job.path, job.file(BATCH_OUTPUT))
    crash_point(f"{hook}:after-submit")
    state.batch_job_id = job_id
    save_state(job, state)
    return job_id
