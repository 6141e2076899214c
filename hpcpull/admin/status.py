"""`hpcpull status [JOB]`: what the gateway is doing with its jobs, for people and scripts.

Modelled on HTCondor-CE's tools: without an argument it is ``condor_ce_router_q`` (one line
per routed job, then counts per route and state, as ``condor_router_q -S`` prints
``JOBS ST Route``; htcondor/htcondor src/condor_job_router/condor_router_q); with a job it
is ``condor_ce_trace`` turned backwards: the whole story of one job, from routing to
cleanup, and where to look next.

Nothing here asks the schedd: a broken schedd is one of the things an admin uses this to
debug.  The sources are the files hpcpull itself writes:

* the job directories under every route's HPCPULL_SCRATCH_ROOT
  (``<root>/<Owner>/<ClusterId>/<ProcId>/.hpcpull/``: job.ad, state.json, started,
  exit_status, hook.log, input-manifest.json), which say what is true *now*;
* the gateway log (HPCPULL_LOG, its per-user siblings ``HpcPullLog.<user>`` and the
  rotated ``.old`` files), which knows routed copy ids, routes, holds, and the jobs whose
  directories CLEANUP already removed;
* the status snapshots of the batch systems (status_cache.py) and the schedd cron
  poller's ``site-status.json``, trusted only when written by root, condor or the reader
  (the same rule the hooks apply), so that no user can make ``status`` lie to the admin.

Only ``--live`` runs a batch command (one ``job_status()``): ``status`` must stay cheap
enough to run in a loop on a busy gateway.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from hpcpull.lrms.base import BatchJobStatus, LrmsError
from hpcpull.router.jobstate import ExitRecord
from hpcpull.state import jobdir as jd
from hpcpull.state.eventlog import current_user
from hpcpull.state.status_cache import Snapshot, StatusCache, trusted_uids

PROG = "hpcpull status"
SITE_STATUS = "site-status.json"
NO_SITE_STATUS = "no site status yet (is the schedd cron poller configured?)"
_SOURCE_ID = re.compile(r"^[0-9]+\.[0-9]+$")
_DIGITS = re.compile(r"^[0-9]+$")
_KEPT = re.compile(r"^([0-9]+\.[0-9]+)\.[0-9]{8}T[0-9]{6}$")  # jobdir.failed_copy_for: <C>.<P>.<stamp>
# Batch job names: "hpcpull-<Route>-<ClusterId.ProcId>-<token>", older "hpcpull-<ClusterId.ProcId>-<token>".
_BATCH_NAME = re.compile(r"^hpcpull-(?:(?P<route>[A-Za-z0-9_]+)-)?(?P<job>[0-9]+\.[0-9]+)-(?P<token>[0-9A-Za-z]+)$")
# hook.log: "YYYY-mm-dd HH:MM:SS finalize: returned N output(s); K problem(s): a; b" (hooks.finalize)
_RETURNED = re.compile(r"finalize: returned (?P<n>[0-9]+) output\(s\)(?:; [0-9]+ problem\(s\): (?P<problems>.*))?$")
_TRANSFER_FAILED = re.compile(r"finalize: output transfer failed: (?P<problem>.*)$")
# Order of the phases in the counts table: the life of a job.
PHASES = ("staged", "submitted", "running", "finished", "held", "removed", "cleaned", "unknown")
# Where a batch system tells more about one job (the clients' own documented commands).
_ASK_LRMS = {
    "slurm": "scontrol show job {id}; sacct -j {id}",
    "pbs": "qstat -f {id}; tracejob {id}",
    "pbspro": "qstat -fx {id}; tracejob {id}",
    "sge": "qstat -j {id}; qacct -j {id}",
    "lsf": "bjobs -l {id}; bhist -l {id}",
}


# --------------------------------------------------------------------------- gateway log


@dataclass(frozen=True)
class LogEvent:
    """One gateway log line (eventlog.py): ``<UTC time> <EVENT> key=value ...``."""

    time: float
    event: str
    fields: dict[str, str]
    line: str
    order: tuple[int, int]  # (file rank, line number): keeps a file's order within one second


def parse_log_line(line: str, order: tuple[int, int] = (0, 0)) -> Optional[LogEvent]:
    """None for a line that is not an event line (a torn last line, someone else's text)."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if len(words) < 2 or not re.fullmatch(r"[A-Z_]+", words[1]):
        return None
    try:
        stamp = calendar.timegm(time.strptime(words[0], "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None
    fields = {}
    for word in words[2:]:
        key, sep, value = word.partition("=")
        if sep and key:
            fields[key] = value
    return LogEvent(float(stamp), words[1], fields, line.rstrip("\n"), order)


def log_files(base: Path) -> list[Path]:
    """The gateway's log, every user's sibling and their ``.old`` generations, oldest first."""
    try:
        names = sorted(
            e.name for e in os.scandir(base.parent)
            if (e.name == base.name or e.name.startswith(base.name + ".")) and e.is_file(follow_symlinks=False)
        )
    except OSError:
        return []
    # "<name>.old" holds the lines before "<name>": read it first.
    names.sort(key=lambda n: (n[: -len(".old")] if n.endswith(".old") else n, not n.endswith(".old")))
    return [base.parent / n for n in names]


def log_owner(base: Path, path: Path) -> str:
    """The user whose hooks wrote ``path`` (``HpcPullLog.<user>``); "" for the gateway's own log."""
    name = path.name[: -len(".old")] if path.name.endswith(".old") else path.name
    return name[len(base.name) + 1:] if name.startswith(base.name + ".") else ""


def read_gateway_log(base: Optional[Path], notes: list[str]) -> list[tuple[LogEvent, str]]:
    """All event lines of all log files in time order, each with the user whose file held it."""
    if base is None:
        notes.append("HPCPULL_LOG is empty: no gateway log to read")
        return []
    events: list[tuple[LogEvent, str]] = []
    unreadable = []
    for rank, path in enumerate(log_files(base)):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            unreadable.append(path.name)
            continue
        for number, line in enumerate(text.splitlines()):
            event = parse_log_line(line, (rank, number))
            if event is not None:
                events.append((event, log_owner(base, path)))
    if unreadable:
        notes.append(f"gateway log files not readable as {current_user()}: {', '.join(unreadable)}")
    events.sort(key=lambda pair: (pair[0].time, pair[0].order))
    return events


# --------------------------------------------------------------------------- one job


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
            if event.event == "ROUTED":
                ended = None  # routed again: an earlier run's end says nothing
            elif event.event == "FINISHED":
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


def _apply_event(job: JobView, event: LogEvent, file_owner: str) -> None:
    """Fold one log line into the job: identities first, then the phase it implies."""
    f = event.fields
    job.events.append(event)
    job.first_seen = event.time if job.first_seen is None else min(job.first_seen, event.time)
    job.copy_id = f.get("copy") or job.copy_id
    job.route = f.get("route") or job.route
    job.batch_job_id = f.get("batch_job") or job.batch_job_id
    job.lrms = f.get("lrms") or job.lrms
    job.owner = f.get("owner") or job.owner or file_owner
    if f.get("job_dir"):
        job.job_dir = Path(f["job_dir"])
    kind = event.event
    if kind == "ROUTED":
        # A re-routed job starts over: a new copy, a fresh directory.
        job.phase, job.hold_reason, job.cleaned, job.cleaned_after = "staged", "", False, ""
        job.exit_code = job.exit_signal = None
        job.copy_id = f.get("copy", "")
        job.batch_job_id = f.get("batch_job", "")
    elif kind == "REFUSED":
        job.phase, job.hold_reason, job.cleaned = "held", f.get("reason", ""), False
    elif kind == "SUBMIT_DEFERRED":
        job.phase = "staged"
    elif kind == "SUBMITTED":
        job.phase = "submitted"
    elif kind == "HELD":
        job.phase, job.hold_reason = "held", f.get("reason", "")
    elif kind == "STATUS":
        new = f.get("status", "").rpartition("->")[2]
        if new == "1":
            job.phase = "submitted" if job.batch_job_id else "staged"
        elif new == "2":
            job.phase = "running"
        elif new == "3":
            job.phase = "removed"
        elif new == "4":
            job.phase = "finished"
        elif new == "5":
            job.phase, job.hold_reason = "held", f.get("reason", "")
    elif kind == "REMOVED":
        job.phase = "removed"
    elif kind == "FINISHED":
        job.phase = "finished"
        job.exit_code = _int(f.get("exit_code"))
        job.exit_signal = _int(f.get("exit_signal"))
    elif kind == "CLEANED":
        if f.get("kept"):
            job.kept_dir = Path(f["kept"])
        job.cleaned_after = job.phase if job.phase != "cleaned" else job.cleaned_after
        job.phase, job.cleaned = "cleaned", True


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _read_json(path: Path) -> Any:
    """The parsed file; None when it is missing or damaged (a hook may be rewriting it)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _apply_job_dir(job: JobView) -> None:
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
        job.kept_reason = " ".join(_lines(control / jd.FAILED))
    state = _read_json(control / jd.STATE)
    if isinstance(state, dict):
        job.batch_job_id = str(state.get("batch_job_id") or "") or job.batch_job_id
        job.submitted_at = state.get("submitted_at") if isinstance(state.get("submitted_at"), (int, float)) else None
        job.cleaned = job.cleaned or bool(state.get("cleaned"))
        named = _BATCH_NAME.match(str(state.get("job_name") or ""))
        job.route = job.route or (named.group("route") or "" if named else "")
    started = _read_json(control / jd.STARTED)
    job.started = started if isinstance(started, dict) else None
    record = _read_json(control / jd.EXIT_STATUS)
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


# --------------------------------------------------------------------------- the survey


@dataclass
class Survey:
    """Everything ``status`` shows, gathered once."""

    now: float
    jobs: dict[str, JobView]
    site_status: Optional[dict[str, Any]]
    site_status_path: Path
    snapshots: dict[str, Optional[Snapshot]]
    notes: list[str]
    log_path: Optional[Path]
    roots: dict[Path, list[str]]


def _scan_root(root: Path, unreadable: list[Path], notes: list[str]) -> list[tuple[str, str, Path, bool]]:
    """(owner, source job id, directory, kept?) of every job directory under ``root`` we may read,
    including failed jobs' directories kept in ``<root>/<Owner>/failed/<ClusterId>.<ProcId>.<stamp>``."""
    found: list[tuple[str, str, Path, bool]] = []

    def entries(path: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(path) as scan:
                return [e for e in scan if e.is_dir(follow_symlinks=False)]
        except PermissionError:
            unreadable.append(path)
        except FileNotFoundError:
            if path == root:
                notes.append(f"scratch root {root} does not exist (yet)")
        except OSError as exc:
            notes.append(f"cannot read {path}: {exc.strerror}")
        return []

    for owner in entries(root):
        if not jd.valid_owner(owner.name):
            continue
        for cluster in entries(Path(owner.path)):
            if cluster.name == jd.FAILED:
                for kept in sorted(entries(Path(cluster.path)), key=lambda e: e.name):  # oldest stamp first
                    match = _KEPT.match(kept.name)
                    if match and os.path.lexists(os.path.join(kept.path, jd.CONTROL_DIR)):
                        found.append((owner.name, match.group(1), Path(kept.path), True))
                continue
            if not _DIGITS.match(cluster.name):
                continue  # staging leftovers, probes
            for proc in entries(Path(cluster.path)):
                if _DIGITS.match(proc.name) and os.path.lexists(os.path.join(proc.path, jd.CONTROL_DIR)):
                    found.append((owner.name, f"{int(cluster.name)}.{int(proc.name)}", Path(proc.path), False))
    return found


def _read_trusted_json(path: Path) -> Optional[dict[str, Any]]:
    """A JSON file written by root, condor or this user (status_cache.py's trust rule)."""
    try:
        with open(path, encoding="utf-8") as handle:
            if os.fstat(handle.fileno()).st_uid not in trusted_uids():
                return None
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _newest_snapshot(directory: Path, lrms: str) -> Optional[Snapshot]:
    """The newest trusted snapshot (shared or this user's own); never runs a batch command."""
    def refuse() -> dict[str, BatchJobStatus]:
        raise AssertionError("status never refreshes a snapshot")

    return StatusCache(directory, f"{lrms}-status", 1.0, refuse).latest()


def survey(config: Any = None, now: Optional[float] = None) -> Survey:
    """Read the configuration, the job directories, the log and the snapshots."""
    from hpcpull.config import Config
    from hpcpull.errors import ConfigError

    config = config or Config()
    now = time.time() if now is None else now
    gateway = config.gateway()
    notes: list[str] = []
    roots: dict[Path, list[str]] = {}
    route_lrms: dict[str, str] = {}
    for name in gateway.route_names:
        try:
            route = config.route(name)
        except ConfigError as exc:
            notes.append(f"route {name} skipped: {exc}")
            continue
        roots.setdefault(route.scratch_root, []).append(route.name)
        route_lrms[route.name] = route.lrms

    jobs: dict[str, JobView] = {}
    for event, file_owner in read_gateway_log(gateway.log_path, notes):
        source = event.fields.get("job", "")
        if _SOURCE_ID.match(source):
            _apply_event(jobs.setdefault(source, JobView(source)), event, file_owner)

    unreadable: list[Path] = []
    for root, names in roots.items():
        for owner, source, path, kept in _scan_root(root, unreadable, notes):
            job = jobs.setdefault(source, JobView(source))
            job.owner = job.owner or owner
            if not job.route and len(names) == 1:
                job.route = names[0]
            if not kept:
                job.job_dir = path
                continue
            # The log's CLEANED kept= names the copy of the job's last run; else take the
            # newest copy (they come oldest first).
            if not any(e.fields.get("kept") for e in job.events):
                job.kept_dir = path
            if job.job_dir is None:
                cluster, proc = source.split(".")
                job.job_dir = path.parent.parent / cluster / proc
    for job in jobs.values():
        _apply_job_dir(job)
        job.lrms = job.lrms or route_lrms.get(job.route, "")
    if unreadable:
        hidden = 0
        for path in unreadable:
            known = sum(1 for j in jobs.values() if j.job_dir is not None and path in j.job_dir.parents
                        and not j.cleaned)
            hidden += max(1, known)
        notes.append(f"{hidden} job directories not readable as {current_user()}; run as root for all")

    snapshots: dict[str, Optional[Snapshot]] = {}
    for lrms in sorted({j.lrms for j in jobs.values() if j.lrms} | set(route_lrms.values())):
        snapshots[lrms] = _newest_snapshot(gateway.status_cache_dir, lrms)
    for job in jobs.values():
        snap = snapshots.get(job.lrms)
        if snap is not None and snap.ok and job.batch_job_id in snap.jobs:
            ended = job.ended_at()
            if ended is not None and snap.taken_at < ended and snap.jobs[job.batch_job_id].state.is_active:
                # Taken while the job still ran: it says nothing about the batch job now.
                job.lrms_error = f"? (the newest status snapshot, taken {_clock(snap.taken_at)}, predates " \
                                 "the job's end; try --live)"
                continue
            job.lrms_status = snap.jobs[job.batch_job_id]
            job.lrms_status_from = f"snapshot taken {_clock(snap.taken_at)}, {_age(now - snap.taken_at)} ago"
            if not job.route:
                match = _BATCH_NAME.match(job.lrms_status.name)
                job.route = (match.group("route") or "") if match else ""
    site_path = gateway.status_cache_dir / SITE_STATUS
    return Survey(now, jobs, _read_trusted_json(site_path), site_path, snapshots, notes, gateway.log_path, roots)


# --------------------------------------------------------------------------- formatting


def _age(seconds: float) -> str:
    """A short duration: 45s, 12m05s, 3h02m, 2d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Aligned columns, two blanks apart; the last column is never padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return _aligned(widths, headers, rows, right)


def pairs(rows: Sequence[Sequence[str]], width: int = 20) -> list[str]:
    """"label  value" lines, labels padded to ``width`` so that every section lines up."""
    widths = [max(width, *(len(r[0]) for r in rows)), 0]
    return ["  " + line for line in _aligned(widths, ["", ""], rows, ())[1:]]


def _aligned(widths: Sequence[int], headers: Sequence[str], rows: Sequence[Sequence[str]],
             right: Sequence[int]) -> list[str]:
    lines = []
    for row in [headers, *rows]:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell)
            if i == len(row) - 1:
                cells.append(text.rjust(widths[i]) if i in right else text)
            else:
                cells.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


def _yes_no(value: Any) -> str:
    return "?" if value is None else ("yes" if value else "no")


def site_status_lines(site: Optional[dict[str, Any]], now: float, route: Optional[str]) -> list[str]:
    if site is None:
        return [f"Site status: {NO_SITE_STATUS}"]
    taken = site.get("taken_at")
    last = site.get("last_success")
    head = "Site status"
    if isinstance(taken, (int, float)):
        head += f" (poller ran {_clock(taken)}, {_age(now - taken)} ago)"
    lrms = site.get("lrms") or []
    out = [head + ":"]
    rows = [
        ["LRMS reachable", _yes_no(site.get("lrms_reachable"))
         + (f" ({', '.join(map(str, lrms))})" if lrms else "")],
        ["last successful poll", f"{_clock(last)} ({_age(now - last)} ago)"
         if isinstance(last, (int, float)) else "never"],
        ["last error", str(site.get("last_error") or "none")],
        ["status shared", _yes_no(site.get("status_shared"))],
    ]
    per_route = site.get("jobs") if isinstance(site.get("jobs"), dict) else {}
    for name in sorted(per_route):
        if route is not None and name.lower() != route.lower():
            continue
        counts = per_route[name] if isinstance(per_route[name], dict) else {}
        rows.append([f"route {name}", f"idle {counts.get('idle', 0)}, running {counts.get('running', 0)}"])
    out += pairs(rows)
    return out


def _snapshot_line(lrms: str, snap: Optional[Snapshot], now: float) -> str:
    if snap is None:
        return f"{lrms}: no status snapshot yet (states show ?)"
    age = f"taken {_age(now - snap.taken_at)} ago"
    if not snap.ok:
        return f"{lrms}: last batch query failed ({age}): {snap.error}"
    return f"{lrms}: snapshot of {len(snap.jobs)} batch job(s), {age}"


def _phase_key(job: JobView) -> str:
    return job.phase if job.phase in PHASES else "unknown"


def select(jobs: dict[str, JobView], route: Optional[str], owner: Optional[str]) -> list[JobView]:
    def key(job: JobView) -> tuple[int, ...]:
        return tuple(int(p) for p in job.source_id.split("."))

    chosen = [
        j for j in jobs.values()
        if (route is None or j.route.lower() == route.lower()) and (owner is None or j.owner == owner)
    ]
    return sorted(chosen, key=key)


def counts(jobs: Sequence[JobView]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for job in jobs:
        per = result.setdefault(job.route or "?", {})
        per[_phase_key(job)] = per.get(_phase_key(job), 0) + 1
    return result


def list_text(s: Survey, jobs: Sequence[JobView], route: Optional[str]) -> str:
    out = site_status_lines(s.site_status, s.now, route)
    out.append("")
    if s.snapshots:
        out.append("Batch system states: " + "; ".join(_snapshot_line(k, v, s.now) for k, v in s.snapshots.items()))
        out.append("")
    if not jobs:
        out.append("No hpcpull jobs match." if s.jobs else "No hpcpull jobs.")
    else:
        rows = [[j.source_id, j.copy_id or "?", j.route or "?", j.owner or "?", j.batch_job_id or "-",
                 j.lrms_state, _age(s.now - j.first_seen) if j.first_seen else "?", _shorten(j.phase_text, 100)]
                for j in jobs]
        out += table(["JOB", "COPY", "ROUTE", "OWNER", "BATCH JOB", "LRMS STATE", "AGE", "HPCPULL PHASE"], rows)
        out.append("")
        per_route = counts(jobs)
        present = [p for p in PHASES if any(p in c for c in per_route.values())]
        count_rows = [[name, *(str(c.get(p, 0)) for p in present), str(sum(c.values()))]
                      for name, c in sorted(per_route.items())]
        if len(count_rows) > 1:
            count_rows.append(["all", *(str(sum(c.get(p, 0) for c in per_route.values())) for p in present),
                               str(len(jobs))])
        right = range(1, len(present) + 2)
        out += table(["ROUTE", *present, "total"], count_rows, right=right)
    out += [f"note: {n}" for n in s.notes]
    return "\n".join(out) + "\n"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def list_json(s: Survey, jobs: Sequence[JobView]) -> dict[str, Any]:
    return {
        "site_status": s.site_status,
        "site_status_path": str(s.site_status_path),
        "snapshots": {
            k: None if v is None else {"taken_at": v.taken_at, "ok": v.ok, "error": v.error, "jobs": len(v.jobs)}
            for k, v in s.snapshots.items()
        },
        "jobs": [j.to_dict(s.now) for j in jobs],
        "counts": counts(jobs),
        "notes": s.notes,
    }


# --------------------------------------------------------------------------- one job's story


def find_job(s: Survey, wanted: str) -> Optional[JobView]:
    """A source job id, a routed copy id, or a batch job id (in that order); "1234" means 1234.0."""
    jobs = list(s.jobs.values())
    for match in (
        lambda j: j.source_id == wanted,
        lambda j: j.copy_id == wanted,
        lambda j: j.batch_job_id == wanted,
        lambda j: _DIGITS.match(wanted) is not None and j.source_id == f"{wanted}.0",
        lambda j: _DIGITS.match(wanted) is not None and j.copy_id == f"{wanted}.0",
    ):
        found = [j for j in jobs if match(j)]
        if found:
            return found[-1]
    return None


def _lines(path: Optional[Path]) -> list[str]:
    if path is None:
        return []
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _staged(job: JobView) -> Optional[list[dict[str, Any]]]:
    data = _read_json(job.control / jd.INPUT_MANIFEST) if job.control else None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        return None
    return [e for e in data["entries"] if isinstance(e, dict) and "name" in e]


def _returned(job: JobView, hook_log: list[str]) -> dict[str, Any]:
    """What FINALIZE returned: the FINISHED line's counts, hook.log's problems."""
    result: dict[str, Any] = {"count": None, "problems": [], "files": None}
    for event in job.events:
        if event.event == "FINISHED":
            if event.fields.get("returned"):
                result["files"] = event.fields["returned"].split(",")
                result["count"] = len(result["files"])
            if event.fields.get("output_errors") and not result["problems"]:
                result["problems"] = [f"{event.fields['output_errors']} output problem(s) (HpcPullOutputErrors)"]
    for line in hook_log:
        found = _RETURNED.search(line)
        if found:
            result["count"] = int(found.group("n"))
            result["problems"] = [p for p in (found.group("problems") or "").split("; ") if p]
        failed = _TRANSFER_FAILED.search(line)
        if failed:
            result["problems"] = [failed.group("problem")]
    return result


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def live_status(job: JobView, config: Any) -> None:
    """One job_status() call to the batch system (``--live``); an error is kept, not raised."""
    from hpcpull.config import lrms_command_environment
    from hpcpull.errors import ConfigError
    from hpcpull.lrms import get_batch_system

    if not job.batch_job_id or not job.lrms:
        return
    gateway = config.gateway()
    try:
        batch = get_batch_system(job.lrms, lrms_command_environment(gateway), gateway.command_timeout_s)
        job.lrms_status = batch.job_status(job.batch_job_id)
        job.lrms_status_from = "live query"
        if job.lrms_status is None:
            job.lrms_error = f"{job.lrms} does not know batch job {job.batch_job_id} (nor does its accounting)"
    except (LrmsError, ConfigError, ValueError) as exc:
        job.lrms_status = None
        job.lrms_error = f"live query failed: {exc}"


def story(s: Survey, job: JobView) -> dict[str, Any]:
    """The whole story of one job as data; ``story_text`` prints it."""
    control = job.control
    hook_log = _lines(control / jd.HOOK_LOG if control else None)
    paths = {}
    if control is not None:
        for label, name in (("batch_output", jd.BATCH_OUTPUT), ("stdout", jd.STDOUT), ("stderr", jd.STDERR),
                            ("hook_io", jd.HOOK_IO)):
            if label != "hook_io" or (control / name).is_dir():
                paths[label] = {"path": str(control / name), "exists": (control / name).exists()}
    exit_record = None
    if job.exit is not None:
        exit_record = {k: getattr(job.exit, k) for k in (
            "exit_code", "exit_signal", "start", "end", "wall_s", "user_cpu_s", "sys_cpu_s", "max_rss_kb")}
    finished = next((e.fields for e in reversed(job.events) if e.event == "FINISHED"), None)
    return {
        "job": job.to_dict(s.now),
        "lrms_status": job.lrms_status.to_dict() if job.lrms_status else None,
        "lrms_error": job.lrms_error or None,
        "script": str(control / jd.BATCH_SCRIPT) if control else None,
        "script_exists": bool(control and (control / jd.BATCH_SCRIPT).exists()),
        "started": job.started,
        "log": [e.line for e in job.events],
        "hook_log": hook_log,
        "staged": _staged(job),
        "returned": _returned(job, hook_log),
        "exit": exit_record,
        "finished": finished,
        "look_next": paths,
        "ask_lrms": _ASK_LRMS.get(job.lrms, "").format(id=job.batch_job_id) if job.batch_job_id else None,
    }


def _exit_text(record: dict[str, Any]) -> list[str]:
    how = (f"killed by signal {record['exit_signal']}" if record.get("exit_signal") is not None
           else f"exit code {record.get('exit_code')}")
    out = [how]
    if "wall_s" in record:
        out.append(f"wall {float(record['wall_s']):.1f} s")
    if "user_cpu_s" in record:
        out.append(f"CPU {float(record['user_cpu_s']):.2f} s user + {float(record.get('sys_cpu_s', 0)):.2f} s sys")
    if record.get("max_rss_kb"):
        out.append(f"max RSS {int(record['max_rss_kb']) / 1024:.1f} MiB")
    return out


def story_text(s: Survey, job: JobView, data: dict[str, Any]) -> str:
    out = [f"Job {job.source_id}: {job.phase_text}"]
    rows = [
        ["source job", job.source_id],
        ["routed copy", job.copy_id or "? (not in the gateway log)"],
        ["route", job.route or "?"],
        ["owner", job.owner or "?"],
    ]
    where = {"present": "", "gone": " (removed by CLEANUP)", "kept": " (moved aside by CLEANUP)",
             "unreadable": f" (not readable as {current_user()})", "none": ""}[job.dir_state]
    if job.job_dir is None:
        refused = any(e.event == "REFUSED" for e in job.events)
        where = "none (refused before staging)" if refused else "unknown (its ROUTED line is not in the log)"
    rows.append(["job directory", f"{job.job_dir}{where}" if job.job_dir else where])
    if job.kept_dir is not None:
        state = "" if job.dir_state == "kept" else " (gone)"
        rows.append(["kept for inspection", f"{job.kept_dir}{state}"
                     + (f": {job.kept_reason}" if job.kept_reason else "")])
    if job.batch_job_id:
        batch = f"{job.lrms or '?'} batch job {job.batch_job_id}"
        if job.lrms_status is not None:
            st = job.lrms_status
            batch += f": {st.native_state}" + (f", reason {st.reason}" if st.reason and st.reason != "None" else "")
            batch += f" ({job.lrms_status_from})"
        elif job.lrms_error:
            batch += f": {job.lrms_error}"
        else:
            batch += ": ? (not in the newest status snapshot; try --live)"
        rows.append(["batch system", batch])
    else:
        rows.append(["batch system", f"{job.lrms or '?'}, not submitted"])
    if data["script"]:
        rows.append(["batch script", data["script"] + ("" if data["script_exists"] else " (gone)")])
    if job.started:
        rows.append(["payload started", f"{_clock(float(job.started.get('time', 0)))} on "
                     f"{job.started.get('host', '?')}"])
    out += pairs(rows)

    out.append("")
    out.append(f"Gateway log ({s.log_path}):" if s.log_path else "Gateway log: none (HPCPULL_LOG is empty)")
    out += [f"  {line}" for line in data["log"]] or ["  (no lines for this job)"]
    if job.control is not None:
        out.append("")
        out.append(f"Hook log ({job.control / jd.HOOK_LOG}):")
        out += [f"  {line}" for line in data["hook_log"]] or [f"  (none: the directory is {job.dir_state})"]
    staged = data["staged"]
    if staged is not None:
        out.append("")
        out.append(f"Files staged ({jd.INPUT_MANIFEST}):")
        out += ["  " + line for line in table(
            ["NAME", "TYPE", "SIZE"], [[e.get("name", "?"), e.get("type", "?"), _size(e.get("size"))] for e in staged],
            right=[2])] if staged else ["  (none)"]
    returned = data["returned"]
    if returned["count"] is not None or returned["problems"]:
        out.append("")
        head = "Files returned"
        if returned["count"] is not None:
            head += f": {returned['count']}"
        out.append(head + (" (" + ", ".join(returned["files"]) + ")" if returned["files"] else ""))
        out += [f"  problem: {p}" for p in returned["problems"]]
    record = data["exit"] or _finished_record(data["finished"])
    if record is not None:
        out.append("")
        source = "exit_status file" if data["exit"] else "FINISHED log line"
        out.append(f"Exit status ({source}): " + ", ".join(_exit_text(record)))
        if data["exit"]:
            out.append(f"  ran {_clock(record['start'])} .. {_clock(record['end'])}")
    out.append("")
    out.append("Where to look next:")
    next_rows = []
    if job.phase == "held" and job.hold_reason:
        next_rows.append(["hold reason", job.hold_reason])
    for label, name in (("batch_output", "batch system output"), ("stdout", "job stdout"), ("stderr", "job stderr"),
                        ("hook_io", "hook stdin/stdout")):
        if label in data["look_next"]:
            entry = data["look_next"][label]
            next_rows.append([name, entry["path"] + ("" if entry["exists"] else " (not there)")])
    if data["ask_lrms"]:
        next_rows.append([f"ask {job.lrms}", data["ask_lrms"]])
    if not next_rows:
        next_rows.append(["", "the gateway log lines above, and JobRouterLog"])
    out += pairs(next_rows)
    return "\n".join(out) + "\n"


def _finished_record(fields: Optional[dict[str, str]]) -> Optional[dict[str, Any]]:
    """The exit facts of the FINISHED log line, for a job whose exit_status file is gone."""
    if not fields:
        return None
    record: dict[str, Any] = {"exit_code": _int(fields.get("exit_code")),
                              "exit_signal": _int(fields.get("exit_signal"))}
    for key in ("wall_s", "user_cpu_s", "sys_cpu_s"):
        if fields.get(key):
            record[key] = float(fields[key])
    if fields.get("memory_mb"):
        record["max_rss_kb"] = int(float(fields["memory_mb"]) * 1024)
    return record


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", nargs="?", metavar="JOB",
                        help="a source job id (1234.0), routed copy id or batch job id: tell this job's story")
    parser.add_argument("--route", metavar="NAME", help="only jobs on this route")
    parser.add_argument("--owner", metavar="NAME", help="only jobs of this user")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of the text")
    parser.add_argument("--live", action="store_true",
                        help="with JOB: ask the batch system about the job now (one command) instead of "
                             "using the newest status snapshot")


def run(args: argparse.Namespace) -> int:
    from hpcpull.config import Config
    from hpcpull.errors import ConfigError

    try:
        config = Config()
        s = survey(config)
    except ConfigError as exc:
        print(f"{PROG}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if args.job is None:
        jobs = select(s.jobs, args.route, args.owner)
        if args.json:
            json.dump(list_json(s, jobs), sys.stdout, indent=1, sort_keys=True)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(list_text(s, jobs, args.route))
        return 0
    job = find_job(s, args.job.strip())
    if job is not None and (args.route or args.owner) and job not in select(s.jobs, args.route, args.owner):
        job = None
    if job is None:
        places = ", ".join(str(r) for r in s.roots) or "no scratch root"
        print(f"{PROG}: no hpcpull job {args.job!r} (not a source, routed copy or batch job id in {places} "
              f"or in the gateway log {s.log_path})", file=sys.stderr)
        return 1
    if args.live:
        live_status(job, config)
    data = story(s, job)
    if args.json:
        json.dump(data, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(story_text(s, job, data))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Show the site status and every hpcpull job (source id, routed copy, route, owner, batch "
                    "job, its state in the batch system, hpcpull's phase), or one job's whole story. "
                    "Exit status: 0 shown, 1 unknown job, 2 configuration error.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
