"""One Python process serves the hook calls of one user that arrive together.

The job router starts a hook process per job and call, all at once (a TRANSLATE for every
job a poll claims, a CLEANUP for every job of a removed cluster), and most of a Python
hook's cost is the interpreter and its imports.  hooks/hpcpull-hook-batch queues each
call's input in a directory private to the user and lets one of the waiting calls start
``<hook>-full --serve <queue> <pid>``: ``serve`` answers that call first, then every other
ready one, oldest first, until none is left or ``SERVE_SECONDS`` have passed.

A call is ``<pid>.req`` (its stdin) made complete by ``<pid>.ready``; its answer is
``<pid>.out`` (stdout, when not empty), ``<pid>.err`` (stderr lines, when any) and, written
last, the empty ``<pid>.rc<exit code>`` the front end waits for.  Each call is answered
exactly as the hook run alone would answer it (``protocol.run_hook``).  The calls of hooks
that are gone (killed by the router, or a server that died) are removed, not served: the
router calls again for what it still needs.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Callable, Optional

from hpcpull.config import Config
from hpcpull.errors import ConfigError
from hpcpull.router.protocol import FAILED_EXIT, HookResult, debug_call, run_hook

# How long one server takes on new calls: long enough that a burst of hundreds of jobs
# needs few Python starts, short enough that the call which started it is not held up.
SERVE_SECONDS = 10.0
ANSWER_CODES = (0, 1, 2)  # the exit codes the front end knows (hooks/hpcpull-hook-batch)


def check_queue(queue: Path) -> None:
    """The queue must be this user's own directory that nobody else can write: every call
    in it is served with this user's rights."""
    try:
        st = os.lstat(queue)
    except OSError as exc:
        raise ConfigError(f"hook queue {queue}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ConfigError(f"hook queue {queue} is not a directory of uid {os.geteuid()} that only it can "
                          f"write (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _calls(queue: Path) -> tuple[list[int], list[int]]:
    """(pids of ready calls, oldest first; pids with files whose process is gone)."""
    ready: list[tuple[float, int]] = []
    pids: set[int] = set()
    with os.scandir(queue) as entries:
        for entry in entries:
            stem, _, kind = entry.name.lstrip(".").partition(".")
            if not stem.isdigit():
                continue
            pids.add(int(stem))
            if kind == "ready":
                try:
                    ready.append((entry.stat().st_mtime, int(stem)))
                except OSError:
                    continue
    gone = [pid for pid in pids if not _alive(pid)]
    return [pid for _, pid in sorted(ready) if pid not in gone], gone


def _remove(queue: Path, pid: int) -> None:
    """A gone call's files, and the half-written answers of a server killed while writing."""
    for suffix in ("ready", "req", "out", "err", *(f"rc{code}" for code in ANSWER_CODES)):
        for name in (f"{pid}.{suffix}", f".{pid}.{suffix}"):
            try:
                os.unlink(queue / name)
            except FileNotFoundError:
                pass


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def answer(name: str, hook: Callable[[str, Config], HookResult], queue: Path, pid: int, config: Config) -> bool:
    """Serve the call of ``pid``; False if it is no longer there (answered or gone)."""
    try:
        os.unlink(queue / f"{pid}.ready")  # taken: no later server serves it again
        stdin = (queue / f"{pid}.req").read_bytes()
    except FileNotFoundError:
        return False
    started = time.monotonic()
    stdout, code, lines = run_hook(name, hook, stdin, config)
    if code not in ANSWER_CODES:
        code = FAILED_EXIT[name] or 1
    if stdout:
        _write(queue / f"{pid}.out", stdout.encode("utf-8"))
    if lines:
        _write(queue / f"{pid}.err", "".join(f"{line}\n" for line in lines).encode("utf-8"))
    _write(queue / f"{pid}.rc{code}", b"")
    debug_call(config, name, stdin, stdout, code, lines, time.monotonic() - started)
    return True


def serve(name: str, hook: Callable[[str, Config], HookResult], queue: Path, first: int,
          config: Optional[Config] = None, seconds: float = SERVE_SECONDS) -> int:
    """Answer ``first``, then the other ready calls until none is left or ``seconds`` have
    passed; returns how many were answered."""
    check_queue(queue)
    config = config or Config()
    deadline = time.monotonic() + seconds
    served = int(answer(name, hook, queue, first, config))
    while time.monotonic() < deadline:
        ready, gone = _calls(queue)
        for pid in gone:
            _remove(queue, pid)
        if not ready:
            break
        for pid in ready:
            served += answer(name, hook, queue, pid, config)
            if time.monotonic() >= deadline:
                break
    return served
