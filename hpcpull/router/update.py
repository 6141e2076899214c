"""UPDATE_JOB_INFO: the routed copy in, the attributes that changed out (nothing: no news).

The router runs it once per routed job per JOB_ROUTER_POLLING_PERIOD and mirrors the copy
onto the source job after each run (src/condor_job_router/JobRouter.cpp,
FinishCheckSubmittedJobStatus; src/condor_job_router/VanillaToGrid.cpp, update_job_status).
The copy's JobStatus is the router's view of the job, so ``update`` dispatches on it: one
handler per state, each printing a transition only when the batch job moved on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Optional, Union

import classad2

from hpcpull import holds
from hpcpull.config import Config, GatewaySettings, RouteSettings, lrms_command_environment
from hpcpull.errors import HpcPullError
from hpcpull.faults import crash_point
from hpcpull.lrms import get_batch_system
from hpcpull.lrms.base import BatchJobStatus, BatchState, BatchSystem, LrmsError
from hpcpull.router import teardown
from hpcpull.router.classads import format_attributes, parse_old_ad
from hpcpull.router.common import (
    batch_for,
    batch_system,
    event,
    failed_reason,
    fast_path_attributes,
    note,
    own_job_dir,
    routed_job_dir,
    status_cache,
)
from hpcpull.router.jobstate import (
    COMPLETED,
    HELD,
    IDLE,
    REMOVED,
    ExitRecord,
    Hold,
    Observation,
    Phase,
    hold_set,
    transition,
)
from hpcpull.router.protocol import HookResult, _main, updates
from hpcpull.router.routed_job import RoutedJob
from hpcpull.router.schedd import ScheddUnreachable, gateway_schedd
from hpcpull.router.teardown import Keep, read_exit_record
from hpcpull.router.throttle import record_submission, throttled
from hpcpull.staging.credentials import refresh_credentials
from hpcpull.state import jobdir as jd
from hpcpull.state.submission import JobLock, SubmissionState, load_state, save_state, submit_once
from hpcpull.state.wake import WAKE

UNDONE_ROUTES = "HpcPullUndoneRoutes"
HANDED_BACK = {"Managed": "ScheddDone"}  # the schedd takes the copy back and lets it leave the queue


@dataclass(frozen=True)
class _Visit:
    """One UPDATE of a copy whose job directory is there (handlers run under its job lock)."""

    copy: RoutedJob
    job: jd.JobDir
    route: RouteSettings
    gateway: GatewaySettings
    config: Config
    now: float


# --------------------------------------------------------------------------- dispatch


def update(text: str, config: Config, now: Optional[float] = None) -> HookResult:
    """Dispatch on the copy's JobStatus, then let a job the poller woke rest again."""
    now = time.time() if now is None else now
    copy = RoutedJob.of(parse_old_ad(text, "routed job ad"))
    if not copy.route_name or not config.is_hpcpull_route(copy.route_name):
        return HookResult()
    result = _dispatch(copy, config, now)
    if copy.ad.get(WAKE) is True and result.exit_code == 0:
        # This UPDATE has looked: the job's HookKeyword names its window again (state/wake.py).
        result = replace(result, stdout=result.stdout + format_attributes({WAKE: False}))
    return result


def _dispatch(copy: RoutedJob, config: Config, now: float) -> HookResult:
    """The states needing no job directory come first."""
    if copy.status == COMPLETED:
        return HookResult()  # waiting for FINALIZE
    if copy.status == HELD:
        return _on_held(copy, config)
    if copy.route_error:
        return _on_refused(copy, config, now)
    return _in_job_dir(copy, config, now)


