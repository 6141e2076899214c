"""Hook calls that arrive together on the real job router share a Python process, and each
job still gets exactly its own answer.

One condor_submit of a cluster makes the router start a TRANSLATE per job at once, and the
jobs ending together an UPDATE each; the front ends (hooks/hpcpull-hook-batch) queue them
for one Python process.  With
HPCPULL_DEBUG = D_FULLDEBUG every hook call leaves a CALL line naming the process that ran
it.  Each job exits with its own code and writes its own output, so a call answered with
another job's answer would show in condor_history or in the returned files."""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterator

import pytest

from hpcpull.state.eventlog import parse_line
from tests.plugins.condor import SLURM_ROUTES, GatewayPool

JOBS = 12
COMPLETED = 4


@pytest.fixture(scope="module")
def batching_gateway(make_gateway_pool: Callable[..., GatewayPool],
                     slurm_env: dict[str, str]) -> Iterator[GatewayPool]:
    gateway = make_gateway_pool("batching", SLURM_ROUTES, slurm_env, with_startd=False,
                                HPCPULL_DEBUG="D_FULLDEBUG")
    yield gateway
    gateway.pool.stop()


def test_a_cluster_is_served_by_shared_processes_and_each_job_gets_its_own_answer(
        batching_gateway: GatewayPool) -> None:
    gw = batching_gateway
    directory = gw.job_dir("batch")
    cluster = gw.submit(directory, f"""\
executable = /bin/sh
arguments = "-c 'echo proc $(Process); exit $(Process)'"
output = out.$(Process)
log = job.log
+WantHpc = true
queue {JOBS}
""")
    gw.wait_for(lambda: not gw.pool.q(f"ClusterId == {cluster}", ["JobStatus"]), 240, "every job done")
    history = gw.pool.history(f"ClusterId == {cluster}", ["ProcId", "JobStatus", "ExitCode"])
    assert sorted((h["ProcId"], h["JobStatus"], h["ExitCode"]) for h in history) == \
        [(proc, COMPLETED, proc) for proc in range(JOBS)]
    assert [(directory / f"out.{proc}").read_text() for proc in range(JOBS)] == \
        [f"proc {proc}\n" for proc in range(JOBS)]

    def calls() -> list[dict[str, str]]:  # this module's gateway runs no other jobs
        return [fields for _, event, fields in filter(None, map(parse_line, gw.hpcpull_log().splitlines()))
                if event == "CALL"]
    # CLEANUP comes after the job has left the queue (JobRouter::CleanupJob)
    gw.wait_for(lambda: sum(call["hook"] == "cleanup" for call in calls()) >= JOBS, 60, "every CLEANUP")
    per_hook = Counter(call["hook"] for call in calls())
    assert per_hook["translate"] == per_hook["finalize"] == per_hook["cleanup"] == JOBS, per_hook
    assert {call["rc"] for call in calls() if call["hook"] != "update"} == {"0"}
    translators = {call["pid"] for call in calls() if call["hook"] == "translate"}
    assert len(translators) < JOBS, f"{JOBS} TRANSLATE calls were served by {len(translators)} processes"
    # The full UPDATEs (behind the front end) of the jobs whose batch jobs ended in the same
    # poll are served together as well: every job needed at least one.
    updaters = {call["pid"] for call in calls() if call["hook"] == "update"}
    assert per_hook["update"] >= JOBS and len(updaters) < per_hook["update"], (per_hook, len(updaters))
