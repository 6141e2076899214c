"""hpcpull.state.eventlog: one parseable line per decision, per-user files, HTCondor-style rotation."""

from __future__ import annotations

import multiprocessing
import shlex
from pathlib import Path

from hpcpull.state.eventlog import format_line, log_file, write_event


def fields(line: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(line)[2:])


def test_line_format_is_parseable_and_quotes_what_needs_it() -> None:
    line = format_line("HELD", {"job": "5.0", "reason": 'slurm said "no"\nreally', "empty": "", "none": None,
                                "wall_s": 12.34567}, now=0)
    assert line.startswith("1970-01-01T00:00:00Z HELD job=5.0 ") and line.endswith("\n")
    assert line.count("\n") == 1  # a hostile value never starts a line of its own
    assert fields(line) == {"job": "5.0", "reason": 'slurm said "no"\\nreally', "wall_s": "12.346"}


def test_gateway_users_share_the_base_file_others_get_their_own(tmp_path: Path) -> None:
    base = tmp_path / "HpcPullLog"
    assert log_file(base, "root") == base == log_file(base, "condor")
    assert log_file(base, "alice") == tmp_path / "HpcPullLog.alice"


def test_rotation_keeps_one_old_generation(tmp_path: Path) -> None:
    base = tmp_path / "HpcPullLog"
    path = log_file(base)
    for i in range(30):
        write_event(base, 400, "STATUS", job=f"{i}.0", status="1->2")
    assert path.stat().st_size <= 400
    old = Path(f"{path}.old").read_text()
    assert old and all(fields(line)["status"] == "1->2" for line in old.splitlines())
    assert "job=29.0" in path.read_text()


def test_an_unwritable_log_never_fails_the_caller(tmp_path: Path) -> None:
    write_event(tmp_path / "missing-dir" / "HpcPullLog", 1000, "ROUTED", job="1.0")
    write_event(None, 1000, "ROUTED", job="1.0")
    assert not (tmp_path / "missing-dir").exists()


def _writer(base: str, n: int) -> None:
    for i in range(n):
        write_event(Path(base), 0, "STATUS", job=f"{i}.0", padding="x" * 200)


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    base = tmp_path / "HpcPullLog"
    procs = [multiprocessing.Process(target=_writer, args=(str(base), 100)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    lines = log_file(base).read_text().splitlines()
    assert len(lines) == 400 and all(fields(line)["padding"] == "x" * 200 for line in lines)


def test_every_line_format_line_writes_parses_back() -> None:
    from hpcpull.state.eventlog import Event, Field, parse_line

    names = {k: v for k, v in vars(Event).items() if not k.startswith("_")}
    assert all(k == v for k, v in names.items())  # each event is written as its own name
    events = list(names.values())
    for event in events:
        line = format_line(event, {Field.JOB: "5.0", Field.REASON: 'a "quoted" reason', Field.WALL_S: 1.5}, now=60)
        assert parse_line(line) == (60.0, event, {"job": "5.0", "reason": 'a "quoted" reason', "wall_s": "1.5"})
    for junk in ("", "hello world", "2026-13-45T00:00:00Z ROUTED job=1.0", 'ROUTED "unterminated',
                 "1970-01-01T00:00:00Z lower job=1.0"):
        assert parse_line(junk) is None


def test_status_changes_and_finalize_notes_read_back_as_written() -> None:
    from hpcpull.state.eventlog import (
        FINALIZE,
        HOOK_NOTE,
        finalize_note,
        new_status,
        parse_finalize_note,
        status_change,
    )

    assert new_status(status_change(1, 2)) == "2" and new_status("") == ""
    for returned, problems in ((3, []), (1, ["output 'a' is missing", "b; c"]), (0, ["x"])):
        line = HOOK_NOTE.format(stamp="2026-01-01 00:00:00", hook=FINALIZE, message=finalize_note(returned, problems))
        expected = [p for p in "; ".join(problems).split("; ") if p]
        assert parse_finalize_note(line.rstrip("\n")) == (returned, expected)


def test_finalize_notes_as_the_hooks_write_them_today() -> None:
    """The hooks (hpcpull/router/) write these lines with their own f-strings."""
    from hpcpull.state.eventlog import parse_finalize_note

    errors = ["output 'out.txt' is missing", "output 'big' is too large"]
    returned = ["a", "b"]
    written = (f"2026-01-01 00:00:00 finalize: returned {len(returned)} output(s)"
               + (f"; {len(errors)} problem(s): {'; '.join(errors)}" if errors else ""))
    assert parse_finalize_note(written) == (2, errors)
    assert parse_finalize_note("2026-01-01 00:00:00 finalize: returned 0 output(s)") == (0, [])
    assert parse_finalize_note(f"2026-01-01 00:00:00 finalize: output transfer failed: {errors[0]}") == \
        (None, [errors[0]])
    assert parse_finalize_note("2026-01-01 00:00:00 cleanup: FINALIZE did not finish: returned 2 output(s)") is None
    assert parse_finalize_note("2026-01-01 00:00:00 finalize: job directory busy in another hook") is None
