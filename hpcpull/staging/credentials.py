"""The job's credentials (X.509 proxy, bearer token): staged private, refreshed when renewed.

HTCondor sends ``x509userproxy`` with every job and lets the user renew it while the job
runs (the schedd forwards a newer proxy); the starter points ``X509_USER_PROXY`` at the
sandbox copy.  hpcpull does the same on shared scratch: each credential is copied -- never
hard-linked, which would share the original's permissions -- as a 0600 file into the job
directory, atomically, with the source's modification time, and UPDATE copies it again
whenever the source's modification time changes.  Its content is never logged.

A spooled job's credentials must be in its spooled Iwd, like its inputs: the schedd points
``x509userproxy`` at the copy it spooled there (schedd.cpp ``spoolJobFilesReaper`` rewrites
ATTR_X509_USER_PROXY together with Cmd and TransferInput), so a path elsewhere -- absolute,
climbing out with '..', or through a symbolic link leading out -- names a file of the gateway,
not the job's, and refuses the job as an input outside the Iwd does.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hpcpull.errors import JobRejected
from hpcpull.holds import TRANSFER_INPUT_ERROR
from hpcpull.staging.spool import is_spooled

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO cannot hang the hook

# job attribute -> environment variable the payload finds it by
CREDENTIAL_ATTRIBUTES = {"x509userproxy": "X509_USER_PROXY", "ScitokensFile": "BEARER_TOKEN_FILE"}


@dataclass(frozen=True)
class Credential:
    attribute: str
    env: str
    source: Path  # on the gateway
    name: str     # in the job directory
    value: str = ""  # as the job ad has it


def credentials_of(ad: Any) -> list[Credential]:
    """The credentials a job ad names (paths relative to its Iwd)."""
    iwd = Path(str(ad.get("Iwd") or "/"))
    found = []
    for attribute, env in CREDENTIAL_ATTRIBUTES.items():
        value = ad.get(attribute) if attribute in ad else None
        if not isinstance(value, str) or not value.strip():
            continue
        source = iwd / value
        name = source.name
        if name in ("", ".", "..") or name.startswith(".hpcpull"):
            raise JobRejected(f"{attribute} = {value!r} does not name a file", TRANSFER_INPUT_ERROR, 0)
        found.append(Credential(attribute, env, source, name, value))
    return found


class _Sources:
    """Opens credential files: an ordinary job's wherever they are, a spooled job's only
    inside its Iwd (hpcpull.staging.beneath.Beneath), refusing any that leads out."""

    def __init__(self, ad: Any, confine: bool) -> None:
        self.iwd = Path(str(ad.get("Iwd") or "/"))
        self.beneath: Any = None
        if confine:
            from hpcpull.staging.beneath import Beneath  # only spooled jobs need it: UPDATE starts faster

            self.beneath = Beneath(self.iwd)

    def __enter__(self) -> _Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.beneath is not None:
            self.beneath.close()

    def open(self, cred: Credential) -> int:
        """A descriptor of the credential's file; JobRejected if a spooled one is outside."""
        if self.beneath is None:
            return os.open(cred.source, _READ_FLAGS)
        from hpcpull.staging.beneath import OutsideIwd, outside_iwd_reason

        try:
            parent, name = self.beneath.locate(self.beneath.parts(cred.value))
        except OutsideIwd as exc:
            what = f"hpcpull: {cred.attribute} {cred.value!r}"
            raise JobRejected(outside_iwd_reason(what, self.iwd, exc, "its credentials"),
                              TRANSFER_INPUT_ERROR, 0) from None
        try:
            return os.open(name, _READ_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
        finally:
            os.close(parent)


def _copy_private(src_fd: int, target: Path) -> None:
    """Copy open file ``src_fd`` to ``target`` as a 0600 file, atomically, keeping its mtime."""
    st = os.fstat(src_fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    tmp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    try:
        dst_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            while True:
                chunk = os.read(src_fd, 1 << 16)
                if not chunk:
                    break
                os.write(dst_fd, chunk)
            os.fchmod(dst_fd, 0o600)
            os.fsync(dst_fd)
        finally:
            os.close(dst_fd)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def stage_credentials(ad: Any, job_path: Path, *, confine_to_iwd: Optional[bool] = None) -> list[str]:
    """Stage every credential the job names (TRANSLATE); a missing one rejects the job, and so
    does, for a spooled job (``confine_to_iwd``; None: detected from the ad), one outside its Iwd."""
    creds = credentials_of(ad)
    if not creds:
        return []
    staged = []
    try:
        sources = _Sources(ad, is_spooled(ad) if confine_to_iwd is None else confine_to_iwd)
    except OSError as exc:
        raise JobRejected(f"hpcpull: the job's spooled Iwd cannot be opened for its credentials: "
                          f"{exc.strerror or exc}", TRANSFER_INPUT_ERROR, exc.errno or 0) from None
    with sources:
        for cred in creds:
            try:
                src_fd = sources.open(cred)
                try:
                    _copy_private(src_fd, job_path / cred.name)
                finally:
                    os.close(src_fd)
            except OSError as exc:
                raise JobRejected(
                    f"hpcpull: {cred.attribute} {cred.source} could not be staged: {exc.strerror or exc}",
                    TRANSFER_INPUT_ERROR, exc.errno or 0,
                ) from None
            staged.append(cred.name)
    return staged


def refresh_credentials(ad: Any, job_path: Path, *, confine_to_iwd: Optional[bool] = None) -> list[str]:
    """Copy again every credential whose source changed since it was staged (UPDATE); a
    spooled job's only from inside its Iwd (see stage_credentials)."""
    creds = credentials_of(ad)
    if not creds:
        return []
    refreshed = []
    try:
        sources = _Sources(ad, is_spooled(ad) if confine_to_iwd is None else confine_to_iwd)
    except OSError:
        return []  # the Iwd is gone: keep what the job has
    with sources:
        for cred in creds:
            target = job_path / cred.name
            try:
                src_fd = sources.open(cred)
            except (OSError, JobRejected):
                continue  # gone, unreadable or now leading outside: keep what the job has, try again next poll
            try:
                if os.stat(target, follow_symlinks=False).st_mtime_ns == os.fstat(src_fd).st_mtime_ns:
                    continue
                _copy_private(src_fd, target)
            except OSError:
                continue
            finally:
                os.close(src_fd)
            refreshed.append(cred.name)
    return refreshed
