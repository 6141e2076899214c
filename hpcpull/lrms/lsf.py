"""IBM Spectrum LSF through its client commands: bsub, bjobs, bkill.

No LSF can be installed on the development machine, so this module is checked against
output samples from real clusters (tests/fixtures/lsf/README.md) and against a labelled
fake LSF (tests/fakes/lsf).  Facts it relies on, with their sources:

* ``bsub`` reads ``#BSUB`` lines only from a job fed on **standard input**
  (``bsub < script``).  ``bsub script`` parses them only where the administrator set
  ``LSB_BSUB_PARSE_SCRIPT=Y`` in lsf.conf; otherwise the script is just a command.
  (IBM LSF 10.1 docs, bsub "command" and "job_script" arguments.)
* An option given both on the bsub command line and in a ``#BSUB`` line: the command
  line wins (same bsub "command" page).  So the job name, working directory and output
  file go on the command line, whatever the (site-editable) script says.
* ``-o file`` without ``-e`` sends stderr to the same file; ``-e`` naming the same file
  as ``-o`` does too, and also overrides a stray ``#BSUB -e`` (bsub ``-o`` page).  ``-o``
  appends, and LSF adds its job report at the end.
* ``bjobs -o "fields delimiter='|'"`` (LSF >= 9.1) prints unpadded fields, "-" for an
  empty one; ``-noheader`` drops the header line.  Times are local, to the minute,
  without year (``Mar  3 16:46``; samples from LSF 9.1.3 at CERN and from gc3pie); some
  sites print seconds and a year (``Dec 1 18:00:00 2019``, as the bsub R package
  expects); an estimated time carries a flag ``E``/``L``/``X`` (AiiDA's LSF plugin).
  ``-json`` would quote free text too, but needs LSF 10.1 Fix Pack 2 and we have no
  verified sample of it, so the delimited form is used, with the job name (free text)
  last.  EXIT_REASON starts with the termination keyword ("TERM_RUNLIMIT: job killed
  after reaching LSF run time limit"); it may only contain '|' with a user's
  ``bkill -C`` text, which would then spill into that job's name.
* ``bjobs -a`` lists finished jobs only for ``CLEAN_PERIOD`` (lsb.params, default 1 h).
* "No job found" / "No unfinished job found" / "Job <N> is not found" are printed on
  stderr; the exit status is 0 or 255 depending on LSB_BJOBS_CONSISTENT_EXIT_CODE, so
  the text decides, not the status (IBM docs, lsf.conf LSB_BJOBS_CONSISTENT_EXIT_CODE).
* ``bkill`` of a finished or unknown job fails with "Job <N>: Job has already
  finished" / "Job <N>: No matching job found" on stderr (lsberrno texts printed by
  lsb_perror, openlava lsbatch/lib/lsb.err.c and lsbatch/cmd/cmd.sig.c).  bkill sends
  SIGINT, SIGTERM, then SIGKILL; the job ends EXIT with termination reason TERM_OWNER
  (IBM docs, bkill; "Termination reasons displayed by bacct, bhist, and bjobs").
* EXIT_CODE of a job killed by a signal is what its shell reported, e.g. 140 (128 +
  SIGUSR2) after a run limit (real job reports).  The signal itself is not shown, so
  ``exit_signal`` stays None; hpcpull takes the payload's own status from its launcher.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from hpcpull.lrms.base import BatchJobStatus, BatchState, BatchSystem, LrmsError

# The STAT field of bjobs (IBM docs, bjobs "Job states"; PDONE/PERR after post-execution).
LSF_STATES: dict[str, BatchState] = {
    "PEND": BatchState.PENDING,      # waiting to be scheduled
    "PSUSP": BatchState.PENDING,     # suspended while pending (bsub -H, bstop): held
    "WAIT": BatchState.PENDING,      # member of a chunk job waiting to run
    "PROV": BatchState.PENDING,      # dispatched to a power-saved host that is waking up
    "RUN": BatchState.RUNNING,
    # mbatchd lost contact with the execution host; the job most likely still runs
    # (LSF turns it into ZOMBI/EXIT if not).  Treated as running so that a network
    # hiccup does not count as the end of the job.
    "UNKWN": BatchState.RUNNING,
    "USUSP": BatchState.SUSPENDED,   # suspended by its owner or an admin while running
    "SSUSP": BatchState.SUSPENDED,   # suspended by LSF (load, run window)
    "DONE": BatchState.COMPLETED,    # exit status 0
    "PDONE": BatchState.COMPLETED,   # DONE, post-execution processing done
    "EXIT": BatchState.FAILED,       # non-zero exit, or killed: see TERM_STATES
    "PERR": BatchState.FAILED,       # post-execution processing failed
    # execution host unreachable while the job was killed or requeued elsewhere
    "ZOMBI": BatchState.NODE_FAIL,
}

# Termination reasons (the keyword that starts bjobs' EXIT_REASON, e.g. "TERM_RUNLIMIT:
# job killed after reaching LSF run time limit") that say more than "failed".  IBM docs,
# "Termination reasons displayed by bacct, bhist, and bjobs".
TERM_STATES: dict[str, BatchState] = {
    "TERM_OWNER": BatchState.CANCELLED,
    "TERM_ADMIN": BatchState.CANCELLED,
    "TERM_FORCE_OWNER": BatchState.CANCELLED,
    "TERM_FORCE_ADMIN": BatchState.CANCELLED,
    "TERM_RUNLIMIT": BatchState.TIMEOUT,
    "TERM_MEMLIMIT": BatchState.OUT_OF_MEMORY,
    "TERM_SWAP": BatchState.OUT_OF_MEMORY,
    "TERM_PREEMPT": BatchState.PREEMPTED,
    "TERM_DEADLINE": BatchState.DEADLINE,
}

# Case-insensitive markers, in a failed command's output, of "LSF is unreachable or busy,
# try again later" (batch library and LIM messages); anything else is a refusal.
TRANSIENT_MARKERS: tuple[str, ...] = (
    "LSF is down",
    "LSF is processing your request",
    "Cannot connect to LSF",
    "batch system daemon not responding",
    "Failed in an LSF library call",        # lsb_init / LIM errors, e.g. "LIM is down"
    "LIM is down",
    "try later",
    "Communication timeout",                # "Contacting batch daemon: Communication timeout"
    "Timeout on connect call to server",
    "Connection refused by server",
    "timed out",
)

# Fields of every bjobs query; the job name is free text, so it comes last.
BJOBS_FIELDS: tuple[str, ...] = (
    "jobid", "stat", "exit_code", "start_time", "finish_time", "exit_reason", "job_name",
)
BJOBS_DELIMITER = "|"
_FIELD_ALIASES = {"id": "jobid", "name": "job_name"}

_JOB_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_JOB_ID = re.compile(r"^[0-9]+(?:\[[0-9]+\])?$")   # 17, or 17[3]: an element of job array 17
_BSUB_ID = re.compile(r"Job <([0-9]+)> is submitted to (?:default )?queue <[^>]*>")
_TIME = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2}))?(?:\s+(?P<year>\d{4}))?(?:\s+[ELX])?$"
)
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_NO_JOBS = ("No job found", "No unfinished job found", "is not found")
_GONE = ("Job has already finished", "No matching job found")


def map_state(native: str, exit_reason: str = "") -> BatchState:
    """The BatchState of a bjobs STAT; an EXIT is refined by its termination reason."""
    state = LSF_STATES.get(native.strip().upper(), BatchState.UNKNOWN)
    if state is BatchState.FAILED:
        keyword = exit_reason.strip().split(":", 1)[0].strip().upper()
        state = TERM_STATES.get(keyword, state)
    return state


def parse_time(value: str, now: Optional[float] = None) -> Optional[int]:
    """Epoch seconds of a bjobs time (``Mar  3 16:46``, ``Dec 1 18:00:00 2019``, ``... L``).

    bjobs prints local time without a year: the year is the latest one that does not put
    the time more than a day in the future.  "-" and anything unparsable are None.
    """
    match = _TIME.match(value.strip())
    if not match or match["mon"] not in _MONTHS:
        return None
    month, day = _MONTHS[match["mon"]], int(match["day"])
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
    latest = datetime.fromtimestamp(time.time() if now is None else now) + timedelta(days=1)
    years = [int(match["year"])] if match["year"] else range(latest.year, latest.year - 5, -1)
    for year in years:  # without a year: this one or an earlier one (5 years: past a Feb 29)
        try:
            moment = datetime(year, month, day, hour, minute, second)
        except ValueError:
            continue
        if match["year"] or moment <= latest:
            return int(time.mktime(moment.timetuple()))
    return None


def parse_exit_code(value: str) -> Optional[int]:
    """bjobs' EXIT_CODE: a number, or "-" (none, e.g. DONE or killed before it started)."""
    value = value.strip()
    return int(value) if value.isdigit() else None