def _in_job_dir(copy: RoutedJob, config: Config, now: float) -> HookResult:
    """Idle, running, removed...: each acts on the job directory, under its job lock."""
    route, gateway = config.route(copy.route_name), config.gateway()
    try:
        job = routed_job_dir(copy)
        problem = f"job directory {copy.job_dir or '(none)'} is missing"
    except HpcPullError as exc:  # an edited HpcPullJobDir: never act on someone else's directory
        job, problem = None, str(exc)
    batch = batch_system(route, gateway)
    if job is None or not job.control.is_dir():
        if copy.status == REMOVED:
            return updates(HANDED_BACK)
        return updates(hold_set(copy.ad, Hold(f"hpcpull: {problem}", 0, holds.SUB_JOB_DIR_MISSING), now))
    visit = _Visit(copy, job, route, gateway, config, now)
    with JobLock(job) as lock:
        if not lock.acquired:
            return HookResult()  # another hook is working on this job right now
        state = load_state(job)
        if state.cleaned:
            return _on_cleaned(visit, state)
        if copy.status == REMOVED:
            return _on_removed(visit)
        if state.lrms and state.lrms != batch.name and (state.batch_job_id or state.token):
            # Submitted before the route's HPCPULL_LRMS changed: followed where it was submitted.
            batch = get_batch_system(state.lrms, lrms_command_environment(gateway), gateway.command_timeout_s)
        step = (_on_idle if copy.status == IDLE else _on_running)(visit, state, batch)
        if isinstance(step, HookResult):
            return step
        state, seen = step
    return _report(visit, state, seen)


# --------------------------------------------------------------------------- one handler per state

_Step = Union[HookResult, tuple[SubmissionState, Observation]]  # what to print now, or what was seen


def _on_refused(copy: RoutedJob, config: Config, now: float) -> HookResult:
    """TRANSLATE refused the job (HpcPullRouteError): hold it with that reason."""
    if copy.status == REMOVED:
        return updates(HANDED_BACK)
    hold = Hold(copy.route_error, copy.route_error_code, copy.route_error_subcode)
    event(config.gateway(), "HELD", copy, reason=copy.route_error, owner=copy.owner)
    return updates(hold_set(copy.ad, hold, now), f"held: {copy.route_error}")


def _on_cleaned(visit: _Visit, state: SubmissionState) -> HookResult:
    """The job was ended (teardown.stop_batch_job); only a give-back may be left to finish."""
    if visit.copy.status == REMOVED:
        return updates(HANDED_BACK)
    if state.give_back:
        return _give_back(visit, state)  # the schedd did not take it yet
    return HookResult()


def _on_removed(visit: _Visit) -> HookResult:
    """Someone removed the copy: stop the batch job and let the copy leave the queue
    (nothing is left to keep for a re-route; CLEANUP removes the directory)."""
    copy = visit.copy
    cancelled = teardown.stop_batch_job(
        visit.job, batch_for(visit.config, copy.lrms, visit.route.lrms), copy.routed_from)
    note(visit.job, "update", f"copy removed; cancelled batch job {cancelled}" if cancelled else "copy removed")
    event(visit.gateway, "REMOVED", copy, cancelled=cancelled)
    return updates(HANDED_BACK)


def _on_idle(visit: _Visit, state: SubmissionState, batch: BatchSystem) -> _Step:
    """Idle with no batch job yet: submit it (exactly once, unless throttled); then watch it."""
    if not state.batch_job_id:
        submitted = _submit(visit, state, batch)
        if isinstance(submitted, HookResult):
            return submitted
        state = submitted
    return _on_running(visit, state, batch)


def _on_running(visit: _Visit, state: SubmissionState, batch: BatchSystem) -> _Step:
    """Idle or running in HTCondor's view: look at the batch job."""
    job, route, now = visit.job, visit.route, visit.now
    for name in refresh_credentials(visit.copy.ad, job.path):
        note(job, "update", f"credential {name} renewed by the user: copied again")
    seen = _observe(visit, state, batch)
    if (seen.phase is Phase.PENDING and route.max_idle_s is not None and state.submitted_at
            and now - state.submitted_at > route.max_idle_s):
        return _undo_routing(visit, state)
    return state, seen


