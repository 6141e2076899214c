"""hpcpull's gateway log: one line per decision, in HTCondor's manner.

Hooks run as the job's owner, so one shared file would have to be writable by every
user, who could then also truncate it.  Instead ``HPCPULL_LOG`` names the log of the
gateway's own processes (root, condor), and every other user's hooks write next to it
into ``<HPCPULL_LOG>.<user>``; the directory is created by the admin with mode 1777 (like
/tmp), so nobody can touch another user's lines.  Like HTCondor's daemon logs, a file
that grows past ``HPCPULL_MAX_LOG`` bytes is renamed to ``<file>.old`` (one generation).

A line is ``<UTC time> <EVENT> key=value ...``; values with blanks or quotes are written
as JSON strings, so a line splits with shlex.  Writing a log line never fails a hook:
a log that cannot be written is skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import time
from pathlib import Path
from typing import Any, Optional

GATEWAY_USERS = ("root", "condor")
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@#%+,=-]*\Z")


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


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
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    parts = [stamp, event]
    parts += [f"{key}={format_value(value)}" for key, value in fields.items() if value not in (None, "")]
    return " ".join(parts) + "\n"


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
                    os.replace(path, f"{path}.old")
                    continue
                os.write(fd, line)
                return
            finally:
                os.close(fd)
    except OSError:
        return  # the log is for people; the job must not suffer from it
