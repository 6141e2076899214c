"""hpcpull.script.launchers and its use in rendering: srun, mpiexec and container launchers."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable

import classad2
import pytest

from hpcpull.config import RouteSettings
from hpcpull.errors import ConfigError, JobRejected
from hpcpull.script.launchers import LaunchStep, check_launcher, launch_command, parse_launcher
from hpcpull.script.render import render_batch_script

JOB_DIR = Path("/scratch/hpcpull/alice/1/0")
RouteFactory = Callable[..., RouteSettings]


def job(**attrs: object) -> classad2.ClassAd:
    ad = classad2.ClassAd({"ClusterId": 1, "ProcId": 0, "Owner": "alice", "JobUniverse": 5,
                           "Cmd": "/home/alice/run.sh", "Iwd": "/home/alice", "Arguments": "a 'b c'"})
    for name, value in attrs.items():
        ad[name] = value
    return ad


def exec_words(script: str) -> list[str]:
    """The command after the launcher's "--", as bash would split it."""
    last = script.rstrip("\n").rsplit("\n", 1)[1]
    assert last.lstrip().startswith("-- "), last
    return shlex.split(last.strip()[3:])


def test_parse_chain_with_options() -> None:
    assert parse_launcher("K", "mpiexec --bind-to core apptainer --nv --bind /cvmfs") == (
        LaunchStep("mpiexec", ("--bind-to", "core")), LaunchStep("apptainer", ("--nv", "--bind", "/cvmfs")),
    )
    assert parse_launcher("K", "") == () == parse_launcher("K", "plain")


@pytest.mark.parametrize(("raw", "message"), [
    ("docker run", "'docker' is not a launcher"),
    ("--nv apptainer", "'--nv' is not a launcher"),
    ("srun 'unbalanced", "No closing quotation"),
])
def test_bad_launcher_knobs_are_config_errors(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_launcher("HPCPULL_LAUNCHER", raw)


def test_srun_only_on_slurm() -> None:
    check_launcher("K", parse_launcher("K", "srun"), "slurm")
    with pytest.raises(ConfigError, match="launcher srun needs slurm, but the route's batch system is pbs"):
        check_launcher("K", parse_launcher("K", "srun"), "pbs")


def test_launch_command_words() -> None:
    steps = parse_launcher("K", "mpiexec --bind-to core apptainer --nv")
    assert launch_command(steps, "sge", 32, "/img/el9.sif") == [
        "mpiexec", "-n", "32", "--bind-to", "core", "apptainer", "exec", "--nv", "/img/el9.sif",
    ]


def test_rendered_plain_and_srun(route_factory: RouteFactory) -> None:
    plain = render_batch_script(job(), route_factory(), JOB_DIR)
    assert exec_words(plain) == ["./run.sh", "a", "b c"]
    srun = render_batch_script(job(), route_factory(launcher=parse_launcher("K", "srun --mpi=pmix")), JOB_DIR)
    # the site's srun, found on the script's PATH (see test_launcher_integrity.py)
    assert exec_words(srun) == ["$hpcpull_srun", "--mpi=pmix", "./run.sh", "a", "b c"]


def test_job_image_wins_over_the_route_image(route_factory: RouteFactory) -> None:
    route = route_factory(launcher=parse_launcher("K", "apptainer"), container_image="/images/default.sif")
    words = exec_words(render_batch_script(job(), route, JOB_DIR))
    assert words[:3] == ["$hpcpull_apptainer", "exec", "/images/default.sif"]
    hostile = "docker://evil;rm -rf ~ $(id)"
    words = exec_words(render_batch_script(job(ContainerImage=hostile), route, JOB_DIR))
    assert words[:3] == ["$hpcpull_apptainer", "exec", hostile]  # one word, however hostile


def test_container_requests_that_cannot_be_honoured_are_refused(route_factory: RouteFactory) -> None:
    with pytest.raises(JobRejected, match="runs no container launcher"):
        render_batch_script(job(ContainerImage="/img.sif"), route_factory(), JOB_DIR)
    with pytest.raises(JobRejected, match="neither the job .* nor the route"):
        render_batch_script(job(), route_factory(launcher=parse_launcher("K", "apptainer")), JOB_DIR)
    with pytest.raises(JobRejected, match="may not start with '-'"):
        render_batch_script(job(SingularityImage="--bind=/:/x"),
                            route_factory(launcher=parse_launcher("K", "singularity")), JOB_DIR)
