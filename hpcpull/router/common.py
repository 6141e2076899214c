"""Helpers several hooks share: the job's logs, its job directory, its batch system, and the
attributes UPDATE's shell front end reads (printed by TRANSLATE and UPDATE)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import classad2

from hpcpull.config import Config, GatewaySettings, RouteSettings, lrms_command_environment
from hpcpull.errors import ConfigError, HpcPullError
from hpcpull.lrms import get_batch_system
from hpcpull.lrms.base import BatchSystem
from hpcpull.router import teardown
from hpcpull.router.classads import Value
from hpcpull.router.jobstate import Observation, Phase
from hpcpull.router.routed_job import RoutedJob
from hpcpull.router.teardown import Keep
from hpcpull.state import jobdir as jd
from hpcpull.state.status_cache import StatusCache
from hpcpull.state.submission import SubmissionState, route_of_batch_job


def note(job: Optional[jd.JobDir], hook: str, message: str) -> None:
    """One line per decision in the job's hook.log (read by `hpcpull status`)."""
    if job is None or not job.control.is_dir():
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        with open(job.file(jd.HOOK_LOG), "a", encoding="utf-8") as log:
            log.write(f"{stamp} {hook}: {message}\n")
    except OSError:
        pass


def event(gateway: GatewaySettings, name: str, job: RoutedJob, **fields: object) -> None:
    """One line in the gateway log (eventlog.py) for ``job`` (a routed copy, or in TRANSLATE
    the copy being made: its ids are still the source's)."""
    from hpcpull.state.eventlog import write_event

    line = {
        "job": job.routed_from or job.id,
        "copy": job.id if job.routed_from else None,
        "route": job.route_name or job.site,
        "batch_job": job.batch_job_id,
    }
    line.update(fields)
    try:
        write_event(gateway.log_path, gateway.max_log_bytes, name, **line)
    except Exception:  # noqa: BLE001 - the log is for people: it never fails a hook
        pass


def routed_job_dir(copy: RoutedJob) -> Optional[jd.JobDir]:
    """The job dir TRANSLATE recorded, checked against the job it belongs to.

    It must end in <Owner>/<ClusterId>/<ProcId> of the source job, so an edited
    HpcPullJobDir can never make CLEANUP remove some other directory.
    """
    if not copy.job_dir:
        return None
    path = Path(copy.job_dir)
    expected = [copy.owner, *copy.routed_from.split(".")]
    if not path.is_absolute() or ".." in path.parts or list(path.parts[-3:]) != expected:
        raise HpcPullError(f"HpcPullJobDir {copy.job_dir!r} does not belong to this job")
    return jd.JobDir(path)


def own_job_dir(copy: RoutedJob) -> Optional[jd.JobDir]:
    """The job dir to clean up, or None: a job refused at routing has none, and a directory
    that does not belong to the job (an edited HpcPullJobDir) is never touched."""
    if copy.route_error:
        return None
    try:
        return routed_job_dir(copy)
    except HpcPullError:
        return None


def batch_system(route: RouteSettings, gateway: GatewaySettings) -> BatchSystem:
    return get_batch_system(route.lrms, lrms_command_environment(gateway), gateway.command_timeout_s)


def status_cache(batch: BatchSystem, gateway: GatewaySettings) -> StatusCache:
    return StatusCache(
        gateway.status_cache_dir, f"{batch.name}-status", gateway.status_max_age_s, batch.bulk_status,
        lock_wait=gateway.command_timeout_s + 5,
    )


def recorded_route(config: Config, state: SubmissionState) -> Optional[RouteSettings]:
    """The configured route a job's batch job was submitted on (None if it is not known)."""
    name = state.route or route_of_batch_job(state.job_name or "")
    if not name or not config.route_exists(name):
        return None
    try:
        return config.route(name)
    except ConfigError:
        return None


def batch_for(config: Config, *fallbacks: str) -> teardown.BatchFor:
    """The batch system of a job's batch job: the one recorded at submission, else (a state
    written before it was recorded) that of the route in its batch job name, else the first
    of ``fallbacks`` -- the lrms of the hook's own copy and route, given only by hooks that
    have the job's routed copy.  None when nothing tells: then nobody cancels it."""
    gateway = config.gateway()

    def resolve(state: SubmissionState) -> Optional[BatchSystem]:
        recorded = recorded_route(config, state)
        lrms = state.lrms or (recorded.lrms if recorded else "") or next((f for f in fallbacks if f), "")
        return get_batch_system(lrms, lrms_command_environment(gateway), gateway.command_timeout_s) if lrms else None

    return resolve


def keep_for(config: Config, state: SubmissionState, route: RouteSettings) -> Keep:
    """What to keep of a job directory: its own route's knobs, else those of ``route``."""
    return Keep.of(recorded_route(config, state) or route)


def failed_reason(copy: RoutedJob) -> str:
    """Why the routed job counts as failed ("" if it did not): worth keeping for inspection."""
    if copy.route_error:
        return f"refused at routing: {copy.route_error}"
    if copy.exit_by_signal:
        return f"killed by signal {copy.exit_signal}"
    if "ExitCode" in copy.ad and copy.exit_code != 0:
        return f"exit code {copy.exit_code}"
    for reason in (copy.hold_reason, copy.last_hold_reason):
        if reason:
            return f"held: {reason}"
    return ""


def fast_path_attributes(copy: RoutedJob, state: SubmissionState, seen: Observation,
                         route: RouteSettings, gateway: GatewaySettings, now: float) -> dict[str, Value]:
    """What the shell front end of UPDATE (hooks/hpcpull-update) needs in the routed ad to
    answer the next polls by itself: the poller's status index, if no other user can write
    it, and when this hook must look again anyway.  Printed only when they change."""
    from hpcpull.staging.credentials import credentials_of
    from hpcpull.state import fast_index
    from hpcpull.state.status_cache import service_uids

    index: Optional[str] = None
    if gateway.fast_update and state.batch_job_id and fast_index.INDEXABLE_ID.match(state.batch_job_id):
        directory = fast_index.index_dir(gateway.status_cache_dir, route.lrms)
        if fast_index.trusted(directory, service_uids()):
            index = str(directory)
    idle_deadline = None
    if seen.phase is not Phase.RUNNING and route.max_idle_s is not None and state.submitted_at:
        idle_deadline = state.submitted_at + route.max_idle_s
    current_check = copy.full_check_at
    check_at = fast_index.full_check_at(current_check, now, idle_deadline, bool(credentials_of(copy.ad)))
    printed: dict[str, Value] = {}
    if index != (copy.fast_index or None):
        printed["HpcPullFastIndex"] = index if index else classad2.ExprTree("undefined")
    if index and (check_at != current_check or not copy.has_full_check_at):
        printed["HpcPullFullCheckAt"] = check_at
    if index and state.submitted_at and int(state.submitted_at) != copy.submitted_at:
        printed["HpcPullSubmittedAt"] = int(state.submitted_at)
    return printed
