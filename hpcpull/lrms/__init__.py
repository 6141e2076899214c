"""Batch systems (LRMS): one adapter module per system, all behind :class:`base.BatchSystem`.

Adapters are imported on demand: a hook needs only its route's one, and every import is
paid again by each hook process.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from hpcpull.errors import ConfigError
from hpcpull.lrms.base import BatchJobStatus, BatchState, BatchSystem, LrmsError

__all__ = [
    "BATCH_SYSTEMS",
    "BatchJobStatus",
    "BatchState",
    "BatchSystem",
    "LrmsError",
    "get_batch_system",
]

# name (as in HPCPULL_LRMS) -> (module, adapter class)
BATCH_SYSTEMS: dict[str, tuple[str, str]] = {
    "slurm": ("slurm", "SlurmBatchSystem"),
    "lsf": ("lsf", "LsfBatchSystem"),
    "pbs": ("pbs", "PbsBatchSystem"),
    "pbspro": ("pbs", "PbsProBatchSystem"),
    "sge": ("sge", "SgeBatchSystem"),
}


def get_batch_system(name: str, env: Mapping[str, str], timeout: float = 30.0) -> BatchSystem:
    """The adapter for batch system ``name`` (case-insensitive), running commands with ``env``."""
    entry = BATCH_SYSTEMS.get(name.strip().lower()) if isinstance(name, str) else None
    if entry is None:
        raise ConfigError(
            f"unknown batch system {name!r} (supported: {', '.join(sorted(BATCH_SYSTEMS))})"
        )
    module, cls = entry
    factory = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return factory(env, timeout)


def __getattr__(attr: str) -> Any:
    """``from hpcpull.lrms import SlurmBatchSystem`` still works (imports that adapter)."""
    for module, cls in BATCH_SYSTEMS.values():
        if cls == attr:
            return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    raise AttributeError(attr)