def _submit(visit: _Visit, state: SubmissionState, batch: BatchSystem) -> Union[HookResult, SubmissionState]:
    """Submit the batch script; the state it left, or what to print instead (throttled,
    deferred, or held with the batch system's refusal).  Caller holds the job lock."""
    job, copy, route, gateway = visit.job, visit.copy, visit.route, visit.gateway
    why = throttled(route, gateway, batch)
    if why:
        if not state.throttled:
            state.throttled = True
            save_state(job, state)
            note(job, "update", f"submission waits: {why}")
            event(gateway, "THROTTLED", copy, reason=why)
        return HookResult()
    try:
        job_id = submit_once(job, batch, job.file(jd.BATCH_SCRIPT), copy.routed_from, route.name)
        record_submission(gateway, route)
        state = load_state(job)
        crash_point("update:after-record")
        note(job, "update", f"submitted batch job {job_id}")
        event(gateway, "SUBMITTED", copy, batch_job=job_id, lrms=batch.name)
    except LrmsError as exc:
        note(job, "update", f"submit failed: {exc}")
        if exc.transient:
            event(gateway, "SUBMIT_DEFERRED", copy, reason=str(exc))
            return HookResult(messages=[f"submit deferred: {exc}"])
        hold = Hold(f"hpcpull: {batch.name} refused the job: {exc}", 0, holds.SUB_SUBMIT_REFUSED)
        event(gateway, "HELD", copy, reason=hold.reason)
        return updates(hold_set(copy.ad, hold, visit.now), f"held: {hold.reason}")
    return state


def _report(visit: _Visit, state: SubmissionState, seen: Observation) -> HookResult:
    """What changed for the router: the transition, the batch job id, the fast-path attributes."""
    copy, job, gateway, now = visit.copy, visit.job, visit.gateway, visit.now
    printed = transition(copy.ad, seen, now)
    if state.batch_job_id and state.batch_job_id != copy.batch_job_id:
        printed["HpcPullBatchJobId"] = state.batch_job_id
    printed.update(fast_path_attributes(copy, state, seen, visit.route, gateway, now))
    if "JobStatus" in printed:
        note(job, "update", f"JobStatus {copy.status} -> {printed['JobStatus']}"
             + (f": {seen.hold.reason}" if seen.hold else ""))
        from hpcpull.state.eventlog import status_change  # a change: the log is written anyway

        event(gateway, "STATUS", copy, batch_job=state.batch_job_id,
              status=status_change(copy.status, printed["JobStatus"]), reason=seen.hold.reason if seen.hold else None)
    return updates(printed)


# --------------------------------------------------------------------------- watching the batch job


def _observe(visit: _Visit, state: SubmissionState, batch: BatchSystem) -> Observation:
    """Where the batch job is.  Caller holds the job lock; ``state`` may be updated and saved."""
    job, gateway, now = visit.job, visit.gateway, visit.now
    record = read_exit_record(job)
    if record is not None:  # authoritative, whatever the LRMS says
        return _finished(visit, state, batch, record)
    if not state.batch_job_id:
        return Observation(Phase.UNKNOWN)
    snap = status_cache(batch, gateway).snapshot()
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
    return _ended_without_exit_status(visit, state, batch, status)


def _ended_without_exit_status(visit: _Visit, state: SubmissionState, batch: BatchSystem,
                               status: BatchJobStatus) -> Observation:
    """The file may still be on its way over the shared filesystem, so wait
    HPCPULL_EXIT_FILE_GRACE before calling it a failure; requeue what the route says to."""
    job, route, now = visit.job, visit.route, visit.now
    state.terminal_seen_at = state.terminal_seen_at or now
    save_state(job, state)
    if now - state.terminal_seen_at < visit.gateway.exit_file_grace_s:
        return Observation(Phase.UNKNOWN)
    if status.state.value in route.requeue_on and state.requeues < route.max_requeues:
        _requeue(job, state, f"batch job {status.job_id} ended {status.native_state}")
        event(visit.gateway, "REQUEUED", visit.copy, batch_job=status.job_id, state=status.native_state,
              requeues=state.requeues)
        return Observation(Phase.PENDING)
    return Observation(Phase.FAILED, hold=hold_for_ended_job(visit.copy, status, batch.name))