def _text(value: str) -> str:
    value = value.strip()
    return "" if value == "-" else value


def record_status(record: Mapping[str, str], now: Optional[float] = None) -> Optional[BatchJobStatus]:
    """A BatchJobStatus from one bjobs record (field name -> text); None without id/stat."""
    job_id, native = record.get("jobid", "").strip(), record.get("stat", "").strip()
    if not _JOB_ID.match(job_id) or not native:
        return None
    exit_reason = _text(record.get("exit_reason", ""))
    state = map_state(native, exit_reason)
    code = parse_exit_code(record.get("exit_code", "")) if state.is_terminal else None
    if code is None and native.upper() in ("DONE", "PDONE"):
        code = 0  # DONE means exit status 0; bjobs prints "-" for it
    return BatchJobStatus(
        job_id=job_id,
        state=state,
        native_state=native,
        reason=exit_reason,
        start_time=None if state is BatchState.PENDING else parse_time(record.get("start_time", ""), now),
        # while running, FINISH_TIME is an estimate (from the run limit)
        end_time=parse_time(record.get("finish_time", ""), now) if state.is_terminal else None,
        exit_code=code,
        name=record.get("job_name", "").strip(),
    )


def parse_bjobs(
    output: str,
    fields: Sequence[str] = BJOBS_FIELDS,
    delimiter: str = BJOBS_DELIMITER,
    now: Optional[float] = None,
) -> dict[str, BatchJobStatus]:
    """``bjobs -o "<fields> delimiter='<delimiter>'"`` output, by job id.

    Only the last field may contain the delimiter.  A header line (``JOBID|STAT|...``)
    and lines that are not job records are skipped.
    """
    names = [_FIELD_ALIASES.get(f.lower(), f.lower()) for f in fields]
    jobs: dict[str, BatchJobStatus] = {}
    for line in output.splitlines():
        values = line.strip().split(delimiter, len(names) - 1)
        if len(values) != len(names):
            continue
        status = record_status(dict(zip(names, values)), now)
        if status is not None:
            jobs[status.job_id] = status
    return jobs


