"""Whether the job owners can run a hook: the router runs every hook as the job's Owner.

Each directory on the way to a hook, to the ``-full`` Python hook behind a shell front end
and to their ``#!`` interpreters must let an ordinary user through.  ``nobody`` (or
``--as-user NAME``) stands for the job owners: a venv under /root passes every check root
makes.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hpcpull.admin.doctor.findings import mode_text
from hpcpull.admin.doctor.hook_files import behind_front_end, interpreter_of
from hpcpull.state.accounts import user_name

# The account the hooks are checked as when hpcpull doctor runs as root: it stands for the
# job owners, who have no rights beyond what every user has.
DEFAULT_HOOK_USER = "nobody"
NOBODY_ID = 65534  # nobody's uid and gid where the account is missing
# The README's install, which every job owner can run.
INSTALL_FIX = ("install hpcpull where every user can reach it: /usr/bin/python3 -m venv /opt/hpcpull && "
               "/opt/hpcpull/bin/pip install hpcpull && chmod -R a+rX /opt/hpcpull, then set "
               "HPCPULL_BIN_DIR = /opt/hpcpull/bin (90-hpcpull-local.conf)")


@dataclass(frozen=True)
class Account:
    """The account the hooks are checked as, standing for the job owners."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @property
    def label(self) -> str:
        return self.name if self.name.startswith("uid ") else f"{self.name} (uid {self.uid})"


def hook_account(name: Optional[str] = None) -> Account:
    """``name``'s account, else nobody's (uid 65534 where there is no such account).

    Raises KeyError for a ``name`` that no account has."""
    wanted = name or DEFAULT_HOOK_USER
    try:
        entry = pwd.getpwnam(wanted)
    except KeyError:
        if name:
            raise
        return Account(f"uid {NOBODY_ID}", NOBODY_ID, NOBODY_ID, (NOBODY_ID,), "/")
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid,
                   tuple(os.getgrouplist(entry.pw_name, entry.pw_gid)), entry.pw_dir)


def _may(st: os.stat_result, account: Account, bits: int) -> bool:
    """Whether ``account`` has ``bits`` (4 read, 1 execute/search) on a file, by its mode:
    the owner's bits for its owner, the group's for its group, else the others'."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == account.uid:
        have = mode >> 6
    elif st.st_gid in account.groups:
        have = mode >> 3
    else:
        have = mode
    return have & bits == bits


def _has_acl(path: str) -> bool:
    """An access ACL may grant what the mode bits deny: such a path is left to the run."""
    try:
        os.getxattr(path, "system.posix_acl_access")
    except (OSError, AttributeError):
        return False
    return True


def unreachable(path: str, account: Account) -> Optional[tuple[str, str]]:
    """Why ``account`` cannot execute ``path`` (and, being a script, read it), judged by the
    mode bits: (the path that stops it, why), or None when nothing does or nothing can be
    told (root; a path this process cannot stat; a path with an ACL).

    Every directory on the way must be searchable: those of the path as written and those
    of the file it resolves to (a symlink into /root stops at /root).
    """
    if account.uid == 0:
        return None
    checked: set[str] = set()
    for candidate in (os.path.abspath(path), os.path.realpath(path)):
        parts = Path(candidate).parts
        for depth in range(1, len(parts)):
            directory = os.path.join(*parts[:depth])
            if directory in checked:
                continue
            checked.add(directory)
            try:
                st = os.stat(directory)
            except OSError:
                return None
            if not _may(st, account, 1) and not _has_acl(directory):
                return directory, f"cannot enter {directory} (mode {mode_text(st)}, owner {owner_of(st)})"
    try:
        st = os.stat(path)
    except OSError:
        return None
    if _has_acl(path):
        return None
    if not _may(st, account, 1):
        return path, f"cannot execute {path} (mode {mode_text(st)}, owner {owner_of(st)})"
    if interpreter_of(path) is not None and not _may(st, account, 4):
        return path, f"cannot read {path} (mode {mode_text(st)}, owner {owner_of(st)})"
    return None


def owner_problem(path: str, account: Account) -> Optional[tuple[str, str]]:
    """What stops ``account`` from running the hook ``path``: the hook, the ``-full`` Python
    hook and slot gate behind a shell front end, and each one's ``#!`` interpreter.
    Returns (message, fix) for the first obstacle, or None."""
    for executable in (path, *behind_front_end(path)):
        for target, what in ((executable, executable), (interpreter_of(executable), None)):
            if not target or not target.startswith("/"):
                continue  # a relative '#!' is reported by executable_problems
            found = unreachable(target, account)
            if found is None:
                continue
            blocker, why = found
            subject = what or f"{target}, the interpreter of {executable}"
            # Only the file's own mode in an open place is a chmod; anything else a reinstall.
            fix = f"chmod a+rx {blocker}" if blocker == target and not _in_private_tree(blocker) else INSTALL_FIX
            return f"the job owners cannot run {subject}: {account.label}, standing for them, {why}", fix
    return None


def _in_private_tree(path: str) -> bool:
    """Under a home directory (root's, or /home): what lives there is no place for hooks."""
    home = os.path.expanduser("~root")
    return any(path == top or path.startswith(top.rstrip("/") + "/") for top in (home, "/home"))


def as_command(account: Account, switch: bool) -> str:
    """The command prefix that runs a program as ``account``, for fix hints."""
    if not switch:
        return ""
    if account.name.startswith("uid "):
        return f"setpriv --reuid={account.uid} --regid={account.gid} --clear-groups "
    return f"runuser -u {account.name} -- "


def owner_of(st: os.stat_result) -> str:
    """The name of a file's owner, for messages (its uid when no account has it)."""
    return user_name(st.st_uid) or str(st.st_uid)
