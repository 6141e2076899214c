"""What input and output transfer share: the job ad's values, HTCondor's hold codes, and
file operations that never follow a symbolic link they were not told to."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
from pathlib import Path
from typing import Any, Optional, Sequence

import classad2

from hpcpull.errors import SandboxError

TRANSFER_OUTPUT_ERROR = 12  # HTCondor HoldReasonCode TransferOutputError
TRANSFER_INPUT_ERROR = 13  # HTCondor HoldReasonCode TransferInputError

FICLONE = 0x40049409  # ioctl: share the source's extents (btrfs, XFS reflink, ...)
DIR_MODE = 0o700
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
NULL_FILE = "/dev/null"


# --------------------------------------------------------------------------- job ad values


def ad_value(ad: classad2.ClassAd, name: str) -> Any:
    """The evaluated attribute, or None when it is missing, undefined or an error."""
    try:
        value = ad.eval(name)
    except KeyError:
        return None
    return None if isinstance(value, classad2.Value) else value


def ad_string(ad: classad2.ClassAd, name: str) -> Optional[str]:
    value = ad_value(ad, name)
    return value if isinstance(value, str) else None


def ad_boolean(ad: classad2.ClassAd, name: str, default: bool) -> bool:
    value = ad_value(ad, name)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def ad_integer(ad: classad2.ClassAd, name: str) -> Optional[int]:
    value = ad_value(ad, name)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def file_list(text: Optional[str]) -> list[str]:
    """HTCondor's comma-separated file lists: entries trimmed, empty entries ignored."""
    return [entry.strip() for entry in (text or "").split(",") if entry.strip()]


def job_iwd(ad: classad2.ClassAd, hold_code: int) -> Path:
    iwd = ad_string(ad, "Iwd")
    if not iwd or not os.path.isabs(iwd):
        raise SandboxError(f"the job's Iwd ({iwd!r}) is not an absolute path", hold_code)
    return Path(iwd)


def is_url(name: str) -> bool:
    return "://" in name


# --------------------------------------------------------------------------- copying


def copy_data(src_fd: int, dst_fd: int) -> None:
    """Copy all bytes: a copy-on-write clone if the filesystem can, else in-kernel, else read/write.

    Each fallback continues from the file offsets where the previous attempt stopped.
    """
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
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


def copy_to_new_file(src_fd: int, dst: Path | str, mode: int, dir_fd: Optional[int] = None) -> None:
    """Copy an open regular file to ``dst`` (relative to ``dir_fd`` if given), which must not
    exist yet, with mode bits ``mode``."""
    if not stat.S_ISREG(os.fstat(src_fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    dst_fd = os.open(dst, NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        copy_data(src_fd, dst_fd)
        os.fchmod(dst_fd, mode)
    finally:
        os.close(dst_fd)


def make_dir(path: Path) -> None:
    """mkdir with exactly mode 0700, whatever the umask."""
    os.mkdir(path, DIR_MODE)
    os.chmod(path, DIR_MODE)


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents mode 0700 (Path.mkdir would use the umask)."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            make_dir(directory)
        except FileExistsError:
            pass


def remove_path(path: Path) -> None:
    """Remove whatever is at ``path`` (a file, a symlink or a directory tree)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def is_under(path: str, roots: Sequence[str]) -> bool:
    return any(os.path.commonpath([path, root]) == root for root in roots)
