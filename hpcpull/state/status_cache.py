"""One bulk batch-system query per period, shared by every hook process on the gateway.

The router starts one UPDATE hook per routed job per poll; asking the batch system per
job is what HPC admins complain about (BLAHP).  The first hook that finds the snapshot
older than HPCPULL_STATUS_MAX_AGE refreshes it under an exclusive lock; the others wait
for it or read the result.  A failed query is stored as a failed snapshot, so a dead
controller is not hammered either; readers treat it as "no news", never as "finished".

Files are trusted only when written by root, the condor user or the reader itself:
a snapshot written by user A is never believed by user B.  Hooks of ordinary users
therefore share one query per user; the schedd cron poller (running as condor) makes
it one query per gateway.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from hpcpull.lrms.base import BatchJobStatus, LrmsError
from hpcpull.state.accounts import read_trusted_text, service_uids
from hpcpull.state.atomicfile import ensure_shared_dir, write_atomically

# The site status the schedd cron poller (poller.py) writes beside the snapshots; the
# admin tools read it.
SITE_STATUS = "site-status.json"

Refresh = Callable[[], "dict[str, BatchJobStatus]"]


@dataclass
class Snapshot:
    taken_at: float
    ok: bool
    error: str = ""
    jobs: dict[str, BatchJobStatus] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "taken_at": self.taken_at,
                "ok": self.ok,
                "error": self.error,
                "jobs": {k: v.to_dict() for k, v in self.jobs.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str, with_jobs: bool = True) -> Snapshot:
        """``with_jobs=False`` leaves ``jobs`` empty: a gateway's snapshot holds thousands of
        jobs, and building their statuses is most of a read for a caller that only asks
        whether the batch system answered."""
        data = json.loads(text)
        return cls(
            taken_at=float(data["taken_at"]),
            ok=bool(data["ok"]),
            error=str(data.get("error", "")),
            jobs={k: BatchJobStatus.from_dict(v) for k, v in data.get("jobs", {}).items()} if with_jobs else {},
        )


def _is_service_user() -> bool:
    return os.getuid() in service_uids()


class StatusCache:
    """A snapshot file per batch system in ``directory``, refreshed at most every ``max_age`` s."""

    def __init__(
        self,
        directory: Path,
        name: str,
        max_age: float,
        refresh: Refresh,
        clock: Callable[[], float] = time.time,
        lock_wait: float = 60.0,
    ) -> None:
        self.directory = directory
        self.name = name
        self.max_age = max_age
        self.refresh = refresh
        self.clock = clock
        self.lock_wait = lock_wait

    @property
    def shared_path(self) -> Path:
        return self.directory / f"{self.name}.json"

    @property
    def own_path(self) -> Path:
        """Where this process writes: the shared file for root/condor, else a per-user file."""
        if _is_service_user():
            return self.shared_path
        return self.directory / f"{self.name}.{os.getuid()}.json"

    def _read(self, path: Path, with_jobs: bool = True) -> Optional[Snapshot]:
        text = read_trusted_text(path)
        if text is None:
            return None
        try:
            return Snapshot.from_json(text, with_jobs)
        except (ValueError, KeyError, TypeError):
            return None

    def latest(self, with_jobs: bool = True) -> Optional[Snapshot]:
        """The newest trusted snapshot (shared or this user's), whatever its age; without
        its jobs' statuses if ``with_jobs`` is false."""
        return self._newest(with_jobs)

    def read_shared(self) -> Optional[Snapshot]:
        """The gateway-wide snapshot (the poller's), if there is a trusted one."""
        return self._read(self.shared_path)

    def store(self, snap: Snapshot) -> None:
        """Write ``snap`` where this process writes (the shared file for root/condor)."""
        ensure_shared_dir(self.directory)
        self._write(snap)

    def _fresh(self, snap: Optional[Snapshot]) -> bool:
        return snap is not None and 0 <= self.clock() - snap.taken_at < self.max_age

    def _newest(self, with_jobs: bool = True) -> Optional[Snapshot]:
        snaps = [s for s in (self._read(self.shared_path, with_jobs), self._read(self.own_path, with_jobs)) if s]
        return max(snaps, key=lambda s: s.taken_at) if snaps else None

    def snapshot(self) -> Snapshot:
        """A snapshot no older than max_age, or a failed one saying why there is none."""
        current = self._newest()
        if self._fresh(current):
            assert current is not None
            return current
        try:
            ensure_shared_dir(self.directory)
            lock = open(self.own_path.with_suffix(".lock"), "a+")
        except OSError as exc:
            # No usable cache directory: still correct, just one query per hook.
            return self._query(f"(uncached: {exc.strerror})")
        with lock:
            if not self._acquire(lock):
                stale = current or Snapshot(taken_at=0.0, ok=False)
                return Snapshot(stale.taken_at, False, "status refresh by another process is late")
            current = self._newest()
            if self._fresh(current):
                assert current is not None
                return current
            snap = self._query("")
            self._write(snap)
            return snap

    def _acquire(self, lock) -> bool:
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)

    def _query(self, note: str) -> Snapshot:
        taken_at = self.clock()
        try:
            return Snapshot(taken_at, True, note, self.refresh())
        except LrmsError as exc:
            return Snapshot(taken_at, False, str(exc))

    def _write(self, snap: Snapshot) -> None:
        try:
            write_atomically(self.own_path, snap.to_json(), mode=0o644)
        except OSError:
            pass  # an unwritable cache costs extra queries, never correctness
