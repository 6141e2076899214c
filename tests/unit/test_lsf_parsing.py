"""Parsing of LSF client output, from real samples (tests/fixtures/lsf/README.md says whence).

Also the adapter's decisions that follow from that output, with the commands faked: no
real LSF can be installed here.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

from hpcpull.lrms.base import BatchState, LrmsError
from hpcpull.lrms.lsf import (
    BJOBS_FIELDS,
    LSF_STATES,
    TERM_STATES,
    LsfBatchSystem,
    bjobs_format,
    map_state,
    parse_bjobs,
    parse_bsub_output,
    parse_exit_code,
    parse_time,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lsf"

# the -o fields of the two samples, in their order
AIIDA_FIELDS = ["id", "stat", "exit_reason", "exec_host", "user", "slots", "max_req_proc", "exec_host",
                "queue", "finish_time", "start_time", "%complete", "submit_time", "name"]
GC3PIE_FIELDS = ["id", "stat", "exit_code", "exit_reason", "submit_time", "start_time", "finish_time",
                 "cpu_used", "run_time", "slots", "mem", "max_mem", "memlimit", "swap", "swaplimit"]

# Messages known from source only (openlava lsbatch/lib/lsb.err.c texts, printed by
# lsb_perror as "Job <id>: <text>"; bsub adds ". Job not submitted." in cmd.sub.c).
BKILL_FINISHED = "Job <5>: Job has already finished\n"
BKILL_UNKNOWN = "Job <5>: No matching job found\n"
BSUB_NO_QUEUE = "nosuchqueue: No such queue. Job not submitted.\n"
LIB_DOWN = "lsb_init: Failed in an LSF library call: LIM is down; try later\n"


def sample(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def local(*fields: int) -> int:
    year, month, day, hour, minute = fields
    return int(time.mktime((year, month, day, hour, minute, 0, 0, 0, -1)))


NOW = local(2024, 2, 3, 12, 0)  # a day after the AiiDA sample's times (they carry no year)


# --- bjobs -o output ---------------------------------------------------------------------------


def test_aiida_sample_states_times_and_reasons() -> None:
    jobs = parse_bjobs(sample("bjobs-o-aiida-lxplus.txt"), AIIDA_FIELDS, now=NOW)
    assert sorted(jobs) == ["764213236", "764220165", "764220167", "764245175", "764254593",
                            "764255172", "764399747"]  # the line with a leading blank too

    runlimit = jobs["764213236"]
    assert runlimit.state is BatchState.TIMEOUT and runlimit.native_state == "EXIT"
    assert runlimit.reason == "TERM_RUNLIMIT: job killed after reaching LSF run time limit"
    assert (runlimit.start_time, runlimit.end_time) == (local(2024, 2, 2, 0, 45), local(2024, 2, 2, 0, 46))
    assert runlimit.name == "aiida-1033269"
    assert runlimit.exit_code is None  # no exit_code field in this format

    pending = jobs["764220165"]
    assert pending.state is BatchState.PENDING and pending.native_state == "PEND"
    assert (pending.start_time, pending.end_time, pending.exit_code, pending.reason) == (None, None, None, "")

    running = jobs["764255172"]
    assert running.state is BatchState.RUNNING and running.start_time == local(2024, 2, 2, 7, 47)
    assert running.end_time is None  # "Feb  2 07:48 L" is the finish estimated from the run limit

    new_year = jobs["764245175"]  # "Dec  31 23:48 L" seen in February: last year
    assert new_year.start_time == local(2023, 12, 31, 23, 48)

    done = jobs["764399747"]
    assert done.state is BatchState.COMPLETED and done.exit_code == 0  # DONE is exit status 0
    assert done.end_time == local(2024, 2, 2, 14, 56)  # a flag after the time is dropped


def test_gc3pie_sample_with_header() -> None:
    jobs = parse_bjobs(sample("bjobs-o-gc3pie-514.txt"), GC3PIE_FIELDS, now=local(2016, 3, 3, 17, 0))
    assert list(jobs) == ["261871"]  # the JOBID|STAT|... header is not a job
    done = jobs["261871"]
    assert done.state is BatchState.COMPLETED and done.native_state == "DONE"
    assert (done.exit_code, done.reason) == (0, "")  # EXIT_CODE and EXIT_REASON are "-"
    assert done.start_time == done.end_time == local(2016, 3, 3, 16, 46)


def test_our_format_exit_codes_and_reasons() -> None:
    # the same shapes as the samples, in the adapter's own field order
    output = (
        "7|EXIT|3|Nov 21 06:32|Nov 21 06:33|-|hpcpull-1.0-aa\n"
        "8|EXIT|130|Nov 21 06:32|Nov 21 06:40|TERM_OWNER: job killed by owner|hpcpull-2.0-bb\n"
        "9|EXIT|-|-|Nov 21 06:41|TERM_OWNER: job killed by owner|never-started\n"
        "10|EXIT|130|Nov 21 06:32|Nov 21 06:40|TERM_MEMLIMIT: job killed after reaching LSF memory "
        "usage limit|mem\n"
        "11|RUN|-|Nov 21 06:32|Nov 21 07:32 L|-|with|bars|in|the|name\n"
        "12|PSUSP|-|-|-|-|held\n"
    )
    jobs = parse_bjobs(output, now=local(2025, 11, 21, 12, 0))
    assert (jobs["7"].state, jobs["7"].exit_code, jobs["7"].reason) == (BatchState.FAILED, 3, "")
    assert jobs["7"].end_time == local(2025, 11, 21, 6, 33)
    assert (jobs["8"].state, jobs["8"].exit_code) == (BatchState.CANCELLED, 130)
    assert (jobs["9"].state, jobs["9"].exit_code, jobs["9"].start_time) == (BatchState.CANCELLED, None, None)
    assert jobs["10"].state is BatchState.OUT_OF_MEMORY
    assert jobs["11"].name == "with|bars|in|the|name" and jobs["11"].end_time is None
    assert jobs["11"].exit_code is None  # not terminal: no exit code even if one were printed
    assert (jobs["12"].state, jobs["12"].native_state) == (BatchState.PENDING, "PSUSP")


@pytest.mark.parametrize("line", [
    "", "JOBID|STAT|EXIT_CODE|START_TIME|FINISH_TIME|EXIT_REASON|JOB_NAME", "No job found",
    "12|RUN|-|-", "abc|RUN|-|-|-|-|x", "12||-|-|-|-|x",
])
def test_lines_that_are_not_jobs_are_skipped(line: str) -> None:
    assert parse_bjobs(line + "\n") == {}


def test_bjobs_format_is_the_documented_syntax() -> None:
    # bjobs -o "[field_name][:[-][width]] ... [delimiter='character']" (IBM docs, bjobs -o)
    assert bjobs_format() == "jobid stat exit_code start_time finish_time exit_reason job_name delimiter='|'"
    assert BJOBS_FIELDS[-1] == "job_name"  # free text last


# --- times, exit codes, states ----------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("Mar  3 16:46", local(2016, 3, 3, 16, 46)),
    ("Mar 3 16:46", local(2016, 3, 3, 16, 46)),
    ("Mar  4 09:00", local(2016, 3, 4, 9, 0)),          # tomorrow: clock skew, same year
    ("Mar 10 09:00", local(2015, 3, 10, 9, 0)),         # a week ahead: must be last year
    ("Dec 31 23:59 L", local(2015, 12, 31, 23, 59)),
    ("Dec 1 18:00:07 2019", local(2019, 12, 1, 18, 0) + 7),  # with seconds and year
    ("Feb 29 10:00", local(2016, 2, 29, 10, 0)),        # 2016 is a leap year
    ("-", None), ("", None), ("Foo  3 16:46", None), ("Mar  3", None), ("1795240649", None),
])
def test_parse_time(value: str, expected: Optional[int]) -> None:
    assert parse_time(value, now=local(2016, 3, 3, 17, 0)) == expected


def test_parse_time_feb_29_seen_in_a_common_year_is_from_the_last_leap_year() -> None:
    assert parse_time("Feb 29 10:00", now=local(2015, 3, 3, 17, 0)) == local(2012, 2, 29, 10, 0)


@pytest.mark.parametrize("value, expected", [("0", 0), ("3", 3), ("140", 140), ("-", None), ("", None),
                                             ("x", None), ("-1", None)])
def test_parse_exit_code(value: str, expected: Optional[int]) -> None:
    assert parse_exit_code(value) == expected


def test_state_table_covers_the_documented_states() -> None:
    documented = {"PEND", "PROV", "PSUSP", "RUN", "USUSP", "SSUSP", "DONE", "EXIT", "UNKWN", "WAIT", "ZOMBI"}
    assert documented <= set(LSF_STATES)


@pytest.mark.parametrize("native, reason, expected", [
    ("PEND", "", BatchState.PENDING), ("PSUSP", "", BatchState.PENDING), ("WAIT", "", BatchState.PENDING),
    ("PROV", "", BatchState.PENDING), ("RUN", "", BatchState.RUNNING), ("UNKWN", "", BatchState.RUNNING),
    ("USUSP", "", BatchState.SUSPENDED), ("SSUSP", "", BatchState.SUSPENDED),
    ("DONE", "", BatchState.COMPLETED), ("EXIT", "", BatchState.FAILED), ("ZOMBI", "", BatchState.NODE_FAIL),
    ("EXIT", "TERM_RUNLIMIT: job killed after reaching LSF run time limit", BatchState.TIMEOUT),
    ("EXIT", "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit", BatchState.OUT_OF_MEMORY),
    ("EXIT", "TERM_OWNER: job killed by owner", BatchState.CANCELLED),
    ("EXIT", "TERM_ADMIN: job killed by root or LSF administrator", BatchState.CANCELLED),
    ("EXIT", "TERM_PREEMPT: job killed after preemption", BatchState.PREEMPTED),
    ("EXIT", "TERM_CPULIMIT: job killed after reaching LSF CPU usage limit", BatchState.FAILED),
    ("DONE", "TERM_OWNER: job killed by owner", BatchState.COMPLETED),  # only EXIT is refined
    ("done", "", BatchState.COMPLETED), ("CD", "", BatchState.UNKNOWN), ("", "", BatchState.UNKNOWN),
])
def test_map_state(native: str, reason: str, expected: BatchState) -> None:
    assert map_state(native, reason) is expected


def test_every_terminal_refinement_is_terminal() -> None:
    assert all(state.is_terminal for state in TERM_STATES.values())


# --- bsub output --------------------------------------------------------------------------------


@pytest.mark.parametrize("stdout, expected", [
    (sample("bsub-queue-aiida.txt"), "764254593"),
    (sample("bsub-default-queue-ibm.txt"), "2812"),
    ("esub: project checked\nJob <4711> is submitted to queue <short>.\n", "4711"),
    ("Job <12> is being terminated\n", None), ("", None),
])
def test_bsub_output(stdout: str, expected: Optional[str]) -> None:
    assert parse_bsub_output(stdout) == expected


# --- the adapter's decisions, commands faked ----------------------------------------------------


def _completed(argv: list[str], rc: int, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(argv, rc, out, err)


class FakeLsf(LsfBatchSystem):
    """Answers commands from a table: the first key that starts the command line wins."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        super().__init__({"LSF_ENVDIR": "/etc/lsf"}, timeout=5)
        self.answers = answers
        self.calls: list[list[str]] = []
        self.stdins: list[Optional[str]] = []

    def _run(
        self, argv: list[str], cwd: Optional[Path] = None, stdin: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        self.stdins.append(stdin)
        line = " ".join(argv)
        for prefix, (rc, out, err) in self.answers.items():
            if line.startswith(prefix):
                return _completed(argv, rc, out, err)
        raise AssertionError(f"unexpected command {line}")


def test_environment_forces_the_c_locale() -> None:
    assert FakeLsf({}).env == {"LSF_ENVDIR": "/etc/lsf", "LC_ALL": "C"}  # English months and messages


@pytest.mark.parametrize("name", ["", "a b", "x;rm", "naïve", "a/b", "a\nb", "abc\n", "job*", "arr[1]"])
def test_bad_job_names_are_refused_before_running_anything(name: str) -> None:
    batch = FakeLsf({})
    with pytest.raises(ValueError):
        batch.submit(Path("/w/job.sh"), name, Path("/w"), Path("/w/out"))
    with pytest.raises(ValueError):
        batch.find_by_name(name)
    assert batch.calls == []


@pytest.mark.parametrize("job_id", ["", "-1", "1 2", "abc", "--help", "12\n", "0x1f", "12[", "all"])
def test_bad_job_ids_are_refused(job_id: str) -> None:
    batch = FakeLsf({})
    for call in (batch.cancel, batch.job_status):
        with pytest.raises(ValueError):
            call(job_id)
    assert batch.calls == []


def test_submit_feeds_the_script_on_stdin(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#BSUB -n 4\necho hi\n")
    batch = FakeLsf({"bsub": (0, sample("bsub-default-queue-ibm.txt"), "")})
    assert batch.submit(script, "hpcpull-123.0-9f8e7d6c", Path("/w"), Path("/w/out")) == "2812"
    assert batch.calls == [["bsub", "-J", "hpcpull-123.0-9f8e7d6c", "-cwd", "/w", "-o", "/w/out", "-e", "/w/out"]]
    assert batch.stdins == [script.read_text()]


def test_submit_refused_or_silent(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("true\n")
    with pytest.raises(LrmsError) as info:
        FakeLsf({"bsub": (255, "", BSUB_NO_QUEUE)}).submit(script, "x", Path("/w"), Path("/w/out"))
    assert not info.value.transient and info.value.returncode == 255
    assert str(info.value) == "bsub failed (rc=255): nosuchqueue: No such queue. Job not submitted."
    with pytest.raises(LrmsError) as info:
        FakeLsf({"bsub": (0, "", "")}).submit(script, "x", Path("/w"), Path("/w/out"))
    assert info.value.transient  # the job may exist: find_by_name decides
    with pytest.raises(LrmsError) as info:
        FakeLsf({}).submit(tmp_path / "missing.sh", "x", Path("/w"), Path("/w/out"))
    assert not info.value.transient


def test_bulk_status_is_one_bjobs_for_all_users() -> None:
    batch = FakeLsf({"bjobs": (0, "7|RUN|-|Nov 21 06:32|-|-|a\n8|PEND|-|-|-|-|b\n", "")})
    assert sorted(batch.bulk_status()) == ["7", "8"]
    assert batch.calls == [["bjobs", "-u", "all", "-a", "-noheader", "-o", bjobs_format()]]


@pytest.mark.parametrize("rc", [0, 255])  # LSB_BJOBS_CONSISTENT_EXIT_CODE=N or Y
def test_bulk_status_without_jobs_is_empty(rc: int) -> None:
    assert FakeLsf({"bjobs": (rc, "", "No job found\n")}).bulk_status() == {}


@pytest.mark.parametrize("stderr, transient", [(LIB_DOWN, True), ("LSF is down. Please wait ...\n", True),
                                               ("User permission denied\n", False)])
def test_bulk_status_failures(stderr: str, transient: bool) -> None:
    with pytest.raises(LrmsError) as info:
        FakeLsf({"bjobs": (255, "", stderr)}).bulk_status()
    assert info.value.transient is transient and info.value.returncode == 255


def test_job_status() -> None:
    found = FakeLsf({"bjobs": (0, "5|EXIT|3|Nov 21 06:32|Nov 21 06:33|-|x\n", "")})
    status = found.job_status("5")
    assert status is not None and status.state is BatchState.FAILED and status.exit_code == 3
    assert found.calls == [["bjobs", "-a", "-noheader", "-o", bjobs_format(), "5"]]


@pytest.mark.parametrize("rc", [255, 0])
def test_job_status_of_a_forgotten_job_is_none(rc: int) -> None:
    stderr = sample("bjobs-o-aiida-lxplus.stderr")  # "Job <864220165> is not found"
    batch = FakeLsf({"bjobs": (rc, "", stderr)})
    assert batch.job_status("864220165") is None
    assert len(batch.calls) == 1  # no accounting command: see _probe_accounting


def test_job_status_errors_raise() -> None:
    with pytest.raises(LrmsError) as info:
        FakeLsf({"bjobs": (255, "", LIB_DOWN)}).job_status("5")
    assert info.value.transient
    with pytest.raises(LrmsError) as info:
        FakeLsf({"bjobs": (0, "garbage\n", "")}).job_status("5")
    assert not info.value.transient


def test_find_by_name() -> None:
    batch = FakeLsf({"bjobs": (0, "12\n15\n12\n", "")})
    assert batch.find_by_name("hpcpull-1.0-ab") == ["12", "15"]
    assert batch.calls == [["bjobs", "-u", "all", "-a", "-noheader", "-o", "jobid", "-J", "hpcpull-1.0-ab"]]
    for rc in (0, 255):
        assert FakeLsf({"bjobs": (rc, "", "Job <hpcpull-1.0-ab> is not found\n")}).find_by_name("hpcpull-1.0-ab") == []
    with pytest.raises(LrmsError):
        FakeLsf({"bjobs": (255, "", LIB_DOWN)}).find_by_name("x")


def test_cancel_of_finished_or_unknown_job_is_fine() -> None:
    batch = FakeLsf({"bkill": (0, sample("bkill-aiida.txt"), "")})
    batch.cancel("764254593")
    assert batch.calls == [["bkill", "764254593"]]
    FakeLsf({"bkill": (255, "", BKILL_FINISHED)}).cancel("5")
    FakeLsf({"bkill": (255, "", BKILL_UNKNOWN)}).cancel("5")
    with pytest.raises(LrmsError) as info:
        FakeLsf({"bkill": (255, "", "Job <5>: User permission denied\n")}).cancel("5")
    assert not info.value.transient and str(info.value) == "bkill failed (rc=255): Job <5>: User permission denied"


def test_accounting_is_not_used() -> None:
    batch = FakeLsf({})
    assert batch.accounting_available() is False
    assert batch.calls == []


def test_transient_markers_match_real_messages() -> None:
    batch = FakeLsf({})
    for text in (LIB_DOWN, "Contacting batch daemon: Communication timeout\n",
                 "batch system daemon not responding ... still trying\n", "Cannot connect to LSF. Please wait ...\n"):
        assert batch._is_transient(_completed(["bjobs"], 255, "", text)), text
    for text in (BSUB_NO_QUEUE, BKILL_UNKNOWN, "Job <5> is not found\n"):
        assert not batch._is_transient(_completed(["bjobs"], 255, "", text)), text
