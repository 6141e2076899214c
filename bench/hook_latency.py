"""Benchmark 2: wall time of the UPDATE and TRANSLATE hook processes vs a bare Python start.

The router forks one hook process per job and call, so a hook's cost is mostly the start
of a Python process; the baseline is ``python3 -c pass`` with the hooks' own interpreter
and environment.  The three are run interleaved (the order rotating every round) in the
same run, each as the router runs it: the installed executable, the router's stdin on
a file, stdout/stderr collected.

* UPDATE gets the routed copy of a job that is queued in Slurm, exactly as the router
  prints it, with the status snapshot fresh (the poller ran just before): a steady-state
  UPDATE, the one the router runs every polling period for every job.  Target p50 <= 2.5x.
* TRANSLATE gets a fresh source job each time (the source ad is the real router's
  tests/fixtures/router-stdin/translate.stdin adapted to this gateway): it stages the
  sandbox and renders the batch script; it does not submit.  Target p50 <= 4x.

When a target is missed, the import tree of that hook (python -X importtime) is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import sysconfig
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    ROUTE,
    Result,
    add_common_arguments,
    baseline_argv,
    cancel_batch_jobs,
    fixture_job,
    hook_executable,
    make_gateway,
    percentile,
    report,
    slurm,
    spawn,
    top_imports,
    workspace,
)
from hpcpull.router.classads import router_print  # noqa: E402

QUICK = ["--iterations", "15"]
TINY = ["--iterations", "3", "--warmup", "1"]  # the smoke test's size: seconds
TARGETS = {"update": 2.5, "translate": 4.0}
# Modules each hook has imported by the time it reads its stdin (hpcpull/router/ imports the
# rest lazily: htcondor2 for the configuration, render/sandbox/jinja2 in TRANSLATE).
IMPORTS = {"update": "hpcpull.router.update, htcondor2",
           "translate": "hpcpull.router.translate, htcondor2, hpcpull.script.render, hpcpull.staging.input_sandbox, "
                        "hpcpull.script.resources, hpcpull.node.launcher, hpcpull.state.eventlog"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, default=40, help="timed runs of each (default 40)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each first (default 2)")
    add_common_arguments(parser)


def _pth_imports() -> list[str]:
    """.pth files in site-packages that import something at every interpreter start."""
    found = []
    for key in ("purelib", "platlib"):
        for pth in sorted(Path(sysconfig.get_path(key)).glob("*.pth")):
            try:
                if any(line.startswith("import") for line in pth.read_text(errors="replace").splitlines()):
                    found.append(pth.name)
            except OSError:
                pass
    return sorted(set(found))


def run(args: argparse.Namespace) -> list[Result]:
    with workspace(args.keep) as work, slurm(args.slurm_conf) as slurm_env:
        gateway = make_gateway(work, slurm_env, HPCPULL_STATUS_MAX_AGE="3600")
        router = gateway.router
        try:
            # One job routed, submitted and seen by the poller: its copy is what UPDATE gets.
            source = router.submit(fixture_job(work / "submit" / "update", 3600))
            routed = router.translate_one(source)
            router.update_one(routed)  # sbatch
            poll = router.schedd_cron()
            if poll.exit_code != 0:
                raise RuntimeError(f"the poller failed: {poll.stderr.strip()}")
            router.update_one(routed)  # the copy now shows what Slurm says
            copy = router.jobs[routed.copy_id or ""]
            update_stdin = router_print(copy).encode()
            total = args.warmup + args.iterations
            translate_stdins: dict[str, list[bytes]] = {"translate": [], "nosite-translate": []}
            for i in range(total):
                for key, stdins in translate_stdins.items():
                    src = router.jobs[router.submit(fixture_job(work / "submit" / f"{key}{i}", 60))]
                    stdins.append((f'[ Name = "{ROUTE}"; TargetUniverse = 5 ]\n------\n' + router_print(src)).encode())
            python = baseline_argv("update")[0]
            update_exe, translate_exe = hook_executable("hpcpull-update"), hook_executable("hpcpull-translate")
            # The same without site.py and so without the .pth files some machines have in
            # site-packages (site-packages stays importable through PYTHONPATH).
            nosite = dict(router.env, PYTHONPATH=os.pathsep.join(
                [router.env.get("PYTHONPATH", ""), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))
            commands = {
                "baseline": (baseline_argv("update"), lambda i: b"", router.env),
                "update": ([str(update_exe)], lambda i: update_stdin, router.env),
                "translate": ([str(translate_exe)], lambda i: translate_stdins["translate"][i], router.env),
                # what the two import before doing anything: the rest is their own work
                "import-update": ([python, "-c", f"import {IMPORTS['update']}"], lambda i: b"", router.env),
                "import-translate": ([python, "-c", f"import {IMPORTS['translate']}"], lambda i: b"", router.env),
                "nosite-baseline": ([python, "-S", "-c", "pass"], lambda i: b"", nosite),
                "nosite-update": ([python, "-S", str(update_exe)], lambda i: update_stdin, nosite),
                "nosite-translate": ([python, "-S", str(translate_exe)],
                                     lambda i: translate_stdins["nosite-translate"][i], nosite),
            }
            names = list(commands)
            times: dict[str, list[float]] = {name: [] for name in names}
            failures: dict[str, str] = {}
            for i in range(total):
                turn = i % len(names)
                for name in names[turn:] + names[:turn]:  # rotate the order every round
                    argv, stdin, env = commands[name]
                    run_ = spawn(argv, stdin(i), env, router.workdir)
                    if run_.returncode != 0:
                        failures[name.split("-")[-1]] = f"{name}: {run_.stderr.strip()[-300:]}"
                    if i >= args.warmup:
                        times[name].append(run_.wall_s * 1000)
            update_out = spawn(commands["update"][0], update_stdin, router.env, router.workdir)
            import_trees = {}
            for hook in ("update", "translate"):
                ratio = statistics.median(times[hook]) / statistics.median(times["baseline"])
                if ratio > TARGETS[hook]:
                    stdin = update_stdin if hook == "update" else translate_stdins["translate"][-1]
                    import_trees[hook] = top_imports(hook_executable(f"hpcpull-{hook}"), [], stdin,
                                                     router.env, router.workdir)
        finally:
            cancel_batch_jobs(slurm_env, router.batch_ids())
    base = times["baseline"]
    results = []
    for hook in ("update", "translate"):
        measured = times[hook]
        result = Result(
            f"{hook}-latency", percentile(measured, 50), percentile(base, 50), "ms (p50)",
            target=f"<= {TARGETS[hook]:g}x", met=percentile(measured, 50) <= TARGETS[hook] * percentile(base, 50),
        )
        imports = percentile(times[f"import-{hook}"], 50)
        result.details.append(
            f"where it goes (p50): interpreter start {percentile(base, 50):.0f} ms, importing "
            f"{IMPORTS[hook]} {imports - percentile(base, 50):+.0f} ms, the hook's own work "
            f"{percentile(measured, 50) - imports:+.0f} ms (differences of medians: noisy on a busy machine)")
        result.details.append(
            f"p95 {percentile(measured, 95):.0f} ms vs {percentile(base, 95):.0f} ms = ratio "
            f"{percentile(measured, 95) / percentile(base, 95):.2f}; min {min(measured):.0f} vs {min(base):.0f} ms;"
            f" {len(measured)} runs each, interleaved")
        if hook == "update":
            result.details.append(
                f"steady-state UPDATE (fresh snapshot, job {copy.get('HpcPullBatchJobId')} queued): "
                f"prints {len(update_out.stdout.splitlines())} attribute line(s); executable "
                f"{hook_executable('hpcpull-update')}")
        else:
            result.details.append("TRANSLATE of a new job each run: stages its sandbox (the fixture job's "
                                  "executable, /bin/sh) and renders job.sh; no submit")
        if hook in failures:
            result.details.append(f"a run exited non-zero: {failures[hook]}")
        bare, bare_base = percentile(times[f"nosite-{hook}"], 50), percentile(times["nosite-baseline"], 50)
        result.details.append(
            f"without site.py (python -S, site-packages on PYTHONPATH), both sides: {bare:.0f} ms vs "
            f"{bare_base:.0f} ms = ratio {bare / bare_base:.2f}; .pth files in site-packages that import at "
            f"every start here: {', '.join(_pth_imports()) or 'none'} (they slow the hooks and the baseline alike)")
        result.details += import_trees.get(hook, [])
        results.append(result)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hook_latency", description=__doc__.split("\n")[0])
    add_arguments(parser)
    report(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
