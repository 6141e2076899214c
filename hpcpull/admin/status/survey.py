"""What ``hpcpull status`` shows, gathered once: every job, the site status, the snapshots.

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

Only ``--live`` runs a batch command (one ``job_status()``, ``live_status``).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hpcpull.admin.common import age, clock
from hpcpull.admin.status.gateway_log import read_gateway_log
from hpcpull.admin.status.job import JobView, apply_event, apply_job_dir
from hpcpull.lrms.base import BatchJobStatus, LrmsError
from hpcpull.state import jobdir as jd
from hpcpull.state.accounts import current_user, read_trusted_text
from hpcpull.state.eventlog import Field
from hpcpull.state.status_cache import SITE_STATUS, Snapshot, StatusCache
from hpcpull.state.submission import route_of_batch_job

_SOURCE_ID = re.compile(r"^[0-9]+\.[0-9]+$")
_DIGITS = re.compile(r"^[0-9]+$")
_KEPT = re.compile(r"^([0-9]+\.[0-9]+)\.[0-9]{8}T[0-9]{6}$")  # jobdir.failed_copy_for: <C>.<P>.<stamp>


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
    text = read_trusted_text(path)
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
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
        source = event.fields.get(Field.JOB, "")
        if _SOURCE_ID.match(source):
            apply_event(jobs.setdefault(source, JobView(source)), event, file_owner)

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
            if not any(e.fields.get(Field.KEPT) for e in job.events):
                job.kept_dir = path
            if job.job_dir is None:
                cluster, proc = source.split(".")
                job.job_dir = path.parent.parent / cluster / proc
    for job in jobs.values():
        apply_job_dir(job)
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
        if snap is not None and not snap.ok and job.batch_job_id:
            job.lrms_error = f"? (the newest status snapshot, taken {clock(snap.taken_at)}, failed: " \
                             f"{snap.error or 'no reason given'}; try --live)"
            continue
        if snap is not None and snap.ok and job.batch_job_id in snap.jobs:
            ended = job.ended_at()
            if ended is not None and snap.taken_at < ended and snap.jobs[job.batch_job_id].state.is_active:
                # Taken while the job still ran: it says nothing about the batch job now.
                job.lrms_error = f"? (the newest status snapshot, taken {clock(snap.taken_at)}, predates " \
                                 "the job's end; try --live)"
                continue
            job.lrms_status = snap.jobs[job.batch_job_id]
            job.lrms_status_from = f"snapshot taken {clock(snap.taken_at)}, {age(now - snap.taken_at)} ago"
            if not job.route:
                job.route = route_of_batch_job(job.lrms_status.name) or ""
    site_path = gateway.status_cache_dir / SITE_STATUS
    return Survey(now, jobs, _read_trusted_json(site_path), site_path, snapshots, notes, gateway.log_path, roots)


def select(jobs: dict[str, JobView], route: Optional[str], owner: Optional[str]) -> list[JobView]:
    """The jobs of ``route`` (any case) and ``owner``, in job id order."""
    def key(job: JobView) -> tuple[int, ...]:
        return tuple(int(p) for p in job.source_id.split("."))

    chosen = [
        j for j in jobs.values()
        if (route is None or j.route.lower() == route.lower()) and (owner is None or j.owner == owner)
    ]
    return sorted(chosen, key=key)


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
