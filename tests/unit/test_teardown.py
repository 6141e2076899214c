"""Ending a job (hpcpull/router/teardown.py): one sequence, the same knobs, the job's own batch system."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest

from hpcpull.router import teardown
from hpcpull.router.teardown import Keep
from hpcpull.state import jobdir as jd
from hpcpull.state.submission import JobLock, SubmissionState, load_state, save_state, submit_once


class Batch:
    """A stand-in batch system that records what it was asked."""

    def __init__(self, name: str = "slurm", refuse_ids: bool = False) -> None:
        self.name = name
        self.cancelled: list[str] = []
        self.refuse_ids = refuse_ids

    def cancel(self, job_id: str) -> None:
        if self.refuse_ids:
            raise ValueError(f"not a {self.name} job id: {job_id!r}")
        self.cancelled.append(job_id)

    def find_by_name(self, job_name: str) -> list[str]:
        return []

    def submit(self, script: Path, job_name: str, workdir: Path, output: Path) -> str:
        return "77"


def make_job(tmp_path: Path, **state: object) -> jd.JobDir:
    job = jd.JobDir(tmp_path / "scratch" / "alice" / "12" / "0")
    job.control.mkdir(parents=True)
    (job.path / "result.txt").write_text("r\n")
    save_state(job, SubmissionState(**state))  # type: ignore[arg-type]
    return job


def by(batch: Optional[Batch]) -> teardown.BatchFor:
    return lambda state: batch  # type: ignore[return-value]


def test_stop_cancels_with_the_batch_system_the_state_names_and_records_cleaned(tmp_path: Path) -> None:
    job = make_job(tmp_path, batch_job_id="4242.pbs-server", token="t", lrms="pbs", parked=True)
    seen: list[Optional[str]] = []
    pbs = Batch("pbs")

    def resolve(state: SubmissionState) -> Batch:
        seen.append(state.lrms)
        return pbs

    assert teardown.stop_batch_job(job, resolve, "12.0") == "4242.pbs-server"  # type: ignore[arg-type]
    assert seen == ["pbs"] and pbs.cancelled == ["4242.pbs-server"]
    state = load_state(job)
    assert state.cleaned and not state.parked


def test_stop_does_not_cancel_a_finished_job(tmp_path: Path) -> None:
    job = make_job(tmp_path, batch_job_id="5", token="t")
    job.file(jd.EXIT_STATUS).write_text(json.dumps({"exit_code": 0, "start": 1, "end": 2}))
    batch = Batch()
    assert teardown.stop_batch_job(job, by(batch), "12.0") is None
    assert batch.cancelled == [] and load_state(job).cleaned


def test_stop_of_a_batch_job_of_an_unknown_batch_system_changes_nothing(tmp_path: Path) -> None:
    job = make_job(tmp_path, batch_job_id="4242", token="t")
    with pytest.raises(teardown.UnknownBatchSystem, match="4242"):
        teardown.stop_batch_job(job, by(None), "12.0")
    assert not load_state(job).cleaned


def test_stop_of_an_id_the_batch_system_rejects_is_an_unknown_batch_system(tmp_path: Path) -> None:
    job = make_job(tmp_path, batch_job_id="4242.pbs-server", token="t")
    with pytest.raises(teardown.UnknownBatchSystem, match="4242.pbs-server"):
        teardown.stop_batch_job(job, by(Batch(refuse_ids=True)), "12.0")
    assert not load_state(job).cleaned


def test_stop_without_a_batch_job_needs_no_batch_system(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    assert teardown.stop_batch_job(job, by(None), "12.0") is None
    assert load_state(job).cleaned


@pytest.mark.parametrize("keep,failure,reused,where", [
    (Keep(job_dirs=False, failed_jobs=True), "", False, "removed"),
    (Keep(job_dirs=False, failed_jobs=True), "exit code 3", False, "failed"),
    (Keep(job_dirs=False, failed_jobs=False), "exit code 3", False, "removed"),
    (Keep(job_dirs=True, failed_jobs=False), "exit code 3", False, "in place"),
    (Keep(job_dirs=True, failed_jobs=True), "", False, "in place"),
    (Keep(job_dirs=True, failed_jobs=False), "held: x", True, "failed"),
    (Keep(job_dirs=False, failed_jobs=False), "held: x", True, "removed"),
])
def test_dispose_honours_both_knobs(tmp_path: Path, keep: Keep, failure: str, reused: bool, where: str) -> None:
    job = make_job(tmp_path)
    kept = teardown.dispose(job, keep, failure, reused=reused)
    failed = sorted((job.path.parent.parent / jd.FAILED).glob("12.0.*"))
    if where == "in place":
        assert kept is None and job.path.is_dir() and not failed
    elif where == "failed":
        assert kept == failed[0] and (kept / "result.txt").is_file() and not job.path.exists()
        assert (kept / jd.CONTROL_DIR / "failed").read_text().startswith(failure or "routed again")
    else:
        assert kept is None and not job.path.exists() and not failed
        assert not job.path.parent.exists(), "the <ClusterId> directory goes with its last proc"


def test_tear_down_is_lock_stop_dispose(tmp_path: Path) -> None:
    job = make_job(tmp_path, batch_job_id="5", token="t")
    batch = Batch()
    ended = teardown.tear_down(job, by(batch), "12.0", Keep(), "exit code 1")
    assert ended is not None and ended.cancelled == "5" and ended.kept is not None
    assert batch.cancelled == ["5"] and not job.path.exists()
    assert load_state(jd.JobDir(ended.kept)).cleaned


def test_tear_down_of_a_busy_job_does_nothing(tmp_path: Path) -> None:
    job = make_job(tmp_path, batch_job_id="5", token="t")
    batch = Batch()
    with JobLock(job) as lock:
        assert lock.acquired
        with pytest.raises(teardown.Busy):
            teardown.tear_down(job, by(batch), "12.0", Keep(), "")
    assert batch.cancelled == [] and job.path.is_dir() and not load_state(job).cleaned


def test_tear_down_asks_only_if_under_the_lock(tmp_path: Path) -> None:
    job = make_job(tmp_path, batch_job_id="5", token="t", parked=False)
    batch = Batch()
    assert teardown.tear_down(job, by(batch), "12.0", Keep(), "", only_if=lambda s: s.parked) is None
    assert batch.cancelled == [] and job.path.is_dir()


def test_a_submission_records_its_route_and_batch_system(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    (job.file(jd.BATCH_SCRIPT)).write_text("#!/bin/sh\n")
    assert submit_once(job, Batch("lsf"), job.file(jd.BATCH_SCRIPT), "12.0", "OnLsf") == "77"  # type: ignore[arg-type]
    state = load_state(job)
    assert (state.route, state.lrms, state.batch_job_id) == ("OnLsf", "lsf", "77")
