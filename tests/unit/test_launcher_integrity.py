"""The site's programs run in the batch job's own environment; the job's environment reaches the payload.

A job's ``Environment`` is hostile.  Its PATH must not choose the programs of the route's
launcher chain (HPCPULL_LAUNCHER: apptainer, mpiexec, ...) nor the Python that runs
hpcpull's launcher, and none of its variables (LD_PRELOAD, APPTAINER_*, OMPI_MCA_*, ...)
may reach the launcher process or the chain's programs.  Each test renders a batch script
and runs it with bash: the site's programs are in a directory on the script's PATH, and
the job ships programs of the same names in a directory first on its own PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import hpcpull.node.launcher
from hpcpull.config import RouteSettings
from hpcpull.script.launchers import launch_chain, parse_launcher
from hpcpull.script.payload import join_v2
from hpcpull.script.render import render_batch_script
from tests.unit.test_render import simple_ad

RouteFactory = Callable[..., RouteSettings]
IMAGE = "/images/default.sif"

# A stand-in for the site's apptainer or mpiexec: notes that it ran and the environment it
# got (in <events>.apptainer.env, <events>.mpiexec.env), then starts the rest of its command
# line with that environment, as the real one would (after "exec [options] IMAGE", or "-n N").
SITE_APPTAINER = """#!/bin/sh
echo "site apptainer" >> {events}
env > {events}.apptainer.env
while [ "$1" != {image} ]; do shift; done
shift
exec "$@"
"""
SITE_MPIEXEC = """#!/bin/sh
echo "site mpiexec" >> {events}
env > {events}.mpiexec.env
shift 2
exec "$@"
"""
# What a job would ship to get around them: run the payload directly, outside the container.
JOB_PROGRAM = """#!/bin/sh
echo "job {name}" >> {events}
exit 0
"""
# The payload: its argv, some of its environment, and its parent's (the launcher's) environment.
PAYLOAD = """#!{python}
import json, os, sys
with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
    parent_cmdline = f.read().split(b"\\0")
with open("/proc/%d/environ" % os.getppid(), "rb") as f:
    parent_environ = [entry.split(b"=", 1)[0].decode() for entry in f.read().split(b"\\0") if entry]
with open("payload-result.json", "w") as f:
    json.dump({{"argv": sys.argv[1:],
               "env": {{n: os.environ.get(n) for n in ("PATH", "GREETING", "LD_PRELOAD", "FROM_SITE",
                                                        "_CONDOR_SCRATCH_DIR", "JOB_SECRET_MARKER",
                                                        "APPTAINER_BIND", "OMPI_MCA_plm_rsh_agent",
                                                        "_CONDOR_JOB_IWD", "_CONDOR_JOB_AD")}},
               "parent_is_launcher": b".hpcpull/launcher.py" in parent_cmdline,
               "parent_environ": parent_environ}}, f)
"""
# An LD_PRELOAD library that notes the command line of every process that loads it.
PRELOAD_SOURCE = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((constructor)) static void note_process(void)
{
    char cmdline[4096];
    int fd = open("/proc/self/cmdline", O_RDONLY);
    ssize_t n = fd < 0 ? 0 : read(fd, cmdline, sizeof cmdline - 1);
    if (fd >= 0)
        close(fd);
    for (ssize_t i = 0; i < n; i++)
        if (cmdline[i] == '\0')
            cmdline[i] = ' ';
    cmdline[n > 0 ? n : 0] = '\0';
    FILE *f = fopen(MARKER, "a");
    if (f) {
        fprintf(f, "%s\n", cmdline);
        fclose(f);
    }
}
"""


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


