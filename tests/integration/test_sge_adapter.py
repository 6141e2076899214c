"""SgeBatchSystem against the real Grid Engine of the ``sge_env`` fixture (Debian gridengine 8.1.9)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from hpcpull.lrms.base import BatchJobStatus, BatchState, LrmsError
from hpcpull.lrms.sge import SgeBatchSystem
from tests.integration.batch_tracking import record_commands, tracked, unique_name

POLL_S = 0.25
WAIT_S = 45.0  # right after the first configuration qacct may lag ~15 s (flush_time takes effect later)


@pytest.fixture
def batch(sge_env: dict[str, str]) -> Iterator[SgeBatchSystem]:
    system = SgeBatchSystem(sge_env, timeout=20)
    yield from tracked(system)



def write_job(directory: Path, name: str, body: str, *directives: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/bash", *(f"#$ {d}" for d in directives), body, ""]
    script = directory / f"{name}.sh"
    script.write_text("\n".join(lines), encoding="utf-8")
    return script


def wait_until(what: str, probe: Callable[[], Optional[object]]) -> object:
    """Poll probe() until it returns something truthy; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {WAIT_S} s")
        time.sleep(POLL_S)


def final_status(batch: SgeBatchSystem, job_id: str) -> BatchJobStatus:
    """job_status once accounting has the job's record (native state "failed=..."), after it left qstat."""
    def probe() -> Optional[BatchJobStatus]:
        status = batch.job_status(job_id)
        return status if status is not None and status.native_state.startswith("failed=") else None

    return wait_until(f"accounting record of {job_id}", probe)  # type: ignore[return-value]


def in_one_hour() -> str:
    """qsub -a [[CC]YY]MMDDhhmm in the client's time zone (the adapter pins TZ=UTC)."""
    return time.strftime("%Y%m%d%H%M", time.gmtime(time.time() + 3600))


