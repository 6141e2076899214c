"""Return a job's output sandbox to its Iwd, as HTCondor's file transfer does.

stdout/stderr and ``TransferOutput`` (or, when it is undefined, the new or modified top-level
files) return to the job's Iwd, honouring ``TransferOutputRemaps``.  The sandbox was written
by the job, so nothing in it is trusted: names must stay inside it, every directory is opened
with O_NOFOLLOW from the sandbox's own file descriptor, and symbolic links are never followed.
Each file is placed atomically (temporary name, then ``os.replace``).  A spooled job's outputs
and remaps stay inside its Iwd (hpcpull.staging.beneath).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import classad2

from hpcpull.errors import SandboxError
from hpcpull.faults import crash_point
from hpcpull.staging.beneath import Beneath, OutsideIwd
from hpcpull.staging.files import (
    DIR_FLAGS,
    NULL_FILE,
    TRANSFER_OUTPUT_ERROR,
    ad_boolean,
    ad_integer,
    ad_string,
    copy_to_new_file,
    file_list,
    is_under,
    is_url,
    job_iwd,
)
from hpcpull.state.jobdir import CONTROL_DIR, INPUT_MANIFEST, STDERR, STDOUT

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
    if ad_boolean(ad, "ExitBySignal", False):
        return False
    code = ad_integer(ad, "ExitCode")
    success = ad_integer(ad, "SuccessExitCode")
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
        self.remaps = _parse_remaps(ad_string(ad, "TransferOutputRemaps"))
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
                child = os.open(part, DIR_FLAGS, dir_fd=fd)  # O_NOFOLLOW: no race either
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
        if os.path.exists(f"/proc/self/fd/{fd}") and not is_under(real, [self.real_sandbox]):
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
        if is_url(target):
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
                    copy_to_new_file(src_fd, tmp, mode, dir_fd=dir_fd)
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
                    child_fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
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
                dir_fd = os.open(parts[-1], DIR_FLAGS, dir_fd=parent_fd)
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
        dir_fd = os.open(parts[-1], DIR_FLAGS, dir_fd=parent_fd)
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
        out, err = ad_string(ad, "Out"), ad_string(ad, "Err")
        for attr, value, control_file in (("Out", out, STDOUT), ("Err", err, STDERR)):
            if not value or value == NULL_FILE or (attr == "Err" and err == out):
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
    when = (ad_string(ad, "WhenToTransferOutput") or "").upper()
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
    iwd = job_iwd(job_ad, TRANSFER_OUTPUT_ERROR)
    try:
        sandbox_fd = os.open(sandbox, DIR_FLAGS)
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
            listed = ad_string(job_ad, "TransferOutput")
            names = file_list(listed) if listed is not None else transfer.new_or_modified()
            for name in names:
                transfer.return_entry(name)
                crash_point("finalize:returned-one-output")
    finally:
        os.close(sandbox_fd)
        if beneath is not None:
            beneath.close()
    return report
