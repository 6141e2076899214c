"""Promised outputs that are missing hold the job as HTCondor does (hpcpull/router/missing_outputs.py, jobstate)."""

from __future__ import annotations

from pathlib import Path

import classad2
import pytest

from hpcpull import holds
from hpcpull.router.jobstate import ExitRecord, Observation, Phase, transition
from hpcpull.router.missing_outputs import hold_for_missing_outputs, missing_outputs

OK = ExitRecord(exit_code=0, exit_signal=None, start=1000.0, end=1020.0, wall_s=20.0,
                user_cpu_s=1.0, sys_cpu_s=0.0, max_rss_kb=1024)
FAILED = ExitRecord(exit_code=3, exit_signal=None, start=1000.0, end=1020.0, wall_s=20.0,
                    user_cpu_s=1.0, sys_cpu_s=0.0, max_rss_kb=1024)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    (tmp_path / "made.txt").write_text("x\n")
    (tmp_path / "outdir" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to("/nonexistent")
    return tmp_path


def ad(**attrs: object) -> classad2.ClassAd:
    job = classad2.ClassAd()
    job.update({"WhenToTransferOutput": "ON_EXIT", **attrs})
    return job


def test_a_listed_file_that_is_not_there_is_missing(sandbox: Path) -> None:
    job = ad(TransferOutput="made.txt, never.txt,outdir/sub,outdir/gone/,link")
    assert missing_outputs(job, sandbox, OK) == ["never.txt", "outdir/gone/"]


def test_without_a_list_nothing_is_missing(sandbox: Path) -> None:
    assert missing_outputs(ad(), sandbox, OK) == []


@pytest.mark.parametrize("entry", ["../escaped.txt", "/etc/passwd", ".hpcpull/state.json", "osdf:///x/y"])
def test_names_the_output_return_refuses_are_left_to_it(sandbox: Path, entry: str) -> None:
    assert missing_outputs(ad(TransferOutput=entry), sandbox, OK) == []


def test_on_success_a_failed_job_transfers_nothing_so_misses_nothing(sandbox: Path) -> None:
    job = ad(TransferOutput="never.txt", WhenToTransferOutput="ON_SUCCESS")
    assert missing_outputs(job, sandbox, FAILED) == []
    assert missing_outputs(job, sandbox, OK) == ["never.txt"]
    assert missing_outputs(ad(TransferOutput="never.txt", WhenToTransferOutput="ON_SUCCESS", SuccessExitCode=3),
                           sandbox, FAILED) == ["never.txt"]


def test_on_exit_a_failed_job_misses_its_outputs_too(sandbox: Path) -> None:
    assert missing_outputs(ad(TransferOutput="never.txt"), sandbox, FAILED) == ["never.txt"]


def test_should_transfer_files_no_transfers_nothing(sandbox: Path) -> None:
    assert missing_outputs(ad(TransferOutput="never.txt", ShouldTransferFiles="NO"), sandbox, OK) == []


def test_the_hold_is_htcondors_transfer_output_error_naming_each_file(tmp_path: Path) -> None:
    hold = hold_for_missing_outputs(tmp_path, ["a.txt", "d/b.txt"], "4242", "slurm")
    assert (hold.code, hold.subcode) == (holds.TRANSFER_OUTPUT_ERROR, 2) == (12, 2)
    assert hold.reason == (
        f"hpcpull: Transfer output files failure at execution point slurm batch job 4242. Details: "
        f"reading from file {tmp_path}/a.txt: (errno 2) No such file or directory; "
        f"reading from file {tmp_path}/d/b.txt: (errno 2) No such file or directory")


def test_a_job_held_after_its_run_reports_the_run_first_then_the_hold() -> None:
    hold = hold_for_missing_outputs(Path("/s"), ["a"], "1", "slurm")
    seen = Observation(Phase.FAILED, exit=OK, hold=hold)
    idle = classad2.ClassAd({"JobStatus": 1, "NumJobStarts": 0, "JobRunCount": 0})
    first = transition(idle, seen, 2000)
    assert first["JobStatus"] == 2 and first["ShadowBday"] == 1000
    running = classad2.ClassAd({"JobStatus": 2, "ShadowBday": 1000, "NumJobStarts": 1})
    then = transition(running, seen, 2000)
    assert (then["JobStatus"], then["HoldReasonCode"], then["HoldReasonSubCode"]) == (5, 12, 2)
    assert then["RemoteWallClockTime"] == 20.0, "the run ended when the payload exited, not now"
    held = classad2.ClassAd({"JobStatus": 5})
    assert transition(held, seen, 2000) == {}
