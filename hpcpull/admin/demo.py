"""The demo: one ordinary HTCondor job through hpcpull into a real Slurm and back.

Run by scripts/demo.sh, which installs hpcpull as the README's Install section says (a
venv of the system python3 under /opt/hpcpull, world-readable) and starts a private Slurm
first, then ``python -m hpcpull.admin.demo --workdir DIR --bin-dir /opt/hpcpull/bin``.

Where an HTCondor can run (hpcpull.testing.personal_pool: HPCPULL_CONDOR_RELEASE, a
``condor_master`` on PATH, or the archive beside the checkout; as root), everything is
real: a personal pool on loopback with the stock condor_job_router, hpcpull's
condor_config.d files installed as the admin guide says, the job submitted with
``condor_submit`` by the ordinary user ``hpcuser``, its states read with ``condor_q`` as
they change.  The pool is stopped at the end by its master's pid, also on failure and
Ctrl-C.  Where none can run, one line says why and the job goes through the job router
simulation (hpcpull.testing.router_sim) instead, labelled as such.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Optional

STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held", 6: "transferring", 7: "suspended"}

JOB_SCRIPT = """\
#!/bin/bash
# A user's job: reads its input, writes results, prints to stdout and stderr, exits 3.
echo "running on $(hostname) as $(id -un), in $PWD"
echo "arguments: $# -> $(printf '[%s] ' "$@")"
echo "GREETING=$GREETING"
mkdir -p results
wc -l < data/numbers.txt > results/count.txt
sort -n data/numbers.txt | tail -n 1 > biggest.txt
echo "this goes to stderr" >&2
sleep 3
exit 3
"""
NUMBERS = "7\n42\n3\n19\n"

SUBMIT_FILE = """\
executable              = analyse.sh
arguments               = "--label 'two words' 'it''s quoted'"
environment             = "GREETING='hello from HTCondor'"
transfer_input_files    = data
transfer_output_files   = results, biggest.txt
transfer_output_remaps  = "biggest.txt = answers/biggest.txt"
output                  = analyse.out
error                   = analyse.err
log                     = job.log
request_cpus            = 2
request_memory          = 256
+BatchRuntime           = 600
+WantHpc                = true
queue
"""

ROUTES = """\
JOB_ROUTER_ROUTE_NAMES = Slurm
JOB_ROUTER_ROUTE_Slurm @=jrt
  REQUIREMENTS WantHpc =?= true
  UNIVERSE VANILLA
  SET Requirements false
