"""hpcpull's gateway log: one line per decision, in HTCondor's manner.

Hooks run as the job's owner, so one shared file would have to be writable by every
user, who could then also truncate it.  Instead ``HPCPULL_LOG`` names the log of the
gateway's own processes (root, condor), and every other user's hooks write next to it
into ``<HPCPULL_LOG>.<user>``; the directory is created by the admin with mode 1777 (like
/tmp), so nobody can touch another user's lines.  Like HTCondor's daemon logs, a file
that grows past ``HPCPULL_MAX_LOG`` bytes is renamed to ``<file>.old`` (one generation).

A line is ``<UTC time> <EVENT> key=value ...``; values with blanks or quotes are written
as JSON strings, so a line splits with shlex.  Writing a log line never fails a hook:
a log that cannot be written is skipped.  ``format_line`` writes a line and ``parse_line``
reads it back (``hpcpull status``); ``Event`` and ``Field`` name the events and the keys
the writers use and the reader looks for.

The job's own hook.log (jobdir.HOOK_LOG) is a second, plainer log: ``<local time>
<hook>: <message>``.  Its FINALIZE lines, which ``hpcpull status`` reads back, are
defined here as well (``HOOK_NOTE``, ``FINALIZE_RETURNED``, ...).
"""

from __future__ import annotations

import calendar
import fcntl
import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any, Final, Optional

from hpcpull.state.accounts import current_user

GATEWAY_USERS = ("root", "condor")
OLD_SUFFIX: Final = ".old"  # the one rotated generation of a log file
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@#%+,=-]*\Z")
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"  # the first word of a line, in UTC
_EVENT_WORD = re.compile(r"[A-Z_]+\Z")     # the second word


class Event:
    """The events of the gateway log, the second word of a line."""

    ROUTED: Final = "ROUTED"                 # TRANSLATE staged the job (job_dir, owner, submitter, adopted)
    REFUSED: Final = "REFUSED"               # TRANSLATE refused it: the job will be held (reason)
    SUBMITTED: Final = "SUBMITTED"           # a batch job was submitted (batch_job, lrms)
    SUBMIT_DEFERRED: Final = "SUBMIT_DEFERRED"  # the batch system did not answer: submitted later (reason)
    THROTTLED: Final = "THROTTLED"           # submission waits for the route's limits (reason)
    STATUS: Final = "STATUS"                 # UPDATE changed JobStatus (status "<old>-><new>", reason)
    HELD: Final = "HELD"                     # UPDATE held the job (reason)
    REQUEUED: Final = "REQUEUED"             # the batch job ended and was submitted again
    REMOVED: Final = "REMOVED"               # the copy was removed (cancelled)
    UNDONE: Final = "UNDONE"                 # the job was given back to be routed again
    RELEASED: Final = "RELEASED"             # its user released a held job
    FINISHED: Final = "FINISHED"             # FINALIZE returned the outputs (exit and usage fields)
    CLEANED: Final = "CLEANED"               # CLEANUP removed (or kept) the job directory (kept)
    PARKED: Final = "PARKED"                 # CLEANUP kept the batch job for a re-route
    LEFTOVER: Final = "LEFTOVER"             # a leftover job cannot be finished (problem)
    CALL: Final = "CALL"                     # one hook run, with HPCPULL_DEBUG = D_FULLDEBUG
    POLL: Final = "POLL"                     # one run of the schedd cron poller


class Field:
    """The keys of a line's ``key=value`` words that more than one place reads or writes."""

    JOB: Final = "job"                  # the source job, ClusterId.ProcId
    COPY: Final = "copy"                # the routed copy, ClusterId.ProcId
    ROUTE: Final = "route"
    BATCH_JOB: Final = "batch_job"      # the batch system's job id
    LRMS: Final = "lrms"                # the batch system's name
    OWNER: Final = "owner"
    JOB_DIR: Final = "job_dir"
    REASON: Final = "reason"            # why the job is held, refused or waits
    STATUS: Final = "status"            # "<old JobStatus>-><new JobStatus>" (status_change)
    EXIT_CODE: Final = "exit_code"
    EXIT_SIGNAL: Final = "exit_signal"
    WALL_S: Final = "wall_s"
    USER_CPU_S: Final = "user_cpu_s"
    SYS_CPU_S: Final = "sys_cpu_s"
    MEMORY_MB: Final = "memory_mb"
    OUTPUT_ERRORS: Final = "output_errors"  # how many output files could not be returned
    RETURNED: Final = "returned"        # the returned output files, joined by ","
    KEPT: Final = "kept"                # where a failed job's directory was kept


