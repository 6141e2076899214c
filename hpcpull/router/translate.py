"""TRANSLATE_JOB: the source job ad in, the routed copy out; the sandbox staged and the batch
script rendered on the way (or, if the route says so, submitted at once)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

import classad2

from hpcpull import holds
from hpcpull.config import Config, GatewaySettings, RouteSettings
from hpcpull.errors import ConfigError, HpcPullError, JobRejected
from hpcpull.faults import crash_point
from hpcpull.lrms.base import LrmsError
from hpcpull.router import teardown
from hpcpull.router.cadence import RESTING_SUFFIX, cadence
from hpcpull.router.classads import (
    MalformedInput,
    format_ad,
    int_attr,
    number_attr,
    parse_old_ad,
    parse_translate_input,
    string_attr,
)
from hpcpull.router.common import batch_for, batch_system, event, fast_path_attributes, note
from hpcpull.router.jobstate import Observation, Phase
from hpcpull.router.leftovers import finish_leftovers, parked_marker
from hpcpull.router.protocol import HookResult, _main
from hpcpull.router.routed_job import RoutedJob
from hpcpull.router.throttle import record_submission, throttled
from hpcpull.staging.credentials import stage_credentials
from hpcpull.staging.spool import is_spooled, spool_dir
from hpcpull.state import jobdir as jd
from hpcpull.state.status_cache import StatusCache
from hpcpull.state.submission import JobLock, SubmissionState, load_state, route_of_batch_job, save_state, submit_once

# The router gives TRANSLATE the source job's ad as it stands in the queue.  A job routed
# before (given back, released, re-routed) still carries that routing's bookkeeping: the
# Managed and RoutedToJobId the router set, the status and hold it mirrored from the old
# copy (src/condor_job_router/VanillaToGrid.cpp, update_job_status: ShadowBday,
# JobCurrentStartDate, HoldReason*, HoldCopiedFromTargetJob), and what the schedd and the
# negotiator keep per job (AutoCluster*, LastRejMatch*, LastJobStatus).  A copy carrying them
# would start out held, running or managed by someone else.
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

PAUSE_WINDOW_S = 300


def _job_id(ad: classad2.ClassAd) -> str:
    return f"{int_attr(ad, 'ClusterId')}.{int_attr(ad, 'ProcId')}"


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
    from hpcpull.staging.input_sandbox import transfer_input_sandbox

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
    messages = _set_update_cadence(source, routed, config)
    job: Optional[jd.JobDir] = None
    try:
        owner = string_attr(source, "Owner")
        if not jd.valid_owner(owner):
            raise JobRejected(f"hpcpull: Owner {owner!r} is not a valid user name", 0, holds.HOLD_SUBCODE_INVALID_JOB)
        job = jd.job_dir_for(route.scratch_root, owner, int_attr(source, "ClusterId"), int_attr(source, "ProcId"))
        from hpcpull.script.resources import resource_request

        request = resource_request(source, route)
        finish_leftovers(job.path.parent.parent, route, config)
        adopted = _adopt_earlier_submission(job, source, route, config)
        if not adopted:
            _prepare_job_dir(source, route, job, spool_dir())
        routed["HpcPullJobDir"] = str(job.path)
        routed["HpcPullScript"] = str(job.file(jd.BATCH_SCRIPT))
        if request.partition:
            routed["HpcPullPartition"] = request.partition
        if request.walltime_s:
            routed["HpcPullWalltime"] = request.walltime_s
        note(job, "translate", f"route {route.name}: routed again; it keeps its batch job {adopted}" if adopted
             else f"route {route.name}: staged sandbox and rendered {jd.BATCH_SCRIPT}")
        event(config.gateway(), "ROUTED", RoutedJob.of(routed), job_dir=job.path, owner=owner,
              submitter=string_attr(source, "SubmitterId"), adopted=adopted or None)
        state: Optional[SubmissionState] = None
        if adopted:
            state = load_state(job)
        elif route.submit_at_routing:
            state = _submit_at_routing(job, routed, route, config.gateway())
        if state is not None and state.batch_job_id:
            routed["HpcPullBatchJobId"] = state.batch_job_id
            for attr, value in fast_path_attributes(RoutedJob.of(routed), state, Observation(Phase.PENDING), route,
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
        event(config.gateway(), "REFUSED", RoutedJob.of(routed), reason=rejected.reason,
              owner=string_attr(source, "Owner"))
    return HookResult(format_ad(routed), 0, messages)


def _set_update_cadence(source: classad2.ClassAd, routed: classad2.ClassAd, config: Config) -> list[str]:
    """Give the copy the HookKeyword that spaces its UPDATEs (router/cadence.py), unless the
    job chose hooks of its own.  An earlier routing's expression (it names the resting
    keyword) is replaced; with no interval configured now, by the plain keyword, which the
    router then copies back over it.  Returns the warnings to log."""
    own = str(source.lookup("HookKeyword")) if "HookKeyword" in source else ""
    keyword = config.param("JOB_ROUTER_HOOK_KEYWORD") or ""
    if own and own != f'"{keyword}"' and RESTING_SUFFIX not in own:
        return []
    chosen, why = cadence(config)
    if chosen is not None:
        routed["HookKeyword"] = classad2.ExprTree(chosen.hook_keyword(_job_id(source)))
    elif RESTING_SUFFIX in own and keyword:
        routed["HookKeyword"] = keyword
    return [why] if why else []


def _adopt_earlier_submission(job: jd.JobDir, source: classad2.ClassAd, route: RouteSettings,
                              config: Config) -> Optional[str]:
    """The job is routed again while an earlier routing's batch job still counts: CLEANUP
    parked it (see cleanup.cleanup_verdict), or an earlier TRANSLATE submitted it and died
    before the router read its output (a TRANSLATE killed by a signal with no output leaves
    the job claimed, and the router runs TRANSLATE again: JobRouterHookMgr.cpp
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
                teardown.stop_batch_job(job, batch_for(config), _job_id(source))
            except HpcPullError as exc:
                raise ConfigError(f"cannot cancel the stale batch job of {job.path} yet: {exc}") from None
            parked_marker(job).unlink(missing_ok=True)
            return None
        state.parked = False
        save_state(job, state)
    parked_marker(job).unlink(missing_ok=True)
    return state.batch_job_id or state.token or "(being submitted)"


def _submit_at_routing(job: jd.JobDir, routed: classad2.ClassAd, route: RouteSettings,
                       gateway: GatewaySettings) -> Optional[SubmissionState]:
    """Submit the batch script now, in the process that rendered it: the job's first UPDATE
    then only reports.  Exactly once as in UPDATE (submission.py); a throttle, a busy job
    directory or a batch system that does not take the job now leaves the submission to
    UPDATE, which waits, retries or holds the job with the batch system's answer."""
    batch = batch_system(route, gateway)
    if throttled(route, gateway, batch):
        return None
    source_job_id = _job_id(routed)  # TRANSLATE: still the source job's ClusterId and ProcId
    with JobLock(job) as lock:
        if not lock.acquired:
            return None
        try:
            job_id = submit_once(job, batch, job.file(jd.BATCH_SCRIPT), source_job_id, route.name, "translate")
        except LrmsError as exc:
            note(job, "translate", f"submit failed, UPDATE tries again: {exc}")
            return None
        record_submission(gateway, route)
        state = load_state(job)
    note(job, "translate", f"submitted batch job {job_id}")
    event(gateway, "SUBMITTED", RoutedJob.of(routed), batch_job=job_id, lrms=batch.name)
    return state


def main_translate() -> int:
    return _main("translate", translate)
