"""`pip install .` gives hooks that work without the checkout: templates and config ship inside."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcpull.router.classads import parse_old_ad
from hpcpull.testing.router_sim import write_gateway_config
from tests.conftest import FIXTURES, REPO, ROUTE_BODY


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtualenv (sharing this interpreter's htcondor and jinja2) with hpcpull installed from a copy."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", str(source)], check=True, timeout=300)
    shutil.rmtree(source)  # nothing may come from the checkout any more
    return venv


def test_installed_hooks_and_data(installed, tmp_path):
    bin_dir = installed / "bin"
    for hook in ("translate-full", "update-full", "finalize-full", "cleanup-full"):
        script = bin_dir / f"hpcpull-{hook}"
        assert os.access(script, os.X_OK)
        assert script.read_text().splitlines()[0] == f"#!{bin_dir / 'python'}", "shebang names the venv python"
    # shell front ends, installed as they are
    for front_end in ("translate", "update", "finalize", "cleanup", "hook-slot", "hook-batch"):
        script = bin_dir / f"hpcpull-{front_end}"
        assert os.access(script, os.X_OK) and script.read_text().startswith("#!/bin/sh\n")
    assert (bin_dir / "hpcpull").exists()
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o1777)
    config = write_gateway_config(tmp_path / "gw", {"Slurm": ROUTE_BODY}, {"HPCPULL_SCRATCH_ROOT": str(scratch)})
    text = (FIXTURES / "router-stdin" / "translate.stdin").read_text().replace('"RcRoute"', '"Slurm"')
    home = tmp_path / "jobs"
    home.mkdir()
    text = text.replace("/home/alice/jobs", str(home))
    env = {"PATH": "/usr/bin:/bin", "CONDOR_CONFIG": str(config)}
    proc = subprocess.run([str(bin_dir / "hpcpull-translate")], input=text.encode(), capture_output=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    routed = parse_old_ad(proc.stdout.decode())
    script = Path(routed["HpcPullScript"]).read_text()
    assert script.startswith("#!/bin/bash") and "launcher.py" in script
    package = subprocess.run([str(bin_dir / "python"), "-c", "import hpcpull, sys; print(hpcpull.__file__)"],
                             capture_output=True, text=True, cwd=tmp_path, env=env, check=True).stdout.strip()
    data = Path(package).parent / "data"
    assert (data / "templates" / "slurm" / "job.sh.j2").exists()
    assert (data / "condor_config" / "50-hpcpull.conf").exists()
