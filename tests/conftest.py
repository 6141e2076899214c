"""Shared fixtures: a private throwaway Slurm cluster, started once per test session."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

# Fixtures that start the other real batch systems (and the labelled fake LSF).
pytest_plugins = ["tests.plugins.torque", "tests.plugins.sge", "tests.plugins.lsf", "tests.plugins.condor"]

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment (with SLURM_CONF) for a private single-node Slurm started for this session.

    The cluster runs under a temp dir, on loopback, as the current user; every Slurm
    client command must get this environment.
    """
    if not shutil.which("slurmctld"):
        pytest.skip("Slurm is not installed (run scripts/setup-machine.sh)")
    # Job owners of a real HTCondor pool run Slurm's commands too: as root, the cluster
    # lives in a directory every user can traverse (pytest's own tmp dirs are root's alone).
    if os.geteuid() == 0:
        from hpcpull.testing.personal_pool import world_readable_dir

        cluster_dir = world_readable_dir("hpcpull-slurm-") / "slurm"
    else:
        cluster_dir = tmp_path_factory.mktemp("slurm")
    port = 20000 + random.randrange(4000) * 4
    env = dict(os.environ, SLURM_TEST_ACCT="jobcomp")
    try:
        subprocess.run(
            [str(SCRIPTS / "private-slurm-start.sh"), str(cluster_dir), str(port)],
            env=env, check=True, capture_output=True, text=True, timeout=120,
        )
        yield dict(os.environ, SLURM_CONF=str(cluster_dir / "slurm.conf"))
    finally:
        subprocess.run([str(SCRIPTS / "private-slurm-stop.sh"), str(cluster_dir)], timeout=120)
        if os.geteuid() == 0:
            shutil.rmtree(cluster_dir.parent, ignore_errors=True)


ROUTE_BODY = "REQUIREMENTS WantHpc =?= true\nUNIVERSE VANILLA\nSET Requirements false"


# What batch commands need from a batch system fixture's environment (the hooks give
# batch commands a minimal environment plus HPCPULL_LRMS_ENVIRONMENT).
LRMS_ENVIRONMENT_NAMES = ("PATH", "SLURM_CONF", "SGE_ROOT", "SGE_CELL", "HPCPULL_FAKE_LSF_DIR")


def make_gateway(tmp_path: Path, lrms: str, lrms_env: dict[str, str], route: str = "Slurm", **knobs: str):
    """A simulated gateway (router + schedd around the real hooks) in front of a batch system.

    ``route`` is served by hpcpull on ``lrms``; a second route "Other" is not.  Batch
    commands run with the parts of ``lrms_env`` that name the cluster (PATH, SLURM_CONF, ...).
    """
    from hpcpull.testing.router_sim import RouterSim, hook_environment, write_gateway_config

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o1777)  # as the admin makes it: hooks run as the job owners
    lrms_words = " ".join(
        f"{name}={lrms_env[name]}" for name in LRMS_ENVIRONMENT_NAMES if name in lrms_env
    )
    config = write_gateway_config(
        tmp_path / "gateway",
        routes={route: ROUTE_BODY, "Other": ROUTE_BODY},
        knobs={
            "HPCPULL_ROUTE_NAMES": route,
            "HPCPULL_LRMS": lrms,
            "HPCPULL_SCRATCH_ROOT": str(scratch),
            "HPCPULL_STATUS_CACHE_DIR": str(tmp_path / "gateway" / "status"),
            "HPCPULL_STATUS_MAX_AGE": "1",
            "HPCPULL_EXIT_FILE_GRACE": "2",
            "HPCPULL_COMMAND_TIMEOUT": "15",
            "HPCPULL_SCHEDD_DOUBLE": str(tmp_path / "gateway" / "schedd-double.jsonl"),
            "HPCPULL_LRMS_ENVIRONMENT": lrms_words,
            **knobs,
        },
    )
    router = RouterSim(env=hook_environment(config), workdir=tmp_path / "gateway")
    router.config_path = config  # type: ignore[attr-defined]
    router.scratch = scratch  # type: ignore[attr-defined]
    router.lrms_env = lrms_env  # type: ignore[attr-defined]
    router.slurm_env = lrms_env  # type: ignore[attr-defined]
    _GATEWAYS_OF_THIS_TEST.append(router)
    return router


_GATEWAYS_OF_THIS_TEST: list = []


@pytest.fixture(autouse=True)
def _cancel_batch_jobs_left_by_simulated_gateways() -> Iterator[None]:
    """Tests share one Slurm: a batch job a test leaves running (a parked job, a job the
    test never ends) would show in the next test's queue counts.  Cancel each simulated
    gateway's own batch jobs, recognised by their names' cluster ids."""
    yield
    while _GATEWAYS_OF_THIS_TEST:
        router = _GATEWAYS_OF_THIS_TEST.pop()
        own = range(router.first_cluster, router.next_cluster)
        if "SLURM_CONF" not in router.lrms_env or not own:
            continue  # no Slurm, or no job submitted (its SLURM_CONF may name no live cluster)
        listing = subprocess.run(["squeue", "-h", "-o", "%i %j"], env=router.lrms_env,
                                 capture_output=True, text=True, timeout=60).stdout
        ids = [job_id for job_id, name in (line.split(" ", 1) for line in listing.splitlines() if " " in line)
               if (cluster := _cluster_of(name)) is not None and cluster in own]
        if ids:
            subprocess.run(["scancel", *ids], env=router.lrms_env, capture_output=True, timeout=60)


def _cluster_of(batch_job_name: str):
    match = re.fullmatch(r"hpcpull-(?:\w+-)?([0-9]+)\.[0-9]+-[0-9a-f]+", batch_job_name)
    return int(match.group(1)) if match else None


@pytest.fixture
def gateway(tmp_path: Path, slurm_env: dict[str, str]):
    """A simulated gateway in front of the private Slurm (route "Slurm", partition debug)."""
    return make_gateway(tmp_path, "slurm", slurm_env, HPCPULL_ROUTE_Slurm_PARTITION="debug")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/<lrms>/*.expected.sh from the current templates "
        "(or set HPCPULL_UPDATE_GOLDEN=1)",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden", default=False)) or (
        os.environ.get("HPCPULL_UPDATE_GOLDEN", "") not in ("", "0")
    )
