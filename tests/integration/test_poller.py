"""The schedd cron poller against the real private Slurm: one status query per period for all jobs."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import classad2
import pytest

from hpcpull.state.poller import read_site_status
from hpcpull.state.status_cache import Snapshot
from tests.conftest import make_gateway
from tests.integration.test_pipeline import finished, make_job

COUNTED = ("squeue", "scontrol", "sacct", "sbatch", "scancel")


def counting_path(directory: Path, log: Path) -> str:
    """A PATH with a shim before each Slurm client that records the call, then runs the real one."""
    directory.mkdir()
    for name in COUNTED:
        real = next(Path(d) / name for d in os.environ["PATH"].split(os.pathsep) if (Path(d) / name).exists())
        shim = directory / name
        shim.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexec {real} "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


def cron_ad(text: str) -> classad2.ClassAd:
    lines = text.splitlines()
    assert lines[-1] == "-", "the cron output ends its ad with a dash line"
    return classad2.parseOne("\n".join(lines[:-1]) + "\n", classad2.ParserType.Old)


@pytest.fixture
def counted_gateway(tmp_path: Path, slurm_env: dict[str, str]) -> Any:
    log = tmp_path / "slurm-calls.log"
    env = dict(slurm_env, PATH=counting_path(tmp_path / "shims", log))
    router = make_gateway(tmp_path, "slurm", env, route="Slurm", HPCPULL_PARTITION="debug",
                          HPCPULL_STATUS_MAX_AGE="30")
    router.calls_log = log  # type: ignore[attr-defined]
    return router


def calls(router: Any, program: str) -> list[str]:
    if not router.calls_log.exists():
        return []
    return [line for line in router.calls_log.read_text().splitlines() if line.split()[0] == program]


def test_hooks_use_the_pollers_snapshot_one_query_for_all_jobs(counted_gateway: Any, tmp_path: Path) -> None:
    gateway = counted_gateway
    sources = [gateway.submit(make_job(tmp_path / f"submit{i}", "sleep 20\n")) for i in range(4)]
    for source in sources:
        gateway.route(source, "Slurm")
    gateway.poll()  # first UPDATEs submit the batch jobs
    assert len(calls(gateway, "sbatch")) == 4
    # From here on the poller is the only one asking Slurm about the queue.
    before = len(calls(gateway, "squeue"))
    poll = gateway.schedd_cron()
    assert poll.exit_code == 0, poll.stderr
    for _ in range(3):
        gateway.poll()
    assert len(calls(gateway, "squeue")) == before + 1, "4 jobs x 3 UPDATE rounds, 1 squeue"
    site = cron_ad(poll.stdout)
    assert site["LrmsReachable"] is True and site["StatusShared"] is True
    assert site["JobsIdle_Slurm"] + site["JobsRunning_Slurm"] == 4
    assert site["LastSuccessfulPollAge"] <= 5 and site["Lrms"] == "slurm"
    stored = read_site_status(Path(gateway.config_path).parent / "status")
    assert stored is not None and stored.jobs["Slurm"] == {"idle": site["JobsIdle_Slurm"],
                                                           "running": site["JobsRunning_Slurm"]}
    # the jobs run to the end on the poller's snapshots
    for source in sources:
        gateway.condor_rm(source)
    gateway.run_until(lambda r: all(finished(r, s)(r) for s in sources), timeout=60)


def test_unreachable_batch_system_is_reported_and_stored_as_no_news(
    tmp_path: Path, slurm_env: dict[str, str]
) -> None:
    bogus = tmp_path / "no-cluster" / "slurm.conf"
    bogus.parent.mkdir()
    bogus.write_text("ClusterName=gone\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1\n")
    gateway = make_gateway(tmp_path, "slurm", dict(slurm_env, SLURM_CONF=str(bogus)), HPCPULL_COMMAND_TIMEOUT="3")
    poll = gateway.schedd_cron()
    site = cron_ad(poll.stdout)
    assert site["LrmsReachable"] is False and "timed out" in site["LastError"]
    assert "LastSuccessfulPoll" not in site  # never succeeded
    snapshot = Snapshot.from_json((Path(gateway.config_path).parent / "status" / "slurm-status.json").read_text())
    assert not snapshot.ok and snapshot.error  # hooks read this as "no news", never as "finished"


def test_a_wake_that_cannot_reach_the_schedd_is_reported_and_the_snapshot_stands(
    tmp_path: Path, slurm_env: dict[str, str]
) -> None:
    """With an UPDATE interval the poller also wakes jobs with news (state/wake.py); where it
    cannot (no schedd here), it says so, and the batch system still counts as reachable."""
    gateway = make_gateway(tmp_path, "slurm", slurm_env, HPCPULL_UPDATE_INTERVAL="300")
    site = cron_ad(gateway.schedd_cron().stdout)
    assert site["LrmsReachable"] is True and "LastSuccessfulPoll" in site
    assert "waking the UPDATE of jobs with news failed" in site["LastError"], site["LastError"]
    assert "QUEUE_SUPER_USERS" in site["LastError"]
    snapshot = Snapshot.from_json((Path(gateway.config_path).parent / "status" / "slurm-status.json").read_text())
    assert snapshot.ok
