"""Stage a job's input sandbox and return its output sandbox, as HTCondor's file transfer does.

Input: the executable, stdin and ``TransferInput`` are copied (or hard-linked) into
``<destination>/<ClusterId>/<ProcId>/``.  The sandbox is built under a temporary sibling name
and renamed into place, so a crash never leaves a half-staged sandbox under the final name.

Output: stdout/stderr and ``TransferOutput`` (or, when it is undefined, the new or modified
top-level files) return to the job's Iwd, honouring ``TransferOutputRemaps``.  The sandbox was
written by the job, so nothing in it is trusted: names must stay inside it, every directory is
opened with O_NOFOLLOW from the sandbox's own file descriptor, and symbolic links are never
followed.  Each file is placed atomically (temporary name, then ``os.replace``).

A spooled job (``confine_to_iwd``: its Iwd is in SPOOL) reads and writes only inside its Iwd.
Names there are looked up from a descriptor of the Iwd, one component at a time (Beneath): a
symbolic link in the spooled Iwd is followed while it stays inside and refused when it, or a
'..' after it, leads out -- for the executable, stdin, TransferInput (also deep inside a staged
directory), Out/Err and every output and remap alike.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import classad2

from hpcpull.errors import SandboxError
from hpcpull.faults import crash_point
from hpcpull.state.jobdir import CONTROL_DIR, INPUT_MANIFEST, STDERR, STDOUT

TRANSFER_OUTPUT_ERROR = 12  # HTCondor HoldReasonCode TransferOutputError
TRANSFER_INPUT_ERROR = 13  # HTCondor HoldReasonCode TransferInputError
LINK_POLICIES = ("auto", "always", "never")

_FICLONE = 0x40049409  # ioctl: share the source's extents (btrfs, XFS reflink, ...)
_DIR_MODE = 0o700
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NULL_FILE = "/dev/null"
_MANIFEST_VERSION = 1


# --------------------------------------------------------------------------- job ad values


def _value(ad: classad2.ClassAd, name: str) -> Any:
    """The evaluated attribute, or None when it is missing, undefined or an error."""
    try:
        value = ad.eval(name)
    except KeyError:
        return None
    return None if isinstance(value, classad2.Value) else value


def _string(ad: classad2.ClassAd, name: str) -> Optional[str]:
    value = _value(ad, name)
    return value if isinstance(value, str) else None


def _boolean(ad: classad2.ClassAd, name: str, default: bool) -> bool:
    value = _value(ad, name)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def _integer(ad: classad2.ClassAd, name: str) -> Optional[int]:
    value = _value(ad, name)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _file_list(text: Optional[str]) -> list[str]:
    """HTCondor's comma-separated file lists: entries trimmed, empty entries ignored."""
    return [entry.strip() for entry in (text or "").split(",") if entry.strip()]


def _iwd(ad: classad2.ClassAd, hold_code: int) -> Path:
    iwd = _string(ad, "Iwd")
    if not iwd or not os.path.isabs(iwd):
        raise SandboxError(f"the job's Iwd ({iwd!r}) is not an absolute path", hold_code)
    return Path(iwd)


def _is_url(name: str) -> bool:
    return "://" in name


# --------------------------------------------------------------------------- copying


