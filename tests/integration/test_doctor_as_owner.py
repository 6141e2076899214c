"""What the job owners meet: hpcpull doctor checks and runs the hooks as an ordinary account,
and the schedd-cron poller says what is wrong in one line.

The router runs every hook as the job's Owner.  A gateway whose hooks sit under a directory
only root may enter (a venv under /root, pyenv's Python) passes every check that root makes
and routes no job: the doctor must see that, name what stops the owners and say how to
install so that they can.  The poller, run by the schedd's cron as condor, must say in one
line (the SchedLog gets its stderr) what is wrong with its status directory or configuration.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import htcondor2
import pytest

from hpcpull.admin.doctor import command as doctor
from hpcpull.admin.doctor.owner_access import INSTALL_FIX
from hpcpull.testing.personal_pool import TEST_USER, ensure_user, world_readable_dir
from hpcpull.testing.router_sim import write_gateway_config
from tests.integration.test_doctor import install_hooks, owners_bin_dir, owners_venv
from tests.unit.test_doctor import make_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the hooks and the poller as other users: needs root")

REPO = Path(__file__).resolve().parents[2]
ROUTE = "REQUIREMENTS WantHpc =?= true\nUNIVERSE VANILLA\nSET Requirements false"
HOOKS = ("translate", "update", "finalize", "cleanup")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user can enter, removed afterwards; CONDOR_CONFIG and PYTHONPATH
    (the hooks import the checkout's hpcpull) are restored afterwards too."""
    saved = {name: os.environ.get(name) for name in ("CONDOR_CONFIG", "PYTHONPATH")}
    os.environ["PYTHONPATH"] = str(REPO)
    path = world_readable_dir("hpcpull-owner-")
    yield path
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    htcondor2.reload_config()
    shutil.rmtree(path, ignore_errors=True)


def gateway(base: Path, bin_dir: Path, **knobs: str) -> Path:
    """A gateway configuration every user can read, serving route Slurm with ``bin_dir``'s hooks."""
    config = write_gateway_config(base / "gw", {"Slurm": ROUTE}, {
        "HPCPULL_BIN_DIR": str(bin_dir),
        "HPCPULL_SCRATCH_ROOT": str(make_dir(base / "scratch")),
        "HPCPULL_STATUS_CACHE_DIR": str(make_dir(base / "status")),
        "HPCPULL_ROUTE_Slurm_PARTITION": "debug",
        "HPCPULL_COMMAND_TIMEOUT": "5",
        "HPCPULL_ALLOW_ROOT": "false",  # as in production
        **knobs,
    })
    subprocess.run(["chmod", "-R", "a+rX", str(base / "gw")], check=True)
    os.environ["CONDOR_CONFIG"] = str(config)
    return config


