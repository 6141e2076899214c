"""What one UPDATE hook start costs the real condor_job_router itself, and how many routed
jobs it holds at a given polling period and HPCPULL_UPDATE_INTERVAL.

hpcpull's steady-state UPDATE is at the floor of the hook model (bench.real_router), so a
gateway's size is set by what the router spends to start each hook: DaemonCore registers
every hook with condor_procd, which takes a snapshot of /proc for each registration.  Here
every hook is a no-op (``/bin/sh`` that reads its input; TRANSLATE echoes the job), so
only the router's part is measured: ``--jobs`` jobs are routed ``--chunk`` at a time, and
over ``--window`` seconds the CPU of the router's hooks, of the router and of its procd
is read from /proc per UPDATE start.  With ``--update-interval`` the jobs carry the
HookKeyword that hpcpull's TRANSLATE gives them (hpcpull.router.cadence).

Printed ratio: the gateway's CPU per UPDATE start (hook + router + procd) against the
hook's own: what the router adds to the floor.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Result, number, report  # noqa: E402
from bench.real_router import CpuSplit, LogCounter, oldest_hook  # noqa: E402
from hpcpull.router.cadence import Cadence, window_for  # noqa: E402
from hpcpull.testing.personal_pool import (  # noqa: E402
    PersonalPool,
    find_release,
    unavailable_reason,
    wait_until,
    world_readable_dir,
)

NAME = "router-capacity"
QUICK = ["--jobs", "1000", "--chunk", "250", "--update-interval", "300", "--window", "120"]
TINY = ["--jobs", "20", "--chunk", "20", "--polling", "5", "--update-interval", "20", "--window", "15"]
KEYWORD, RESTING = "NOOP", "NOOP_RESTING"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=3000, help="routed jobs (default 3000)")
    parser.add_argument("--chunk", type=int, default=250, help="jobs per condor_submit, each routed before "
                        "the next (default 250)")
    parser.add_argument("--polling", type=int, default=10, help="JOB_ROUTER_POLLING_PERIOD (default 10)")
    parser.add_argument("--update-interval", type=int, default=300,
                        help="HPCPULL_UPDATE_INTERVAL (default 300; 0: an UPDATE at every poll)")
    parser.add_argument("--window", type=float, default=180, help="seconds measured (default 180)")
    parser.add_argument("--slurm-conf", default=None, help="ignored: no batch system is involved")


def router_config(hooks: Path, polling: int) -> str:
    return f"""\
DAEMON_LIST = $(DAEMON_LIST) JOB_ROUTER
JOB_ROUTER_POLLING_PERIOD = {polling}
JOB_ROUTER_ROUTE_NAMES = Noop
JOB_ROUTER_ROUTE_Noop @=jrt
  REQUIREMENTS WantHpc =?= true
  UNIVERSE VANILLA
  SET Requirements false
  MaxJobs = 100000
  MaxIdleJobs = 100000
