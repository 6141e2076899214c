"""Smoke test of bench/: every benchmark runs at a tiny size against the session's private
Slurm and prints a well-formed ratio line with its details.

Benchmarks are measurements, not pass/fail: no target is asserted here, only that each
benchmark ran (measured something non-zero side by side with its baseline) and said so.
"""

from __future__ import annotations

import math
import re
from types import ModuleType

import pytest

from bench import (
    hook_latency,
    memory,
    real_router,
    router_capacity,
    routing_throughput,
    run_all,
    staging,
    status_calls,
)
from hpcpull.testing.personal_pool import unavailable_reason

RATIO_LINE = re.compile(
    r"^(?P<name>[a-z][\w-]*): (?P<measured>[0-9.]+) (?P<unit>\S.*?) vs (?P<baseline>[0-9.]+) (?P=unit)"
    r" = ratio (?P<ratio>[0-9.]+|inf) \(target (?P<target>.+)\)$"
)

EXPECTED = {
    status_calls: ["status-calls"],
    hook_latency: ["update-latency", "translate-latency"],
    routing_throughput: ["routing-throughput"],
    staging: ["staging-spool", "staging-copy"],
    memory: [f"memory-{hook}" for hook in memory.HOOKS],
    real_router: ["real-router-routing", "real-router-update-cpu"],
    router_capacity: ["router-capacity"],
}


def ratio_lines(output: str) -> dict[str, tuple[re.Match, list[str]]]:
    """Each ratio line by benchmark name, with the detail lines (indented) under it."""
    found: dict[str, tuple[re.Match, list[str]]] = {}
    current = None
    for line in output.splitlines():
        match = RATIO_LINE.match(line)
        if match:
            current = match.group("name")
            found[current] = (match, [])
        elif line.startswith("  ") and current:
            found[current][1].append(line.strip())
    return found


@pytest.mark.parametrize("module", list(EXPECTED), ids=lambda m: m.__name__.split(".")[-1])
def test_benchmark_runs_at_a_tiny_size_and_prints_its_ratio(
    module: ModuleType, slurm_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    if module in (real_router, router_capacity) and unavailable_reason():
        pytest.skip(f"no real HTCondor here: {unavailable_reason()}")
    assert module.main([*module.TINY, "--slurm-conf", slurm_env["SLURM_CONF"]]) == 0
    found = ratio_lines(capsys.readouterr().out)
    assert sorted(found) == sorted(EXPECTED[module])
    for name, (match, details) in found.items():
        measured, baseline = float(match.group("measured")), float(match.group("baseline"))
        assert measured > 0 and baseline > 0, f"{name} measured nothing: {match.group(0)}"
        # the printed ratio is the printed figures' quotient (3 significant digits each)
        assert math.isclose(float(match.group("ratio")), measured / baseline, rel_tol=0.02), match.group(0)
        assert details, f"{name} printed no details"
        assert not [d for d in details if "failed" in d or "non-zero" in d], details
    if module is status_calls:
        # the instrument works: the shims attribute Slurm calls to the poller and to the hooks
        details = found["status-calls"][1]
        assert details[0].startswith("4 jobs routed (4 submitted to Slurm)")
        assert "poll:status=" in next(d for d in details if d.startswith("with the poller"))
        assert "update:status=" in next(d for d in details if d.startswith("without the poller"))


def test_run_all_prints_a_markdown_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all.main(["--tiny", "--only", "staging"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("| benchmark |"):].splitlines()
    assert table[1].startswith("|---")
    rows = {row.split("|")[1].strip(): row for row in table[2:] if row.startswith("|")}
    assert sorted(rows) == ["staging-copy", "staging-spool"]
    assert all(len(row.split("|")) == 9 for row in rows.values())


def test_run_all_refuses_an_unknown_benchmark() -> None:
    with pytest.raises(SystemExit):
        run_all.main(["--only", "no_such_benchmark"])
