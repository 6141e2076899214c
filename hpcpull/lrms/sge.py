"""Grid Engine (SGE, Son of Grid Engine, Debian's gridengine 8.1.9) through qsub, qstat, qacct, qdel, qconf.

Every command runs with the caller's environment (SGE_ROOT and SGE_CELL when the cell is
not the system default) plus ``TZ=UTC`` and ``LC_ALL=C``: qstat and qacct print times in
the *client's* local time without a zone, and messages in the client's language.
Facts this relies on, verified against Debian's gridengine 8.1.9:

* ``qsub -terse`` prints the job id alone on the last line of stdout ("17", or
  "17.1-3:1" for an array); warnings (a directive given twice) come before it on stdout.
* ``qstat -xml`` gives full job names (the text format cuts them to 10 characters), the
  state letters, ``JAT_start_time`` of started jobs and ``<tasks>`` of array tasks; ``-g d``
  lists every array task on its own, ``-s z`` adds the "zombies" (finished jobs qmaster
  keeps, ``finished_jobs`` in the global configuration), without their outcome.
* a finished job leaves the default listing at once; its outcome (``failed``,
  ``exit_status``, start and end times) is in the accounting file that ``qacct`` reads
  (flushed every ``flush_time`` of ``reporting_params``, 15 s by default).  qacct reads
  the file directly, without qmaster: on a submit host the cell's common/ directory must
  be shared, as it normally is.
* qsub accepts a job with a working directory that does not exist; it then waits in the
  error state "Eqw" forever (qacct has a record with ``failed 28``).
* ``qdel`` of an unknown or finished id prints 'denied: job "N" does not exist' (exit
  status 1); a second qdel of a job being deleted prints "job N is already in deletion"
  with exit status 0.
* against a dead qmaster every client fails at once with "commlib error: got select error
  (Connection refused)" and "unable to send message to qmaster using port 6444 ...".

Directives in the script: qsub reads ``#$`` lines (the prefix can be changed with
``qsub -C``); a repeated option is last-wins ("warning: "-N" option has already been set,
overriding previous setting"), ``-l`` requests accumulate (the last value of one
resource wins), and options on the qsub command line override the script's.
"""

from __future__ import annotations

import calendar
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Mapping, Optional

from hpcpull.lrms.base import BatchJobStatus, BatchState, BatchSystem

# --- job states ----------------------------------------------------------------------------
# qstat prints a job's state as letters, one per flag, in this order (job_get_state_string()
# in gridengine source/libs/sgeobj/sge_job.c; letters from sge_jobL.h / qstat(1)):
#   d deletion requested   E error           S suspended (queue subordinated or suspended)
#   T suspended on a threshold   h hold      R restarted (rescheduled)   q queued
#   r running   s suspended (qmod -sj)   t transferring to the execution host
#   w waiting   x exiting (execd collects usage)
# and qstat -s z lists finished jobs as "z".  Examples and what they map to:
#
#   native          BatchState   why
#   qw, w           PENDING      waiting to be scheduled (also "qw" for -a in the future)
#   hqw, hRwq, Rq   PENDING      held (user/operator/system/dependency hold) or requeued
#   t, Rt, dt       PENDING      dispatched, the execution host has not confirmed: like
#                                Slurm's CONFIGURING, the payload has not started
#   r, Rr, hr       RUNNING      (a hold on a running job only affects a later rerun)
#   dr              RUNNING      qdel'ed, still being killed: the outcome comes later
#   s, S, T, ts...  SUSPENDED    qmod -sj, queue suspended, suspend threshold
#   Eqw (any E)     FAILED       error state: the job will never run unless an operator
#                                clears it (qmod -cj); qacct has a record with the failure
#                                ("failed 28 : changing into working directory", ...).
#                                It stays in qstat until deleted: cancel() removes it.
#   z               COMPLETED    finished, outcome unknown to qstat (only job_status()
#                                asks for zombies, and prefers qacct's record)
#   anything else   UNKNOWN

_REASONS = {
    "d": "deletion requested",
    "E": "error state (qstat -j shows why; qmod -cj clears it)",
    "S": "queue suspended",
    "T": "suspended on threshold",
    "h": "on hold",
    "R": "restarted",
    "s": "suspended",
    "t": "being transferred to the execution host",
    "x": "exiting",
    "z": "finished (qacct has its exit status)",
}  # q(ueued), r(unning) and w(aiting) say nothing the BatchState does not


