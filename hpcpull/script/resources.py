"""Job ad -> what the job asks of the batch system, checked against the route's limits.

One place maps every job attribute hpcpull reads for the batch request; the templates
only translate the result into each batch system's directives (README, "Resource
mapping", has the table per batch system).  Attributes are evaluated with classad2, so
expressions such as HTCondor's default ``RequestDisk = MAX({ 1024,(TransferInputSizeMB + 1)
* 1.25 }) * 1024`` work; names are case-insensitive (``MaxWallTime`` is ``maxWallTime``).

=======================  ======  ==========================================================
attribute                unit    meaning
=======================  ======  ==========================================================
``xcount``               cores   HTCondor-CE's core count; wins over ``RequestCpus``
``RequestCpus``          cores   cores on each node (default 1; 0 also means 1)
``maxMemory``            MB      HTCondor-CE's memory; wins over ``RequestMemory``
``RequestMemory``        MB      memory on each node; none when absent or 0
``RequestDisk``          KB      node-local scratch, mapped only if the route says so
``RequestGPUs``          GPUs    GPUs on each node (default 0)
``HpcPullGPUType``       name    GPU model (e.g. a100), else the route's ``GPU_TYPE``
``BatchRuntime``         s       wall-time limit (the blahp attribute) ...
``maxWallTime``          min     ... else HTCondor-CE's ...
                                 ... else the route's ``DEFAULT_WALLTIME`` (0: the queue's)
``WantWholeNode``        bool    HTCondor-CE's whole-node request: exclusive node(s)
``HpcPullNodes``         nodes   nodes for a multi-node (MPI) job (default 1)
``HpcPullTasksPerNode``  tasks   MPI ranks per node (default 1); must divide the cores
``BatchQueue``/``queue`` name    queue (partition), else the route's ``PARTITION``
``BatchProject``         name    account (project), else the route's ``ACCOUNT``
=======================  ======  ==========================================================

A value that is not a non-negative number, or that is absurdly large (> 10**9), rejects
the job with a reason naming the attribute; an attribute that is absent or evaluates to
``undefined`` takes its default.  A request above a route maximum (``MAX_CPUS``,
``MAX_MEMORY``, ``MAX_GPUS``, ``MAX_NODES``, ``MAX_WALLTIME``), or a queue/account the
route does not allow (``ALLOWED_QUEUES``, ``ALLOWED_ACCOUNTS``), rejects the job with the
limit in the reason: a silent cap would only make the job fail later, somewhere else.

Names the job chooses
---------------------
A queue, account or GPU type name from the job (``BatchQueue``/``queue``, ``BatchProject``,
``HpcPullGPUType``) is written on a directive line, where every batch system gives some
characters a meaning of their own.  The job's name is used when it is the route's own
(``PARTITION``, ``ACCOUNT``, ``GPU_TYPE``, or listed in ``ALLOWED_QUEUES``/``ALLOWED_ACCOUNTS``:
the admin wrote it) or when it is a *plain name*: ASCII letters, digits, ``_``, ``.`` and
``-``, not starting with ``.`` or ``-``, at most 64 characters -- 15 for a PBS or PBS Pro
queue, 59 for an LSF queue.  Anything else holds the job (HoldReasonSubCode 15) with the
reason.  What the refused characters would do:

========  ==================================================================================
``,``     a list: ``sbatch --partition=a,b`` may run in either (sbatch(1)); Grid Engine
          ``-q`` takes a wc_queue_list (sge_types(1))
``@``     another server or host: PBS ``-q queue@server`` (qsub(1B), Torque and PBS Pro);
          Grid Engine ``-q queue@host`` or ``queue@@hostgroup``
``:``     a field separator: Slurm ``--gpus-per-node=type:count`` (``a100:8`` would make
          it ``a100:8:1``); PBS Pro chunk ``ncpus=1:gpu_model=t``; LSF ``-gpu
          "num=1:gmodel=t"``
``+``     PBS Pro ``select=chunk+chunk``: ``a100+4`` would start a second chunk
``=``     PBS Pro and LSF resource assignment
``*?[]``  Grid Engine wildcards in queue and host names
space     another word: LSF ``-q "a b"`` is a list of queues
``-``     first: read as an option
========  ==================================================================================

Grid Engine's own rule agrees: an object name (queue, project, complex) may not hold a
space, ``/ : ' \\ [ ] { } | ( ) @ % ,`` or ``"`` (sge_types(1)).  Slurm partition and
account names are free strings (``-A``: "an arbitrary string", sbatch(1)), so only the
list, type and option separators above matter there.  PBS queue names are at most 15
characters (``PBS_MAXQUEUENAME`` in ``pbs_ifl.h``, Torque and OpenPBS alike); LSF queue
names are letters, digits, ``_`` and ``-``, at most 59 characters (lsb.queues(5),
``QUEUE_NAME``; a ``.`` there names no queue, which bsub reports).  The 64-character cap
elsewhere is ours: no real queue, account or GPU model is longer, and it keeps a
megabyte-long value out of the script and out of the hold reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from hpcpull.config import RouteSettings
from hpcpull.errors import JobRejected
from hpcpull.holds import HOLD_SUBCODE_RESOURCES, HOLD_SUBCODE_UNSAFE_VALUE
from hpcpull.lrms import batch_system_class
from hpcpull.script.payload import JobAd, ad_value, short_repr

MAX_VALUE = 10**9
# A plain name (module docstring, "Names the job chooses"): what a job may choose as its
# queue, account or GPU type when the route does not list the name itself.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
NAME_MAX_LENGTH = 64  # a queue's: the adapter's queue_name_max (hpcpull.lrms)


@dataclass(frozen=True)
class ResourceRequest:
    """The batch request.  Per-node values; ``cpus`` = ``tasks_per_node`` x ``cpus_per_task``."""

    cpus: int
    memory_mb: Optional[int]
    disk_kb: Optional[int]
    gpus: int
    walltime_s: Optional[int]
    nodes: int = 1
    tasks_per_node: int = 1
    whole_node: bool = False
    gpu_type: str = ""
    partition: str = ""
    account: str = ""

    @property
    def cpus_per_task(self) -> int:
        return self.cpus // self.tasks_per_node

    @property
    def total_tasks(self) -> int:
        return self.nodes * self.tasks_per_node

    @property
    def total_cpus(self) -> int:
        return self.nodes * self.cpus

    @property
    def disk_mb(self) -> Optional[int]:
        """``disk_kb`` in MB, rounded up (batch systems take MB)."""
        return None if self.disk_kb is None else -(-self.disk_kb // 1024)


def _reject(reason: str, subcode: int = HOLD_SUBCODE_RESOURCES) -> JobRejected:
    return JobRejected(reason, hold_subcode=subcode)


def _number(job_ad: JobAd, attribute: str) -> Optional[float]:
    """The attribute as a non-negative number, or None when absent/undefined."""
    value = ad_value(job_ad, attribute, HOLD_SUBCODE_RESOURCES)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _reject(f"{attribute} = {str(value)[:100]!r} is not a number")
    if not math.isfinite(value) or value < 0:
        raise _reject(f"{attribute} = {value} must be a non-negative number")
    if value > MAX_VALUE:
        raise _reject(f"{attribute} = {value:g} is too large (at most {MAX_VALUE:g})")
    return value


def _whole(value: Optional[float]) -> Optional[int]:
    """Rounded up; 0 and None both mean "not requested"."""
    if value is None:
        return None
    return math.ceil(value) or None


def _first_whole(job_ad: JobAd, *attributes: str) -> Optional[int]:
    """The first of ``attributes`` that is set (non-zero), as a whole number."""
    for attribute in attributes:
        value = _whole(_number(job_ad, attribute))
        if value is not None:
            return value
    return None


def _flag(job_ad: JobAd, attribute: str) -> bool:
    value = ad_value(job_ad, attribute, HOLD_SUBCODE_RESOURCES)
    if value is None:
        return False
    if not isinstance(value, (bool, int)) or isinstance(value, float):
        raise _reject(f"{attribute} = {str(value)[:100]!r} is not a boolean")
    return bool(value)


def _name(job_ad: JobAd, attribute: str) -> Optional[str]:
    """The string the job gives for a queue/account/type name (``None`` when absent or empty)."""
    value = ad_value(job_ad, attribute, HOLD_SUBCODE_UNSAFE_VALUE)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _reject(f"{attribute} = {short_repr(value)} is not a valid name (not a string)",
                      HOLD_SUBCODE_UNSAFE_VALUE)
    return value


def plain_name(value: str, attribute: str, what: str, lrms: str) -> str:
    """``value`` if it is a plain name for a ``what`` ("queue", "account", "GPU type") on
    ``lrms``, else the job is refused (the rule and its reasons: the module docstring)."""
    limit = batch_system_class(lrms).queue_name_max if what == "queue" else NAME_MAX_LENGTH
    if len(value) <= limit and _PLAIN_NAME.match(value):
        return value
    raise _reject(
        f"{attribute} = {short_repr(value)} is not a valid name for a {what} on {lrms}: "
        f"1 to {limit} ASCII letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        HOLD_SUBCODE_UNSAFE_VALUE,
    )


def _walltime_s(job_ad: JobAd, route: RouteSettings) -> tuple[Optional[int], str]:
    """Seconds and where they came from (for the reason of a refusal)."""
    seconds = _whole(_number(job_ad, "BatchRuntime"))
    if seconds is not None:
        return seconds, f"BatchRuntime = {seconds} s"
    minutes = _number(job_ad, "maxWallTime")
    seconds = _whole(None if minutes is None else minutes * 60)
    if seconds is not None:
        return seconds, f"maxWallTime = {minutes:g} min"
    if route.default_walltime_s > 0:
        return route.default_walltime_s, "the route's default walltime"
    return None, ""


def _chosen(job_ad: JobAd, attributes: tuple[str, ...], default: str, allowed: tuple[str, ...],
            what: str, route: RouteSettings, knob: str) -> str:
    """The job's own queue/account if it names one the route allows, else the route's."""
    for attribute in attributes:
        value = _name(job_ad, attribute)
        if value is None:
            continue
        if value == default or value in allowed:
            return value  # a name the admin wrote: the route's own
        if "*" in allowed:
            return plain_name(value, attribute, what, route.lrms)
        permitted = ", ".join(allowed) if allowed else f"only {default or 'the default'}"
        raise _reject(
            f"{attribute} = {short_repr(value)}: route {route.name} does not allow that {what} "
            f"(HPCPULL_{knob}: {permitted})"
        )
    return default


def _gpu_type(job_ad: JobAd, route: RouteSettings) -> str:
    """The job's GPU type if it gives a plain name (or the route's own), else the route's."""
    value = _name(job_ad, "HpcPullGPUType")
    if value is None or value == route.gpu_type:
        return route.gpu_type
    return plain_name(value, "HpcPullGPUType", "GPU type", route.lrms)


