"""What every batch system (LRMS) adapter offers: submit, status, cancel; and what it knows.

One module per batch system (as Parsl's providers do); each subclasses :class:`BatchSystem`.
As in PSI/J, an adapter builds each command and parses its output with pure functions
(no subprocess: ``submit_command``, ``parse_submit_output``, ``status_command``,
``parse_status_output``, ``cancel_command``...), and :class:`BatchSystem` runs them through
:meth:`BatchSystem._run`, which bounds every call by a timeout: a client talking to a dead
controller may hang for a long time.  Facts about the system that the rest of hpcpull needs
(the commands ``hpcpull doctor`` looks for, the variables that locate the cluster, how a
template writes a walltime...) are class attributes, readable without an instance
(``hpcpull.lrms.batch_system_class``).

Errors are :class:`LrmsError`, which keeps the command, its output and its exit status,
and says whether retrying later may help (``transient``).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar, Union

from hpcpull.errors import HpcPullError

T = TypeVar("T")


class BatchState(str, Enum):
    """A batch job's state, common to all batch systems (the native one is kept beside it)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    UNKNOWN = "UNKNOWN"

    @property
    def is_active(self) -> bool:
        """Waiting for, or holding, an allocation: the job may still run or is running."""
        return self in _ACTIVE

    @property
    def is_terminal(self) -> bool:
        """The batch job has ended and will not run again (UNKNOWN is neither active nor terminal)."""
        return self is not BatchState.UNKNOWN and self not in _ACTIVE

    def __str__(self) -> str:
        return self.value


_ACTIVE = frozenset({BatchState.PENDING, BatchState.RUNNING, BatchState.SUSPENDED})


@dataclass(frozen=True)
class BatchJobStatus:
    """One batch job as the batch system reports it.

    Times are epoch seconds.  ``start_time`` is None while the job waits (a batch system's
    *expected* start is not a start); ``end_time``, ``exit_code`` and ``exit_signal`` are
    only set once the job is terminal.  A job killed by a signal has ``exit_signal`` set
    and usually ``exit_code`` None.
    """

    job_id: str
    state: BatchState
    native_state: str
    reason: str = ""
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    exit_code: Optional[int] = None
    exit_signal: Optional[int] = None
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``state`` as its string value)."""
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BatchJobStatus:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, an unknown state becomes UNKNOWN.

        Raises ValueError when a required field is missing or a field has the wrong type
        (e.g. a damaged cache file).
        """
        try:
            job_id = d["job_id"]
            state_value = d["state"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"batch job status lacks {exc}") from None
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"batch job status: bad job_id {job_id!r}")
        try:
            state = BatchState(state_value)
        except ValueError:
            state = BatchState.UNKNOWN

        def text(key: str) -> str:
            value = d.get(key, "")
            if value is None:
                return ""
            if not isinstance(value, str):
                raise ValueError(f"batch job status: {key} is not a string: {value!r}")
            return value

        def number(key: str) -> Optional[int]:
            value = d.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"batch job status: {key} is not an integer: {value!r}")
            return value

        return cls(
            job_id=job_id,
            state=state,
            native_state=text("native_state") or str(state_value),
            reason=text("reason"),
            start_time=number("start_time"),
            end_time=number("end_time"),
            exit_code=number("exit_code"),
            exit_signal=number("exit_signal"),
            name=text("name"),
        )


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace (newlines included) so ``text`` fits on one log line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class LrmsError(HpcPullError):
    """A batch command failed.

    Keeps ``command``, ``stdout``, ``stderr`` and ``returncode`` (None when the command
    did not finish: timeout, could not be started).  ``transient`` says whether retrying
    later may help (timeouts, controller unreachable) as opposed to a refusal (invalid
    partition, bad account).  ``str(err)`` is one line, e.g.
    ``sbatch failed (rc=1): Batch job submission failed: Invalid partition name specified``.
    """

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        stdout: str = "",
        stderr: str = "",
        returncode: Optional[int] = None,
        transient: bool = False,
    ) -> None:
        self.message = one_line(message)
        super().__init__(self.message)
        self.command = list(command)
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode
        self.transient = transient

    @classmethod
    def from_completed(
        cls, proc: subprocess.CompletedProcess[str], transient: bool, detail: str = ""
    ) -> LrmsError:
        """The error for a command that ran and failed: "<prog> failed (rc=N): <detail>".

        ``detail`` defaults to the last line of stderr (or stdout) without the
        "<prog>: error: " prefix.
        """
        argv = [str(a) for a in proc.args] if isinstance(proc.args, (list, tuple)) else [str(proc.args)]
        prog = command_name(argv)
        detail = detail or last_message(proc.stderr, prog) or last_message(proc.stdout, prog)
        message = f"{prog} failed (rc={proc.returncode})"
        if detail:
            message += f": {detail}"
        return cls(
            message,
            command=argv,
            stdout=proc.stdout or "",
            stderr=proc.stderr or "",
            returncode=proc.returncode,
            transient=transient,
        )

    def __reduce__(self) -> Any:  # keep the attributes through pickling (multiprocessing, logging)
        return (
            _rebuild_lrms_error,
            (self.message, self.command, self.stdout, self.stderr, self.returncode, self.transient),
        )


