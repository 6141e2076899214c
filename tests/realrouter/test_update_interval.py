"""HPCPULL_UPDATE_INTERVAL on the real job router: fewer UPDATE hooks, and nothing else lost.

The router must run a routed job's UPDATE only in the job's window (once per interval), and
still notice in time what needs no UPDATE: condor_rm (CLEANUP under the resting keyword
cancels the batch job) and completion (the job's last UPDATE reports it, FINALIZE runs).
Between windows, the poller wakes the UPDATE of a job whose batch job has news."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Callable, Iterator

import pytest

from hpcpull.router.cadence import window_for
from hpcpull.state.eventlog import parse_line
from tests.plugins.condor import POLL, SLURM_ROUTES, GatewayPool

REPO = Path(__file__).resolve().parents[2]
INTERVAL = 20  # > the window, POLL + 2 s, so that most polls skip a given job
JOBS = 3


@pytest.fixture(scope="module")
def spaced_gateway(make_gateway_pool: Callable[..., GatewayPool], slurm_env: dict[str, str]) -> Iterator[GatewayPool]:
    gateway = make_gateway_pool("interval", SLURM_ROUTES, slurm_env, with_startd=False,
                                HPCPULL_UPDATE_INTERVAL=str(INTERVAL))
    yield gateway
    gateway.pool.stop()


def _log_since(gateway: GatewayPool, offset: int) -> str:
    return gateway.pool.router_log_text()[offset:]


def test_updates_are_spaced_and_rm_and_completion_still_arrive(spaced_gateway: GatewayPool) -> None:
    gw = spaced_gateway
    directory = gw.job_dir("spaced")
    cluster = gw.submit(directory, f"""\
