"""Waking the UPDATE of a routed job whose batch job has news, between its windows.

With HPCPULL_UPDATE_INTERVAL the router runs a routed job's UPDATE once per interval, in a
window of the job's own (router/cadence.py), so a batch job that starts or ends would wait
up to an interval to reach condor_q.  The poller has just taken the batch snapshot, so it
knows which jobs have news: after each poll it reads every routed copy's few relevant
attributes from the schedd (one query) and judges each as UPDATE's front end would
(fast_index.front_end_passes).  Copies whose front end would not stay silent get
``HpcPullWake = true`` (one edit for all of them), and the HookKeyword expression names the
UPDATE keyword while it is true.  The router copies ``HpcPullWake`` onto its own copy of the
source job, where it evaluates HookKeyword, with the other ``<keyword>_ATTRS_TO_COPY``
at its next poll (src/condor_job_router/JobRouter.cpp, FinishCheckSubmittedJobStatus ->
VanillaToGrid.cpp, update_job_status), and the poll after runs the UPDATE: news reaches
condor_q within a poller period and two polls, whatever the interval.  The full UPDATE sets
``HpcPullWake = false`` when it has looked; wakes no longer needed (the change was reported
meanwhile) are cleared here, so a lost or late edit costs one poller period, never a job.

Edits need the poller's user (condor) among QUEUE_SUPER_USERS, as HTCondor's default has
it; one that fails is reported and the jobs keep their windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from hpcpull.state.fast_index import front_end_passes

if TYPE_CHECKING:
    from hpcpull.router.schedd import HTCondorSchedd

WAKE = "HpcPullWake"
# Routed copies that have a batch job and are waiting or running: the ones whose UPDATE
# the front end may answer alone.  (RoutedFromJobId marks the router's copies.)
CONSTRAINT = ("RoutedFromJobId =!= undefined && HpcPullBatchJobId =!= undefined"
              " && (JobStatus == 1 || JobStatus == 2)")
PROJECTION = ["ClusterId", "ProcId", "JobStatus", "RouteName", "HpcPullBatchJobId", "HpcPullFullCheckAt",
              "HpcPullSubmittedAt", WAKE]


@dataclass(frozen=True)
class Snapshot:
    """One batch system's index entries and when its snapshot was taken."""

    entries: Mapping[str, int]
    taken_at: float


@dataclass(frozen=True)
class Wakes:
    """Which copies (cluster.proc) to wake and which to let rest again."""

    wake: list[str]
    rest: list[str]


def _int(ad: Mapping[str, Any], name: str) -> Optional[int]:
    value = ad.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def choose(copies: Iterable[Mapping[str, Any]], route_lrms: Mapping[str, str],
           snapshots: Mapping[str, Snapshot], now: float) -> Wakes:
    """The copies whose front end would not pass (and are not awake yet), and those awake
    for nothing.  Copies of other routes, or of a batch system without a fresh snapshot,
    are left as they are."""
    wake, rest = [], []
    for ad in copies:
        lrms = route_lrms.get(str(ad.get("RouteName", "")))
        snapshot = snapshots.get(lrms) if lrms else None
        cluster, proc = _int(ad, "ClusterId"), _int(ad, "ProcId")
        if snapshot is None or cluster is None or proc is None:
            continue
        batch_job_id = ad.get("HpcPullBatchJobId")
        passes = front_end_passes(_int(ad, "JobStatus"), batch_job_id if isinstance(batch_job_id, str) else "",
                                  _int(ad, "HpcPullFullCheckAt"), _int(ad, "HpcPullSubmittedAt"),
                                  snapshot.entries, snapshot.taken_at, now)
        awake = ad.get(WAKE) is True
        if not passes and not awake:
            wake.append(f"{cluster}.{proc}")
        elif passes and awake:
            rest.append(f"{cluster}.{proc}")
    return Wakes(wake, rest)


def wake_changed(route_lrms: Mapping[str, str], snapshots: Mapping[str, Snapshot], now: float) -> Wakes:
    """Read the routed copies from the local schedd and set or clear their HpcPullWake.

    One edit sets many jobs without waiting for an answer per job, so a job that left the
    queue between the query and the edit fails the whole transaction (src/condor_schedd.V6/
    qmgmt_receivers.cpp: in NoAck mode the commit fails after the first error): then the
    copies are read again and the edit tried once more."""
    from hpcpull.router.schedd import HTCondorSchedd

    schedd = HTCondorSchedd()
    try:
        return _wake_once(schedd, route_lrms, snapshots, now)
    except Exception:  # noqa: BLE001 - htcondor2 raises several kinds; a second failure is raised
        return _wake_once(schedd, route_lrms, snapshots, now)


def _wake_once(schedd: HTCondorSchedd, route_lrms: Mapping[str, str], snapshots: Mapping[str, Snapshot],
               now: float) -> Wakes:
    chosen = choose(schedd.routed_copies(CONSTRAINT, PROJECTION), route_lrms, snapshots, now)
    if chosen.wake:
        schedd.mark(chosen.wake, WAKE, "true")
    if chosen.rest:
        schedd.mark(chosen.rest, WAKE, "false")
    return chosen
