"""hpcpull.state.poller's pure parts: privacy detection, per-route counts, carried final states, cron output."""

from __future__ import annotations

import classad2

from hpcpull.lrms.base import BatchJobStatus, BatchState
from hpcpull.state.poller import SiteStatus, _carry_finished, _count, format_cron_output
from hpcpull.state.status_cache import Snapshot
from tests.unit.test_slurm_parsing import FakeSlurm

CONFIG_PRIVATE = "Configuration data as of 2026-11-21T07:00:00\nPrivateData             = accounts,jobs\n"
CONFIG_OPEN = "Configuration data as of 2026-11-21T07:00:00\nPrivateData             = none\n"


def job(job_id: str, state: BatchState, name: str, end: int | None = None) -> BatchJobStatus:
    return BatchJobStatus(job_id, state, state.value, name=name, end_time=end)


def test_private_data_jobs_is_detected() -> None:
    assert FakeSlurm({"scontrol show config": (0, CONFIG_PRIVATE, "")}).hides_other_users_jobs()
    assert not FakeSlurm({"scontrol show config": (0, CONFIG_OPEN, "")}).hides_other_users_jobs()


def test_jobs_are_counted_per_route_from_their_names() -> None:
    counts: dict[str, dict[str, int]] = {}
    _count({
        "1": job("1", BatchState.PENDING, "hpcpull-Short-10.0-ab"),
        "2": job("2", BatchState.RUNNING, "hpcpull-Short-11.0-cd"),
        "3": job("3", BatchState.RUNNING, "hpcpull-Gpu-12.0-ef"),
        "4": job("4", BatchState.COMPLETED, "hpcpull-Gpu-13.0-01"),
        "5": job("5", BatchState.RUNNING, "someone-elses-job"),
        "6": job("6", BatchState.RUNNING, "hpcpull-14.0-23"),  # before names carried the route
    }, counts)
    assert counts == {"Short": {"idle": 1, "running": 1}, "Gpu": {"idle": 0, "running": 1}}


def test_jobs_that_left_the_queue_get_their_final_state_from_one_accounting_query() -> None:
    slurm = FakeSlurm({
        "sacct -n -X -j 1 -o JobID": (0, "", ""),  # the accounting probe: available
        "sacct -a -X -n -P -j 7,8": (0, "7|hpcpull-Short-1.0-aa|COMPLETED|0:0|100|200\n", ""),
    })
    previous = Snapshot(1000.0, True, "", {
        "7": job("7", BatchState.RUNNING, "hpcpull-Short-1.0-aa"),
        "8": job("8", BatchState.PENDING, "hpcpull-Short-2.0-bb"),
        "9": job("9", BatchState.COMPLETED, "hpcpull-Short-3.0-cc", end=1500),
        "10": job("10", BatchState.COMPLETED, "hpcpull-Short-4.0-dd", end=100),
        "11": job("11", BatchState.RUNNING, "not-ours"),
    })
    current: dict[str, BatchJobStatus] = {}
    _carry_finished(previous, current, slurm, now=2000.0)
    assert current["7"].state is BatchState.COMPLETED and current["7"].exit_code == 0
    assert "8" not in current  # vanished without a record: UPDATE asks about it alone
    assert current["9"] == previous.jobs["9"]  # recently finished: kept for a late UPDATE
    assert "10" not in current and "11" not in current
    assert sum(1 for argv in slurm.calls if argv[0] == "sacct" and "-j" in argv and "7,8" in argv) == 1


def test_cron_output_is_an_old_classad_ending_with_a_dash() -> None:
    status = SiteStatus(taken_at=100.0, lrms=["slurm"], last_success=90.0, last_error='say "hi"\nthere',
                        jobs={"Short": {"idle": 2, "running": 3}})
    text = format_cron_output(status, now=100.0)
    assert text.endswith("\n-\n")
    ad = classad2.parseOne(text[: -len("-\n")], classad2.ParserType.Old)
    assert ad["LrmsReachable"] is True and ad["LastSuccessfulPollAge"] == 10
    assert (ad["JobsIdle"], ad["JobsRunning"], ad["JobsIdle_Short"]) == (2, 3, 2)
    assert ad["LastError"] == 'say "hi" there'
