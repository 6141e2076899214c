"""Kill one hook process at a named crash point, and react to it as condor_job_router does.

``CrashOnce`` sets HPCPULL_TEST_CRASH_AT (hpcpull/faults.py) in the environment of the
real hook executables that RouterSim runs, for calls of one hook only, until one of them
has been SIGKILLed at the point; every other call runs with the normal environment.

How the real router reacts to a hook killed by a signal (HTCondor
src/condor_job_router/JobRouterHookMgr.cpp, ``*Client::hookExited``; the status handed to
them is the raw waitpid() status, see HookClientMgr::reaperOutput): TRANSLATE, UPDATE and
FINALIZE look only at ``WEXITSTATUS(status)``, which is 0 for a death by signal, and at
stdout, which is empty (our hooks print only when they are done); CLEANUP tests
``WIFSIGNALED(status) || !WEXITSTATUS(status)`` explicitly.  So a killed hook is *not* a
failed one:

=========  ===========================================================================
TRANSLATE  "returned no data": the job stays CLAIMED and TRANSLATE runs again next poll
UPDATE     "returned no data": FinishCheckSubmittedJobStatus, i.e. a poll without news
FINALIZE   FinishFinalizeJob: the terminate event is written and CLEANUP follows;
           FINALIZE is NOT run again
CLEANUP    FinishCleanupJob: the copy is finished off and the source yielded; CLEANUP is
           NOT run again
=========  ===========================================================================

RouterSim reacts to a hook killed by a signal in the same way (``HookCall.router_exit_code``),
so ``CrashOnce`` hands it the killed call as it is: exit code -9 and no output.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import Callable, Optional

from hpcpull.faults import CRASH_ENV, CRASH_POINTS
from hpcpull.testing.router_sim import HookCall, RouterSim

KILLED = -int(signal.SIGKILL)  # subprocess's returncode for a child killed by SIGKILL
TOKEN = re.compile(r"[0-9a-f]{12}")  # submission.py: secrets.token_hex(6)


class CrashOnce:
    """Arm ``point`` for the hook it belongs to until one call of that hook was killed there."""

    def __init__(self, router: RouterSim, point: str,
                 on_crash: Optional[Callable[[HookCall], None]] = None) -> None:
        if point not in CRASH_POINTS:
            raise ValueError(f"unknown crash point {point!r}")
        self.router = router
        self.point = point
        self.hook = point.split(":", 1)[0]
        self.on_crash = on_crash
        self.killed: list[HookCall] = []
        self._real_run_hook = router.run_hook
        router.run_hook = self._run_hook  # type: ignore[method-assign]  # RouterSim calls self.run_hook

    def _run_hook(self, hook: str, job_id: str, stdin: str) -> HookCall:
        if hook != self.hook or self.killed:
            return self._real_run_hook(hook, job_id, stdin)
        normal = self.router.env
        self.router.env = {**normal, CRASH_ENV: self.point}
        try:
            call = self._real_run_hook(hook, job_id, stdin)
        finally:
            self.router.env = normal
        if call.exit_code != KILLED:
            return call  # this call did not pass the point: stay armed for the next one
        assert call.stdout == "", f"a killed {hook} printed {call.stdout!r}: the router would parse it"
        self.killed.append(call)
        if self.on_crash is not None:
            self.on_crash(call)
        return call  # RouterSim reads it as the router does: WEXITSTATUS 0, no output


def _lines(argv: list[str], env: dict[str, str]) -> list[str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=True)
    return [line for line in proc.stdout.splitlines() if line.strip()]


def batch_jobs(router: RouterSim, source_id: str, route: str = "Slurm") -> dict[str, str]:
    """Every Slurm job ever submitted for HTCondor job ``source_id``: {id: name}.

    The names are ``hpcpull-<route>-<ClusterId.ProcId>-<token>``.  ``squeue -t all`` lists
    the jobs the controller still knows (MinJobAge = 300 s on the private cluster) and
    ``sacct -c`` reads the jobcomp log, which keeps every job that ended.
    """
    pattern = re.compile(rf"hpcpull-{re.escape(route)}-{re.escape(source_id)}-{TOKEN.pattern}")
    env = router.slurm_env  # type: ignore[attr-defined]
    rows = _lines(["squeue", "-a", "-h", "-t", "all", "-o", "%i|%j"], env)
    rows += _lines(["sacct", "-c", "-a", "-n", "-P", "-o", "JobID,JobName"], env)
    jobs: dict[str, str] = {}
    for row in rows:
        job_id, _, name = row.partition("|")
        if pattern.fullmatch(name.strip()):
            jobs[job_id.strip()] = name.strip()
    return jobs


def slurm_state(router: RouterSim, job_id: str) -> str:
    env = router.slurm_env  # type: ignore[attr-defined]
    return "".join(_lines(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], env))


def staging_leftovers(scratch: Path) -> list[Path]:
    """What an interrupted TRANSLATE leaves behind (sandbox.py: ``<proc>.staging-*``, ``<proc>.old-*``)."""
    return sorted(p for p in scratch.rglob("*") if re.fullmatch(r"\d+\.(staging|old)-.+", p.name))


def transfer_temporaries(directory: Path) -> list[Path]:
    """Output files still under their temporary name (sandbox.py ``_place_file``)."""
    return sorted(directory.rglob(".hpcpull-*.tmp"))
