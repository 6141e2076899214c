"""PBS through its client commands: qsub, qstat, qdel.

Two dialects share this module:

* ``pbs`` (:class:`PbsBatchSystem`): Torque / OpenPBS 2.x, and Debian's Torque-compatible
  wrappers for Slurm (package ``slurm-wlm-torque``), which the tests run for real.
* ``pbspro`` (:class:`PbsProBatchSystem`): PBS Professional / OpenPBS >= 19.

Facts this relies on (sources in brackets; "wrapper" = slurm-wlm-torque 22.05 perl scripts):

* ``qstat -f`` prints one record per job: ``Job Id: <id>`` then ``name = value`` lines,
  indented with 4 spaces (Torque, PBS Pro: ``prt_attr()`` in src/cmds/qstat.c) or with one tab
  (wrapper).  Torque and PBS Pro fold values longer than ~78 characters onto continuation
  lines that start with a tab; ``-1`` turns that off in Torque ("qstat [-f [-1]]") and is
  accepted (ignored) by the wrapper, but PBS Pro rejects ``-1`` without ``-n``/``-s``.
  Values may also contain raw newlines (Torque ``sched_hint``) and records may contain blank
  lines, so only ``Job Id:`` starts a record.
* Times (``qtime``, ``mtime``, ``start_time``, ``stime``...) are ``ctime(3)`` strings in the
  local time of the qstat process (Torque ``display_full_job()``, OpenPBS
  ``display_statjob()``, wrapper ``hRTime()``); qstat therefore runs with ``TZ=UTC``.
* ``qstat -x`` means "include finished (history) jobs" in PBS Pro, but "XML output" in Torque,
  and the wrapper rejects it ("Unknown option: x", rc 2).  Without ``-x`` PBS Pro answers a
  finished job with "qstat: <id> Job has finished, use -x or -H to obtain historical job
  information" and rc 35 (PBSE_HISTJOBID 15139 & 0xff).  If the server keeps no history
  (``job_history_enable`` false) the server rejects *every* ``-x`` request with
  PBSE_JOBHISTNOTSET and qstat prints only that error, with rc 0 (OpenPBS src/server/req_stat.c
  ``req_stat_job()``, src/cmds/qstat.c end of ``main()``), so the adapter then drops ``-x``.
* An unknown job: Torque "qstat: Unknown Job Id Error <id>" (older: "Unknown Job Id"), PBS Pro
  "qstat: Unknown Job Id <id>", both rc 153 (PBSE_UNKJOBID 15001 & 0xff); the wrapper prints
  nothing and exits 153.  The wrapper's ``qstat`` without jobs also exits 153.
* ``-F json`` (PBS Pro) was considered and not used: its output has repeatedly been invalid
  JSON for jobs whose environment holds quotes, backslashes, commas or digit strings
  (openpbs/openpbs issues #1255, #2541; PRs #830, #1033, #2049) - hpcpull jobs carry arbitrary
  HTCondor environments - and the text format is what Torque and the wrapper print anyway.
* ``qsub``: the job id is the last line of stdout.  The wrapper builds an ``sbatch`` *shell
  command line* from its arguments (unquoted), always adds its own ``-o``/``-e`` (which override
  ``#PBS -o``/``-e``; ``-j oe`` suppresses its ``-e``), and on failure prints sbatch's messages
  on stdout with sbatch's exit status.  Real qsub reads ``-o [host:]path``, so paths passed
  here must not contain ``:`` (or ``%``, a sbatch file name pattern) or shell characters.
* Working directory: PBS starts the job in $HOME with ``PBS_O_WORKDIR`` = qsub's cwd; the
  wrapper (sbatch) starts it in qsub's cwd.  ``submit`` runs qsub in ``workdir``, so job
  scripts should ``cd "$PBS_O_WORKDIR"`` to be portable.
* Job names: OpenPBS allows at most PBS_MAXJOBNAME characters (236, 230 since 2021 in
  src/include/pbs_ifl.h), first character alphabetic for ``-N``, then ``[A-Za-z0-9_+.-]``
  (older releases without ``.``; src/lib/Libcmds/ck_job_name.c).  Torque allows 256 printable
  characters (PBS_MAXJOBNAMELEN, src/lib/Libcmds/ck_job_name.c), whose comment still says
  "<= 15" - the limit of OpenPBS 2.3 and early Torque.  The adapter accepts
  ``[A-Za-z][A-Za-z0-9_.-]*`` up to 230 characters; hpcpull's ~25-character names fit all but
  those early releases.
* Exit status of a finished job (``exit_status`` in Torque, ``Exit_status`` in PBS Pro; the
  wrapper has none): 0..255 is the job script's exit status (a shell reports a child killed
  by signal N as 128+N: kept as exit code, it cannot be told apart); > 256 means the job's
  top process was killed by signal (value - 256) (pbs_mom ``scan_for_terminated()``:
  ``WTERMSIG(statloc) + 0x100``, quoted in OSC mpiexec's mpiexec.h; e.g. 271 = SIGTERM after
  ``qdel`` or a walltime kill, 265 = SIGKILL); negative values are pbs_mom's JOB_EXEC_* codes,
  which differ between Torque and PBS Pro (tables below).
* Accounting: finished jobs are only known to qstat for ``keep_completed`` seconds (Torque),
  ``job_history_duration`` (PBS Pro, if history is on) or ``MinJobAge`` (wrapper).  PBS's own
  accounting (``tracejob``, server_priv/accounting) reads the server's log files, which are
  normally only readable on the server host, so :meth:`PbsBatchSystem._probe_accounting` says
  no and :meth:`job_status` returns None for a forgotten job.
"""

