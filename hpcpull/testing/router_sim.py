"""A simulation of condor_job_router's hook life cycle, for fast protocol-level tests.

The demo and the real-router tests (tests/realrouter/) run the stock condor_job_router of
a real HTCondor personal pool (hpcpull.testing.personal_pool).  This module plays the
router and the schedd around the real hook executables in one process, so that tests of
the hook protocol, crash points, outages and fuzzed input take seconds and need no
HTCondor and no root.  It feeds the hooks the bytes a real condor_job_router 25.13.2
sends (captured in tests/fixtures/router-stdin/) and applies their output as the router
does (src/condor_job_router/JobRouter.cpp, JobRouterHookMgr.cpp, VanillaToGrid.cpp):

* TRANSLATE stdin is the one-line route ad, ``------``, then the source ad as sorted
  old-syntax lines; its output replaces the routed ad, then the router's own edits
  (vanillaToGrid) and the route's SET lines are applied and the copy is "submitted".
  Exit 0 without output keeps the job claimed: TRANSLATE runs again at the next poll
  (TranslateClient::hookExited neither submits nor removes the job; JobRouter::SubmitJob
  runs for every job still CLAIMED).  A non-zero exit or an unparsable line yields it.
* UPDATE gets the copy; its output goes into the copy and a fixed attribute list is
  mirrored to the source, with execute/evict events on status changes.  A non-zero exit
  stalls the poll; an unparsable line removes the copy.
* FINALIZE runs once the copy has JobStatus 4 and JobFinishedHookDone; its stdin is the
  source ad, a blank line, ``------``, the copy.  Exit 0 writes the terminate event.
* CLEANUP runs after finalize, removal or hold; it is retried every poll until it exits 0.
* A hook killed by a signal counts as exit 0 with whatever it printed: TRANSLATE, UPDATE
  and FINALIZE look only at ``WEXITSTATUS()`` of the wait status, which is 0 for a death
  by signal, and CLEANUP tests ``WIFSIGNALED() || !WEXITSTATUS()``
  (JobRouterHookMgr.cpp, ``*Client::hookExited``).
* An externally managed copy leaves the queue only once ``Managed`` is "ScheddDone".

Where it differs from the real router (use tests/realrouter/ for these):

* Routes are chosen by the test (``route(job, name)``), not by the router matching the
  routes' REQUIREMENTS in JOB_ROUTER_ROUTE_NAMES order, and without MaxJobs, MaxIdleJobs
  or failure-rate throttling.
* Hooks run as the user running the simulation (root in CI, hence HPCPULL_ALLOW_ROOT in
  ``write_gateway_config``), with that user's environment, not as the job owner with the
  daemons' environment.
* One hook at a time, synchronously, and one poll per ``poll()`` call: the real router
  runs hooks of different jobs concurrently and polls every JOB_ROUTER_POLLING_PERIOD.
* The schedd is a dictionary: no negotiator, no startd, no user log file (events are
  strings in ``events``), no SPOOL, no periodic policy expressions, no orphan adoption
  after a restart; CLEANUP reaches it through the labelled ``ScheddTestDouble``
  (HPCPULL_SCHEDD_DOUBLE), not through a real schedd.

This module is not used by the hooks.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import classad2

from hpcpull.router.classads import parse_old_ad, router_print
from hpcpull.state.atomicfile import ensure_shared_dir

HOOKS_DIR = Path(__file__).resolve().parents[2] / "hooks"

# VanillaToGrid.cpp: attributes copied routed -> source on each status update.
MIRRORED = (
    "BytesSent BytesRecvd CompletionDate JobRunCount JobStartDate ExitBySignal ExitSignal "
    "ExitCode ExitReason JobCurrentStartDate JobCurrentStartExecutingDate JobLastStartDate "
    "ShadowBday RemoteSysCpu RemoteUserCpu NumCkpts NumJobStarts NumJobReconnects "
    "NumShadowExceptions NumShadowStarts NumMatches NumRestarts RemoteWallClockTime "
    "LastRemoteWallClockTime JobCoreDumped ImageSize MemoryUsage ResidentSetSize "
    "ProportionalSetSize DiskUsage ScratchDirFileCount SpooledOutputFiles CpusUsage "
    "CpusProvisioned DiskProvisioned MemoryProvisioned"
).split()
# VanillaToGrid::vanillaToGrid: removed from TRANSLATE's output, or reset.
REMOVED_BY_ROUTER = (
    "ClusterId ProcId GlobalJobId OsUser QDate RemoteWallClockTime LastRemoteWallClockTime "
    "StageInStart StageInFinish UserLog DAGManWorkflowLog TimerRemove SUBMIT_Iwd CondorPlatform"
).split()
RESET_BY_ROUTER = ("RemoteUserCpu", "RemoteSysCpu", "CompletionDate", "NumCkpts", "NumRestarts",
                   "NumSystemHolds")


_CLUSTER_BASES = itertools.count(int(time.time()) % 100_000 * 1000, 1000)


def _evaluates_true(ad: classad2.ClassAd, attr: str) -> bool:
    try:
        return attr in ad and ad.eval(attr) is True
    except Exception:  # noqa: BLE001 - an expression that does not evaluate is not true
        return False


@dataclass
class HookCall:
    hook: str
    job: str
    stdin: str
    stdout: str
    stderr: str
    exit_code: int  # subprocess's returncode: negative for a death by signal
    at: float

    @property
    def router_exit_code(self) -> int:
        """The exit code the router acts on: ``WEXITSTATUS()`` of the wait status, 0 for a
        hook killed by a signal (JobRouterHookMgr.cpp, ``*Client::hookExited``)."""
        return 0 if self.exit_code < 0 else self.exit_code


@dataclass
class RoutedJob:
    source_id: str
    route: str
    copy_id: Optional[str] = None
    state: str = "submitted"  # route(): claimed -> submitted -> cleanup -> retired
    finalized: bool = False


@dataclass
class RouterSim:
    """The router + schedd around real hook executables, one ``poll()`` at a time."""

    env: dict[str, str]
    workdir: Path
    routes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # name -> SET lines
    attrs_to_copy: tuple[str, ...] = ("HpcPullBatchJobId",)
    python: str = sys.executable

    def __post_init__(self) -> None:
        self.jobs: dict[str, classad2.ClassAd] = {}
        self.history: dict[str, classad2.ClassAd] = {}  # jobs that left the queue (condor_history)
        self.routed: dict[str, RoutedJob] = {}
        self.events: dict[str, list[str]] = {}
        self.calls: list[HookCall] = []
        self.next_cluster = next(_CLUSTER_BASES)  # distinct per simulation: they may share one Slurm
        self.first_cluster = self.next_cluster
        self.schedd_double = self.workdir / "schedd-double.jsonl"
        self._double_seen = 0

    # ------------------------------------------------------------------ the schedd
    def submit(self, ad: classad2.ClassAd) -> str:
        """condor_submit: a new cluster with one proc, idle."""
        cluster, now = self.next_cluster, int(time.time())
        self.next_cluster += 1
        ad = parse_old_ad(router_print(ad))  # a private copy
        ad["ClusterId"], ad["ProcId"] = cluster, 0
        ad["QDate"] = ad["EnteredCurrentStatus"] = now
        ad["GlobalJobId"] = f"gateway#{cluster}.0#{now}"
        ad["JobStatus"] = 1
        job_id = f"{cluster}.0"
        self.jobs[job_id] = ad
        self.events[job_id] = ["000 submitted"]
        return job_id

    def condor_rm(self, job_id: str) -> None:
        self.jobs[job_id]["JobStatus"] = 3

    def condor_release(self, job_id: str) -> None:
        """condor_release: a held job goes back to idle (and writes 013 released)."""
        ad = self.jobs[job_id]
        if ad.get("JobStatus") == 5:
            ad["JobStatus"] = 1
            ad["LastHoldReason"] = ad.get("HoldReason") or ""
            self.events[job_id].append("013 released")

    def condor_hold(self, job_id: str, reason: str = "by user") -> None:
        ad = self.jobs[job_id]
        ad["JobStatus"], ad["HoldReason"], ad["HoldReasonCode"] = 5, reason, 1

    def in_queue(self, job_id: str) -> bool:
        return job_id in self.jobs

    def _apply_double(self) -> None:
        """Apply what hooks asked of the schedd (through the labelled test double)."""
        if not self.schedd_double.exists():
            return
        lines = self.schedd_double.read_text().splitlines()
        for line in lines[self._double_seen:]:
            call = json.loads(line)
            if call["job"] not in self.jobs:
                continue
            if call["op"] == "edit":
                self.jobs[call["job"]][call["attr"]] = classad2.ExprTree(call["value"])
            elif call["op"] == "remove":  # condor_rm of a copy: the router yields its source
                self.jobs[call["job"]]["JobStatus"] = 3
                self.jobs[call["job"]]["RemoveReason"] = call["reason"]
        self._double_seen = len(lines)

    def _publish_queue(self) -> None:
        """What the labelled schedd test double answers to job_status()."""
        states = {job_id: ad.get("JobStatus") for job_id, ad in self.jobs.items()}
        Path(f"{self.schedd_double}.queue.json").write_text(json.dumps(states))

    def _reap(self) -> None:
        """The schedd lets a job go once nobody manages it and it is done or removed."""
        for job_id, ad in list(self.jobs.items()):
            managed = ad.get("Managed")
            done = ad.get("JobStatus") in (3, 4) and managed in (None, "ScheddDone", "Schedd")
            if done and not (ad.get("JobStatus") == 4 and _evaluates_true(ad, "LeaveJobInQueue")):
                self.history[job_id] = self.jobs.pop(job_id)

    # ------------------------------------------------------------------ hooks
    def hook_command(self, hook: str) -> list[str]:
        """The hook executable from the checkout's hooks/, else the installed one on PATH."""
        script = HOOKS_DIR / f"hpcpull-{hook}"
        if (HOOKS_DIR / f"hpcpull-{hook}-full").exists():
            # UPDATE's shell front end needs its installed neighbour; the checkout's Python
            # hook is the full one (the front end has tests of its own).
            script = HOOKS_DIR / f"hpcpull-{hook}-full"
        if script.exists():
            return [self.python, str(script)]
        installed = shutil.which(f"hpcpull-{hook}")
        if not installed:
            raise FileNotFoundError(f"hook hpcpull-{hook} not found in {HOOKS_DIR} or on PATH")
        return [installed]

    def schedd_cron(self) -> HookCall:
        """One run of the schedd cron job HPCPULL (the poller), as the schedd starts it: the
        job's name as the only argument, no stdin; stdout is the site status ad."""
        proc = subprocess.run(
            [*self.hook_command("poll"), "HPCPULL"], stdin=subprocess.DEVNULL, capture_output=True,
            env=self.env, cwd=self.workdir, timeout=300,
        )
        call = HookCall("poll", "", "", proc.stdout.decode(), proc.stderr.decode(), proc.returncode, time.time())
        self.calls.append(call)
        return call

    def run_hook(self, hook: str, job_id: str, stdin: str) -> HookCall:
        self._publish_queue()
        proc = subprocess.run(
            self.hook_command(hook),
            input=stdin.encode(), capture_output=True, env=self.env, cwd=self.workdir, timeout=300,
        )
        call = HookCall(hook, job_id, stdin, proc.stdout.decode(), proc.stderr.decode(), proc.returncode, time.time())
        self.calls.append(call)
        self._apply_double()
        return call

    @staticmethod
    def parse_output(call: HookCall) -> Optional[classad2.ClassAd]:
        """The router inserts each non-blank line; None if any line does not parse."""
        ad = classad2.ClassAd()
        for line in call.stdout.splitlines():
            if not line.strip():
                continue
            one = classad2.parseOne(line.strip() + "\n", classad2.ParserType.Old)
            if len(one) != 1:
                return None
            ad.update(one)
        return ad

    # ------------------------------------------------------------------ the router
    def route(self, job_id: str, route_name: str) -> RoutedJob:
        """Claim the job, run TRANSLATE and submit the routed copy.

        A TRANSLATE that exits 0 without output leaves the job claimed (``copy_id`` None,
        ``state`` "claimed"): the next ``poll()`` runs TRANSLATE again, as the real router does."""
        src = self.jobs[job_id]
        src["Managed"], src["ManagedManager"] = "External", "jobrouter"
        routed = RoutedJob(job_id, route_name, state="claimed")
        self.routed[job_id] = routed
        self._translate(routed)
        return routed

    def _translate(self, routed: RoutedJob) -> None:
        """JobRouter::SubmitJob with the hook, then TranslateClient::hookExited."""
        src = self.jobs[routed.source_id]
        stdin = f'[ Name = "{routed.route}"; TargetUniverse = 5 ]\n------\n' + router_print(src)
        call = self.run_hook("translate", routed.source_id, stdin)
        if call.router_exit_code != 0:
            self._yield(routed.source_id, done=False)  # GracefullyRemoveJob; counted as a route failure
            routed.state = "retired"
            return
        if not call.stdout:
            return  # "returned no data": still CLAIMED, TRANSLATE runs again next poll
        out = self.parse_output(call)
        if out is None:
            self._yield(routed.source_id, done=False)  # GracefullyRemoveJob
            routed.state = "retired"
            return
        if "JobUniverse" not in out:
            raise AssertionError("TRANSLATE output lacks JobUniverse: the real router would EXCEPT")
        self._submit_copy(routed, out)

    def _submit_copy(self, routed: RoutedJob, dest: classad2.ClassAd) -> None:
        now = int(time.time())
        for attr in REMOVED_BY_ROUTER:
            if attr in dest:
                del dest[attr]
        for attr in RESET_BY_ROUTER:
            dest[attr] = 0
        dest["JobStatus"] = 1
        dest["Remote_JobUniverse"] = dest.get("JobUniverse")
        dest["JobUniverse"] = 5
        for attr, expr in self.routes.get(routed.route, [("Requirements", "false")]):
            dest[attr] = classad2.ExprTree(expr)
        dest["RoutedFromJobId"], dest["RoutedBy"], dest["RouteName"] = routed.source_id, "jobrouter", routed.route
        if "RoutedToJobId" in dest:
            del dest["RoutedToJobId"]
        cluster = self.next_cluster
        self.next_cluster += 1
        dest["ClusterId"], dest["ProcId"], dest["TotalSubmitProcs"] = cluster, 0, 1
        dest["QDate"] = dest["EnteredCurrentStatus"] = now
        dest["GlobalJobId"] = f"gateway#{cluster}.0#{now}"
        dest["LeaveJobInQueue"] = classad2.ExprTree("JobStatus == 4")
        routed.copy_id = f"{cluster}.0"
        routed.state = "submitted"
        self.jobs[routed.copy_id] = dest
        self.jobs[routed.source_id]["RoutedToJobId"] = routed.copy_id

    def _yield(self, job_id: str, done: bool) -> None:
        src = self.jobs.get(job_id)
        if src is None:
            return
        src["Managed"], src["ManagedManager"] = ("ScheddDone" if done else "Schedd"), ""
        if not done and src.get("JobStatus") == 2:
            src["JobStatus"] = 1
            self.events[job_id].append("004 evicted")

    def _mirror(self, routed: RoutedJob, copy: classad2.ClassAd) -> None:
        """update_job_status(): copy -> source, with user-log events."""
        src = self.jobs[routed.source_id]
        old, new = src.get("JobStatus"), copy.get("JobStatus")
        if old in (3,) or (old == 5 and not src.get("HoldCopiedFromTargetJob")):
            return
        if new in (2, 6) and old != 2:
            src["JobStatus"] = 2
            self.events[routed.source_id].append(f"001 executing on host: {routed.copy_id}")
        elif new == 1 and old != 1:
            src["JobStatus"] = 1
            if old == 2:
                self.events[routed.source_id].append("004 evicted")
        elif new == 5 and old != 5:
            src["JobStatus"] = 5
            for attr in ("HoldReason", "HoldReasonCode", "HoldReasonSubCode"):
                if attr in copy:
                    src[attr] = copy.lookup(attr)
            src["HoldCopiedFromTargetJob"] = True
            src["EnteredCurrentStatus"] = int(time.time())
        elif new not in (1, 2, 3, 5, 6):
            src["JobStatus"] = new
        for attr in (*MIRRORED, *self.attrs_to_copy):
            if attr in copy and str(copy.lookup(attr)) != str(src.lookup(attr) if attr in src else None):
                src[attr] = copy.lookup(attr)

    def poll(self) -> None:
        """One JOB_ROUTER_POLLING_PERIOD: every routed job takes its next step."""
        for routed in list(self.routed.values()):
            if routed.state == "claimed":
                if routed.source_id in self.jobs:
                    self._translate(routed)
                else:
                    routed.state = "retired"
            elif routed.state == "submitted":
                self._check(routed)
            if routed.state == "cleanup":
                self._cleanup(routed)
        self._reap()

    def _check(self, routed: RoutedJob) -> None:
        src, copy = self.jobs.get(routed.source_id), self.jobs.get(routed.copy_id or "")
        if src is None or copy is None:
            if src is not None:
                self._yield(routed.source_id, done=False)  # copy vanished: undo the routing
            routed.state = "cleanup" if copy is not None else "retired"
            return
        if src.get("JobStatus") == 3:
            self.events[routed.source_id].append("009 aborted")
            routed.state = "cleanup"
            return
        if src.get("JobStatus") == 5 and not src.get("HoldCopiedFromTargetJob"):
            routed.state = "cleanup"
            return
        if copy.get("JobStatus") == 4 and copy.get("JobFinishedHookDone"):
            self._finalize(routed, src, copy)
            return
        call = self.run_hook("update", routed.copy_id or "", router_print(copy))
        if call.router_exit_code != 0:
            return  # nothing else happens this poll
        out = self.parse_output(call)
        if out is None:
            self.jobs[routed.copy_id or ""]["JobStatus"] = 3  # GracefullyRemoveJob
            self._yield(routed.source_id, done=False)
            routed.state = "cleanup"
            return
        copy.update(out)
        self._mirror(routed, copy)

    def _finalize(self, routed: RoutedJob, src: classad2.ClassAd, copy: classad2.ClassAd) -> None:
        call = self.run_hook("finalize", routed.source_id, router_print(src) + "\n------\n" + router_print(copy))
        out = self.parse_output(call) if call.router_exit_code == 0 else None
        if out is None:
            src["JobStatus"] = 1  # RerouteJob
            self._yield(routed.source_id, done=False)
        else:
            src.update(out)
            copy["LeaveJobInQueue"] = False
            if copy.get("ExitBySignal"):
                self.events[routed.source_id].append(f"005 terminated by signal {copy.get('ExitSignal')}")
            else:
                self.events[routed.source_id].append(f"005 terminated normally (return value {copy.get('ExitCode')})")
            routed.finalized = True
        routed.state = "cleanup"

    def _cleanup(self, routed: RoutedJob) -> None:
        copy = self.jobs.get(routed.copy_id or "")
        if copy is not None:
            call = self.run_hook("cleanup", routed.copy_id or "", router_print(copy))
            if call.router_exit_code != 0:
                return  # retried every poll
            if not routed.finalized and copy.get("JobStatus") != 4:
                copy["JobStatus"] = 3  # FinishCleanupJob removes a copy that is not done
        src = self.jobs.get(routed.source_id)
        if src is not None:
            if src.get("JobStatus") == 3:
                self._yield(routed.source_id, done=True)
            elif src.get("JobStatus") == 5:
                self._yield(routed.source_id, done=False)
            else:
                self._yield(routed.source_id, done=routed.finalized)
        routed.state = "retired"

    def run_until(self, predicate, timeout: float = 120.0, period: float = 0.5) -> None:
        """Poll until ``predicate(self)`` is true; AssertionError with the hook transcript if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate(self):
                return
            time.sleep(period)
        tail = "\n".join(f"{c.hook} {c.job} rc={c.exit_code} out={c.stdout!r} err={c.stderr!r}"
                         for c in self.calls[-8:])
        raise AssertionError(f"router simulation timed out after {timeout} s; last hook calls:\n{tail}")


def hook_environment(condor_config: Path, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment the router gives hooks: its own, plus CONDOR_CONFIG (and no HOME)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOME",)}
    env["CONDOR_CONFIG"] = str(condor_config)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def write_gateway_config(
    directory: Path,
    routes: dict[str, str],
    knobs: Optional[dict[str, str]] = None,
) -> Path:
    """A complete CONDOR_CONFIG for a simulated gateway: hpcpull's shipped defaults file,
    the given routes (name -> route body) and knob overrides.  Returns the config path."""
    from hpcpull.script.render import packaged_template_dir  # noqa: F401 - ensures templates are importable

    directory.mkdir(parents=True, exist_ok=True)
    defaults = Path(__file__).resolve().parents[2] / "condor_config.d" / "50-hpcpull.conf"
    if not defaults.exists():
        defaults = Path(__file__).resolve().parents[1] / "data" / "condor_config" / "50-hpcpull.conf"
    lines = [
        f"LOCAL_DIR = {directory}",
        "LOG = $(LOCAL_DIR)/log",
        "SPOOL = $(LOCAL_DIR)/spool",
        f"include : {defaults}",
        f"JOB_ROUTER_ROUTE_NAMES = {' '.join(routes)}",
        "# The simulation runs every hook as the user running it, root in CI.",
        "HPCPULL_ALLOW_ROOT = true",
    ]
    for name, body in routes.items():
        lines += [f"JOB_ROUTER_ROUTE_{name} @=jrt", body.strip(), "@jrt"]
    for knob, value in (knobs or {}).items():
        lines.append(f"{knob} = {value}")
    config = directory / "condor_config"
    config.write_text("\n".join(lines) + "\n")
    for sub in ("log", "spool"):
        (directory / sub).mkdir(exist_ok=True)
    ensure_shared_dir(directory / "log" / "hpcpull")  # HPCPULL_LOG's directory
    return config