def map_state(native: str) -> BatchState:
    """The BatchState of a qstat state string ("qw", "hr", "Eqw", "dr", "z"; see the table above)."""
    flags = native.strip()
    if not flags or not flags.isalpha():
        return BatchState.UNKNOWN
    if flags == "z":
        return BatchState.COMPLETED
    if "E" in flags:
        return BatchState.FAILED
    if any(f in flags for f in "sST"):
        return BatchState.SUSPENDED
    if "r" in flags or "x" in flags:
        return BatchState.RUNNING
    if any(f in flags for f in "tqwh"):
        return BatchState.PENDING
    return BatchState.UNKNOWN


def state_reason(native: str) -> str:
    """A short text for the flags that say more than the BatchState ("on hold", "deletion requested")."""
    return ", ".join(_REASONS[f] for f in dict.fromkeys(native.strip()) if f in _REASONS)


# --- qacct's "failed" codes ------------------------------------------------------------------
# gridengine source/common/execution_states.h (SSTATE_*, ESSTATE_*) and the texts of
# get_sstate_description() in execution_states.c, which qacct prints after the number.
# 0 means the job ran and exited: its exit_status decides.  Any other code not in the table
# means the job or its setup (prolog, shell, working directory, output file...) failed:
# FAILED, without an exit code (exit_status is then meaningless).  Verified here: exit 3 ->
# failed 0/exit_status 3; "exit 137" -> failed 0/137; kill -9 $$ and qdel of a running job ->
# failed 100/137; -l h_rt=3 on a sleep -> failed 37/137; a missing -wd -> failed 28 (Eqw).
FAILED_STATES: dict[int, BatchState] = {
    22: BatchState.NODE_FAIL,   # ESSTATE_EXECD_LOST_RUNNING: the execution host lost the running job
    24: BatchState.PENDING,     # SSTATE_MIGRATE: ran, will be migrated (runs again)
    25: BatchState.PENDING,     # SSTATE_AGAIN: ran, will be rescheduled (qmod -rj; runs again)
    37: BatchState.TIMEOUT,     # SSTATE_QMASTER_ENFORCED_LIMIT: "qmaster enforced h_rt, h_cpu, or h_vmem limit"
    # SSTATE_FAILURE_AFTER_JOB "assumedly after job": killed by a signal.  qdel, a resource
    # limit the execution host enforces, the job killing itself and a dead shepherd all
    # look the same (failed 100, exit_status 128+signal), so this is not CANCELLED.
    100: BatchState.FAILED,
}

# Case-insensitive markers, in a failed command's output, of "qmaster is unreachable or
# busy, try again later" (gridengine source/libs/gdi/msg_gdilib.h and commlib).  Anything
# else is a refusal.  Not here: "Error reading answer list from qmaster", which qsub also
# prints when qmaster refuses a job name with a blank or a non-ASCII character.
TRANSIENT_MARKERS: tuple[str, ...] = (
    "commlib error",                      # "commlib error: got select error (Connection refused)"
    "unable to contact qmaster",          # MSG_GDI_UNABLE_TO_CONNECT_SUS
    "unable to send message to qmaster",  # MSG_GDI_CANT_SEND_MESSAGE_TO_PORT_ON_HOST_SUSS
    "failed sending gdi request",
    "failed receiving gdi request",
    "general communication error",
    "Cannot get configuration from qmaster",
    "Connection refused",
    "timed out",
    "temporarily unavailable",
)

QSTAT_ACTIVE = ("qstat", "-u", "*", "-xml", "-g", "d", "-s", "prs")
QSTAT_ALL = ("qstat", "-u", "*", "-xml", "-g", "d", "-s", "prsz")   # zombies too

# SGE job names may not start with a digit nor contain / : @ \ * ? (qsub refuses them) and
# a blank or non-ASCII character upsets qmaster; stay with a safe set.
_JOB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_JOB_ID = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")                   # 17, or 17.3 (array task)
_QSUB_ID = re.compile(r"^([0-9]+)(?:\.[0-9]+-[0-9]+:[0-9]+)?$")  # "17" or "17.1-3:1"
_NOT_EXIST = "does not exist"
_QACCT_NOT_FOUND = re.compile(r"job (?:id|name) \S+ not found")
# qacct without an accounting file: "<path>: No such file or directory" on stderr and
# "no jobs running since startup" on stdout (exit status 1)
_NO_ACCOUNTING_FILE = "no jobs running since startup"
_ACCOUNTING_ON = re.compile(r"\baccounting=true\b", re.IGNORECASE)
_ERROR_REASON = re.compile(r"^error reason\s+[0-9]+:\s*(.*)$", re.MULTILINE)
ACCOUNTING_PROBE_NAME = "hpcpull-accounting-probe"