from __future__ import annotations

import calendar
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from hpcpull.lrms.base import BatchJobStatus, BatchState, BatchSystem, LrmsError, one_line

# ------------------------------------------------------------------------ states ----

# PBS ``job_state`` letters (Torque qstat(1) "the job state"; PBS Pro Reference Guide,
# "Job States"; wrapper ``stateCode()``).  C (Torque, wrapper) and F (PBS Pro) mean "ended,
# for whatever reason": they are refined from the exit status, see status_from_record().
_COMMON_STATES: dict[str, BatchState] = {
    "Q": BatchState.PENDING,      # queued, eligible to run or being routed
    "H": BatchState.PENDING,      # held
    "W": BatchState.PENDING,      # waiting for its execution time (-a), or after a stage-in failure
    "T": BatchState.PENDING,      # in transit to a new location (routing)
    "R": BatchState.RUNNING,
    "E": BatchState.RUNNING,      # exiting after having run: epilogue, stage-out still going
    "S": BatchState.SUSPENDED,
    "C": BatchState.COMPLETED,    # completed after having run (Torque, wrapper)
    "F": BatchState.COMPLETED,    # finished: completed, failed or deleted (PBS Pro history)
}

# Torque / OpenPBS 2.x / the wrapper.  The wrapper also prints U for a Slurm state it
# cannot translate.
TORQUE_STATES: dict[str, BatchState] = {**_COMMON_STATES, "U": BatchState.UNKNOWN}

# PBS Pro adds: B array job begun (some subjob started), X subjob expired (finished),
# U suspended for keyboard activity (cycle harvesting), M moved to another server (it goes
# on there: this server can no longer tell, so UNKNOWN).
PBSPRO_STATES: dict[str, BatchState] = {
    **_COMMON_STATES,
    "B": BatchState.RUNNING,
    "X": BatchState.COMPLETED,
    "U": BatchState.SUSPENDED,
    "M": BatchState.UNKNOWN,
}

# Negative exit statuses: pbs_mom's JOB_EXEC_* codes ("the job could not be run").
# Torque: src/include/pbs_job.h (-1..-9; -10 JOB_EXEC_OVERLIMIT in Torque 4) and the Torque 6
# admin guide "Job Exit Status" (-10 split into _MEM, -11 _WT walltime, -12 _CPUT, -13, -14).
TORQUE_EXEC_CODES: dict[int, tuple[str, BatchState]] = {
    -1: ("JOB_EXEC_FAIL1", BatchState.FAILED),            # exec failed before files, no retry
    -2: ("JOB_EXEC_FAIL2", BatchState.FAILED),            # exec failed after files, no retry
    -3: ("JOB_EXEC_RETRY", BatchState.FAILED),            # exec failed, retried (a new run follows)
    -4: ("JOB_EXEC_INITABT", BatchState.NODE_FAIL),       # aborted on MOM initialization
    -5: ("JOB_EXEC_INITRST", BatchState.NODE_FAIL),       # aborted on MOM init, checkpoint, no migrate
    -6: ("JOB_EXEC_INITRMG", BatchState.NODE_FAIL),       # aborted on MOM init, checkpoint, migrate
    -7: ("JOB_EXEC_BADRESRT", BatchState.FAILED),         # restart failed
    -8: ("JOB_EXEC_CMDFAIL", BatchState.FAILED),          # exec() of the user command failed
    -9: ("JOB_EXEC_STDOUTFAIL", BatchState.FAILED),       # could not create stdout/stderr files
    -10: ("JOB_EXEC_OVERLIMIT", BatchState.FAILED),       # resource limit (memory in Torque 6)
    -11: ("JOB_EXEC_OVERLIMIT_WT", BatchState.TIMEOUT),   # walltime limit
    -12: ("JOB_EXEC_OVERLIMIT_CPUT", BatchState.TIMEOUT),  # cpu time limit
    -13: ("JOB_EXEC_RETRY_CGROUP", BatchState.FAILED),
    -14: ("JOB_EXEC_RETRY_PROLOGUE", BatchState.FAILED),
}

