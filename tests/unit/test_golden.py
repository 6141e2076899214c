"""Golden renders: every case in tests/golden/cases on every batch system.

``cases/<case>.ad`` is a job ad in old ClassAd syntax; ``cases/<case>.route`` is JSON with
RouteSettings fields that differ from the defaults (a field may map batch system names to
values, for knobs such as EXTRA_DIRECTIVES that are written per batch system; "launcher"
is the HPCPULL_LAUNCHER text).  The expected script is ``<lrms>/<case>.expected.sh``; the
job directory is ``/scratch/hpcpull/alice/<ClusterId>/<ProcId>``.  After changing a
template on purpose, run ``pytest tests/unit/test_golden.py --update-golden`` (or
HPCPULL_UPDATE_GOLDEN=1) and review the diff of the .expected.sh files: they are what
admins will read.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import classad2
import pytest

from hpcpull.config import SUPPORTED_LRMS, RouteSettings
from hpcpull.script.launchers import parse_launcher
from hpcpull.script.render import render_batch_script

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES_DIR = GOLDEN / "cases"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REQUIRED_CASES = {
    "serial", "multicore", "memory", "gpu", "whole_node", "mpi", "walltime", "site_custom", "container",
    "quoted_args",
}
CASES = [
    pytest.param(lrms, ad.stem, id=f"{lrms}/{ad.stem}")
    for lrms in SUPPORTED_LRMS
    for ad in sorted(CASES_DIR.glob("*.ad"))
]


def route_overrides(case: str, lrms: str) -> dict[str, Any]:
    route_file = CASES_DIR / f"{case}.route"
    raw = json.loads(route_file.read_text()) if route_file.exists() else {}
    overrides = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            if lrms not in value:
                continue
            value = value[lrms]
        overrides[name] = parse_launcher("launcher", value) if name == "launcher" else value
    return overrides


def render_case(lrms: str, case: str, route_factory: Callable[..., RouteSettings]) -> str:
    ad = classad2.parseOne((CASES_DIR / f"{case}.ad").read_text(), classad2.ParserType.Old)
    route = route_factory(lrms=lrms, **route_overrides(case, lrms))
    job_dir = Path("/scratch/hpcpull/alice") / str(ad["ClusterId"]) / str(ad["ProcId"])
    return render_batch_script(ad, route, job_dir)


@pytest.mark.parametrize(("lrms", "case"), CASES)
def test_golden(lrms: str, case: str, route_factory: Callable[..., RouteSettings], update_golden: bool) -> None:
    script = render_case(lrms, case, route_factory)
    expected_file = GOLDEN / lrms / f"{case}.expected.sh"
    if update_golden:
        expected_file.parent.mkdir(exist_ok=True)
        expected_file.write_text(script)
        return
    assert expected_file.exists(), f"{expected_file} is missing: run pytest {__file__} --update-golden"
    expected = expected_file.read_text()
    if script != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), script.splitlines(keepends=True),
            fromfile=str(expected_file), tofile="rendered",
        ))
        pytest.fail(f"rendered script differs from the golden file (--update-golden if intended):\n{diff}")


def test_every_required_case_is_present() -> None:
    assert {ad.stem for ad in CASES_DIR.glob("*.ad")} == REQUIRED_CASES


def test_no_orphan_expected_files() -> None:
    for expected in GOLDEN.glob("*/*.expected.sh"):
        assert expected.parent.name in SUPPORTED_LRMS, expected
        assert (CASES_DIR / expected.name.replace(".expected.sh", ".ad")).exists(), expected


def test_serial_case_is_the_router_fixture() -> None:
    fixture = (FIXTURES / "router-stdin" / "translate.stdin").read_text().split("------\n", 1)[1]
    assert (CASES_DIR / "serial.ad").read_text() == fixture


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("expected", sorted(GOLDEN.glob("*/*.expected.sh")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_scripts_are_valid_bash(expected: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(expected)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