def diagnose(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    """``hpcpull doctor --json``: exit status and the checks by name."""
    rc = doctor.main(["--json", *args])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for check in json.loads(capsys.readouterr().out)["checks"]:
        by_name.setdefault(check["check"], []).append(check)
    return rc, by_name


def statuses(checks: dict[str, list[dict[str, Any]]], name: str) -> list[str]:
    return [c["status"] for c in checks.get(name, [])]


def private_dir(path: Path) -> Path:
    """A directory only root may enter, like /root."""
    path.mkdir(parents=True)
    path.chmod(0o700)
    return path


# ------------------------------------------------------------------------- the doctor
def test_hooks_every_user_can_run_pass_and_are_run_as_nobody(base, capsys) -> None:
    gateway(base, owners_bin_dir(base))
    _, checks = diagnose(capsys)
    for hook in HOOKS:
        [check] = checks[f"hook.{hook}"]
        assert check["status"] == "OK" and "nobody, as the job owners, can reach it" in check["message"], check
    [ran] = checks["hook-run"]
    assert ran["status"] == "OK", ran
    assert ran["message"].startswith("translate, update, finalize, cleanup start and answer as nobody (uid ")
    assert "exit 2 for an empty input from translate" in ran["message"]

    ensure_user(TEST_USER)
    _, checks = diagnose(capsys, "--as-user", TEST_USER)
    [ran] = checks["hook-run"]
    assert ran["status"] == "OK" and f"start and answer as {TEST_USER} (uid " in ran["message"], ran


def test_hooks_in_a_venv_only_root_can_enter_fail_with_how_to_install(base, capsys) -> None:
    """The usual result of `pip install` as root into a venv under /root (mode 0700)."""
    closed = private_dir(base / "root")
    bin_dir = install_hooks(closed / "venv" / "bin", owners_venv() / "bin" / "python3")
    gateway(base, bin_dir)
    rc, checks = diagnose(capsys)
    assert rc == 1
    for hook in HOOKS:
        [check] = checks[f"hook.{hook}"]
        assert check["status"] == "FAIL", check
        assert f"the job owners cannot run {bin_dir}/hpcpull-{hook}: nobody (uid " in check["message"], check
        assert f"cannot enter {closed} (mode 0700, owner root)" in check["message"], check
        assert check["fix"] == INSTALL_FIX
    for words in ("/usr/bin/python3 -m venv /opt/hpcpull", "chmod -R a+rX /opt/hpcpull",
                  "HPCPULL_BIN_DIR = /opt/hpcpull/bin"):
        assert words in INSTALL_FIX
    assert "hook-run" not in checks  # nothing the owners could start


def test_an_interpreter_only_root_can_reach_fails(base, capsys) -> None:
    closed = private_dir(base / "pyenv")
    (closed / "python3").symlink_to(owners_venv() / "bin" / "python3")
    gateway(base, install_hooks(base / "bin", closed / "python3"))
    rc, checks = diagnose(capsys)
    assert rc == 1
    # /bin/sh front ends, which are fine: the Python hooks behind them are not
    for hook, python_hook in (("finalize", "hpcpull-finalize-full"), ("cleanup", "hpcpull-cleanup-full"),
                              ("translate", "hpcpull-translate-full"), ("update", "hpcpull-update-full")):
        [check] = checks[f"hook.{hook}"]
        assert check["status"] == "FAIL" and check["fix"] == INSTALL_FIX, check
        assert f"cannot run {closed}/python3, the interpreter of {base}/bin/{python_hook}: nobody (uid " \
            in check["message"], check
        assert check["message"].endswith(f"cannot enter {closed} (mode 0700, owner root)"), check


def test_the_python_hook_behind_the_shell_front_end_is_checked_for_the_owners(base, capsys) -> None:
    bin_dir = owners_bin_dir(base)
    (bin_dir / "hpcpull-update-full").chmod(0o700)  # HTCondor's own checks pass: it has an execute bit
    gateway(base, bin_dir)
    rc, checks = diagnose(capsys)
    assert rc == 1
    [check] = checks["hook.update"]  # one definite FAIL, not also a mode-bit guess
    assert check["status"] == "FAIL", check
    assert f"cannot execute {bin_dir}/hpcpull-update-full (mode 0700, owner root)" in check["message"]
    assert check["fix"] == f"chmod a+rx {bin_dir}/hpcpull-update-full"
    assert statuses(checks, "hook.translate") == ["OK"]
    [ran] = checks["hook-run"]
    assert ran["message"].startswith("translate, finalize, cleanup start and answer as nobody"), ran


def test_a_package_only_root_can_read_fails_when_the_hooks_run_as_the_owner(base, capsys) -> None:
    """Only running the hooks as an owner finds this: the hooks and their Python are open to
    all, but the hpcpull they import (here through PYTHONPATH, as from an editable install
    of a checkout under /root) is not."""
    closed = private_dir(base / "checkout")
    shutil.copytree(REPO / "hpcpull", closed / "hpcpull", ignore=shutil.ignore_patterns("__pycache__"))
    gateway(base, owners_bin_dir(base))
    os.environ["PYTHONPATH"] = str(closed)
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert all(statuses(checks, f"hook.{hook}") == ["OK"] for hook in HOOKS), checks
    failed = checks["hook-run"]
    assert statuses(checks, "hook-run") == ["FAIL"] * 4, failed
    for check in failed:
        assert " run as nobody (uid " in check["message"], check
        assert "No module named 'hpcpull'" in check["message"], check
        assert check["fix"].startswith("run it by hand: echo | runuser -u nobody -- ")
        assert INSTALL_FIX in check["fix"]


# ------------------------------------------------------------------------- the poller
def run_poller(bin_dir: Path, config: Path, user: str = "") -> subprocess.CompletedProcess:
    """``hpcpull-poll HPCPULL`` as the schedd's cron runs it, as ``user`` (condor's stand-in)."""
    env = {"PATH": "/usr/bin:/bin", "CONDOR_CONFIG": str(config), "PYTHONPATH": str(REPO)}
    ids: dict[str, Any] = {}
    if user:
        entry = pwd.getpwnam(user)
        ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    return subprocess.run([str(bin_dir / "hpcpull-poll"), "HPCPULL"], env=env, cwd="/", capture_output=True,
                          text=True, timeout=120, **ids)


def assert_one_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("hpcpull poll: "), line
    for word in words:
        assert word in line, (word, line)
    assert proc.stdout.endswith("\n-\n") and "LastError = " in proc.stdout  # still an ad for the schedd
    return line


def test_the_poller_without_its_status_directory_says_so_in_one_line(base) -> None:
    """The poller started before the admin made the status directory, whose parent only
    root may write: one line naming the directory and how to make it, no traceback."""
    ensure_user(TEST_USER)
    bin_dir = owners_bin_dir(base)
    status = base / "lib" / "hpcpull" / "status"
    (base / "lib").mkdir(mode=0o755)
    config = gateway(base, bin_dir, HPCPULL_STATUS_CACHE_DIR=str(status))
    line = assert_one_line(run_poller(bin_dir, config, TEST_USER), f"status directory {status} does not exist",
                           f"{TEST_USER} cannot create it", f"mkdir -p {status} && chmod 1777 {status}",
                           "owner root, mode 1777")
    sys.stderr.write(line + "\n")
    assert not status.exists()


def test_the_poller_with_a_status_directory_it_cannot_write_says_so_in_one_line(base) -> None:
    ensure_user(TEST_USER)
    bin_dir = owners_bin_dir(base)
    status = make_dir(base / "closed-status", 0o755)
    config = gateway(base, bin_dir, HPCPULL_STATUS_CACHE_DIR=str(status))
    assert_one_line(run_poller(bin_dir, config, TEST_USER), f"status directory {status} (mode 0755, owner root)",
                    f"not writable by {TEST_USER}", f"chmod 1777 {status}")


def test_the_poller_with_a_bad_configuration_says_so_in_one_line(base) -> None:
    bin_dir = owners_bin_dir(base)
    config = gateway(base, bin_dir, HPCPULL_COMMAND_TIMEOUT="soon")
    assert_one_line(run_poller(bin_dir, config), "HPCPULL_COMMAND_TIMEOUT = 'soon' is not a number")
    with open(config, "a", encoding="utf-8") as handle:
        handle.write("if true\nFOO = 1\n")  # no endif: htcondor2 ends the process that loads it
    assert_one_line(run_poller(bin_dir, config), "the HTCondor configuration does not load", str(config),
                    "endif")
