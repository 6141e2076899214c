"""Job ad -> typed resource request.

Attributes (evaluated with classad2, so expressions such as HTCondor's default
``RequestDisk = MAX({ 1024,(TransferInputSizeMB + 1) * 1.25 }) * 1024`` work):

==================  ======  ===========================================================
attribute           unit    meaning
==================  ======  ===========================================================
``RequestCpus``     cores   default 1 (0 also means 1)
``RequestMemory``   MB      no memory request when absent or 0 (``--mem=0`` would mean
                            "the whole node" to Slurm)
``RequestDisk``     KB      local scratch, mapped only if the route says so
``RequestGPUs``     GPUs    default 0
``BatchRuntime``    s       wall-time limit (the blahp attribute) ...
``maxWallTime``     min     ... else HTCondor-CE's attribute ...
                            ... else the route's ``HPCPULL_DEFAULT_WALLTIME`` (0 = none)
==================  ======  ===========================================================

Values are rounded up to integers. A value that is not a non-negative number, or that
is absurdly large (> 10**9), rejects the job with a reason naming the attribute; an
attribute that is absent or evaluates to ``undefined`` takes its default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .config import RouteSettings
from .errors import JobRejected
from .holds import HOLD_SUBCODE_RESOURCES
from .payload import JobAd, ad_value

MAX_VALUE = 10**9


@dataclass(frozen=True)
class ResourceRequest:
    cpus: int
    memory_mb: Optional[int]
    disk_kb: Optional[int]
    gpus: int
    walltime_s: Optional[int]

    @property
    def disk_mb(self) -> Optional[int]:
        """``disk_kb`` in MB, rounded up (batch systems take MB)."""
        return None if self.disk_kb is None else -(-self.disk_kb // 1024)


def _number(job_ad: JobAd, attribute: str) -> Optional[float]:
    """The attribute as a non-negative number, or None when absent/undefined."""
    value = ad_value(job_ad, attribute, HOLD_SUBCODE_RESOURCES)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobRejected(
            f"{attribute} = {str(value)[:100]!r} is not a number", hold_subcode=HOLD_SUBCODE_RESOURCES
        )
    if not math.isfinite(value) or value < 0:
        raise JobRejected(
            f"{attribute} = {value} must be a non-negative number", hold_subcode=HOLD_SUBCODE_RESOURCES
        )
    if value > MAX_VALUE:
        raise JobRejected(
            f"{attribute} = {value:g} is too large (at most {MAX_VALUE:g})",
            hold_subcode=HOLD_SUBCODE_RESOURCES,
        )
    return value


def _whole(value: Optional[float]) -> Optional[int]:
    """Rounded up; 0 and None both mean "not requested"."""
    if value is None:
        return None
    return math.ceil(value) or None


def _walltime_s(job_ad: JobAd, route: RouteSettings) -> Optional[int]:
    seconds = _whole(_number(job_ad, "BatchRuntime"))
    if seconds is None:
        minutes = _number(job_ad, "maxWallTime")
        seconds = _whole(None if minutes is None else minutes * 60)
    if seconds is None and route.default_walltime_s > 0:
        seconds = route.default_walltime_s
    return seconds


def resource_request(job_ad: JobAd, route: RouteSettings) -> ResourceRequest:
    """What the job asks of the batch system (see the module docstring for the rules)."""
    return ResourceRequest(
        cpus=_whole(_number(job_ad, "RequestCpus")) or 1,
        memory_mb=_whole(_number(job_ad, "RequestMemory")),
        disk_kb=_whole(_number(job_ad, "RequestDisk")),
        gpus=_whole(_number(job_ad, "RequestGPUs")) or 0,
        walltime_s=_walltime_s(job_ad, route),
    )