def status_change(old: object, new: object) -> str:
    """The value of a STATUS line's ``status``: ``<old>-><new>`` JobStatus."""
    return f"{old}->{new}"


def new_status(change: str) -> str:
    """The new JobStatus of a ``status`` value (status_change)."""
    return change.rpartition("->")[2]


def log_file(base: Path, user: Optional[str] = None) -> Path:
    """The file this process (or ``user``) writes: the base for the gateway, else per user."""
    user = user or current_user()
    return base if user in GATEWAY_USERS else base.with_name(f"{base.name}.{user}")


def format_value(value: Any) -> str:
    if isinstance(value, float):
        value = round(value, 3)
    text = str(value)
    if text and _PLAIN.match(text):
        return text
    return json.dumps(text, ensure_ascii=True)


def format_line(event: str, fields: dict[str, Any], now: Optional[float] = None) -> str:
    stamp = time.strftime(TIME_FORMAT, time.gmtime(time.time() if now is None else now))
    parts = [stamp, event]
    parts += [f"{key}={format_value(value)}" for key, value in fields.items() if value not in (None, "")]
    return " ".join(parts) + "\n"


def parse_line(line: str) -> Optional[tuple[float, str, dict[str, str]]]:
    """(time, event, fields) of a line ``format_line`` wrote; None for any other text (a
    torn last line, someone else's text)."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if len(words) < 2 or not _EVENT_WORD.match(words[1]):
        return None
    try:
        stamp = calendar.timegm(time.strptime(words[0], TIME_FORMAT))
    except ValueError:
        return None
    fields = {}
    for word in words[2:]:
        key, sep, value = word.partition("=")
        if sep and key:
            fields[key] = value
    return float(stamp), words[1], fields


def write_event(base: Optional[Path], max_bytes: int, event: str, **fields: Any) -> None:
    """Append one line to this user's log file; rotate it to ``.old`` past ``max_bytes``."""
    if base is None:
        return
    path = log_file(base)
    line = format_line(event, fields).encode("utf-8", errors="replace")
    try:
        for _ in range(3):  # another process may rotate between our open and our lock
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                try:
                    current = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
                    continue  # rotated under us: write into the new file
                if max_bytes > 0 and st.st_size + len(line) > max_bytes and st.st_size > 0:
                    os.replace(path, f"{path}{OLD_SUFFIX}")
                    continue
                os.write(fd, line)
                return
            finally:
                os.close(fd)
    except OSError:
        return  # the log is for people; the job must not suffer from it


# --------------------------------------------------------------------------- hook.log

HOOK_NOTE: Final = "{stamp} {hook}: {message}\n"   # one line of a job's hook.log
HOOK_NOTE_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"  # local time
FINALIZE: Final = "finalize"                       # the hook word of FINALIZE's lines
FINALIZE_RETURNED: Final = "returned {count} output(s)"
FINALIZE_PROBLEMS: Final = "; {count} problem(s): {problems}"  # follows FINALIZE_RETURNED; problems joined by "; "
FINALIZE_FAILED: Final = "output transfer failed: {problem}"


def finalize_note(returned: int, problems: list[str]) -> str:
    """FINALIZE's message in hook.log once it returned the outputs."""
    note = FINALIZE_RETURNED.format(count=returned)
    return note + (FINALIZE_PROBLEMS.format(count=len(problems), problems="; ".join(problems)) if problems else "")


def _pattern(template: str, **groups: str) -> str:
    """A regular expression for ``template``: its text literally, each ``{name}`` as ``groups[name]``."""
    text = re.escape(template)
    for name, group in groups.items():
        text = text.replace(re.escape("{" + name + "}"), group)
    return text


_FINALIZE_RETURNED = re.compile(
    _pattern(f"{FINALIZE}: {FINALIZE_RETURNED}", count="(?P<count>[0-9]+)")
    + "(?:" + _pattern(FINALIZE_PROBLEMS, count="[0-9]+", problems="(?P<problems>.*)") + ")?$")
_FINALIZE_FAILED = re.compile(_pattern(f"{FINALIZE}: {FINALIZE_FAILED}", problem="(?P<problem>.*)") + "$")


def parse_finalize_note(line: str) -> Optional[tuple[Optional[int], list[str]]]:
    """(outputs returned, problems) of a FINALIZE line of hook.log; None for any other line.
    The count is None when the transfer failed as a whole (FINALIZE_FAILED)."""
    found = _FINALIZE_RETURNED.search(line)
    if found:
        return int(found.group("count")), [p for p in (found.group("problems") or "").split("; ") if p]
    failed = _FINALIZE_FAILED.search(line)
    if failed:
        return None, [failed.group("problem")]
    return None
