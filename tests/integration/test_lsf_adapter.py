"""LsfBatchSystem against the FAKE LSF of the ``lsf_env`` fixture (tests/fakes/lsf).

No real LSF can be installed here: these tests check that the adapter drives LSF's
commands as documented and reads back what they print, with a labelled test double that
really runs the jobs.  The output formats themselves are checked against real samples in
tests/unit/test_lsf_parsing.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from hpcpull.lrms.base import BatchState, LrmsError
from hpcpull.lrms.lsf import LsfBatchSystem
from tests.integration.batch_tracking import is_terminal, record_commands, tracked, unique_name, wait_for

POLL_S = 0.1
WAIT_S = 20.0


@pytest.fixture
def batch(lsf_env: dict[str, str]) -> Iterator[LsfBatchSystem]:
    system = LsfBatchSystem(lsf_env, timeout=20)
    yield from tracked(system)



def write_job(directory: Path, name: str, body: str, *directives: str) -> Path:
    """A job script whose own -J/-o must lose against the adapter's command line."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/bash", "#BSUB -J not-this-name", "#BSUB -o lsf-%J.out",
             *(f"#BSUB {d}" for d in directives), body, ""]
    script = directory / f"{name}.sh"
    script.write_text("\n".join(lines), encoding="utf-8")
    return script




