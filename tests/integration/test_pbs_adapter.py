"""PbsBatchSystem against the real Torque wrappers (slurm-wlm-torque) on the private Slurm.

The wrappers are real PBS commands on top of Slurm: what they cannot show (exit codes,
Slurm's own states) is checked with Slurm's ``scontrol`` where a test needs to know that
the PBS command really did its job.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from hpcpull.lrms.base import BatchState, LrmsError
from hpcpull.lrms.pbs import PbsBatchSystem, parse_qstat_full
from tests.integration.batch_tracking import (
    is_terminal,
    record_commands,
    settled_slurm_state,
    tracked,
    unique_name,
    wait_for,
)

POLL_S = 0.2
WAIT_S = 30.0


@pytest.fixture
def batch(torque_env: dict[str, str]) -> Iterator[PbsBatchSystem]:
    system = PbsBatchSystem(torque_env, timeout=20)
    yield from tracked(system)



def write_job(directory: Path, name: str, body: str, *directives: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"{name}.sh"
    script.write_text("\n".join(["#!/bin/bash", *(f"#PBS {d}" for d in directives), body, ""]), encoding="utf-8")
    return script




def qstat_record(env: dict[str, str], job_id: str) -> dict[str, str]:
    """The job's attributes as the wrapper's ``qstat -f`` shows them."""
    proc = subprocess.run(["qstat", "-f", job_id], env=env, capture_output=True, text=True, timeout=30)
    (record,) = parse_qstat_full(proc.stdout)
    return record


def slurm_fields(env: dict[str, str], job_id: str) -> dict[str, str]:
    """Slurm's own view of the job (scontrol show job -o), for what PBS cannot show."""
    proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True, text=True,
                          timeout=30)
    return dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)


