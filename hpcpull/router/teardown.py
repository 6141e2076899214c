"""Ending a job on the gateway: its batch job stopped, its job directory kept or removed.

Every path that ends a job goes through the same two steps, so that all of them honour
HPCPULL_KEEP_JOB_DIRS and HPCPULL_KEEP_FAILED_JOBS alike and cancel with the batch system
the job was submitted to:

* ``stop_batch_job`` (the caller holds the job lock): cancel the batch job unless it has
  finished, then record the job ``cleaned`` -- nothing may adopt or submit it any more;
* ``dispose`` (after the lock is released): leave the directory (HPCPULL_KEEP_JOB_DIRS),
  move a failed job's aside (HPCPULL_KEEP_FAILED_JOBS), or remove it.

``tear_down`` is lock, stop, dispose in one call, for callers with nothing else to do
under the lock.  CLEANUP takes the lock itself (it decides under it whether to park the
job instead) and calls the two steps.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from hpcpull.config import RouteSettings
from hpcpull.errors import HpcPullError
from hpcpull.faults import crash_point
from hpcpull.lrms.base import BatchSystem
from hpcpull.router.jobstate import ExitRecord
from hpcpull.state import jobdir as jd
from hpcpull.state.submission import JobLock, SubmissionState, load_state, recover, route_of_batch_job, save_state

# The batch system a job's state names (None: it cannot be told).
BatchFor = Callable[[SubmissionState], Optional[BatchSystem]]


class Busy(HpcPullError):
    """Another hook holds the job lock: try again later."""


class UnknownBatchSystem(HpcPullError):
    """The job has a batch job, and nothing tells which batch system it is in."""


@dataclass(frozen=True)
class Keep:
    """What to keep of a job directory once its job has left (HPCPULL_KEEP_* of its route)."""

    job_dirs: bool = False
    failed_jobs: bool = True

    @classmethod
    def of(cls, route: RouteSettings) -> Keep:
        return cls(job_dirs=route.keep_job_dirs, failed_jobs=route.keep_failed_jobs)


@dataclass(frozen=True)
class Ended:
    """What tear_down did: the batch job it cancelled, where a failed job's directory went."""

    cancelled: Optional[str] = None
    kept: Optional[Path] = None


def read_exit_record(job: jd.JobDir) -> Optional[ExitRecord]:
    """The launcher's exit_status; None if there is none (or it is not ours: it is written
    atomically, so an unreadable one is damaged or foreign, and ignored)."""
    try:
        return ExitRecord.from_dict(json.loads(job.file(jd.EXIT_STATUS).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_batch_job(job: jd.JobDir, batch_for: BatchFor, source_job_id: str,
                   crash_after_cancel: str = "") -> Optional[str]:
    """Cancel the job's batch job unless it finished, then record the job cleaned; returns
    the id cancelled.  Caller holds the job lock.  LrmsError or UnknownBatchSystem: nothing
    was recorded, the caller tries again later."""
    state = load_state(job)
    cancelled = None
    if read_exit_record(job) is None and (state.batch_job_id or state.token):
        batch = batch_for(state)
        if batch is None:
            route = state.route or route_of_batch_job(state.job_name or "") or "unknown"
            raise UnknownBatchSystem(
                f"job directory {job.path}: batch job {state.batch_job_id or state.job_name} of route {route}, "
                f"whose batch system is not known; cancel it by hand, then remove the directory")
        recover(job, state, batch, source_job_id)  # a submission interrupted by a crash
        if state.batch_job_id:
            try:
                batch.cancel(state.batch_job_id)
            except ValueError as exc:  # the adapter's own check: not an id of this batch system
                raise UnknownBatchSystem(f"job directory {job.path}: {exc}") from None
            cancelled = state.batch_job_id
    if crash_after_cancel:
        crash_point(crash_after_cancel)
    state.cleaned, state.parked = True, False
    save_state(job, state)
    return cancelled


def dispose(job: jd.JobDir, keep: Keep, failure: str, *, reused: bool = False) -> Optional[Path]:
    """Keep, set aside (a failed job, ``failure`` saying why) or remove the job directory;
    returns where it was set aside.  ``reused``: the job is routed again and its new sandbox
    replaces this directory, so a directory to keep is set aside rather than left in place."""
    if keep.job_dirs and not reused:
        return None
    kept = None
    if keep.job_dirs or (failure and keep.failed_jobs):
        kept = keep_failed(job, failure or "routed again; kept (HPCPULL_KEEP_JOB_DIRS)")
    remove_job_dir(job)
    return kept


def tear_down(job: jd.JobDir, batch_for: BatchFor, source_job_id: str, keep: Keep, failure: str, *,
              lock_wait: float = 0.0, only_if: Optional[Callable[[SubmissionState], bool]] = None,
              reused: bool = False) -> Optional[Ended]:
    """stop_batch_job under the job lock, then dispose.  ``only_if``, asked under the lock:
    whether the job is still to be ended (None returned if not).  Busy if the lock is held."""
    with JobLock(job, wait=lock_wait) as lock:
        if not lock.acquired:
            raise Busy(f"job directory {job.path} is busy in another hook")
        if only_if is not None and not only_if(load_state(job)):
            return None
        cancelled = stop_batch_job(job, batch_for, source_job_id)
    return Ended(cancelled, dispose(job, keep, failure, reused=reused))


def remove_job_dir(job: jd.JobDir) -> None:
    """Remove a job directory, and its <ClusterId> directory once its last proc is gone."""
    shutil.rmtree(job.path, ignore_errors=True)
    try:
        job.path.parent.rmdir()
    except OSError:
        pass


def keep_failed(job: jd.JobDir, reason: str) -> Optional[Path]:
    """Move a failed job's directory aside (same filesystem: a rename) instead of deleting it."""
    target = jd.failed_copy_for(job, time.strftime("%Y%m%dT%H%M%S"))
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        job.path.rename(target)
    except OSError:
        return None
    try:
        (target / jd.CONTROL_DIR / "failed").write_text(reason + "\n", encoding="utf-8")
    except OSError:
        pass
    return target