class Site:
    """A job directory with the launcher and the payload, the site's programs and the job's."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.events = tmp_path / "events.log"
        self.job_dir = tmp_path / "scratch" / "alice" / "7" / "0"
        (self.job_dir / ".hpcpull").mkdir(parents=True)
        shutil.copy(hpcpull.node.launcher.__file__, self.job_dir / ".hpcpull" / "launcher.py")
        executable(self.job_dir / "run.py", PAYLOAD.format(python=sys.executable))
        self.site_bin = tmp_path / "site" / "bin"
        executable(self.site_bin / "apptainer", SITE_APPTAINER.format(events=self.events, image=IMAGE))
        executable(self.site_bin / "mpiexec", SITE_MPIEXEC.format(events=self.events))
        self.job_bin = tmp_path / "home" / "alice" / "bin"
        for name in ("apptainer", "mpiexec", "python3"):
            executable(self.job_bin / name, JOB_PROGRAM.format(name=name, events=self.events))
        self.job_path = f"{self.job_bin}:/usr/bin:/bin"

    def route(self, route_factory: RouteFactory, **overrides: Any) -> RouteSettings:
        settings: dict[str, Any] = {"python": sys.executable, "environment_setup": ["export FROM_SITE=yes"]}
        settings.update(overrides)
        return route_factory(**settings)

    def run(self, route: RouteSettings, environment: dict[str, str], *, site_path: bool = True,
            **attrs: Any) -> subprocess.CompletedProcess:
        """Run the job's batch script; the site's programs are on its PATH unless ``site_path`` is false."""
        job = simple_ad(Cmd="/home/alice/run.py", Arguments="a 'b c'",
                        Environment=join_v2([f"{k}={v}" for k, v in environment.items()]), **attrs)
        script = self.job_dir / ".hpcpull" / "job.sh"
        script.write_text(render_batch_script(job, route, self.job_dir))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LD_"))}
        env["PATH"] = f"{self.site_bin}:/usr/bin:/bin" if site_path else "/usr/bin:/bin"
        return subprocess.run(["bash", str(script)], cwd=self.job_dir, env=env, capture_output=True,
                              text=True, timeout=60)

    def result(self) -> dict[str, Any]:
        return json.loads((self.job_dir / "payload-result.json").read_text())

    def ran(self) -> list[str]:
        return self.events.read_text().splitlines() if self.events.exists() else []

    def environment_of(self, launcher: str) -> dict[str, str]:
        """The environment the site's ``launcher`` ran with (one NAME=VALUE per line: no newlines in values)."""
        lines = Path(f"{self.events}.{launcher}.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_the_jobs_path_does_not_choose_the_container_launcher(site: Site, route_factory: RouteFactory) -> None:
    route = site.route(route_factory, launcher=parse_launcher("K", "apptainer --bind /cvmfs"),
                       container_image=IMAGE)
    proc = site.run(route, {"PATH": site.job_path, "GREETING": "hello"})
    assert proc.returncode == 0, proc.stderr
    assert site.ran() == ["site apptainer"]
    result = site.result()
    assert result["argv"] == ["a", "b c"]
    assert result["env"]["PATH"] == site.job_path  # the payload still gets the job's environment
    assert result["env"]["GREETING"] == "hello"


def test_the_jobs_path_does_not_choose_any_launcher_of_a_chain(site: Site, route_factory: RouteFactory) -> None:
    # The site's mpiexec starts apptainer with the environment it got, the job's: apptainer
    # must already be the site's own when mpiexec gets it.
    route = site.route(route_factory, launcher=parse_launcher("K", "mpiexec apptainer --bind /cvmfs"),
                       container_image=IMAGE)
    proc = site.run(route, {"PATH": site.job_path})
    assert proc.returncode == 0, proc.stderr
    assert site.ran() == ["site mpiexec", "site apptainer"]
    assert site.result()["argv"] == ["a", "b c"]


def test_the_site_setup_can_provide_the_launchers(site: Site, route_factory: RouteFactory) -> None:
    route = site.route(route_factory, environment_setup=[f"export PATH={site.site_bin}:$PATH"],  # module load
                       launcher=parse_launcher("K", "mpiexec apptainer"), container_image=IMAGE)
    proc = site.run(route, {"PATH": site.job_path}, site_path=False)
    assert proc.returncode == 0, proc.stderr
    assert site.ran() == ["site mpiexec", "site apptainer"]
    assert site.result()["env"]["PATH"] == site.job_path


def test_a_launcher_missing_on_the_node_stops_the_job(site: Site, route_factory: RouteFactory) -> None:
    route = site.route(route_factory, launcher=parse_launcher("K", "apptainer"), container_image=IMAGE)
    proc = site.run(route, {"PATH": site.job_path}, site_path=False)
    assert proc.returncode == 127
    assert "apptainer is not available" in proc.stderr
    assert site.ran() == []
    assert not (site.job_dir / ".hpcpull" / "started").exists()


def test_the_jobs_path_does_not_choose_the_launchers_python(site: Site, route_factory: RouteFactory) -> None:
    route = site.route(route_factory, python="python3")
    proc = site.run(route, {"PATH": site.job_path})
    assert proc.returncode == 0, proc.stderr
    assert site.ran() == []
    assert site.result()["parent_is_launcher"]


def test_the_launcher_process_gets_none_of_the_jobs_environment(site: Site, route_factory: RouteFactory) -> None:
    environment = {"PATH": site.job_path, "GREETING": "hello", "LD_PRELOAD": "", "_CONDOR_SCRATCH_DIR": "/x"}
    proc = site.run(site.route(route_factory), environment)
    assert proc.returncode == 0, proc.stderr
    result = site.result()
    assert result["parent_is_launcher"]
    assert "GREETING" not in result["parent_environ"]
    assert "LD_PRELOAD" not in result["parent_environ"]
    # The payload gets the job's variables, the site setup's, and HTCondor's, which win.
    assert {k: v for k, v in result["env"].items() if v is not None} == {
        "PATH": site.job_path, "GREETING": "hello", "LD_PRELOAD": "", "FROM_SITE": "yes",
        "_CONDOR_SCRATCH_DIR": str(site.job_dir), "_CONDOR_JOB_IWD": str(site.job_dir),
        "_CONDOR_JOB_AD": f"{site.job_dir}/.hpcpull/job.ad",
    }


# What a job would set to change how the site's launchers behave: settings apptainer and
# Open MPI read from their environment, a library for the dynamic loader, and a secret.
HOSTILE_ENVIRONMENT = {
    "APPTAINER_BIND": "/home/alice:/opt/site-software",
    "OMPI_MCA_plm_rsh_agent": "/home/alice/bin/agent",
    "LD_PRELOAD": "",
    "JOB_SECRET_MARKER": "s3cret",
}


@pytest.mark.parametrize("launcher, programs", [
    ("apptainer --bind /cvmfs", ["apptainer"]),
    ("mpiexec", ["mpiexec"]),
    ("mpiexec apptainer --bind /cvmfs", ["mpiexec", "apptainer"]),
])
def test_the_launcher_chain_runs_in_the_batch_jobs_environment_not_the_jobs(
    site: Site, route_factory: RouteFactory, launcher: str, programs: list[str]
) -> None:
    route = site.route(route_factory, launcher=parse_launcher("K", launcher), container_image=IMAGE)
    proc = site.run(route, {"PATH": site.job_path, **HOSTILE_ENVIRONMENT})
    assert proc.returncode == 0, proc.stderr
    assert site.ran() == [f"site {name}" for name in programs]
    for name in programs:
        seen = site.environment_of(name)
        assert not set(HOSTILE_ENVIRONMENT) & set(seen), name
        assert seen["PATH"].startswith(f"{site.site_bin}:"), name
        assert seen["FROM_SITE"] == "yes", name  # the site setup's variables are the chain's
        assert not any(k.startswith("_CONDOR_") for k in seen), name
    result = site.result()
    assert result["argv"] == ["a", "b c"]
    assert {k: result["env"][k] for k in HOSTILE_ENVIRONMENT} == HOSTILE_ENVIRONMENT
    assert result["env"]["PATH"] == site.job_path
    assert result["env"]["FROM_SITE"] == "yes"
    assert result["env"]["_CONDOR_SCRATCH_DIR"] == str(site.job_dir)
    assert result["env"]["_CONDOR_JOB_AD"] == f"{site.job_dir}/.hpcpull/job.ad"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the LD_PRELOAD library")
def test_ld_preload_of_the_job_is_never_loaded_into_the_launcher(site: Site, route_factory: RouteFactory) -> None:
    marker = site.root / "preloaded.log"
    library = site.root / "home" / "alice" / "evil.so"
    source = site.root / "evil.c"
    source.write_text(PRELOAD_SOURCE)
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library), str(source)],
                   check=True, timeout=120)
    proc = site.run(site.route(route_factory), {"LD_PRELOAD": str(library)})
    assert proc.returncode == 0, proc.stderr
    loaded_by = marker.read_text().splitlines()
    assert any("run.py" in cmdline for cmdline in loaded_by), loaded_by  # the payload gets it
    assert not any("launcher.py" in cmdline for cmdline in loaded_by), loaded_by
    assert site.result()["env"]["LD_PRELOAD"] == str(library)