# PBS Pro / OpenPBS: src/include/job.h ("Special Job Exit Values").  Note -10/-11/-12 mean
# something else than in Torque.  PBS Pro may also report a walltime kill as 271 (SIGTERM).
PBSPRO_EXEC_CODES: dict[int, tuple[str, BatchState]] = {
    -1: ("JOB_EXEC_FAIL1", BatchState.FAILED),
    -2: ("JOB_EXEC_FAIL2", BatchState.FAILED),
    -3: ("JOB_EXEC_RETRY", BatchState.FAILED),
    -4: ("JOB_EXEC_INITABT", BatchState.NODE_FAIL),
    -5: ("JOB_EXEC_INITRST", BatchState.NODE_FAIL),
    -6: ("JOB_EXEC_INITRMG", BatchState.NODE_FAIL),
    -7: ("JOB_EXEC_BADRESRT", BatchState.FAILED),
    -10: ("JOB_EXEC_FAILUID", BatchState.FAILED),           # invalid uid/gid for the job
    -11: ("JOB_EXEC_RERUN", BatchState.FAILED),
    -12: ("JOB_EXEC_CHKP", BatchState.FAILED),               # checkpointed and killed
    -13: ("JOB_EXEC_FAIL_PASSWORD", BatchState.FAILED),
    -14: ("JOB_EXEC_RERUN_SIS_FAIL", BatchState.NODE_FAIL),  # sister MoM failed
    -15: ("JOB_EXEC_QUERST", BatchState.FAILED),
    -16: ("JOB_EXEC_FAILHOOK_RERUN", BatchState.FAILED),
    -17: ("JOB_EXEC_FAILHOOK_DELETE", BatchState.FAILED),
    -18: ("JOB_EXEC_HOOK_RERUN", BatchState.FAILED),
    -19: ("JOB_EXEC_HOOK_DELETE", BatchState.CANCELLED),     # a hook deleted the job
    -20: ("JOB_EXEC_RERUN_MS_FAIL", BatchState.NODE_FAIL),   # mother superior unreachable
    -21: ("JOB_EXEC_FAIL_SECURITY", BatchState.FAILED),
    -22: ("JOB_EXEC_HOOKERROR", BatchState.FAILED),
    -23: ("JOB_EXEC_FAIL_KRB5", BatchState.FAILED),
    -24: ("JOB_EXEC_KILL_NCPUS_BURST", BatchState.FAILED),
    -25: ("JOB_EXEC_KILL_NCPUS_SUM", BatchState.FAILED),
    -26: ("JOB_EXEC_KILL_VMEM", BatchState.OUT_OF_MEMORY),
    -27: ("JOB_EXEC_KILL_MEM", BatchState.OUT_OF_MEMORY),
    -28: ("JOB_EXEC_KILL_CPUT", BatchState.TIMEOUT),
    -29: ("JOB_EXEC_KILL_WALLTIME", BatchState.TIMEOUT),
    -30: ("JOB_EXEC_JOINJOB", BatchState.NODE_FAIL),
}

SIGNAL_OFFSET = 0x100  # pbs_mom: exit status of a job whose top process died of signal N

