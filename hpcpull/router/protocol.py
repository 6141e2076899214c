"""What every hook shares with condor_job_router: stdin in, one ad or updates out, an exit code.

Each hook is ``<hook>(stdin_text, config) -> HookResult``; ``_main`` runs it for the
executables in hooks/.  What the router does with each exit code
(src/condor_job_router/JobRouterHookMgr.cpp, the ``hookExited`` of TranslateClient,
StatusClient, ExitClient and CleanupClient) sets these codes:

============  =======================  =============================  ================
hook          done                     cannot act now (retried)       malformed stdin
============  =======================  =============================  ================
TRANSLATE     0 (routed, or routed     1 (router yields the job and   2
              to a hold for a bad job) retries ~15 s later)
UPDATE        0                        0 (prints nothing: no news)    0
FINALIZE      0 (never fails: a failing FINALIZE loses the user's terminate event)  0
CLEANUP       0                        1 (router retries every poll)  0
============  =======================  =============================  ================

Problems are one line on stderr (the router copies it to JobRouterLog) and a line in
the job's ``.hpcpull/hook.log``; nothing else is ever printed on stdout.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from hpcpull.config import Config
from hpcpull.errors import ConfigError, HpcPullError
from hpcpull.lrms.base import LrmsError
from hpcpull.router.classads import MalformedInput, Value, format_attributes
from hpcpull.state import jobdir as jd


@dataclass
class HookResult:
    stdout: str = ""
    exit_code: int = 0
    messages: list[str] = field(default_factory=list)


def updates(attributes: dict[str, Value], *messages: str) -> HookResult:
    """Attributes for the router to set (none: print nothing), exit 0."""
    return HookResult(format_attributes(attributes) if attributes else "", 0, list(messages))


MALFORMED_EXIT = {"translate": 2, "update": 0, "finalize": 0, "cleanup": 0}
FAILED_EXIT = {"translate": 1, "update": 0, "finalize": 0, "cleanup": 1}

_JOB_DIR_LINE = re.compile(r'^HpcPullJobDir = "([^"\\\n]*)"$', re.M)
_ROUTE_LINE = re.compile(r'^(?:RouteName|HpcPullSite) = "([A-Za-z0-9_]+)"$', re.M)


def _record_hook_io(name: str, stdin: str, stdout: str, lines: list[str], config: Config) -> None:
    """With HPCPULL_KEEP_HOOK_IO, keep this call's stdin/stdout/stderr in the job's hook-io/."""
    text = stdout if name == "translate" else stdin
    job_dir, route = _JOB_DIR_LINE.search(text), _ROUTE_LINE.search(text)
    if not job_dir or not route:
        return
    try:
        settings = config.route(route.group(1))
        if not settings.keep_hook_io:
            return
        control = Path(job_dir.group(1)) / jd.CONTROL_DIR
        root = os.path.realpath(settings.scratch_root)
        if not control.is_dir() or not os.path.realpath(control).startswith(root + os.sep):
            return
        io_dir = control / jd.HOOK_IO
        io_dir.mkdir(mode=0o700, exist_ok=True)
        for suffix, content in (("stdin", stdin), ("stdout", stdout), ("stderr", "".join(f"{x}\n" for x in lines))):
            (io_dir / f"{name}.{suffix}").write_text(content, encoding="utf-8")
    except (OSError, HpcPullError):
        return  # debugging aid only


def run_hook(name: str, hook: Callable[[str, Config], HookResult], stdin: bytes,
             config: Optional[Config] = None) -> tuple[str, int, list[str]]:
    """Run one hook on raw stdin; returns (stdout, exit code, stderr lines, each one printable line)."""
    stdout, code, lines = _run_hook(name, hook, stdin, config or Config())
    return stdout, code, [one_stderr_line(line) for line in lines]


def _run_hook(name: str, hook: Callable[[str, Config], HookResult], stdin: bytes,
              config: Config) -> tuple[str, int, list[str]]:
    try:
        text = stdin.decode("utf-8")
        if os.geteuid() == 0 and not config.gateway().allow_root:
            return "", FAILED_EXIT[name] or 1, [
                f"hpcpull {name}: refusing to run as root (hooks run as the job owner; "
                "set HPCPULL_ALLOW_ROOT = true only for a test gateway)"]
        result = hook(text, config)
    except UnicodeDecodeError:
        return "", MALFORMED_EXIT[name], [f"hpcpull {name}: stdin is not UTF-8 text"]
    except MalformedInput as exc:
        return "", MALFORMED_EXIT[name], [f"hpcpull {name}: malformed input: {exc}"]
    except (ConfigError, HpcPullError, LrmsError) as exc:
        return "", FAILED_EXIT[name], [f"hpcpull {name}: {exc}"]
    except Exception as exc:  # noqa: BLE001 - never let a traceback replace the one line
        return "", FAILED_EXIT[name], [f"hpcpull {name}: internal error: {type(exc).__name__}: {exc}"]
    lines = [f"hpcpull {name}: {m}" for m in result.messages]
    _record_hook_io(name, text, result.stdout, lines, config)
    return result.stdout, result.exit_code, lines


def one_stderr_line(text: str, limit: int = 2000) -> str:
    """A message as one printable line of bounded length: job values (a 1 MB Owner, a CR in
    a reason) must not flood or split the JobRouterLog line the router makes of it."""
    flat = " ".join(text.replace("\0", " ").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _main(name: str, hook: Callable[[str, Config], HookResult]) -> int:
    if sys.argv[1:2] == ["--serve"]:
        return _serve_main(name, hook, sys.argv[2:])
    started = time.monotonic()
    stdin = sys.stdin.buffer.read()
    config = Config()
    stdout, code, lines = run_hook(name, hook, stdin, config)
    sys.stdout.write(stdout)
    sys.stdout.flush()
    for line in lines:
        print(line, file=sys.stderr)
    debug_call(config, name, stdin, stdout, code, lines, time.monotonic() - started)
    return code


def _serve_main(name: str, hook: Callable[[str, Config], HookResult], args: list[str]) -> int:
    """``<hook>-full --serve QUEUE PID``: answer the queued calls (router/hook_queue.py).
    Exit 1 with one line when the queue cannot be served: each call then runs alone."""
    from hpcpull.router.hook_queue import serve

    if len(args) != 2 or not args[1].isdigit():
        print(f"hpcpull {name}: usage: --serve QUEUE PID", file=sys.stderr)
        return 1
    # This process's stdout is the router's pipe of the call that started it: the answers
    # go to the queue, and nothing stray may reach that call's output.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        serve(name, hook, Path(args[0]), int(args[1]))
    except (OSError, HpcPullError) as exc:
        print(one_stderr_line(f"hpcpull {name}: cannot serve the queued calls: {exc}; each runs alone"),
              file=sys.stderr)
        return 1
    return 0


def debug_call(config: Config, name: str, stdin: bytes, stdout: str, code: int, lines: list[str],
                seconds: float) -> None:
    """With HPCPULL_DEBUG = D_FULLDEBUG: one CALL line per hook run (never its content)."""
    try:
        gateway = config.gateway()
    except HpcPullError:
        return
    if "D_FULLDEBUG" not in gateway.debug:
        return
    from hpcpull.state.eventlog import write_event

    job = re.search(rb"^(?:RoutedFromJobId|GlobalJobId) = \"([^\"\n]{0,200})\"$", stdin, re.M)
    # pid: the Python process that ran it; the calls one process served share it
    write_event(gateway.log_path, gateway.max_log_bytes, "CALL", hook=name, pid=os.getpid(),
                job=job.group(1).decode("utf-8", "replace") if job else None, rc=code,
                ms=round(seconds * 1000), stdin_bytes=len(stdin), stdout_bytes=len(stdout),
                stderr=lines[0] if lines else None)
