"""The batch system goes away mid-run and comes back (a private Slurm of this test's own).

While slurmctld is down: no job is marked complete or failed, routing of new jobs pauses
with a clear reason, every batch command gives up after HPCPULL_COMMAND_TIMEOUT; when it
is back, the running job's status resumes and it completes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import SCRIPTS, make_gateway
from tests.integration.test_pipeline import finished, make_job


@pytest.fixture
def own_slurm(tmp_path: Path) -> Iterator[dict[str, str]]:
    cluster = tmp_path / "slurm"
    port = 20000 + random.randrange(4000) * 4
    try:
        subprocess.run([str(SCRIPTS / "private-slurm-start.sh"), str(cluster), str(port)], check=True,
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, SLURM_TEST_ACCT="jobcomp"))
        yield dict(os.environ, SLURM_CONF=str(cluster / "slurm.conf"), HPCPULL_TEST_CLUSTER=str(cluster))
    finally:
        subprocess.run([str(SCRIPTS / "private-slurm-stop.sh"), str(cluster)], timeout=120)


def stop_slurmctld(cluster: Path) -> None:
    pid = int((cluster / "run" / "slurmctld.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return
        if "\nState:\tZ" in status:
            return
        time.sleep(0.1)
    raise AssertionError("slurmctld did not stop")


def start_slurmctld(env: dict[str, str]) -> None:
    subprocess.run(["slurmctld"], env=env, check=True, timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if subprocess.run(["squeue", "-h"], env=env, capture_output=True, timeout=10).returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError("slurmctld did not come back")


def test_slurmctld_down_then_back(own_slurm: dict[str, str], tmp_path: Path) -> None:
    gateway: Any = make_gateway(tmp_path, "slurm", own_slurm, route="Slurm", HPCPULL_PARTITION="debug",
                                HPCPULL_COMMAND_TIMEOUT="3", HPCPULL_STATUS_MAX_AGE="2")
    cluster = Path(own_slurm["HPCPULL_TEST_CLUSTER"])
    source = gateway.submit(make_job(tmp_path / "a", "sleep 30\necho survived > out.txt\n",
                                     TransferOutput="out.txt"))
    gateway.route(source, "Slurm")
    gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 2, timeout=60)

    stop_slurmctld(cluster)
    for _ in range(3):  # UPDATE polls and the poller while the controller is gone
        gateway.poll()
        poll = gateway.schedd_cron()
        assert "LrmsReachable = false" in poll.stdout
        time.sleep(1)
    assert gateway.jobs[source]["JobStatus"] == 2, "no news is not bad news: neither held nor completed"
    assert all(c.exit_code == 0 for c in gateway.calls if c.hook == "update")

    late = gateway.submit(make_job(tmp_path / "b", "true\n"))
    gateway.route(late, "Slurm")
    refusal = gateway.calls[-1]
    assert refusal.hook == "translate" and refusal.exit_code == 1
    assert "routing to Slurm paused: slurm did not answer" in refusal.stderr
    assert gateway.jobs[late]["JobStatus"] == 1 and gateway.jobs[late]["Managed"] == "Schedd"

    start_slurmctld(own_slurm)  # the job kept running on slurmd meanwhile
    gateway.run_until(finished(gateway, source), timeout=90)
    assert gateway.history[source]["ExitCode"] == 0
    assert (tmp_path / "a" / "out.txt").read_text() == "survived\n"
    gateway.schedd_cron()
    gateway.route(late, "Slurm")  # routing resumes
    gateway.run_until(finished(gateway, late), timeout=90)
    assert gateway.history[late]["ExitCode"] == 0
