"""A hook's executable as HTCondor judges it, and what a shell front end runs behind it.

HTCondor refuses a hook that fails ``validateHookPath`` (src/condor_utils/hook_utils.cpp)
and logs ERROR, treating the hook as not configured; ``executable_problems`` mirrors that
test and adds what the kernel needs to start a script (an absolute ``#!`` interpreter).
"""

from __future__ import annotations

import os
import stat
from typing import Optional

from hpcpull.admin.doctor.findings import FAIL, WARN, mode_text


def interpreter_of(path: str) -> Optional[str]:
    """The interpreter named by ``path``'s ``#!`` line (None for a binary or an unreadable file)."""
    try:
        with open(path, "rb") as handle:
            first = handle.read(256).split(b"\n", 1)[0]
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return words[0] if words else ""


def python_hook(path: str) -> str:
    """The hook to run for a check: the ``-full`` Python hook behind a shell front end (the
    front end waits for a free hook slot first), else the hook itself."""
    behind = behind_front_end(path)
    shell = os.path.basename(interpreter_of(path) or "") in ("sh", "bash", "dash")
    return behind[0] if behind and shell else path


def behind_front_end(path: str) -> list[str]:
    """What a shell front end (hooks/hpcpull-translate and the others) runs: the ``-full``
    Python hook beside it and the gate it names, ``hpcpull-hook-batch`` (which falls back
    to ``hpcpull-hook-slot``) or ``hpcpull-hook-slot``; [] for any other hook."""
    full = f"{path}-full"
    if not os.path.exists(full):
        return []
    try:
        with open(path, "rb") as handle:
            batched = b"hpcpull-hook-batch" in handle.read(8192)
    except OSError:
        batched = False
    gates = ["hpcpull-hook-slot", "hpcpull-hook-batch"] if batched else ["hpcpull-hook-slot"]
    return [full, *(os.path.join(os.path.dirname(path), gate) for gate in gates)]


def executable_problems(path: str, what: str, runs_as: str = "the job owners") -> list[tuple[str, str, str]]:
    """Why HTCondor would refuse (FAIL) or a job owner could not run (WARN) ``path``.

    Mirrors ``validateHookPath`` (src/condor_utils/hook_utils.cpp): stat() follows
    symlinks; any execute bit counts (``StatInfo``); the directory is the textual parent
    of the configured path.  Beyond it: the ``#!`` interpreter must exist (the checkout's
    ``hooks/`` start with ``#!python``, which only pip's install rewrites), and hooks run
    as the job owners (the poller as condor), so "other" needs read and execute permission.
    Returns (status, message, fix) tuples, empty when all is well.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return [(FAIL, f"{path}: {exc.strerror}: HTCondor treats {what} as not configured",
                 "install hpcpull (the README's venv puts the executables in HPCPULL_BIN_DIR, default "
                 "/opt/hpcpull/bin) or set HPCPULL_BIN_DIR to the directory that holds them")]
    if not stat.S_ISREG(st.st_mode):
        return [(FAIL, f"{path} is not a regular file", f"point the knob at the {what} executable")]
    if st.st_mode & stat.S_IWOTH:
        return [(FAIL, f"{path} is world-writable (mode {mode_text(st)}): HTCondor refuses to run it",
                 f"chmod o-w {path}")]
    if not st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return [(FAIL, f"{path} is not executable (mode {mode_text(st)}): HTCondor refuses to run it",
                 f"chmod 755 {path}")]
    directory = os.path.dirname(path) or "."
    try:
        dir_st = os.stat(directory)
    except OSError as exc:
        return [(FAIL, f"directory {directory}: {exc.strerror}", f"check {directory}")]
    if dir_st.st_mode & stat.S_IWOTH:
        return [(FAIL, f"{path} is in a world-writable directory ({directory}, mode {mode_text(dir_st)}): "
                       "HTCondor refuses to run it",
                 f"chmod o-w {directory}, or install the executables elsewhere and set HPCPULL_BIN_DIR")]
    problems: list[tuple[str, str, str]] = []
    try:
        with open(path, "rb") as handle:
            first = handle.read(256).split(b"\n", 1)[0]
    except OSError as exc:
        first = b""
        problems.append((WARN, f"{path} cannot be read by this user: {exc.strerror}", f"chmod a+r {path}"))
    if first.startswith(b"#!"):
        words = first[2:].decode("utf-8", "replace").split()
        interpreter = words[0] if words else ""
        if not interpreter.startswith("/"):
            return [(FAIL, f"{path} starts with '#!{interpreter}', not an absolute interpreter path: "
                           "the kernel cannot start it (pip rewrites '#!python' when it installs hpcpull; "
                           "the checkout's hooks/ are not runnable as they are)",
                     "point HPCPULL_BIN_DIR at the installed executables (pip install hpcpull)")]
        if not os.access(interpreter, os.X_OK):
            return [(FAIL, f"{path}: its interpreter {interpreter} does not exist or is not executable",
                     f"reinstall hpcpull with the Python that should run it, or fix the '#!' line of {path}")]
    if not st.st_mode & stat.S_IXOTH or (first.startswith(b"#!") and not st.st_mode & stat.S_IROTH):
        problems.append((WARN, f"{path} has mode {mode_text(st)}: {what} runs as {runs_as}, who may not be "
                               "allowed to run it", f"chmod 755 {path}"))
    return problems
