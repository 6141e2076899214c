"""The four condor_job_router hooks: TRANSLATE_JOB, UPDATE_JOB_INFO, JOB_FINALIZE, JOB_CLEANUP.

Each ``<hook>(stdin_text, config)`` returns a HookResult; ``main_<hook>()`` wraps it for
the executables in hooks/.  The protocol (what the router sends, what it does with each
exit code) is in the routed-copy recipe; the exit codes are:

============  =======================  =============================  ================
hook          done                     cannot act now (retried)       malformed stdin
============  =======================  =============================  ================
TRANSLATE     0 (routed, or routed     1 (router yields the job and   2
              to a hold for a bad job) retries ~15 s later)
UPDATE        0                        0 (prints nothing: no news)    0
FINALIZE      0 (never fails: a failing FINALIZE loses the user's terminate event)  0
CLEANUP       0                        1 (router retries every poll)  0
============  =======================  =============================  ================

Problems are one line on stderr (the router copies it to JobRouterLog) and a line in
the job's ``.hpcpull/hook.log``; nothing else is ever printed on stdout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import classad2

from hpcpull import holds
from hpcpull.config import Config, GatewaySettings, RouteSettings, lrms_command_environment
from hpcpull.errors import ConfigError, HpcPullError, JobRejected
from hpcpull.faults import crash_point
from hpcpull.lrms import get_batch_system
from hpcpull.lrms.base import BatchJobStatus, BatchState, BatchSystem, LrmsError
from hpcpull.router import teardown
from hpcpull.router.classads import (
    MalformedInput,
    Value,
    format_ad,
    format_attributes,
    int_attr,
    number_attr,
    parse_finalize_input,
    parse_old_ad,
    parse_translate_input,
    string_attr,
)
from hpcpull.router.jobstate import (
    COMPLETED,
    HELD,
    IDLE,
    REMOVED,
    RUNNING,
    ExitRecord,
    Hold,
    Observation,
    Phase,
    hold_set,
    transition,
)
from hpcpull.router.schedd import ScheddUnreachable, gateway_schedd
from hpcpull.router.teardown import Keep, read_exit_record
from hpcpull.staging.credentials import refresh_credentials, stage_credentials
from hpcpull.staging.spool import is_spooled, spool_dir
from hpcpull.state import jobdir as jd
from hpcpull.state.atomicfile import ensure_shared_dir, write_atomically
from hpcpull.state.status_cache import StatusCache
from hpcpull.state.submission import (
    JobLock,
    SubmissionState,
    load_state,
    route_of_batch_job,
    save_state,
    submit_once,
)

# Source bookkeeping that must not leak into a (re-)routed copy (recipe pitfall 9).
DROP_FROM_ROUTED = {
    "managed", "managedmanager", "routedtojobid", "holdreason", "holdreasoncode",
    "holdreasonsubcode", "holdcopiedfromtargetjob", "releasereason", "removereason",
    "shadowbday", "jobcurrentstartdate", "lastjobstatus",
}
DROP_PREFIXES = ("lastrejmatch", "autocluster", "hpcpull")
# ... except the routes that gave the job back: the copy carries them, so that the next
# give-back adds its route to the whole list (the source's value is what the routes'
# REQUIREMENTS test, and only a give-back ever changes it).
KEEP_IN_ROUTED = {"hpcpullundoneroutes"}
UNDONE_ROUTES = "HpcPullUndoneRoutes"


@dataclass
class HookResult:
    stdout: str = ""
    exit_code: int = 0
    messages: list[str] = field(default_factory=list)


def _updates(attributes: dict[str, Value], *messages: str) -> HookResult:
    return HookResult(format_attributes(attributes) if attributes else "", 0, list(messages))


# --------------------------------------------------------------------------- helpers


def _job_id(ad: classad2.ClassAd) -> str:
    return f"{int_attr(ad, 'ClusterId')}.{int_attr(ad, 'ProcId')}"


def _note(job: Optional[jd.JobDir], hook: str, message: str) -> None:
    """One line per decision in the job's hook.log (read by `hpcpull status`)."""
    if job is None or not job.control.is_dir():
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        with open(job.file(jd.HOOK_LOG), "a", encoding="utf-8") as log:
            log.write(f"{stamp} {hook}: {message}\n")
    except OSError:
        pass


def _event(gateway: GatewaySettings, event: str, ad: classad2.ClassAd, **fields: object) -> None:
    """One line in the gateway log (eventlog.py) for the job of ``ad`` (source or routed copy)."""
    from hpcpull.state.eventlog import write_event

    routed_from = string_attr(ad, "RoutedFromJobId")
    line = {
        "job": routed_from or _job_id(ad),
        "copy": _job_id(ad) if routed_from else None,
        "route": string_attr(ad, "RouteName") or string_attr(ad, "HpcPullSite"),
        "batch_job": string_attr(ad, "HpcPullBatchJobId"),
    }
    line.update(fields)
    try:
        write_event(gateway.log_path, gateway.max_log_bytes, event, **line)
    except Exception:  # noqa: BLE001 - the log is for people: it never fails a hook
        pass


def _routed_job_dir(copy: classad2.ClassAd) -> Optional[jd.JobDir]:
    """The job dir TRANSLATE recorded, checked against the job it belongs to.

    It must end in <Owner>/<ClusterId>/<ProcId> of the source job, so an edited
    HpcPullJobDir can never make CLEANUP remove some other directory.
    """
    raw = string_attr(copy, "HpcPullJobDir")
    if not raw:
        return None
    path = Path(raw)
    expected = [string_attr(copy, "Owner"), *string_attr(copy, "RoutedFromJobId").split(".")]
    if not path.is_absolute() or ".." in path.parts or list(path.parts[-3:]) != expected:
        raise HpcPullError(f"HpcPullJobDir {raw!r} does not belong to this job")
    return jd.JobDir(path)


def _own_job_dir(copy: classad2.ClassAd) -> Optional[jd.JobDir]:
    """The job dir to clean up, or None: a job refused at routing has none, and a directory
    that does not belong to the job (an edited HpcPullJobDir) is never touched."""
    if string_attr(copy, "HpcPullRouteError"):
        return None
    try:
        return _routed_job_dir(copy)
    except HpcPullError:
        return None