def test_submit_runs_in_workdir_with_directives(
    batch: PbsBatchSystem, torque_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    body = ('pwd > where.txt\necho "out $PBS_JOBID $SLURM_JOB_PARTITION $SLURM_NTASKS"\necho "err line" >&2\n'
            'exit {code}')
    directives = ("-l nodes=1:ppn=2", "-l walltime=00:05:00", "-q long")
    names = {code: unique_name(f"exit{code}") for code in (0, 3)}
    ids = {}
    for code, name in names.items():
        script = write_job(tmp_path / "scripts", f"exit{code}", body.format(code=code), *directives)
        ids[code] = batch.submit(script, name, workdir, tmp_path / f"out-{code}.txt")
    assert all(job_id.isdigit() for job_id in ids.values())

    record = qstat_record(torque_env, ids[3])  # the directives reached the batch system
    assert record["queue"] == "long" and record["Resource_List.walltime"] == "00:05:00"
    assert record["Resource_List.ncpus"] == "2" and record["Job_Name"] == names[3]

    commands = record_commands(batch, monkeypatch)
    polls = 0
    deadline = time.monotonic() + WAIT_S
    while True:
        jobs = batch.bulk_status()
        polls += 1
        if all(i in jobs and jobs[i].state.is_terminal for i in ids.values()) or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    assert commands == [["qstat", "-f", "-1"]] * polls  # one qstat per bulk_status, all users' jobs

    for code, job_id in ids.items():
        seen = jobs[job_id]
        assert seen.name == names[code] and seen.native_state == "C"
        assert seen.state is BatchState.COMPLETED and seen.exit_code is None  # the wrapper shows no exit status
        assert seen.start_time is not None and seen.end_time is not None
        assert abs(seen.start_time - time.time()) < 120 and seen.end_time >= seen.start_time
        output = (tmp_path / f"out-{code}.txt").read_text(encoding="utf-8")
        assert output == f"out {job_id} long 2\nerr line\n"  # stdout and stderr joined at `output`
    assert (workdir / "where.txt").read_text().strip() == str(workdir)
    assert slurm_fields(torque_env, ids[3])["ExitCode"] == "3:0"  # Slurm knows what PBS does not show

    commands.clear()
    status = batch.job_status(ids[3])
    assert status == jobs[ids[3]] and commands == [["qstat", "-f", "-1", ids[3]]]


def test_repeated_directive_last_wins_command_line_wins(
    batch: PbsBatchSystem, torque_env: dict[str, str], tmp_path: Path
) -> None:
    script = write_job(
        tmp_path, "twice", "echo here",
        "-N from-the-script", "-q debug", "-q long", "-l walltime=00:07:00", "-l walltime=00:09:00",
        f"-o {tmp_path}/from-the-script.out",
    )
    name = unique_name("twice")
    job_id = batch.submit(script, name, tmp_path, tmp_path / "cmdline.out")
    record = qstat_record(torque_env, job_id)
    assert record["queue"] == "long" and record["Resource_List.walltime"] == "00:09:00"  # last #PBS wins
    assert record["Job_Name"] == name  # qsub's -N beats #PBS -N
    wait_for(batch, [job_id], is_terminal)
    assert (tmp_path / "cmdline.out").read_text() == "here\n"  # and its -o beats #PBS -o
    assert not (tmp_path / "from-the-script.out").exists()


def test_held_pending_job_is_reported(batch: PbsBatchSystem, torque_env: dict[str, str], tmp_path: Path) -> None:
    first = batch.submit(write_job(tmp_path, "first", "sleep 60"), unique_name("first"), tmp_path)
    later = batch.submit(write_job(tmp_path, "later", "true", f"-W depend=afterok:{first}"),
                         unique_name("later"), tmp_path)
    pending = batch.job_status(later)
    assert pending is not None and pending.state is BatchState.PENDING and pending.reason == ""

    batch._checked(["qhold", "-h", "u", later])  # "-h u": the wrapper prints perl warnings without it
    held = batch.job_status(later)
    assert held is not None and held.state is BatchState.PENDING and held.reason == "held (Priority=0)"
    assert held.start_time is None
    assert slurm_fields(torque_env, later)["Reason"].startswith("JobHeld")
    assert batch.bulk_status()[later].reason == held.reason

    batch._checked(["qrls", "-h", "u", later])
    released = batch.job_status(later)
    assert released is not None and released.state is BatchState.PENDING and released.reason == ""
    fields = slurm_fields(torque_env, later)
    assert not fields["Reason"].startswith("JobHeld") and fields["Priority"] != "0"


def test_cancel_running_job_and_cancel_is_idempotent(
    batch: PbsBatchSystem, torque_env: dict[str, str], tmp_path: Path
) -> None:
    job_id = batch.submit(write_job(tmp_path, "sleep", "sleep 60"), unique_name("cancel"), tmp_path)
    running = wait_for(batch, [job_id], lambda s: s.state is not BatchState.PENDING)[job_id]
    assert running.state is BatchState.RUNNING and running.start_time is not None and running.end_time is None

    batch.cancel(job_id)
    ended = wait_for(batch, [job_id], is_terminal)[job_id]
    assert ended.native_state == "C" and ended.end_time is not None
    assert settled_slurm_state(torque_env, job_id) == "CANCELLED"
    batch.cancel(job_id)  # already finished: fine (the wrapper's qdel says rc 1, nothing else)
    batch.cancel("99999999")  # never existed: fine


def test_find_by_name(batch: PbsBatchSystem, tmp_path: Path) -> None:
    name = unique_name("find")
    job_id = batch.submit(write_job(tmp_path, "find", "true"), name, tmp_path)
    assert batch.find_by_name(name) == [job_id]
    assert batch.find_by_name(unique_name("never")) == []
    wait_for(batch, [job_id], is_terminal)
    assert batch.find_by_name(name) == [job_id]  # finished jobs too, while Slurm keeps them


def test_unknown_job_and_no_accounting(batch: PbsBatchSystem) -> None:
    assert batch.accounting_available() is False
    assert batch.job_status("99999999") is None


def test_bad_queue_is_a_refusal(batch: PbsBatchSystem, tmp_path: Path) -> None:
    script = write_job(tmp_path, "nope", "true", "-q nope")
    with pytest.raises(LrmsError) as info:
        batch.submit(script, unique_name("nope"), tmp_path)
    err = info.value
    assert err.transient is False and err.returncode == 1
    assert str(err) == "qsub failed (rc=1): Batch job submission failed: Invalid partition name specified"
    assert "invalid partition specified: nope" in err.stdout  # the wrapper reports on stdout
    assert err.command[:3] == ["qsub", "-N", err.command[2]] and err.command[-1] == str(script)


def test_unreachable_server_is_transient(torque_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = Path(torque_env["SLURM_CONF"]).read_text(encoding="utf-8").splitlines()
    conf = [f"SlurmctldPort={port}" if line.startswith("SlurmctldPort=") else line for line in conf]
    (tmp_path / "slurm.conf").write_text("\n".join(conf) + "\n", encoding="utf-8")
    dead = PbsBatchSystem(dict(torque_env, SLURM_CONF=str(tmp_path / "slurm.conf")), timeout=20)

    with pytest.raises(LrmsError) as info:  # the wrapper gives up after ~9 s
        dead.bulk_status()
    err = info.value
    # perl's die: the exit status is errno (8 here), the message the wrapper's own
    assert err.transient is True and err.returncode not in (None, 0)
    assert str(err) == f"qstat failed (rc={err.returncode}): Problem loading jobs."

    quick = PbsBatchSystem(dict(torque_env, SLURM_CONF=str(tmp_path / "slurm.conf")), timeout=1)
    with pytest.raises(LrmsError) as info:
        quick.job_status("1")
    assert info.value.transient is True and str(info.value) == "qstat timed out after 1 s"
