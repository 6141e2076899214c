"""Batch systems (LRMS): one adapter module per system, all behind :class:`base.BatchSystem`.

:data:`BATCH_SYSTEMS` is the one list of supported batch systems: hpcpull.config checks a
route's ``LRMS`` against its names, and everything else hpcpull knows about a system is
on its adapter class (commands, variables, walltime format, queue name length, step
launcher; see :class:`base.BatchSystem`).

Adapters are imported on demand: a hook needs only its route's one, and every import is
paid again by each hook process.  For the same reason importing this package imports
nothing else from it (hpcpull.config reads :data:`BATCH_SYSTEMS` on every hook start);
``from hpcpull.lrms import BatchState`` still works, importing base.py then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Mapping

from hpcpull.errors import ConfigError

if TYPE_CHECKING:
    from hpcpull.lrms.base import BatchSystem

__all__ = [
    "BATCH_SYSTEMS",
    "BatchJobStatus",
    "BatchState",
    "BatchSystem",
    "LrmsError",
    "batch_system_class",
    "get_batch_system",
]

# name (as in HPCPULL_LRMS) -> (module, adapter class).  Adding a batch system: its
# adapter module here, and templates/<name>/job.sh.j2 (README, "Adding a batch system").
BATCH_SYSTEMS: dict[str, tuple[str, str]] = {
    "slurm": ("slurm", "SlurmBatchSystem"),
    "pbs": ("pbs", "PbsBatchSystem"),
    "pbspro": ("pbs", "PbsProBatchSystem"),
    "sge": ("sge", "SgeBatchSystem"),
    "lsf": ("lsf", "LsfBatchSystem"),
}

_BASE_NAMES = frozenset({"BatchJobStatus", "BatchState", "BatchSystem", "LrmsError"})


def batch_system_class(name: str) -> type[BatchSystem]:
    """The adapter class of batch system ``name`` (case-insensitive), imported, not instantiated.

    Its class attributes are the system's facts (``commands``, ``environment_names``,
    ``inspect_commands``, ``step_launcher``, ``queue_name_max``, ``format_walltime``);
    reading them runs nothing.  An unknown name raises ConfigError.
    """
    entry = BATCH_SYSTEMS.get(name.strip().lower()) if isinstance(name, str) else None
    if entry is None:
        raise ConfigError(
            f"unknown batch system {name!r} (supported: {', '.join(sorted(BATCH_SYSTEMS))})"
        )
    module, cls = entry
    adapter: type[BatchSystem] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return adapter


def get_batch_system(name: str, env: Mapping[str, str], timeout: float = 30.0) -> BatchSystem:
    """The adapter for batch system ``name`` (case-insensitive), running commands with ``env``."""
    return batch_system_class(name)(env, timeout)


def __getattr__(attr: str) -> Any:
    """``from hpcpull.lrms import BatchState`` (or ``SlurmBatchSystem``) imports what it names."""
    if attr in _BASE_NAMES:
        return getattr(importlib.import_module(f"{__name__}.base"), attr)
    for module, cls in BATCH_SYSTEMS.values():
        if cls == attr:
            return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    raise AttributeError(attr)
