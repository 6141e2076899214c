"""Slurm through its client commands: sbatch, squeue, scontrol, scancel, sacct.

Every command runs with the caller's environment (which must carry SLURM_CONF when the
cluster is not the system default) plus ``SLURM_TIME_FORMAT=%s``, so that all times are
epoch seconds.  Facts this relies on (Slurm 22.05):

* ``squeue -t all`` and ``scontrol show job`` know a finished job only for ``MinJobAge``
  seconds; afterwards only accounting (``sacct``, with slurmdbd) does.
* without slurmdbd, ``sacct`` fails with "Slurm accounting storage is disabled".
* against a dead slurmctld every client command retries for ~9 s (``scontrol`` ~18 s).
* ``scancel`` of an unknown or finished job id returns 0 silently.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from hpcpull.lrms.base import BatchJobStatus, BatchState, BatchSystem, LrmsError

# Slurm job states (``%T`` of squeue, ``JobState`` of scontrol, ``State`` of sacct), see
# the section "JOB STATE CODES" of squeue(1).  sacct adds details after the state
# ("CANCELLED by 1000"), so only the first word is looked up.
SLURM_STATES: dict[str, BatchState] = {
    # waiting for an allocation (or to get one back)
    "PENDING": BatchState.PENDING,
    "CONFIGURING": BatchState.PENDING,     # allocated, nodes still booting: payload not started
    "REQUEUED": BatchState.PENDING,        # completing job being requeued
    "REQUEUE_HOLD": BatchState.PENDING,    # held job being requeued
    "REQUEUE_FED": BatchState.PENDING,     # requeued by a federation
    "RESV_DEL_HOLD": BatchState.PENDING,   # held after its reservation was deleted
    # holding an allocation, payload running or finishing
    "RUNNING": BatchState.RUNNING,
    "COMPLETING": BatchState.RUNNING,      # processes may still be active
    "STAGE_OUT": BatchState.RUNNING,       # burst buffer stage-out
    "RESIZING": BatchState.RUNNING,        # about to change size
    "SIGNALING": BatchState.RUNNING,       # being signalled
    "SUSPENDED": BatchState.SUSPENDED,     # allocation kept, CPUs released
    "STOPPED": BatchState.SUSPENDED,       # SIGSTOPped, CPUs retained
    # ended
    "COMPLETED": BatchState.COMPLETED,
    "FAILED": BatchState.FAILED,
    "CANCELLED": BatchState.CANCELLED,
    "TIMEOUT": BatchState.TIMEOUT,
    "NODE_FAIL": BatchState.NODE_FAIL,
    "OUT_OF_MEMORY": BatchState.OUT_OF_MEMORY,
    "PREEMPTED": BatchState.PREEMPTED,
    "BOOT_FAIL": BatchState.BOOT_FAIL,
    "DEADLINE": BatchState.DEADLINE,
    "SPECIAL_EXIT": BatchState.FAILED,     # requeued in a special state after a given exit code
    "REVOKED": BatchState.CANCELLED,       # federation sibling removed: another cluster runs it
}

# Case-insensitive markers, in a failed command's output, of "the controller is unreachable
# or busy, try again later".  Anything else is a refusal.
TRANSIENT_MARKERS: tuple[str, ...] = (
    "timed out",                              # "Socket timed out on send/recv operation"
    "Unable to contact slurm controller",
    "Connection refused",
    "Zero Bytes were transmitted",
    "temporarily unable",                     # "Slurm temporarily unable to accept job"
    "temporarily unavailable",                # EAGAIN
    "Transient",
    "Communication connection failure",
    "backup controller in standby mode",
)

SQUEUE_FORMAT = "%i|%T|%r|%S|%e|%j"    # the name last: it is the only free-text field
SACCT_FIELDS = "JobID,JobName,State,ExitCode,Start,End"
ACCOUNTING_LOOKBACK = "now-30days"     # how far back find_by_name asks accounting

_JOB_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_JOB_ID = re.compile(r"^[0-9]+(?:_[0-9]+)?(?:\+[0-9]+)?$")   # 17, 17_3 (array task), 17+1 (het)
_SBATCH_ID = re.compile(r"^([0-9]+)(?:;\S+)?$")               # "17" or "17;cluster"
_SCONTROL_FIELD = re.compile(r"\s+(?=[A-Za-z][A-Za-z0-9_:/.]*=)")
_NO_TIME = frozenset({"", "N/A", "NONE", "UNKNOWN", "0", "(NULL)"})
_NO_REASON = frozenset({"", "None", "(null)"})
_INVALID_JOB_ID = "Invalid job id specified"
_ALREADY_DONE = "already completing or completed"
_ACCOUNTING_DISABLED = "accounting storage is disabled"


def map_state(native: str) -> BatchState:
    """The BatchState of a Slurm state string ("RUNNING", "CANCELLED by 0", "CD" is UNKNOWN)."""
    words = native.split()
    return SLURM_STATES.get(words[0].rstrip("+").upper(), BatchState.UNKNOWN) if words else BatchState.UNKNOWN


def parse_time(value: str) -> Optional[int]:
    """Epoch seconds (``SLURM_TIME_FORMAT=%s``); "N/A", "Unknown", "None", "0" are None."""
    value = value.strip()
    if value.upper() in _NO_TIME:
        return None
    try:
        seconds = int(value)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def parse_exit_code(value: str) -> tuple[Optional[int], Optional[int]]:
    """``ExitCode=<code>:<signal>`` -> (exit_code, exit_signal); "0:9" -> (None, 9), "3:0" -> (3, None)."""
    code_text, _, signal_text = value.strip().partition(":")
    try:
        code = int(code_text)
        signal = int(signal_text) if signal_text else 0
    except ValueError:
        return None, None
    if signal:
        return (code or None), signal
    return code, None


def _status(
    job_id: str,
    native: str,
    reason: str = "",
    start: str = "",
    end: str = "",
    exit_code: str = "",
    name: str = "",
) -> BatchJobStatus:
    state = map_state(native)
    code, signal = parse_exit_code(exit_code) if exit_code and state.is_terminal else (None, None)
    return BatchJobStatus(
        job_id=job_id,
        state=state,
        native_state=native.strip(),
        reason="" if reason.strip() in _NO_REASON else reason.strip(),
        # while pending, Slurm reports the *expected* start; while running, the expected end
        start_time=None if state is BatchState.PENDING else parse_time(start),
        end_time=parse_time(end) if state.is_terminal else None,
        exit_code=code,
        exit_signal=signal,
        name=name,
    )


def parse_squeue_line(line: str) -> Optional[BatchJobStatus]:
    """One line of ``squeue -h -o SQUEUE_FORMAT``; None if it is not one (e.g. a cluster header)."""
    fields = line.rstrip("\n").split("|", 5)
    if len(fields) != 6 or not fields[0].strip() or not fields[1].strip():
        return None
    job_id, native, reason, start, end, name = fields
    return _status(job_id.strip(), native, reason, start, end, "", name)


def parse_squeue(output: str) -> dict[str, BatchJobStatus]:
    jobs: dict[str, BatchJobStatus] = {}
    for line in output.splitlines():
        status = parse_squeue_line(line)
        if status is not None:
            jobs[status.job_id] = status
    return jobs


def parse_scontrol_fields(line: str) -> dict[str, str]:
    """``Key=Value Key2=Value2 ...`` of ``scontrol show job -o`` (values may contain '=' and spaces)."""
    fields: dict[str, str] = {}
    for item in _SCONTROL_FIELD.split(line.strip()):
        key, sep, value = item.partition("=")
        if sep:
            fields[key] = value.strip()
    return fields


def parse_scontrol_job(output: str, job_id: str) -> Optional[BatchJobStatus]:
    """The record of ``job_id`` in ``scontrol show job -o`` output (one line per job)."""
    records = [parse_scontrol_fields(line) for line in output.splitlines() if line.strip()]
    records = [r for r in records if "JobId" in r and "JobState" in r]
    chosen = next((r for r in records if r["JobId"] == job_id), records[0] if records else None)
    if chosen is None:
        return None
    return _status(
        chosen["JobId"],
        chosen["JobState"],
        chosen.get("Reason", ""),
        chosen.get("StartTime", ""),
        chosen.get("EndTime", ""),
        chosen.get("ExitCode", ""),
        chosen.get("JobName", ""),
    )


def parse_sacct(output: str) -> list[BatchJobStatus]:
    """Lines of ``sacct -n -P -o SACCT_FIELDS`` (the job name may contain '|')."""
    jobs = []
    for line in output.splitlines():
        if not line.strip():
            continue
        head, *tail = line.rsplit("|", 4)
        job_id, sep, name = head.partition("|")
        if len(tail) != 4 or not sep or not job_id.strip():
            continue
        state, exit_code, start, end = tail
        jobs.append(_status(job_id.strip(), state, "", start, end, exit_code, name))
    return jobs


def parse_sbatch_output(stdout: str) -> Optional[str]:
    """The job id printed by ``sbatch --parsable`` ("17" or "17;cluster")."""
    for line in stdout.splitlines():
        match = _SBATCH_ID.match(line.strip())
        if match:
            return match.group(1)
    return None


def slurm_time(seconds: float) -> str:
    """Seconds as ``[D-]HH:MM:SS`` (sbatch(1) ``--time``), rounded up to whole minutes: Slurm
    counts time limits in minutes."""
    minutes = max(1, -(-math.ceil(float(seconds)) // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{mins:02d}:00"
    return f"{hours:02d}:{mins:02d}:00"


# --- commands (pure: built here, run by the adapter) --------------------------------------


def sbatch_command(script: Path, job_name: str, workdir: Path, output: Path) -> list[str]:
    """``sbatch --parsable``: the command line's --job-name/--chdir/--output beat the script's
    #SBATCH lines (sbatch(1))."""
    return [
        "sbatch", "--parsable", f"--job-name={job_name}", f"--chdir={workdir}", f"--output={output}",
        _path_arg(script),
    ]


