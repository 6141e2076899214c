"""The shared status cache: one query per period across processes; failures are never news."""

import multiprocessing
import os
import time
from pathlib import Path

from hpcpull.lrms.base import BatchJobStatus, BatchState, LrmsError
from hpcpull.state.status_cache import StatusCache

JOB = BatchJobStatus(job_id="7", state=BatchState.RUNNING, native_state="RUNNING", start_time=100)


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def counting_refresh(calls):
    def refresh():
        calls.append(1)
        return {"7": JOB}
    return refresh


def test_fresh_snapshot_is_shared_and_stale_one_refreshed(tmp_path):
    calls, clock = [], Clock()
    cache = StatusCache(tmp_path, "slurm-status", 30, counting_refresh(calls), clock=clock)
    for _ in range(5):
        snap = cache.snapshot()
    assert len(calls) == 1 and snap.ok and snap.jobs["7"] == JOB
    # a second reader (another hook process) reads the same file
    other = StatusCache(tmp_path, "slurm-status", 30, counting_refresh(calls), clock=clock)
    assert other.snapshot().jobs["7"].start_time == 100 and len(calls) == 1
    clock.now += 31
    cache.snapshot()
    assert len(calls) == 2


def test_failed_query_is_remembered_and_not_retried_within_the_period(tmp_path):
    calls, clock = [], Clock()

    def broken():
        calls.append(1)
        raise LrmsError("squeue failed (rc=1): Unable to contact slurm controller",
                        command=["squeue"], stdout="", stderr="Unable to contact", returncode=1, transient=True)

    cache = StatusCache(tmp_path, "slurm-status", 30, broken, clock=clock)
    first, second = cache.snapshot(), cache.snapshot()
    assert not first.ok and "Unable to contact" in first.error and first.jobs == {}
    assert not second.ok and len(calls) == 1


def _snapshot_in_process(directory, log):
    def refresh():
        with open(log, "a") as f:
            f.write("query\n")
        time.sleep(0.5)
        return {"7": JOB}
    snap = StatusCache(Path(directory), "slurm-status", 30, refresh).snapshot()
    assert snap.ok and "7" in snap.jobs


def test_concurrent_hook_processes_make_one_query(tmp_path):
    log = tmp_path / "queries.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_snapshot_in_process, args=(str(tmp_path / "c"), str(log))) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    assert log.read_text().count("query") == 1


def test_snapshot_written_by_another_user_is_not_believed(tmp_path):
    calls, clock = [], Clock()
    cache = StatusCache(tmp_path, "slurm-status", 30, counting_refresh(calls), clock=clock)
    cache.snapshot()
    os.chown(cache.own_path, 54321, 54321)  # as if a local user had planted it
    cache.snapshot()
    assert len(calls) == 2


def test_unusable_cache_directory_still_answers(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    calls = []
    snap = StatusCache(blocker / "sub", "slurm-status", 30, counting_refresh(calls)).snapshot()
    assert snap.ok and snap.jobs["7"] == JOB and len(calls) == 1


def test_latest_without_jobs_keeps_the_verdict_and_leaves_the_jobs_out(tmp_path):
    clock = Clock()
    cache = StatusCache(tmp_path, "slurm-status", 30, counting_refresh([]), clock=clock)
    taken = cache.snapshot()
    header = cache.latest(with_jobs=False)
    assert header is not None and header.jobs == {}
    assert (header.taken_at, header.ok, header.error) == (taken.taken_at, taken.ok, taken.error)
    assert cache.latest().jobs == {"7": JOB}
