"""Keep-files debugging: failed jobs' directories are kept aside, hook I/O on request."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.integration.test_pipeline import finished, make_job


def owner_dir(gateway: Any) -> Path:
    return gateway.scratch / (os.environ.get("USER") or "root")


def test_a_failed_job_is_kept_with_its_script_logs_and_reason(gateway: Any, tmp_path: Path) -> None:
    source = gateway.submit(make_job(tmp_path / "submit", "echo about to fail\nexit 3\n"))
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    cluster = source.split(".")[0]
    kept = list((owner_dir(gateway) / "failed").glob(f"{cluster}.0.*"))
    assert len(kept) == 1, "the failed job's directory was moved aside, not deleted"
    control = kept[0] / ".hpcpull"
    assert (control / "failed").read_text() == "exit code 3\n"
    assert (control / "job.sh").read_text().startswith("#!/bin/bash")
    assert "submitted batch job" in (control / "hook.log").read_text()
    assert (control / "stdout").read_text() == "about to fail\n"
    assert not (owner_dir(gateway) / cluster).exists(), "the job directory itself is gone"
    assert "kept=" in (gateway.workdir / "log" / "hpcpull" / "HpcPullLog").read_text()


def test_a_successful_job_leaves_nothing_behind(gateway: Any, tmp_path: Path) -> None:
    source = gateway.submit(make_job(tmp_path / "submit", "true\n"))
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    assert not list((owner_dir(gateway) / "failed").glob(f"{source.split('.')[0]}.0.*"))


def test_hook_io_is_recorded_when_asked(gateway: Any, tmp_path: Path) -> None:
    with open(gateway.config_path, "a") as config:
        config.write("HPCPULL_ROUTE_Slurm_KEEP_HOOK_IO = true\nHPCPULL_ROUTE_Slurm_KEEP_JOB_DIRS = true\n")
    source = gateway.submit(make_job(tmp_path / "submit", "true\n"))
    routed = gateway.route(source, "Slurm")
    job_dir = Path(gateway.jobs[routed.copy_id]["HpcPullJobDir"])
    gateway.run_until(finished(gateway, source), timeout=90)
    io = job_dir / ".hpcpull" / "hook-io"
    assert (io / "translate.stdout").read_text() == next(c.stdout for c in gateway.calls if c.hook == "translate")
    last_update = [c for c in gateway.calls if c.hook == "update"][-1]
    assert (io / "update.stdin").read_text() == last_update.stdin
    assert (io / "finalize.stdin").exists() and (io / "cleanup.stdin").exists()


def test_full_debug_logs_one_call_line_per_hook_run(gateway: Any, tmp_path: Path) -> None:
    log = gateway.workdir / "log" / "hpcpull" / "HpcPullLog"
    source = gateway.submit(make_job(tmp_path / "quiet", "true\n"))
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    assert " CALL " not in log.read_text(), "decisions only by default"
    with open(gateway.config_path, "a") as config:
        config.write("HPCPULL_DEBUG = D_FULLDEBUG\n")
    calls_before = len(gateway.calls)
    source = gateway.submit(make_job(tmp_path / "loud", "true\n"))
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    call_lines = [line for line in log.read_text().splitlines() if " CALL " in line]
    assert len(call_lines) == len(gateway.calls) - calls_before
    assert {line.split("hook=")[1].split()[0] for line in call_lines} == {"translate", "update", "finalize", "cleanup"}
    assert all(" rc=0 " in line and " ms=" in line for line in call_lines)