@jrt
HPCPULL_ROUTE_Slurm_PARTITION = debug
"""

DEMO_USER = "hpcuser"
POLLING_PERIOD = 2  # JOB_ROUTER_POLLING_PERIOD of the demo pool (the router's default: 10 s)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _indent(text: str, prefix: str = "   ") -> str:
    return textwrap.indent(text.rstrip("\n"), prefix, lambda line: True)


class _Stop(Exception):
    """SIGTERM or SIGHUP: unwind so that the pool is stopped."""


def _raise_stop(signum: int, _frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


# --------------------------------------------------------------------------- entry points


def run_demo(workdir: Path, timeout: float = 120.0, bin_dir: Optional[Path] = None) -> int:
    """The real demo where an HTCondor can run, else the simulation (one line says why)."""
    if not os.environ.get("SLURM_CONF"):
        _say("hpcpull demo: SLURM_CONF is not set; run scripts/demo.sh, which starts a private Slurm")
        return 2
    from hpcpull.testing.personal_pool import unavailable_reason

    workdir = workdir.resolve()
    reason = unavailable_reason()
    bin_dir = bin_dir or _own_bin_dir()
    if reason is None and bin_dir is None:
        reason = ("no hpcpull installation every user can run was given (--bin-dir; see the README's "
                  "Install section)")
    if reason is not None:
        _say(f"hpcpull demo: no real HTCondor pool here ({reason}); showing the job router SIMULATION instead")
        return run_simulated_demo(workdir, timeout)
    return run_real_demo(workdir, Path(bin_dir or ""), timeout)


def _own_bin_dir() -> Optional[Path]:
    """The bin/ of the venv running this demo, if it holds the hooks and every user can
    reach them (hooks run as the job owner)."""
    bin_dir = Path(sys.executable).parent
    hook = bin_dir / "hpcpull-translate"
    if not hook.is_file() or not hook.stat().st_mode & stat.S_IXOTH:
        return None
    for directory in (bin_dir, *bin_dir.parents):
        if not directory.stat().st_mode & stat.S_IXOTH:
            return None
    return bin_dir


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpcpull.admin.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo-output", help="where the demo keeps its files")
    parser.add_argument("--bin-dir", help="HPCPULL_BIN_DIR: the bin/ of the hpcpull venv the hooks run from")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds the job may take")
    args = parser.parse_args(argv)
    return run_demo(Path(args.workdir), args.timeout, Path(args.bin_dir) if args.bin_dir else None)


# --------------------------------------------------------------------------- the real thing


def run_real_demo(workdir: Path, bin_dir: Path, timeout: float = 120.0) -> int:
    from hpcpull.testing.personal_pool import PersonalPool, find_release, world_readable_dir

    release = find_release()
    # Everything the job owner's hooks and jobs touch must be traversable by that user:
    # the pool lives under /var/tmp, the files worth keeping are copied to workdir at the end.
    base = world_readable_dir("hpcpull-demo-")
    shared = {name: base / name for name in ("scratch", "status", "hpcpull-log")}
    for path in shared.values():
        path.mkdir()
        path.chmod(0o1777)  # as the admin guide's mkdir -m 1777
    local_config = (
        f"HPCPULL_SCRATCH_ROOT = {shared['scratch']}\n"
        f"HPCPULL_STATUS_CACHE_DIR = {shared['status']}\n"
        f"HPCPULL_LOG = {shared['hpcpull-log'] / 'HpcPullLog'}\n"
        f"HPCPULL_LRMS_ENVIRONMENT = SLURM_CONF={os.environ['SLURM_CONF']}\n"
        "# Short periods for a demo:\n"
        "HPCPULL_STATUS_MAX_AGE = 2\n"
        "SCHEDD_CRON_HPCPULL_PERIOD = 1s\n"
    )
    pool = PersonalPool(base=base, release=release, bin_dir=bin_dir, local_config=local_config,
                        routes_config=ROUTES, name="demo", polling_period=POLLING_PERIOD, user=DEMO_USER)
    # For scripts/demo.sh's trap, should this process die without stopping the pool.
    workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / ".demo-pool"
    marker.write_text(f"{pool.local / 'run' / 'master.pid'}\n{base}\n")
    old = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    kept: dict[str, Any] = {}
    try:
        return _real_demo_steps(pool, release, shared, timeout, kept)
    except KeyboardInterrupt:
        _say("\ninterrupted: stopping the pool")
        return 130
    except _Stop as stop:
        _say(f"\n{stop}: stopping the pool")
        return 143
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _stop_pool(pool)
        _keep_files(pool, shared, workdir, kept)
        shutil.rmtree(base, ignore_errors=True)
        marker.unlink(missing_ok=True)


def _stop_pool(pool: Any) -> None:
    if pool.pid is None:  # interrupted between condor_master's start and its pid file being read
        pidfile = pool.local / "run" / "master.pid"
        deadline = time.time() + 10
        while not pidfile.exists() and time.time() < deadline and (pool.local / "log").exists():
            time.sleep(0.2)
        if pidfile.exists():
            pool.pid = int(pidfile.read_text().split()[0])
    if pool.pid is not None:
        pid = pool.pid
        pool.stop()
        _say(f"== The pool's condor_master (pid {pid}) and its daemons are stopped")


def _real_demo_steps(pool: Any, release: Path, shared: dict[str, Path], timeout: float,
                     kept: dict[str, Any]) -> int:
    version = subprocess.run([str(release / "bin" / "condor_version")], capture_output=True, text=True,
                             timeout=30).stdout
    found = re.search(r"CondorVersion: (\S+)", version)
    _say(f"== 1. A personal HTCondor {found.group(1) if found else ''} pool on loopback")
    _say(f"   from {release}; daemons run as 'condor', jobs are submitted by the ordinary user '{pool.user}'")
    started = time.monotonic()
    pool.start()
    _say(f"   collector, negotiator, schedd, startd and the stock condor_job_router are up "
         f"({time.monotonic() - started:.1f} s; condor_master pid {pool.pid}); hpcpull's files in "
         f"{pool.config_d}:")
    for path in sorted(pool.config_d.iterdir()):
        _say(f"   - {path.name}")
    _say("   60-hpcpull-routes.conf:")
    _say(_indent((pool.config_d / "60-hpcpull-routes.conf").read_text(), "   | "))
    _say("   90-hpcpull-local.conf:")
    _say(_indent((pool.config_d / "90-hpcpull-local.conf").read_text(), "   | "))

    submit = pool.user_dir("submit")
    kept["submit"] = submit
    pool.write_user_file(submit / "data" / "numbers.txt", NUMBERS)
    pool.write_user_file(submit / "analyse.sh", JOB_SCRIPT, mode=0o755)
    pool.write_user_file(submit / "job.sub", SUBMIT_FILE)
    _say(f"\n== 2. {pool.user} submits a job from {submit} with condor_submit job.sub")
    _say(_indent(SUBMIT_FILE, "   | "))
    _say("   analyse.sh reads data/numbers.txt, writes results/ and biggest.txt, exits 3")
    out = pool.tool(["condor_submit", "job.sub"], user=pool.user, cwd=submit)
    _say(_indent(out.stdout.strip()))
    found = re.search(r"submitted to cluster (\d+)", out.stdout)
    if not found:
        _say("   condor_submit printed no cluster id")
        return 1
    cluster = int(found.group(1))

    _say(f"\n== 3. condor_q as the job goes (job router polling period {POLLING_PERIOD} s; "
         "'copy' is the router's routed copy, which hpcpull's hooks drive)")
    outcome = _watch(pool, cluster, timeout, kept)
    if outcome != "gone":
        _say(f"   the job did not come back ({outcome})")
        _say(_indent(pool.tool(["condor_q", "-allusers", "-nobatch"], check=False).stdout, "   | "))
        _say("   JobRouterLog (tail):")
        _say(_indent("\n".join(pool.router_log_text().splitlines()[-25:]), "   | "))
        return 1
    _say("   (Slurm calls a job that exits non-zero FAILED; its exit code, 3, is what HTCondor gets)")

    _say(f"\n== 4. The batch script hpcpull rendered ({kept.get('script_path', '?')}; kept as job.sh)")
    _say(_indent(kept.get("script", "(not seen)"), "   | "))

    _say("\n== 5. The hooks condor_job_router ran (JobRouterLog), and hpcpull's decisions (HPCPULL_LOG)")
    for line in pool.router_log_text().splitlines():
        hook = re.search(r"^(\S+ \S+) HookClient \S*/(hpcpull-\w+) \(pid \d+\) (exited with status \d+)", line)
        if hook:
            _say(f"   {hook.group(1)}  {hook.group(2):17} {hook.group(3)}")
    for log in sorted(shared["hpcpull-log"].glob("HpcPullLog*")):
        for line in _read(log).splitlines():
            if " POLL " not in line:  # the schedd cron's poller, once a second here
                _say(f"   | {line}")

    _say(f"\n== 6. The user log ({submit / 'job.log'})")
    _say(_indent(_read(submit / "job.log"), "   | "))

    record = (pool.history(f"ClusterId == {cluster}") or [{}])[0]
    _say(f"\n== 7. condor_history {cluster}.0: JobStatus {record.get('JobStatus')} "
         f"({STATUS.get(record.get('JobStatus'), '?')}), ExitCode {record.get('ExitCode')}, "
         f"Slurm job {record.get('HpcPullBatchJobId')}, RemoteWallClockTime {record.get('RemoteWallClockTime')}")

    _say(f"\n== 8. What came back into the submit directory {submit} (kept as submit/)")
    for path in sorted(submit.rglob("*")):
        rel = path.relative_to(submit)
        if path.is_file() and rel.parts[0] != "data" and path.name not in ("analyse.sh", "job.sub", "job.log"):
            _say(f"   {str(rel):22} {_read(path).strip()!r}")
    return 0 if record.get("ExitCode") == 3 else 1


def _watch(pool: Any, cluster: int, timeout: float, kept: dict[str, Any]) -> str:
    """Print the source job's and the routed copy's condor_q state whenever it changes;
    returns "gone" once both have left the queue, else what stopped the wait."""
    attrs = ["ClusterId", "ProcId", "JobStatus", "RoutedFromJobId", "RouteName", "HpcPullBatchJobId",
             "HpcPullScript", "HoldReason"]
    constraint = f'ClusterId == {cluster} || RoutedFromJobId == "{cluster}.0"'
    start = time.monotonic()
    last: Optional[tuple] = None
    copy_id = ""
    seen_copy = False
    while time.monotonic() - start < timeout:
        jobs = pool.q(constraint, attrs)
        src = next((j for j in jobs if j.get("ClusterId") == cluster), None)
        copy = next((j for j in jobs if j.get("RoutedFromJobId") == f"{cluster}.0"), None)
        if copy is not None:
            seen_copy = True
            copy_id = f"{copy['ClusterId']}.{copy['ProcId']}"
            script = copy.get("HpcPullScript")
            if script and "script" not in kept and Path(script).is_file():
                kept["script"], kept["script_path"] = Path(script).read_text(), script
        batch = (copy or {}).get("HpcPullBatchJobId") or (src or {}).get("HpcPullBatchJobId") or kept.get("batch")
        if batch:
            kept["batch"] = batch
        now = (
            _state(src),
            _state(copy) if copy is not None else ("gone" if seen_copy else "-"),
            batch or "-",
            _slurm_state(str(batch)) if batch else "-",
        )
        if now != last:
            _say(f"   t={time.monotonic() - start:5.1f}s  source {cluster}.0: {now[0]:10} "
                 f"{'copy ' + (copy_id or '-') + ':':11} {now[1]:10} Slurm job {now[2]}: {now[3]}")
            last = now
        if src is not None and src.get("JobStatus") == 5:
            return f"held: {src.get('HoldReason')}"
        if src is None and copy is None and seen_copy:
            return "gone"
        if src is None and not seen_copy:
            return "the job left the queue without being routed"
        time.sleep(0.5)
    return f"still in the queue after {timeout:.0f} s"


def _state(job: Optional[dict[str, Any]]) -> str:
    return "gone" if job is None else STATUS.get(job.get("JobStatus"), str(job.get("JobStatus")))


def _slurm_state(batch_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", batch_id, "-o", "%T"], capture_output=True,
                         text=True, timeout=15)
    return out.stdout.strip() or "?"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        return f"({exc.strerror})"


def _keep_files(pool: Any, shared: dict[str, Path], workdir: Path, kept: dict[str, Any]) -> None:
    """Copy what is worth looking at afterwards into workdir (the pool itself is removed)."""
    copies = {
        "submit": kept.get("submit"),
        "condor-log": pool.log_dir,
        "condor_config.d": pool.config_d,
        "hpcpull-log": shared["hpcpull-log"],
    }
    for name, source in copies.items():
        if source is not None and Path(source).is_dir():
            shutil.copytree(source, workdir / name, dirs_exist_ok=True, ignore_dangling_symlinks=True,
                            ignore=shutil.ignore_patterns("*.socket", "procd_*"))
    for path in (workdir, *workdir.rglob("*")):
        if path.is_dir():
            path.chmod(0o755)  # not the 1777 of the pool's shared directories
    if "script" in kept:
        (workdir / "job.sh").write_text(kept["script"])
    if pool.config.exists():
        shutil.copy(pool.config, workdir / "condor_config")
    (workdir / "README.txt").write_text(
        "Files of the last `bash scripts/demo.sh`: submit/ (the user's submit directory with the outputs\n"
        "and job.log), job.sh (the batch script hpcpull rendered), condor-log/ (the pool's daemon logs,\n"
        "JobRouterLog among them), hpcpull-log/ (HPCPULL_LOG), condor_config and condor_config.d/.\n")


# --------------------------------------------------------------------------- the simulation


SUBMIT_AD = """\
Cmd = "{iwd}/analyse.sh"
Arguments = "--label 'two words' 'it''s quoted'"
Environment = "GREETING='hello from HTCondor'"
Iwd = "{iwd}"
Out = "analyse.out"
Err = "analyse.err"
In = "/dev/null"
TransferInput = "data"
TransferOutput = "results,biggest.txt"
TransferOutputRemaps = "biggest.txt = answers/biggest.txt"
RequestCpus = 2
RequestMemory = 256
BatchRuntime = 600
Owner = "{owner}"
JobUniverse = 5
WantHpc = true
ShouldTransferFiles = "YES"
WhenToTransferOutput = "ON_EXIT"
"""


def run_simulated_demo(workdir: Path, timeout: float = 120.0) -> int:
    """The same job through hpcpull.testing.router_sim: real hooks, sbatch and Slurm, a simulated
    job router and schedd (no condor_submit, no user log file, hooks run as this user)."""
    import classad2

    from hpcpull.testing.router_sim import RouterSim, hook_environment, write_gateway_config

    label = "[SIMULATION] "
    submit_dir = workdir / "submit"
    (submit_dir / "data").mkdir(parents=True, exist_ok=True)
    (submit_dir / "data" / "numbers.txt").write_text(NUMBERS)
    script = submit_dir / "analyse.sh"
    script.write_text(JOB_SCRIPT)
    script.chmod(0o755)
    scratch = workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    scratch.chmod(0o1777)
    config = write_gateway_config(
        workdir / "gateway",
        routes={"Slurm": "REQUIREMENTS WantHpc =?= true\nUNIVERSE VANILLA\nSET Requirements false"},
        knobs={
            "HPCPULL_SCRATCH_ROOT": str(scratch),
            "HPCPULL_ROUTE_Slurm_PARTITION": "debug",
            "HPCPULL_STATUS_CACHE_DIR": str(workdir / "gateway" / "status"),
            "HPCPULL_STATUS_MAX_AGE": "2",
            "HPCPULL_SCHEDD_DOUBLE": str(workdir / "gateway" / "schedd-double.jsonl"),
            "HPCPULL_LRMS_ENVIRONMENT": f"SLURM_CONF={os.environ['SLURM_CONF']}",
        },
    )
    owner = os.environ.get("USER") or "root"
    router = RouterSim(env=hook_environment(config), workdir=workdir / "gateway")
    ad = classad2.parseOne(SUBMIT_AD.format(iwd=submit_dir, owner=owner), classad2.ParserType.Old)
    source = router.submit(ad)
    _say(f"== 1. {label}The simulated schedd gets job {source}, opted in with +WantHpc = true")
    _say(_indent(SUBMIT_AD.format(iwd=submit_dir, owner=owner)))

    _say(f"== 2. {label}The simulated job router picks route 'Slurm' and runs TRANSLATE (stage in, render)")
    routed = router.route(source, "Slurm")
    translate = router.calls[-1]
    if not routed.copy_id:
        _say(f"TRANSLATE failed (exit {translate.exit_code}): {translate.stderr.strip()}")
        return 1
    copy = router.jobs[routed.copy_id]
    job_dir = Path(copy["HpcPullJobDir"])
    _say(f"   routed copy {routed.copy_id}, job directory {job_dir}")
    _say(f"   staged: {sorted(p.name for p in job_dir.iterdir())}")
    _say(f"== 3. {label}The rendered batch script ({copy['HpcPullScript']})")
    _say(_indent(Path(copy["HpcPullScript"]).read_text(), "   | "))

    _say(f"== 4. {label}UPDATE_JOB_INFO submits it once, then follows it (status transitions)")
    last = None
    start = time.monotonic()
    while router.in_queue(source) and time.monotonic() - start < timeout:
        router.poll()
        src = router.jobs.get(source)
        cp = router.jobs.get(routed.copy_id)
        now = (src.get("JobStatus") if src else "gone", cp.get("JobStatus") if cp else "gone")
        if now != last:
            batch = (cp or src or {}).get("HpcPullBatchJobId", "-") if (cp or src) else "-"
            _say(f"   t={time.monotonic() - start:5.1f}s  source: {STATUS.get(now[0], now[0]):9}"
                 f"  copy: {STATUS.get(now[1], now[1]):9}  slurm job: {batch}")
            last = now
        time.sleep(0.5)
    if router.in_queue(source):
        _say("the job did not finish in time")
        return 1

    _say(f"== 5. {label}The user's log (events the simulated router recorded for the source job)")
    for event in router.events[source]:
        _say(f"   {event}")
    final = next(c for c in reversed(router.calls) if c.hook == "finalize")
    _say(f"== 6. {label}FINALIZE returned the outputs; it printed:")
    _say(_indent(final.stdout, "   | "))
    for path in sorted(submit_dir.rglob("*")):
        if path.is_file() and path.parent.name != "data" and path.name != "analyse.sh":
            _say(f"   {path.relative_to(submit_dir)}: {path.read_text().strip()!r}")
    _say(f"== 7. {label}CLEANUP removed the job directory: {'gone' if not job_dir.exists() else 'still there'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