# --- parsing ------------------------------------------------------------------------------------


def parse_xml_time(value: Optional[str]) -> Optional[int]:
    """``2026-11-21T06:27:01`` (qstat -xml, local time of the client, UTC here) -> epoch seconds."""
    if not value or not value.strip():
        return None
    try:
        return calendar.timegm(time.strptime(value.strip()[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def parse_qacct_time(value: str) -> Optional[int]:
    """``Sat Nov 21 06:27:01 2026`` (qacct, client's local time, C locale) -> epoch seconds; "-/-" is None."""
    text = " ".join(value.split())
    if not text or text == "-/-":
        return None
    try:
        return calendar.timegm(time.strptime(text, "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return None


def _text(element: ET.Element, tag: str) -> str:
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def parse_qstat_xml(output: str) -> dict[str, BatchJobStatus]:
    """``qstat -u '*' -xml -g d [-s ...]`` -> {id: status}; array tasks as "JOB.TASK".

    Raises ValueError when the output is not qstat's XML.
    """
    try:
        root = ET.fromstring(output)
    except ET.ParseError as exc:
        raise ValueError(f"qstat -xml output is not XML: {exc}") from None
    jobs: dict[str, BatchJobStatus] = {}
    for item in root.iter("job_list"):
        number = _text(item, "JB_job_number")
        native = _text(item, "state")
        if not number.isdigit() or not native:
            continue
        tasks = _text(item, "tasks")
        job_id = f"{number}.{tasks}" if tasks else number
        state = map_state(native)
        started = parse_xml_time(_text(item, "JAT_start_time"))
        jobs[job_id] = BatchJobStatus(
            job_id=job_id,
            state=state,
            native_state=native,
            reason=state_reason(native),
            start_time=None if state is BatchState.PENDING else started,
            name=_text(item, "JB_name"),
        )
    return jobs


def parse_qacct(output: str) -> list[dict[str, str]]:
    """The records of ``qacct -j ...`` (blocks after a line of '='), as {field: value}."""
    records: list[dict[str, str]] = []
    current: Optional[dict[str, str]] = None
    for line in output.splitlines():
        if line.startswith("====="):
            current = {}
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        current[key] = value.strip()
    return [r for r in records if "jobnumber" in r]


def _leading_int(value: str) -> Optional[int]:
    match = re.match(r"\s*(-?[0-9]+)", value or "")
    return int(match.group(1)) if match else None


def qacct_status(record: Mapping[str, str]) -> BatchJobStatus:
    """The status of one qacct record (see FAILED_STATES for how ``failed`` is read)."""
    number = record.get("jobnumber", "").strip()
    task = record.get("taskid", "").strip()
    job_id = f"{number}.{task}" if task.isdigit() else number
    failed_text = " ".join(record.get("failed", "").split())
    failed = _leading_int(failed_text) or 0
    exit_status = _leading_int(record.get("exit_status", ""))
    code: Optional[int] = None
    signal: Optional[int] = None
    if failed == 0:
        state = BatchState.COMPLETED if exit_status == 0 else BatchState.FAILED
        code = exit_status
        reason = ""
    else:
        state = FAILED_STATES.get(failed, BatchState.FAILED)
        if exit_status is not None and exit_status > 128 and failed in (37, 100):
            signal = exit_status - 128  # the shepherd reports a signal as 128 + signal
        reason = f"failed {failed_text.replace(' : ', ': ')}"
    return BatchJobStatus(
        job_id=job_id,
        state=state,
        native_state=f"failed={failed} exit_status={'' if exit_status is None else exit_status}",
        reason=reason,
        start_time=parse_qacct_time(record.get("start_time", "")),
        end_time=parse_qacct_time(record.get("end_time", "")) if state.is_terminal else None,
        exit_code=code if state.is_terminal else None,
        exit_signal=signal if state.is_terminal else None,
        name=record.get("jobname", "").strip(),
    )


def parse_qsub_output(stdout: str) -> Optional[str]:
    """The job id printed by ``qsub -terse`` (the last line that is an id; "17.1-3:1" gives "17")."""
    found = None
    for line in stdout.splitlines():
        match = _QSUB_ID.match(line.strip())
        if match:
            found = match.group(1)
    return found


def parse_error_reason(qstat_j: str) -> str:
    """The "error reason" of ``qstat -j ID`` for a job in the error state, without date and [uid:pid]."""
    match = _ERROR_REASON.search(qstat_j)
    if not match:
        return ""
    text = match.group(1).strip()
    _, sep, rest = text.partition("]: ")
    return (rest if sep else text).strip()


def submit_failure_detail(stderr: str, stdout: str = "") -> str:
    """qsub's reason for a refusal: its last line is only "Exiting."."""
    lines = [line.strip() for line in f"{stderr}\n{stdout}".splitlines() if line.strip()]
    lines = [line for line in lines if line != "Exiting."]
    for line in lines:
        if line.startswith("Unable to run job:"):
            return line
    return lines[-1] if lines else ""


def shell_of(script: Path) -> Optional[str]:
    """The interpreter of the script's ``#!`` line when it is an absolute path ("/bin/bash"), else None.

    Queues in posix_compliant mode (SGE's usual default) ignore the ``#!`` line and start
    the queue's shell (/bin/sh, often /bin/csh) unless qsub -S names one.
    """
    try:
        with open(script, "rb") as handle:
            first = handle.readline(512).decode("utf-8", errors="replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if not words or not words[0].startswith("/") or words[0].rsplit("/", 1)[-1] == "env":
        return None
    return words[0]


def _dedupe(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in ids if i))


# --- commands (pure: built here, run by the adapter) --------------------------------------


def qsub_command(
    script: Path, job_name: str, workdir: Path, output: Path, shell: Optional[str] = None
) -> list[str]:
    """``qsub -terse``, stdout and stderr joined (``-j y``) in ``output``; ``-S shell``: the
    interpreter of the script's #! line (see :func:`shell_of`).  Raises ValueError for a path
    qsub would misread."""
    argv = [
        "qsub", "-terse", "-N", job_name, "-wd", _check_path(workdir, "working directory"),
        "-o", _check_path(output, "output"), "-j", "y",
    ]
    if shell:
        argv += ["-S", shell]
    argv.append(_path_arg(script))
    return argv


def qstat_error_command(job_id: str) -> list[str]:
    """``qstat -j`` of the job (an array task's job): its "error reason"."""
    return ["qstat", "-j", job_id.partition(".")[0]]


def qacct_command(job_id: str) -> list[str]:
    """The accounting records of a job ("17"), or of one array task ("17.3")."""
    number, _, task = job_id.partition(".")
    return ["qacct", "-j", number] + (["-t", task] if task else [])


def qacct_name_command(job_name: str) -> list[str]:
    """The accounting records of the jobs named ``job_name``."""
    return ["qacct", "-j", job_name]


def qdel_command(job_id: str) -> list[str]:
    return ["qdel", job_id]


QCONF_GLOBAL_COMMAND = ["qconf", "-sconf", "global"]


def _check_path(path: Path, what: str) -> str:
    # qsub -o takes "[[host]:]path[,...]" and expands $JOB_ID etc.: such paths would be misread
    text = str(path)
    if any(c in text for c in ":,$\n"):
        raise ValueError(f"Grid Engine {what} path may not contain ':', ',', '$' or a newline: {text!r}")
    return text


class SgeBatchSystem(BatchSystem):
    name = "sge"
    commands = ("qsub", "qstat", "qacct", "qdel", "qconf")
    environment_names = ("SGE_ROOT", "SGE_CELL")
    inspect_commands = "qstat -j {id}; qacct -j {id}"
    transient_markers = TRANSIENT_MARKERS
    job_id_pattern = _JOB_ID
    job_name_pattern = _JOB_NAME

    def __init__(self, env: Mapping[str, str], timeout: float = 30.0) -> None:
        super().__init__(env, timeout)
        self.env["TZ"] = "UTC"      # qstat/qacct times are the client's local time, zone not shown
        self.env["LC_ALL"] = "C"    # English messages and day names

    # --- pure functions (submit_command reads the script's #! line) ----------------------

    def submit_command(self, script: Path, job_name: str, workdir: Path, output: Path) -> list[str]:
        return qsub_command(script, job_name, workdir, output, shell_of(script))

    def parse_submit_output(self, stdout: str) -> Optional[str]:
        return parse_qsub_output(stdout)

    def submit_failure_detail(self, stdout: str, stderr: str) -> str:
        return submit_failure_detail(stderr, stdout)

    def status_command(self) -> list[str]:
        """Pending, running and suspended jobs of all users (one qstat).

        Finished jobs are left out although qstat -s z would list the latest of them: their
        outcome (exit status, TIMEOUT) is only in accounting, which job_status() reads.
        """
        return list(QSTAT_ACTIVE)

    def parse_status_output(self, stdout: str) -> dict[str, BatchJobStatus]:
        return parse_qstat_xml(stdout)

    def cancel_command(self, job_id: str) -> list[str]:
        return qdel_command(job_id)

    def cancel_says_ended(self, stdout: str, stderr: str) -> bool:
        # 'denied: job "N" does not exist': finished, or never existed.  (Exit status 0 covers
        # deleted, registered for deletion, and "job N is already in deletion".)
        return _NOT_EXIST in stdout + stderr

    # --- commands --------------------------------------------------------------------

    def _qstat(self, argv: tuple[str, ...]) -> dict[str, BatchJobStatus]:
        proc = self._checked(list(argv))
        return self._parsed(proc, parse_qstat_xml)

    def job_status(self, job_id: str) -> Optional[BatchJobStatus]:
        self._check_job_id(job_id)
        status = self._qstat(QSTAT_ALL).get(job_id)
        if status is not None and status.native_state != "z":
            if "E" in status.native_state:
                status = self._with_error_reason(status)
            return status
        # finished (a zombie) or forgotten by qmaster: accounting knows how it ended
        if self.accounting_available():
            record = self._qacct_job(job_id)
            # a last record "rescheduling" (failed 25) of a job qstat no longer lists is not
            # how it ended: it was deleted before it ran again
            if record is not None and record.state.is_terminal:
                return record
        if status is not None:  # a zombie without an accounting record
            reason = "finished; no accounting record (deleted before it started, or not yet written)"
            return BatchJobStatus(job_id, status.state, status.native_state, reason, name=status.name)
        return None

    def _with_error_reason(self, status: BatchJobStatus) -> BatchJobStatus:
        """Add qstat -j's "error reason" (e.g. "can't chdir to ...") to a job in the error state."""
        proc = self._run(qstat_error_command(status.job_id))
        why = parse_error_reason(proc.stdout) if proc.returncode == 0 else ""
        if not why:
            return status
        return BatchJobStatus(
            status.job_id, status.state, status.native_state, f"error state: {why}",
            status.start_time, status.end_time, status.exit_code, status.exit_signal, status.name,
        )

    def _qacct_job(self, job_id: str) -> Optional[BatchJobStatus]:
        proc = self._run(qacct_command(job_id))
        if proc.returncode != 0:
            if _qacct_knows_nothing(proc.stdout + proc.stderr):
                return None
            raise self._failure(proc)
        rows = [qacct_status(r) for r in parse_qacct(proc.stdout)]
        rows = [r for r in rows if r.job_id == job_id]
        # a job rescheduled (failed 25) has a record per run: the last one is the latest
        return rows[-1] if rows else None

    def find_by_name(self, job_name: str) -> list[str]:
        self._check_job_name(job_name)
        ids = [i for i, s in self._qstat(QSTAT_ALL).items() if s.name == job_name]
        if self.accounting_available():
            proc = self._run(qacct_name_command(job_name))
            if proc.returncode == 0:
                ids += [r["jobnumber"].strip() for r in parse_qacct(proc.stdout) if r.get("jobname") == job_name]
            elif not _qacct_knows_nothing(proc.stdout + proc.stderr):
                raise self._failure(proc)
        return _dedupe(i.partition(".")[0] for i in ids)  # the job, not its array tasks

    def _probe_accounting(self) -> bool:
        """Whether qacct reads an accounting file, or will: qmaster writes it when the first job ends."""
        proc = self._run(qacct_name_command(ACCOUNTING_PROBE_NAME))
        output = proc.stdout + proc.stderr
        if proc.returncode == 0 or _QACCT_NOT_FOUND.search(output):
            return True  # the accounting file was read
        if _NO_ACCOUNTING_FILE not in output:
            if self._is_transient(proc):
                raise self._failure(proc)
            return False  # qacct refuses for another reason: not usable
        # no file (yet): is accounting on?  "reporting_params accounting=true ..."
        proc = self._run(list(QCONF_GLOBAL_COMMAND))
        if proc.returncode != 0:
            if self._is_transient(proc):
                raise self._failure(proc)  # cannot tell now: ask again later
            return False
        return bool(_ACCOUNTING_ON.search(proc.stdout))


def _qacct_knows_nothing(output: str) -> bool:
    """qacct's output when it has no record: the job is unknown, or there is no accounting file (yet)."""
    return bool(_QACCT_NOT_FOUND.search(output)) or _NO_ACCOUNTING_FILE in output


def _path_arg(path: Path) -> str:
    """A path as a command argument that cannot be mistaken for an option."""
    text = str(path)
    return f"./{text}" if text.startswith("-") else text
