"""Daemons restarted or stopped mid-run: no job lost, none run twice.

A pool of its own (stopping its schedd would disturb other tests' jobs).  Each job's batch
jobs are counted by hpcpull's batch job name in squeue and in Slurm's job completion log.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.plugins.condor import SLURM_ROUTES, GatewayPool

SLEEP_JOB = """\
executable = /bin/sh
arguments = "-c 'echo started; sleep {sleep}; echo done > result.txt; exit {code}'"
transfer_output_files = result.txt
output = job.out
error = job.err
log = job.log
+WantHpc = true
queue
"""


@pytest.fixture(scope="module")
def restarts_pool(make_gateway_pool, slurm_env) -> GatewayPool:
    return make_gateway_pool("restarts", SLURM_ROUTES, slurm_env)


def _submit_sleepers(gw: GatewayPool, name: str, count: int, sleep: int) -> list[tuple[int, object]]:
    jobs = []
    for i in range(count):
        directory = gw.job_dir(name)
        jobs.append((gw.submit(directory, SLEEP_JOB.format(sleep=sleep, code=10 + i)), directory))
    return jobs


def _wait_running(gw: GatewayPool, clusters: list[int], timeout: float = 120) -> None:
    def all_running():
        found = gw.pool.q(" || ".join(f"ClusterId == {c}" for c in clusters), ["JobStatus"])
        return len(found) == len(clusters) and all(job["JobStatus"] == 2 for job in found)
    gw.wait_for(all_running, timeout, f"jobs {clusters} running in Slurm")


def _assert_ran_once(gw: GatewayPool, jobs: list[tuple[int, object]]) -> None:
    for index, (cluster, directory) in enumerate(jobs):
        record = gw.finished(cluster, timeout=240)
        assert record["ExitCode"] == 10 + index, gw.diagnostics()
        assert gw.batch_jobs(cluster) and len(gw.batch_jobs(cluster)) == 1, (
            f"job {cluster}.0 ran as batch jobs {gw.batch_jobs(cluster)}\n{gw.diagnostics()}")
        assert (directory / "result.txt").read_text() == "done\n"
        assert (directory / "job.out").read_text() == "started\n"
        log = gw.user_log(directory)
        assert f"return value {10 + index})" in log, log
        assert log.count("005 (") == 1, log


def test_schedd_down_while_batch_jobs_end(restarts_pool: GatewayPool) -> None:
    """The schedd is off while the batch jobs finish: each job still runs once and ends
    with its own exit code (the router's yield in between must not make it run again)."""
    gw = restarts_pool
    jobs = _submit_sleepers(gw, "schedd-off", 2, 15)
    _wait_running(gw, [cluster for cluster, _ in jobs])
    gw.pool.tool(["condor_off", "-schedd"])
    try:
        time.sleep(45)
    finally:
        gw.pool.tool(["condor_on", "-schedd"])
    gw.pool.wait_for_daemons(["Scheduler"])
    _assert_ran_once(gw, jobs)


def test_schedd_restart_mid_run(restarts_pool: GatewayPool) -> None:
    gw = restarts_pool
    jobs = _submit_sleepers(gw, "schedd-restart", 3, 25)
    _wait_running(gw, [cluster for cluster, _ in jobs])
    gw.pool.tool(["condor_restart", "-schedd"])
    _assert_ran_once(gw, jobs)


def test_job_router_restart_mid_run(restarts_pool: GatewayPool) -> None:
    gw = restarts_pool
    jobs = _submit_sleepers(gw, "router-restart", 2, 20)
    _wait_running(gw, [cluster for cluster, _ in jobs])
    # condor_restart cannot address the job router (it locates daemons by their collector
    # ad type); ending the process makes the master start a new one, which adopts the
    # routed jobs from the queue (JobRouter::AdoptOrphans).
    router = gw.pool.daemon_pid("condor_job_router")
    os.kill(router, signal.SIGTERM)
    gw.wait_for(lambda: _new_router(gw, router), 120, "the master to start a new job router")
    _assert_ran_once(gw, jobs)


def _new_router(gw: GatewayPool, old: int) -> bool:
    try:
        return gw.pool.daemon_pid("condor_job_router") != old
    except RuntimeError:
        return False