def _copy_data(src_fd: int, dst_fd: int) -> None:
    """Copy all bytes: a copy-on-write clone if the filesystem can, else in-kernel, else read/write.

    Each fallback continues from the file offsets where the previous attempt stopped.
    """
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        return
    except OSError:
        pass
    if hasattr(os, "copy_file_range"):
        size, copied = os.fstat(src_fd).st_size, 0
        try:
            while True:
                chunk = os.copy_file_range(src_fd, dst_fd, 1 << 30)
                if not chunk:
                    break
                copied += chunk
        except OSError:
            pass
        if copied >= size:  # short (pseudo-files report 0): finish with read/write
            return
    with open(src_fd, "rb", closefd=False) as src, open(dst_fd, "wb", closefd=False) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _copy_to_new_file(src_fd: int, dst: Path | str, mode: int, dir_fd: Optional[int] = None) -> None:
    """Copy an open regular file to ``dst`` (relative to ``dir_fd`` if given), which must not
    exist yet, with mode bits ``mode``."""
    if not stat.S_ISREG(os.fstat(src_fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    dst_fd = os.open(dst, _NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        _copy_data(src_fd, dst_fd)
        os.fchmod(dst_fd, mode)
    finally:
        os.close(dst_fd)


def _make_dir(path: Path) -> None:
    """mkdir with exactly mode 0700, whatever the umask."""
    os.mkdir(path, _DIR_MODE)
    os.chmod(path, _DIR_MODE)


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents mode 0700 (Path.mkdir would use the umask)."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            _make_dir(directory)
        except FileExistsError:
            pass


def _remove(path: Path) -> None:
    """Remove whatever is at ``path`` (a file, a symlink or a directory tree)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _is_under(path: str, roots: Sequence[str]) -> bool:
    return any(os.path.commonpath([path, root]) == root for root in roots)


# --------------------------------------------------------------------------- inside the Iwd

_MAX_LINKS = 40  # Linux's MAXSYMLINKS: a lookup through more links fails with ELOOP (path_resolution(7))


class OutsideIwd(Exception):
    """A name leads outside the directory it must stay in; the message says how (may be empty)."""


def outside_iwd_reason(what: str, iwd: Path, exc: Optional[OutsideIwd], brings: str) -> str:
    """The one reason a spooled job gets for a name that leaves its Iwd."""
    how = f": {exc}" if exc is not None and str(exc) else ""
    return (f"{what} is outside the job's spooled Iwd {iwd}{how}; a spooled job "
            f"(HTCondor-C, condor_submit -spool) brings {brings} with it")


def _components(path: str) -> tuple[str, ...]:
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
        self._prefixes = {_components(str(root)), _components(os.path.normpath(root)),
                          _components(os.path.realpath(root))}

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
        absolute = _components(name)
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
        budget = _MAX_LINKS
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
                    child = os.open(part, _DIR_FLAGS, dir_fd=stack[-1])
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
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        finally:
            os.close(parent)


# --------------------------------------------------------------------------- input sandbox


@dataclass(frozen=True)
class _Input:
    """One thing to stage: the executable, stdin, or a TransferInput entry."""

    entry: str  # as written in the job ad, for messages
    path: Path  # absolute source path (without any trailing slash)
    contents_only: bool = False  # "dir/": stage what is inside, not the directory itself
    executable: bool = False  # make sure the user may run the staged copy


class _Linker:
    """Decides whether an input file may be hard-linked instead of copied.

    A hard link shares the inode, so a job writing to its input in place would change the
    original.  ``auto`` therefore only links HTCondor's own spool copies, which nothing else
    reads; ``always`` links whatever it can; ``never`` always copies.
    """

    def __init__(self, policy: str, spool_dirs: Sequence[Path]) -> None:
        if policy not in LINK_POLICIES:
            raise ValueError(f"link must be one of {LINK_POLICIES}, not {policy!r}")
        self.policy = policy
        self.spool_roots = [os.path.realpath(d) for d in spool_dirs]

    def may_link(self, src: Path) -> bool:
        if self.policy == "auto":
            return _is_under(os.path.realpath(src), self.spool_roots)
        return self.policy == "always"


def _input(entry: str, iwd: Path, executable: bool = False) -> _Input:
    if _is_url(entry):
        raise SandboxError(
            f"input '{entry}' is a URL; URL inputs are not supported by hpcpull",
            TRANSFER_INPUT_ERROR,
        )
    contents_only = entry.endswith("/")
    stripped = entry.rstrip("/")
    path = iwd / stripped if stripped else Path("/")
    if not contents_only and path.name in ("", ".", ".."):
        raise SandboxError(f"input '{entry}' does not name a file", TRANSFER_INPUT_ERROR)
    return _Input(entry, path, contents_only, executable)


def _outside_input(what: str, iwd: Path, exc: Optional[OutsideIwd] = None) -> SandboxError:
    return SandboxError(outside_iwd_reason(f"input '{what}'", iwd, exc, "all its inputs"), TRANSFER_INPUT_ERROR)


def _confined(source: _Input, iwd: Path) -> _Input:
    """A spooled job's input must come from its spooled Iwd: an absolute path elsewhere is
    a path of the submitter's machine, meaningless (or someone else's file) here.  This
    checks the name as written; _ConfinedInputs checks where its symbolic links lead."""
    real_iwd = os.path.realpath(iwd)
    if not _is_under(os.path.normpath(source.path), [os.path.normpath(iwd), real_iwd]):
        raise _outside_input(source.entry, iwd)
    return source


def _input_sources(ad: classad2.ClassAd, iwd: Path, confine: bool = False) -> list[_Input]:
    """Everything to stage, in HTCondor's order (a later entry wins a name clash)."""
    sources = _unconfined_input_sources(ad, iwd)
    return [_confined(source, iwd) for source in sources] if confine else sources


def _unconfined_input_sources(ad: classad2.ClassAd, iwd: Path) -> list[_Input]:
    sources = []
    cmd = _string(ad, "Cmd")
    if cmd and _boolean(ad, "TransferExecutable", True):
        sources.append(_input(cmd, iwd, executable=True))
    stdin = _string(ad, "In")
    if stdin and stdin != _NULL_FILE and _boolean(ad, "TransferIn", True):
        sources.append(_input(stdin, iwd))
    sources.extend(_input(entry, iwd) for entry in _file_list(_string(ad, "TransferInput")))
    return sources


def _job_id(ad: classad2.ClassAd) -> tuple[int, int]:
    cluster, proc = _integer(ad, "ClusterId"), _integer(ad, "ProcId")
    if cluster is None or proc is None or cluster < 0 or proc < 0:
        raise SandboxError(f"the job ad has no valid ClusterId/ProcId ({cluster}, {proc})")
    return cluster, proc


def _checked_name(name: str, source: _Input) -> str:
    if name == CONTROL_DIR:
        raise SandboxError(
            f"input '{source.entry}' would be staged as '{CONTROL_DIR}', a name hpcpull reserves",
            TRANSFER_INPUT_ERROR,
        )
    return name


def _make_room(dst: Path, for_dir: bool) -> None:
    """Clear ``dst`` for a later entry: directories merge into directories, all else is replaced."""
    if os.path.lexists(dst) and not (for_dir and dst.is_dir() and not dst.is_symlink()):
        _remove(dst)


def _stage_file(src: Path, st: os.stat_result, dst: Path, linker: _Linker, exe: bool) -> None:
    mode = stat.S_IMODE(st.st_mode) & 0o777
    if exe:
        mode |= stat.S_IXUSR | stat.S_IRUSR
    _make_room(dst, for_dir=False)
    # A link cannot take different mode bits without changing the original too.
    if linker.may_link(src) and mode == stat.S_IMODE(st.st_mode):
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another filesystem, or links not permitted: copy instead
    src_fd = os.open(src, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _copy_to_new_file(src_fd, dst, mode)
    finally:
        os.close(src_fd)


def _stage_path(src: Path, dst: Path, linker: _Linker, top: bool, exe: bool = False) -> None:
    """Stage one file or directory tree.

    Symbolic links to files are staged as the file they point to (as HTCondor does).  Inside
    a directory, links to directories, dangling links and special files are skipped, so a
    link cycle cannot recurse forever; named directly, they are followed or refused.
    """
    try:
        st = os.stat(src)
    except FileNotFoundError:
        if top:
            raise
        return
    if stat.S_ISDIR(st.st_mode) and (top or not src.is_symlink()):
        _make_room(dst, for_dir=True)
        if not dst.is_dir():
            _make_dir(dst)
        for child in sorted(os.listdir(src)):
            _stage_path(src / child, dst / child, linker, top=False)
    elif stat.S_ISREG(st.st_mode):
        _stage_file(src, st, dst, linker, exe)
    elif top:
        raise OSError(errno.EINVAL, "not a regular file or directory", str(src))


class _ConfinedInputs:
    """Stages a spooled job's inputs through descriptors under its Iwd (see Beneath).

    As for an ordinary job, a symbolic link named as an input is staged as what it points to,
    and inside a staged directory a link to a file is staged as the file while links to
    directories and dangling links are skipped.  Links that stay inside the Iwd are allowed:
    they read nothing the job did not bring.  Any link leading outside refuses the job, with
    the name of the input it was met in.
    """

    def __init__(self, beneath: Beneath, linker: _Linker) -> None:
        self.beneath = beneath
        # Every file staged from here is under the Iwd: linkable exactly when the Iwd is.
        self.link = linker.may_link(beneath.root)

    def stage(self, source: _Input, staging: Path) -> None:
        entry = source.entry.rstrip("/")
        try:
            parts = self.beneath.parts(entry or "/")
        except OutsideIwd as exc:
            raise _outside_input(source.entry, self.beneath.root, exc) from None
        if not source.contents_only:
            name = _checked_name(source.path.name, source)
            self._stage_named(parts, staging / name, source.entry, exe=source.executable)
            crash_point("translate:staged-one-input")
            return
        try:
            dir_fd = self.beneath.open_dir(parts)
        except OutsideIwd as exc:
            raise _outside_input(source.entry, self.beneath.root, exc) from None
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, "not a directory (the entry ends with '/')") from None
        try:
            children = sorted(os.listdir(dir_fd))
        finally:
            os.close(dir_fd)
        for child in children:
            name = _checked_name(child, source)
            self._stage_named([*parts, child], staging / name, f"{entry}/{child}")

    def _stage_named(self, parts: list[str], dst: Path, label: str, exe: bool = False) -> None:
        """Stage what ``parts`` names, following its links (an input entry, or "dir/"'s item)."""
        try:
            parent, name = self.beneath.locate(parts)
        except OutsideIwd as exc:
            raise _outside_input(label, self.beneath.root, exc) from None
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                dir_fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
                try:
                    self._stage_tree(dir_fd, parts, dst, label)
                finally:
                    os.close(dir_fd)
            elif stat.S_ISREG(st.st_mode):
                self._stage_file(parent, name, st, dst, exe)
            else:
                raise OSError(errno.EINVAL, "not a regular file or directory", label)
        finally:
            os.close(parent)

    def _stage_tree(self, dir_fd: int, parts: list[str], dst: Path, label: str) -> None:
        _make_room(dst, for_dir=True)
        if not dst.is_dir():
            _make_dir(dst)
        for child in sorted(os.listdir(dir_fd)):
            try:
                st = os.stat(child, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                self._stage_link([*parts, child], dst / child, f"{label}/{child}")
            elif stat.S_ISDIR(st.st_mode):
                child_fd = os.open(child, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    self._stage_tree(child_fd, [*parts, child], dst / child, f"{label}/{child}")
                finally:
                    os.close(child_fd)
            elif stat.S_ISREG(st.st_mode):
                self._stage_file(dir_fd, child, st, dst / child, exe=False)

    def _stage_link(self, parts: list[str], dst: Path, label: str) -> None:
        """A link inside a staged directory: a file it points to is staged, the rest skipped."""
        try:
            parent, name = self.beneath.locate(parts)
        except OutsideIwd as exc:
            raise _outside_input(label, self.beneath.root, exc) from None
        except FileNotFoundError:
            return
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                self._stage_file(parent, name, st, dst, exe=False)
        finally:
            os.close(parent)

    def _stage_file(self, parent_fd: int, name: str, st: os.stat_result, dst: Path, exe: bool) -> None:
        mode = stat.S_IMODE(st.st_mode) & 0o777
        if exe:
            mode |= stat.S_IXUSR | stat.S_IRUSR
        _make_room(dst, for_dir=False)
        # A link cannot take different mode bits without changing the original too.
        if self.link and mode == stat.S_IMODE(st.st_mode):
            try:
                os.link(name, dst, src_dir_fd=parent_fd, follow_symlinks=False)
            except OSError:
                pass  # another filesystem, or links not permitted: copy instead
            else:
                if stat.S_ISREG(os.lstat(dst).st_mode):
                    return
                os.unlink(dst)  # became a symbolic link since the lookup: O_NOFOLLOW refuses it below
        src_fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            _copy_to_new_file(src_fd, dst, mode)
        finally:
            os.close(src_fd)


def _stage(source: _Input, staging: Path, linker: _Linker, confined: Optional[_ConfinedInputs] = None) -> None:
    """Stage one input, turning any failure into the hold HTCondor would give (code 13)."""
    try:
        if confined is not None:
            confined.stage(source, staging)
        elif not source.contents_only:
            name = _checked_name(source.path.name, source)
            _stage_path(source.path, staging / name, linker, top=True, exe=source.executable)
            crash_point("translate:staged-one-input")
        elif not source.path.is_dir():
            raise OSError(errno.ENOTDIR, "not a directory (the entry ends with '/')")
        else:
            for child in sorted(os.listdir(source.path)):
                name = _checked_name(child, source)
                _stage_path(source.path / child, staging / name, linker, top=True)
    except FileNotFoundError as exc:
        raise SandboxError(
            f"input file '{source.entry}' not found (looked for {exc.filename or source.path})",
            TRANSFER_INPUT_ERROR,
            errno.ENOENT,
        ) from None
    except OSError as exc:
        raise SandboxError(
            f"input file '{source.entry}' could not be staged: {exc.strerror or exc}",
            TRANSFER_INPUT_ERROR,
            exc.errno or 0,
        ) from None


def _manifest_entry(entry: os.DirEntry[str]) -> dict[str, Any]:
    st = entry.stat(follow_symlinks=False)
    if stat.S_ISREG(st.st_mode):
        kind = "file"
    elif stat.S_ISDIR(st.st_mode):
        kind = "dir"
    elif stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    else:
        kind = "other"
    return {"name": entry.name, "type": kind, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_manifest(sandbox: Path) -> None:
    """Record the staged top-level entries, so output detection can tell what the job changed."""
    control = sandbox / CONTROL_DIR
    _make_dir(control)
    with os.scandir(sandbox) as scan:
        entries = sorted((e for e in scan if e.name != CONTROL_DIR), key=lambda e: e.name)
        manifest = {"version": _MANIFEST_VERSION, "entries": [_manifest_entry(e) for e in entries]}
    (control / INPUT_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def _remove_leftovers(parent: Path, proc: int) -> None:
    """Remove staging and replaced directories that a crashed earlier attempt left behind."""
    prefixes = (f"{proc}.staging-", f"{proc}.old-")
    with os.scandir(parent) as scan:
        for entry in scan:
            if entry.name.startswith(prefixes) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


def _swap_into_place(staging: Path, final: Path) -> None:
    """Rename the staged sandbox onto ``final``; an earlier sandbox is moved aside, then removed.

    Moving it aside first means a crash leaves either the old or the new complete sandbox under
    the final name, never a half-removed one.
    """
    old = None
    if os.path.lexists(final):
        old = final.with_name(f"{final.name}.old-{os.urandom(4).hex()}")
        os.rename(final, old)
    os.rename(staging, final)
    if old is not None:
        if old.is_symlink():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)


def transfer_input_sandbox(
    job_ad: classad2.ClassAd,
    destination: Path,
    *,
    link: str = "auto",
    spool_dirs: Sequence[Path] = (),
    confine_to_iwd: bool = False,
) -> Path:
    """Stage the job's input sandbox into <destination>/<ClusterId>/<ProcId>/ and return that path.

    ``link`` is ``"auto"`` (hard-link only files under ``spool_dirs``), ``"always"`` or
    ``"never"``.  ``confine_to_iwd`` (spooled jobs) refuses inputs outside the Iwd.  Raises
    SandboxError (HoldReasonCode 13, subcode errno) when an input cannot be staged; the
    previous sandbox, if any, is then left untouched.
    """
    linker = _Linker(link, spool_dirs)
    iwd = _iwd(job_ad, TRANSFER_INPUT_ERROR)
    cluster, proc = _job_id(job_ad)
    sources = _input_sources(job_ad, iwd, confine_to_iwd)
    confined = None
    if confine_to_iwd and sources:
        try:
            confined = _ConfinedInputs(Beneath(iwd), linker)
        except OSError as exc:
            raise SandboxError(f"the job's spooled Iwd {iwd} cannot be opened: {exc.strerror or exc}",
                               TRANSFER_INPUT_ERROR, exc.errno or 0) from None
    try:
        parent = Path(destination) / str(cluster)
        _make_private_dirs(parent)
        _remove_leftovers(parent, proc)
        staging = Path(tempfile.mkdtemp(prefix=f"{proc}.staging-", dir=parent))
        try:
            os.chmod(staging, _DIR_MODE)
            for source in sources:
                _stage(source, staging, linker, confined)
            _write_manifest(staging)
            final = parent / str(proc)
            crash_point("translate:before-swap")
            _swap_into_place(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        if confined is not None:
            confined.beneath.close()
    return final


# --------------------------------------------------------------------------- output sandbox


@dataclass
class OutputReport:
    """What transfer_output_sandbox did.

    ``returned`` lists the output files as HTCondor lists them in SpooledOutputFiles (relative
    to the Iwd, or absolute when a remap was absolute), in transfer order; like HTCondor's
    list it leaves out stdout and stderr.  ``errors`` has one line per file not returned.
    """

    returned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _NotReturned(Exception):
    """One output file cannot be returned; the message completes "output 'name' ..."."""


def _split_unescaped(text: str, separator: str, maxsplit: int = -1) -> list[str]:
    """Split at ``separator`` unless a backslash escapes it; escapes are kept for _unescape."""
    parts, current, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in ";=":
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == separator and maxsplit != 0:
            parts.append("".join(current))
            current = []
            maxsplit -= 1
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return text.replace("\\;", ";").replace("\\=", "=")


def _parse_remaps(text: Optional[str]) -> dict[str, str]:
    """``TransferOutputRemaps``: ``"name1 = dest1; name2 = dest2"``, ``\\;`` and ``\\=`` escaped."""
    remaps: dict[str, str] = {}
    for item in _split_unescaped(text or "", ";"):
        pair = _split_unescaped(item, "=", maxsplit=1)
        if len(pair) == 2:
            name, dest = (_unescape(part).strip() for part in pair)
            if name and dest:
                remaps[name] = dest
    return remaps


def _sandbox_parts(name: str) -> list[str]:
    """Split a sandbox-relative name, refusing anything that could leave the sandbox."""
    if os.path.isabs(name):
        raise _NotReturned("is an absolute path; output names must be inside the sandbox")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _NotReturned("contains '..'; output names must stay inside the sandbox")
    if not parts:
        raise _NotReturned("does not name a file inside the sandbox")
    if parts[0] == CONTROL_DIR:
        raise _NotReturned(f"is inside hpcpull's control directory '{CONTROL_DIR}'")
    return parts


def _succeeded(ad: classad2.ClassAd) -> bool:
    """HTCondor's ON_SUCCESS test: not killed by a signal and ExitCode == SuccessExitCode."""
    if _boolean(ad, "ExitBySignal", False):
        return False
    code = _integer(ad, "ExitCode")
    success = _integer(ad, "SuccessExitCode")
    return code is not None and code == (0 if success is None else success)


class _OutputTransfer:
    """Returns files from one sandbox (an open directory descriptor) into the job's Iwd."""

    def __init__(self, sandbox_fd: int, sandbox: Path, iwd: Path, ad: classad2.ClassAd,
                 link: bool, report: OutputReport, beneath: Optional[Beneath] = None) -> None:
        self.fd = sandbox_fd
        self.real_sandbox = os.path.realpath(sandbox)
        self.iwd = iwd
        self.beneath = beneath  # a spooled job: every output stays inside its Iwd
        self.confine = beneath is not None
        self.remaps = _parse_remaps(_string(ad, "TransferOutputRemaps"))
        self.link = link
        self.report = report

    # ---- sandbox side: never follow a symbolic link

    def _open_parent(self, parts: list[str]) -> int:
        """Open the directory holding ``parts[-1]``; any symlinked directory on the way fails."""
        fd = os.dup(self.fd)
        try:
            for part in parts[:-1]:
                if stat.S_ISLNK(self._lstat(fd, part).st_mode):
                    raise _NotReturned("is inside a symbolic link; not returned")
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)  # O_NOFOLLOW: no race either
                os.close(fd)
                fd = child
        except _NotReturned:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _NotReturned("was not found in the sandbox (or a parent is not a "
                                   "plain directory)") from None
            raise
        # Belt and braces: the descriptor must resolve to a directory inside the sandbox.
        real = os.path.realpath(f"/proc/self/fd/{fd}")
        if os.path.exists(f"/proc/self/fd/{fd}") and not _is_under(real, [self.real_sandbox]):
            os.close(fd)
            raise _NotReturned("resolves outside the sandbox; not returned")
        return fd

    def _lstat(self, parent_fd: int, name: str) -> os.stat_result:
        try:
            return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise _NotReturned("was not found in the sandbox") from None

    # ---- Iwd side: each file appears atomically

    def _destination(self, keys: Sequence[str], default: str) -> tuple[str, Path]:
        """Where an output goes: the remap of the first of ``keys`` that has one, else
        ``default``; relative to the Iwd.  Returns (name for SpooledOutputFiles, path)."""
        target = next((self.remaps[key] for key in keys if key in self.remaps), default)
        if _is_url(target):
            raise _NotReturned(
                f"has a URL remap ({target}); URL output remaps are not supported by hpcpull"
            )
        if target.endswith("/"):
            target += os.path.basename(default.rstrip("/"))
        if self.confine:
            relative = os.path.normpath(os.path.relpath(target, self.iwd) if os.path.isabs(target) else target)
            if relative == ".." or relative.startswith("../"):
                raise _NotReturned(
                    f"would be written to {target}, outside the job's spooled Iwd; the submitter's "
                    "paths are applied when the submitter fetches the output, not here")
            if relative == ".":
                raise _NotReturned(f"would be written to {target}, the job's spooled Iwd itself")
            return relative, self.iwd / relative
        if os.path.isabs(target):
            return target, Path(target)
        return os.path.normpath(target), self.iwd / target

    def _dest_dir(self, path: Path, written: Optional[Path] = None) -> int:
        """A descriptor of Iwd-side directory ``path``, made if missing, for writing ``written``
        (``path`` itself if not given; for messages).

        An ordinary job's directories are the user's own and are followed wherever they lead,
        as the shadow writes them; a spooled job's are looked up beneath its Iwd (Beneath).
        """
        if self.beneath is None:
            path.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        relative = path.relative_to(self.iwd)
        try:
            return self.beneath.open_dir(relative.parts, create=True)
        except OutsideIwd as exc:
            shown = (written or path).relative_to(self.iwd)
            raise _NotReturned(f"would be written to {shown}, outside the job's spooled Iwd "
                               f"{self.iwd}: {exc}") from None
        except NotADirectoryError:
            raise _NotReturned(f"cannot be returned: {relative} in the Iwd is not a directory "
                               "(or is inside a file)") from None

    def _place_file(self, parent_fd: int, name: str, dest: Path, dest_dir_fd: Optional[int] = None) -> None:
        """Hard-link or copy sandbox file ``name`` to a temporary name, then rename it onto
        ``dest`` (in the directory ``dest_dir_fd``, if given): a reader never sees a
        half-written file.  A symbolic link at ``dest`` is replaced, never written through."""
        dir_fd = self._dest_dir(dest.parent, dest) if dest_dir_fd is None else dest_dir_fd
        tmp = f".hpcpull-{os.urandom(6).hex()}.tmp"
        try:
            if not (self.link and self._link(parent_fd, name, dir_fd, tmp)):
                src_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                                 dir_fd=parent_fd)
                try:
                    mode = stat.S_IMODE(os.fstat(src_fd).st_mode) & 0o777
                    _copy_to_new_file(src_fd, tmp, mode, dir_fd=dir_fd)
                finally:
                    os.close(src_fd)
            os.replace(tmp, dest.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            if _lexists_at(dir_fd, tmp):
                # rename(2) "does nothing" when both names are links to one inode: a second
                # return of a hard-linked output (a retry after a crash) would leave the
                # temporary name behind in the Iwd.
                os.unlink(tmp, dir_fd=dir_fd)
        except BaseException:
            if _lexists_at(dir_fd, tmp):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        finally:
            if dest_dir_fd is None:
                os.close(dir_fd)

    @staticmethod
    def _link(parent_fd: int, name: str, dir_fd: int, tmp: str) -> bool:
        """Hard-link without following a symlink; False when the filesystem will not."""
        try:
            os.link(name, tmp, src_dir_fd=parent_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return False
        if not stat.S_ISREG(os.stat(tmp, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            os.unlink(tmp, dir_fd=dir_fd)  # swapped for a symlink since the check
            raise _NotReturned("is a symbolic link; not returned")
        return True

    def _merge_dir(self, dir_fd: int, dest: Path, label: str) -> None:
        """Copy a sandbox directory into ``dest``, replacing files; symlinks are skipped."""
        if self.beneath is None and dest.exists() and not dest.is_dir():
            raise _NotReturned(f"cannot be returned: {dest} exists and is not a directory")
        dest_fd = self._dest_dir(dest)
        try:
            self._merge_into(dir_fd, dest, dest_fd, label)
        finally:
            os.close(dest_fd)

    def _merge_into(self, dir_fd: int, dest: Path, dest_fd: int, label: str) -> None:
        for name in sorted(os.listdir(dir_fd)):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    child_fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                    try:
                        self._merge_dir(child_fd, dest / name, f"{label}/{name}")
                    finally:
                        os.close(child_fd)
                elif stat.S_ISREG(st.st_mode):
                    self._place_file(dir_fd, name, dest / name, dest_fd)
            except _NotReturned as exc:
                self.report.errors.append(f"output '{label}/{name}' {exc}")
            except OSError as exc:
                self.report.errors.append(
                    f"output '{label}/{name}' could not be returned: {exc.strerror or exc}")

    # ---- what to return

    def return_entry(self, entry: str) -> None:
        """Return one TransferOutput entry (or one detected file); failures become error lines."""
        try:
            self._return_entry(entry)
        except _NotReturned as exc:
            self.report.errors.append(f"output '{entry}' {exc}")
        except OSError as exc:
            self.report.errors.append(f"output '{entry}' could not be returned: "
                                      f"{exc.strerror or exc}")

    def _return_entry(self, entry: str) -> None:
        parts = _sandbox_parts(entry)
        parent_fd = self._open_parent(parts)
        try:
            st = self._lstat(parent_fd, parts[-1])
            if stat.S_ISLNK(st.st_mode):
                raise _NotReturned("is a symbolic link; not returned")
            if entry.endswith("/"):
                if not stat.S_ISDIR(st.st_mode):
                    raise _NotReturned("ends with '/' but is not a directory")
                self._return_contents(parent_fd, parts)
                return
            keys = (entry, "/".join(parts), parts[-1])
            if stat.S_ISDIR(st.st_mode):
                name, dest = self._destination(keys, parts[-1])
                dir_fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent_fd)
                try:
                    self._merge_dir(dir_fd, dest, "/".join(parts))
                finally:
                    os.close(dir_fd)
            elif stat.S_ISREG(st.st_mode):
                name, dest = self._destination(keys, parts[-1])
                self._place_file(parent_fd, parts[-1], dest)
            else:
                raise _NotReturned("is not a regular file or directory")
            self.report.returned.append(name)
        finally:
            os.close(parent_fd)

    def _return_contents(self, parent_fd: int, parts: list[str]) -> None:
        """``dir/``: each item inside returns as if it had been listed (symlinks are skipped)."""
        dir_fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent_fd)
        try:
            children = sorted(os.listdir(dir_fd))
            links = {c for c in children
                     if stat.S_ISLNK(os.stat(c, dir_fd=dir_fd, follow_symlinks=False).st_mode)}
        finally:
            os.close(dir_fd)
        for child in children:
            if child not in links:
                self.return_entry("/".join([*parts, child]))

    def return_stdio(self, ad: classad2.ClassAd) -> None:
        """Return the payload's stdout/stderr to Out/Err (only stdout exists when Out == Err)."""
        out, err = _string(ad, "Out"), _string(ad, "Err")
        for attr, value, control_file in (("Out", out, STDOUT), ("Err", err, STDERR)):
            if not value or value == _NULL_FILE or (attr == "Err" and err == out):
                continue
            try:
                _, dest = self._destination((value, os.path.basename(value)), value)
                parent_fd = self._open_parent([CONTROL_DIR, control_file])
                try:
                    if stat.S_ISLNK(self._lstat(parent_fd, control_file).st_mode):
                        raise _NotReturned("is a symbolic link; not returned")
                    self._place_file(parent_fd, control_file, dest)
                finally:
                    os.close(parent_fd)
            except _NotReturned as exc:
                self.report.errors.append(f"{attr} '{value}': {CONTROL_DIR}/{control_file} {exc}")
            except OSError as exc:
                self.report.errors.append(
                    f"{attr} '{value}' could not be returned: {exc.strerror or exc}")

    def new_or_modified(self) -> list[str]:
        """Top-level files the job created or changed (HTCondor does not scan subdirectories).

        Symbolic links are included so that return_entry reports them as not returned.
        """
        staged = self._read_manifest()
        names = []
        for name in sorted(os.listdir(self.fd)):
            if name == CONTROL_DIR:
                continue
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                names.append(name)
            elif stat.S_ISREG(st.st_mode):
                before = staged.get(name)
                unchanged = (before is not None and before.get("type") == "file"
                             and before.get("size") == st.st_size
                             and before.get("mtime_ns") == st.st_mtime_ns)
                if not unchanged:
                    names.append(name)
        return names

    def _read_manifest(self) -> dict[str, dict[str, Any]]:
        """The staged entries by name; empty (everything counts as new) if it is unreadable."""
        try:
            parent_fd = self._open_parent([CONTROL_DIR, INPUT_MANIFEST])
            try:
                fd = os.open(INPUT_MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=parent_fd)
            finally:
                os.close(parent_fd)
            with open(fd, encoding="utf-8") as manifest:
                entries = json.load(manifest)["entries"]
            return {e["name"]: e for e in entries if isinstance(e, dict) and "name" in e}
        except (_NotReturned, OSError, ValueError, KeyError, TypeError):
            return {}


def _lexists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _wants_output_files(ad: classad2.ClassAd) -> bool:
    when = (_string(ad, "WhenToTransferOutput") or "").upper()
    return when != "ON_SUCCESS" or _succeeded(ad)


def transfer_output_sandbox(
    job_ad: classad2.ClassAd, sandbox: Path, *, link: bool = True, confine_to_iwd: bool = False
) -> OutputReport:
    """Return the job's output sandbox from `sandbox` into the job's Iwd.

    ``confine_to_iwd`` (spooled jobs: the Iwd is in SPOOL) keeps every output inside the Iwd,
    where the submitter fetches it from.  Problems with individual files become lines in
    ``OutputReport.errors``; SandboxError (HoldReasonCode 12) is raised only when the call
    itself cannot work (no Iwd, no sandbox).
    """
    iwd = _iwd(job_ad, TRANSFER_OUTPUT_ERROR)
    try:
        sandbox_fd = os.open(sandbox, _DIR_FLAGS)
    except OSError as exc:
        raise SandboxError(
            f"output sandbox {sandbox} cannot be opened: {exc.strerror or exc}",
            TRANSFER_OUTPUT_ERROR,
            exc.errno or 0,
        ) from None
    report = OutputReport()
    beneath = None
    try:
        if confine_to_iwd:
            try:
                beneath = Beneath(iwd, create=True)  # made if missing, as an ordinary Iwd would be
            except OSError as exc:
                raise SandboxError(f"the job's spooled Iwd {iwd} cannot be opened: {exc.strerror or exc}",
                                   TRANSFER_OUTPUT_ERROR, exc.errno or 0) from None
        transfer = _OutputTransfer(sandbox_fd, Path(sandbox), iwd, job_ad, link, report, beneath)
        transfer.return_stdio(job_ad)
        if _wants_output_files(job_ad):
            listed = _string(job_ad, "TransferOutput")
            names = _file_list(listed) if listed is not None else transfer.new_or_modified()
            for name in names:
                transfer.return_entry(name)
                crash_point("finalize:returned-one-output")
    finally:
        os.close(sandbox_fd)
        if beneath is not None:
            beneath.close()
    return report