def squeue_command(job_name: Optional[str] = None) -> list[str]:
    """Every user's jobs in every state (``-t all``), as SQUEUE_FORMAT; only ids for ``job_name``."""
    if job_name is None:
        return ["squeue", "-a", "-h", "-t", "all", "-o", SQUEUE_FORMAT]
    return ["squeue", "-a", "-h", "-t", "all", f"--name={job_name}", "-o", "%i"]


def scontrol_job_command(job_id: str) -> list[str]:
    return ["scontrol", "show", "job", "-o", job_id]


def sacct_command(job_ids: Sequence[str]) -> list[str]:
    """The accounting records (SACCT_FIELDS) of these jobs, without their steps (``-X``)."""
    return ["sacct", "-a", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", SACCT_FIELDS]


def sacct_name_command(job_name: str) -> list[str]:
    return [
        "sacct", "-a", "-X", "-n", "-P", f"--name={job_name}", f"--starttime={ACCOUNTING_LOOKBACK}",
        "-o", "JobID",
    ]


def scancel_command(job_id: str) -> list[str]:
    return ["scancel", job_id]


SCONTROL_CONFIG_COMMAND = ["scontrol", "show", "config"]
# an accounting query for job 1: answers (or fails) without slurmctld
SACCT_PROBE_COMMAND = ["sacct", "-n", "-X", "-j", "1", "-o", "JobID"]


def _dedupe(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in ids if i))


