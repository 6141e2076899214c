"""Fixtures for a real HTCondor: personal pools with hpcpull installed as an admin would.

``hpcpull_bin_dir``: hpcpull ``pip install``-ed into a venv made with the system Python,
world-readable (hooks run as the job owners).  ``make_gateway_pool(...)``: a personal pool
(collector, negotiator, schedd, the stock job router, a startd that refuses jobs meant for a
route) with hpcpull's condor_config.d files, the given routes and site knobs, stopped at
the end of the session.  ``gateway_pool``: the session's shared pool in front of the private
Slurm, with the routes the real-router tests use.

Where HTCondor or root is missing these fixtures skip with one line saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from hpcpull.testing.personal_pool import (
    PersonalPool,
    find_release,
    install_hpcpull,
    unavailable_reason,
    wait_until,
    world_readable_dir,
)

POLL = 5  # JOB_ROUTER_POLLING_PERIOD of the test pools


@dataclass
class GatewayPool:
    """A personal pool whose job router runs hpcpull's hooks, with what tests need around it."""

    pool: PersonalPool
    lrms_env: dict[str, str]
    scratch: Path
    status_dir: Path
    log_dir: Path
    counter: int = field(default=0)

    def job_dir(self, name: str) -> Path:
        """A fresh directory of the test user's to submit from."""
        self.counter += 1
        return self.pool.user_dir(f"{name}-{self.counter}")

    def submit(self, directory: Path, submit_text: str) -> int:
        return self.pool.submit(directory, submit_text)

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str, step: float = 1.0):
        return wait_until(predicate, timeout, what, step, explain=self.diagnostics)

    def finished(self, cluster: int, timeout: float = 180) -> dict:
        """Wait until the source job of ``cluster`` has left the queue; its history record."""
        def done():
            left = self.pool.q(f"ClusterId == {cluster}", ["JobStatus"])
            if left:
                return None
            found = self.pool.history(f"ClusterId == {cluster}")
            return found[0] if found else None
        return self.wait_for(done, timeout, f"job {cluster}.0 to leave the queue")

    def source(self, cluster: int) -> Optional[dict]:
        found = self.pool.q(f"ClusterId == {cluster}")
        return found[0] if found else None

    def copy_of(self, cluster: int) -> Optional[dict]:
        found = self.pool.q(f'RoutedFromJobId == "{cluster}.0"')
        return found[0] if found else None

    def batch_jobs(self, cluster: int) -> list[str]:
        """Every batch job ever submitted for source job <cluster>.0, by hpcpull's batch job name."""
        pattern = re.compile(rf"^hpcpull-[A-Za-z0-9_]+-{cluster}\.0-")
        names = set()
        queue = subprocess.run(["squeue", "-h", "-a", "-t", "all", "-o", "%i %j"], env=self.lrms_env,
                               capture_output=True, text=True, timeout=30)
        done = subprocess.run(["sacct", "-c", "-n", "-X", "-P", "-o", "JobID,JobName"], env=self.lrms_env,
                              capture_output=True, text=True, timeout=30)
        for line in queue.stdout.splitlines():
            job_id, _, name = line.partition(" ")
            if pattern.match(name):
                names.add(job_id)
        for line in done.stdout.splitlines():
            job_id, _, name = line.partition("|")
            if pattern.match(name):
                names.add(job_id)
        return sorted(names)

    def batch_state(self, batch_id: str) -> str:
        out = subprocess.run(["squeue", "-h", "-t", "all", "-j", batch_id, "-o", "%T"], env=self.lrms_env,
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def user_log(self, directory: Path, name: str = "job.log") -> str:
        try:
            return (directory / name).read_text()
        except FileNotFoundError:
            return ""

    def hpcpull_log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("HpcPullLog*")))

    def diagnostics(self) -> str:
        """What a failing test should show: queue, router log tail, hpcpull's log tail."""
        queue = self.pool.tool(["condor_q", "-allusers", "-nobatch"], check=False).stdout
        router = "\n".join(self.pool.router_log_text().splitlines()[-40:])
        return f"--- condor_q\n{queue}\n--- JobRouterLog (tail)\n{router}\n--- HpcPullLog (tail)\n" + \
            "\n".join(self.hpcpull_log().splitlines()[-20:])


