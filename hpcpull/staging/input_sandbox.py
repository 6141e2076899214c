"""Stage a job's input sandbox, as HTCondor's file transfer does.

The executable, stdin and ``TransferInput`` are copied (or hard-linked) into
``<destination>/<ClusterId>/<ProcId>/``.  The sandbox is built under a temporary sibling name
and renamed into place, so a crash never leaves a half-staged sandbox under the final name.
A spooled job's names are resolved inside its Iwd (hpcpull.staging.beneath).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import classad2

from hpcpull.errors import SandboxError
from hpcpull.faults import crash_point
from hpcpull.staging.beneath import Beneath, OutsideIwd, outside_iwd_reason
from hpcpull.staging.files import (
    DIR_FLAGS,
    DIR_MODE,
    NULL_FILE,
    TRANSFER_INPUT_ERROR,
    ad_boolean,
    ad_integer,
    ad_string,
    copy_to_new_file,
    file_list,
    is_under,
    is_url,
    job_iwd,
    make_dir,
    make_private_dirs,
    remove_path,
)
from hpcpull.state.jobdir import CONTROL_DIR, INPUT_MANIFEST

LINK_POLICIES = ("auto", "always", "never")
MANIFEST_VERSION = 1


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
            return is_under(os.path.realpath(src), self.spool_roots)
        return self.policy == "always"


def _input(entry: str, iwd: Path, executable: bool = False) -> _Input:
    if is_url(entry):
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
    if not is_under(os.path.normpath(source.path), [os.path.normpath(iwd), real_iwd]):
        raise _outside_input(source.entry, iwd)
    return source


def _input_sources(ad: classad2.ClassAd, iwd: Path, confine: bool = False) -> list[_Input]:
    """Everything to stage, in HTCondor's order (a later entry wins a name clash)."""
    sources = _unconfined_input_sources(ad, iwd)
    return [_confined(source, iwd) for source in sources] if confine else sources


def _unconfined_input_sources(ad: classad2.ClassAd, iwd: Path) -> list[_Input]:
    sources = []
    cmd = ad_string(ad, "Cmd")
    if cmd and ad_boolean(ad, "TransferExecutable", True):
        sources.append(_input(cmd, iwd, executable=True))
    stdin = ad_string(ad, "In")
    if stdin and stdin != NULL_FILE and ad_boolean(ad, "TransferIn", True):
        sources.append(_input(stdin, iwd))
    sources.extend(_input(entry, iwd) for entry in file_list(ad_string(ad, "TransferInput")))
    return sources


def _job_id(ad: classad2.ClassAd) -> tuple[int, int]:
    cluster, proc = ad_integer(ad, "ClusterId"), ad_integer(ad, "ProcId")
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
        remove_path(dst)


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
        copy_to_new_file(src_fd, dst, mode)
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
            make_dir(dst)
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
                dir_fd = os.open(name, DIR_FLAGS, dir_fd=parent)
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
            make_dir(dst)
        for child in sorted(os.listdir(dir_fd)):
            try:
                st = os.stat(child, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                self._stage_link([*parts, child], dst / child, f"{label}/{child}")
            elif stat.S_ISDIR(st.st_mode):
                child_fd = os.open(child, DIR_FLAGS, dir_fd=dir_fd)
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
            copy_to_new_file(src_fd, dst, mode)
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
    make_dir(control)
    with os.scandir(sandbox) as scan:
        entries = sorted((e for e in scan if e.name != CONTROL_DIR), key=lambda e: e.name)
        manifest = {"version": MANIFEST_VERSION, "entries": [_manifest_entry(e) for e in entries]}
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
    iwd = job_iwd(job_ad, TRANSFER_INPUT_ERROR)
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
        make_private_dirs(parent)
        _remove_leftovers(parent, proc)
        staging = Path(tempfile.mkdtemp(prefix=f"{proc}.staging-", dir=parent))
        try:
            os.chmod(staging, DIR_MODE)
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
