"""Whether a route may submit another batch job now (HPCPULL_MAX_BATCH_JOBS,
HPCPULL_MAX_BATCH_IDLE, HPCPULL_SUBMITS_PER_MINUTE).

The per-minute limit keeps its own file per route and user in the status cache directory,
``<route>-submits.<uid>``: the epoch times of the last minute's submissions, space-separated
("%.3f"), rewritten atomically after each submission.  Hooks run as the job owner, so each
user's hooks count their own submissions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hpcpull.config import GatewaySettings, RouteSettings
from hpcpull.lrms.base import BatchState, BatchSystem
from hpcpull.router.common import status_cache
from hpcpull.state.atomicfile import ensure_shared_dir, write_atomically


def throttled(route: RouteSettings, gateway: GatewaySettings, batch: BatchSystem) -> str:
    """Why a submission on ``route`` must wait now ("" if it may go ahead)."""
    from hpcpull.state.submission import route_of_batch_job

    if route.max_batch_jobs is not None or route.max_batch_idle is not None:
        snap = status_cache(batch, gateway).snapshot()  # the period's shared query, refreshed if stale
        if snap.ok:
            mine = [s for s in snap.jobs.values() if route_of_batch_job(s.name) == route.name and s.state.is_active]
            waiting = sum(1 for s in mine if s.state is BatchState.PENDING)
            if route.max_batch_jobs is not None and len(mine) >= route.max_batch_jobs:
                return f"route {route.name} has {len(mine)} jobs in {batch.name} (HPCPULL_MAX_BATCH_JOBS)"
            if route.max_batch_idle is not None and waiting >= route.max_batch_idle:
                return f"route {route.name} has {waiting} jobs waiting in {batch.name} (HPCPULL_MAX_BATCH_IDLE)"
    if route.submits_per_minute is not None:
        recent = _recent_submissions(gateway, route)
        if len(recent) >= route.submits_per_minute:
            return f"{len(recent)} submissions on route {route.name} in the last minute (HPCPULL_SUBMITS_PER_MINUTE)"
    return ""


def _submissions_file(gateway: GatewaySettings, route: RouteSettings) -> Path:
    return gateway.status_cache_dir / f"{route.name}-submits.{os.getuid()}"


def _recent_submissions(gateway: GatewaySettings, route: RouteSettings) -> list[float]:
    try:
        stamps = [float(x) for x in _submissions_file(gateway, route).read_text().split()]
    except (OSError, ValueError):
        return []
    return [t for t in stamps if time.time() - t < 60]


def record_submission(gateway: GatewaySettings, route: RouteSettings) -> None:
    """Count one submission on ``route`` for HPCPULL_SUBMITS_PER_MINUTE (best effort)."""
    if route.submits_per_minute is None:
        return
    try:
        stamps = _recent_submissions(gateway, route) + [time.time()]
        ensure_shared_dir(gateway.status_cache_dir)
        write_atomically(_submissions_file(gateway, route), " ".join(f"{t:.3f}" for t in stamps), mode=0o644)
    except OSError:
        pass
