"""Run every benchmark (default sizes, or ``--quick``) and print a Markdown summary table.

Each benchmark starts and stops its own private Slurm unless ``--slurm-conf`` names one,
so they do not see each other's jobs.  Run nothing else heavy on the machine meanwhile:
the load average before each benchmark is shown with its result.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, Result, number, report  # noqa: E402

# Quiet, short ones first; the long status-calls run last.
BENCHMARKS = ("hook_latency", "memory", "staging", "routing_throughput", "status_calls", "real_router",
              "router_capacity")


def machine_line() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        commit = "?"
    return (f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, hpcpull {commit or '?'}")


def markdown_table(rows: list[tuple[str, Optional[Result], str]]) -> str:
    """| benchmark | hpcpull | baseline | ratio | target | met | (rows: module, result or None, note)."""
    lines = ["| benchmark | hpcpull | baseline | ratio | target | met | notes |",
             "|---|---|---|---|---|---|---|"]
    for module, result, note in rows:
        if result is None:
            lines.append(f"| {module} | - | - | - | - | error | {note} |")
            continue
        met = {True: "yes", False: "**no**", None: "-"}[result.met]
        lines.append(f"| {result.name} | {number(result.measured)} {result.unit} | {number(result.baseline)} "
                     f"{result.unit} | {number(result.ratio)} | {result.target} | {met} | {note} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes (each module's QUICK arguments)")
    size.add_argument("--tiny", action="store_true", help="the smoke test's sizes: seconds, figures meaningless")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--slurm-conf", default=None, help="use this Slurm instead of private ones")
    parser.add_argument("--markdown", default=None, help="also write the summary table to this file")
    args = parser.parse_args(argv)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    print(machine_line(), flush=True)
    rows: list[tuple[str, Optional[Result], str]] = []
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        sub = argparse.ArgumentParser()
        module.add_arguments(sub)
        sizes = module.QUICK if args.quick else module.TINY if args.tiny else []
        sub_args = sub.parse_args(list(sizes)
                                  + (["--slurm-conf", args.slurm_conf] if args.slurm_conf else []))
        load = os.getloadavg()[0]
        print(f"\n## {name} (load average {load:.2f})", flush=True)
        start = time.monotonic()
        try:
            results = module.run(sub_args)
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            traceback.print_exc()
            rows.append((name, None, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        elapsed = time.monotonic() - start
        report(results)
        for result in results:
            rows.append((name, result, f"{elapsed:.0f} s run, load {load:.1f}"))
    table = markdown_table(rows)
    print(f"\n{machine_line()}\n\n{table}")
    if args.markdown:
        Path(args.markdown).write_text(f"{machine_line()}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
