"""The status index that lets a steady-state UPDATE decide without starting Python.

The job router runs one UPDATE_JOB_INFO process per routed job per polling period
(condor_job_router: JobRouter::Poll -> CheckSubmittedJobStatus -> hookUpdateJobInfo, no cap),
and almost always nothing has changed.  The schedd-cron poller, running as root or condor,
keeps one small file per waiting or running hpcpull batch job::

    <HPCPULL_STATUS_CACHE_DIR>/<lrms>-index/valid-until     "<valid until> <taken at>" (epochs)
    <HPCPULL_STATUS_CACHE_DIR>/<lrms>-index/<batch job id>  "1" (waiting) or "2" (running)

The values are the routed copy's JobStatus for that batch state, so the UPDATE hook's shell
front end (hooks/hpcpull-update) compares the copy's JobStatus on stdin with one file and
prints nothing when they agree.  The full Python hook runs on anything else, and puts into
the routed ad what the front end needs: ``HpcPullFastIndex`` (the index directory, only if
only root or condor can write it) and ``HpcPullFullCheckAt`` (when the full hook must look
again on its own: the idle limit, credential renewal; 0 = never) and ``HpcPullSubmittedAt``
(a batch job submitted after the index's snapshot is not in it yet, and is taken as waiting).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Iterable, Mapping, Optional

from hpcpull.lrms.base import BatchJobStatus, BatchState
from hpcpull.state.atomicfile import write_atomically

VALID_UNTIL = "valid-until"
MANIFEST = ".manifest.json"
# The front end accepts these ids and directory names only (hooks/hpcpull-update).
INDEXABLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
INDEXABLE_DIR = re.compile(r"^/[A-Za-z0-9._/-]*$")
# How often the full hook looks at a job whose credentials it renews (x509userproxy,
# ScitokensFile): a renewed proxy reaches the batch job within this many seconds.
CREDENTIAL_CHECK_S = 300


def index_dir(status_cache_dir: Path, lrms: str) -> Path:
    return status_cache_dir / f"{lrms}-index"


def copy_status(state: BatchState) -> Optional[int]:
    """The routed copy's JobStatus while the batch job is in ``state`` (None: not indexed)."""
    if state is BatchState.PENDING:
        return 1
    if state.is_active:
        return 2
    return None


def index_entries(jobs: Mapping[str, BatchJobStatus], is_ours: Iterable[str]) -> dict[str, int]:
    """What the index holds for one snapshot: {batch job id: the copy's JobStatus}."""
    ours = set(is_ours)
    wanted = {job_id: copy_status(status.state) for job_id, status in jobs.items()
              if job_id in ours and INDEXABLE_ID.match(job_id)}
    return {job_id: value for job_id, value in wanted.items() if value is not None}


def front_end_passes(status: Optional[int], batch_job_id: str, check_at: Optional[int],
                     submitted_at: Optional[int], entries: Mapping[str, int], taken_at: float,
                     now: float) -> bool:
    """Whether UPDATE's front end (hooks/hpcpull-update) would print nothing for a copy with
    these attributes, given a current index holding ``entries`` from a snapshot taken at
    ``taken_at``: the same rule as its awk ``nothing_changed``, for the poller, which must
    know which copies have news without starting their hooks (state/wake.py)."""
    if status not in (1, 2) or not batch_job_id or check_at is None:
        return False
    if 0 < check_at <= now:
        return False
    if batch_job_id in entries:
        return entries[batch_job_id] == status
    # Not in the index: only a batch job submitted after its snapshot may be, while idle.
    return status == 1 and taken_at > 0 and submitted_at is not None and submitted_at >= int(taken_at)


# --------------------------------------------------------------------------- the poller


def write_index(directory: Path, jobs: Mapping[str, BatchJobStatus], taken_at: float, valid_until: float,
                is_ours: Iterable[str] = ()) -> int:
    """Bring the index up to date with one snapshot; returns how many entries changed."""
    return write_entries(directory, index_entries(jobs, is_ours), taken_at, valid_until)


def write_entries(directory: Path, wanted: Mapping[str, int], taken_at: float, valid_until: float) -> int:
    """Make the index hold ``wanted`` (index_entries); returns how many entries changed.

    Only entries that changed are rewritten (each atomically), so a steady gateway costs a
    directory read, not thousands of writes.  ``valid-until`` goes last: a reader between
    two polls sees either the previous or the new complete picture of any one job.
    """
    directory.mkdir(mode=0o755, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{directory} is not a directory of this user's")
    os.chmod(directory, 0o755)
    previous = _read_manifest(directory)
    changed = 0
    for job_id, value in wanted.items():
        if previous.get(job_id) != value:
            write_atomically(directory / job_id, f"{value}\n", mode=0o644, durable=False)
            changed += 1
    for job_id in previous.keys() - wanted.keys():
        try:
            (directory / job_id).unlink()
        except FileNotFoundError:
            pass
        changed += 1
    write_atomically(directory / MANIFEST, json.dumps(wanted), mode=0o644, durable=False)
    write_atomically(directory / VALID_UNTIL, f"{int(valid_until)} {int(taken_at)}\n", mode=0o644, durable=False)
    return changed


def _read_manifest(directory: Path) -> dict[str, int]:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        return {str(k): int(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        # No record of what is there: rebuild from the directory itself.
        entries: dict[str, int] = {}
        try:
            for entry in os.scandir(directory):
                if INDEXABLE_ID.match(entry.name) and entry.name != VALID_UNTIL:
                    entries[entry.name] = -1  # rewritten or removed below
        except OSError:
            pass
        return entries


def invalidate(directory: Path) -> None:
    """The batch system did not answer: the front end must not trust the index any more."""
    try:
        write_atomically(directory / VALID_UNTIL, "0 0\n", mode=0o644, durable=False)
    except OSError:
        pass


# --------------------------------------------------------------------------- the full hook


def trusted(directory: Path, service_uids: Iterable[int]) -> bool:
    """Whether only root or condor can change what ``directory`` says: it and its files are
    theirs, and no other user can replace it (every ancestor is not writable by others, or
    is sticky, as /tmp is)."""
    uids = set(service_uids)
    if not INDEXABLE_DIR.match(str(directory)) or ".." in directory.parts:
        return False
    try:
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in uids or st.st_mode & 0o022:
            return False
        for parent in directory.parents:
            pst = os.lstat(parent)
            if stat.S_ISLNK(pst.st_mode):
                return False
            if pst.st_mode & 0o002 and not pst.st_mode & stat.S_ISVTX:
                return False
            if pst.st_mode & 0o020 and pst.st_uid not in uids:
                return False
    except OSError:
        return False
    return True


def full_check_at(current: int, now: float, idle_deadline: Optional[float], renews_credentials: bool) -> int:
    """When the full hook must run again whatever the index says (0: never)."""
    deadlines = []
    if idle_deadline is not None:
        deadlines.append(int(idle_deadline))
    if renews_credentials:
        deadlines.append(current if current > now else int(now) + CREDENTIAL_CHECK_S)
    return min(deadlines) if deadlines else 0