@jrt
JOB_ROUTER_HOOK_KEYWORD = {KEYWORD}
{KEYWORD}_HOOK_TRANSLATE_JOB = {hooks}/translate
{KEYWORD}_HOOK_UPDATE_JOB_INFO = {hooks}/update
{KEYWORD}_HOOK_JOB_FINALIZE = {hooks}/noop
{KEYWORD}_HOOK_JOB_CLEANUP = {hooks}/noop
{RESTING}_HOOK_TRANSLATE_JOB = {hooks}/translate
{RESTING}_HOOK_JOB_FINALIZE = {hooks}/noop
{RESTING}_HOOK_JOB_CLEANUP = {hooks}/noop
"""


def write_hooks(hooks: Path) -> None:
    hooks.mkdir(mode=0o755)
    (hooks / "translate").write_text("#!/bin/sh\n# the routed copy is the job itself\nsed '1,/^------$/d'\n")
    (hooks / "update").write_text("#!/bin/sh\ncat >/dev/null\n")
    (hooks / "noop").write_text("#!/bin/sh\ncat >/dev/null\n")
    for hook in hooks.iterdir():
        hook.chmod(0o755)


def submit_text(first: int, count: int, cadence: Optional[Cadence]) -> str:
    head = "executable = /bin/sleep\narguments = 100000\n+WantHpc = true\n"
    if cadence is None:
        return head + f"queue {count}\n"
    # hpcpull's TRANSLATE gives each copy this HookKeyword, and the router copies it onto
    # the job; here the job carries it from the start (the same offsets, by a job number),
    # with a batch job id (a job without one is updated at every poll).
    jobs = (f"+HookKeyword = {cadence.hook_keyword(str(first + i))}\nqueue\n" for i in range(count))
    return head + '+HpcPullBatchJobId = "none"\n' + "".join(jobs)


def run(args: argparse.Namespace) -> list[Result]:
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"{NAME}: no real HTCondor here: {reason}")
    cadence = None
    if args.update_interval > window_for(args.polling):
        cadence = Cadence(KEYWORD, RESTING, args.update_interval, window_for(args.polling))
    base = world_readable_dir("hpcpull-bench-capacity-")
    write_hooks(base / "hooks")
    pool = PersonalPool(base=base, release=find_release(), bin_dir=base / "hooks", local_config="",
                        routes_config="", name="capacity", with_startd=False, polling_period=args.polling,
                        install_hpcpull_config=False,
                        config_files={"50-router.conf": router_config(base / "hooks", args.polling)})
    pool.start()
    try:
        directory = pool.user_dir("jobs")
        started, routed = time.time(), 0
        while routed < args.jobs:
            count = min(args.chunk, args.jobs - routed)
            pool.submit(directory, submit_text(routed, count, cadence))
            routed += count
            wait_until(lambda expected=routed: len(pool.q("RoutedFromJobId =!= undefined", ["ClusterId"])) >= expected,
                       120 + 2 * count, f"{routed} routed copies")
            print(f"{NAME}: {routed} of {args.jobs} jobs routed", file=sys.stderr, flush=True)
        routing_s = time.time() - started
        time.sleep(2 * max(args.polling, args.update_interval) + 5)  # past the routing
        router = pool.daemon_pid("condor_job_router")
        counter = LogCounter(pool.router_log)
        counter()
        cpu = CpuSplit(pool)
        oldest, t0 = 0, time.time()
        while time.time() - t0 < args.window:
            oldest = max(oldest, oldest_hook(router))
            time.sleep(2)
        starts = counter()
        used = cpu.used()
        seconds, hooks, router_s, procd_s = used["seconds"], used["hooks"], used["router"], used["procd"]
    finally:
        subprocess.run(["condor_rm", "-all"], env=pool.env(), capture_output=True, timeout=300)
        pool.stop()
        shutil.rmtree(base, ignore_errors=True)
    per = max(starts, 1)
    total = hooks + router_s + procd_s
    interval = f"{args.update_interval} s" if cadence else "none (every poll)"
    return [Result(
        NAME, total / per * 1000, hooks / per * 1000, "ms/UPDATE start", "what the router adds to each hook",
        details=[
            f"{args.jobs} routed jobs (routed {args.chunk} at a time in {number(routing_s)} s), polling every "
            f"{args.polling} s, HPCPULL_UPDATE_INTERVAL {interval}; no-op hooks",
            f"{starts} UPDATE starts in {number(seconds)} s = {number(starts / seconds)}/s; gateway CPU "
            f"{number(total / seconds)} cores: hooks {number(hooks / seconds)}, condor_job_router "
            f"{number(router_s / seconds)}, condor_procd {number(procd_s / seconds)}",
            f"per UPDATE start: hook {number(hooks / per * 1000)} ms, router {number(router_s / per * 1000)} ms, "
            f"procd {number(procd_s / per * 1000)} ms",
            f"the oldest hook seen running: {oldest} s (a hook waits for the router to write its stdin)",
        ],
    )]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    report(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