# Case-insensitive markers, in a failed command's output, of "the server is unreachable or
# busy, try again later" (Torque src/include/pbs_error_db.h texts, qstat/qsub messages,
# the wrapper's Slurm errors).  Anything else is a refusal.
TRANSIENT_MARKERS: tuple[str, ...] = (
    "cannot connect to server",            # qstat/qsub/qdel: cannot connect to server X (errno=111)
    "could not connect to batch server",   # PBSE_SERVER_NOT_FOUND
    "can not establish connection",        # PBSE_CONNECT
    "pbs_iff",                             # authentication helper failed / missing
    "trqauthd",                            # Torque authentication daemon unreachable
    "connection refused",
    "timed out",
    "time out",                            # PBSE_TIMEOUT "Time out"
    "server busy",                         # PBSE_SERVER_BUSY
    "no free connections",                 # PBSE_NOCONNECTS
    "premature end of file",               # PBSE_PREMATURE_EOF
    "socket close detected",
    "error reading data from socket",
    "error writing data to socket",
    "temporarily unavailable",             # PBSE_RESCUNAV, EAGAIN
    "server shutting down",                # PBSE_SVRDOWN
    "server could not connect to mom",     # PBSE_NORELYMOM (qdel of a running job)
    "unable to contact slurm controller",  # wrapper: slurmctld unreachable
    "problem loading jobs",                # wrapper qstat: Slurm->load_jobs() failed
    "socket timed out",
)

UNKNOWN_JOB_RC = 153          # PBSE_UNKJOBID (15001) & 0xff; also the wrapper's "nothing found"
_UNKNOWN_JOB = "unknown job id"
_JOB_FINISHED = "job has finished"          # PBS Pro, PBSE_HISTJOBID
_NO_HISTORY = "job_history_enable"          # PBS Pro, PBSE_JOBHISTNOTSET
JOB_NAME_MAX = 230