def _hms(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _check_limit(route: RouteSettings, what: str, value: Optional[int], limit: Optional[int],
                 knob: str, unit: str = "") -> None:
    if value is None or limit is None or value <= limit:
        return
    raise _reject(
        f"{what}{unit} is above route {route.name}'s maximum of {limit}{unit} "
        f"(HPCPULL_ROUTE_{route.name}_{knob})"
    )


def resource_request(job_ad: JobAd, route: RouteSettings) -> ResourceRequest:
    """What the job asks of the batch system (see the module docstring for the rules)."""
    cpus = _first_whole(job_ad, "xcount", "RequestCpus") or 1
    nodes = _whole(_number(job_ad, "HpcPullNodes")) or 1
    tasks_per_node = _whole(_number(job_ad, "HpcPullTasksPerNode")) or 1
    if tasks_per_node > 1 and "RequestCpus" not in job_ad and "xcount" not in job_ad:
        cpus = tasks_per_node  # one core per rank unless the job says otherwise
    if cpus % tasks_per_node:
        raise _reject(
            f"HpcPullTasksPerNode = {tasks_per_node} does not divide the {cpus} cores requested per node "
            "(RequestCpus is the cores on each node)"
        )
    memory_mb = _first_whole(job_ad, "maxMemory", "RequestMemory")
    gpus = _whole(_number(job_ad, "RequestGPUs")) or 0
    walltime_s, walltime_from = _walltime_s(job_ad, route)

    _check_limit(route, f"{cpus} cores per node", cpus, route.max_cpus, "MAX_CPUS")
    _check_limit(route, f"RequestMemory = {memory_mb}", memory_mb, route.max_memory_mb, "MAX_MEMORY", " MB")
    _check_limit(route, f"RequestGPUs = {gpus}", gpus, route.max_gpus, "MAX_GPUS")
    _check_limit(route, f"HpcPullNodes = {nodes}", nodes, route.max_nodes, "MAX_NODES")
    if walltime_s is not None and route.max_walltime_s is not None and walltime_s > route.max_walltime_s:
        raise _reject(
            f"{walltime_from} ({_hms(walltime_s)}) is above route {route.name}'s maximum walltime of "
            f"{_hms(route.max_walltime_s)} (HPCPULL_ROUTE_{route.name}_MAX_WALLTIME)"
        )
    return ResourceRequest(
        cpus=cpus,
        memory_mb=memory_mb,
        disk_kb=_whole(_number(job_ad, "RequestDisk")),
        gpus=gpus,
        walltime_s=walltime_s,
        nodes=nodes,
        tasks_per_node=tasks_per_node,
        whole_node=_flag(job_ad, "WantWholeNode"),
        gpu_type=_gpu_type(job_ad, route) if gpus else "",
        partition=_chosen(job_ad, ("BatchQueue", "queue"), route.partition, route.allowed_queues,
                          "queue", route, "ALLOWED_QUEUES"),
        account=_chosen(job_ad, ("BatchProject",), route.account, route.allowed_accounts,
                        "account", route, "ALLOWED_ACCOUNTS"),
    )
