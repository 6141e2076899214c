"""hpcpull doctor: each way a gateway can be broken is found and named, with a fix.

Every test writes a real gateway configuration (hpcpull's 50-hpcpull.conf plus routes and
knobs), read by htcondor2 as the hooks read it, and runs ``hpcpull.admin.doctor.command.main``.  The
hooks are real copies of the checkout's hooks/ with the ``#!`` line pip writes on
install.  No batch system runs here: the batch-system checks fail and are not asserted
(tests/integration/test_doctor.py runs them against the private Slurm).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from hpcpull.admin.doctor import command as doctor
from hpcpull.admin.doctor import owner_access
from hpcpull.admin.doctor.hook_files import executable_problems
from hpcpull.state.status_cache import Snapshot

REPO = Path(__file__).resolve().parents[2]
CURRENT_USER = pwd.getpwuid(os.geteuid()).pw_name
ROUTE = "REQUIREMENTS WantHpc =?= true\nUNIVERSE VANILLA\nSET Requirements false"


def install_scripts(bin_dir: Path) -> Path:
    """The checkout's hooks/ as ``pip install`` puts them: ``#!python`` becomes the interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for script in sorted((REPO / "hooks").glob("hpcpull-*")):
        lines = script.read_text().splitlines(keepends=True)
        target = bin_dir / script.name
        if lines[0].startswith("#!python"):
            target.write_text(f"#!{sys.executable}\n" + "".join(lines[1:]))
        else:  # UPDATE's /bin/sh front end: pip copies it as it is
            target.write_text("".join(lines))
        target.chmod(0o755)
    bin_dir.chmod(0o755)
    return bin_dir


def make_dir(path: Path, mode: int = 0o1777) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)  # explicitly: mkdir's mode is cut by the umask (1777 -> 1755)
    return path


class Gateway:
    """Paths of a gateway written by ``write``; knobs can be changed and rewritten."""

    def __init__(self, tmp_path: Path, use: Callable[..., Path]) -> None:
        self.tmp = tmp_path
        self.use = use
        self.bin = install_scripts(tmp_path / "bin")
        self.scratch = make_dir(tmp_path / "scratch")
        self.status = make_dir(tmp_path / "status")
        self.routes = {"Slurm": ROUTE}
        self.knobs = {
            "HPCPULL_BIN_DIR": str(self.bin),
            "HPCPULL_SCRATCH_ROOT": str(self.scratch),
            "HPCPULL_STATUS_CACHE_DIR": str(self.status),
            "HPCPULL_ROUTE_Slurm_PARTITION": "debug",
            "HPCPULL_COMMAND_TIMEOUT": "5",
            "HPCPULL_ALLOW_ROOT": "false",  # as in production (write_gateway_config sets true)
        }
        self.write()

    def write(self, routes: Optional[dict[str, str]] = None, **knobs: str) -> Path:
        if routes is not None:
            self.routes = routes
        self.knobs.update(knobs)
        self.config = self.use(self.routes, self.knobs)
        make_dir(self.config.parent / "log" / "hpcpull")
        return self.config


