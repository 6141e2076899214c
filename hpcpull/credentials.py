"""The job's credentials (X.509 proxy, bearer token): staged private, refreshed when renewed.

HTCondor sends ``x509userproxy`` with every job and lets the user renew it while the job
runs (the schedd forwards a newer proxy); the starter points ``X509_USER_PROXY`` at the
sandbox copy.  hpcpull does the same on shared scratch: each credential is copied -- never
hard-linked, which would share the original's permissions -- as a 0600 file into the job
directory, atomically, with the source's modification time, and UPDATE copies it again
whenever the source's modification time changes.  Its content is never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import JobRejected
from .holds import TRANSFER_INPUT_ERROR

# job attribute -> environment variable the payload finds it by
CREDENTIAL_ATTRIBUTES = {"x509userproxy": "X509_USER_PROXY", "ScitokensFile": "BEARER_TOKEN_FILE"}


@dataclass(frozen=True)
class Credential:
    attribute: str
    env: str
    source: Path  # on the gateway
    name: str     # in the job directory


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
        found.append(Credential(attribute, env, source, name))
    return found


def _copy_private(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` as a 0600 file, atomically, keeping its mtime."""
    tmp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    src_fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(src_fd)
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
    finally:
        os.close(src_fd)


def stage_credentials(ad: Any, job_path: Path) -> list[str]:
    """Stage every credential the job names (TRANSLATE); a missing one rejects the job."""
    staged = []
    for cred in credentials_of(ad):
        try:
            _copy_private(cred.source, job_path / cred.name)
        except OSError as exc:
            raise JobRejected(
                f"hpcpull: {cred.attribute} {cred.source} could not be staged: {exc.strerror or exc}",
                TRANSFER_INPUT_ERROR, exc.errno or 0,
            ) from None
        staged.append(cred.name)
    return staged


def refresh_credentials(ad: Any, job_path: Path) -> list[str]:
    """Copy again every credential whose source changed since it was staged (UPDATE)."""
    refreshed = []
    for cred in credentials_of(ad):
        target = job_path / cred.name
        try:
            source_mtime = os.stat(cred.source).st_mtime_ns
            if os.stat(target, follow_symlinks=False).st_mtime_ns == source_mtime:
                continue
            _copy_private(cred.source, target)
        except OSError:
            continue  # gone or unreadable now: keep what the job has, try again next poll
        refreshed.append(cred.name)
    return refreshed
