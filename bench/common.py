"""What every benchmark shares: the ratio line, measured process spawns, a private Slurm,
a simulated gateway that runs the INSTALLED hook executables, and counting PATH shims.

Benchmarks are measurements, not tests: each prints
``<name>: <measured> vs <baseline> = ratio <x> (target <t>)`` and one line per detail,
with the baseline measured in the same run, on the same machine, interleaved where it
can be.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: measure this checkout's hpcpull
    sys.path.insert(0, str(REPO))

import classad2  # noqa: E402

from hpcpull.router.classads import parse_translate_input, router_print  # noqa: E402
from hpcpull.testing.router_sim import HookCall, RoutedJob, RouterSim, hook_environment, write_gateway_config  # noqa: E402

SCRIPTS = REPO / "scripts"
ROUTER_STDIN = REPO / "tests" / "fixtures" / "router-stdin"
ROUTE = "Bench"
ROUTE_BODY = "REQUIREMENTS WantHpc =?= true\nUNIVERSE VANILLA\nSET Requirements false"
SLURM_COMMANDS = ("squeue", "scontrol", "sacct", "sbatch", "scancel")
T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------- the ratio line


def number(x: float) -> str:
    """Three significant digits, never an exponent (the lines are read by people and regexes)."""
    if math.isnan(x) or math.isinf(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    if x == 0:
        return "0"
    digits = max(0, 2 - int(math.floor(math.log10(abs(x)))))
    text = f"{x:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass
class Result:
    """One ratio: hpcpull's figure against a baseline measured in the same run."""

    name: str
    measured: float
    baseline: float
    unit: str
    target: str
    met: Optional[bool] = None  # None: no target to meet
    details: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else math.inf

    def line(self) -> str:
        return (f"{self.name}: {number(self.measured)} {self.unit} vs {number(self.baseline)} {self.unit}"
                f" = ratio {number(self.ratio)} (target {self.target})")


def report(results: Iterable[Result], out=None) -> None:
    out = out or sys.stdout
    for result in results:
        print(result.line(), file=out)
        for detail in result.details:
            print(f"  {detail}", file=out)
        out.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# --------------------------------------------------------------------------- measured spawns


@dataclass
class Run:
    """One finished child process: wall time, peak RSS (wait4) and its output."""

    argv: list[str]
    pid: int
    wall_s: float
    maxrss_kib: int
    returncode: int
    stdout: str
    stderr: str


GNU_TIME = "/usr/bin/time"


