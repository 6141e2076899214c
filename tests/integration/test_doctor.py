"""hpcpull doctor against real batch-system clients: a healthy gateway in front of the private
Slurm passes (a probe job included); a controller that does not answer, a batch
environment that points nowhere and a probe job that cannot start are each found.

The doctor runs the hooks as nobody, as the router runs them as the job owners: the
gateways here live in directories every user can enter, and their hooks run a Python
every user can run (owners_bin_dir)."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import htcondor2
import pytest

from hpcpull.admin.doctor import command as doctor
from hpcpull.testing.personal_pool import world_readable_dir
from tests.conftest import REPO, make_gateway
from tests.unit.test_doctor import make_dir

SYSTEM_PYTHON = "/usr/bin/python3"


def install_hooks(bin_dir: Path, python: Path) -> Path:
    """The checkout's hooks/ as ``pip install`` puts them, ``#!python`` becoming ``python``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for script in sorted((REPO / "hooks").glob("hpcpull-*")):
        lines = script.read_text().splitlines(keepends=True)
        target = bin_dir / script.name
        if lines[0].startswith("#!python"):
            target.write_text(f"#!{python}\n" + "".join(lines[1:]))
        else:  # the /bin/sh front ends: pip copies them as they are
            target.write_text("".join(lines))
        target.chmod(0o755)
    bin_dir.chmod(0o755)
    return bin_dir


