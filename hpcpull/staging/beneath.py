"""Names resolved inside a directory they must not leave (a spooled job's Iwd).

A spooled job (``confine_to_iwd``: its Iwd is in SPOOL) reads and writes only inside its Iwd.
Names there are looked up from a descriptor of the Iwd, one component at a time (Beneath): a
symbolic link in the spooled Iwd is followed while it stays inside and refused when it, or a
'..' after it, leads out -- for the executable, stdin, TransferInput (also deep inside a staged
directory), Out/Err and every output and remap alike.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from pathlib import Path
from typing import Optional, Sequence

from hpcpull.staging.files import DIR_FLAGS

# --------------------------------------------------------------------------- inside the Iwd

MAX_LINKS = 40  # Linux's MAXSYMLINKS: a lookup through more links fails with ELOOP (path_resolution(7))


class OutsideIwd(Exception):
    """A name leads outside the directory it must stay in; the message says how (may be empty)."""


def outside_iwd_reason(what: str, iwd: Path, exc: Optional[OutsideIwd], brings: str) -> str:
    """The one reason a spooled job gets for a name that leaves its Iwd."""
    how = f": {exc}" if exc is not None and str(exc) else ""
    return (f"{what} is outside the job's spooled Iwd {iwd}{how}; a spooled job "
            f"(HTCondor-C, condor_submit -spool) brings {brings} with it")


def components(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part not in ("", "."))


class Beneath:
    """Looks names up inside one directory (a spooled Iwd) as the kernel would, from a
    descriptor of that directory, one component at a time: a symbolic link is followed only
    while it stays inside, '..' never climbs above the directory, and every directory on the
    way is opened with O_NOFOLLOW, so a link swapped in meanwhile is refused, not followed.
    This is openat2(2)'s RESOLVE_BENEATH, which Python does not offer.
    """

    def __init__(self, root: Path, create: bool = False) -> None:
        """Open ``root`` (following links: the schedd and the admin chose its path); ``create``
        makes it first if it is missing."""
        self.root = root
        if create:
            root.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # An absolute name (or link) may spell the root as given or as resolved.
        self._prefixes = {components(str(root)), components(os.path.normpath(root)),
                          components(os.path.realpath(root))}

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Beneath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def parts(self, name: str) -> list[str]:
        """``name`` (relative to the root, or absolute) as components below the root."""
        if not os.path.isabs(name):
            return name.split("/")
        absolute = components(name)
        for prefix in self._prefixes:
            if absolute[: len(prefix)] == prefix:
                return list(absolute[len(prefix):])
        raise OutsideIwd("")

    def locate(self, parts: Sequence[str], create: bool = False) -> tuple[int, str]:
        """Resolve ``parts`` below the root, following every symbolic link, the last one too.

        Returns (descriptor of the directory holding the result, the result's name in it), the
        caller closes the descriptor; the name is "." when the result is that directory itself
        (the root, or reached by '..').  ``create`` makes missing components as directories.
        Raises OutsideIwd when a link or '..' leads out, else OSError as a lookup would.
        """
        stack = [os.dup(self.fd)]
        where: list[str] = []  # path of stack[-1] below the root, for messages
        pending = deque(parts)
        followed: Optional[str] = None  # the last link followed, for a '..' that then leaves
        budget = MAX_LINKS
        try:
            while pending:
                part = pending.popleft()
                if part in ("", "."):
                    continue
                if part == "..":
                    if len(stack) == 1:
                        raise OutsideIwd(followed or "'..' climbs out of it")
                    os.close(stack.pop())
                    where.pop()
                    continue
                try:
                    st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
                except FileNotFoundError:
                    if not create or budget == 0:
                        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT),
                                                os.path.join(self.root, *where, part)) from None
                    budget -= 1
                    try:
                        os.mkdir(part, 0o777, dir_fd=stack[-1])
                    except FileExistsError:
                        pass
                    pending.appendleft(part)  # look again: it is there now
                    continue
                if stat.S_ISLNK(st.st_mode):
                    if budget == 0:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.path.join(self.root, *where, part))
                    budget -= 1
                    target = os.readlink(part, dir_fd=stack[-1])
                    followed = f"the symbolic link '{'/'.join([*where, part])}' points to '{target}'"
                    if os.path.isabs(target):
                        try:
                            below = self.parts(target)
                        except OutsideIwd:
                            raise OutsideIwd(followed) from None
                        for fd in stack[1:]:
                            os.close(fd)
                        del stack[1:], where[:]
                        pending.extendleft(reversed(below))
                    else:
                        pending.extendleft(reversed(target.split("/")))
                    continue
                if not pending:
                    return stack.pop(), part
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                             os.path.join(self.root, *where, part))
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=stack[-1])
                except OSError as exc:
                    if exc.errno != errno.ELOOP or budget == 0:
                        raise
                    budget -= 1
                    pending.appendleft(part)  # replaced by a link since the stat: look again
                    continue
                stack.append(child)
                where.append(part)
            return stack.pop(), "."
        finally:
            for fd in stack:
                os.close(fd)

    def open_dir(self, parts: Sequence[str], create: bool = False) -> int:
        """A descriptor of the directory ``parts`` resolve to (see locate)."""
        parent, name = self.locate(parts, create)
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        finally:
            os.close(parent)
