"""What hpcpull does when the batch side fails, a job waits too long, or the hook runs as root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.batch_tracking import settled_slurm_state
from tests.integration.test_pipeline import make_job


def append_config(gateway: Any, text: str) -> None:
    with open(gateway.config_path, "a") as config:
        config.write(text)


def running(source: str):
    return lambda r: r.jobs.get(source, {}).get("JobStatus") == 2


def test_a_batch_end_listed_in_requeue_on_submits_again_then_holds(gateway: Any, tmp_path: Path) -> None:
    # NODE_FAIL cannot be provoked on one loopback node; the policy is the same for any
    # state listed in REQUEUE_ON, so this route lists CANCELLED and an admin's scancel plays
    # the failed node.
    append_config(gateway, "HPCPULL_ROUTE_Slurm_REQUEUE_ON = CANCELLED NODE_FAIL\n"
                           "HPCPULL_ROUTE_Slurm_MAX_REQUEUES = 1\n")
    source = gateway.submit(make_job(tmp_path / "submit", "sleep 300\n"))
    routed = gateway.route(source, "Slurm")
    gateway.run_until(running(source), timeout=60)
    first = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    subprocess.run(["scancel", first], env=gateway.slurm_env, check=True, timeout=15)
    gateway.run_until(lambda r: r.jobs[routed.copy_id].get("HpcPullBatchJobId") not in (None, first)
                      and r.jobs[source].get("JobStatus") == 2, timeout=60)
    second = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    assert "004 evicted" in gateway.events[source], "the first run ended: the user sees an eviction"
    # the second failure exceeds MAX_REQUEUES: held with the batch system's reason
    subprocess.run(["scancel", second], env=gateway.slurm_env, check=True, timeout=15)
    gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 5, timeout=60)
    assert gateway.jobs[source]["HoldReasonSubCode"] == 25
    log = (gateway.workdir / "log" / "hpcpull" / "HpcPullLog").read_text()
    assert f"REQUEUED job={source}" in log and "requeues=1" in log


def test_a_job_waiting_too_long_is_given_back_idle(gateway: Any, tmp_path: Path) -> None:
    append_config(gateway, "HPCPULL_ROUTE_Slurm_MAX_IDLE_TIME = 3\n"
                           "HPCPULL_ROUTE_Slurm_EXTRA_DIRECTIVES = --begin=now+3600\n")  # waits an hour
    source = gateway.submit(make_job(tmp_path / "submit", "true\n"))
    routed = gateway.route(source, "Slurm")
    gateway.run_until(lambda r: "HpcPullBatchJobId" in r.jobs.get(routed.copy_id, {}), timeout=30)
    batch_id = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    gateway.run_until(lambda r: routed.copy_id not in r.jobs and r.jobs[source].get("Managed") == "Schedd",
                      timeout=60)
    src = gateway.jobs[source]
    assert src["JobStatus"] == 1, "idle, free to run elsewhere"
    assert src["HpcPullUndoneRoutes"] == "Slurm", "a route can stay away from jobs it gave back"
    assert settled_slurm_state(gateway.slurm_env, batch_id) == "CANCELLED"
    assert "UNDONE" in (gateway.workdir / "log" / "hpcpull" / "HpcPullLog").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal concerns hooks running as root")
def test_hooks_refuse_to_run_as_root_unless_allowed(gateway: Any, tmp_path: Path) -> None:
    append_config(gateway, "HPCPULL_ALLOW_ROOT = false\n")
    source = gateway.submit(make_job(tmp_path / "submit", "true\n"))
    gateway.route(source, "Slurm")
    call = gateway.calls[-1]
    assert call.exit_code == 1 and call.stdout == ""
    assert call.stderr == ("hpcpull translate: refusing to run as root (hooks run as the job owner; "
                           "set HPCPULL_ALLOW_ROOT = true only for a test gateway)\n")
    assert gateway.jobs[source]["JobStatus"] == 1 and gateway.jobs[source]["Managed"] == "Schedd"


def test_submissions_wait_for_the_routes_throttles(gateway: Any, tmp_path: Path) -> None:
    append_config(gateway, "HPCPULL_ROUTE_Slurm_MAX_BATCH_JOBS = 1\n")
    first = gateway.submit(make_job(tmp_path / "a", "sleep 4\n"))
    first_routed = gateway.route(first, "Slurm")
    gateway.poll()  # submits the first
    assert gateway.schedd_cron().exit_code == 0  # the poller's snapshot lists it
    second = gateway.submit(make_job(tmp_path / "b", "true\n"))
    second_routed = gateway.route(second, "Slurm")
    gateway.poll()
    assert "HpcPullBatchJobId" in gateway.jobs[first_routed.copy_id]
    assert "HpcPullBatchJobId" not in gateway.jobs[second_routed.copy_id], "waits: the route is full"
    assert gateway.jobs[second]["JobStatus"] == 1
    log = (gateway.workdir / "log" / "hpcpull" / "HpcPullLog").read_text()
    assert f"THROTTLED job={second}" in log and "HPCPULL_MAX_BATCH_JOBS" in log
    gateway.run_until(lambda r: not r.in_queue(first) and not r.in_queue(second), timeout=90)
    assert gateway.history[second]["ExitCode"] == 0, "submitted once the first left the batch system"


def test_submission_rate_limit(gateway: Any, tmp_path: Path) -> None:
    append_config(gateway, "HPCPULL_ROUTE_Slurm_SUBMITS_PER_MINUTE = 1\n")
    jobs = [gateway.submit(make_job(tmp_path / f"s{i}", "true\n")) for i in range(2)]
    copies = [gateway.route(j, "Slurm").copy_id for j in jobs]
    gateway.poll()
    submitted = ["HpcPullBatchJobId" in gateway.jobs.get(c, {}) or not gateway.in_queue(c) for c in copies]
    assert submitted == [True, False]
    for job in jobs:
        gateway.condor_rm(job)
    gateway.run_until(lambda r: not any(r.in_queue(j) for j in jobs), timeout=60)
