"""Benchmarks on the real condor_job_router: the steady-state UPDATE's cost, routing throughput.

Both start a personal HTCondor pool (hpcpull.testing.personal_pool: the stock job router,
hpcpull installed into a venv as the README says) and a private Slurm, and route ``--jobs``
jobs submitted with condor_submit by an ordinary user.

update-cost
    The jobs sleep in Slurm (16 pretend CPUs: most wait, some run); nothing changes.  In
    alternating windows of ``--window`` seconds the router's UPDATE hook is hpcpull's
    (bin/hpcpull-update) or a no-op ``/bin/sh`` hook that reads stdin and prints nothing
    (the floor of the one-process-per-job-per-poll hook model), swapped in place on the same
    router and jobs.  Measured: the router's reaped children's CPU (/proc/<pid>/stat cutime +
    cstime) per UPDATE run (the router log's "HOOK_UPDATE_JOB_INFO ... invoked" lines), and
    the poller's CPU per run (the schedd's children: the schedd cron job).  Target: <= 2x.
routing
    The time from one condor_submit of ``--jobs`` jobs until all of them have a batch job in
    Slurm, against a bare ``sbatch`` loop of the very scripts hpcpull rendered, in the same
    run.  Target: >= 10 jobs/s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Result, number, report, slurm  # noqa: E402
from hpcpull.testing.personal_pool import (  # noqa: E402
    PersonalPool,
    find_release,
    install_hpcpull,
    unavailable_reason,
    wait_until,
    world_readable_dir,
)

NAME = "real-router"
QUICK = ["--jobs", "50", "--window", "20", "--rounds", "2"]
TINY = ["--jobs", "5", "--window", "15", "--rounds", "1"]
NOOP_HOOK = "#!/bin/sh\n# a no-op UPDATE_JOB_INFO hook: reads the routed ad, prints nothing\ncat >/dev/null\n"
TICK = os.sysconf("SC_CLK_TCK")
INVOKED = re.compile(rb"HOOK_UPDATE_JOB_INFO \(.*\) invoked")

ROUTES = """\
JOB_ROUTER_ROUTE_NAMES = Bench
JOB_ROUTER_ROUTE_Bench @=jrt
  REQUIREMENTS WantHpc =?= true
  UNIVERSE VANILLA
  SET Requirements false
  MaxJobs = 100000
  MaxIdleJobs = 100000
@jrt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=100, help="routed jobs (default 100)")
    parser.add_argument("--polling", type=int, default=5, help="JOB_ROUTER_POLLING_PERIOD (default 5)")
    parser.add_argument("--window", type=float, default=30, help="seconds per measured window (default 30)")
    parser.add_argument("--rounds", type=int, default=2, help="hpcpull/no-op window pairs (default 2)")
    parser.add_argument("--poller-period", type=int, default=20, help="SCHEDD_CRON_HPCPULL_PERIOD (default 20)")
    parser.add_argument("--update-interval", type=int, default=0,
                        help="HPCPULL_UPDATE_INTERVAL (default 0: an UPDATE at every poll)")
    parser.add_argument("--chunk", type=int, default=0,
                        help="update-cost: submit the jobs N at a time, each N routed before the next "
                             "(default: all at once; the router's own burst limits are in the README)")
    parser.add_argument("--skip-routing", action="store_true", help="measure only the UPDATE cost")
    parser.add_argument("--skip-update", action="store_true", help="measure only routing throughput")
    parser.add_argument("--slurm-conf", default=None, help="use this Slurm instead of a private one")
    parser.add_argument("--keep", action="store_true", help="keep the pool's directory")


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: field 3 (state) is element 0."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def children_cpu(pid: int) -> float:
    """CPU seconds of the reaped children of ``pid`` (cutime + cstime)."""
    fields = _stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / TICK