def _started_time(job: jd.JobDir) -> Optional[float]:
    try:
        return float(json.loads(job.file(jd.STARTED).read_text(encoding="utf-8"))["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _batch(route: RouteSettings, gateway: GatewaySettings) -> BatchSystem:
    return get_batch_system(route.lrms, lrms_command_environment(gateway), gateway.command_timeout_s)


def _recorded_route(config: Config, state: SubmissionState) -> Optional[RouteSettings]:
    """The configured route a job's batch job was submitted on (None if it is not known)."""
    name = state.route or route_of_batch_job(state.job_name or "")
    if not name or not config.route_exists(name):
        return None
    try:
        return config.route(name)
    except ConfigError:
        return None


def _batch_for(config: Config, *fallbacks: str) -> teardown.BatchFor:
    """The batch system of a job's batch job: the one recorded at submission, else (a state
    written before it was recorded) that of the route in its batch job name, else the first
    of ``fallbacks`` -- the lrms of the hook's own copy and route, given only by hooks that
    have the job's routed copy.  None when nothing tells: then nobody cancels it."""
    gateway = config.gateway()

    def resolve(state: SubmissionState) -> Optional[BatchSystem]:
        recorded = _recorded_route(config, state)
        lrms = state.lrms or (recorded.lrms if recorded else "") or next((f for f in fallbacks if f), "")
        return get_batch_system(lrms, lrms_command_environment(gateway), gateway.command_timeout_s) if lrms else None

    return resolve


def _keep_for(config: Config, state: SubmissionState, route: RouteSettings) -> Keep:
    """What to keep of a job directory: its own route's knobs, else those of ``route``."""
    return Keep.of(_recorded_route(config, state) or route)


def _status_cache(batch: BatchSystem, gateway: GatewaySettings) -> StatusCache:
    return StatusCache(
        gateway.status_cache_dir, f"{batch.name}-status", gateway.status_max_age_s, batch.bulk_status,
        lock_wait=gateway.command_timeout_s + 5,
    )


def _format_walltime(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def hold_for_ended_job(copy: classad2.ClassAd, status: BatchJobStatus, lrms: str) -> Hold:
    """A batch job that ended without an exit_status file: a reason a user can act on."""
    job = f"batch job {status.job_id}"
    where = f" on partition {string_attr(copy, 'HpcPullPartition')}" if string_attr(copy, "HpcPullPartition") else ""
    native = f"({lrms} {status.native_state})"
    state = status.state
    if state is BatchState.TIMEOUT:
        limit = number_attr(copy, "HpcPullWalltime")
        wall = f" {_format_walltime(limit)}" if limit else ""
        reason = f"hpcpull: {job} exceeded its walltime{wall}{where} {native}"
        return Hold(reason, holds.JOB_DURATION_EXCEEDED, holds.SUB_WALLTIME)
    if state is BatchState.OUT_OF_MEMORY:
        return Hold(f"hpcpull: {job} ran out of memory (request_memory = "
                    f"{int_attr(copy, 'RequestMemory')} MB) {native}", holds.JOB_OUT_OF_RESOURCES, holds.SUB_MEMORY)
    if state in (BatchState.NODE_FAIL, BatchState.BOOT_FAIL):
        return Hold(f"hpcpull: {job} failed because its node failed {native}", 0, holds.SUB_NODE_FAILURE)
    if state is BatchState.PREEMPTED:
        return Hold(f"hpcpull: {job} was preempted {native}", 0, holds.SUB_PREEMPTED)
    if state is BatchState.CANCELLED:
        return Hold(f"hpcpull: {job} was cancelled outside HTCondor {native}", 0, holds.SUB_CANCELLED)
    return Hold(
        f"hpcpull: {job} ended {native} without writing its exit_status file; see "
        f"{string_attr(copy, 'HpcPullJobDir')}/{jd.CONTROL_DIR}/{jd.BATCH_OUTPUT}",
        0, holds.SUB_NO_EXIT_STATUS,
    )


# --------------------------------------------------------------------------- TRANSLATE


PAUSE_WINDOW_S = 300


def _refuse_while_unreachable(route: RouteSettings, gateway: GatewaySettings) -> None:
    """Routing pauses while the batch system does not answer: a job routed now could only
    wait, held by nobody, and routing later loses nothing (TRANSLATE exit 1: the router
    retries).  Judged from the latest status snapshot, written by the poller or a hook; a
    failed one older than PAUSE_WINDOW_S no longer counts (nobody has looked since)."""
    cache = StatusCache(gateway.status_cache_dir, f"{route.lrms}-status", gateway.status_max_age_s, dict)
    snap = cache.latest(with_jobs=False)
    window = max(PAUSE_WINDOW_S, 2 * gateway.status_max_age_s)
    if snap is not None and not snap.ok and time.time() - snap.taken_at < window:
        raise ConfigError(
            f"routing to {route.name} paused: {route.lrms} did not answer at "
            f"{time.strftime('%H:%M:%S', time.localtime(snap.taken_at))} ({snap.error or 'no reason given'})"
        )


def _prepare_job_dir(source: classad2.ClassAd, route: RouteSettings, job: jd.JobDir, spool: str) -> None:
    """Stage the input sandbox and write the control files; JobRejected for a bad job."""
    from hpcpull.node import launcher
    from hpcpull.script.render import render_batch_script  # lazy: only TRANSLATE renders
    from hpcpull.staging.sandbox import transfer_input_sandbox

    owner_root = job.path.parent.parent
    try:
        owner_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = owner_root / f".hpcpull-probe-{_job_id(source)}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"scratch root {owner_root} is not writable: {exc.strerror}") from None
    try:
        transfer_input_sandbox(
            source, owner_root, link=route.link_inputs, spool_dirs=[Path(spool)] if spool else [],
            confine_to_iwd=is_spooled(source, spool),
        )
    except JobRejected:
        raise
    except OSError as exc:
        reason = f"hpcpull: staging the input sandbox failed: {exc}"
        raise JobRejected(reason, holds.TRANSFER_INPUT_ERROR, exc.errno or 0) from None
    stage_credentials(source, job.path)
    crash_point("translate:before-control-files")
    job.control.mkdir(mode=0o700, exist_ok=True)
    shutil.copyfile(launcher.__file__, job.file(jd.LAUNCHER))
    job.file(jd.JOB_AD).write_text(format_ad(source), encoding="utf-8")
    script = render_batch_script(source, route, job.path)
    job.file(jd.BATCH_SCRIPT).write_text(script, encoding="utf-8")
    job.file(jd.BATCH_SCRIPT).chmod(0o700)


def translate(text: str, config: Config) -> HookResult:
    route_ad, source = parse_translate_input(text)
    name = route_ad["Name"]
    if "JobUniverse" not in source:
        raise MalformedInput("source job ad has no JobUniverse")
    if not config.route_exists(name):
        raise ConfigError(f"unknown route {name!r}: no JOB_ROUTER_ROUTE_{name} in the configuration")
    if not config.is_hpcpull_route(name):
        return HookResult(format_ad(source))  # another tool's route: hand the job over untouched
    route = config.route(name)
    _refuse_while_unreachable(route, config.gateway())
    routed = classad2.ClassAd()
    for attr in source.keys():
        low = attr.lower()
        if low in KEEP_IN_ROUTED or (low not in DROP_FROM_ROUTED and not low.startswith(DROP_PREFIXES)):
            routed[attr] = source.lookup(attr)
    routed["Managed"] = "External"
    routed["ManagedManager"] = "hpcpull"
    routed["HpcPullSite"] = route.name
    routed["HpcPullLrms"] = route.lrms
    routed["HpcPullPriorWallClock"] = number_attr(source, "RemoteWallClockTime")
    messages = []
    job: Optional[jd.JobDir] = None
    try:
        owner = string_attr(source, "Owner")
        if not jd.valid_owner(owner):
            raise JobRejected(f"hpcpull: Owner {owner!r} is not a valid user name", 0, holds.HOLD_SUBCODE_INVALID_JOB)
        job = jd.job_dir_for(route.scratch_root, owner, int_attr(source, "ClusterId"), int_attr(source, "ProcId"))
        from hpcpull.script.resources import resource_request

        request = resource_request(source, route)
        _finish_leftovers(job.path.parent.parent, route, config)
        adopted = _adopt_earlier_submission(job, source, route, config)
        if not adopted:
            _prepare_job_dir(source, route, job, spool_dir())
        routed["HpcPullJobDir"] = str(job.path)
        routed["HpcPullScript"] = str(job.file(jd.BATCH_SCRIPT))
        if request.partition:
            routed["HpcPullPartition"] = request.partition
        if request.walltime_s:
            routed["HpcPullWalltime"] = request.walltime_s
        _note(job, "translate", f"route {route.name}: routed again; it keeps its batch job {adopted}" if adopted
              else f"route {route.name}: staged sandbox and rendered {jd.BATCH_SCRIPT}")
        _event(config.gateway(), "ROUTED", routed, job_dir=job.path, owner=owner,
               submitter=string_attr(source, "SubmitterId"), adopted=adopted or None)
        state: Optional[SubmissionState] = None
        if adopted:
            state = load_state(job)
        elif route.submit_at_routing:
            state = _submit_at_routing(job, routed, route, config.gateway())
        if state is not None and state.batch_job_id:
            routed["HpcPullBatchJobId"] = state.batch_job_id
            for attr, value in _fast_path_attributes(routed, state, Observation(Phase.PENDING), route,
                                                     config.gateway(), time.time()).items():
                routed[attr] = value
    except JobRejected as rejected:
        # The job itself is at fault: route it anyway so UPDATE holds it with this reason
        # (a failing TRANSLATE would only leave it idle and retried forever).
        routed["HpcPullRouteError"] = rejected.reason
        routed["HpcPullRouteErrorCode"] = rejected.hold_code
        routed["HpcPullRouteErrorSubCode"] = rejected.hold_subcode or holds.HOLD_SUBCODE_INVALID_JOB
        if job is not None:
            shutil.rmtree(job.path, ignore_errors=True)  # a sandbox staged before the refusal
        messages.append(f"job {_job_id(source)} will be held: {rejected.reason}")
        _event(config.gateway(), "REFUSED", routed, reason=rejected.reason, owner=string_attr(source, "Owner"))
    return HookResult(format_ad(routed), 0, messages)


def _adopt_earlier_submission(job: jd.JobDir, source: classad2.ClassAd, route: RouteSettings,
                              config: Config) -> Optional[str]:
    """The job is routed again while an earlier routing's batch job still counts: CLEANUP
    parked it (see _cleanup_verdict), or an earlier TRANSLATE submitted it and died before
    the router read its output (a TRANSLATE killed by a signal with no output leaves the job
    claimed, and the router runs TRANSLATE again: JobRouterHookMgr.cpp
    TranslateClient::hookExited).  Keep the job directory and that batch job -- waiting,
    running, or ended with its exit_status -- so that the job runs once.  Returns the adopted
    batch job's id (or token), None if there is nothing to adopt."""
    if not job.control.is_dir():
        return None
    gateway = config.gateway()
    with JobLock(job, wait=gateway.command_timeout_s) as lock:
        if not lock.acquired:
            raise ConfigError(f"job directory {job.path} is busy in another hook")
        state = load_state(job)
        if state.cleaned or not (state.parked or state.batch_job_id or state.token):
            return None
        try:
            saved = parse_old_ad(job.file(jd.JOB_AD).read_text(encoding="utf-8"), "saved job ad")
            same_job = string_attr(saved, "GlobalJobId") == string_attr(source, "GlobalJobId")
        except (OSError, MalformedInput):
            same_job = False
        if not same_job or route_of_batch_job(state.job_name or "") != route.name:
            # Another job with this id, or another route now: the parked batch job is stale.
            # It is cancelled in its own batch system, which need not be this route's.
            try:
                teardown.stop_batch_job(job, _batch_for(config), _job_id(source))
            except HpcPullError as exc:
                raise ConfigError(f"cannot cancel the stale batch job of {job.path} yet: {exc}") from None
            _parked_marker(job).unlink(missing_ok=True)
            return None
        state.parked = False
        save_state(job, state)
    _parked_marker(job).unlink(missing_ok=True)
    return state.batch_job_id or state.token or "(being submitted)"


def _submit_at_routing(job: jd.JobDir, routed: classad2.ClassAd, route: RouteSettings,
                       gateway: GatewaySettings) -> Optional[SubmissionState]:
    """Submit the batch script now, in the process that rendered it: the job's first UPDATE
    then only reports.  Exactly once as in UPDATE (submission.py); a throttle, a busy job
    directory or a batch system that does not take the job now leaves the submission to
    UPDATE, which waits, retries or holds the job with the batch system's answer."""
    batch = _batch(route, gateway)
    if _throttled(route, gateway, batch):
        return None
    source_job_id = _job_id(routed)  # TRANSLATE: still the source job's ClusterId and ProcId
    with JobLock(job) as lock:
        if not lock.acquired:
            return None
        try:
            job_id = submit_once(job, batch, job.file(jd.BATCH_SCRIPT), source_job_id, route.name, "translate")
        except LrmsError as exc:
            _note(job, "translate", f"submit failed, UPDATE tries again: {exc}")
            return None
        _record_submission(gateway, route)
        state = load_state(job)
    _note(job, "translate", f"submitted batch job {job_id}")
    _event(gateway, "SUBMITTED", routed, batch_job=job_id, lrms=batch.name)
    return state


# --------------------------------------------------------------------------- UPDATE


def _observe(
    job: jd.JobDir, state: SubmissionState, copy: classad2.ClassAd, batch: BatchSystem,
    gateway: GatewaySettings, route: RouteSettings, now: float,
) -> Observation:
    """Where the batch job is.  Caller holds the job lock; ``state`` may be updated and saved."""
    record = read_exit_record(job)
    if record is not None:  # authoritative, whatever the LRMS says
        return _finished(job, state, copy, batch, gateway, record, now)
    if not state.batch_job_id:
        return Observation(Phase.UNKNOWN)
    snap = _status_cache(batch, gateway).snapshot()
    if not snap.ok:
        return Observation(Phase.UNKNOWN)  # the LRMS is unreachable: no news is not bad news
    status = snap.jobs.get(state.batch_job_id)
    if status is None:
        if snap.taken_at < (state.submitted_at or 0) + 1:
            return Observation(Phase.UNKNOWN)  # snapshot older than the job
        try:
            status = batch.job_status(state.batch_job_id)  # not listed: ask about this job alone
        except LrmsError:
            return Observation(Phase.UNKNOWN)
    if status is None:
        state.missing_since = state.missing_since or now
        save_state(job, state)
        if now - state.missing_since < gateway.exit_file_grace_s:
            return Observation(Phase.UNKNOWN)
        return Observation(Phase.FAILED, hold=Hold(
            f"hpcpull: batch job {state.batch_job_id} disappeared from {batch.name} without "
            f"writing its exit_status file", 0, holds.SUB_VANISHED))
    if status.state is BatchState.PENDING:
        return Observation(Phase.PENDING)
    if status.state.is_active:
        return Observation(Phase.RUNNING, start=status.start_time or _started_time(job) or now)
    # Ended without exit_status: the file may still be on its way over the shared
    # filesystem, so wait HPCPULL_EXIT_FILE_GRACE before calling it a failure.
    state.terminal_seen_at = state.terminal_seen_at or now
    save_state(job, state)
    if now - state.terminal_seen_at < gateway.exit_file_grace_s:
        return Observation(Phase.UNKNOWN)
    if status.state.value in route.requeue_on and state.requeues < route.max_requeues:
        _requeue(job, state, f"batch job {status.job_id} ended {status.native_state}")
        _event(gateway, "REQUEUED", copy, batch_job=status.job_id, state=status.native_state,
               requeues=state.requeues)
        return Observation(Phase.PENDING)
    return Observation(Phase.FAILED, hold=hold_for_ended_job(copy, status, batch.name))


def _finished(job: jd.JobDir, state: SubmissionState, copy: classad2.ClassAd, batch: BatchSystem,
              gateway: GatewaySettings, record: ExitRecord, now: float) -> Observation:
    """The payload exited: completed -- unless an output file it promised is missing, which
    holds the job as HTCondor does (outputs.py).  The file may still be on its way over the
    shared filesystem, so it is waited for HPCPULL_EXIT_FILE_GRACE first.  Caller holds the lock."""
    from hpcpull.staging.outputs import hold_for_missing_outputs, missing_outputs

    missing = missing_outputs(copy, job.path, record)
    if not missing:
        return Observation(Phase.FINISHED, exit=record)
    if state.outputs_missing_since is None:
        state.outputs_missing_since = now
        save_state(job, state)
    if now - state.outputs_missing_since < gateway.exit_file_grace_s:
        return Observation(Phase.UNKNOWN)
    return Observation(Phase.FAILED, exit=record,
                       hold=hold_for_missing_outputs(job.path, missing, state.batch_job_id, batch.name))


def _requeue(job: jd.JobDir, state: SubmissionState, why: str) -> None:
    """Forget the batch job (its node failed, it was preempted) so the next UPDATE submits
    the script again; the job restarts in its job directory.  Caller holds the job lock."""
    state.requeues += 1
    state.batch_job_id = state.token = state.job_name = None
    state.submitted_at = state.terminal_seen_at = state.missing_since = None
    for name in (jd.STARTED, jd.EXIT_STATUS):
        try:
            job.file(name).unlink()
        except FileNotFoundError:
            pass
    save_state(job, state)
    _note(job, "update", f"{why}: submitting again (requeue {state.requeues})")


def update(text: str, config: Config, now: Optional[float] = None) -> HookResult:
    now = time.time() if now is None else now
    copy = parse_old_ad(text, "routed job ad")
    route_name = string_attr(copy, "RouteName")
    if not route_name or not config.is_hpcpull_route(route_name):
        return HookResult()
    status = int_attr(copy, "JobStatus")
    if status == COMPLETED:
        return HookResult()  # waiting for FINALIZE
    if status == HELD:
        return _held(copy, config)
    rejected = string_attr(copy, "HpcPullRouteError")
    if rejected:
        if status == REMOVED:
            return _updates({"Managed": "ScheddDone"})
        hold = Hold(rejected, int_attr(copy, "HpcPullRouteErrorCode"), int_attr(copy, "HpcPullRouteErrorSubCode"))
        _event(config.gateway(), "HELD", copy, reason=rejected, owner=string_attr(copy, "Owner"))
        return _updates(hold_set(copy, hold, now), f"held: {rejected}")
    route, gateway = config.route(route_name), config.gateway()
    try:
        job = _routed_job_dir(copy)
        problem = f"job directory {string_attr(copy, 'HpcPullJobDir') or '(none)'} is missing"
    except HpcPullError as exc:  # an edited HpcPullJobDir: never act on someone else's directory
        job, problem = None, str(exc)
    batch = _batch(route, gateway)
    source_job_id = string_attr(copy, "RoutedFromJobId")
    if job is None or not job.control.is_dir():
        if status == REMOVED:
            return _updates({"Managed": "ScheddDone"})
        return _updates(hold_set(copy, Hold(f"hpcpull: {problem}", 0, holds.SUB_JOB_DIR_MISSING), now))
    with JobLock(job) as lock:
        if not lock.acquired:
            return HookResult()  # another hook is working on this job right now
        state = load_state(job)
        if state.cleaned:
            if status == REMOVED:
                return _updates({"Managed": "ScheddDone"})
            if state.give_back:
                return _give_back(job, state, copy, route, gateway)  # the schedd did not take it yet
            return HookResult()
        if status == REMOVED:
            # Someone removed the copy: stop the batch job and let the copy leave the queue
            # (nothing is left to keep for a re-route; CLEANUP removes the directory).
            cancelled = teardown.stop_batch_job(
                job, _batch_for(config, string_attr(copy, "HpcPullLrms"), route.lrms), source_job_id)
            _note(job, "update", f"copy removed; cancelled batch job {cancelled}" if cancelled else "copy removed")
            _event(gateway, "REMOVED", copy, cancelled=cancelled)
            return _updates({"Managed": "ScheddDone"})
        if state.lrms and state.lrms != batch.name and (state.batch_job_id or state.token):
            # Submitted before the route's HPCPULL_LRMS changed: followed where it was submitted.
            batch = get_batch_system(state.lrms, lrms_command_environment(gateway), gateway.command_timeout_s)
        if not state.batch_job_id and status == IDLE:
            throttled = _throttled(route, gateway, batch)
            if throttled:
                if not state.throttled:
                    state.throttled = True
                    save_state(job, state)
                    _note(job, "update", f"submission waits: {throttled}")
                    _event(gateway, "THROTTLED", copy, reason=throttled)
                return HookResult()
            try:
                job_id = submit_once(job, batch, job.file(jd.BATCH_SCRIPT), source_job_id, route.name)
                _record_submission(gateway, route)
                state = load_state(job)
                crash_point("update:after-record")
                _note(job, "update", f"submitted batch job {job_id}")
                _event(gateway, "SUBMITTED", copy, batch_job=job_id, lrms=batch.name)
            except LrmsError as exc:
                _note(job, "update", f"submit failed: {exc}")
                if exc.transient:
                    _event(gateway, "SUBMIT_DEFERRED", copy, reason=str(exc))
                    return HookResult(messages=[f"submit deferred: {exc}"])
                hold = Hold(f"hpcpull: {batch.name} refused the job: {exc}", 0, holds.SUB_SUBMIT_REFUSED)
                _event(gateway, "HELD", copy, reason=hold.reason)
                return _updates(hold_set(copy, hold, now), f"held: {hold.reason}")
        for name in refresh_credentials(copy, job.path):
            _note(job, "update", f"credential {name} renewed by the user: copied again")
        seen = _observe(job, state, copy, batch, gateway, route, now)
        if (seen.phase is Phase.PENDING and route.max_idle_s is not None and state.submitted_at
                and now - state.submitted_at > route.max_idle_s):
            return _undo_routing(job, state, copy, config, route, now)
    updates = transition(copy, seen, now)
    if state.batch_job_id and state.batch_job_id != string_attr(copy, "HpcPullBatchJobId"):
        updates["HpcPullBatchJobId"] = state.batch_job_id
    updates.update(_fast_path_attributes(copy, state, seen, route, gateway, now))
    if "JobStatus" in updates:
        _note(job, "update", f"JobStatus {status} -> {updates['JobStatus']}"
              + (f": {seen.hold.reason}" if seen.hold else ""))
        _event(gateway, "STATUS", copy, batch_job=state.batch_job_id, status=f"{status}->{updates['JobStatus']}",
               reason=seen.hold.reason if seen.hold else None)
    return _updates(updates)


def _fast_path_attributes(copy: classad2.ClassAd, state: SubmissionState, seen: Observation,
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
    current_check = int(number_attr(copy, "HpcPullFullCheckAt"))
    check_at = fast_index.full_check_at(current_check, now, idle_deadline, bool(credentials_of(copy)))
    updates: dict[str, Value] = {}
    if index != (string_attr(copy, "HpcPullFastIndex") or None):
        updates["HpcPullFastIndex"] = index if index else classad2.ExprTree("undefined")
    if index and (check_at != current_check or "HpcPullFullCheckAt" not in copy):
        updates["HpcPullFullCheckAt"] = check_at
    if index and state.submitted_at and int(state.submitted_at) != int_attr(copy, "HpcPullSubmittedAt"):
        updates["HpcPullSubmittedAt"] = int(state.submitted_at)
    return updates


def _throttled(route: RouteSettings, gateway: GatewaySettings, batch: BatchSystem) -> str:
    """Why a submission on ``route`` must wait now ("" if it may go ahead)."""
    from hpcpull.state.submission import route_of_batch_job

    if route.max_batch_jobs is not None or route.max_batch_idle is not None:
        snap = _status_cache(batch, gateway).snapshot()  # the period's shared query, refreshed if stale
        if snap.ok:
            mine = [s for s in snap.jobs.values() if route_of_batch_job(s.name) == route.name and s.state.is_active]
            waiting = sum(1 for s in mine if s.state is BatchState.PENDING)
            if route.max_batch_jobs is not None and len(mine) >= route.max_batch_jobs:
                return f"route {route.name} has {len(mine)} jobs in {batch.name} (HPCPULL_MAX_BATCH_JOBS)"
            if route.max_batch_idle is not None and waiting >= route.max_batch_idle:
                return f"route {route.name} has {waiting} jobs waiting in {batch.name} (HPCPULL_MAX_BATCH_IDLE)"
    if route.submits_per_minute is not None:
        recent = _recent_submissions(gateway, route)
        if len(recent) >= route.submits_per_minute:
            return f"{len(recent)} submissions on route {route.name} in the last minute (HPCPULL_SUBMITS_PER_MINUTE)"
    return ""


def _submissions_file(gateway: GatewaySettings, route: RouteSettings) -> Path:
    return gateway.status_cache_dir / f"{route.name}-submits.{os.getuid()}"


def _recent_submissions(gateway: GatewaySettings, route: RouteSettings) -> list[float]:
    try:
        stamps = [float(x) for x in _submissions_file(gateway, route).read_text().split()]
    except (OSError, ValueError):
        return []
    return [t for t in stamps if time.time() - t < 60]


def _record_submission(gateway: GatewaySettings, route: RouteSettings) -> None:
    if route.submits_per_minute is None:
        return
    try:
        stamps = _recent_submissions(gateway, route) + [time.time()]
        ensure_shared_dir(gateway.status_cache_dir)
        write_atomically(_submissions_file(gateway, route), " ".join(f"{t:.3f}" for t in stamps), mode=0o644)
    except OSError:
        pass


def _undo_routing(job: jd.JobDir, state: SubmissionState, copy: classad2.ClassAd, config: Config,
                  route: RouteSettings, now: float) -> HookResult:
    """The batch job waited longer than HPCPULL_MAX_IDLE_TIME: cancel it and give the job back
    to HTCondor, idle, to run elsewhere (the seed's "undo the transformation").  Caller
    holds the job lock."""
    waited = int(now - (state.submitted_at or now))
    reason = (f"hpcpull: batch job {state.batch_job_id} waited {waited} s in {state.lrms or route.lrms} "
              f"(route {route.name} gives jobs back after {route.max_idle_s} s)")
    # Recorded first: from here on every UPDATE finishes the give-back, whatever stops this one.
    state.give_back = reason
    save_state(job, state)
    try:
        teardown.stop_batch_job(job, _batch_for(config, string_attr(copy, "HpcPullLrms"), route.lrms),
                                string_attr(copy, "RoutedFromJobId"))
    except HpcPullError as exc:
        state = load_state(job)  # as stop_batch_job left it (a recovered batch job id is kept)
        state.give_back = None   # not given back: the job is still the route's
        save_state(job, state)
        return HookResult(messages=[f"undo routing: cannot cancel batch job {state.batch_job_id} yet: {exc}"])
    _note(job, "update", reason)
    return _give_back(job, load_state(job), copy, route, config.gateway())


def _give_back(job: jd.JobDir, state: SubmissionState, copy: classad2.ClassAd, route: RouteSettings,
               gateway: GatewaySettings) -> HookResult:
    """The schedd's part of a give-back: the route added to the source's HpcPullUndoneRoutes,
    then the copy removed (the router then yields the source, idle).  Until the schedd has
    applied both, ``state.give_back`` stays and each UPDATE tries again: a copy removed
    without the edit would let the route take the job back, a copy not removed would stay
    idle for ever.  Caller holds the job lock."""
    source_id, reason = string_attr(copy, "RoutedFromJobId"), state.give_back or ""
    schedd = gateway_schedd(gateway.schedd_double)
    undone = [r for r in string_attr(copy, UNDONE_ROUTES).split(",") if r.strip()]
    if route.name not in undone:
        undone.append(route.name)
    edited = schedd.edit(source_id, UNDONE_ROUTES, classad2.quote(",".join(undone)))
    if not edited.applied and not edited.gone:
        _note(job, "update", f"giving job {source_id} back waits for the schedd: {edited}")
        return HookResult(messages=[f"giving job {source_id} back waits for the schedd: {edited}"])
    # The directory stays until CLEANUP: the router's next UPDATE still gets the copy as it
    # was before this removal (JobRouter.cpp refreshes dest_ad from its queue mirror), and
    # finds it cleaned, not missing.
    removed = schedd.remove(_job_id(copy), reason)
    if not removed.applied and not removed.gone:
        _note(job, "update", f"giving job {source_id} back waits for the schedd: {removed}")
        return HookResult(messages=[f"giving job {source_id} back waits for the schedd: {removed}"])
    state.give_back = None
    save_state(job, state)
    _event(gateway, "UNDONE", copy, batch_job=state.batch_job_id, reason=reason, undone_routes=",".join(undone),
           outcome=str(removed))
    return HookResult(messages=[f"gave job {source_id} back: {reason}"])


def _held(copy: classad2.ClassAd, config: Config) -> HookResult:
    """A held copy (its hold mirrored on the source).  condor_release of the source cannot
    undo a mirrored hold (the router re-holds it: routed-copy recipe, pitfall 4), so UPDATE
    watches for it: once the source is released, the batch job is cancelled, the job
    directory set aside, and the copy removed -- the router then routes the source again,
    from a clean state (a new TRANSLATE, a new batch job)."""
    route, gateway = config.route(string_attr(copy, "RouteName")), config.gateway()
    schedd = gateway_schedd(gateway.schedd_double)
    source_id = string_attr(copy, "RoutedFromJobId")
    try:
        source_status = schedd.source_status(source_id)
    except ScheddUnreachable:
        return HookResult()  # asked again next poll
    job = _own_job_dir(copy)
    if job is not None and not job.control.is_dir():
        job = None
    if source_status == HELD:
        if job is not None:
            _remember_source_held(job)
        return HookResult()
    # condor_release makes a held job idle (JobStatus 1); removed (3: CLEANUP ends it), gone
    # from the queue, or anything else is no release.
    if source_status != IDLE or not _released(copy, job):
        return HookResult()
    ended: Optional[teardown.Ended] = None
    if job is not None:
        try:
            ended = teardown.tear_down(
                job, _batch_for(config, string_attr(copy, "HpcPullLrms"), route.lrms), source_id,
                Keep.of(route), failed_reason(copy), reused=True)
        except teardown.Busy:
            return HookResult()  # asked again next poll
        except LrmsError as exc:
            return HookResult(messages=[f"released job {source_id}: cannot cancel its batch job yet: {exc}"])
    outcome = schedd.remove(_job_id(copy), "hpcpull: the source job was released; it is routed again")
    if not outcome.applied and not outcome.gone:
        return HookResult(messages=[f"released job {source_id}: the copy stays until the schedd removes it: "
                                    f"{outcome}"])
    _event(gateway, "RELEASED", copy, outcome=str(outcome), kept=ended.kept if ended else None,
           cancelled=ended.cancelled if ended else None)
    return HookResult()


def _released(copy: classad2.ClassAd, job: Optional[jd.JobDir]) -> bool:
    """Whether an idle source means its user released it.  The router mirrors the copy's
    status onto the source after each UPDATE (JobRouter.cpp FinishCheckSubmittedJobStatus:
    update_job_status), so a hold hpcpull printed is on the source before the next UPDATE,
    and an idle source was released.  A hold someone else put on the copy (condor_hold of
    the copy, its periodic_hold) is first seen by an UPDATE that runs before that mirroring:
    until UPDATE has seen the source held, idle means not mirrored yet."""
    if string_attr(copy, "HoldReason").startswith("hpcpull") or string_attr(copy, "HpcPullRouteError"):
        return True
    return job is None or load_state(job).source_held_seen


def _remember_source_held(job: jd.JobDir) -> None:
    with JobLock(job) as lock:
        if not lock.acquired:
            return  # the next poll remembers it
        state = load_state(job)
        if not state.source_held_seen:
            state.source_held_seen = True
            save_state(job, state)


# --------------------------------------------------------------------------- FINALIZE


def finalize(text: str, config: Config, now: Optional[float] = None) -> HookResult:
    now = time.time() if now is None else now
    source, copy = parse_finalize_input(text)
    if not config.is_hpcpull_route(string_attr(copy, "RouteName")):
        return HookResult()
    # The router never updates the source's EnteredCurrentStatus on completion.
    updates: dict[str, Value] = {"EnteredCurrentStatus": int(number_attr(copy, "CompletionDate") or now)}
    messages = []
    job = None
    try:
        from hpcpull.staging.sandbox import transfer_output_sandbox

        job = _routed_job_dir(copy)
        if job is None:
            raise HpcPullError("routed job has no HpcPullJobDir")
        for attr in ("ExitCode", "ExitBySignal", "ExitSignal"):  # for when_to_transfer_output
            if attr in copy:
                source[attr] = copy.lookup(attr)
        spooled = is_spooled(source, spool_dir())
        report = transfer_output_sandbox(source, job.path, link=True, confine_to_iwd=spooled)
        if not _mark_outputs_returned(job):
            _note(job, "finalize", "job directory busy in another hook: outputs returned but not recorded "
                  "(CLEANUP returns them again)")
        # As the shadow does: the files now in the Iwd, which the schedd sends when the
        # submitter fetches a spooled job's output (HTCondor-C, condor_transfer_data).
        updates["SpooledOutputFiles"] = ",".join(report.returned)
        errors = list(report.errors)
        _note(job, "finalize", f"returned {len(report.returned)} output(s)"
              + (f"; {len(errors)} problem(s): {'; '.join(errors)}" if errors else ""))
    except Exception as exc:  # noqa: BLE001 - FINALIZE must not fail (see module doc)
        errors = [str(exc) or type(exc).__name__]
        _note(job, "finalize", f"output transfer failed: {errors[0]}")
    # Accounting: who ran what for which access point, in the job ad and the log.
    for attr in ("HpcPullBatchJobId", "HpcPullSite", "HpcPullLrms"):
        if string_attr(copy, attr):
            updates[attr] = string_attr(copy, attr)
    if errors:
        updates["HpcPullOutputErrors"] = "; ".join(errors)[:2000]
        messages.append(f"job {string_attr(copy, 'RoutedFromJobId')}: output problems: {'; '.join(errors)}")
    by_signal = "ExitBySignal" in copy and copy.eval("ExitBySignal") is True
    _event(
        config.gateway(), "FINISHED", copy, lrms=string_attr(copy, "HpcPullLrms"),
        owner=string_attr(copy, "Owner"), submitter=string_attr(copy, "SubmitterId"),
        submitter_job=string_attr(copy, "SubmitterGlobalJobId"),
        exit_code=None if by_signal else int_attr(copy, "ExitCode"),
        exit_signal=int_attr(copy, "ExitSignal") if by_signal else None,
        wall_s=number_attr(copy, "RemoteWallClockTime"), user_cpu_s=number_attr(copy, "RemoteUserCpu"),
        sys_cpu_s=number_attr(copy, "RemoteSysCpu"), memory_mb=int_attr(copy, "MemoryUsage") or None,
        output_errors=len(errors) or None, returned=updates.get("SpooledOutputFiles"),
    )
    return _updates(updates, *messages)


# --------------------------------------------------------------------------- CLEANUP


def cleanup(text: str, config: Config) -> HookResult:
    copy = parse_old_ad(text, "routed job ad")
    route_name = string_attr(copy, "RouteName")
    if not route_name or not config.is_hpcpull_route(route_name):
        return HookResult()
    route, gateway = config.route(route_name), config.gateway()
    job = _own_job_dir(copy)
    messages = []
    kept: Optional[Path] = None
    cancelled_id: Optional[str] = None
    if job is not None and job.control.is_dir():
        failure = failed_reason(copy)
        with JobLock(job, wait=gateway.command_timeout_s) as lock:
            if not lock.acquired:
                return HookResult(exit_code=1, messages=["job is busy in another hook; will retry"])
            verdict = _cleanup_verdict(copy, load_state(job), gateway)
            if verdict != CLEAN:
                return _park(job, copy, gateway, verdict)
            # A killed CLEANUP is not run again (_finish_leftovers); the marker keeps what the
            # copy said about the job, which nobody else knows.
            _write_marker(_cleaning_marker(job), {"failure": failure})
            if int_attr(copy, "JobStatus") == COMPLETED and not load_state(job).outputs_returned:
                _finish_output_return(job, copy)
            try:
                cancelled_id = teardown.stop_batch_job(
                    job, _batch_for(config, string_attr(copy, "HpcPullLrms"), route.lrms),
                    string_attr(copy, "RoutedFromJobId"), crash_after_cancel="cleanup:after-cancel")
            except LrmsError as exc:
                _note(job, "cleanup", f"could not cancel the batch job, will retry: {exc}")
                return HookResult(exit_code=1, messages=[f"cannot cancel batch job yet: {exc}"])
            _note(job, "cleanup", f"cancelled batch job {cancelled_id}" if cancelled_id else "nothing to cancel")
        kept = teardown.dispose(job, Keep.of(route), failure)
        try:
            _cleaning_marker(job).unlink(missing_ok=True)
        except OSError:
            pass
        _finish_leftovers(job.path.parent.parent, route, config)
    outcome = gateway_schedd(gateway.schedd_double).hand_back(_job_id(copy))
    _note(job if route.keep_job_dirs else None, "cleanup", str(outcome))
    _event(gateway, "CLEANED", copy, outcome=str(outcome), kept=kept, cancelled=cancelled_id)
    messages.append(str(outcome))
    return HookResult(messages=messages)


CLEAN, PARK = "clean", "park"


def _cleanup_verdict(copy: classad2.ClassAd, state: SubmissionState, gateway: GatewaySettings) -> str:
    """CLEAN (cancel what is left, remove the job dir), PARK, or why CLEANUP must wait.

    The router runs CLEANUP when a job is over (FINALIZE done, the job removed or held by
    its user) and also when it gives the job back to be routed again after a failure of
    its own: an UPDATE whose output it could not push to a schedd that was down or
    restarting, or a failed FINALIZE (JobRouter.cpp: GracefullyRemoveJob, RerouteJob; the
    yield leaves the source job idle).  In that second case the source job is still idle or
    running in the queue, and its batch job -- alive, or ended with its exit_status -- is
    the job's one run: PARK keeps both for the re-route to adopt, so the job never runs
    twice.  Only the schedd can tell the cases apart; while it cannot answer, CLEANUP waits
    (exit 1: the router runs it again every poll, and its own yield fails meanwhile too).
    """
    if state.cleaned or state.outputs_returned or not (state.batch_job_id or state.token):
        return CLEAN
    try:
        status = gateway_schedd(gateway.schedd_double).source_status(string_attr(copy, "RoutedFromJobId"))
    except ScheddUnreachable as exc:
        return f"the schedd cannot tell whether job {string_attr(copy, 'RoutedFromJobId')} is still wanted ({exc})"
    return PARK if status in (IDLE, RUNNING) else CLEAN


def _park(job: jd.JobDir, copy: classad2.ClassAd, gateway: GatewaySettings, verdict: str) -> HookResult:
    """Keep the job dir and batch job for the job's re-route (PARK), or wait (any other
    verdict: its reason).  Caller holds the job lock."""
    if verdict != PARK:
        _note(job, "cleanup", f"waiting: {verdict}")
        return HookResult(exit_code=1, messages=[f"waiting: {verdict}"])
    state = load_state(job)
    if not state.parked:
        state.parked = True
        save_state(job, state)
        _write_marker(_parked_marker(job), {})
        _note(job, "cleanup", f"the router gives job {string_attr(copy, 'RoutedFromJobId')} back to be routed "
              f"again: batch job {state.batch_job_id} is kept for it")
        _event(gateway, "PARKED", copy, batch_job=state.batch_job_id)
    outcome = gateway_schedd(gateway.schedd_double).hand_back(_job_id(copy))
    return HookResult(messages=[f"kept batch job {state.batch_job_id} for the re-route; {outcome}"])


# Notes the owner's later hooks look for, <root>/<Owner>/<kind>/<ClusterId>.<ProcId>: a job
# parked for its re-route, and a CLEANUP that may have been killed (the router counts a
# CLEANUP killed by a signal as done and never runs it again: JobRouterHookMgr.cpp,
# CleanupClient::hookExited, WIFSIGNALED).  Each holds a small JSON object.
PARKED_DIR = ".hpcpull-parked"
CLEANING_DIR = ".hpcpull-cleaning"


def _parked_marker(job: jd.JobDir) -> Path:
    return _owner_marker(job, PARKED_DIR)


def _cleaning_marker(job: jd.JobDir) -> Path:
    return _owner_marker(job, CLEANING_DIR)


def _owner_marker(job: jd.JobDir, kind: str) -> Path:
    markers = job.path.parent.parent / kind
    markers.mkdir(mode=0o700, exist_ok=True)
    return markers / f"{job.path.parent.name}.{job.path.name}"


def _write_marker(marker: Path, content: dict[str, str]) -> None:
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


def _finish_leftovers(owner_root: Path, route: RouteSettings, config: Config) -> None:
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
        ended = teardown.tear_down(job, _batch_for(config), source_id, _keep_for(config, state, route), "",
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
            job, _batch_for(config), source_id, _keep_for(config, state, route), failure,
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
    _write_marker(marker, {**content, "problem": problem})
    gateway = config.gateway()
    write_event(gateway.log_path, gateway.max_log_bytes, "LEFTOVER", job=marker.name, marker=marker,
                problem=problem)


def _mark_outputs_returned(job: jd.JobDir) -> bool:
    """Record that FINALIZE returned the output sandbox; False if the job lock was not had
    (then nothing is written: another hook is saving the state)."""
    with JobLock(job, wait=5.0) as lock:
        if not lock.acquired:
            return False
        state = load_state(job)
        state.outputs_returned = True
        save_state(job, state)
    return True


def _finish_output_return(job: jd.JobDir, copy: classad2.ClassAd) -> None:
    """FINALIZE died before the whole output sandbox was back (a hook killed by a signal
    counts as done to the router, which never runs FINALIZE again: JobRouterHookMgr.cpp
    ExitClient::hookExited): return it now, from the job ad TRANSLATE saved."""
    from hpcpull.staging.sandbox import transfer_output_sandbox

    try:
        source = parse_old_ad(job.file(jd.JOB_AD).read_text(encoding="utf-8"), "saved job ad")
        for attr in ("ExitCode", "ExitBySignal", "ExitSignal"):
            if attr in copy:
                source[attr] = copy.lookup(attr)
        report = transfer_output_sandbox(source, job.path, link=True,
                                         confine_to_iwd=is_spooled(source, spool_dir()))
        _note(job, "cleanup", f"FINALIZE did not finish: returned {len(report.returned)} output(s)"
              + (f"; problems: {'; '.join(report.errors)}" if report.errors else ""))
    except Exception as exc:  # noqa: BLE001 - CLEANUP goes on; the note says what was lost
        _note(job, "cleanup", f"FINALIZE did not finish and the output return failed: {exc}")


def failed_reason(copy: classad2.ClassAd) -> str:
    """Why the routed job counts as failed ("" if it did not): worth keeping for inspection."""
    if string_attr(copy, "HpcPullRouteError"):
        return f"refused at routing: {string_attr(copy, 'HpcPullRouteError')}"
    if "ExitBySignal" in copy and copy.eval("ExitBySignal") is True:
        return f"killed by signal {int_attr(copy, 'ExitSignal')}"
    if "ExitCode" in copy and int_attr(copy, "ExitCode") != 0:
        return f"exit code {int_attr(copy, 'ExitCode')}"
    for attr in ("HoldReason", "LastHoldReason"):
        if string_attr(copy, attr):
            return f"held: {string_attr(copy, attr)}"
    return ""


# --------------------------------------------------------------------------- hook I/O

_JOB_DIR_LINE = re.compile(r'^HpcPullJobDir = "([^"\\\n]*)"$', re.M)
_ROUTE_LINE = re.compile(r'^(?:RouteName|HpcPullSite) = "([A-Za-z0-9_]+)"$', re.M)


def _record_hook_io(name: str, stdin: str, stdout: str, lines: list[str], config: Config) -> None:
    """With HPCPULL_KEEP_HOOK_IO, keep this call's stdin/stdout/stderr in the job's hook-io/."""
    text = stdout if name == "translate" else stdin
    job_dir, route = _JOB_DIR_LINE.search(text), _ROUTE_LINE.search(text)
    if not job_dir or not route:
        return
    try:
        settings = config.route(route.group(1))
        if not settings.keep_hook_io:
            return
        control = Path(job_dir.group(1)) / jd.CONTROL_DIR
        root = os.path.realpath(settings.scratch_root)
        if not control.is_dir() or not os.path.realpath(control).startswith(root + os.sep):
            return
        io_dir = control / jd.HOOK_IO
        io_dir.mkdir(mode=0o700, exist_ok=True)
        for suffix, content in (("stdin", stdin), ("stdout", stdout), ("stderr", "".join(f"{x}\n" for x in lines))):
            (io_dir / f"{name}.{suffix}").write_text(content, encoding="utf-8")
    except (OSError, HpcPullError):
        return  # debugging aid only


# --------------------------------------------------------------------------- entry points

_MALFORMED_EXIT = {"translate": 2, "update": 0, "finalize": 0, "cleanup": 0}
_FAILED_EXIT = {"translate": 1, "update": 0, "finalize": 0, "cleanup": 1}


def run_hook(name: str, hook: Callable[[str, Config], HookResult], stdin: bytes,
             config: Optional[Config] = None) -> tuple[str, int, list[str]]:
    """Run one hook on raw stdin; returns (stdout, exit code, stderr lines, each one printable line)."""
    stdout, code, lines = _run_hook(name, hook, stdin, config or Config())
    return stdout, code, [one_stderr_line(line) for line in lines]


def _run_hook(name: str, hook: Callable[[str, Config], HookResult], stdin: bytes,
              config: Config) -> tuple[str, int, list[str]]:
    try:
        text = stdin.decode("utf-8")
        if os.geteuid() == 0 and not config.gateway().allow_root:
            return "", _FAILED_EXIT[name] or 1, [
                f"hpcpull {name}: refusing to run as root (hooks run as the job owner; "
                "set HPCPULL_ALLOW_ROOT = true only for a test gateway)"]
        result = hook(text, config)
    except UnicodeDecodeError:
        return "", _MALFORMED_EXIT[name], [f"hpcpull {name}: stdin is not UTF-8 text"]
    except MalformedInput as exc:
        return "", _MALFORMED_EXIT[name], [f"hpcpull {name}: malformed input: {exc}"]
    except (ConfigError, HpcPullError, LrmsError) as exc:
        return "", _FAILED_EXIT[name], [f"hpcpull {name}: {exc}"]
    except Exception as exc:  # noqa: BLE001 - never let a traceback replace the one line
        return "", _FAILED_EXIT[name], [f"hpcpull {name}: internal error: {type(exc).__name__}: {exc}"]
    lines = [f"hpcpull {name}: {m}" for m in result.messages]
    _record_hook_io(name, text, result.stdout, lines, config)
    return result.stdout, result.exit_code, lines


def one_stderr_line(text: str, limit: int = 2000) -> str:
    """A message as one printable line of bounded length: job values (a 1 MB Owner, a CR in
    a reason) must not flood or split the JobRouterLog line the router makes of it."""
    flat = " ".join(text.replace("\0", " ").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _main(name: str, hook: Callable[[str, Config], HookResult]) -> int:
    started = time.monotonic()
    stdin = sys.stdin.buffer.read()
    config = Config()
    stdout, code, lines = run_hook(name, hook, stdin, config)
    sys.stdout.write(stdout)
    sys.stdout.flush()
    for line in lines:
        print(line, file=sys.stderr)
    _debug_call(config, name, stdin, stdout, code, lines, time.monotonic() - started)
    return code


def _debug_call(config: Config, name: str, stdin: bytes, stdout: str, code: int, lines: list[str],
                seconds: float) -> None:
    """With HPCPULL_DEBUG = D_FULLDEBUG: one CALL line per hook run (never its content)."""
    try:
        gateway = config.gateway()
    except HpcPullError:
        return
    if "D_FULLDEBUG" not in gateway.debug:
        return
    from hpcpull.state.eventlog import write_event

    job = re.search(rb"^(?:RoutedFromJobId|GlobalJobId) = \"([^\"\n]{0,200})\"$", stdin, re.M)
    write_event(gateway.log_path, gateway.max_log_bytes, "CALL", hook=name,
                job=job.group(1).decode("utf-8", "replace") if job else None, rc=code,
                ms=round(seconds * 1000), stdin_bytes=len(stdin), stdout_bytes=len(stdout),
                stderr=lines[0] if lines else None)


def main_translate() -> int:
    return _main("translate", translate)


def main_update() -> int:
    return _main("update", update)


def main_finalize() -> int:
    return _main("finalize", finalize)


def main_cleanup() -> int:
    return _main("cleanup", cleanup)