def _rebuild_lrms_error(
    message: str, command: list[str], stdout: str, stderr: str, returncode: Optional[int], transient: bool
) -> LrmsError:
    return LrmsError(
        message, command=command, stdout=stdout, stderr=stderr, returncode=returncode, transient=transient
    )


def command_name(argv: Sequence[str]) -> str:
    return os.path.basename(argv[0]) if argv else "command"


def last_message(text: Optional[str], prog: str = "") -> str:
    """The last non-empty line of a command's output, without a "<prog>: error: " prefix."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    for prefix in (f"{prog}: error: ", f"{prog}: fatal: ", f"{prog}: "):
        if prog and line.startswith(prefix):
            line = line[len(prefix):]
            break
    return one_line(line)


def _as_text(data: Union[str, bytes, None]) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data


def hms(seconds: Any) -> str:
    """Seconds as ``HH:MM:SS``, rounded up to whole seconds (hours may exceed 24)."""
    total = max(1, math.ceil(float(seconds)))
    hours, rest = divmod(total, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


class BatchSystem(ABC):
    """A batch system reached through its client commands, run with ``env``.

    Every command is bounded by ``timeout`` seconds; a timeout, or a command that cannot
    be started, raises ``LrmsError(transient=True)``.
    """

    name: str = ""

    # --- facts about the batch system (class attributes: read without an instance) -----

    #: The client commands the adapter runs; ``hpcpull doctor`` checks they are on the
    #: PATH of the batch commands.
    commands: tuple[str, ...] = ()
    #: The environment variables that tell the clients which cluster to talk to
    #: (e.g. SLURM_CONF), shown in messages about a failing command.
    environment_names: tuple[str, ...] = ()
    #: What an admin runs to look at one job, ``{id}`` standing for its batch job id
    #: (e.g. "scontrol show job {id}; sacct -j {id}").
    inspect_commands: str = ""
    #: The system's own launcher of job steps inside an allocation (Slurm's srun), "" when
    #: it has none; a route's ``HPCPULL_LAUNCHER`` may only name this one of the step
    #: launchers that hpcpull.script.launchers knows.
    step_launcher: str = ""
    #: The longest queue (partition) name the system accepts from a job; hpcpull's own
    #: cap for any name a job chooses is 64 (hpcpull.script.resources, NAME_MAX_LENGTH).
    queue_name_max: int = 64
    #: The submit command reads the script on standard input (``bsub < script``), not as
    #: an argument.
    submit_reads_stdin: bool = False
    #: The submit command runs in the job's working directory (PBS records qsub's
    #: directory as PBS_O_WORKDIR, qsub(1B)).
    submit_in_workdir: bool = False

    # Case-insensitive substrings of a failed command's output that mean "try again later".
    transient_markers: tuple[str, ...] = ()
    # What a job id and a job name look like on this system; checked before any command
    # runs, so that neither can become an option or a second argument.
    job_id_pattern: re.Pattern[str] = re.compile(r"[0-9]+")
    job_name_pattern: re.Pattern[str] = re.compile(r"[A-Za-z0-9_.-]+")
    job_name_max: int = 1024

    def __init__(self, env: Mapping[str, str], timeout: float = 30.0) -> None:
        self.env: dict[str, str] = dict(env)
        self.timeout = float(timeout)
        self._accounting: Optional[bool] = None

    @staticmethod
    def format_walltime(seconds: float) -> str:
        """A wall-time limit of ``seconds`` as the job script's directive takes it.

        Templates write it with the ``walltime`` filter (hpcpull.script.render).  This
        default is ``HH:MM:SS`` (hours may exceed 24), rounded up to whole seconds.
        """
        return hms(seconds)

    # --- pure functions: build a command, read its output (nothing is run) ----------

    @abstractmethod
    def submit_command(self, script: Path, job_name: str, workdir: Path, output: Path) -> list[str]:
        """The argv submitting ``script`` (see :meth:`submit`); ValueError for an unusable path.

        With :attr:`submit_reads_stdin` the script is not an argument: :meth:`submit`
        feeds it on standard input.
        """

    @abstractmethod
    def parse_submit_output(self, stdout: str) -> Optional[str]:
        """The job id in a successful submit command's stdout, None if there is none."""

    def submit_failure_detail(self, stdout: str, stderr: str) -> str:
        """The most telling line of a failed submit command ("" for the default, its last line)."""
        return ""

    @abstractmethod
    def status_command(self) -> list[str]:
        """The argv of :meth:`bulk_status`'s one query."""

    @abstractmethod
    def parse_status_output(self, stdout: str) -> dict[str, BatchJobStatus]:
        """:meth:`status_command`'s output by job id; ValueError when it cannot be read."""

    def status_says_no_jobs(self, returncode: int, stdout: str, stderr: str) -> bool:
        """Whether a status query that exited non-zero only says there are no jobs."""
        return False

    @abstractmethod
    def cancel_command(self, job_id: str) -> list[str]:
        """The argv cancelling ``job_id`` (already checked)."""

    def cancel_says_ended(self, stdout: str, stderr: str) -> bool:
        """Whether a failed cancel command says the job has ended or is unknown (not an error)."""
        return False

    # --- the interface -------------------------------------------------------------

    def submit(self, script: Path, job_name: str, workdir: Path, output: Path) -> str:
        """Submit ``script`` as ``job_name``, running in ``workdir``; return the batch job id.

        ``output`` receives the script's own stdout and stderr (joined).  It is passed on
        the command line because some submit commands override the script's directive
        (the Torque ``qsub`` wrapper always does).

        If this raises a transient LrmsError the job may or may not have been submitted
        (e.g. a timeout after the controller accepted it): use :meth:`find_by_name`.
        """
        self._check_job_name(job_name)
        argv = self.submit_command(script, job_name, workdir, output)
        stdin = None
        if self.submit_reads_stdin:
            try:
                stdin = Path(script).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise LrmsError(f"cannot read batch script {script}: {exc}", transient=False) from None
        proc = self._run(argv, cwd=Path(workdir) if self.submit_in_workdir else None, stdin=stdin)
        if proc.returncode != 0:
            raise self._failure(proc, self.submit_failure_detail(proc.stdout or "", proc.stderr or ""))
        job_id = self.parse_submit_output(proc.stdout)
        if job_id is None:
            # it said yes but printed no id: the job probably exists; find_by_name will tell
            raise LrmsError.from_completed(proc, True, f"no job id in output {proc.stdout.strip()!r}")
        return job_id

    def bulk_status(self) -> dict[str, BatchJobStatus]:
        """All jobs the caller can see (all users), by id; recently finished ones as far as
        the system's one query shows them.

        One command, whatever the number of jobs.  A job missing here may still be known
        to :meth:`job_status` (e.g. through accounting).
        """
        proc = self._query(self.status_command())
        if proc.returncode != 0 and not self.status_says_no_jobs(proc.returncode, proc.stdout, proc.stderr):
            raise self._failure(proc)
        return self._parsed(proc, self.parse_status_output)

    @abstractmethod
    def job_status(self, job_id: str) -> Optional[BatchJobStatus]:
        """Ask about one job; fall back to accounting when the batch system forgot it.

        None means nobody knows the job (the batch system does not, and accounting does
        not or is not available).  Raises LrmsError when that cannot be decided.
        """

    @abstractmethod
    def find_by_name(self, job_name: str) -> list[str]:
        """Ids of the jobs with exactly this name (still known, or in accounting if it works)."""

    def cancel(self, job_id: str) -> None:
        """Cancel a job; cancelling a finished or unknown job is not an error."""
        self._check_job_id(job_id)
        proc = self._run(self.cancel_command(job_id))
        if proc.returncode == 0:
            return
        if not self._is_transient(proc) and (
            self.cancel_says_ended(proc.stdout, proc.stderr) or self._ended_after_all(job_id)
        ):
            return
        raise self._failure(proc)

    def _ended_after_all(self, job_id: str) -> bool:
        """Whether a job whose cancel command failed (not transiently) has ended after all.

        Asked only when :meth:`cancel_says_ended` could not tell; this default says no.
        """
        return False

    def hides_other_users_jobs(self) -> bool:
        """Whether the batch system shows a user only their own jobs (Slurm PrivateData=jobs):
        then one gateway-wide status query cannot see every user's jobs."""
        return False

    def accounting_statuses(self, job_ids: Sequence[str]) -> dict[str, BatchJobStatus]:
        """Final states of jobs the batch system has forgotten, in ONE accounting query.

        Used by the schedd cron poller for the jobs that left the queue since its last
        poll; batch systems without a batched accounting query return nothing (UPDATE then
        asks about each such job alone).
        """
        return {}

    def accounting_available(self) -> bool:
        """Whether the accounting database answers; probed once, then cached for this instance.

        Raises LrmsError (not cached) when the probe cannot decide, e.g. it timed out.
        """
        if self._accounting is None:
            self._accounting = self._probe_accounting()
        return self._accounting

    @abstractmethod
    def _probe_accounting(self) -> bool:
        """One probe of the accounting database (see :meth:`accounting_available`)."""

    # --- helpers for subclasses ----------------------------------------------------

    def _check_job_id(self, job_id: str) -> str:
        if not isinstance(job_id, str) or not self.job_id_pattern.fullmatch(job_id):
            raise ValueError(f"not a {self.name} job id: {job_id!r}")
        return job_id

    def _check_job_name(self, job_name: str) -> str:
        if (
            not isinstance(job_name, str)
            or not self.job_name_pattern.fullmatch(job_name)
            or len(job_name) > self.job_name_max
        ):
            raise ValueError(
                f"{self.name} job name must match {self.job_name_pattern.pattern} "
                f"(at most {self.job_name_max} characters): {job_name!r}"
            )
        return job_name

    def _run(
        self, argv: list[str], cwd: Optional[Path] = None, stdin: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one client command with ``self.env`` (in ``cwd``), output captured as text.

        ``stdin`` is the command's input (``bsub < script``); without it stdin is /dev/null.

        A non-zero exit status is returned, not raised: the caller knows which failures
        are harmless.  A timeout or an OSError raises ``LrmsError(transient=True)``.
        """
        prog = command_name(argv)
        try:
            return subprocess.run(
                argv,
                env=self.env,
                cwd=cwd,
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
                capture_output=True,
                encoding="utf-8",
                errors="replace",  # other users' job names need not be UTF-8
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LrmsError(
                f"{prog} timed out after {self.timeout:g} s",
                command=argv,
                stdout=_as_text(exc.stdout),
                stderr=_as_text(exc.stderr),
                returncode=None,
                transient=True,
            ) from None
        except OSError as exc:
            raise LrmsError(
                f"{prog} could not be run: {exc}", command=argv, returncode=None, transient=True
            ) from None

    def _query(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """:meth:`_run` for a status query (an adapter may adjust its environment or retry)."""
        return self._run(argv)

    def _parsed(self, proc: subprocess.CompletedProcess[str], parse: Callable[[str], T]) -> T:
        """``parse(proc.stdout)``; a ValueError (output it cannot read) becomes a non-transient LrmsError."""
        try:
            return parse(proc.stdout)
        except ValueError as exc:
            raise LrmsError.from_completed(proc, False, str(exc)) from None

    def _is_transient(self, proc: subprocess.CompletedProcess[str]) -> bool:
        """Whether a failed command's output says the batch system is only unreachable or busy."""
        text = f"{proc.stdout or ''}\n{proc.stderr or ''}".lower()
        return any(marker.lower() in text for marker in self.transient_markers)

    def _failure(self, proc: subprocess.CompletedProcess[str], detail: str = "") -> LrmsError:
        """The LrmsError for a failed command, classified with :meth:`_is_transient`."""
        return LrmsError.from_completed(proc, self._is_transient(proc), detail)

    def _checked(
        self, argv: list[str], cwd: Optional[Path] = None, stdin: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        """:meth:`_run`, raising :meth:`_failure` on a non-zero exit status."""
        proc = self._run(argv, cwd, stdin)
        if proc.returncode != 0:
            raise self._failure(proc)
        return proc