def test_launchers_inside_the_container_are_left_to_the_image(route_factory: RouteFactory) -> None:
    steps = parse_launcher("K", "srun apptainer --nv mpiexec")
    assert [(s.program, s.on_node) for s in launch_chain(steps, "slurm", 4, IMAGE)] == [
        ("srun", True), ("apptainer", True), ("mpiexec", False),
    ]
    route = route_factory(launcher=steps, container_image=IMAGE)
    script = render_batch_script(simple_ad(), route, Path("/scratch/alice/1/0"))
    assert "hpcpull_srun=$(type -P srun)" in script and "hpcpull_apptainer=$(type -P apptainer)" in script
    assert "hpcpull_mpiexec" not in script
    last = script.rstrip("\n").rsplit("\n", 1)[1]
    assert last == f'    -- "$hpcpull_srun" "$hpcpull_apptainer" exec --nv {IMAGE} mpiexec -n 1 ./run.sh'


def test_the_launcher_finds_a_bare_program_on_its_own_path(site: Site) -> None:
    """launcher.py alone: a PATH given with --env (the job's) is the payload's, not the launcher's."""
    argv = [sys.executable, "-I", ".hpcpull/launcher.py", "--env", f"PATH={site.job_path}",
            "--stdin", "/dev/null", "--stdout", "out", "--stderr", "err", "--started", "started",
            "--status", "status", "--", "apptainer", "exec", IMAGE, "./run.py"]
    env = dict(os.environ, PATH=f"{site.site_bin}:/usr/bin:/bin")
    proc = subprocess.run(argv, cwd=site.job_dir, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (site.job_dir / "err").read_text()
    assert site.ran() == ["site apptainer"]
    assert site.result()["env"]["PATH"] == site.job_path


def test_after_a_chain_the_launcher_sets_the_variables_for_the_payload_alone(site: Site) -> None:
    """launcher.py alone: with --chain, the chain's words get the launcher's environment."""
    executable(site.job_dir / "a=b.py", PAYLOAD.format(python=sys.executable))  # env would take it for a variable
    argv = [sys.executable, "-I", ".hpcpull/launcher.py", "--env", f"PATH={site.job_path}",
            "--env", "JOB_SECRET_MARKER=s3cret", "--chain", "6",
            "--stdin", "/dev/null", "--stdout", "out", "--stderr", "err", "--started", "started",
            "--status", "status", "--", "mpiexec", "-n", "2", "apptainer", "exec", IMAGE, "./a=b.py", "x=y"]
    env = dict(os.environ, PATH=f"{site.site_bin}:/usr/bin:/bin")
    env.pop("JOB_SECRET_MARKER", None)
    proc = subprocess.run(argv, cwd=site.job_dir, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (site.job_dir / "err").read_text()
    assert site.ran() == ["site mpiexec", "site apptainer"]
    assert "JOB_SECRET_MARKER" not in site.environment_of("mpiexec")
    assert "JOB_SECRET_MARKER" not in site.environment_of("apptainer")
    result = site.result()
    assert result["argv"] == ["x=y"]
    assert result["env"]["JOB_SECRET_MARKER"] == "s3cret"
    assert result["env"]["PATH"] == site.job_path


@pytest.mark.parametrize("chain, command", [("x", ["mpiexec", "./run.py"]), ("2", ["mpiexec", "-n"])])
def test_a_chain_without_a_payload_is_a_usage_error(chain: str, command: list[str]) -> None:
    argv = ["--chain", chain, "--stdin", "/dev/null", "--stdout", "o", "--merge-stderr",
            "--started", "s", "--status", "t", "--", *command]
    with pytest.raises(hpcpull.node.launcher.UsageError):
        hpcpull.node.launcher.parse_args(argv)