@functools.cache
def owners_venv() -> Path:
    """A venv of the system python3 with hpcpull's dependencies, which every user can run
    (the tests' own Python may live under /root, as pyenv's does), removed when the tests
    end.  Hooks using it import the checkout's hpcpull (PYTHONPATH)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"no {SYSTEM_PYTHON} to make a venv every user can run")
    root = world_readable_dir("hpcpull-doctor-venv-")
    atexit.register(shutil.rmtree, root, True)
    venv = root / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                          "htcondor>=24.0", "jinja2>=3.0"], capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        raise RuntimeError(f"pip install of hpcpull's dependencies failed: {pip.stderr.strip()[-2000:]}")
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(root)], check=True, timeout=120)
    return venv


def owners_bin_dir(base: Path) -> Path:
    """``base``/bin: hpcpull's executables, installed where every user can run them."""
    return install_hooks(base / "bin", owners_venv() / "bin" / "python3")


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A fresh directory every user can enter (pytest's tmp_path is root's alone)."""
    path = world_readable_dir("hpcpull-doctor-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def use_config() -> Iterator[Callable[[Path], None]]:
    """Point CONDOR_CONFIG (and the hooks' PYTHONPATH) at a gateway; restored afterwards."""
    saved = {name: os.environ.get(name) for name in ("CONDOR_CONFIG", "PYTHONPATH")}

    def use(config: Path) -> None:
        os.environ["CONDOR_CONFIG"] = str(config)
        os.environ["PYTHONPATH"] = str(REPO)

    yield use
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    htcondor2.reload_config()


def healthy_gateway(base: Path, lrms_env: dict[str, str], **knobs: str):
    """make_gateway's gateway, installed as an admin would: hooks from pip that every user can
    run, directories 1777.  ``base`` must be a directory every user can enter."""
    base.mkdir(mode=0o755, exist_ok=True)
    bin_dir = owners_bin_dir(base)
    router = make_gateway(base, "slurm", lrms_env, HPCPULL_ROUTE_Slurm_PARTITION="debug",
                          HPCPULL_BIN_DIR=str(bin_dir), HPCPULL_STATUS_MAX_AGE="30", HPCPULL_ALLOW_ROOT="false",
                          **knobs)
    router.scratch.chmod(0o1777)  # make_gateway's mkdir(mode=0o1777) is cut by the umask
    make_dir(base / "gateway" / "log" / "hpcpull")
    make_dir(base / "gateway" / "status")
    router.bin_dir = bin_dir  # type: ignore[attr-defined]
    return router


def lines(out: str, status: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(status + " ")]


def test_a_healthy_gateway_passes_every_check_including_a_probe_job(open_tmp, slurm_env, use_config, capsys):
    router = healthy_gateway(open_tmp, slurm_env)
    # The schedd cron runs the poller (as condor) before anyone asks the doctor: once here.
    poll = subprocess.run([str(router.bin_dir / "hpcpull-poll"), "HPCPULL"], env=router.env,
                          capture_output=True, text=True, timeout=120)
    assert poll.returncode == 0, poll.stderr
    use_config(router.config_path)
    rc = doctor.main(["--probe-job", "--probe-timeout", "45"])
    out = capsys.readouterr().out
    sys.stderr.write(out)  # the report shows a healthy run (pytest -s)
    assert rc == 0, out
    assert lines(out, "WARN") == [] and lines(out, "FAIL") == [], out
    for check in ("config", "hook-run", "router", "route.Slurm", "template.Slurm", "scratch.Slurm", "probe.Slurm",
                  "commands.slurm", "lrms.slurm", "status-cache.slurm", "site-status", "log"):
        assert any(line.startswith(f"OK {check}: ") for line in lines(out, "OK")), (check, out)
    if os.geteuid() == 0:  # the hooks ran as the job owners' stand-in, not as root
        hook_run = next(line for line in out.splitlines() if line.startswith("OK hook-run: "))
        assert "translate, update, finalize, cleanup start and answer as nobody" in hook_run, out
    probe = next(line for line in out.splitlines() if line.startswith("OK probe.Slurm: "))
    assert "compute nodes see the scratch root" in probe
    assert not list(router.scratch.glob(".hpcpull-doctor-*"))  # the probe cleaned up after itself


def test_a_probe_job_that_cannot_start_its_launcher_fails_with_the_batch_output(open_tmp, slurm_env, use_config,
                                                                                capsys):
    router = healthy_gateway(open_tmp, slurm_env, HPCPULL_ROUTE_Slurm_PYTHON="python3-not-installed")
    use_config(router.config_path)
    rc = doctor.main(["--route", "Slurm", "--probe-job", "--probe-timeout", "45"])
    out = capsys.readouterr().out
    assert rc == 1
    [failed] = [line for line in lines(out, "FAIL") if line.startswith("FAIL probe.Slurm: ")]
    assert "without writing doctor-probe" in failed
    assert "the launcher's interpreter python3-not-installed is not available" in failed


def test_an_unreachable_controller_and_a_missing_cluster_config_fail_the_lrms_check(open_tmp, use_config, capsys):
    """SLURM_CONF names a cluster whose controller does not run: squeue retries for ~9 s,
    so the command timeout (1 s here) ends it; then a SLURM_CONF that does not exist
    (squeue retries reading it for 60 s: its stderr says why)."""
    bogus = open_tmp / "bogus" / "slurm.conf"
    bogus.parent.mkdir()
    bogus.write_text("ClusterName=bogus\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\n"
                     "AuthType=auth/none\nCredType=cred/none\nNodeName=localhost CPUs=1 State=UNKNOWN\n"
                     "PartitionName=debug Nodes=localhost Default=YES State=UP\n")
    env = dict(os.environ, SLURM_CONF=str(bogus))
    router = healthy_gateway(open_tmp, env, HPCPULL_COMMAND_TIMEOUT="1")
    use_config(router.config_path)
    rc = doctor.main([])
    out = capsys.readouterr().out
    sys.stderr.write(out)  # the report shows a broken run (pytest -s)
    assert rc == 1
    assert lines(out, "FAIL") == [f"FAIL lrms.slurm: squeue timed out after 1 s (SLURM_CONF={bogus})"], out
    fix = out.splitlines()[out.splitlines().index(lines(out, "FAIL")[0]) + 1]
    assert fix.startswith("    fix: the batch system did not answer") and "HPCPULL_COMMAND_TIMEOUT = 1 s" in fix

    missing = open_tmp / "nowhere" / "slurm.conf"
    router = healthy_gateway(open_tmp / "second", dict(os.environ, SLURM_CONF=str(missing)),
                             HPCPULL_COMMAND_TIMEOUT="2")
    use_config(router.config_path)
    rc = doctor.main(["--route", "Slurm"])
    out = capsys.readouterr().out
    assert rc == 1
    assert len(lines(out, "FAIL")) == 1, out
    failed = lines(out, "FAIL")[0]
    assert failed.startswith("FAIL lrms.slurm: squeue timed out after 2 s; stderr: ")
    assert f"cannot stat file {missing}: No such file or directory" in failed


def test_a_probe_job_that_does_not_start_in_time_is_a_warning_and_is_cancelled(open_tmp, slurm_env, use_config,
                                                                               capsys):
    router = healthy_gateway(open_tmp, slurm_env, HPCPULL_ROUTE_Slurm_EXTRA_DIRECTIVES="--begin=now+1hour")
    use_config(router.config_path)
    rc = doctor.main(["--route", "Slurm", "--probe-job", "--probe-timeout", "3"])
    out = capsys.readouterr().out
    [warned] = [line for line in lines(out, "WARN") if line.startswith("WARN probe.Slurm: ")]
    assert "still waited to start after 3 s (reason: BeginTime); cancelled" in warned
    assert rc == 0, out  # a busy cluster is no failure
    job_id = warned.split("batch job ", 1)[1].split()[0]
    state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], env=slurm_env,
                           capture_output=True, text=True, timeout=30).stdout.strip()
    assert state == "CANCELLED"
    assert not list(router.scratch.glob(".hpcpull-doctor-*"))
