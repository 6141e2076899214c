"""One source job as ``hpcpull status`` sees it: folded from its gateway log lines, then
from what its job directory (or the copy CLEANUP kept) says now."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hpcpull.admin.status.gateway_log import LogEvent
from hpcpull.lrms.base import BatchJobStatus
from hpcpull.router.jobstate import ExitRecord
from hpcpull.state import jobdir as jd
from hpcpull.state.eventlog import Event, Field, new_status
from hpcpull.state.submission import route_of_batch_job

# Order of the phases in the counts table: the life of a job.
PHASES = ("staged", "submitted", "running", "finished", "held", "removed", "cleaned", "unknown")


@dataclass
class JobView:
    """Everything known about one source job, merged from its directory and the log."""

    source_id: str
    copy_id: str = ""
    route: str = ""
    owner: str = ""
    job_dir: Optional[Path] = None
    dir_state: str = "none"  # present | kept | gone | unreadable | none (never had one: refused)
    kept_dir: Optional[Path] = None  # a failed job's directory moved aside by CLEANUP (HPCPULL_KEEP_FAILED_JOBS)
    kept_reason: str = ""
    lrms: str = ""
    batch_job_id: str = ""
    phase: str = "unknown"
    hold_reason: str = ""
    exit_code: Optional[int] = None
    exit_signal: Optional[int] = None
    exit: Optional[ExitRecord] = None
    started: Optional[dict[str, Any]] = None
    submitted_at: Optional[float] = None
    cleaned: bool = False
    cleaned_after: str = ""  # the phase CLEANUP ended: finished, removed, held
    first_seen: Optional[float] = None
    events: list[LogEvent] = field(default_factory=list)
    lrms_status: Optional[BatchJobStatus] = None
    lrms_status_from: str = ""  # "snapshot taken <time>" or "live query"
    lrms_error: str = ""

    @property
    def control(self) -> Optional[Path]:
        """The control directory to read: the job's own, or its kept copy once CLEANUP moved it."""
        where = self.kept_dir if self.dir_state == "kept" else self.job_dir
        return where / jd.CONTROL_DIR if where is not None else None

    @property
    def phase_text(self) -> str:
        """The hpcpull phase for people: ``finished exit 3``, ``held: <reason>``, ``cleaned (exit 0)``."""
        ending = ""
        if self.exit_signal is not None:
            ending = f"signal {self.exit_signal}"
        elif self.exit_code is not None:
            ending = f"exit {self.exit_code}"
        if self.phase == "finished":
            return f"finished {ending}".strip()
        if self.phase == "held":
            return f"held: {self.hold_reason}" if self.hold_reason else "held"
        if self.phase == "cleaned":
            if ending:
                return f"cleaned ({ending})"
            if self.cleaned_after == "removed":
                return "cleaned (removed)"
            if self.cleaned_after == "held":
                return f"cleaned (held: {self.hold_reason})" if self.hold_reason else "cleaned (held)"
            if self.cleaned_after in ("staged", "submitted", "running"):
                # removed or held outside hpcpull before it finished: the log cannot tell which
                return f"cleaned (while {self.cleaned_after})"
        return self.phase

    def ended_at(self) -> Optional[float]:
        """When the payload ended: the exit_status file, else the FINISHED line (whole seconds, so +1)."""
        if self.exit is not None:
            return self.exit.end
        ended = None
        for event in self.events:
            if event.event == Event.ROUTED:
                ended = None  # routed again: an earlier run's end says nothing
            elif event.event == Event.FINISHED:
                ended = event.time + 1
        return ended

    @property
    def lrms_state(self) -> str:
        """The batch system's own word for the job, "-" before submission, "?" when unknown."""
        if self.lrms_status is not None:
            return self.lrms_status.native_state or self.lrms_status.state.value
        return "?" if self.batch_job_id else "-"

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "source_job": self.source_id,
            "routed_copy": self.copy_id or None,
            "route": self.route or None,
            "owner": self.owner or None,
            "job_dir": str(self.job_dir) if self.job_dir else None,
            "job_dir_state": self.dir_state,
            "kept_dir": str(self.kept_dir) if self.kept_dir else None,
            "lrms": self.lrms or None,
            "batch_job_id": self.batch_job_id or None,
            "lrms_state": self.lrms_status.native_state if self.lrms_status else None,
            "lrms_common_state": self.lrms_status.state.value if self.lrms_status else None,
            "lrms_state_from": self.lrms_status_from or None,
            "lrms_note": self.lrms_error or None,
            "phase": self.phase,
            "phase_text": self.phase_text,
            "hold_reason": self.hold_reason or None,
            "exit_code": self.exit_code,
            "exit_signal": self.exit_signal,
            "first_seen": self.first_seen,
            "age_s": None if self.first_seen is None else round(now - self.first_seen, 1),
        }