_JOB_ID = re.compile(r"^[0-9]+(?:\[[0-9]*\])?(?:\.[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
_JOB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
# qsub arguments the wrapper pastes into a shell command; ":" is PBS's host:path separator
# and "%" a sbatch file name pattern.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+=@,-]+$")
_HEADER = re.compile(r"^\s*Job Id:\s*(\S+)\s*$")
_ATTR = re.compile(r"^([ \t]+)([A-Za-z_][A-Za-z0-9_.:-]*) =(?: (.*))?$")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
# qstat environment: times in UTC; Torque hides finished jobs if these are set (qstat(1)).
_QSTAT_ENV_DROP = ("PBS_QSTAT_NO_COMPLETE", "PBS_QSTAT_EXECONLY")


@dataclass(frozen=True)
class PbsDialect:
    """What differs between Torque-style PBS and PBS Pro when reading ``qstat -f`` records."""

    name: str
    states: Mapping[str, BatchState]
    exec_codes: Mapping[int, tuple[str, BatchState]]
    start_attr: str   # when the job started running
    end_attr: str     # when it ended (recent PBS Pro: obittime; else mtime of a finished job)


TORQUE = PbsDialect("torque", TORQUE_STATES, TORQUE_EXEC_CODES, "start_time", "comp_time")
PBSPRO = PbsDialect("pbspro", PBSPRO_STATES, PBSPRO_EXEC_CODES, "stime", "obittime")


# ----------------------------------------------------------------------- parsing ----

def parse_qstat_full(output: str) -> list[dict[str, str]]:
    """Records of ``qstat -f`` output, each ``{"Job Id": id, attribute: value, ...}``.

    Continuation lines (a tab, in the 4-space style of Torque/PBS Pro) are glued to the
    previous value without the tab, which restores values folded inside a word; any other
    line that is not ``name = value`` joins the previous value after a newline.
    """
    records: list[dict[str, str]] = []
    record: Optional[dict[str, str]] = None
    indent: Optional[str] = None   # the attribute indentation of this record: 4 spaces or a tab
    last: Optional[str] = None
    for line in output.splitlines():
        header = _HEADER.match(line)
        if header:
            record = {"Job Id": header.group(1)}
            records.append(record)
            indent, last = None, None
            continue
        if record is None:
            continue
        match = _ATTR.match(line)
        if match and (indent is None or match.group(1) == indent):
            indent = match.group(1)
            last = match.group(2)
            record[last] = match.group(3) or ""
        elif last is not None and line.strip():
            if line.startswith("\t") and indent != "\t":
                record[last] += line[1:]
            else:
                record[last] += "\n" + line
    for record in records:
        for key, value in record.items():
            record[key] = value.strip()
    return records


def parse_ctime(value: str) -> Optional[int]:
    """Epoch seconds of a ``ctime(3)`` string in UTC ("Sat Nov 21 06:32:51 2026"), or None."""
    words = value.split()
    if len(words) == 1 and words[0].isdigit():
        seconds = int(words[0])    # some versions print epoch seconds
        return seconds if seconds > 0 else None
    if len(words) != 5 or words[1] not in _MONTHS:
        return None
    try:
        hour, minute, second = (int(part) for part in words[3].split(":"))
        return calendar.timegm((int(words[4]), _MONTHS[words[1]], int(words[2]), hour, minute, second))
    except ValueError:
        return None


def parse_exit_status(
    value: str, dialect: PbsDialect
) -> tuple[BatchState, Optional[int], Optional[int], str]:
    """(state, exit_code, exit_signal, reason) of an ended job's exit status."""
    try:
        status = int(value.strip())
    except ValueError:
        return BatchState.COMPLETED, None, None, ""
    if status == 0:
        return BatchState.COMPLETED, 0, None, ""
    if 0 < status < SIGNAL_OFFSET:
        return BatchState.FAILED, status, None, ""
    if status > SIGNAL_OFFSET:
        signal = status - SIGNAL_OFFSET
        return BatchState.FAILED, None, signal, f"killed by signal {signal} (exit status {status})"
    if status < 0:
        name, state = dialect.exec_codes.get(status, ("JOB_EXEC_UNKNOWN", BatchState.FAILED))
        return state, None, None, f"{name} ({status})"
    return BatchState.FAILED, None, None, f"exit status {status}"


def _get(record: Mapping[str, str], name: str) -> str:
    """An attribute whatever its capitalisation (Torque exit_status, PBS Pro Exit_status)."""
    if name in record:
        return record[name]
    lowered = name.lower()
    return next((v for k, v in record.items() if k.lower() == lowered), "")


def _is_slurm_wrapper(record: Mapping[str, str]) -> bool:
    """The wrapper prints no ``server`` attribute; Torque and PBS Pro always do."""
    return "server" not in record


def status_from_record(record: Mapping[str, str], dialect: PbsDialect) -> BatchJobStatus:
    """The BatchJobStatus of one ``qstat -f`` record.

    Start/end times: ``start_time``/``comp_time`` (Torque), ``stime``/``obittime`` (PBS Pro,
    ``mtime`` of a finished job before ``obittime`` existed).  The wrapper has neither and
    prints Slurm's start time as ``mtime`` and its end time as ``ctime`` (for a running job
    the *expected* end, hence only read once the job ended).
    """
    native = record.get("job_state", "").strip()
    state = dialect.states.get(native.upper(), BatchState.UNKNOWN)
    wrapper = _is_slurm_wrapper(record)
    exit_code: Optional[int] = None
    exit_signal: Optional[int] = None
    reason = ""

    hold_types = record.get("Hold_Types", "")
    if state is BatchState.PENDING and hold_types not in ("", "n"):
        reason = f"held (Hold_Types={hold_types})"
    elif state is BatchState.PENDING and wrapper and record.get("Priority") == "0":
        reason = "held (Priority=0)"    # Slurm holds a job by setting its priority to 0
    elif native.upper() == "M":
        reason = "moved to another server"
    else:
        reason = one_line(record.get("comment", ""))

    end_time: Optional[int] = None
    if state.is_terminal:
        exit_value = _get(record, "exit_status")
        if exit_value:
            state, exit_code, exit_signal, exit_reason = parse_exit_status(exit_value, dialect)
            reason = exit_reason or reason
        end_text = record.get(dialect.end_attr) or record.get("ctime" if wrapper else "mtime", "")
        end_time = parse_ctime(end_text)

    start_time: Optional[int] = None
    if state is not BatchState.PENDING:
        start_text = record.get(dialect.start_attr) or (record.get("mtime", "") if wrapper else "")
        start_time = parse_ctime(start_text)

    return BatchJobStatus(
        job_id=record["Job Id"],
        state=state,
        native_state=native,
        reason=reason,
        start_time=start_time,
        end_time=end_time,
        exit_code=exit_code,
        exit_signal=exit_signal,
        name=record.get("Job_Name", ""),
    )


def parse_qstat(output: str, dialect: PbsDialect) -> dict[str, BatchJobStatus]:
    """``qstat -f`` output as {job id: status}."""
    jobs: dict[str, BatchJobStatus] = {}
    for record in parse_qstat_full(output):
        status = status_from_record(record, dialect)
        jobs[status.job_id] = status
    return jobs


def same_job(a: str, b: str) -> bool:
    """Whether two PBS job ids name the same job: "123", "123.srv" and "123.srv.domain" do."""
    seq_a, _, host_a = a.partition(".")
    seq_b, _, host_b = b.partition(".")
    if seq_a != seq_b:
        return False
    if not host_a or not host_b:
        return True
    return host_a == host_b or host_a.startswith(host_b + ".") or host_b.startswith(host_a + ".")


def parse_qsub_output(stdout: str) -> Optional[str]:
    """The job id qsub printed: its last non-empty stdout line ("17", "123.server")."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines and _JOB_ID.fullmatch(lines[-1]):
        return lines[-1]
    return None


def submit_error_detail(proc: subprocess.CompletedProcess[str]) -> str:
    """The most telling line of a failed qsub: the last one that mentions an error.

    The wrapper prints sbatch's messages quoted on stdout ("'sbatch: error: ...").
    """
    lines = [line.strip().strip("'").strip() for line in f"{proc.stderr or ''}\n{proc.stdout or ''}".splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if "error" in line.lower()]
    line = (errors or lines or [""])[-1]
    for prefix in ("sbatch: error: ", "qsub: error: ", "qsub: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
            break
    return one_line(line)


# ---------------------------------------------------------------------- commands ----
# Pure: built here, run by the adapter.


def qsub_command(script: Path, job_name: str, workdir: Path, output: Path) -> list[str]:
    """qsub with absolute paths (``output`` relative to ``workdir``), run in ``workdir``.

    ``-j oe`` joins stderr to stdout, ``-o`` names the file (qsub(1B)).  Raises ValueError for a
    path the wrapper would paste into its shell command, or real qsub read as ``host:path``.
    """
    workdir = Path(os.path.abspath(workdir))
    output_path = _check_path(output if output.is_absolute() else workdir / output, "output")
    script_path = _check_path(Path(os.path.abspath(script)), "script")
    return ["qsub", "-N", job_name, "-j", "oe", "-o", output_path, script_path]


def qstat_command(job_id: Optional[str] = None, history: bool = False) -> list[str]:
    """``qstat -f``: Torque's ``-1`` (no folded lines); or PBS Pro's ``-x`` (history), without
    ``-1``, which PBS Pro rejects without -n/-s (its folded lines are joined by the parser)."""
    options = ["-x"] if history else ["-1"]
    return ["qstat", "-f", *options, *([job_id] if job_id else [])]


def qdel_command(job_id: str) -> list[str]:
    return ["qdel", job_id]


def _check_path(path: Path, what: str) -> str:
    text = str(path)
    if not _SAFE_PATH.fullmatch(text):
        raise ValueError(f"{what} path must match [A-Za-z0-9_./+=@,-]+ for qsub: {text!r}")
    return text


# ----------------------------------------------------------------------- adapter ----

class PbsBatchSystem(BatchSystem):
    """Torque / OpenPBS 2.x style PBS (and the slurm-wlm-torque wrappers)."""

    name = "pbs"
    commands = ("qsub", "qstat", "qdel")
    environment_names = ("PBS_SERVER",)
    inspect_commands = "qstat -f {id}; tracejob {id}"
    queue_name_max = 15   # PBS_MAXQUEUENAME, src/include/pbs_ifl.h (Torque and OpenPBS)
    submit_in_workdir = True
    transient_markers = TRANSIENT_MARKERS
    job_id_pattern = _JOB_ID
    job_name_pattern = _JOB_NAME
    job_name_max = JOB_NAME_MAX
    dialect: PbsDialect = TORQUE

    # --- pure functions ----------------------------------------------------------------

    def submit_command(self, script: Path, job_name: str, workdir: Path, output: Path) -> list[str]:
        return qsub_command(script, job_name, workdir, output)

    def parse_submit_output(self, stdout: str) -> Optional[str]:
        return parse_qsub_output(stdout)

    def submit_failure_detail(self, stdout: str, stderr: str) -> str:
        return submit_error_detail(subprocess.CompletedProcess(["qsub"], 1, stdout, stderr))

    def status_command(self) -> list[str]:
        return self._qstat_argv()

    def _qstat_argv(self, job_id: Optional[str] = None) -> list[str]:
        return qstat_command(job_id)

    def parse_status_output(self, stdout: str) -> dict[str, BatchJobStatus]:
        return parse_qstat(stdout, self.dialect)

    def status_says_no_jobs(self, returncode: int, stdout: str, stderr: str) -> bool:
        return returncode == UNKNOWN_JOB_RC and not (stdout + stderr).strip()  # the wrapper's answer

    def cancel_command(self, job_id: str) -> list[str]:
        return qdel_command(job_id)

    def cancel_says_ended(self, stdout: str, stderr: str) -> bool:
        output = f"{stdout}\n{stderr}".lower()
        return _UNKNOWN_JOB in output or _JOB_FINISHED in output

    # --- commands ----------------------------------------------------------------------

    def _query(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """A qstat runs with TZ=UTC (see the module docstring).

        Only qstat gets TZ=UTC: qsub (sbatch behind the wrapper) passes its environment on to
        the job, which should keep the site's time zone.  (``_run`` reads ``self.env``; it is
        swapped for this one call - adapters are used from one thread.)
        """
        saved = self.env
        self.env = {k: v for k, v in saved.items() if k not in _QSTAT_ENV_DROP}
        self.env["TZ"] = "UTC"
        try:
            return self._run(argv)
        finally:
            self.env = saved

    def job_status(self, job_id: str) -> Optional[BatchJobStatus]:
        self._check_job_id(job_id)
        return self._single_status(job_id, self._query(self._qstat_argv(job_id)))

    def _single_status(
        self, job_id: str, proc: subprocess.CompletedProcess[str]
    ) -> Optional[BatchJobStatus]:
        output = f"{proc.stdout}\n{proc.stderr}"
        if proc.returncode == 0:
            records = parse_qstat_full(proc.stdout)
            chosen = next((r for r in records if same_job(r["Job Id"], job_id)), None)
            if chosen is None:
                raise LrmsError.from_completed(proc, False, f"no record of job {job_id} in its output")
            return status_from_record(chosen, self.dialect)
        if _UNKNOWN_JOB in output.lower() or (proc.returncode == UNKNOWN_JOB_RC and not output.strip()):
            return None  # forgotten (keep_completed / history / MinJobAge over); no accounting
        if _JOB_FINISHED in output.lower():
            # PBS Pro without -x: it ended, no details without the history
            return BatchJobStatus(job_id, BatchState.COMPLETED, "F", reason="Job has finished")
        raise self._failure(proc)

    def find_by_name(self, job_name: str) -> list[str]:
        self._check_job_name(job_name)
        return [job_id for job_id, status in self.bulk_status().items() if status.name == job_name]

    def _ended_after_all(self, job_id: str) -> bool:
        """qdel's answers for a job that has ended or that nobody knows differ (wrapper: rc 1
        and no output; Torque: "Request invalid for state of job"), so its state is asked
        (one more qstat)."""
        status = self.job_status(job_id)
        return status is None or status.state.is_terminal

    def _probe_accounting(self) -> bool:
        """No accounting: PBS's (tracejob, server_priv/accounting) lives in the server's logs."""
        return False


class PbsProBatchSystem(PbsBatchSystem):
    """PBS Professional / OpenPBS >= 19: finished jobs come from the job history (``-x``)."""

    name = "pbspro"
    inspect_commands = "qstat -fx {id}; tracejob {id}"
    dialect = PBSPRO

    def __init__(self, env: Mapping[str, str], timeout: float = 30.0) -> None:
        super().__init__(env, timeout)
        self._history: Optional[bool] = None  # job_history_enable on the server; None: not yet known

    def _qstat_argv(self, job_id: Optional[str] = None) -> list[str]:
        if self._history is False:
            return ["qstat", "-f", *([job_id] if job_id else [])]
        return qstat_command(job_id, history=True)

    def _query(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        proc = super()._query(argv)
        if self._history is None and "-x" in proc.args and _NO_HISTORY in (proc.stdout + proc.stderr).lower():
            self._history = False  # the server keeps no history: -x only ever yields this error
            proc = super()._query([a for a in argv if a != "-x"])
        elif self._history is None and proc.returncode == 0:
            self._history = True
        return proc
