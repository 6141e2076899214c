"""`hpcpull render` / `route-info` on hand-edited ads: Owner, ClusterId and ProcId as
expressions, undefined, lists or out of range.  Expressions are evaluated as HTCondor
would; a value that cannot be a user name or job id is one line on stderr and exit 1,
never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from hpcpull.admin.cli import main
from tests.conftest import FIXTURES, REPO

ROUTER_AD = (FIXTURES / "router-stdin" / "translate.stdin").read_text().split("------\n", 1)[1]
ROUTES = {"Rc": "REQUIREMENTS WantRcRoute =?= true\nUNIVERSE VANILLA\nSET Requirements false"}


@pytest.fixture
def config(condor_config: Callable[..., Path]) -> Path:
    return condor_config(ROUTES, {"HPCPULL_ROUTE_NAMES": "Rc", "HPCPULL_SCRATCH_ROOT": "/scratch/x"})


def job_ad(tmp_path: Path, **replace: str) -> Path:
    """The router fixture's job ad with some attributes rewritten as ClassAd expressions."""
    names = {name.lower() for name in replace}
    lines = [line for line in ROUTER_AD.splitlines() if line.split(" = ", 1)[0].lower() not in names]
    path = tmp_path / "job.ad"
    path.write_text("\n".join(lines + [f"{name} = {expr}" for name, expr in replace.items()]) + "\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("replace", "job_dir"),
    [
        ({"Owner": 'strcat("al", "ice")'}, "/scratch/x/alice/78/0"),
        ({"ClusterId": "40 + 2"}, "/scratch/x/alice/42/0"),
        ({"ProcId": "ClusterId - 75"}, "/scratch/x/alice/78/3"),
        ({"Owner": 'toLower("BOB")', "ClusterId": "7 * 6", "ProcId": "1 + 1"}, "/scratch/x/bob/42/2"),
        ({"Owner": "undefined"}, "/scratch/x/nobody/78/0"),  # as if absent
        ({"ClusterId": "undefined", "ProcId": "NoSuchAttribute"}, "/scratch/x/alice/0/0"),
    ],
)
def test_expressions_are_evaluated(config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   replace: dict[str, str], job_dir: str) -> None:
    code, out, err = run(capsys, "render", str(job_ad(tmp_path, **replace)), "Rc")
    assert (code, err) == (0, "")
    assert f"#SBATCH --chdir={job_dir}\n" in out


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"Owner": '{"alice"}'}, 'Owner = { "alice" } is a list, not a user name'),
        ({"Owner": "42"}, "Owner = 42 is an integer, not a user name"),
        ({"Owner": '"../etc"'}, 'Owner = "../etc" is not a valid user name'),
        ({"Owner": '"' + "a" * 5000 + '"'}, "is not a valid user name"),
        ({"Owner": "error"}, "job attribute Owner evaluates to error"),
        ({"ClusterId": "{1, 2}"}, "ClusterId = { 1, 2 } is a list: it must be a whole number from 0 to 2147483647"),
        ({"ProcId": "[a = 1]"}, "ProcId = [ a = 1 ] is a ClassAd: it must be a whole number"),
        ({"ClusterId": '"78"'}, 'ClusterId = "78" is a string: it must be a whole number'),
        ({"ClusterId": "1.5"}, "is a real: it must be a whole number"),
        ({"ProcId": "true"}, "ProcId = true is a boolean: it must be a whole number"),
        ({"ProcId": "-1"}, "ProcId = -1 is out of range: it must be a whole number from 0 to 2147483647"),
        ({"ClusterId": "2147483647 + 1"}, "ClusterId = 2147483647 + 1 is out of range"),
        ({"ClusterId": 'strcat("a", 1)'}, 'ClusterId = strcat("a",1) is a string'),
        ({"ClusterId": "error"}, "job attribute ClusterId evaluates to error"),
        ({"ProcId": "nosuchfunction(1)"}, "job attribute ProcId evaluates to error"),
    ],
)
def test_bad_values_are_one_line_and_exit_1(config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            replace: dict[str, str], message: str) -> None:
    code, out, err = run(capsys, "render", str(job_ad(tmp_path, **replace)), "Rc")
    assert (code, out) == (1, "")
    assert err.startswith("hpcpull render: ") and err.endswith("\n") and err.count("\n") == 1, err[:300]
    assert message in err and len(err) < 300, err[:300]


def test_route_info_reads_the_same_ads_without_a_traceback(config: Path, capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    for replace in ({"Owner": 'strcat("al", "ice")'}, {"ClusterId": "40 + 2"}, {"Owner": "undefined"},
                    {"ProcId": "{1, 2}"}, {"Owner": '{"a"}'}, {"ClusterId": "error"}):
        code, out, err = run(capsys, "route-info", str(job_ad(tmp_path, **replace)))
        assert code in (0, 1) and err == "" and out.startswith("Job "), (replace, err)


def test_through_the_real_entry_point_there_is_no_traceback(config: Path, tmp_path: Path) -> None:
    env = dict(os.environ, CONDOR_CONFIG=str(config), PYTHONPATH=str(REPO))
    for replace in ({"Owner": 'strcat("al", "ice")'}, {"ClusterId": "{1, 2}"}):
        out = subprocess.run([sys.executable, "-m", "hpcpull.admin.cli", "render",
                              str(job_ad(tmp_path, **replace)), "Rc"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert "Traceback" not in out.stderr, out.stderr
        assert out.returncode == (0 if "Owner" in replace else 1)
