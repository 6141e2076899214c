"""JOB_CLEANUP: the routed copy in; its batch job stopped, its job directory kept, set aside or
removed, and the copy handed back to the schedd -- or both kept for the job's re-route."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hpcpull.config import Config, GatewaySettings
from hpcpull.lrms.base import LrmsError
from hpcpull.router import teardown
from hpcpull.router.classads import parse_old_ad
from hpcpull.router.common import batch_for, event, failed_reason, note, own_job_dir
from hpcpull.router.jobstate import COMPLETED, IDLE, RUNNING
from hpcpull.router.leftovers import cleaning_marker, finish_leftovers, parked_marker, write_marker
from hpcpull.router.protocol import HookResult, _main
from hpcpull.router.routed_job import RoutedJob
from hpcpull.router.schedd import ScheddUnreachable, gateway_schedd
from hpcpull.router.teardown import Keep
from hpcpull.staging.spool import is_spooled, spool_dir
from hpcpull.state import jobdir as jd
from hpcpull.state.submission import JobLock, SubmissionState, load_state, save_state

CLEAN, PARK = "clean", "park"


def cleanup(text: str, config: Config) -> HookResult:
    copy = RoutedJob.of(parse_old_ad(text, "routed job ad"))
    if not copy.route_name or not config.is_hpcpull_route(copy.route_name):
        return HookResult()
    route, gateway = config.route(copy.route_name), config.gateway()
    job = own_job_dir(copy)
    messages = []
    kept: Optional[Path] = None
    cancelled_id: Optional[str] = None
    if job is not None and job.control.is_dir():
        failure = failed_reason(copy)
        with JobLock(job, wait=gateway.command_timeout_s) as lock:
            if not lock.acquired:
                return HookResult(exit_code=1, messages=["job is busy in another hook; will retry"])
            verdict = cleanup_verdict(copy, load_state(job), gateway)
            if verdict != CLEAN:
                return _park(job, copy, gateway, verdict)
            # A killed CLEANUP is not run again (leftovers.py); the marker keeps what the
            # copy said about the job, which nobody else knows.
            write_marker(cleaning_marker(job), {"failure": failure})
            if copy.status == COMPLETED and not load_state(job).outputs_returned:
                _finish_output_return(job, copy)
            try:
                cancelled_id = teardown.stop_batch_job(
                    job, batch_for(config, copy.lrms, route.lrms),
                    copy.routed_from, crash_after_cancel="cleanup:after-cancel")
            except LrmsError as exc:
                note(job, "cleanup", f"could not cancel the batch job, will retry: {exc}")
                return HookResult(exit_code=1, messages=[f"cannot cancel batch job yet: {exc}"])
            note(job, "cleanup", f"cancelled batch job {cancelled_id}" if cancelled_id else "nothing to cancel")
        kept = teardown.dispose(job, Keep.of(route), failure)
        try:
            cleaning_marker(job).unlink(missing_ok=True)
        except OSError:
            pass
        finish_leftovers(job.path.parent.parent, route, config)
    outcome = gateway_schedd(gateway.schedd_double).hand_back(copy.id)
    note(job if route.keep_job_dirs else None, "cleanup", str(outcome))
    event(gateway, "CLEANED", copy, outcome=str(outcome), kept=kept, cancelled=cancelled_id)
    messages.append(str(outcome))
    return HookResult(messages=messages)


def cleanup_verdict(copy: RoutedJob, state: SubmissionState, gateway: GatewaySettings) -> str:
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
        status = gateway_schedd(gateway.schedd_double).source_status(copy.routed_from)
    except ScheddUnreachable as exc:
        return f"the schedd cannot tell whether job {copy.routed_from} is still wanted ({exc})"
    return PARK if status in (IDLE, RUNNING) else CLEAN


def _park(job: jd.JobDir, copy: RoutedJob, gateway: GatewaySettings, verdict: str) -> HookResult:
    """Keep the job dir and batch job for the job's re-route (PARK), or wait (any other
    verdict: its reason).  Caller holds the job lock."""
    if verdict != PARK:
        note(job, "cleanup", f"waiting: {verdict}")
        return HookResult(exit_code=1, messages=[f"waiting: {verdict}"])
    state = load_state(job)
    if not state.parked:
        state.parked = True
        save_state(job, state)
        write_marker(parked_marker(job), {})
        note(job, "cleanup", f"the router gives job {copy.routed_from} back to be routed "
             f"again: batch job {state.batch_job_id} is kept for it")
        event(gateway, "PARKED", copy, batch_job=state.batch_job_id)
    outcome = gateway_schedd(gateway.schedd_double).hand_back(copy.id)
    return HookResult(messages=[f"kept batch job {state.batch_job_id} for the re-route; {outcome}"])


def _finish_output_return(job: jd.JobDir, copy: RoutedJob) -> None:
    """FINALIZE died before the whole output sandbox was back (a hook killed by a signal
    counts as done to the router, which never runs FINALIZE again: JobRouterHookMgr.cpp
    ExitClient::hookExited): return it now, from the job ad TRANSLATE saved."""
    from hpcpull.staging.output_sandbox import transfer_output_sandbox

    try:
        source = parse_old_ad(job.file(jd.JOB_AD).read_text(encoding="utf-8"), "saved job ad")
        for attr in ("ExitCode", "ExitBySignal", "ExitSignal"):
            if attr in copy.ad:
                source[attr] = copy.ad.lookup(attr)
        report = transfer_output_sandbox(source, job.path, link=True,
                                         confine_to_iwd=is_spooled(source, spool_dir()))
        note(job, "cleanup", f"FINALIZE did not finish: returned {len(report.returned)} output(s)"
             + (f"; problems: {'; '.join(report.errors)}" if report.errors else ""))
    except Exception as exc:  # noqa: BLE001 - CLEANUP goes on; the note says what was lost
        note(job, "cleanup", f"FINALIZE did not finish and the output return failed: {exc}")


def main_cleanup() -> int:
    return _main("cleanup", cleanup)
