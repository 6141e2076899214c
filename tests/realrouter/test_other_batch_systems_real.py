"""Jobs through the REAL condor_job_router and hpcpull's hooks into the other batch systems.

PBS runs on the Torque-compatible wrappers over the private Slurm (HPCPULL_LRMS=pbs), Grid
Engine on the host's Debian Grid Engine (sge), LSF on the labelled fake LSF (lsf).  Each
batch system gets its own gateway pool: HPCPULL_LRMS_ENVIRONMENT (which puts the batch
commands on PATH) is gateway-wide, and Torque's qsub and Grid Engine's qsub share a name.

All pools are started and their jobs submitted before any test waits (the ``runs``
fixture), so the module takes about as long as one pool start per system plus one job.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Union

import pytest

from tests.plugins.condor import GatewayPool

ROUTE = "Hpc"
ROUTES = f"""\
JOB_ROUTER_ROUTE_NAMES = {ROUTE}
JOB_ROUTER_ROUTE_{ROUTE} @=jrt
  REQUIREMENTS WantHpc =?= true
  UNIVERSE VANILLA
  SET Requirements false
@jrt
"""


@dataclass(frozen=True)
class System:
    fixture: str                       # the fixture giving the batch commands' environment
    queue: str                         # HPCPULL_PARTITION: a queue this batch system has
    exit_code: int                     # what the job exits with (distinct per system)
    record: Callable[[str], list[str]]  # the batch system's own command for one finished job
    first_cluster: int                 # SCHEDD_CLUSTER_INITIAL_VALUE of the system's pool


SYSTEMS: dict[str, System] = {
    # Slurm's qstat wrapper prints Job_Name and Job_Owner (user@host) for -f (slurm-wlm-torque
    # contribs/torque/qstat.pl); Slurm keeps a finished job for MinJobAge = 300 s.
    "pbs": System("torque_env", "long", 3, lambda job: ["qstat", "-f", job], 7100),
    # qacct reads the accounting file: "jobname", "owner", "exit_status" (qacct(1)).
    "sge": System("sge_env", "long.q", 5, lambda job: ["qacct", "-j", job], 7200),
    # bjobs given job ids shows them in any state, any user's (tests/fakes/lsf/fakelsf.py).
    "lsf": System("lsf_gateway_env", "normal", 7, lambda job: ["bjobs", "-a", "-o", "user job_name", job], 7300),
}

SUBMIT = """\
executable = /bin/sh
arguments = "-c 'tr a-z A-Z < input.txt > output.txt; echo ran on {lrms}; exit {code}'"
transfer_input_files = input.txt
transfer_output_files = output.txt
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
output = job.out
error = job.err
log = job.log
+WantHpc = true
queue
"""


@dataclass
class Run:
    gateway: GatewayPool
    directory: Path
    cluster: int
    text: str


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, make_gateway_pool) -> Iterator[dict[str, Union[Run, str]]]:
    """One gateway pool per batch system with one job submitted; a skip reason where the
    batch system is not available here.  The pools are stopped at the end of the module."""
    started: dict[str, Union[Run, str]] = {}
    try:
        for lrms, system in SYSTEMS.items():
            try:
                env = request.getfixturevalue(system.fixture)
            except pytest.skip.Exception as skipped:
                started[lrms] = str(skipped)
                continue
            # Cluster ids of their own: the PBS pool's jobs land in the session's private Slurm,
            # where other pools' tests look their batch jobs up by <ClusterId>.<ProcId> in the
            # batch job name (hpcpull/state/submission.py batch_job_name).
            gateway = make_gateway_pool(
                f"real-{lrms}", ROUTES, env, HPCPULL_LRMS=lrms, HPCPULL_PARTITION=system.queue,
                extra_config=f"SCHEDD_CLUSTER_INITIAL_VALUE = {system.first_cluster}\n")
            directory = gateway.job_dir(lrms)
            text = f"input for {lrms}\nsecond line\n"
            gateway.pool.write_user_file(directory / "input.txt", text)
            cluster = gateway.submit(directory, SUBMIT.format(lrms=lrms, code=system.exit_code))
            started[lrms] = Run(gateway, directory, cluster, text)
        yield started
    finally:
        for run in started.values():
            if isinstance(run, Run):
                run.gateway.pool.stop()


@pytest.mark.parametrize("lrms", sorted(SYSTEMS))
def test_job_runs_on_the_batch_system_and_comes_back(runs: dict[str, Union[Run, str]], lrms: str) -> None:
    run = runs[lrms]
    if isinstance(run, str):
        pytest.skip(run)
    gateway, system = run.gateway, SYSTEMS[lrms]
    record = gateway.finished(run.cluster, timeout=150)
    assert run.cluster >= system.first_cluster

    assert record["JobStatus"] == 4, gateway.diagnostics()
    assert record["ExitCode"] == system.exit_code, gateway.diagnostics()
    assert record["HpcPullLrms"] == lrms
    # The input went in, the job read it, and its output file came back into the Iwd.
    assert (run.directory / "output.txt").read_text() == run.text.upper()
    assert (run.directory / "job.out").read_text() == f"ran on {lrms}\n"
    assert "005 (" in gateway.user_log(run.directory)  # the user log got its terminate event

    # The batch system itself ran it: its record names hpcpull's batch job and the job owner.
    # (Grid Engine's qacct sees a job once qmaster has flushed its accounting file.)
    batch_id = record["HpcPullBatchJobId"]
    name = re.compile(rf"hpcpull-{ROUTE}-{run.cluster}\.0-[0-9a-f]+")

    def batch_record() -> str:
        seen = subprocess.run(system.record(batch_id), env=gateway.lrms_env, capture_output=True, text=True,
                              timeout=30)
        return seen.stdout if name.search(seen.stdout) else ""

    listing = gateway.wait_for(batch_record, 30, f"{lrms} to list batch job {batch_id}")
    assert re.search(rf"\b{gateway.pool.user}\b", listing), listing