SLURM_ROUTES = """\
# The routes of the real-router tests; "Slurm" has the README's form.
JOB_ROUTER_ROUTE_NAMES = Limited Requeue Slurm Other
# A job Limited gave back (HPCPULL_MAX_IDLE_TIME) is not routed to it again.
JOB_ROUTER_ROUTE_Limited @=jrt
  REQUIREMENTS WantHpc =?= true && HpcPullTestRoute =?= "Limited" && HpcPullUndoneRoutes =?= undefined
  UNIVERSE VANILLA
  SET Requirements false
@jrt
# A batch job cancelled outside HTCondor is submitted again (HPCPULL_REQUEUE_ON).
JOB_ROUTER_ROUTE_Requeue @=jrt
  REQUIREMENTS WantHpc =?= true && HpcPullTestRoute =?= "Requeue"
  UNIVERSE VANILLA
  SET Requirements false
@jrt
JOB_ROUTER_ROUTE_Slurm @=jrt
  REQUIREMENTS WantHpc =?= true && HpcPullTestRoute =?= undefined
  UNIVERSE VANILLA
  SET Requirements false
@jrt
# A route of another tool: hpcpull hands its jobs through untouched.
JOB_ROUTER_ROUTE_Other @=jrt
  REQUIREMENTS WantOther =?= true
  UNIVERSE VANILLA
@jrt
HPCPULL_ROUTE_NAMES = Limited Requeue Slurm
HPCPULL_ROUTE_Limited_MAX_CPUS = 1
HPCPULL_ROUTE_Limited_MAX_WALLTIME = 0:01:00
HPCPULL_ROUTE_Limited_MAX_IDLE_TIME = 20
HPCPULL_ROUTE_Requeue_REQUEUE_ON = CANCELLED
"""


def site_config(scratch: Path, status_dir: Path, log_dir: Path, lrms_env: dict[str, str], **knobs: str) -> str:
    """90-hpcpull-local.conf of a test gateway: what an admin sets, with short test intervals."""
    words = " ".join(f"{name}={lrms_env[name]}" for name in
                     ("SLURM_CONF", "SGE_ROOT", "SGE_CELL", "HPCPULL_FAKE_LSF_DIR") if name in lrms_env)
    if "PATH" in lrms_env and lrms_env["PATH"] != os.environ.get("PATH"):
        words += f" PATH={lrms_env['PATH']}"
    lines = {
        "HPCPULL_SCRATCH_ROOT": str(scratch),
        "HPCPULL_STATUS_CACHE_DIR": str(status_dir),
        "HPCPULL_LOG": str(log_dir / "HpcPullLog"),
        "HPCPULL_LRMS_ENVIRONMENT": words,
        "HPCPULL_PARTITION": "debug",
        "HPCPULL_STATUS_MAX_AGE": "10",
        "HPCPULL_EXIT_FILE_GRACE": "5",
        "HPCPULL_COMMAND_TIMEOUT": "20",
        "SCHEDD_CRON_HPCPULL_PERIOD": "5s",
        **knobs,
    }
    return "".join(f"{knob} = {value}\n" for knob, value in lines.items())


@pytest.fixture(scope="session")
def condor_release() -> Path:
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no real HTCondor here: {reason}")
    return find_release()


@pytest.fixture(scope="session")
def pools_root(condor_release: Path) -> Iterator[Path]:
    """Where the session's pools live; removed at the end unless HPCPULL_KEEP_POOLS is set."""
    root = world_readable_dir("hpcpull-pools-")
    yield root
    if not os.environ.get("HPCPULL_KEEP_POOLS"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def hpcpull_bin_dir(pools_root: Path) -> Path:
    """hpcpull installed the README's way: a venv of the system Python, world-readable."""
    return install_hpcpull(pools_root / "venv")


@pytest.fixture(scope="session")
def make_gateway_pool(condor_release: Path, pools_root: Path,
                      hpcpull_bin_dir: Path) -> Iterator[Callable[..., GatewayPool]]:
    started: list[PersonalPool] = []

    def make(name: str, routes: str, lrms_env: dict[str, str], with_startd: bool = True,
             extra_config: str = "", **knobs: str) -> GatewayPool:
        base = pools_root / name
        base.mkdir(mode=0o755)
        scratch, status_dir, log_dir = base / "scratch", base / "status", base / "hpcpull-log"
        for path in (scratch, status_dir, log_dir):
            path.mkdir()
            path.chmod(0o1777)  # as the README's admin guide makes them
        pool = PersonalPool(
            base=base, release=condor_release, bin_dir=hpcpull_bin_dir, name=name,
            routes_config=routes, local_config=site_config(scratch, status_dir, log_dir, lrms_env, **knobs),
            with_startd=with_startd, polling_period=POLL, extra_config=extra_config,
            # The session's pools share one Slurm: their jobs' batch names must differ.
            first_cluster=1000 * (len(started) + 1),
        )
        started.append(pool)
        pool.start()
        return GatewayPool(pool, lrms_env, scratch, status_dir, log_dir)

    yield make
    for pool in started:
        pool.stop()


@pytest.fixture(scope="session")
def gateway_pool(make_gateway_pool: Callable[..., GatewayPool], slurm_env: dict[str, str]) -> GatewayPool:
    """The session's real gateway in front of the private Slurm (routes: SLURM_ROUTES)."""
    return make_gateway_pool("gateway", SLURM_ROUTES, slurm_env)
