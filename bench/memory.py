"""Benchmark 5: peak memory (max RSS) of each hook process vs a bare Python start.

``--jobs`` short jobs go through their whole life in the router simulation against Slurm:
TRANSLATE, UPDATEs (the first submits), the schedd cron poller every polling period,
FINALIZE and CLEANUP, each the installed executable, started through GNU time (a small
process: a child's ru_maxrss starts from its parent's RSS, so this large benchmark
process cannot fork the measured one itself), whose ``%M`` is the peak resident set
size of the hook (Linux folds in the children it waited for: the sbatch/squeue a hook
runs, which are smaller than Python).  The baseline is ``python3 -c pass`` with the same
interpreter and environment, run the same way between the polling periods.  There is no
target: the figures are for sizing a gateway (N concurrent hooks x peak RSS).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    Result,
    add_common_arguments,
    baseline_argv,
    cancel_batch_jobs,
    fixture_job,
    make_gateway,
    report,
    rss_wrapper_available,
    slurm,
    spawn,
    workspace,
)

QUICK = ["--jobs", "2"]
TINY = ["--jobs", "1"]  # the smoke test's size: seconds
HOOKS = ("translate", "update", "poll", "finalize", "cleanup")
IMPORTS = ("classad2", "htcondor2", "jinja2", "hpcpull.router.translate", "hpcpull.router.translate, htcondor2")
KIB_PER_MIB = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=3, help="jobs run through their whole life (default 3)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for the jobs to finish")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> list[Result]:
    with workspace(args.keep) as work, slurm(args.slurm_conf) as slurm_env:
        gateway = make_gateway(work, slurm_env, HPCPULL_EXIT_FILE_GRACE="5")
        router = gateway.router
        router.rss_wrapper = wrapped = rss_wrapper_available()
        baseline: list[int] = []
        try:
            sources = [router.submit(fixture_job(work / "submit" / str(i), 1)) for i in range(args.jobs)]
            for source in sources:
                router.translate_one(source)
            deadline = time.monotonic() + args.timeout
            while any(router.in_queue(s) for s in sources) and time.monotonic() < deadline:
                router.schedd_cron()
                router.poll()
                baseline.append(spawn(baseline_argv(), b"", router.env, router.workdir,
                                      rss_wrapper=wrapped).maxrss_kib)
                time.sleep(0.5)
            finished = sum(not router.in_queue(s) for s in sources)
            python = baseline_argv()[0]
            imports = {module: spawn([python, "-c", f"import {module}"], b"", router.env, router.workdir,
                                     rss_wrapper=wrapped).maxrss_kib / KIB_PER_MIB for module in IMPORTS}
        finally:
            cancel_batch_jobs(slurm_env, router.batch_ids())
    base = statistics.median(baseline) / KIB_PER_MIB
    results = []
    for hook in HOOKS:
        runs = [s.run for s in router.spawned if s.hook == hook]
        if not runs:
            continue
        peak = max(r.maxrss_kib for r in runs) / KIB_PER_MIB
        result = Result(f"memory-{hook}", peak, base, "MiB", target="none (for sizing)")
        result.details.append(
            f"{len(runs)} run(s): max RSS median {statistics.median(r.maxrss_kib for r in runs) / KIB_PER_MIB:.1f} "
            f"MiB, peak {peak:.1f} MiB; python3 -c pass: median {base:.1f} MiB of {len(baseline)} runs")
        if hook == HOOKS[-1]:
            result.details.append(f"{finished} of {args.jobs} jobs went through their whole life")
            result.details.append("where it goes: python3 -c 'import X' peaks at " + "; ".join(
                f"{module} {mib:.1f} MiB" for module, mib in imports.items()))
            if not wrapped:
                result.details.append("GNU time (/usr/bin/time) is missing: the figures are wait4's, which "
                                      "include this benchmark process's own RSS (overstated)")
        results.append(result)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    add_arguments(parser)
    report(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
