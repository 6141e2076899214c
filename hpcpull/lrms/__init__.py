"""Batch systems (LRMS): one adapter module per system, all behind :class:`base.BatchSystem`."""

from __future__ import annotations

from typing import Callable, Mapping

from ..errors import ConfigError
from .base import BatchJobStatus, BatchState, BatchSystem, LrmsError
from .lsf import LsfBatchSystem
from .pbs import PbsBatchSystem, PbsProBatchSystem
from .sge import SgeBatchSystem
from .slurm import SlurmBatchSystem

__all__ = [
    "BATCH_SYSTEMS",
    "BatchJobStatus",
    "BatchState",
    "BatchSystem",
    "LrmsError",
    "LsfBatchSystem",
    "PbsBatchSystem",
    "PbsProBatchSystem",
    "SgeBatchSystem",
    "SlurmBatchSystem",
    "get_batch_system",
]

# name (as in HPCPULL_LRMS) -> adapter class
BATCH_SYSTEMS: dict[str, Callable[..., BatchSystem]] = {
    "slurm": SlurmBatchSystem,
    "lsf": LsfBatchSystem,
    "pbs": PbsBatchSystem,
    "pbspro": PbsProBatchSystem,
    "sge": SgeBatchSystem,
}


def get_batch_system(name: str, env: Mapping[str, str], timeout: float = 30.0) -> BatchSystem:
    """The adapter for batch system ``name`` (case-insensitive), running commands with ``env``."""
    factory = BATCH_SYSTEMS.get(name.strip().lower()) if isinstance(name, str) else None
    if factory is None:
        raise ConfigError(
            f"unknown batch system {name!r} (supported: {', '.join(sorted(BATCH_SYSTEMS))})"
        )
    return factory(env, timeout)