def parse_bsub_output(stdout: str) -> Optional[str]:
    """The id in "Job <17> is submitted to [default ]queue <normal>." (other lines ignored)."""
    match = _BSUB_ID.search(stdout)
    return match.group(1) if match else None


def bjobs_format(fields: Sequence[str] = BJOBS_FIELDS, delimiter: str = BJOBS_DELIMITER) -> str:
    """The ``-o`` argument: unlimited width (no ``:width``), fields joined by ``delimiter``."""
    return f"{' '.join(fields)} delimiter='{delimiter}'"


def lsf_minutes(seconds: float) -> str:
    """Seconds as whole minutes, rounded up: bsub ``-W [hour:]minute`` (bsub, -W)."""
    return str(max(1, -(-math.ceil(float(seconds)) // 60)))


# --- commands (pure: built here, run by the adapter) --------------------------------------


def bsub_command(job_name: str, workdir: Path, output: Path) -> list[str]:
    """bsub without the script, which goes on its standard input so that its #BSUB lines are
    read; -o and -e naming the same file join stdout and stderr there.  (LSF expands %J/%I
    in these paths.)"""
    return ["bsub", "-J", job_name, "-cwd", str(workdir), "-o", str(output), "-e", str(output)]


def bjobs_command(job_id: Optional[str] = None) -> list[str]:
    """Every user's jobs (``-u all``), finished ones too (``-a``), as BJOBS_FIELDS; or one job."""
    if job_id is None:
        return ["bjobs", "-u", "all", "-a", "-noheader", "-o", bjobs_format()]
    return ["bjobs", "-a", "-noheader", "-o", bjobs_format(), job_id]


def bjobs_name_command(job_name: str) -> list[str]:
    return ["bjobs", "-u", "all", "-a", "-noheader", "-o", "jobid", "-J", job_name]


def bkill_command(job_id: str) -> list[str]:
    return ["bkill", job_id]


def _says(proc_output: str, phrases: Iterable[str]) -> bool:
    return any(p in proc_output for p in phrases)


class LsfBatchSystem(BatchSystem):
    """LSF adapter.  Every command runs with ``LC_ALL=C``: English messages and month names."""

    name = "lsf"
    commands = ("bsub", "bjobs", "bkill")
    environment_names = ("LSF_ENVDIR",)
    inspect_commands = "bjobs -l {id}; bhist -l {id}"
    queue_name_max = 59   # QUEUE_NAME, lsb.queues(5)
    submit_reads_stdin = True
    transient_markers = TRANSIENT_MARKERS
    job_id_pattern = _JOB_ID
    job_name_pattern = _JOB_NAME  # no '*' (a bjobs -J wildcard), no '[' (a job array)

    def __init__(self, env: Mapping[str, str], timeout: float = 30.0) -> None:
        super().__init__(env, timeout)
        self.env["LC_ALL"] = "C"

    @staticmethod
    def format_walltime(seconds: float) -> str:
        return lsf_minutes(seconds)

    def submit_command(self, script: Path, job_name: str, workdir: Path, output: Path) -> list[str]:
        return bsub_command(job_name, workdir, output)

    def parse_submit_output(self, stdout: str) -> Optional[str]:
        return parse_bsub_output(stdout)

    def status_command(self) -> list[str]:
        return bjobs_command()

    def parse_status_output(self, stdout: str) -> dict[str, BatchJobStatus]:
        return parse_bjobs(stdout)

    def status_says_no_jobs(self, returncode: int, stdout: str, stderr: str) -> bool:
        return _says(stderr, _NO_JOBS)

    def cancel_command(self, job_id: str) -> list[str]:
        return bkill_command(job_id)

    def cancel_says_ended(self, stdout: str, stderr: str) -> bool:
        return _says(stderr + stdout, _GONE)

    def job_status(self, job_id: str) -> Optional[BatchJobStatus]:
        self._check_job_id(job_id)
        proc = self._run(bjobs_command(job_id))
        status = parse_bjobs(proc.stdout).get(job_id)
        if status is not None:
            return status
        if not _says(proc.stderr, _NO_JOBS):
            if proc.returncode != 0:
                raise self._failure(proc)
            raise LrmsError.from_completed(proc, False, "no job record in its output")
        # bjobs forgot the job (CLEAN_PERIOD); accounting is not used, see _probe_accounting
        return None

    def find_by_name(self, job_name: str) -> list[str]:
        self._check_job_name(job_name)
        proc = self._run(bjobs_name_command(job_name))
        if proc.returncode != 0 and not _says(proc.stderr, _NO_JOBS):
            raise self._failure(proc)
        ids = [line.strip() for line in proc.stdout.splitlines()]
        return list(dict.fromkeys(i for i in ids if _JOB_ID.match(i)))

    def _probe_accounting(self) -> bool:
        """Not used: False, without running anything.

        LSF's history commands (``bhist -l``, ``bacct -l``) print prose wrapped at 80
        columns ("Exited with exit code 3. The CPU time used is ...") and ``bhist`` may
        have to scan every rotated lsb.events file; without a real LSF to check a parser
        against, a guess would be worse than nothing.  bjobs itself keeps finished jobs
        for CLEAN_PERIOD (default one hour), far longer than hpcpull takes to notice an
        end, so a job that bjobs has forgotten is reported unknown (None).
        """
        return False