def own_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` itself (utime + stime)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as handle:
        ticks = [int(word) for word in handle.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


class CpuSplit:
    """Where the gateway's CPU went since construction: the router's hooks (its reaped
    children, with the batch commands they ran), the router, its condor_procd, the schedd and
    the schedd cron poller (the schedd's reaped children), and the whole machine (Slurm's
    daemons are the bulk of the rest)."""

    def __init__(self, pool: PersonalPool) -> None:
        self.pids = {name: pool.daemon_pid(name) for name in ("condor_job_router", "condor_procd", "condor_schedd")}
        self.start = self._sample()
        self.started = time.time()

    def _sample(self) -> dict[str, float]:
        router, schedd = self.pids["condor_job_router"], self.pids["condor_schedd"]
        return {"hooks": children_cpu(router), "router": own_cpu(router),
                "procd": own_cpu(self.pids["condor_procd"]), "schedd": own_cpu(schedd),
                "poller": children_cpu(schedd), "machine": machine_busy()}

    def used(self) -> dict[str, float]:
        """CPU seconds of each part since construction, and "seconds": the wall time."""
        now = self._sample()
        return {**{name: now[name] - self.start[name] for name in now}, "seconds": time.time() - self.started}

    def lines(self, jobs: int) -> str:
        used = self.used()
        seconds = used["seconds"]
        parts = ", ".join(f"{name} {number(used[name] / seconds)} ({number(used[name] / jobs * 1000)} ms/job)"
                          for name in ("hooks", "router", "procd", "schedd"))
        return (f"cores busy while routing: {parts}; the whole machine {number(used['machine'] / seconds)} "
                f"({number(used['machine'] / jobs * 1000)} ms/job)")


def oldest_hook(router: int) -> int:
    """Seconds the longest-running of the router's hook processes has been running."""
    out = subprocess.run(["ps", "--ppid", str(router), "-o", "etimes="], capture_output=True, text=True).stdout
    return max((int(word) for word in out.split()), default=0)


class LogCounter:
    """Counts new UPDATE invocations in the router log since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def __call__(self) -> int:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        return len(INVOKED.findall(data))


def start_gateway(args: argparse.Namespace, slurm_env: dict[str, str]) -> tuple[PersonalPool, Path]:
    base = world_readable_dir("hpcpull-bench-pool-")
    bin_dir = install_hpcpull(base / "venv")
    scratch, status, log = base / "scratch", base / "status", base / "hpcpull-log"
    for path in (scratch, status, log):
        path.mkdir()
        path.chmod(0o1777)
    local = "".join(f"{k} = {v}\n" for k, v in {
        "HPCPULL_SCRATCH_ROOT": scratch, "HPCPULL_STATUS_CACHE_DIR": status, "HPCPULL_LOG": log / "HpcPullLog",
        "HPCPULL_LRMS_ENVIRONMENT": f"SLURM_CONF={slurm_env['SLURM_CONF']}", "HPCPULL_PARTITION": "debug",
        "HPCPULL_STATUS_MAX_AGE": max(30, 2 * args.poller_period),
        "SCHEDD_CRON_HPCPULL_PERIOD": f"{args.poller_period}s",
        "HPCPULL_UPDATE_INTERVAL": args.update_interval,
    }.items())
    pool = PersonalPool(base=base, release=find_release(), bin_dir=bin_dir, local_config=local,
                        routes_config=ROUTES, name="bench", with_startd=False, polling_period=args.polling)
    pool.start()
    return pool, base


def submit(pool: PersonalPool, jobs: int, name: str, extra: str = "") -> int:
    directory = pool.user_dir(name)
    return pool.submit(directory, f"""\
executable = /bin/sleep
arguments = 100000
log = job.log
+WantHpc = true
{extra}queue {jobs}
""")


def router_alone(pool: PersonalPool, jobs: int) -> float:
    """Seconds the router needs to route ``jobs`` jobs with no hooks at all: the jobs name a
    hook keyword with no hooks configured (the router picks hooks by the source job's
    HookKeyword first, JobRouterHookMgr::getHookKeyword), so it only claims each job and
    submits its copy.  No hook can route faster than this."""
    started = time.time()
    cluster = submit(pool, jobs, "router-alone", '+HookKeyword = "NOHOOKS"\n')
    wait_until(lambda: len(pool.q(f'RoutedFromJobId =!= undefined && regexp("^{cluster}[.]", RoutedFromJobId)',
                                  ["ClusterId"])) >= jobs,
               60 + jobs * 2.0, f"{jobs} routed copies without hooks")
    took = time.time() - started
    subprocess.run(["condor_rm", "-all"], env=pool.env(), capture_output=True, timeout=120)
    pool.wait_until_gone("true", 300)
    return took


OURS = "hpcpull-Bench-"  # batch job names of this benchmark's route (hpcpull-<route>-<job>-<token>)


def batch_jobs(slurm_env: dict[str, str], prefix: str = OURS) -> list[str]:
    """This benchmark's batch jobs (a shared Slurm may hold other gateways' jobs)."""
    out = subprocess.run(["squeue", "-h", "-a", "-o", "%i %j"], env=slurm_env, capture_output=True,
                         text=True, timeout=60).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1:2] and line.split()[1].startswith(prefix)]


def routing(pool: PersonalPool, slurm_env: dict[str, str], jobs: int, update_interval: int) -> Result:
    """condor_submit of ``jobs`` jobs until all are in Slurm, vs sbatch of the same scripts."""
    alone_s = router_alone(pool, jobs)
    started = time.time()
    cpu = CpuSplit(pool)
    cluster = submit(pool, jobs, "routing")
    wait_until(lambda: len(batch_jobs(slurm_env, f"{OURS}{cluster}.")) >= jobs, 60 + jobs * 2.0, f"{jobs} batch jobs")
    hook_s = time.time() - started
    cpu_line = cpu.lines(jobs)
    scripts = sorted(pool.base.glob(f"scratch/*/{cluster}/*/.hpcpull/job.sh"))
    env = {"PATH": "/usr/bin:/bin", "SLURM_CONF": slurm_env["SLURM_CONF"], "LANG": "C"}
    # One shell of the job owner's runs the loop: sbatch of each script, as the hook does it.
    loop = pool.write_user_file(pool.home / "bare-sbatch.sh", "".join(
        f"sbatch --parsable --job-name=bench-bare-{i} --chdir={script.parent.parent} --output=/dev/null {script}\n"
        for i, script in enumerate(scripts)))
    started = time.time()
    out = subprocess.run(["/usr/sbin/runuser", "-u", pool.user, "--", "/bin/sh", str(loop)],
                         env=env, capture_output=True, text=True, timeout=60 + 5 * jobs)
    bare = [line.split(";")[0] for line in out.stdout.split()]
    bare_s = time.time() - started
    subprocess.run(["scancel", *[b for b in bare if b]], env=slurm_env, capture_output=True, timeout=120)
    rate, bare_rate = jobs / hook_s, len(scripts) / bare_s if bare_s else float("inf")
    return Result(
        "real-router-routing", rate, bare_rate, "jobs/s", ">= 10 jobs/s",
        met=rate >= 10,
        details=[f"{jobs} jobs condor_submit -> all in Slurm in {number(hook_s)} s; the bare sbatch loop of "
                 f"the same {len(scripts)} scripts (run as the job owner, one at a time) took {number(bare_s)} s",
                 f"the router alone (the same jobs, no hooks: claim and submit the copy) took "
                 f"{number(alone_s)} s = {number(jobs / alone_s)} jobs/s, the ceiling for any hook",
                 cpu_line,
                 f"router polling period {pool.polling_period} s, HPCPULL_UPDATE_INTERVAL {update_interval} s"],
    )


def update_cost(pool: PersonalPool, slurm_env: dict[str, str], args: argparse.Namespace) -> Result:
    chunk = args.chunk if 0 < args.chunk < args.jobs else args.jobs
    clusters, submitted = [], 0
    while submitted < args.jobs:
        size = min(chunk, args.jobs - submitted)
        clusters.append(submit(pool, size, "steady"))
        submitted += size

        def steady(expected: int = submitted) -> bool:
            copies = pool.q('RoutedFromJobId =!= undefined && HpcPullFastIndex =!= undefined', ["ClusterId"])
            return len(copies) >= expected
        wait_until(steady, 120 + 2 * args.polling + size * 2.0, f"{submitted} routed copies with the status index")
        print(f"{NAME}: {submitted} of {args.jobs} jobs routed", file=sys.stderr, flush=True)
    cadence = max(args.polling, args.update_interval)  # how far apart one job's UPDATEs are
    time.sleep(cadence + args.polling)  # every job's first UPDATEs after routing are past
    router = pool.daemon_pid("condor_job_router")
    hook = pool.bin_dir / "hpcpull-update"
    real, noop = hook.with_name("hpcpull-update.real"), hook.with_name("hpcpull-update.noop")
    shutil.copy2(hook, real)
    noop.write_text(NOOP_HOOK)
    noop.chmod(0o755)
    counter = LogCounter(pool.router_log)
    parts = ("hooks", "router", "procd", "schedd", "poller")  # the gateway's CPU, part by part
    spent = {side: dict.fromkeys(parts, 0.0) for side in ("hpcpull", "noop")}
    runs = {"hpcpull": 0, "noop": 0}
    oldest = 0
    try:
        for _ in range(args.rounds):
            for side in ("hpcpull", "noop"):
                shutil.copy2(real if side == "hpcpull" else noop, hook.with_name(".hpcpull-update.new"))
                os.replace(hook.with_name(".hpcpull-update.new"), hook)
                time.sleep(args.polling + 1)  # hooks started before the swap finish
                cpu = CpuSplit(pool)
                counter()
                until = time.time() + args.window
                while time.time() < until:
                    oldest = max(oldest, oldest_hook(router))
                    time.sleep(min(2.0, max(0.0, until - time.time())))
                used = cpu.used()
                for part in parts:
                    spent[side][part] += used[part]
                runs[side] += counter()
    finally:
        os.replace(real, hook)
        noop.unlink(missing_ok=True)
    latency = change_latency(pool, slurm_env, args)
    (h_cpu, h_runs), (n_cpu, n_runs) = [(spent[side]["hooks"], runs[side]) for side in ("hpcpull", "noop")]
    router_cpu, procd_cpu, poller_cpu = (spent["hpcpull"][part] + spent["noop"][part]
                                         for part in ("router", "procd", "poller"))
    gateway = {side: sum(spent[side].values()) for side in spent}
    per_h, per_n = h_cpu / max(h_runs, 1), n_cpu / max(n_runs, 1)
    seconds = 2 * args.rounds * args.window
    polls = poller_cpu / (seconds / args.poller_period)
    left = pool.q(" || ".join(f"ClusterId == {c}" for c in clusters), ["JobStatus"])
    return Result(
        "real-router-update-cpu", per_h * 1000, per_n * 1000, "ms/run", "<= 2x the no-op hook",
        met=per_h <= 2 * per_n,
        details=[
            f"{args.jobs} routed jobs (submitted {chunk} at a time), polling every {args.polling} s, "
            f"HPCPULL_UPDATE_INTERVAL {args.update_interval} s, "
            f"{args.rounds} x {number(args.window)} s per side, swapped in place on the same router",
            f"hpcpull-update: {h_runs} runs, {number(h_cpu)} s CPU ({number(h_cpu / (seconds / 2))} cores); "
            f"no-op: {n_runs} runs, {number(n_cpu)} s CPU ({number(n_cpu / (seconds / 2))} cores)",
            f"poller (schedd cron, every {args.poller_period} s): {number(polls * 1000)} ms CPU per run "
            f"({number(poller_cpu / seconds)} cores); condor_job_router itself: {number(router_cpu / seconds)} cores, "
            f"its condor_procd {number(procd_cpu / seconds)} cores; the oldest hook seen running: {oldest} s "
            "(a hook waits for the router to write its stdin)",
            f"the whole gateway (hooks, router, procd, schedd, poller): {number(gateway['hpcpull'] / (seconds / 2))} "
            f"cores with hpcpull's UPDATE, {number(gateway['noop'] / (seconds / 2))} with the no-op",
            f"jobs still queued: {len(left)} of {args.jobs}",
            f"waiting batch jobs that started reached condor_q as running after: {latency} (bound: "
            + (f"poller {args.poller_period} s + two polls of {args.polling} s: the poller wakes their UPDATE)"
               if args.update_interval > args.polling
               else f"polling {args.polling} s + poller {args.poller_period} s)"),
        ],
    )


def change_latency(pool: PersonalPool, slurm_env: dict[str, str], args: argparse.Namespace,
                   samples: int = 5) -> str:
    """Seconds from a batch job's start in Slurm until condor_q shows its job running, for up
    to ``samples`` jobs: as many running batch jobs are cancelled, so that waiting ones start."""
    def states() -> dict[str, str]:
        out = subprocess.run(["squeue", "-h", "-a", "-o", "%i %T %j"], env=slurm_env, capture_output=True,
                             text=True, timeout=60).stdout
        rows = (line.split() for line in out.splitlines())
        return {f[0]: f[1] for f in rows if f[2:] and f[2].startswith(OURS)}
    before = states()
    running = [i for i, state in before.items() if state == "RUNNING"][:samples]
    waiting = {i for i, state in before.items() if state == "PENDING"}
    if not running or not waiting:
        return "n/a (no waiting batch job)"
    subprocess.run(["scancel", *running], env=slurm_env, capture_output=True, timeout=60)
    started: dict[str, float] = {}
    shown: dict[str, float] = {}
    bound = 3 * (max(args.polling, args.update_interval) + args.poller_period) + 60
    until = time.time() + bound
    while time.time() < until and (len(started) < len(running) or len(shown) < len(started)):
        now = time.time()
        for job_id, state in states().items():
            if job_id in waiting and state == "RUNNING" and job_id not in started:
                started[job_id] = now
        if started:
            constraint = " || ".join(f'HpcPullBatchJobId == "{i}"' for i in started if i not in shown)
            for copy in (pool.q(f"RoutedFromJobId =!= undefined && ({constraint})", ["HpcPullBatchJobId", "JobStatus"])
                         if constraint else []):
                if copy.get("JobStatus") == 2:
                    shown[copy["HpcPullBatchJobId"]] = now
        time.sleep(0.5)
    waits = sorted(shown[i] - started[i] for i in shown)
    if not waits:
        return f"n/a (none of {len(started)} started batch jobs shown within {bound} s)"
    late = len(started) - len(waits)
    return (f"median {number(waits[len(waits) // 2])} s, at most {number(waits[-1])} s "
            f"({len(waits)} jobs" + (f"; {late} not shown within {bound} s" if late else "") + ")")


def run(args: argparse.Namespace) -> list[Result]:
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"{NAME}: no real HTCondor here: {reason}")
    results = []
    with slurm(args.slurm_conf) as slurm_env:
        pool, base = start_gateway(args, slurm_env)
        try:
            if not args.skip_routing:
                results.append(routing(pool, slurm_env, args.jobs, args.update_interval))
                report(results[-1:], sys.stderr)  # now: taking thousands of jobs down takes long
                subprocess.run(["condor_rm", "-all"], env=pool.env(), capture_output=True, timeout=120)
                pool.wait_until_gone("true", 300)
                ids = batch_jobs(slurm_env)
                if ids:
                    subprocess.run(["scancel", *ids], env=slurm_env, capture_output=True, timeout=120)
            if not args.skip_update:
                results.append(update_cost(pool, slurm_env, args))
                report(results[-1:], sys.stderr)
        finally:
            subprocess.run(["condor_rm", "-all"], env=pool.env(), capture_output=True, timeout=120)
            ids = batch_jobs(slurm_env)
            if ids:
                subprocess.run(["scancel", *ids], env=slurm_env, capture_output=True, timeout=120)
            pool.stop()
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    report(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
