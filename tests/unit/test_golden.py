"""Golden renders: tests/golden/<lrms>/<case>.ad (+ optional <case>.route) -> <case>.expected.sh.

``<case>.ad`` is a job ad in old ClassAd syntax; ``<case>.route`` is JSON with RouteSettings
fields that differ from the defaults (see conftest.ROUTE_DEFAULTS).  The job directory is
``/scratch/hpcpull/alice/<ClusterId>/<ProcId>``.  After changing a template on purpose, run
``pytest tests/unit/test_golden.py --update-golden`` (or HPCPULL_UPDATE_GOLDEN=1) and review
the diff of the .expected.sh files: they are what admins will read.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import classad2
import pytest

from hpcpull.config import RouteSettings
from hpcpull.render import render_batch_script

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES = sorted(
    pytest.param(lrms.name, ad.stem, id=f"{lrms.name}/{ad.stem}")
    for lrms in GOLDEN.iterdir() if lrms.is_dir()
    for ad in lrms.glob("*.ad")
)
EXPECTED_SLURM_CASES = {"serial", "multicore", "walltime", "gpu", "site_custom", "quoted_args"}


def render_case(lrms: str, case: str, route_factory: Callable[..., RouteSettings]) -> str:
    directory = GOLDEN / lrms
    ad = classad2.parseOne((directory / f"{case}.ad").read_text(), classad2.ParserType.Old)
    route_file = directory / f"{case}.route"
    overrides = json.loads(route_file.read_text()) if route_file.exists() else {}
    route = route_factory(lrms=lrms, **overrides)
    job_dir = Path("/scratch/hpcpull/alice") / str(ad["ClusterId"]) / str(ad["ProcId"])
    return render_batch_script(ad, route, job_dir)


@pytest.mark.parametrize(("lrms", "case"), CASES)
def test_golden(lrms: str, case: str, route_factory: Callable[..., RouteSettings], update_golden: bool) -> None:
    script = render_case(lrms, case, route_factory)
    expected_file = GOLDEN / lrms / f"{case}.expected.sh"
    if update_golden:
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


def test_all_slurm_cases_are_present() -> None:
    assert {case for lrms, case in (c.values for c in CASES) if lrms == "slurm"} == EXPECTED_SLURM_CASES


def test_no_orphan_expected_files() -> None:
    for expected in GOLDEN.glob("*/*.expected.sh"):
        assert expected.with_name(expected.name.replace(".expected.sh", ".ad")).exists(), expected


def test_serial_case_is_the_router_fixture() -> None:
    fixture = (FIXTURES / "router-stdin" / "translate.stdin").read_text().split("------\n", 1)[1]
    assert (GOLDEN / "slurm" / "serial.ad").read_text() == fixture


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("expected", sorted(GOLDEN.glob("*/*.expected.sh")), ids=lambda p: p.name)
def test_golden_scripts_are_valid_bash(expected: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(expected)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