def test_submit_directives_workdir_output_and_accounting(
    batch: SgeBatchSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    scripts = tmp_path / "scripts"
    # [[ ]] is bash: it works only because submit() passes the #! shell with -S (the queues
    # start /bin/sh, posix_compliant); the script's own -o loses to the command line's
    multicore = write_job(
        scripts, "multicore",
        '[[ -n "$JOB_ID" ]] && echo "bash job=$JOB_ID slots=$NSLOTS queue=$QUEUE pwd=$(pwd)"\n'
        "pwd > where.txt\nsleep 3\nexit 3",
        "-pe smp 2", "-l h_rt=0:5:0", "-q long.q", f"-o {tmp_path}/not-here.out",
    )
    names = {"multicore": unique_name("smp"), "ok": unique_name("ok"), "limit": unique_name("hrt")}
    ids = {
        "multicore": batch.submit(multicore, names["multicore"], workdir, outputs / "multicore.out"),
        "ok": batch.submit(write_job(scripts, "ok", "sleep 3\nexit 0"), names["ok"], workdir),
        "limit": batch.submit(write_job(scripts, "limit", "sleep 60", "-l h_rt=0:0:2"), names["limit"], workdir),
    }
    assert all(job_id.isdigit() for job_id in ids.values())

    commands = record_commands(batch, monkeypatch)
    seen: dict[str, set[BatchState]] = {key: set() for key in ids}
    polls = 0
    deadline = time.monotonic() + WAIT_S
    while True:
        jobs = batch.bulk_status()
        polls += 1
        for key, job_id in ids.items():
            if job_id in jobs:
                assert jobs[job_id].name == names[key]
                seen[key].add(jobs[job_id].state)
                if jobs[job_id].state is BatchState.RUNNING:
                    assert jobs[job_id].start_time is not None and abs(jobs[job_id].start_time - time.time()) < 120
        if not any(job_id in jobs for job_id in ids.values()) or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    assert len(commands) == polls and all(argv[0] == "qstat" for argv in commands)  # one per bulk_status
    assert all(BatchState.RUNNING in states for states in seen.values()), seen
    assert all(states <= {BatchState.PENDING, BatchState.RUNNING} for states in seen.values()), seen

    monkeypatch.undo()  # stop recording commands
    multi = final_status(batch, ids["multicore"])
    assert (multi.state, multi.exit_code, multi.exit_signal) == (BatchState.FAILED, 3, None)
    assert multi.name == names["multicore"] and multi.reason == ""
    assert multi.start_time is not None and multi.end_time is not None
    assert 2 <= multi.end_time - multi.start_time <= 30 and abs(multi.end_time - time.time()) < 120
    ok = final_status(batch, ids["ok"])
    assert (ok.state, ok.exit_code, ok.exit_signal) == (BatchState.COMPLETED, 0, None)
    limit = final_status(batch, ids["limit"])
    assert (limit.state, limit.exit_code, limit.exit_signal) == (BatchState.TIMEOUT, None, 9)
    assert limit.reason.startswith("failed 37: qmaster enforced h_rt")

    assert (outputs / "multicore.out").read_text().strip() == (
        f"bash job={ids['multicore']} slots=2 queue=long.q pwd={workdir}")
    assert not (tmp_path / "not-here.out").exists()
    assert (workdir / "where.txt").read_text().strip() == str(workdir)
    assert (workdir / f"{names['ok']}.out").exists()


def test_held_pending_job_is_reported_and_cancelled(batch: SgeBatchSystem, tmp_path: Path) -> None:
    script = write_job(tmp_path, "later", "true", f"-a {in_one_hour()}")
    job_id = batch.submit(script, unique_name("hold"), tmp_path)
    pending = batch.bulk_status()[job_id]
    assert (pending.state, pending.native_state, pending.start_time) == (BatchState.PENDING, "qw", None)

    batch._checked(["qhold", job_id])
    held = batch.bulk_status()[job_id]
    assert (held.state, held.native_state, held.reason) == (BatchState.PENDING, "hqw", "on hold")
    assert batch.job_status(job_id) == held

    batch._checked(["qrls", job_id])
    released = batch.bulk_status()[job_id]
    assert (released.state, released.native_state, released.reason) == (BatchState.PENDING, "qw", "")

    batch.cancel(job_id)
    assert job_id not in batch.bulk_status()
    gone = batch.job_status(job_id)  # a zombie that never ran: no accounting record
    assert gone is not None and gone.state.is_terminal and gone.native_state == "z"
    assert gone.start_time is None and gone.exit_code is None
    batch.cancel(job_id)  # already gone: fine


def test_cancel_running_job(batch: SgeBatchSystem, tmp_path: Path) -> None:
    job_id = batch.submit(write_job(tmp_path, "sleep", "sleep 60"), unique_name("cancel"), tmp_path)
    running = wait_until("running", lambda: (s := batch.bulk_status().get(job_id)) and s.state is BatchState.RUNNING
                         and s)
    assert running.start_time is not None and running.end_time is None  # type: ignore[attr-defined]

    batch.cancel(job_id)
    batch.cancel(job_id)  # "already in deletion", or gone: fine
    wait_until("gone from qstat", lambda: job_id not in batch.bulk_status())
    killed = final_status(batch, job_id)
    assert (killed.state, killed.exit_code, killed.exit_signal) == (BatchState.FAILED, None, 9)
    assert killed.reason == "failed 100: assumedly after job"
    batch.cancel(job_id)  # finished: fine
    batch.cancel("99999999")  # never existed: fine


def test_error_state_job_is_failed_until_cancelled(batch: SgeBatchSystem, tmp_path: Path) -> None:
    missing = tmp_path / "missing"  # qsub accepts it; the job then waits in Eqw forever
    job_id = batch.submit(write_job(tmp_path, "nowhere", "true"), unique_name("eqw"), missing, tmp_path / "o.out")
    error = wait_until("error state", lambda: (s := batch.bulk_status().get(job_id)) and "E" in s.native_state and s)
    assert error.state is BatchState.FAILED and error.native_state == "Eqw"  # type: ignore[attr-defined]
    detail = batch.job_status(job_id)
    assert detail is not None and detail.state is BatchState.FAILED
    assert detail.reason == f"error state: error: can't chdir to {missing}: No such file or directory"
    batch.cancel(job_id)
    assert job_id not in batch.bulk_status()


def test_find_by_name(batch: SgeBatchSystem, tmp_path: Path) -> None:
    name = unique_name("find") + ".0-9f8e7d6c"  # hpcpull's names have a dot
    job_id = batch.submit(write_job(tmp_path, "find", "true"), name, tmp_path)
    assert batch.find_by_name(name) == [job_id]
    assert batch.find_by_name(unique_name("never")) == []
    wait_until("gone from qstat", lambda: job_id not in batch.bulk_status())
    assert batch.find_by_name(name) == [job_id]  # finished: a zombie, and in accounting
    final_status(batch, job_id)
    assert batch.find_by_name(name) == [job_id]


def test_unknown_job_and_accounting(batch: SgeBatchSystem) -> None:
    assert batch.accounting_available() is True
    assert batch.job_status("99999999") is None


def test_unknown_queue_is_a_refusal(batch: SgeBatchSystem, tmp_path: Path) -> None:
    script = write_job(tmp_path, "nope", "true", "-q nope.q")
    with pytest.raises(LrmsError) as info:
        batch.submit(script, unique_name("nope"), tmp_path)
    err = info.value
    assert err.transient is False and err.returncode == 1
    assert str(err) == (
        'qsub failed (rc=1): Unable to run job: Job was rejected because job requests unknown queue "nope.q"')
    assert err.stderr.splitlines()[-1] == "Exiting."
    assert err.command[:2] == ["qsub", "-terse"] and err.command[-1] == str(script)


def test_unreachable_qmaster_is_transient(sge_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = SgeBatchSystem(dict(sge_env, SGE_QMASTER_PORT=str(port)), timeout=10)
    started = time.monotonic()
    for call in (dead.bulk_status, lambda: dead.job_status("1"), lambda: dead.cancel("1"),
                 lambda: dead.submit(write_job(tmp_path, "x", "true"), "hpcpull-x", tmp_path, tmp_path / "x.out")):
        with pytest.raises(LrmsError) as info:
            call()
        assert info.value.transient is True and info.value.returncode is not None
        assert "commlib error" in info.value.stderr
    assert time.monotonic() - started < 8


def test_directive_facts(sge_env: dict[str, str], tmp_path: Path) -> None:
    """What qsub does with #$ lines (relied on by the SGE template): pinned against the real qsub."""
    script = write_job(
        tmp_path, "facts", "true",
        "-N first-name", "-N second-name", "-l h_rt=0:10:0", "-l h_rt=0:20:0", "-l h_vmem=1G",
        f"-o {tmp_path}/first.out", f"-o {tmp_path}/second.out",
    )
    script.write_text(script.read_text() + "#$ -N after-the-first-command\n#XX -N other-prefix\n")

    def submitted(*options: str) -> dict[str, str]:
        proc = subprocess.run(["qsub", "-terse", "-h", *options, str(script)], env=sge_env,
                              capture_output=True, text=True, timeout=30, check=True)
        job_id = proc.stdout.splitlines()[-1]
        try:
            info = subprocess.run(["qstat", "-j", job_id], env=sge_env, capture_output=True, text=True,
                                  timeout=30, check=True).stdout
        finally:
            subprocess.run(["qdel", job_id], env=sge_env, capture_output=True, timeout=30)
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return {key.strip(): value.strip() for key, value in fields.items()} | {"stdout": proc.stdout}

    plain = submitted()
    # last wins, with a warning on stdout; -l lines accumulate; qsub reads the whole script
    # (an #$ line after the first command counts too)
    assert plain["job_name"] == "after-the-first-command"
    assert plain["hard resource_list"] == "h_rt=1200,h_vmem=1G"
    assert plain["stdout_path_list"] == f"NONE:NONE:{tmp_path}/second.out"
    assert 'warning: "-N" option has already been set, overriding previous setting' in plain["stdout"]
    # the command line overrides the script
    cli = submitted("-N", "from-cli", "-l", "h_rt=0:30:0", "-o", f"{tmp_path}/cli.out")
    assert cli["job_name"] == "from-cli"
    assert sorted(cli["hard resource_list"].split(",")) == ["h_rt=1800", "h_vmem=1G"]  # merged, cli's h_rt wins
    assert cli["stdout_path_list"] == f"NONE:NONE:{tmp_path}/cli.out"
    # -C sets the prefix; an empty one turns directives off
    assert submitted("-C", "#XX")["job_name"] == "other-prefix"
    assert submitted("-C", "")["job_name"] == "facts.sh"
