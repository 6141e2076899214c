"""JOB_FINALIZE: the source and the completed copy in; the output sandbox returned to the
submitter and the source's final attributes out.  It never fails: the router would
re-route the job and the user would lose its terminate event."""

from __future__ import annotations

import time
from typing import Optional

from hpcpull.config import Config
from hpcpull.errors import HpcPullError
from hpcpull.router.classads import Value, int_attr, number_attr, parse_finalize_input, string_attr
from hpcpull.router.common import event, note, routed_job_dir
from hpcpull.router.protocol import HookResult, _main, updates
from hpcpull.router.routed_job import RoutedJob
from hpcpull.staging.spool import is_spooled, spool_dir
from hpcpull.state import jobdir as jd
from hpcpull.state.eventlog import FINALIZE_FAILED, finalize_note
from hpcpull.state.submission import JobLock, load_state, save_state


def finalize(text: str, config: Config, now: Optional[float] = None) -> HookResult:
    now = time.time() if now is None else now
    source, ad = parse_finalize_input(text)
    copy = RoutedJob.of(ad)
    if not config.is_hpcpull_route(copy.route_name):
        return HookResult()
    # The router never updates the source's EnteredCurrentStatus on completion.
    printed: dict[str, Value] = {"EnteredCurrentStatus": int(number_attr(ad, "CompletionDate") or now)}
    messages = []
    job = None
    try:
        from hpcpull.staging.output_sandbox import transfer_output_sandbox

        job = routed_job_dir(copy)
        if job is None:
            raise HpcPullError("routed job has no HpcPullJobDir")
        for attr in ("ExitCode", "ExitBySignal", "ExitSignal"):  # for when_to_transfer_output
            if attr in ad:
                source[attr] = ad.lookup(attr)
        spooled = is_spooled(source, spool_dir())
        report = transfer_output_sandbox(source, job.path, link=True, confine_to_iwd=spooled)
        if not mark_outputs_returned(job):
            note(job, "finalize", "job directory busy in another hook: outputs returned but not recorded "
                 "(CLEANUP returns them again)")
        # As the shadow does: the files now in the Iwd, which the schedd sends when the
        # submitter fetches a spooled job's output (HTCondor-C, condor_transfer_data).
        printed["SpooledOutputFiles"] = ",".join(report.returned)
        errors = list(report.errors)
        note(job, "finalize", finalize_note(len(report.returned), errors))
    except Exception as exc:  # noqa: BLE001 - FINALIZE must not fail (see module doc)
        errors = [str(exc) or type(exc).__name__]
        note(job, "finalize", FINALIZE_FAILED.format(problem=errors[0]))
    # Accounting: who ran what for which access point, in the job ad and the log.
    for attr, value in (("HpcPullBatchJobId", copy.batch_job_id), ("HpcPullSite", copy.site),
                        ("HpcPullLrms", copy.lrms)):
        if value:
            printed[attr] = value
    if errors:
        printed["HpcPullOutputErrors"] = "; ".join(errors)[:2000]
        messages.append(f"job {copy.routed_from}: output problems: {'; '.join(errors)}")
    by_signal = copy.exit_by_signal
    event(
        config.gateway(), "FINISHED", copy, lrms=copy.lrms, owner=copy.owner,
        submitter=string_attr(ad, "SubmitterId"), submitter_job=string_attr(ad, "SubmitterGlobalJobId"),
        exit_code=None if by_signal else copy.exit_code,
        exit_signal=copy.exit_signal if by_signal else None,
        wall_s=number_attr(ad, "RemoteWallClockTime"), user_cpu_s=number_attr(ad, "RemoteUserCpu"),
        sys_cpu_s=number_attr(ad, "RemoteSysCpu"), memory_mb=int_attr(ad, "MemoryUsage") or None,
        output_errors=len(errors) or None, returned=printed.get("SpooledOutputFiles"),
    )
    return updates(printed, *messages)


def mark_outputs_returned(job: jd.JobDir) -> bool:
    """Record that FINALIZE returned the output sandbox; False if the job lock was not had
    (then nothing is written: another hook is saving the state)."""
    with JobLock(job, wait=5.0) as lock:
        if not lock.acquired:
            return False
        state = load_state(job)
        state.outputs_returned = True
        save_state(job, state)
    return True


def main_finalize() -> int:
    return _main("finalize", finalize)
