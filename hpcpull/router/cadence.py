"""How often the router runs UPDATE for one routed job: every poll, or once per
HPCPULL_UPDATE_INTERVAL in a window of the job's own.

The router picks a job's hooks by the keyword the job's HookKeyword evaluates to, on its
own copy of the source job, each time it is about to run one
(src/condor_job_router/JobRouterHookMgr.cpp, getHookPath and getHookKeyword); for a keyword
with no UPDATE_JOB_INFO hook it mirrors the routed copy onto the source job without one
(JobRouter.cpp, CheckSubmittedJobStatus).  So TRANSLATE gives the routed copy a HookKeyword
that names the gateway's keyword only in a window once per interval, and otherwise a second
keyword -- the first with ``_RESTING`` appended -- that names the same TRANSLATE, FINALIZE
and CLEANUP hooks and no UPDATE hook.  The router copies it onto the source job on the
first update, with the other attributes of ``<keyword>_ATTRS_TO_COPY``
(src/condor_job_router/VanillaToGrid.cpp, update_job_status).

Why: the router starts an UPDATE hook for every routed job at every poll, all at once; it
registers each with condor_procd, which takes a snapshot of /proc for every registration
(src/condor_utils/HookClientMgr.cpp, spawn: a FamilyInfo whenever useProcd()), and it feeds
their stdin one hook per event-loop iteration.  Each start costs the gateway several times
what a cheap hook costs, and thousands together overwhelm it; windows at offsets spread
over the interval start a steady trickle instead.  A job with no batch job yet (submission waits for
a throttle, for instance) is updated at every poll, and so is a job the poller has woken
(``HpcPullWake``, state/wake.py) because its batch job has news: the interval bounds how
long a job goes unchecked, not how late a change shows.  A held job too: the router holds
its copy of the source again from the held routed copy at every poll it runs no UPDATE
(JobRouter.cpp, FinishCheckSubmittedJobStatus -> update_job_status), so only an UPDATE in
that same poll sees a condor_release (router/update.py, _on_held); the router's copy of
the source stays held (JobStatus 5) until then, whatever the user did.  Once the router gives the job back
(Managed "Schedd" or "ScheddDone", src/condor_job_router/submit_job.cpp, yield_job) the
expression is undefined, as if the job had no HookKeyword: a startd that runs it later looks
for no hpcpull hooks.  (The test is that way round because the router's own copy of the
source job, seen on the real router, does not carry the Managed = "External" of its claim.)
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Optional

from hpcpull.config import Config

RESTING_SUFFIX = "_RESTING"
SHARED_HOOKS = ("TRANSLATE_JOB", "JOB_FINALIZE", "JOB_CLEANUP")
DEFAULT_POLLING_PERIOD_S = 10  # JOB_ROUTER_POLLING_PERIOD's default (JobRouter.cpp, config)
_KEYWORD = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Cadence:
    """UPDATE once per ``interval_s``, in a ``window_s`` window (a little more than one poll)."""

    keyword: str
    resting: str
    interval_s: int
    window_s: int

    def hook_keyword(self, job_id: str) -> str:
        """The HookKeyword expression for the routed copy of ``job_id`` (cluster.proc)."""
        offset = zlib.crc32(job_id.encode()) % self.interval_s
        return (
            f'ifThenElse(Managed =?= "Schedd" || Managed =?= "ScheddDone", undefined, '
            f"ifThenElse(HpcPullBatchJobId =?= undefined || HpcPullWake =?= true || JobStatus =?= 5"
            f" || (time() + {offset}) % {self.interval_s} < {self.window_s}, "
            f'"{self.keyword}", "{self.resting}"))'
        )


def window_for(polling_period_s: int) -> int:
    """Long enough to hold one poll even when a poll runs a little late."""
    return polling_period_s + max(2, polling_period_s // 5)


def cadence(config: Config) -> tuple[Optional[Cadence], str]:
    """The cadence TRANSLATE gives routed copies; None (every poll) and why, when there is none."""
    interval = config.gateway().update_interval_s
    if interval <= 0:
        return None, ""
    keyword = config.param("JOB_ROUTER_HOOK_KEYWORD") or ""
    if not _KEYWORD.match(keyword):
        return None, f"HPCPULL_UPDATE_INTERVAL needs JOB_ROUTER_HOOK_KEYWORD set to a plain name (it is {keyword!r})"
    try:
        polling = int(float(config.param("JOB_ROUTER_POLLING_PERIOD") or DEFAULT_POLLING_PERIOD_S))
    except ValueError:
        polling = DEFAULT_POLLING_PERIOD_S
    window = window_for(max(polling, 1))
    if interval <= window:
        return None, ""  # the router's polling period already spaces the updates that far apart
    resting = keyword + RESTING_SUFFIX
    problem = resting_keyword_problem(config, keyword)
    if problem:
        return None, f"HPCPULL_UPDATE_INTERVAL is ignored: {problem}"
    return Cadence(keyword, resting, interval, window), ""


def resting_keyword_problem(config: Config, keyword: str) -> Optional[str]:
    """What is wrong with the resting keyword's configuration; None if nothing.  A job whose
    HookKeyword names a keyword without a CLEANUP hook would lose its batch job's cancel."""
    resting = keyword + RESTING_SUFFIX
    for hook in SHARED_HOOKS:
        mine, theirs = config.param(f"{keyword}_HOOK_{hook}"), config.param(f"{resting}_HOOK_{hook}")
        if mine != theirs:
            return f"{resting}_HOOK_{hook} must name the same hook as {keyword}_HOOK_{hook} ({mine or 'not set'})"
    if config.param(f"{resting}_HOOK_UPDATE_JOB_INFO"):
        return f"{resting}_HOOK_UPDATE_JOB_INFO must not be set"
    copied = config.param(f"{keyword}_ATTRS_TO_COPY") or ""
    names = {name.lower() for name in re.split(r"[\s,]+", copied)}
    for needed in ("HookKeyword", "HpcPullWake"):
        if needed.lower() not in names:
            return f"{keyword}_ATTRS_TO_COPY must list {needed} (it is {copied!r})"
    if config.param(f"{resting}_ATTRS_TO_COPY") != copied:
        return f"{resting}_ATTRS_TO_COPY must equal {keyword}_ATTRS_TO_COPY"
    return None