def test_submit_poll_and_exit_codes(
    batch: LsfBatchSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    names = {code: unique_name(f"exit{code}") for code in (0, 3, 7)}
    ids = {}
    for code, name in names.items():
        body = f"pwd > where-{code}.txt\necho out-{code}\necho err-{code} >&2\nexit {code}"
        ids[code] = batch.submit(write_job(tmp_path / "scripts", f"exit{code}", body), name, workdir)
    assert all(job_id.isdigit() for job_id in ids.values())

    commands = record_commands(batch, monkeypatch)
    polls = 0
    deadline = time.monotonic() + WAIT_S
    while True:
        jobs = batch.bulk_status()
        polls += 1
        if all(i in jobs and jobs[i].state.is_terminal for i in ids.values()) or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    assert len(commands) == polls  # one bjobs per bulk_status, however many jobs
    assert all(argv[0] == "bjobs" for argv in commands)

    for code, job_id in ids.items():
        seen = jobs[job_id]
        assert seen.name == names[code]  # the command line's -J, not the script's
        assert seen.state is (BatchState.COMPLETED if code == 0 else BatchState.FAILED)
        assert seen.native_state == ("DONE" if code == 0 else "EXIT")
        assert seen.exit_code == code and seen.reason == ""
        assert seen.start_time is not None and seen.end_time is not None
        assert abs(seen.start_time - time.time()) < 120 and seen.end_time >= seen.start_time  # to the minute
        assert (workdir / f"where-{code}.txt").read_text().strip() == str(workdir)  # -cwd
        output = (workdir / f"{names[code]}.out").read_text()
        assert f"out-{code}\nerr-{code}\n" in output  # -o and -e: one file, in order
    assert list(workdir.glob("lsf-*.out")) == []  # the script's own -o lost

    commands.clear()
    failed = batch.job_status(ids[3])
    assert failed is not None and len(commands) == 1 and commands[0][0] == "bjobs"
    assert (failed.state, failed.exit_code, failed.name) == (BatchState.FAILED, 3, names[3])
    assert failed.end_time == jobs[ids[3]].end_time
    ok = batch.job_status(ids[0])
    assert ok is not None and ok.state is BatchState.COMPLETED and ok.exit_code == 0


def test_unknown_and_forgotten_jobs(batch: LsfBatchSystem, tmp_path: Path) -> None:
    assert batch.job_status("99999999") is None
    job_id = batch.submit(write_job(tmp_path, "quick", "true"), unique_name("forget"), tmp_path)
    wait_for(batch, [job_id], is_terminal)
    batch.env["HPCPULL_FAKE_LSF_CLEAN_PERIOD"] = "0"  # bjobs -a forgets finished jobs at once
    assert job_id not in batch.bulk_status()
    assert batch.job_status(job_id) is None  # no accounting: unknown
    assert batch.bulk_status() == {}  # "No job found" is no error


def test_cancel_running_job(batch: LsfBatchSystem, tmp_path: Path) -> None:
    job_id = batch.submit(write_job(tmp_path, "sleep", "sleep 60"), unique_name("cancel"), tmp_path)
    running = wait_for(batch, [job_id], lambda s: s.state is not BatchState.PENDING)[job_id]
    assert running.state is BatchState.RUNNING and running.native_state == "RUN"
    assert running.start_time is not None and running.end_time is None and running.exit_code is None

    batch.cancel(job_id)
    cancelled = wait_for(batch, [job_id], is_terminal)[job_id]
    assert cancelled.state is BatchState.CANCELLED and cancelled.native_state == "EXIT"
    assert cancelled.reason == "TERM_OWNER: job killed by owner"
    assert cancelled.exit_code == 130  # bash ended by bkill's first signal, SIGINT: 128 + 2
    batch.cancel(job_id)  # already finished: fine
    batch.cancel("99999999")  # never existed: fine


def test_cancel_held_job(batch: LsfBatchSystem, tmp_path: Path) -> None:
    job_id = batch.submit(write_job(tmp_path, "held", "true", "-H"), unique_name("cancelheld"), tmp_path)
    batch.cancel(job_id)
    status = batch.job_status(job_id)
    assert status is not None and status.state is BatchState.CANCELLED
    assert (status.start_time, status.exit_code) == (None, None)  # it never ran


def test_submitted_held_then_released(batch: LsfBatchSystem, tmp_path: Path) -> None:
    job_id = batch.submit(write_job(tmp_path, "later", "echo ran > ran.txt", "-H"), unique_name("bsubH"), tmp_path)
    time.sleep(0.5)  # the fake would have started an unheld job by now
    held = batch.job_status(job_id)
    assert held is not None and held.state is BatchState.PENDING and held.native_state == "PSUSP"
    assert held.start_time is None and not (tmp_path / "ran.txt").exists()
    batch._checked(["bresume", job_id])
    done = wait_for(batch, [job_id], is_terminal)[job_id]
    assert done.state is BatchState.COMPLETED and (tmp_path / "ran.txt").read_text() == "ran\n"


def test_stopped_pending_job_is_reported_held(batch: LsfBatchSystem, tmp_path: Path) -> None:
    batch.env["HPCPULL_FAKE_LSF_DISPATCH_DELAY"] = "1"  # the fake keeps it PEND for a second
    job_id = batch.submit(write_job(tmp_path, "wait", "true"), unique_name("hold"), tmp_path)
    assert batch.bulk_status()[job_id].native_state == "PEND"
    batch._checked(["bstop", job_id])
    time.sleep(1.5)
    held = batch.bulk_status()[job_id]
    assert held.state is BatchState.PENDING and held.native_state == "PSUSP"  # not started
    batch._checked(["bresume", job_id])
    assert wait_for(batch, [job_id], is_terminal)[job_id].state is BatchState.COMPLETED


def test_run_limit_is_a_timeout(batch: LsfBatchSystem, tmp_path: Path) -> None:
    batch.env["HPCPULL_FAKE_LSF_MINUTE"] = "1"  # -W minutes last a second in the fake
    job_id = batch.submit(write_job(tmp_path, "long", "sleep 30", "-W 1"), unique_name("limit"), tmp_path)
    status = wait_for(batch, [job_id], is_terminal)[job_id]
    assert status.state is BatchState.TIMEOUT and status.native_state == "EXIT"
    assert status.reason.startswith("TERM_RUNLIMIT")
    assert status.exit_code == 140  # SIGUSR2, as real LSF reports a run limit


def test_find_by_name(batch: LsfBatchSystem, tmp_path: Path) -> None:
    name = unique_name("find")
    job_id = batch.submit(write_job(tmp_path, "find", "sleep 5"), name, tmp_path)
    assert batch.find_by_name(name) == [job_id]
    batch.cancel(job_id)
    wait_for(batch, [job_id], is_terminal)
    assert batch.find_by_name(name) == [job_id]  # finished jobs too
    assert batch.find_by_name(unique_name("nobody")) == []


def test_refused_submission(batch: LsfBatchSystem, tmp_path: Path) -> None:
    script = write_job(tmp_path, "refused", "true", "-q nosuchqueue")
    with pytest.raises(LrmsError) as info:
        batch.submit(script, unique_name("refused"), tmp_path)
    err = info.value
    assert not err.transient and err.returncode == 255 and err.command[0] == "bsub"
    assert "nosuchqueue: No such queue. Job not submitted." in err.stderr
    assert str(err) == "bsub failed (rc=255): nosuchqueue: No such queue. Job not submitted."
    assert batch.bulk_status() == {}


def test_the_fake_says_it_is_fake(lsf_env: dict[str, str]) -> None:
    for command in ("bsub", "bjobs", "bkill", "bstop", "bresume"):
        version = subprocess.run([command, "-V"], env=lsf_env, capture_output=True, text=True, timeout=20)
        assert version.returncode == 0 and version.stdout == ""
        assert version.stderr.startswith("FAKE LSF (hpcpull test double, not IBM LSF)")
    listing = subprocess.run(["bjobs", "-u", "all", "-a"], env=lsf_env, capture_output=True, text=True, timeout=20)
    assert "FAKE" not in listing.stdout  # parsers read stdout
    assert listing.stderr.splitlines()[0] == "FAKE LSF (hpcpull test double, not IBM LSF): bjobs -u all -a"
