"""The routed copy of a job as the hooks see it: its ad parsed once into typed fields.

UPDATE_JOB_INFO and JOB_CLEANUP get the routed copy on stdin, JOB_FINALIZE gets it after the
source ad, and TRANSLATE_JOB builds it.  Each field reads as ``classads.string_attr`` /
``int_attr`` / ``number_attr`` do: an absent attribute, or one of another type, is the
default, and a number that is not finite (``1e999``) is the default too, so that a
hand-edited or hostile ad never raises here.  Only the job id is computed when asked: a
ClusterId of 1e999 must raise where the id is used, never name job 0.
``ad`` stays for what needs the whole ad (the JobStatus transitions, credentials, output
checks, the updates printed back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import classad2

from hpcpull.router.classads import int_attr, number_attr, string_attr


def _int(ad: classad2.ClassAd, name: str) -> int:
    value = number_attr(ad, name)
    return int(value) if math.isfinite(value) else 0


@dataclass(frozen=True)
class RoutedJob:
    ad: classad2.ClassAd = field(repr=False, compare=False)
    routed_from: str = ""          # RoutedFromJobId: the source job, "<ClusterId>.<ProcId>"
    status: int = 0                # JobStatus of the copy: the router's view of the job
    owner: str = ""
    route_name: str = ""           # RouteName, set by the router on the copy
    site: str = ""                 # HpcPullSite: the route TRANSLATE routed it on
    lrms: str = ""                 # HpcPullLrms: that route's batch system then
    job_dir: str = ""              # HpcPullJobDir as written (checked by common.routed_job_dir)
    batch_job_id: str = ""         # HpcPullBatchJobId
    partition: str = ""            # HpcPullPartition
    walltime_s: float = 0.0        # HpcPullWalltime
    request_memory: int = 0        # RequestMemory (MB)
    route_error: str = ""          # HpcPullRouteError: TRANSLATE refused the job (held by UPDATE)
    route_error_code: int = 0
    route_error_subcode: int = 0
    hold_reason: str = ""
    last_hold_reason: str = ""
    undone_routes: str = ""        # HpcPullUndoneRoutes: routes that gave the job back
    fast_index: str = ""           # HpcPullFastIndex: the status index the UPDATE front end reads
    full_check_at: int = 0         # HpcPullFullCheckAt: when the full UPDATE must look anyway
    has_full_check_at: bool = False
    submitted_at: int = 0          # HpcPullSubmittedAt

    @classmethod
    def of(cls, ad: classad2.ClassAd) -> RoutedJob:
        return cls(
            ad=ad,
            routed_from=string_attr(ad, "RoutedFromJobId"),
            status=_int(ad, "JobStatus"),
            owner=string_attr(ad, "Owner"),
            route_name=string_attr(ad, "RouteName"),
            site=string_attr(ad, "HpcPullSite"),
            lrms=string_attr(ad, "HpcPullLrms"),
            job_dir=string_attr(ad, "HpcPullJobDir"),
            batch_job_id=string_attr(ad, "HpcPullBatchJobId"),
            partition=string_attr(ad, "HpcPullPartition"),
            walltime_s=number_attr(ad, "HpcPullWalltime"),
            request_memory=_int(ad, "RequestMemory"),
            route_error=string_attr(ad, "HpcPullRouteError"),
            route_error_code=_int(ad, "HpcPullRouteErrorCode"),
            route_error_subcode=_int(ad, "HpcPullRouteErrorSubCode"),
            hold_reason=string_attr(ad, "HoldReason"),
            last_hold_reason=string_attr(ad, "LastHoldReason"),
            undone_routes=string_attr(ad, "HpcPullUndoneRoutes"),
            fast_index=string_attr(ad, "HpcPullFastIndex"),
            full_check_at=_int(ad, "HpcPullFullCheckAt"),
            has_full_check_at="HpcPullFullCheckAt" in ad,
            submitted_at=_int(ad, "HpcPullSubmittedAt"),
        )

    @property
    def id(self) -> str:
        """The copy's own id (in TRANSLATE, still the source's: the router numbers the copy later)."""
        return f"{int_attr(self.ad, 'ClusterId')}.{int_attr(self.ad, 'ProcId')}"

    @property
    def exit_by_signal(self) -> bool:
        """Evaluated only when asked, as the hooks always did: ExitBySignal may be an expression."""
        return "ExitBySignal" in self.ad and self.ad.eval("ExitBySignal") is True

    @property
    def exit_code(self) -> int:
        return int_attr(self.ad, "ExitCode")

    @property
    def exit_signal(self) -> int:
        return int_attr(self.ad, "ExitSignal")