def apply_event(job: JobView, event: LogEvent, file_owner: str) -> None:
    """Fold one log line into the job: identities first, then the phase it implies."""
    f = event.fields
    job.events.append(event)
    job.first_seen = event.time if job.first_seen is None else min(job.first_seen, event.time)
    job.copy_id = f.get(Field.COPY) or job.copy_id
    job.route = f.get(Field.ROUTE) or job.route
    job.batch_job_id = f.get(Field.BATCH_JOB) or job.batch_job_id
    job.lrms = f.get(Field.LRMS) or job.lrms
    job.owner = f.get(Field.OWNER) or job.owner or file_owner
    if f.get(Field.JOB_DIR):
        job.job_dir = Path(f[Field.JOB_DIR])
    kind = event.event
    if kind == Event.ROUTED:
        # A re-routed job starts over: a new copy, a fresh directory.
        job.phase, job.hold_reason, job.cleaned, job.cleaned_after = "staged", "", False, ""
        job.exit_code = job.exit_signal = None
        job.copy_id = f.get(Field.COPY, "")
        job.batch_job_id = f.get(Field.BATCH_JOB, "")
    elif kind == Event.REFUSED:
        job.phase, job.hold_reason, job.cleaned = "held", f.get(Field.REASON, ""), False
    elif kind == Event.SUBMIT_DEFERRED:
        job.phase = "staged"
    elif kind == Event.SUBMITTED:
        job.phase = "submitted"
    elif kind == Event.HELD:
        job.phase, job.hold_reason = "held", f.get(Field.REASON, "")
    elif kind == Event.STATUS:
        # JobStatus: 1 idle, 2 running, 3 removed, 4 completed, 5 held
        new = new_status(f.get(Field.STATUS, ""))
        if new == "1":
            job.phase = "submitted" if job.batch_job_id else "staged"
        elif new == "2":
            job.phase = "running"
        elif new == "3":
            job.phase = "removed"
        elif new == "4":
            job.phase = "finished"
        elif new == "5":
            job.phase, job.hold_reason = "held", f.get(Field.REASON, "")
    elif kind == Event.REMOVED:
        job.phase = "removed"
    elif kind == Event.FINISHED:
        job.phase = "finished"
        job.exit_code = int_or_none(f.get(Field.EXIT_CODE))
        job.exit_signal = int_or_none(f.get(Field.EXIT_SIGNAL))
    elif kind == Event.CLEANED:
        if f.get(Field.KEPT):
            job.kept_dir = Path(f[Field.KEPT])
        job.cleaned_after = job.phase if job.phase != "cleaned" else job.cleaned_after
        job.phase, job.cleaned = "cleaned", True


def int_or_none(text: Optional[str]) -> Optional[int]:
    """A log field's whole number; None when it is absent, empty or not a number."""
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def read_json(path: Path) -> Any:
    """The parsed file; None when it is missing or damaged (a hook may be rewriting it)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def apply_job_dir(job: JobView) -> None:
    """What the job directory (or its kept copy) says now; it overrides what the log said before."""
    for where, found in ((job.job_dir, "present"), (job.kept_dir, "kept")):
        if where is None:
            continue
        try:
            os.listdir(where / jd.CONTROL_DIR)  # not Path.is_dir(): it hides EACCES on newer Pythons
            job.dir_state = found
            break
        except PermissionError:
            job.dir_state = "unreadable"
            return
        except OSError:
            job.dir_state = "gone"
    control = job.control
    if control is None or job.dir_state not in ("present", "kept"):
        return
    if job.dir_state == "kept":
        job.kept_reason = " ".join(read_lines(control / jd.FAILED))
    state = read_json(control / jd.STATE)
    if isinstance(state, dict):
        job.batch_job_id = str(state.get("batch_job_id") or "") or job.batch_job_id
        job.submitted_at = state.get("submitted_at") if isinstance(state.get("submitted_at"), (int, float)) else None
        job.cleaned = job.cleaned or bool(state.get("cleaned"))
        job.route = job.route or route_of_batch_job(str(state.get("job_name") or "")) or ""
    started = read_json(control / jd.STARTED)
    job.started = started if isinstance(started, dict) else None
    record = read_json(control / jd.EXIT_STATUS)
    try:
        job.exit = ExitRecord.from_dict(record) if isinstance(record, dict) else None
    except (ValueError, KeyError, TypeError):
        job.exit = None
    if job.exit is not None:
        job.exit_code, job.exit_signal = job.exit.exit_code, job.exit.exit_signal
    if job.first_seen is None:
        try:
            job.first_seen = (control / jd.JOB_AD).stat().st_mtime
        except OSError:
            job.first_seen = job.submitted_at
    # The files are newer news than the log: a hook writes the file before its log line.
    if job.cleaned:
        if job.phase != "cleaned":
            job.cleaned_after = job.phase
        job.phase = "cleaned"
    elif job.exit is not None and job.phase not in ("finished", "removed"):
        job.phase = "finished"
    elif job.phase in ("unknown", "staged", "submitted") and job.started is not None and job.exit is None:
        job.phase = "running"
    elif job.phase in ("unknown", "staged") and job.batch_job_id:
        job.phase = "submitted"
    elif job.phase == "unknown":
        job.phase = "staged"


def read_lines(path: Optional[Path]) -> list[str]:
    """The file's lines; [] when there is no such file or it cannot be read."""
    if path is None:
        return []
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