def _finished(visit: _Visit, state: SubmissionState, batch: BatchSystem, record: ExitRecord) -> Observation:
    """The payload exited: completed -- unless an output file it promised is missing, which
    holds the job as HTCondor does (missing_outputs.py).  The file may still be on its way over the
    shared filesystem, so it is waited for HPCPULL_EXIT_FILE_GRACE first.  Caller holds the lock."""
    from hpcpull.router.missing_outputs import hold_for_missing_outputs, missing_outputs

    job, now = visit.job, visit.now
    missing = missing_outputs(visit.copy.ad, job.path, record)
    if not missing:
        return Observation(Phase.FINISHED, exit=record)
    if state.outputs_missing_since is None:
        state.outputs_missing_since = now
        save_state(job, state)
    if now - state.outputs_missing_since < visit.gateway.exit_file_grace_s:
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
    note(job, "update", f"{why}: submitting again (requeue {state.requeues})")


def _started_time(job: jd.JobDir) -> Optional[float]:
    try:
        return float(json.loads(job.file(jd.STARTED).read_text(encoding="utf-8"))["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _format_walltime(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def hold_for_ended_job(copy: RoutedJob, status: BatchJobStatus, lrms: str) -> Hold:
    """A batch job that ended without an exit_status file: a reason a user can act on."""
    job = f"batch job {status.job_id}"
    where = f" on partition {copy.partition}" if copy.partition else ""
    native = f"({lrms} {status.native_state})"
    state = status.state
    if state is BatchState.TIMEOUT:
        limit = copy.walltime_s
        wall = f" {_format_walltime(limit)}" if limit else ""
        reason = f"hpcpull: {job} exceeded its walltime{wall}{where} {native}"
        return Hold(reason, holds.JOB_DURATION_EXCEEDED, holds.SUB_WALLTIME)
    if state is BatchState.OUT_OF_MEMORY:
        return Hold(f"hpcpull: {job} ran out of memory (request_memory = "
                    f"{copy.request_memory} MB) {native}", holds.JOB_OUT_OF_RESOURCES, holds.SUB_MEMORY)
    if state in (BatchState.NODE_FAIL, BatchState.BOOT_FAIL):
        return Hold(f"hpcpull: {job} failed because its node failed {native}", 0, holds.SUB_NODE_FAILURE)
    if state is BatchState.PREEMPTED:
        return Hold(f"hpcpull: {job} was preempted {native}", 0, holds.SUB_PREEMPTED)
    if state is BatchState.CANCELLED:
        return Hold(f"hpcpull: {job} was cancelled outside HTCondor {native}", 0, holds.SUB_CANCELLED)
    return Hold(
        f"hpcpull: {job} ended {native} without writing its exit_status file; see "
        f"{copy.job_dir}/{jd.CONTROL_DIR}/{jd.BATCH_OUTPUT}",
        0, holds.SUB_NO_EXIT_STATUS,
    )


# --------------------------------------------------------------------------- giving the job back


def _undo_routing(visit: _Visit, state: SubmissionState) -> HookResult:
    """The batch job waited longer than HPCPULL_MAX_IDLE_TIME: cancel it and give the job back
    to HTCondor, idle, to run elsewhere -- as the router itself yields a job it cannot keep
    (src/condor_job_router/JobRouter.cpp, GracefullyRemoveJob: the copy removed, the source
    left idle).  Caller holds the job lock."""
    job, copy, route, now = visit.job, visit.copy, visit.route, visit.now
    waited = int(now - (state.submitted_at or now))
    reason = (f"hpcpull: batch job {state.batch_job_id} waited {waited} s in {state.lrms or route.lrms} "
              f"(route {route.name} gives jobs back after {route.max_idle_s} s)")
    # Recorded first: from here on every UPDATE finishes the give-back, whatever stops this one.
    state.give_back = reason
    save_state(job, state)
    try:
        teardown.stop_batch_job(job, batch_for(visit.config, copy.lrms, route.lrms), copy.routed_from)
    except HpcPullError as exc:
        state = load_state(job)  # as stop_batch_job left it (a recovered batch job id is kept)
        state.give_back = None   # not given back: the job is still the route's
        save_state(job, state)
        return HookResult(messages=[f"undo routing: cannot cancel batch job {state.batch_job_id} yet: {exc}"])
    note(job, "update", reason)
    return _give_back(visit, load_state(job))


def _give_back(visit: _Visit, state: SubmissionState) -> HookResult:
    """The schedd's part of a give-back: the route added to the source's HpcPullUndoneRoutes,
    then the copy removed (the router then yields the source, idle).  Until the schedd has
    applied both, ``state.give_back`` stays and each UPDATE tries again: a copy removed
    without the edit would let the route take the job back, a copy not removed would stay
    idle for ever.  Caller holds the job lock."""
    job, copy = visit.job, visit.copy
    source_id, reason = copy.routed_from, state.give_back or ""
    schedd = gateway_schedd(visit.gateway.schedd_double)
    undone = [r for r in copy.undone_routes.split(",") if r.strip()]
    if visit.route.name not in undone:
        undone.append(visit.route.name)
    edited = schedd.edit(source_id, UNDONE_ROUTES, classad2.quote(",".join(undone)))
    if not edited.applied and not edited.gone:
        note(job, "update", f"giving job {source_id} back waits for the schedd: {edited}")
        return HookResult(messages=[f"giving job {source_id} back waits for the schedd: {edited}"])
    # The directory stays until CLEANUP: the router's next UPDATE still gets the copy as it
    # was before this removal (JobRouter.cpp refreshes dest_ad from its queue mirror), and
    # finds it cleaned, not missing.
    removed = schedd.remove(copy.id, reason)
    if not removed.applied and not removed.gone:
        note(job, "update", f"giving job {source_id} back waits for the schedd: {removed}")
        return HookResult(messages=[f"giving job {source_id} back waits for the schedd: {removed}"])
    state.give_back = None
    save_state(job, state)
    event(visit.gateway, "UNDONE", copy, batch_job=state.batch_job_id, reason=reason, undone_routes=",".join(undone),
          outcome=str(removed))
    return HookResult(messages=[f"gave job {source_id} back: {reason}"])


# --------------------------------------------------------------------------- held


def _on_held(copy: RoutedJob, config: Config) -> HookResult:
    """A held copy, its hold mirrored on the source.  condor_release of the source cannot undo
    a mirrored hold: at its next poll the router holds the source again from the still-held
    copy (src/condor_job_router/VanillaToGrid.cpp, update_job_status -> set_job_status_held).
    So UPDATE watches for it: once the source is released, the batch job is cancelled, the
    job directory set aside, and the copy removed -- the router then routes the source again,
    from a clean state (a new TRANSLATE, a new batch job)."""
    route, gateway = config.route(copy.route_name), config.gateway()
    schedd = gateway_schedd(gateway.schedd_double)
    source_id = copy.routed_from
    try:
        source_status = schedd.source_status(source_id)
    except ScheddUnreachable:
        return HookResult()  # asked again next poll
    job = own_job_dir(copy)
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
                job, batch_for(config, copy.lrms, route.lrms), source_id,
                Keep.of(route), failed_reason(copy), reused=True)
        except teardown.Busy:
            return HookResult()  # asked again next poll
        except LrmsError as exc:
            return HookResult(messages=[f"released job {source_id}: cannot cancel its batch job yet: {exc}"])
    outcome = schedd.remove(copy.id, "hpcpull: the source job was released; it is routed again")
    if not outcome.applied and not outcome.gone:
        return HookResult(messages=[f"released job {source_id}: the copy stays until the schedd removes it: "
                                    f"{outcome}"])
    event(gateway, "RELEASED", copy, outcome=str(outcome), kept=ended.kept if ended else None,
          cancelled=ended.cancelled if ended else None)
    return HookResult()


def _released(copy: RoutedJob, job: Optional[jd.JobDir]) -> bool:
    """Whether an idle source means its user released it.  The router mirrors the copy's
    status onto the source after each UPDATE (JobRouter.cpp FinishCheckSubmittedJobStatus:
    update_job_status), so a hold hpcpull printed is on the source before the next UPDATE,
    and an idle source was released.  A hold someone else put on the copy (condor_hold of
    the copy, its periodic_hold) is first seen by an UPDATE that runs before that mirroring:
    until UPDATE has seen the source held, idle means not mirrored yet."""
    if copy.hold_reason.startswith("hpcpull") or copy.route_error:
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


def main_update() -> int:
    return _main("update", update)
