"""What the batch system says about a job -> the attributes UPDATE_JOB_INFO prints.

The router copies JobStatus and a fixed list of attributes (JobStartDate,
JobCurrentStartDate, ShadowBday, RemoteWallClockTime, ExitCode, ExitBySignal, ...) from the
copy onto the source job after each UPDATE (src/condor_job_router/VanillaToGrid.cpp,
update_job_status); they are set as the gridmanager sets them for a grid job
(src/condor_gridmanager/basejob.cpp).  Print only on a transition, judged from the routed
copy's JobStatus on stdin, never by counting calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Optional

import classad2

from hpcpull.router.classads import Value, int_attr, number_attr

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5


class Phase(Enum):
    """What hpcpull knows about the batch job right now."""

    UNKNOWN = "unknown"      # no reliable news (LRMS unreachable, cache stale, just submitted)
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"    # the launcher wrote exit_status: authoritative
    FAILED = "failed"        # the job cannot complete: hold it


@dataclass(frozen=True)
class ExitRecord:
    """The launcher's exit_status file (see hpcpull/node/launcher.py)."""

    exit_code: Optional[int]
    exit_signal: Optional[int]
    start: float
    end: float
    wall_s: float
    user_cpu_s: float
    sys_cpu_s: float
    max_rss_kb: int

    @classmethod
    def from_dict(cls, data: dict) -> ExitRecord:
        code, signal = data.get("exit_code"), data.get("exit_signal")
        if (code is None) == (signal is None):
            raise ValueError("exit_status must hold exactly one of exit_code and exit_signal")
        return cls(
            exit_code=None if code is None else int(code),
            exit_signal=None if signal is None else int(signal),
            start=float(data["start"]),
            end=float(data["end"]),
            wall_s=float(data.get("wall_s", 0.0)),
            user_cpu_s=float(data.get("user_cpu_s", 0.0)),
            sys_cpu_s=float(data.get("sys_cpu_s", 0.0)),
            max_rss_kb=int(data.get("max_rss_kb", 0)),
        )


@dataclass(frozen=True)
class Hold:
    """Why a job is held: HoldReason, HoldReasonCode, HoldReasonSubCode."""

    reason: str
    code: int = 0
    subcode: int = 0


@dataclass(frozen=True)
class Observation:
    """One look at the batch job; ``exit`` with FAILED: the payload exited, yet the job failed."""

    phase: Phase
    start: Optional[float] = None
    exit: Optional[ExitRecord] = None
    hold: Optional[Hold] = None


def _wall_before_this_run(copy: classad2.ClassAd) -> float:
    """Wall time of earlier runs: the copy's own total, or what the source had when routed.

    The router *replaces* the source's RemoteWallClockTime with the copy's, so every
    value printed is cumulative (over requeues and over earlier routings).
    """
    if "RemoteWallClockTime" in copy:
        return number_attr(copy, "RemoteWallClockTime")
    return number_attr(copy, "HpcPullPriorWallClock")


def _this_run(copy: classad2.ClassAd, until: float) -> float:
    began = number_attr(copy, "ShadowBday") or number_attr(copy, "JobCurrentStartDate")
    return max(0.0, until - began) if began else 0.0


def running_set(copy: classad2.ClassAd, start: float) -> dict[str, Value]:
    """Idle/held -> running: a new run interval (the source gets an execute event)."""
    when = int(start)
    updates: dict[str, Value] = {
        "JobStatus": RUNNING,
        "EnteredCurrentStatus": when,
        "ShadowBday": when,
        "JobCurrentStartDate": when,
        "NumJobStarts": int_attr(copy, "NumJobStarts") + 1,
        "JobRunCount": int_attr(copy, "JobRunCount") + 1,
    }
    if not number_attr(copy, "JobStartDate"):
        updates["JobStartDate"] = when
    if int_attr(copy, "JobStatus") == HELD:
        updates.update(HoldReason=None, HoldReasonCode=None, HoldReasonSubCode=None)
    return updates


def requeue_set(copy: classad2.ClassAd, now: float) -> dict[str, Value]:
    """Running -> idle (the batch system requeued the job): fold the run into the wall time."""
    return {
        "JobStatus": IDLE,
        "EnteredCurrentStatus": int(now),
        "ShadowBday": None,
        "RemoteWallClockTime": _wall_before_this_run(copy) + _this_run(copy, now),
    }


def completed_set(copy: classad2.ClassAd, record: ExitRecord, now: float) -> dict[str, Value]:
    """Running -> completed, with the launcher's exit status and usage."""
    end = int(record.end)
    run = _this_run(copy, record.end) or record.wall_s
    updates: dict[str, Value] = {
        "JobStatus": COMPLETED,
        "EnteredCurrentStatus": end,
        "CompletionDate": end,
    }
    if record.exit_signal is not None:
        updates.update(ExitBySignal=True, ExitSignal=record.exit_signal)
    else:
        updates.update(ExitCode=record.exit_code, ExitBySignal=False)
    updates.update(
        RemoteWallClockTime=float(round(_wall_before_this_run(copy) + run, 3)),
        RemoteUserCpu=float(round(record.user_cpu_s, 3)),
        RemoteSysCpu=float(round(record.sys_cpu_s, 3)),
        ShadowBday=None,
        MemoryUsage=int(math.ceil(record.max_rss_kb / 1024)),
        ResidentSetSize=record.max_rss_kb,
        JobFinishedHookDone=int(now),
        Managed="ScheddDone",
    )
    return updates


def hold_set(copy: classad2.ClassAd, hold: Hold, now: float, ended: Optional[float] = None) -> dict[str, Value]:
    """Anything -> held with a reason a user can act on.  ``ended``: when the run ended, if
    it did (a job held after its payload exited): the run's wall time stops there."""
    updates: dict[str, Value] = {
        "JobStatus": HELD,
        "EnteredCurrentStatus": int(now),
        "ShadowBday": None,
        "HoldReason": hold.reason,
        "HoldReasonCode": hold.code,
        "HoldReasonSubCode": hold.subcode,
    }
    if int_attr(copy, "JobStatus") == RUNNING:
        updates["RemoteWallClockTime"] = _wall_before_this_run(copy) + _this_run(copy, now if ended is None else ended)
    return updates


def transition(copy: classad2.ClassAd, seen: Observation, now: float) -> dict[str, Value]:
    """The attributes to print for this observation, or {} when nothing changed."""
    status = int_attr(copy, "JobStatus")
    if seen.phase is Phase.PENDING and status == RUNNING:
        return requeue_set(copy, now)
    if seen.phase is Phase.RUNNING and status != RUNNING:
        return running_set(copy, seen.start or now)
    if seen.phase is Phase.FINISHED and seen.exit is not None and status != COMPLETED:
        if status != RUNNING:
            # Report the run first, or the source never gets an execute event.
            return running_set(copy, seen.exit.start)
        return completed_set(copy, seen.exit, now)
    if seen.phase is Phase.FAILED and seen.hold is not None and status != HELD:
        if seen.exit is not None:
            # The payload ran and exited, then the job failed (its outputs are missing):
            # report the run first, as for a completion, then the hold.
            if status != RUNNING:
                return running_set(copy, seen.exit.start)
            return hold_set(copy, seen.hold, now, ended=seen.exit.end)
        return hold_set(copy, seen.hold, now)
    return {}
