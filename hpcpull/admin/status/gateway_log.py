"""The gateway log read back: every event line of every log file, in time order.

The lines are those hpcpull/state/eventlog.py writes (``format_line``) and parses
(``parse_line``): the gateway's own log ``HPCPULL_LOG``, its per-user siblings
``HpcPullLog.<user>`` and their rotated ``.old`` generations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hpcpull.state.accounts import current_user
from hpcpull.state.eventlog import OLD_SUFFIX, parse_line


@dataclass(frozen=True)
class LogEvent:
    """One gateway log line (eventlog.py): ``<UTC time> <EVENT> key=value ...``."""

    time: float
    event: str
    fields: dict[str, str]
    line: str
    order: tuple[int, int]  # (file rank, line number): keeps a file's order within one second


def parse_log_line(line: str, order: tuple[int, int] = (0, 0)) -> Optional[LogEvent]:
    """None for a line that is not an event line (a torn last line, someone else's text)."""
    parsed = parse_line(line)
    if parsed is None:
        return None
    stamp, event, fields = parsed
    return LogEvent(stamp, event, fields, line.rstrip("\n"), order)


def log_files(base: Path) -> list[Path]:
    """The gateway's log, every user's sibling and their ``.old`` generations, oldest first."""
    try:
        names = sorted(
            e.name for e in os.scandir(base.parent)
            if (e.name == base.name or e.name.startswith(base.name + ".")) and e.is_file(follow_symlinks=False)
        )
    except OSError:
        return []
    # "<name>.old" holds the lines before "<name>": read it first.
    names.sort(key=lambda n: (n[: -len(OLD_SUFFIX)] if n.endswith(OLD_SUFFIX) else n, not n.endswith(OLD_SUFFIX)))
    return [base.parent / n for n in names]


def log_owner(base: Path, path: Path) -> str:
    """The user whose hooks wrote ``path`` (``HpcPullLog.<user>``); "" for the gateway's own log."""
    name = path.name[: -len(OLD_SUFFIX)] if path.name.endswith(OLD_SUFFIX) else path.name
    return name[len(base.name) + 1:] if name.startswith(base.name + ".") else ""


def read_gateway_log(base: Optional[Path], notes: list[str]) -> list[tuple[LogEvent, str]]:
    """All event lines of all log files in time order, each with the user whose file held it."""
    if base is None:
        notes.append("HPCPULL_LOG is empty: no gateway log to read")
        return []
    events: list[tuple[LogEvent, str]] = []
    unreadable = []
    for rank, path in enumerate(log_files(base)):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            unreadable.append(path.name)
            continue
        for number, line in enumerate(text.splitlines()):
            event = parse_log_line(line, (rank, number))
            if event is not None:
                events.append((event, log_owner(base, path)))
    if unreadable:
        notes.append(f"gateway log files not readable as {current_user()}: {', '.join(unreadable)}")
    events.sort(key=lambda pair: (pair[0].time, pair[0].order))
    return events
