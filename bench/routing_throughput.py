"""Benchmark 3: jobs per second routed into Slurm through the hooks vs a bare ``sbatch`` loop.

hpcpull's way: TRANSLATE (stage the sandbox, render job.sh) then the first UPDATE (sbatch,
recorded exactly once), each a hook process started by the router simulation.  The
baseline: ``sbatch`` of the very scripts those TRANSLATEs rendered, with the same options
(--parsable, --job-name, --chdir, --output), the same environment, the same concurrency.
The two alternate in chunks (``--chunk`` jobs of one, then the same jobs' scripts by the
other) so both see the same queue length and machine state.  Target: ratio >= 0.8.

Jobs sleep (``--sleep``) and are cancelled at the end; both sides' jobs queue alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    Result,
    add_common_arguments,
    cancel_batch_jobs,
    fixture_job,
    make_gateway,
    pmap,
    report,
    slurm,
    spawn,
    workspace,
)
from hpcpull.state.jobdir import BATCH_SCRIPT, CONTROL_DIR  # noqa: E402

NAME = "routing-throughput"
QUICK = ["--jobs", "60"]
TINY = ["--jobs", "4", "--chunk", "2"]  # the smoke test's size: seconds
TARGET = 0.8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=500, help="jobs routed by each side (default 500)")
    parser.add_argument("--chunk", type=int, default=25, help="jobs per alternation (default 25)")
    parser.add_argument("--workers", type=int, default=1, help="jobs in flight at once, both sides (default 1)")
    parser.add_argument("--sleep", type=int, default=3600, help="the jobs' payload: sleep seconds")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> list[Result]:
    with workspace(args.keep) as work, slurm(args.slurm_conf) as slurm_env:
        gateway = make_gateway(work, slurm_env)
        router = gateway.router
        # What the hooks give batch commands (hpcpull.config.lrms_command_environment): PATH
        # (with the counting shims), C locale, the account names, HPCPULL_LRMS_ENVIRONMENT.
        env = {"PATH": gateway.lrms_env["PATH"], "LANG": "C", "LC_ALL": "C", "SLURM_CONF": slurm_env["SLURM_CONF"]}
        env.update({k: v for k, v in router.env.items() if k in ("USER", "LOGNAME", "TZ")})
        hook_s = bare_s = 0.0
        bare_ids: list[str] = []
        errors: list[str] = []
        routed_all = []

        def route(job_id: str):
            routed = router.translate_one(job_id)
            router.update_one(routed)
            return routed

        def bare_sbatch(item: tuple[int, Path]):
            i, job_dir = item
            return spawn(["sbatch", "--parsable", f"--job-name=bench-bare-{i}", f"--chdir={job_dir}",
                          f"--output={job_dir / CONTROL_DIR / 'bare.out'}", str(job_dir / CONTROL_DIR / BATCH_SCRIPT)],
                         b"", env)

        try:
            done = 0
            while done < args.jobs:
                size = min(args.chunk, args.jobs - done)
                sources = [router.submit(fixture_job(work / "submit" / str(done + k), args.sleep))
                           for k in range(size)]
                start = time.perf_counter()
                routed = pmap(route, sources, args.workers)
                hook_s += time.perf_counter() - start
                routed_all += routed
                dirs = [(done + k, Path(str(router.jobs[r.copy_id]["HpcPullJobDir"])))
                        for k, r in enumerate(routed) if r.copy_id in router.jobs]
                start = time.perf_counter()
                runs = pmap(bare_sbatch, dirs, args.workers)
                bare_s += time.perf_counter() - start
                for run_ in runs:
                    if run_.returncode == 0:
                        bare_ids.append(run_.stdout.strip().split(";")[0])
                    else:
                        errors.append(f"sbatch: {run_.stderr.strip()[:200]}")
                done += size
            hook_ids = router.batch_ids()
            calls = gateway.calls()
        finally:
            cancel_batch_jobs(slurm_env, router.batch_ids() + bare_ids)
    translate = [s.run.wall_s for s in router.spawned_by("translate")]
    update = [s.run.wall_s for s in router.spawned_by("update")]
    hook_rate, bare_rate = len(hook_ids) / hook_s, len(bare_ids) / bare_s
    result = Result(NAME, hook_rate, bare_rate, "jobs/s", target=f">= {TARGET:g}",
                    met=hook_rate >= TARGET * bare_rate)
    hook_sbatch = sum(1 for c in calls if c.program == "sbatch" and "--job-name=hpcpull-" in c.args)
    result.details += [
        f"hooks: {len(hook_ids)} of {args.jobs} jobs in Slurm in {hook_s:.1f} s; mean per job TRANSLATE "
        f"{1000 * sum(translate) / max(1, len(translate)):.0f} ms + first UPDATE "
        f"{1000 * sum(update) / max(1, len(update)):.0f} ms",
        f"bare sbatch: {len(bare_ids)} of {len(routed_all)} jobs in {bare_s:.1f} s; mean "
        f"{1000 * bare_s / max(1, len(bare_ids)):.0f} ms per sbatch",
        f"the hooks ran {hook_sbatch} sbatch and "
        f"{sum(1 for c in calls if c.kind == 'status')} status commands (their shared snapshot); "
        f"{args.workers} job(s) in flight at once on each side, alternating every {args.chunk} jobs",
    ]
    if errors:
        result.details.append(f"{len(errors)} bare sbatch failed, e.g. {errors[0]}")
    failed = [c for c in router.calls if c.exit_code != 0 or "refused" in c.stderr]
    if failed:
        first = failed[0]
        result.details.append(f"{len(failed)} hook call(s) failed, e.g. {first.hook}: {first.stderr.strip()[:200]}")
    return [result]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing_throughput", description=__doc__.split("\n")[0])
    add_arguments(parser)
    report(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
