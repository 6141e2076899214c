"""SlurmBatchSystem against the real private Slurm of the ``slurm_env`` fixture."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from hpcpull.lrms import get_batch_system
from hpcpull.lrms.base import BatchState, LrmsError
from hpcpull.lrms.slurm import SlurmBatchSystem
from tests.integration.batch_tracking import is_terminal, record_commands, tracked, unique_name, wait_for

POLL_S = 0.2
WAIT_S = 60.0


@pytest.fixture
def batch(slurm_env: dict[str, str]) -> Iterator[SlurmBatchSystem]:
    system = get_batch_system("slurm", slurm_env, timeout=20)
    assert isinstance(system, SlurmBatchSystem)
    yield from tracked(system)


def write_job(directory: Path, name: str, body: str, *directives: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/bash", "#SBATCH -o slurm-%j.out", *(f"#SBATCH {d}" for d in directives), body, ""]
    script = directory / f"{name}.sh"
    script.write_text("\n".join(lines), encoding="utf-8")
    return script




def test_submit_poll_and_exit_codes(
    batch: SlurmBatchSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"  # must exist: else the job FAILs with JobLaunchFailure, ExitCode 0:53
    workdir.mkdir()
    names = {code: unique_name(f"exit{code}") for code in (0, 3, 7)}
    ids = {}
    for code, name in names.items():
        script = write_job(tmp_path / "scripts", f"exit{code}", f"pwd > where-{code}.txt\nexit {code}")
        ids[code] = batch.submit(script, name, workdir)
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
    assert len(commands) == polls  # one squeue per bulk_status, however many jobs
    assert all(argv[0] == "squeue" for argv in commands)

    for code, job_id in ids.items():
        seen = jobs[job_id]
        assert seen.name == names[code]
        assert seen.state is (BatchState.COMPLETED if code == 0 else BatchState.FAILED)
        assert seen.native_state == ("COMPLETED" if code == 0 else "FAILED")
        assert seen.start_time is not None and seen.end_time is not None
        assert abs(seen.start_time - time.time()) < 120 and seen.end_time >= seen.start_time
        assert (workdir / f"where-{code}.txt").read_text().strip() == str(workdir)  # --chdir

    commands.clear()
    failed = batch.job_status(ids[3])
    assert failed is not None and len(commands) == 1 and commands[0][:3] == ["scontrol", "show", "job"]
    assert failed.state is BatchState.FAILED and failed.reason == "NonZeroExitCode"
    assert (failed.exit_code, failed.exit_signal) == (3, None)
    assert failed.name == names[3] and failed.start_time == jobs[ids[3]].start_time
    ok = batch.job_status(ids[0])
    assert ok is not None and ok.state is BatchState.COMPLETED and (ok.exit_code, ok.exit_signal) == (0, None)
    seven = batch.job_status(ids[7])
    assert seven is not None and seven.exit_code == 7


def test_cancel_running_job(batch: SlurmBatchSystem, tmp_path: Path) -> None:
    job_id = batch.submit(write_job(tmp_path, "sleep", "sleep 60"), unique_name("cancel"), tmp_path)
    running = wait_for(batch, [job_id], lambda s: s.state is not BatchState.PENDING)[job_id]
    assert running.state is BatchState.RUNNING and running.start_time is not None
    assert running.end_time is None and running.exit_code is None

    batch.cancel(job_id)
    cancelled = wait_for(batch, [job_id], is_terminal)[job_id]
    assert cancelled.state is BatchState.CANCELLED and cancelled.native_state == "CANCELLED"
    status = batch.job_status(job_id)
    assert status is not None and status.state is BatchState.CANCELLED and status.exit_signal == 15
    batch.cancel(job_id)  # already finished: fine
    batch.cancel("99999999")  # never existed: fine


def test_held_pending_job_is_reported(batch: SlurmBatchSystem, tmp_path: Path) -> None:
    script = write_job(tmp_path, "later", "true", "--begin=now+60")
    job_id = batch.submit(script, unique_name("hold"), tmp_path)
    batch._checked(["scontrol", "hold", job_id])
    held = batch.job_status(job_id)
    assert held is not None and held.state is BatchState.PENDING
    assert held.reason.startswith("JobHeld")  # JobHeldAdmin for the cluster owner, else JobHeldUser
    assert held.start_time is None  # Slurm's expected start is not reported as a start
    assert batch.bulk_status()[job_id].reason == held.reason

    batch._checked(["scontrol", "release", job_id])
    released = batch.job_status(job_id)
    assert released is not None and released.state is BatchState.PENDING
    assert not released.reason.startswith("JobHeld")

    batch.cancel(job_id)
    assert wait_for(batch, [job_id], is_terminal)[job_id].state is BatchState.CANCELLED


def test_find_by_name(batch: SlurmBatchSystem, tmp_path: Path) -> None:
    name = unique_name("find")
    job_id = batch.submit(write_job(tmp_path, "find", "true"), name, tmp_path)
    assert batch.find_by_name(name) == [job_id]
    assert batch.find_by_name(unique_name("never")) == []
    wait_for(batch, [job_id], is_terminal)
    assert batch.find_by_name(name) == [job_id]  # finished jobs too


def test_unknown_job_and_no_accounting(batch: SlurmBatchSystem) -> None:
    assert batch.accounting_available() is False  # the fixture's cluster has no slurmdbd
    assert batch.job_status("99999999") is None


def test_invalid_partition_is_a_refusal(batch: SlurmBatchSystem, tmp_path: Path) -> None:
    script = write_job(tmp_path, "nope", "true", "--partition=nope")
    with pytest.raises(LrmsError) as info:
        batch.submit(script, unique_name("nope"), tmp_path)
    err = info.value
    assert err.transient is False and err.returncode == 1
    assert str(err) == "sbatch failed (rc=1): Batch job submission failed: Invalid partition name specified"
    assert "invalid partition specified: nope" in err.stderr
    assert err.command[:2] == ["sbatch", "--parsable"] and err.command[-1] == str(script)


def test_unreachable_controller_times_out(slurm_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = Path(slurm_env["SLURM_CONF"]).read_text(encoding="utf-8").splitlines()
    conf = [f"SlurmctldPort={port}" if line.startswith("SlurmctldPort=") else line for line in conf]
    (tmp_path / "slurm.conf").write_text("\n".join(conf) + "\n", encoding="utf-8")
    dead = get_batch_system("slurm", dict(slurm_env, SLURM_CONF=str(tmp_path / "slurm.conf")), timeout=2)

    started = time.monotonic()
    with pytest.raises(LrmsError) as info:
        dead.bulk_status()
    assert time.monotonic() - started < 6
    err = info.value
    assert err.transient is True and err.returncode is None
    assert str(err) == "squeue timed out after 2 s" and err.command[0] == "squeue"
