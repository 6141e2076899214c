"""Replace a file atomically and durably: readers see the old content or the new, never half.

(hpcpull/node/launcher.py has its own copy: it runs alone on compute nodes, without this package.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str, mode: int = 0o600, durable: bool = True) -> None:
    """``durable=False`` skips the fsync, for files rebuilt from scratch after a crash anyway."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def ensure_shared_dir(path: Path) -> None:
    """Create ``path`` as a sticky world-writable directory (like /tmp), whatever the umask.

    Hooks run as the job owners, so the directories every owner writes into (status cache,
    log) must be 1777; a directory that already exists is left as the admin made it.
    """
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return
    os.chmod(path, 0o1777)