def rss_wrapper_available() -> bool:
    """GNU time: a small process between this (large) one and the measured one."""
    try:
        out = subprocess.run([GNU_TIME, "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    return "GNU" in out.stdout + out.stderr


def spawn(argv: Sequence[str], stdin: bytes = b"", env: Optional[dict[str, str]] = None,
          cwd: Optional[Path] = None, timeout: float = 300.0, rss_wrapper: bool = False) -> Run:
    """Run ``argv`` to the end and reap it with os.wait4.  stdin and the outputs are files
    prepared before the clock starts, so only the process is timed.

    Peak RSS: a child's ru_maxrss starts from its parent's RSS (fork copies the page
    tables; exec records the old mm's peak), so wait4 on a child of this large process
    overstates it.  With ``rss_wrapper`` the child is started through GNU time, a small
    process, and its ``%M`` (the child's max RSS, which on Linux folds in the children
    it waited for, e.g. the sbatch a hook runs) is taken instead.
    """
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr, \
            tempfile.NamedTemporaryFile(prefix="rss-") as frss:
        fin.write(stdin)
        fin.flush()
        fin.seek(0)
        command = [GNU_TIME, "-f", "%M", "-o", frss.name, *argv] if rss_wrapper else list(argv)
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdin=fin, stdout=fout, stderr=ferr, env=env, cwd=cwd)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        maxrss = int(usage.ru_maxrss)
        if rss_wrapper:
            lines = [line for line in Path(frss.name).read_text().splitlines() if line.strip().isdigit()]
            maxrss = int(lines[-1]) if lines else -1
        fout.seek(0)
        ferr.seek(0)
        return Run(list(argv), proc.pid, wall, maxrss, proc.returncode,
                   fout.read().decode(errors="replace"), ferr.read().decode(errors="replace"))


def pmap(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``map`` over a thread pool (the router runs hooks of different jobs concurrently)."""
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


# --------------------------------------------------------------------------- hook executables


def _is_wrapper(path: Path) -> bool:
    """A pyenv/asdf-style shim: a shell script that finds the real executable at run time."""
    try:
        head = path.read_bytes()[:200]
    except OSError:
        return False
    return head.startswith(b"#!") and b"python" not in head.split(b"\n", 1)[0]


def hook_executable(name: str) -> Path:
    """The installed hook as the router runs it ($(HPCPULL_BIN_DIR)/<name>, where pip put it).

    shutil.which first; a version-manager shim (pyenv puts a bash script on PATH that
    runs ``pyenv exec``) is not what HPCPULL_BIN_DIR names, so it is resolved to the
    script pip installed next to this interpreter.
    """
    if name in ("hpcpull-update", "hpcpull-translate", "hpcpull-finalize", "hpcpull-cleanup"):
        # The Python hooks behind the shell front ends: the simulated gateway keeps no status
        # index, so UPDATE's front end would hand every call to the full hook anyway, and
        # the others' only wait for a hook slot or queue their call for a shared Python
        # process.  The front ends are measured on the real router (real_router.py).
        name = f"{name}-full"
    found = shutil.which(name)
    if found and not _is_wrapper(Path(found)):
        return Path(found)
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.exists():
        return beside
    if found:
        return Path(found)
    raise FileNotFoundError(f"{name} is not installed (pip install -e {REPO})")


def interpreter_of(executable: Path) -> str:
    """The Python named on the executable's #! line: the baseline runs the same interpreter."""
    first = executable.read_bytes().split(b"\n", 1)[0].decode()
    if first.startswith("#!"):
        words = first[2:].split()
        if words and words[0].endswith("env") and len(words) > 1:
            return shutil.which(words[1]) or words[1]
        if words:
            return words[0]
    return sys.executable


def baseline_argv(hook: str = "update") -> list[str]:
    """``python3 -c pass`` with the hooks' own interpreter."""
    return [interpreter_of(hook_executable(f"hpcpull-{hook}")), "-c", "pass"]


# --------------------------------------------------------------------------- Slurm


@contextlib.contextmanager
def slurm(slurm_conf: Optional[str] = None) -> Iterator[dict[str, str]]:
    """An environment naming a Slurm cluster: ``slurm_conf`` if given (e.g. the test session's
    private Slurm), else a private throwaway one started here and stopped (and removed) after.

    The environment's own SLURM_CONF is deliberately NOT used: a benchmark submits hundreds
    of jobs and must not do so on a production cluster by accident.
    """
    if slurm_conf:
        yield dict(os.environ, SLURM_CONF=str(slurm_conf))
        return
    if not shutil.which("slurmctld"):
        raise SystemExit("Slurm is not installed (scripts/setup-machine.sh) and no --slurm-conf was given")
    directory = Path(tempfile.mkdtemp(prefix="hpcpull-bench-slurm-"))
    env = dict(os.environ, SLURM_TEST_ACCT="jobcomp")
    try:
        for attempt in range(3):  # a random port may be taken
            port = 20000 + random.randrange(4000) * 4
            proc = subprocess.run([str(SCRIPTS / "private-slurm-start.sh"), str(directory), str(port)],
                                  env=env, capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                break
            subprocess.run([str(SCRIPTS / "private-slurm-stop.sh"), str(directory)], capture_output=True, timeout=120)
            if attempt == 2:
                raise RuntimeError(f"private Slurm did not start: {proc.stderr.strip()}")
        yield dict(os.environ, SLURM_CONF=str(directory / "slurm.conf"))
    finally:
        subprocess.run([str(SCRIPTS / "private-slurm-stop.sh"), str(directory), "--rm"],
                       capture_output=True, timeout=120)


def cancel_batch_jobs(env: dict[str, str], job_ids: Iterable[str]) -> None:
    """Cancel the benchmark's own batch jobs (only these: the cluster may be shared)."""
    ids = sorted({j for j in job_ids if j and j.isdigit()}, key=int)
    for start in range(0, len(ids), 200):
        subprocess.run(["scancel", *ids[start:start + 200]], env=env, capture_output=True, timeout=60)


# --------------------------------------------------------------------------- counting shims


def counting_path(directory: Path, log: Path, base_path: str) -> str:
    """A PATH with a shim before each Slurm client that logs "<program> <caller pid> <args>",
    then execs the real one: an instrument, not a fake (as in tests/integration/test_poller.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in SLURM_COMMANDS:
        real = shutil.which(name, path=base_path)
        if real is None:
            continue
        shim = directory / name
        shim.write_text(f'#!/bin/sh\necho "{name} $PPID $*" >> {log}\nexec {real} "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return f"{directory}{os.pathsep}{base_path}"


@dataclass
class SlurmCall:
    program: str
    caller: int  # the pid of the hook/poller process that ran it
    args: str

    @property
    def kind(self) -> str:
        """status (what the status cache saves), accounting, config, submit or cancel."""
        if self.program == "squeue" or (self.program == "scontrol" and self.args.startswith("show job")):
            return "status"
        if self.program == "sacct":
            return "accounting"
        if self.program == "scontrol" and self.args.startswith("show config"):
            return "config"
        return {"sbatch": "submit", "scancel": "cancel"}.get(self.program, "other")


def read_calls(log: Path) -> list[SlurmCall]:
    if not log.exists():
        return []
    calls = []
    for line in log.read_text().splitlines():
        program, caller, *rest = line.split(" ", 2) + [""]
        calls.append(SlurmCall(program, int(caller) if caller.isdigit() else 0, rest[0] if rest else ""))
    return calls


# --------------------------------------------------------------------------- the gateway


def fixture_job(submit_dir: Path, seconds: float) -> classad2.ClassAd:
    """The source ad a real router sent to TRANSLATE (tests/fixtures/router-stdin/translate.stdin),
    adapted to this gateway: the current user, a local Iwd, and a payload of ``seconds``."""
    submit_dir.mkdir(parents=True, exist_ok=True)
    _, ad = parse_translate_input((ROUTER_STDIN / "translate.stdin").read_text())
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "root"
    ad.update({
        "Owner": user, "User": f"{user}@bench.local", "Iwd": str(submit_dir), "Out": "out", "Err": "err",
        "Arguments": f"-c 'sleep {seconds:g}'", "HookKeyword": "HPCPULL", "WantHpc": True,
        "JobSubmitFile": str(submit_dir / "job.sub"),
    })
    for attr in ("UserLog", "WantRcRoute", "RcVariant"):
        if attr in ad:
            del ad[attr]
    return ad


@dataclass
class Spawned:
    hook: str
    job: str
    run: Run


class BenchRouter(RouterSim):
    """The router simulation around the INSTALLED hook executables, with every hook process
    timed and its peak RSS taken (wait4), and thread-safe steps for running hooks of
    different jobs concurrently, as the real router does."""

    rss_wrapper = False  # start hooks through GNU time for their true peak RSS (see spawn)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.spawned: list[Spawned] = []
        self.lock = threading.RLock()

    def hook_command(self, hook: str) -> list[str]:
        return [str(hook_executable(f"hpcpull-{hook}"))]

    def _spawn(self, hook: str, job: str, argv: list[str], stdin: str) -> HookCall:
        run = spawn(argv, stdin.encode(), self.env, self.workdir, rss_wrapper=self.rss_wrapper)
        call = HookCall(hook, job, stdin, run.stdout, run.stderr, run.returncode, time.time())
        with self.lock:
            self.calls.append(call)
            self.spawned.append(Spawned(hook, job, run))
        return call

    def run_hook(self, hook: str, job_id: str, stdin: str) -> HookCall:
        call = self._spawn(hook, job_id, self.hook_command(hook), stdin)
        with self.lock:
            self._apply_double()
        return call

    def schedd_cron(self) -> HookCall:
        return self._spawn("poll", "", [*self.hook_command("poll"), "HPCPULL"], "")

    # ---- one job's steps, safe to run for different jobs in different threads
    def translate_one(self, job_id: str, route_name: str = ROUTE) -> RoutedJob:
        """RouterSim.route, with the hook outside the lock."""
        with self.lock:
            src = self.jobs[job_id]
            src["Managed"], src["ManagedManager"] = "External", "jobrouter"
            routed = RoutedJob(job_id, route_name)
            self.routed[job_id] = routed
            stdin = f'[ Name = "{route_name}"; TargetUniverse = 5 ]\n------\n' + router_print(src)
        call = self.run_hook("translate", job_id, stdin)
        out = self.parse_output(call) if call.exit_code == 0 else None
        with self.lock:
            if out is None or len(out) == 0 or "JobUniverse" not in out:
                self._yield(job_id, done=False)
                routed.state = "retired"
            else:
                self._submit_copy(routed, out)
        return routed

    def update_one(self, routed: RoutedJob) -> Optional[HookCall]:
        """One UPDATE of a submitted copy (RouterSim._check for a copy that is not done)."""
        with self.lock:
            copy = self.jobs.get(routed.copy_id or "")
            if routed.state != "submitted" or copy is None:
                return None
            stdin = router_print(copy)
        call = self.run_hook("update", routed.copy_id or "", stdin)
        out = self.parse_output(call) if call.exit_code == 0 else None
        with self.lock:
            if out is not None:
                copy.update(out)
                self._mirror(routed, copy)
        return call

    def batch_ids(self) -> list[str]:
        with self.lock:
            ids = {str(ad.get("HpcPullBatchJobId")) for ad in self.jobs.values() if ad.get("HpcPullBatchJobId")}
        return sorted(ids, key=lambda i: int(i) if i.isdigit() else 0)

    def spawned_by(self, hook: str, since: int = 0) -> list[Spawned]:
        with self.lock:
            return [s for s in self.spawned[since:] if s.hook == hook]


@dataclass
class Gateway:
    router: BenchRouter
    config: Path
    scratch: Path
    status_dir: Path
    calls_log: Path
    lrms_env: dict[str, str]

    def calls(self) -> list[SlurmCall]:
        return read_calls(self.calls_log)


def make_gateway(workdir: Path, slurm_env: dict[str, str], **knobs: str) -> Gateway:
    """A simulated gateway in front of the Slurm of ``slurm_env``: route "Bench" (partition
    debug), the shipped defaults (condor_config.d/50-hpcpull.conf) unless ``knobs`` say
    otherwise, and every Slurm client call the hooks make logged by a PATH shim."""
    scratch = workdir / "scratch"
    scratch.mkdir(mode=0o1777, parents=True)
    log = workdir / "slurm-calls.log"
    path = counting_path(workdir / "shims", log, slurm_env.get("PATH", os.environ.get("PATH", "")))
    lrms_env = dict(slurm_env, PATH=path)
    status = workdir / "gateway" / "status"
    config = write_gateway_config(
        workdir / "gateway",
        routes={ROUTE: ROUTE_BODY},
        knobs={
            "HPCPULL_ROUTE_NAMES": ROUTE,
            "HPCPULL_LRMS": "slurm",
            "HPCPULL_PARTITION": "debug",
            "HPCPULL_SCRATCH_ROOT": str(scratch),
            "HPCPULL_STATUS_CACHE_DIR": str(status),
            "HPCPULL_SCHEDD_DOUBLE": str(workdir / "gateway" / "schedd-double.jsonl"),
            "HPCPULL_LRMS_ENVIRONMENT": f"PATH={path} SLURM_CONF={slurm_env['SLURM_CONF']}",
            # hooks refuse to run as root unless told this is a test gateway
            **({"HPCPULL_ALLOW_ROOT": "true"} if os.geteuid() == 0 else {}),
            **knobs,
        },
    )
    env = hook_environment(config, {"SLURM_CONF": slurm_env["SLURM_CONF"]})
    python_as_installed(env, workdir / "pycache")
    router = BenchRouter(env=env, workdir=workdir / "gateway")
    return Gateway(router, config, scratch, status, log, lrms_env)


def python_as_installed(env: dict[str, str], pycache: Path) -> dict[str, str]:
    """Let hooks run from this checkout with cached bytecode, as an installed hpcpull does
    (pip compiles .pyc at install time).  Without it, an environment that sets
    PYTHONDONTWRITEBYTECODE (this one may) recompiles every hpcpull module at every hook
    start; the cache goes to the benchmark's own directory, not into the checkout."""
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


@contextlib.contextmanager
def workspace(keep: bool = False, prefix: str = "hpcpull-bench-", parent: Optional[str] = None) -> Iterator[Path]:
    """A scratch directory for one benchmark, removed afterwards unless ``keep``."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield directory
    finally:
        if keep:
            print(f"  (kept {directory})", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)


def add_common_arguments(parser) -> None:
    parser.add_argument("--slurm-conf", default=None,
                        help="use this Slurm (its slurm.conf) instead of starting a private one")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


def top_imports(executable: Path, args: Sequence[str], stdin: bytes, env: dict[str, str], cwd: Path,
                min_ms: float = 4.0, max_depth: int = 3, max_lines: int = 16) -> list[str]:
    """Where a Python program's start-up goes: run it under ``python -X importtime`` (best of 3) and
    return the import tree, biggest first, down to imports of ``min_ms`` cumulative."""
    def imports_total(run: Run) -> int:
        return sum(int(line.split("|")[1]) for line in run.stderr.splitlines()
                   if line.startswith("import time:") and line.count("|") == 2 and line.split("|")[1].strip().isdigit()
                   and not line.split("|")[2].startswith("  "))

    # the least disturbed of three runs (a busy machine inflates a single one)
    run = min((spawn([interpreter_of(executable), "-X", "importtime", str(executable), *args], stdin, env, cwd)
               for _ in range(3)), key=imports_total)
    # Children are printed before their parent, one level deeper (two spaces per level).
    roots: list[tuple[float, str, list]] = []
    pending: dict[int, list] = {}
    for line in run.stderr.splitlines():
        parts = line[len("import time:"):].split("|") if line.startswith("import time:") else []
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        depth = (len(parts[2]) - len(parts[2].lstrip(" ")) - 1) // 2
        node = (int(parts[1]) / 1000, parts[2].strip(), pending.pop(depth + 1, []))
        if depth == 0:
            roots.append(node)
        else:
            pending.setdefault(depth, []).append(node)
    total = sum(ms for ms, _, _ in roots)
    lines = [f"imports take {total:.0f} ms of its start (python -X importtime); the biggest:"]

    def walk(nodes: list, depth: int) -> None:
        for ms, name, children in sorted(nodes, key=lambda n: -n[0]):
            if ms < min_ms or len(lines) > max_lines:
                return
            lines.append(f"  {'  ' * depth}{ms:6.1f} ms  {name}")
            if depth + 1 < max_depth:
                walk(children, depth + 1)

    walk(roots, 0)
    return lines