executable = /bin/sh
arguments = "-c 'sleep $(Process)0; sleep 50; exit 3'"
log = job.log
+WantHpc = true
queue {JOBS}
""")

    def routed() -> bool:
        copies = gw.pool.q(f'regexp("^{cluster}[.]", RoutedFromJobId)', ["HpcPullBatchJobId", "JobStatus"])
        # condor_q -af evaluates the expression, as the router's getHookKeyword does
        keywords = gw.pool.tool(["condor_q", "-allusers", str(cluster), "-af", "HookKeyword"]).stdout.split()
        return (len(copies) == JOBS and all(c.get("HpcPullBatchJobId") and c["JobStatus"] == 2 for c in copies)
                and len(keywords) == JOBS and set(keywords) <= {"HPCPULL", "HPCPULL_RESTING"})
    # Running reported (woken by the poller, or in a window).
    gw.wait_for(routed, 120, "every job routed, running, and carrying the UPDATE window")
    raw = gw.pool.tool(["condor_q", f"{cluster}.0", "-l"]).stdout
    assert re.search(r'^HookKeyword = ifThenElse\(Managed =\?= "Schedd"', raw, re.M), raw

    # Steady state: count the router's polls and its UPDATE hooks over two intervals.
    offset = len(gw.pool.router_log_text())
    start = time.time()
    time.sleep(2 * INTERVAL)
    log = _log_since(gw, offset)
    polls = [time.mktime(time.strptime(stamp, "%m/%d/%y %H:%M:%S")) for stamp in
             re.findall(r"^(\S+ \S+) JobRouter: polling state of \(\d+\) managed jobs", log, re.M)]
    updates = len(re.findall(r"HOOK_UPDATE_JOB_INFO \(.*\) invoked", log))
    assert len(polls) >= 2 * INTERVAL // POLL - 2, log[-3000:]
    # Which job's window each poll fell in, from the job's offset (router/cadence.py): the
    # router evaluates the window when it starts the hooks, in the poll's logged second or
    # the next.
    window = window_for(POLL)
    offsets = [zlib.crc32(f"{cluster}.{proc}".encode()) % INTERVAL for proc in range(JOBS)]

    def due(offset: int, at: float) -> bool:
        return (int(at) + offset) % INTERVAL < window
    surely = sum(due(o, t) and due(o, t + 1) for t in polls for o in offsets)
    possibly = sum(due(o, t) or due(o, t + 1) for t in polls for o in offsets)
    # A batch job that ends meanwhile is news: the poller wakes its UPDATE (one each), and
    # a wake takes effect up to two polls after the poller's run.
    woken = sum(int(fields.get("woken", 0)) for at, event, fields in
                filter(None, map(parse_line, gw.hpcpull_log().splitlines()))
                if event == "POLL" and start - 2 * POLL - 5 <= at <= start + 2 * INTERVAL)
    assert possibly + woken < len(polls) * JOBS, "every job skips some polls"
    assert surely // 2 <= updates <= possibly + woken, (updates, surely, possibly, woken, len(polls) * JOBS)

    # condor_rm between windows: CLEANUP (same hook under either keyword) cancels the batch job.
    job_id = next(c["HpcPullBatchJobId"] for c in gw.pool.q(f'RoutedFromJobId == "{cluster}.2"',
                                                             ["HpcPullBatchJobId"]))
    gw.pool.tool(["condor_rm", f"{cluster}.2"])
    gw.wait_for(lambda: gw.batch_state(job_id) in ("", "CANCELLED"), 3 * POLL + 30,
                f"batch job {job_id} of the removed job cancelled")

    # Completion reaches the user within an interval plus a poller period (and FINALIZE runs).
    for proc in (0, 1):
        def left(proc: int = proc) -> object:
            found = gw.pool.q(f"ClusterId == {cluster} && ProcId == {proc}", ["JobStatus"])
            return None if found else gw.pool.history(f"ClusterId == {cluster} && ProcId == {proc}")
        history = gw.wait_for(left, 60 + 10 * proc + INTERVAL + 60, f"job {cluster}.{proc} to finish")
        assert history[0]["ExitCode"] == 3, history[0]


def test_news_wakes_the_update_and_a_held_job_can_be_released(spaced_gateway: GatewayPool) -> None:
    """With an interval of a day, a job's UPDATE window does not open during the test: the
    start of its batch job, its cancel outside HTCondor and its end reach condor_q only
    because the poller woke its UPDATE (HpcPullWake, state/wake.py), each within a poller
    period and a few polls; and the hold that the cancel brings is released as with no
    interval (a held job's UPDATE runs at every poll)."""
    gw = spaced_gateway
    knobs = gw.pool.config_d / "95-test-wake.conf"
    knobs.write_text("HPCPULL_UPDATE_INTERVAL = 86400\n")  # read by every hook and poll as they start
    earlier = set(gw.hpcpull_log().splitlines())
    try:
        directory = gw.job_dir("woken")
        # The first batch job runs until it is cancelled; the second one ends at once.
        cluster = gw.submit(directory, f"""\
executable = /bin/sh
arguments = "-c 'test -e {directory}/ran && exit 5; touch {directory}/ran; sleep 300'"
log = job.log
+WantHpc = true
queue
""")
        gw.wait_for(lambda: (gw.source(cluster) or {}).get("JobStatus") == 2, 90, "the source job shown running")
        copy = gw.copy_of(cluster)
        assert copy and "86400" in gw.pool.tool(["condor_q", f"{cluster}.0", "-l"]).stdout
        # Why the poller reads the copies again and retries when an edit fails: one edit of
        # many jobs fails as a whole when one of them has left the queue meanwhile.
        copy_id = f"{copy['ClusterId']}.{copy['ProcId']}"
        mark = ("import sys; from hpcpull.router.schedd import HTCondorSchedd; "
                "print(HTCondorSchedd().mark(sys.argv[1:], 'HpcPullTestMark', '1'))")
        env = gw.pool.env(PYTHONPATH=str(REPO))
        both = subprocess.run([sys.executable, "-c", mark, f"{copy['ClusterId']}.99", copy_id], env=env,
                              capture_output=True, text=True, timeout=60)
        assert both.returncode != 0 and "HpcPullTestMark" not in (gw.copy_of(cluster) or {}), both
        alone = subprocess.run([sys.executable, "-c", mark, copy_id], env=env, capture_output=True, text=True,
                               timeout=60)
        assert alone.stdout.strip() == "1" and (gw.copy_of(cluster) or {}).get("HpcPullTestMark") == 1, alone
        # Between the news: the job rests, and its UPDATE is not started at every poll.
        gw.wait_for(lambda: gw.pool.tool(["condor_q", f"{cluster}.0", "-af", "HookKeyword"]).stdout.strip()
                    == "HPCPULL_RESTING", 30, "the job resting once its start was reported")

        subprocess.run(["scancel", copy["HpcPullBatchJobId"]], env=gw.lrms_env, check=True, timeout=30)
        gw.wait_for(lambda: (gw.source(cluster) or {}).get("JobStatus") == 5, 60, "the cancelled job held")
        released = time.time()
        gw.pool.tool(["condor_release", f"{cluster}.0"], user=gw.pool.user)
        history = gw.finished(cluster, timeout=120)
        assert history["ExitCode"] == 5, history
        assert len(gw.batch_jobs(cluster)) == 2, "routed again after the release: a second batch job"
        assert time.time() - released < 90, "released, run again and its end in condor_q within a few polls"
        polls = [line for line in gw.hpcpull_log().splitlines() if " POLL " in line and line not in earlier]
        assert sum("woken=1" in line for line in polls) >= 3, "\n".join(polls[-20:])
    finally:
        knobs.unlink()
