"""Finishing what killed CLEANUPs and parked jobs leave behind, from the owner's later hooks.

The router counts a CLEANUP killed by a signal as done and never runs it again
(src/condor_job_router/JobRouterHookMgr.cpp, CleanupClient::hookExited, WIFSIGNALED), and a
job CLEANUP parked for its re-route may never be routed again.  So each leaves a marker,
``<root>/<Owner>/<kind>/<ClusterId>.<ProcId>`` holding a small JSON object, and the owner's
next TRANSLATE or CLEANUP finishes it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hpcpull.config import Config, RouteSettings
from hpcpull.errors import HpcPullError
from hpcpull.router import teardown
from hpcpull.router.common import batch_for, keep_for
from hpcpull.router.jobstate import IDLE, RUNNING
from hpcpull.router.protocol import one_stderr_line
from hpcpull.router.schedd import ScheddUnreachable, gateway_schedd
from hpcpull.state import jobdir as jd
from hpcpull.state.atomicfile import write_atomically
from hpcpull.state.submission import SubmissionState, load_state

PARKED_DIR = ".hpcpull-parked"      # a job parked for its re-route
CLEANING_DIR = ".hpcpull-cleaning"  # a CLEANUP at work, perhaps killed: {"failure": why it failed}


def parked_marker(job: jd.JobDir) -> Path:
    return _owner_marker(job, PARKED_DIR)


def cleaning_marker(job: jd.JobDir) -> Path:
    return _owner_marker(job, CLEANING_DIR)


def _owner_marker(job: jd.JobDir, kind: str) -> Path:
    markers = job.path.parent.parent / kind
    markers.mkdir(mode=0o700, exist_ok=True)
    return markers / f"{job.path.parent.name}.{job.path.name}"


def write_marker(marker: Path, content: dict[str, str]) -> None:
    try:
        write_atomically(marker, json.dumps(content), mode=0o600, durable=False)
    except OSError:
        pass  # without it, only this job's own later hooks can finish it


def _read_marker(marker: Path) -> dict[str, str]:
    try:
        content = json.loads(marker.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in content.items()} if isinstance(content, dict) else {}


def finish_leftovers(owner_root: Path, route: RouteSettings, config: Config) -> None:
    """Finish what this owner's other jobs left behind: CLEANUPs that were killed, and parked
    jobs whose source then left the queue or was removed or held (never routed again).
    Each is ended with the batch system and the knobs of its own route, recorded in its
    state, whatever route this hook serves.  Best effort: another job's leftover never makes
    this hook fail; one that cannot be finished is logged once, and left for an admin."""
    for kind, finish in ((PARKED_DIR, _finish_orphaned_parked), (CLEANING_DIR, _finish_abandoned_cleanup)):
        markers = owner_root / kind
        try:
            found = sorted(markers.iterdir()) if markers.is_dir() else []
        except OSError:
            continue
        for marker in found:
            cluster, _, proc = marker.name.partition(".")
            if not (cluster.isdigit() and proc.isdigit()):
                continue
            try:
                finish(marker, jd.JobDir(owner_root / cluster / proc), route, config)
            except ScheddUnreachable:
                break  # asked again by the owner's next hook
            except teardown.Busy:
                continue  # its own hook is at work on it now
            except Exception as exc:  # noqa: BLE001 - another job's leftover never fails this hook
                _leftover_not_finished(marker, config, exc)


def _finish_orphaned_parked(marker: Path, job: jd.JobDir, route: RouteSettings, config: Config) -> None:
    """A parked job whose source job will not be routed again: end it."""
    source_id = marker.name
    status = gateway_schedd(config.gateway().schedd_double).source_status(source_id)
    if status in (IDLE, RUNNING):
        return  # the router routes it again, and the re-route adopts it
    if job.control.is_dir():
        state = load_state(job)
        ended = teardown.tear_down(job, batch_for(config), source_id, keep_for(config, state, route), "",
                                   only_if=lambda now: now.parked)
        if ended is not None:
            _leftover_finished(config, source_id, state, ended, "parked; its job will not be routed again")
    marker.unlink(missing_ok=True)


def _finish_abandoned_cleanup(marker: Path, job: jd.JobDir, route: RouteSettings, config: Config) -> None:
    """A CLEANUP that was killed: end its job as it would have."""
    source_id = marker.name
    if job.control.is_dir():
        age = time.time() - marker.stat().st_mtime
        state = load_state(job)
        failure = _read_marker(marker).get("failure", "")
        ended = teardown.tear_down(
            job, batch_for(config), source_id, keep_for(config, state, route), failure,
            # a cleaned job whose marker is fresh: its CLEANUP may be removing the directory right now
            only_if=lambda now: not (now.cleaned and age < 60))
        if ended is None:
            return
        _leftover_finished(config, source_id, state, ended, "its CLEANUP was killed")
    marker.unlink(missing_ok=True)


def _leftover_finished(config: Config, source_id: str, state: SubmissionState, ended: teardown.Ended,
                       why: str) -> None:
    from hpcpull.state.eventlog import write_event

    gateway = config.gateway()
    write_event(gateway.log_path, gateway.max_log_bytes, "CLEANED", job=source_id, route=state.route,
                batch_job=state.batch_job_id, lrms=state.lrms, cancelled=ended.cancelled, kept=ended.kept, why=why)


def _leftover_not_finished(marker: Path, config: Config, exc: Exception) -> None:
    """One log line for a leftover that cannot be finished, the first time its problem is seen
    (the marker remembers it: every hook of the owner looks at it again)."""
    from hpcpull.state.eventlog import write_event

    problem = one_stderr_line(f"{type(exc).__name__}: {exc}" if not isinstance(exc, HpcPullError) else str(exc))
    content = _read_marker(marker)
    if content.get("problem") == problem:
        return
    write_marker(marker, {**content, "problem": problem})
    gateway = config.gateway()
    write_event(gateway.log_path, gateway.max_log_bytes, "LEFTOVER", job=marker.name, marker=marker,
                problem=problem)
