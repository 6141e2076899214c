"""Layout of a job directory on the shared scratch filesystem.

A job directory ``<scratch_root>/<Owner>/<ClusterId>/<ProcId>/`` is the job's sandbox
(its Iwd on the compute node).  hpcpull keeps its own files in the control directory
``.hpcpull/`` inside it; that directory is never returned as job output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CONTROL_DIR = ".hpcpull"

BATCH_SCRIPT = "job.sh"          # rendered batch script (what is submitted)
LAUNCHER = "launcher.py"         # copy of hpcpull/node/launcher.py run on the compute node
JOB_AD = "job.ad"                # the job ad, for the payload's $_CONDOR_JOB_AD
STARTED = "started"              # JSON written by the launcher when the payload starts
EXIT_STATUS = "exit_status"      # JSON written atomically by the launcher when it ends
STDOUT = "stdout"                # payload stdout (returned to the job's Out)
STDERR = "stderr"                # payload stderr (returned to the job's Err)
BATCH_OUTPUT = "batch.out"       # the batch system's own stdout/stderr of the script
INPUT_MANIFEST = "input-manifest.json"  # top-level entries staged in (to detect outputs)
STATE = "state.json"             # hook state: submission token, batch job id, ...
LOCK = "lock"                    # flock()ed by hooks that change the job's state
HOOK_LOG = "hook.log"            # one line per hook decision, for `hpcpull status`
HOOK_IO = "hook-io"              # last stdin/stdout/stderr per hook (HPCPULL_KEEP_HOOK_IO)
FAILED = "failed"                # <root>/<Owner>/failed/: kept failed jobs (HPCPULL_KEEP_FAILED_JOBS)

_OWNER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class JobDir:
    """Paths of one job directory."""

    path: Path

    @property
    def control(self) -> Path:
        return self.path / CONTROL_DIR

    def file(self, name: str) -> Path:
        return self.control / name


def valid_owner(owner: str) -> bool:
    """Owner names become a path component: letters, digits and _.- only."""
    return bool(_OWNER.match(owner)) and owner not in (".", "..")


def job_dir_for(scratch_root: Path, owner: str, cluster_id: int, proc_id: int) -> JobDir:
    """The job directory for a source job: ``<scratch root>/<Owner>/<ClusterId>/<ProcId>``."""
    if not valid_owner(owner):
        raise ValueError(f"Owner {owner!r} is not a valid user name")
    return JobDir(scratch_root / owner / str(int(cluster_id)) / str(int(proc_id)))


def failed_copy_for(job: JobDir, stamp: str) -> Path:
    """Where a failed job's directory is kept: ``<root>/<Owner>/failed/<ClusterId>.<ProcId>.<stamp>``."""
    proc, cluster, owner_dir = job.path.name, job.path.parent.name, job.path.parent.parent
    return owner_dir / FAILED / f"{cluster}.{proc}.{stamp}"