class SlurmBatchSystem(BatchSystem):
    name = "slurm"
    commands = ("sbatch", "squeue", "scontrol", "scancel", "sacct")
    environment_names = ("SLURM_CONF",)
    inspect_commands = "scontrol show job {id}; sacct -j {id}"
    step_launcher = "srun"
    transient_markers = TRANSIENT_MARKERS
    job_id_pattern = _JOB_ID
    job_name_pattern = _JOB_NAME

    def __init__(self, env: Mapping[str, str], timeout: float = 30.0) -> None:
        super().__init__(env, timeout)
        self.env["SLURM_TIME_FORMAT"] = "%s"

    @staticmethod
    def format_walltime(seconds: float) -> str:
        return slurm_time(seconds)

    def submit_command(self, script: Path, job_name: str, workdir: Path, output: Path) -> list[str]:
        return sbatch_command(script, job_name, workdir, output)

    def parse_submit_output(self, stdout: str) -> Optional[str]:
        return parse_sbatch_output(stdout)

    def status_command(self) -> list[str]:
        return squeue_command()

    def parse_status_output(self, stdout: str) -> dict[str, BatchJobStatus]:
        return parse_squeue(stdout)

    def cancel_command(self, job_id: str) -> list[str]:
        return scancel_command(job_id)

    def cancel_says_ended(self, stdout: str, stderr: str) -> bool:
        # scancel of a finished job id returns 0; of one slurmctld forgot: "Invalid job id"
        output = stderr + stdout
        return _INVALID_JOB_ID in output or _ALREADY_DONE in output

    def job_status(self, job_id: str) -> Optional[BatchJobStatus]:
        self._check_job_id(job_id)
        proc = self._run(scontrol_job_command(job_id))
        if proc.returncode == 0:
            status = parse_scontrol_job(proc.stdout, job_id)
            if status is None:
                raise LrmsError.from_completed(proc, False, "no job record in its output")
            return status
        if _INVALID_JOB_ID not in proc.stderr + proc.stdout:
            raise self._failure(proc)
        # slurmctld has forgotten the job (MinJobAge): only accounting may still know it
        if not self.accounting_available():
            return None
        proc = self._checked(sacct_command([job_id]))
        rows = parse_sacct(proc.stdout)
        return next((r for r in rows if r.job_id == job_id), None)

    def find_by_name(self, job_name: str) -> list[str]:
        self._check_job_name(job_name)
        proc = self._checked(squeue_command(job_name))
        ids = [line.strip() for line in proc.stdout.splitlines()]
        if self.accounting_available():
            proc = self._checked(sacct_name_command(job_name))
            ids += [line.strip() for line in proc.stdout.splitlines()]
        return _dedupe(ids)

    def hides_other_users_jobs(self) -> bool:
        proc = self._checked(list(SCONTROL_CONFIG_COMMAND))
        for line in proc.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "PrivateData":
                return "jobs" in [v.strip().lower() for v in value.split(",")]
        return False

    def accounting_statuses(self, job_ids: Sequence[str]) -> dict[str, BatchJobStatus]:
        ids = [self._check_job_id(i) for i in job_ids]
        if not ids or not self.accounting_available():
            return {}
        proc = self._checked(sacct_command(ids))
        return {status.job_id: status for status in parse_sacct(proc.stdout) if status.job_id in ids}

    def _probe_accounting(self) -> bool:
        proc = self._run(list(SACCT_PROBE_COMMAND))
        if _ACCOUNTING_DISABLED in (proc.stdout + proc.stderr).lower():
            return False
        if proc.returncode == 0:
            return True
        if self._is_transient(proc):
            raise self._failure(proc)  # slurmdbd down or slow: cannot tell, ask again later
        return False  # sacct refuses for another reason: accounting is not usable


def _path_arg(path: Path) -> str:
    """A path as a command argument that cannot be mistaken for an option."""
    text = str(path)
    return f"./{text}" if text.startswith("-") else text
