"""Who is who on the gateway: this process's user, and whose files are trusted.

The hooks run as the job's owner, the schedd cron poller as condor, the admin tools as
whoever runs them; a file another user could write is never believed (status_cache.py,
fast_index.py, ``hpcpull status``).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Optional


def user_name(uid: int) -> Optional[str]:
    """The account name of ``uid``; None when no account has it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def current_user() -> str:
    """This process's (effective) user name; its uid as text when it has no account."""
    uid = os.geteuid()
    return user_name(uid) or str(uid)


def service_uids() -> set[int]:
    """root and the condor user: their snapshot is the one everybody reads."""
    try:
        return {0, pwd.getpwnam("condor").pw_uid}
    except KeyError:
        return {0}


def trusted_uids() -> set[int]:
    """Whose files are believed: root, condor and the reading user."""
    return service_uids() | {os.getuid()}


def read_trusted_text(path: Path) -> Optional[str]:
    """The text of ``path`` if one of ``trusted_uids()`` owns it (asked of the open file, so
    it cannot be swapped in between); None when it is not theirs or cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            if os.fstat(handle.fileno()).st_uid not in trusted_uids():
                return None
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None