@pytest.fixture
def gw(tmp_path: Path, condor_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Gateway:
    # The hooks run by the doctor import the checkout's hpcpull, as the router's would.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    # These hooks use the test's own Python and tmp_path, which often only root can reach:
    # they are run as the current user here; tests/integration/test_doctor_as_owner.py runs
    # them as a job owner would.
    monkeypatch.setattr(owner_access, "DEFAULT_HOOK_USER", CURRENT_USER)
    return Gateway(tmp_path, condor_config)


def diagnose(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    """Run ``doctor.main(["--json", ...])``: exit status, and the checks by name."""
    rc = doctor.main(["--json", *args])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == (rc == 0)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for check in report["checks"]:
        assert check["status"] in ("OK", "WARN", "FAIL")
        assert check["fix"] or check["status"] == "OK", check  # every problem comes with a fix
        by_name.setdefault(check["check"], []).append(check)
    return rc, by_name


def one(checks: dict[str, list[dict[str, Any]]], name: str, status: str) -> dict[str, Any]:
    """The only check ``name`` with ``status`` (AssertionError shows all of ``name``)."""
    found = [c for c in checks.get(name, []) if c["status"] == status]
    assert len(found) == 1, checks.get(name)
    return found[0]


# The checks that do not need a batch system (lrms.*, status-cache.*, site-status do).
CONFIG_CHECKS = ("config", "knobs", "knob-names", "knobs.Slurm", "hook.translate", "hook.update",
                 "hook.finalize", "hook.cleanup", "hook-keyword", "hook-run", "poller", "router", "route-names",
                 "route.Slurm", "template.Slurm", "scratch.Slurm", "commands.slurm", "status-cache", "log", "user")


def test_a_sound_configuration_passes_every_check_that_needs_no_batch_system(gw, capsys) -> None:
    _, checks = diagnose(capsys)
    for name in CONFIG_CHECKS:
        assert [c["status"] for c in checks[name]] == ["OK"], (name, checks[name])
    assert "renders a sample job" in checks["template.Slurm"][0]["message"]
    expected = "it refuses to run as root" if os.geteuid() == 0 else "exit 2 for an empty input"
    assert expected in checks["hook-run"][0]["message"]
    assert "allow-root" not in checks
    assert "mode 1777" in checks["scratch.Slurm"][0]["message"]


def test_text_output_one_line_per_check_and_an_indented_fix_for_problems(gw, capsys) -> None:
    (gw.bin / "hpcpull-update").unlink()
    rc = doctor.main([])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert lines[0].startswith("OK config: ")
    failed = lines.index(next(line for line in lines if line.startswith("FAIL hook.update: ")))
    assert lines[failed + 1].startswith("    fix: ")
    assert all(line.split(" ", 1)[0] in ("OK", "WARN", "FAIL") or line.startswith("    fix: ")
               for line in lines[:-1])
    assert lines[-1].startswith("hpcpull doctor: ") and lines[-1].endswith(" FAIL")


# ------------------------------------------------------------------------- configuration
def test_a_configuration_file_that_does_not_parse_fails_alone(tmp_path, monkeypatch, capsys) -> None:
    broken = tmp_path / "condor_config"
    broken.write_text("LOG = /tmp\nif true\nHPCPULL_LRMS = slurm\n")  # no endif
    monkeypatch.setenv("CONDOR_CONFIG", str(broken))
    rc, checks = diagnose(capsys)
    assert rc == 1 and list(checks) == ["config"]
    assert "endif" in one(checks, "config", "FAIL")["message"]


def test_a_missing_configuration_fails(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CONDOR_CONFIG", str(tmp_path / "nowhere"))
    rc, checks = diagnose(capsys)
    assert rc == 1 and list(checks) == ["config"]
    assert "does not exist" in one(checks, "config", "FAIL")["message"]


def test_a_bad_gateway_knob_value_fails_with_the_knob_and_value(gw, capsys) -> None:
    gw.write(HPCPULL_COMMAND_TIMEOUT="soon")
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert one(checks, "knobs", "FAIL")["message"] == "HPCPULL_COMMAND_TIMEOUT = 'soon' is not a number"


def test_a_bad_route_knob_value_fails_for_that_route(gw, capsys) -> None:
    gw.write(HPCPULL_ROUTE_Slurm_LRMS="torque")
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert "HPCPULL_ROUTE_Slurm_LRMS = 'torque'" in one(checks, "knobs.Slurm", "FAIL")["message"]
    assert "template.Slurm" not in checks  # nothing to render without the route's settings


def test_misspelt_knobs_and_knobs_of_unknown_routes_are_reported(gw, capsys) -> None:
    gw.write(HPCPULL_PARTITON="short", HPCPULL_ROUTE_Slurm_MAX_CPUS="8", HPCPULL_ROUTE_Slrum_PARTITION="x")
    rc, checks = diagnose(capsys)
    warnings = [c["message"] for c in checks["knob-names"]]
    assert any(m.startswith("HPCPULL_PARTITON: not a knob") for m in warnings), warnings
    assert any(m.startswith("HPCPULL_ROUTE_SLRUM_PARTITION: names a route") for m in warnings), warnings
    assert not any("MAX_CPUS" in m for m in warnings)


# ------------------------------------------------------------------------------ hooks
def test_a_missing_hook_fails(gw, capsys) -> None:
    (gw.bin / "hpcpull-update").unlink()
    rc, checks = diagnose(capsys)
    assert rc == 1
    message = one(checks, "hook.update", "FAIL")["message"]
    assert str(gw.bin / "hpcpull-update") in message and "No such file or directory" in message
    assert [c["status"] for c in checks["hook.translate"]] == ["OK"]


def test_a_hook_in_a_world_writable_directory_fails(gw, capsys) -> None:
    gw.bin.chmod(0o777)
    rc, checks = diagnose(capsys)
    assert rc == 1
    for hook in ("translate", "update", "finalize", "cleanup"):
        assert "world-writable directory" in one(checks, f"hook.{hook}", "FAIL")["message"]
    assert "hook-run" not in checks  # HTCondor would not run it, so neither do we


def test_a_world_writable_hook_fails(gw, capsys) -> None:
    (gw.bin / "hpcpull-finalize").chmod(0o777)
    rc, checks = diagnose(capsys)
    assert rc == 1
    failed = one(checks, "hook.finalize", "FAIL")
    assert "is world-writable (mode 0777)" in failed["message"] and failed["fix"].startswith("chmod o-w")


def test_a_hook_without_execute_permission_fails(gw, capsys) -> None:
    (gw.bin / "hpcpull-cleanup").chmod(0o644)
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert "is not executable (mode 0644)" in one(checks, "hook.cleanup", "FAIL")["message"]


def test_a_hook_other_users_cannot_run_is_a_warning(gw, capsys) -> None:
    (gw.bin / "hpcpull-update").chmod(0o750)
    rc, checks = diagnose(capsys)
    assert "mode 0750: the UPDATE_JOB_INFO hook runs as the job owners" in one(checks, "hook.update", "WARN")["message"]


def test_the_checkouts_hooks_are_not_runnable_as_they_are(gw, capsys) -> None:
    gw.write(HPCPULL_BIN_DIR=str(REPO / "hooks"))  # '#!python': only pip's install makes them runnable
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert "not an absolute interpreter path" in one(checks, "hook.translate", "FAIL")["message"]


def test_a_translate_hook_that_cannot_start_fails(gw, capsys) -> None:
    script = gw.bin / "hpcpull-translate"
    script.write_text(f"#!{sys.executable}\nimport no_such_module_here\n")
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert "No module named 'no_such_module_here'" in one(checks, "hook-run", "FAIL")["message"]


def test_allow_root_is_a_warning_and_the_hook_then_answers_as_root(gw, capsys) -> None:
    gw.write(HPCPULL_ALLOW_ROOT="true")
    _, checks = diagnose(capsys)
    assert one(checks, "allow-root", "WARN")["message"].startswith("HPCPULL_ALLOW_ROOT = true")
    assert "exit 2 for an empty input" in one(checks, "hook-run", "OK")["message"]


def test_hook_keyword_unset_or_another_one_is_a_warning(gw, capsys) -> None:
    gw.write(JOB_ROUTER_HOOK_KEYWORD="")
    _, checks = diagnose(capsys)
    assert "is not set" in one(checks, "hook-keyword", "WARN")["message"]
    gw.write(JOB_ROUTER_HOOK_KEYWORD="RC")
    _, checks = diagnose(capsys)
    assert "RC_HOOK_*" in one(checks, "hook-keyword", "WARN")["message"]


def test_an_update_interval_is_checked_against_the_resting_keyword(gw, capsys) -> None:
    _, checks = diagnose(capsys)
    assert "update-interval" not in checks  # 0, the default: an UPDATE at every poll
    gw.write(HPCPULL_UPDATE_INTERVAL="60")
    _, checks = diagnose(capsys)
    assert "once per 60 s, in a 12 s window" in one(checks, "update-interval", "OK")["message"]
    assert "may wake the UPDATE" in one(checks, "update-wake", "OK")["message"]  # HTCondor's default
    gw.write(QUEUE_SUPER_USERS="root")
    _, checks = diagnose(capsys)
    assert "condor is not in QUEUE_SUPER_USERS" in one(checks, "update-wake", "WARN")["message"]
    gw.write(QUEUE_SUPER_USERS="root, condor@gateway.example")
    _, checks = diagnose(capsys)
    assert one(checks, "update-wake", "OK")
    gw.write(HPCPULL_RESTING_HOOK_JOB_CLEANUP='""')
    _, checks = diagnose(capsys)
    failed = one(checks, "update-interval", "FAIL")
    assert "HPCPULL_RESTING_HOOK_JOB_CLEANUP must name the same hook" in failed["message"]
    assert "HPCPULL_UPDATE_INTERVAL = 0" in failed["fix"]


def test_poller_missing_from_the_joblist_or_slower_than_the_status_age(gw, capsys) -> None:
    gw.write(SCHEDD_CRON_JOBLIST="")
    _, checks = diagnose(capsys)
    assert "not in SCHEDD_CRON_JOBLIST" in one(checks, "poller", "WARN")["message"]
    gw.write(SCHEDD_CRON_JOBLIST="HPCPULL", SCHEDD_CRON_HPCPULL_PERIOD="1m")
    _, checks = diagnose(capsys)
    assert "(60 s) is not below HPCPULL_STATUS_MAX_AGE (30 s)" in one(checks, "poller", "WARN")["message"]


# ------------------------------------------------------------------- router and routes
def test_a_router_that_is_not_enabled_fails(gw, capsys) -> None:
    gw.write(DAEMON_LIST="MASTER SCHEDD")
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert "JOB_ROUTER is not in DAEMON_LIST (MASTER SCHEDD)" in one(checks, "router", "FAIL")["message"]


def test_an_unknown_route_in_hpcpull_route_names_fails(gw, capsys) -> None:
    gw.write(HPCPULL_ROUTE_NAMES="Slurm Gpu")
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert one(checks, "route.Gpu", "FAIL")["message"] == \
        "HPCPULL_ROUTE_NAMES names Gpu, but JOB_ROUTER_ROUTE_Gpu is not defined"
    assert [c["status"] for c in checks["route.Slurm"]] == ["OK"]


def test_a_route_without_requirements_or_one_htcondor_may_run_itself(gw, capsys) -> None:
    gw.write(routes={"Slurm": "UNIVERSE VANILLA\nSET Requirements false",
                     "Grid": "REQUIREMENTS true\nGridResource = \"batch slurm\""},
             HPCPULL_ROUTE_NAMES="Slurm Grid")
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert "no REQUIREMENTS" in one(checks, "route.Slurm", "FAIL")["message"]
    assert "universe grid" in one(checks, "route.Grid", "WARN")["message"]


def test_a_pull_route_needs_its_own_router_name(gw, capsys) -> None:
    pull = 'REQUIREMENTS SubmitterId =?= "origin@vm"\nUNIVERSE VANILLA\nSET Requirements false'
    gw.write(routes={"Pull": pull}, HPCPULL_ROUTE_NAMES="Pull")
    _, checks = diagnose(capsys)
    assert 'JOB_ROUTER_NAME is "jobrouter"' in one(checks, "router-name", "WARN")["message"]
    gw.write(JOB_ROUTER_NAME="hpcpull")
    _, checks = diagnose(capsys)
    one(checks, "router-name", "OK")


def test_route_option_limits_the_route_checks(gw, capsys) -> None:
    gw.write(routes={"Slurm": ROUTE, "Short": ROUTE}, HPCPULL_ROUTE_Short_PARTITION="short")
    _, checks = diagnose(capsys, "--route", "Short")
    per_route = {n for n in checks if "." in n and not n.startswith(("hook.", "commands.", "lrms.", "status-cache."))}
    assert per_route == {"knobs.Short", "route.Short", "template.Short", "scratch.Short"}
    rc, checks = diagnose(capsys, "--route", "Nope")
    assert rc == 1 and "no route Nope is configured" in one(checks, "route.Nope", "FAIL")["message"]


# ----------------------------------------------------------------------------- templates
def test_a_site_template_naming_an_undefined_variable_fails(gw, capsys) -> None:
    site = gw.tmp / "site-templates"
    (site / "slurm").mkdir(parents=True)
    (site / "slurm" / "job.sh.j2").write_text("#!/bin/bash\n#SBATCH --qos={{ qos_name }}\n")
    gw.write(HPCPULL_TEMPLATE_DIRS=str(site))
    rc, checks = diagnose(capsys)
    assert rc == 1
    message = one(checks, "template.Slurm", "FAIL")["message"]
    assert "'qos_name' is undefined" in message and str(site / "slurm" / "job.sh.j2") in message


def test_a_template_that_renders_broken_bash_fails(gw, capsys) -> None:
    site = gw.tmp / "site-templates"
    (site / "slurm").mkdir(parents=True)
    (site / "slurm" / "job.sh.j2").write_text("#!/bin/bash\nif [ -d {{ job_dir }} ]; then\n  echo yes\n")
    gw.write(HPCPULL_TEMPLATE_DIRS=str(site))
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert "renders a script bash cannot parse" in one(checks, "template.Slurm", "FAIL")["message"]


# -------------------------------------------------------------------------------- scratch
def test_a_missing_scratch_root_fails(gw, capsys) -> None:
    gw.write(HPCPULL_SCRATCH_ROOT=str(gw.tmp / "no-scratch"))
    rc, checks = diagnose(capsys)
    assert rc == 1
    failed = one(checks, "scratch.Slurm", "FAIL")
    assert "No such file or directory" in failed["message"] and "chmod 1777" in failed["fix"]


def test_a_scratch_root_that_is_a_file_fails(gw, capsys) -> None:
    (gw.tmp / "file").write_text("")
    gw.write(HPCPULL_SCRATCH_ROOT=str(gw.tmp / "file"))
    rc, checks = diagnose(capsys)
    assert rc == 1 and "is not a directory" in one(checks, "scratch.Slurm", "FAIL")["message"]


def test_a_scratch_root_without_mode_1777_is_a_warning(gw, capsys) -> None:
    gw.scratch.chmod(0o755)
    rc, checks = diagnose(capsys)
    assert "has mode 0755, not 1777" in one(checks, "scratch.Slurm", "WARN")["message"]


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A real read-only file system (a tmpfs mounted ro, mode 1777); skipped where mount is not allowed."""
    target = tmp_path / "ro"
    target.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m,mode=1777", "tmpfs", str(target)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {proc.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)


def test_a_read_only_scratch_root_fails(gw, capsys, read_only_dir) -> None:
    gw.write(HPCPULL_SCRATCH_ROOT=str(read_only_dir))
    rc, checks = diagnose(capsys)
    assert rc == 1
    assert "is not writable: Read-only file system" in one(checks, "scratch.Slurm", "FAIL")["message"]


# ------------------------------------------------------------------------- batch system
def test_a_batch_command_missing_from_the_batch_path_fails(gw, capsys) -> None:
    partial = gw.tmp / "partial-bin"
    partial.mkdir()
    for command in ("sbatch", "squeue", "scontrol", "scancel"):  # no sacct
        found = shutil.which(command)
        if found is None:
            pytest.skip(f"{command} is not installed")
        (partial / command).symlink_to(found)
    gw.write(HPCPULL_LRMS_ENVIRONMENT=f"PATH={partial}")
    rc, checks = diagnose(capsys)
    assert rc == 1
    failed = one(checks, "commands.slurm", "FAIL")
    assert failed["message"] == f"sacct not found in the batch command PATH ({partial})"


# --------------------------------------------------------------------- status and log
def write_snapshot(directory: Path, age_s: float, ok: bool = True, name: str = "slurm-status.json") -> None:
    error = "" if ok else "squeue timed out after 30 s"
    (directory / name).write_text(Snapshot(time.time() - age_s, ok, error).to_json())


def test_a_stale_status_snapshot_is_a_warning_with_its_age(gw, capsys) -> None:
    write_snapshot(gw.status, 3 * 3600 + 120)
    _, checks = diagnose(capsys)
    message = one(checks, "status-cache.slurm", "WARN")["message"]
    assert "is 3 h 2 min old, more than twice HPCPULL_STATUS_MAX_AGE (30 s)" in message


def test_a_fresh_status_snapshot_passes_and_a_failed_one_warns(gw, capsys) -> None:
    write_snapshot(gw.status, 5)
    _, checks = diagnose(capsys)
    # the doctor runs the four hooks first: a few seconds pass on a busy machine
    assert re.search(r"slurm-status\.json\) is [5-9] s old", one(checks, "status-cache.slurm", "OK")["message"])
    write_snapshot(gw.status, 2, ok=False, name=f"slurm-status.{os.getuid() + 1}.json")
    _, checks = diagnose(capsys)
    assert "squeue timed out" in one(checks, "status-cache.slurm", "WARN")["message"]


def test_no_status_snapshot_at_all_is_a_warning(gw, capsys) -> None:
    _, checks = diagnose(capsys)
    assert "no slurm status snapshot" in one(checks, "status-cache.slurm", "WARN")["message"]


def test_a_status_cache_without_mode_1777_is_a_warning(gw, capsys) -> None:
    gw.status.chmod(0o755)
    _, checks = diagnose(capsys)
    assert "has mode 0755, not 1777" in one(checks, "status-cache", "WARN")["message"]


def test_the_pollers_site_status_is_read(gw, capsys) -> None:
    site = {"taken_at": time.time() - 30, "last_success": None, "lrms_reachable": False,
            "last_error": "slurm: squeue timed out after 30 s", "status_shared": True, "jobs": {}, "lrms": ["slurm"]}
    (gw.status / "site-status.json").write_text(json.dumps(site))
    _, checks = diagnose(capsys)
    assert re.search(r"unreachable 3\d s ago: slurm: squeue timed out", one(checks, "site-status", "WARN")["message"])
    site.update(lrms_reachable=True, last_error="", jobs={"Slurm": {"idle": 2, "running": 3}})
    (gw.status / "site-status.json").write_text(json.dumps(site))
    _, checks = diagnose(capsys)
    assert "(2 idle, 3 running hpcpull jobs)" in one(checks, "site-status", "OK")["message"]


def test_a_log_directory_without_mode_1777_is_a_warning(gw, capsys) -> None:
    (gw.config.parent / "log" / "hpcpull").chmod(0o755)
    _, checks = diagnose(capsys)
    assert "has mode 0755, not 1777" in one(checks, "log", "WARN")["message"]


# --------------------------------------------------------------------------------- CLI
def test_python_dash_m_prints_json(gw) -> None:
    env = dict(os.environ, CONDOR_CONFIG=str(gw.config), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "hpcpull.admin.doctor", "--json", "--route", "Slurm", "--as-user",
                           CURRENT_USER], env=env,
                          capture_output=True, text=True, timeout=120, cwd=gw.tmp)
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["ok"] else 1)
    assert report["counts"]["OK"] >= len(CONFIG_CHECKS) - 1
    assert {c["check"] for c in report["checks"]} >= set(CONFIG_CHECKS)


def test_executable_problems_follow_htcondors_rules(tmp_path) -> None:
    """validateHookPath: any execute bit counts; a symlink is judged by its target, but the
    directory checked is the one the knob names."""
    real = make_dir(tmp_path / "real", 0o755) / "hook"
    real.write_text("#!/bin/sh\nexit 0\n")
    real.chmod(0o701)  # others may execute but not read: a script cannot run that way
    assert [s for s, _, _ in executable_problems(str(real), "hook")] == ["WARN"]
    real.chmod(0o755)
    assert executable_problems(str(real), "hook") == []
    link_dir = make_dir(tmp_path / "open", 0o777)
    (link_dir / "hook").symlink_to(real)
    [(status, message, _)] = executable_problems(str(link_dir / "hook"), "hook")
    assert status == "FAIL" and "world-writable directory" in message
