"""Benchmark 1: batch-system status commands in one router polling period with N routed jobs.

N jobs (default 1,000) are routed through the real TRANSLATE and first UPDATE (sbatch)
into a Slurm cluster; they sleep, so they stay PENDING (most: the private Slurm has 16
CPUs) or RUNNING.  Then one polling period is played twice, side by side:

* with the poller: the schedd cron poller runs once, then every routed job's UPDATE
  runs once; and
* without it (the baseline): the snapshot is removed, and every UPDATE runs once again,
  the hooks sharing the per-user status cache among themselves.

Every Slurm client command is counted by PATH shims that log, then exec the real command.
Target: 1 status command (+ at most 1 accounting query) per period for all N jobs.

To create the routed jobs faster, TRANSLATE and the first UPDATE run for several jobs
at once (``--workers``), as the router runs hooks of different jobs concurrently; the
measured periods run the same way.  HPCPULL_STATUS_MAX_AGE is set to ``--max-age``
(default 900 s) so that one period's snapshot covers all N UPDATEs even on a slow
machine: the question is how many commands one round of N UPDATEs costs, and the
time a round takes is reported next to it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    Gateway,
    Result,
    SlurmCall,
    add_common_arguments,
    cancel_batch_jobs,
    fixture_job,
    make_gateway,
    pmap,
    report,
    slurm,
    workspace,
)

NAME = "status-calls"
QUICK = ["--jobs", "100"]
TINY = ["--jobs", "4", "--workers", "2"]  # the smoke test's size: seconds
SHIPPED_CRON_PERIOD_S = 20  # SCHEDD_CRON_HPCPULL_PERIOD in condor_config.d/50-hpcpull.conf


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=1000, help="routed jobs (default 1000)")
    parser.add_argument("--workers", type=int, default=4, help="hooks run at once (default 4)")
    parser.add_argument("--max-age", type=int, default=900, help="HPCPULL_STATUS_MAX_AGE for the run (s)")
    add_common_arguments(parser)


def _counts(calls: list[SlurmCall]) -> Counter:
    return Counter(call.kind for call in calls)


def _period(gateway: Gateway, workers: int, with_poller: bool) -> tuple[list[SlurmCall], float, dict[str, int]]:
    """One polling period; returns the Slurm calls made, its duration, and who made them."""
    router = gateway.router
    before_calls, before_spawned = len(gateway.calls()), len(router.spawned)
    if not with_poller:
        for snapshot in gateway.status_dir.glob("*-status*.json"):
            snapshot.unlink()  # as if no poller had ever run: the first UPDATE must ask
    start = time.monotonic()
    if with_poller:
        poll = router.schedd_cron()
        if poll.exit_code != 0:
            raise RuntimeError(f"the poller failed: {poll.stderr.strip()}")
    routed = [r for r in router.routed.values() if r.state == "submitted"]
    pmap(router.update_one, routed, workers)
    elapsed = time.monotonic() - start
    calls = gateway.calls()[before_calls:]
    who = {s.run.pid: s.hook for s in router.spawned[before_spawned:]}
    by = Counter(f"{who.get(c.caller, '?')}:{c.kind}" for c in calls)
    return calls, elapsed, dict(by)


def run(args: argparse.Namespace) -> list[Result]:
    with workspace(args.keep) as work, slurm(args.slurm_conf) as slurm_env:
        gateway = make_gateway(work, slurm_env, HPCPULL_STATUS_MAX_AGE=str(args.max_age))
        router = gateway.router
        try:
            start = time.monotonic()
            sources = [router.submit(fixture_job(work / "submit" / str(i), 3600)) for i in range(args.jobs)]
            routed = pmap(router.translate_one, sources, args.workers)
            translated = time.monotonic() - start
            pmap(router.update_one, routed, args.workers)  # first UPDATE: sbatch
            submitted = time.monotonic() - start - translated
            batch_ids = router.batch_ids()
            setup = _counts(gateway.calls())
            with_calls, with_s, with_by = _period(gateway, args.workers, with_poller=True)
            without_calls, without_s, without_by = _period(gateway, args.workers, with_poller=False)
        finally:
            cancel_batch_jobs(slurm_env, router.batch_ids())
    with_n, without_n = _counts(with_calls), _counts(without_calls)
    updates = [s.run.wall_s for s in router.spawned_by("update")]
    result = Result(
        NAME, with_n["status"], without_n["status"], "status commands",
        target="1 status + <=1 accounting per period",
        met=with_n["status"] <= 1 and with_n["accounting"] <= 1,
    )
    rounds = math.ceil(with_s / SHIPPED_CRON_PERIOD_S)
    result.details += [
        f"{len(routed)} jobs routed ({len(batch_ids)} submitted to Slurm): TRANSLATE {translated:.0f} s, "
        f"first UPDATE {submitted:.0f} s with {args.workers} hooks at once; setup made "
        f"{setup['submit']} sbatch, {setup['status']} status commands",
        f"with the poller: {with_n['status']} status, {with_n['accounting']} accounting, "
        f"{with_n['config']} config (scontrol show config, hourly) commands in a period of "
        f"{with_s:.0f} s; by caller: {_by(with_by)}",
        f"without the poller (hooks share the per-user cache): {without_n['status']} status, "
        f"{without_n['accounting']} accounting commands in {without_s:.0f} s; by caller: {_by(without_by)}",
        f"a per-job status design (one query per UPDATE, as BLAHP) would make {len(routed)} per period",
        "all hooks here run as one user; with U users and no poller the per-user caches make U queries",
        f"UPDATE wall time over all rounds: mean {1000 * sum(updates) / max(1, len(updates)):.0f} ms "
        f"for {len(updates)} runs; one round of {len(routed)} UPDATEs took {with_s:.0f} s here, "
        f"i.e. {rounds} shipped cron period(s) of {SHIPPED_CRON_PERIOD_S} s: the schedd's poller "
        f"would make ~{rounds} squeue in that time (still independent of the job count)",
    ]
    return [result]


def _by(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.status_calls", description=__doc__.split("\n")[0])
    add_arguments(parser)
    report(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
