"""Parsing of Grid Engine client output captured from the real Debian gridengine 8.1.9 (tests/fixtures/sge).

Also the adapter's decisions that follow from that output: the client commands are
replaced by a replay of those captured outputs (``Replay``, a labelled fake).
"""

from __future__ import annotations

import calendar
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

from hpcpull.lrms.base import BatchJobStatus, BatchState, LrmsError
from hpcpull.lrms.sge import (
    FAILED_STATES,
    QSTAT_ACTIVE,
    QSTAT_ALL,
    SgeBatchSystem,
    map_state,
    parse_error_reason,
    parse_qacct,
    parse_qacct_time,
    parse_qstat_xml,
    parse_qsub_output,
    parse_xml_time,
    qacct_status,
    shell_of,
    state_reason,
    submit_failure_detail,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sge"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def captured(name: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The captured run NAME (.out/.err/.rc) as if ``argv`` had printed it."""
    def part(suffix: str) -> str:
        path = FIXTURES / f"{name}.{suffix}"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    return subprocess.CompletedProcess(argv, int(part("rc")), part("out"), part("err"))


def utc(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


# --------------------------------------------------------------------------- states


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("qw", BatchState.PENDING),
        ("hqw", BatchState.PENDING),
        ("hRwq", BatchState.PENDING),
        ("Rq", BatchState.PENDING),
        ("w", BatchState.PENDING),
        ("t", BatchState.PENDING),     # dispatched, not confirmed: payload not started
        ("Rt", BatchState.PENDING),
        ("dt", BatchState.PENDING),
        ("r", BatchState.RUNNING),
        ("Rr", BatchState.RUNNING),
        ("hr", BatchState.RUNNING),
        ("dr", BatchState.RUNNING),    # being deleted: the outcome comes later
        ("s", BatchState.SUSPENDED),
        ("ts", BatchState.SUSPENDED),
        ("S", BatchState.SUSPENDED),
        ("T", BatchState.SUSPENDED),
        ("dS", BatchState.SUSPENDED),
        ("Eqw", BatchState.FAILED),    # error state: never runs unless an operator clears it
        ("Ehqw", BatchState.FAILED),
        ("z", BatchState.COMPLETED),
        ("", BatchState.UNKNOWN),
        ("?", BatchState.UNKNOWN),
        ("d", BatchState.UNKNOWN),
    ],
)
def test_map_state(native: str, expected: BatchState) -> None:
    assert map_state(native) is expected


def test_state_reason_names_the_flags_that_matter() -> None:
    assert state_reason("qw") == "" and state_reason("r") == ""
    assert state_reason("hqw") == "on hold"
    assert state_reason("dr") == "deletion requested"
    assert state_reason("Eqw").startswith("error state")
    assert state_reason("hRwq") == "on hold, restarted"


def test_failed_code_table_follows_execution_states_h() -> None:
    assert FAILED_STATES[37] is BatchState.TIMEOUT
    assert FAILED_STATES[100] is BatchState.FAILED
    assert FAILED_STATES[25] is BatchState.PENDING and not FAILED_STATES[25].is_terminal


# --------------------------------------------------------------------------- qstat -xml


def test_parse_qstat_states() -> None:
    jobs = parse_qstat_xml(fixture("qstat-states.xml"))
    started = utc("2026-11-21 06:28:25")

    def check(job_id: str, state: BatchState, native: str, name: str) -> BatchJobStatus:
        status = jobs[job_id]
        assert (status.job_id, status.state, status.native_state, status.name) == (job_id, state, native, name)
        assert status.end_time is None and status.exit_code is None and status.exit_signal is None
        return status

    running = check("22", BatchState.RUNNING, "r", "cap-running")
    assert running.start_time == started and running.reason == ""
    assert check("23", BatchState.SUSPENDED, "s", "cap-suspended").start_time == started
    assert check("26", BatchState.RUNNING, "hr", "cap-holdrun").reason == "on hold"
    assert check("24", BatchState.SUSPENDED, "S", "cap-pe-smp2").reason == "queue suspended"
    assert check("36", BatchState.RUNNING, "dr", "cap-del-run").reason == "deletion requested"
    # the array's tasks, one per line with -g d, two running and one in the suspended queue
    assert [jobs[f"31.{t}"].state for t in (1, 2, 3)] == [
        BatchState.RUNNING, BatchState.RUNNING, BatchState.SUSPENDED]
    assert "31" not in jobs
    # pending: the submission time is not a start time
    for job_id, native, name in [("32", "qw", "cap-toobig"), ("28", "qw", "cap-future"),
                                 ("27", "hqw", "cap-held"), ("29", "hqw", "cap-dep"), ("34", "Rq", "cap-rerun")]:
        assert check(job_id, BatchState.PENDING, native, name).start_time is None
    assert jobs["27"].reason == "on hold" and jobs["34"].reason == "restarted"
    error = check("30", BatchState.FAILED, "Eqw", "cap-badwd")
    assert error.reason.startswith("error state") and error.start_time is None
    # zombies: finished, no outcome; a finished array keeps its task range
    assert check("19", BatchState.COMPLETED, "z", "cap-exit3").start_time is None
    assert check("5.1-3:1", BatchState.COMPLETED, "z", "cap-arr").reason.startswith("finished")
    assert len(jobs) == 35


def test_parse_qstat_empty_odd_names_and_garbage() -> None:
    assert parse_qstat_xml(fixture("qstat-empty.xml")) == {}
    odd = parse_qstat_xml(fixture("qstat-odd-name.xml"))
    assert {s.name for s in odd.values()} == {"cap-del", "second-name", "cap-array", 'a&b%lt;c>"d'}
    assert odd["68.1"].state is BatchState.PENDING and odd["68.2"].native_state == "hqw"
    with pytest.raises(ValueError, match="not XML"):
        parse_qstat_xml("error: commlib error: got select error (Connection refused)\n")


def test_parse_times() -> None:
    assert parse_xml_time("2026-11-21T06:28:25") == utc("2026-11-21 06:28:25")
    assert parse_xml_time("") is None and parse_xml_time(None) is None and parse_xml_time("soon") is None
    assert parse_qacct_time("Sat Nov 21 06:28:24 2026") == utc("2026-11-21 06:28:24")
    assert parse_qacct_time("Sun Nov  1 06:28:24 2026") == utc("2026-11-01 06:28:24")  # ctime pads the day
    assert parse_qacct_time("-/-") is None and parse_qacct_time("") is None and parse_qacct_time("x") is None


# --------------------------------------------------------------------------- qacct


def one_record(name: str) -> BatchJobStatus:
    records = parse_qacct(fixture(name))
    assert len(records) == 1
    return qacct_status(records[0])


def test_qacct_normal_exits() -> None:
    ok = one_record("qacct-exit0.txt")
    assert ok == BatchJobStatus("18", BatchState.COMPLETED, "failed=0 exit_status=0", "",
                                utc("2026-11-21 06:28:24"), utc("2026-11-21 06:28:24"), 0, None, "cap-ok")
    three = one_record("qacct-exit3.txt")
    assert (three.state, three.exit_code, three.exit_signal, three.reason) == (BatchState.FAILED, 3, None, "")
    assert three.end_time == utc("2026-11-21 06:28:25")
    # "exit 137" is a normal exit with code 137 (failed 0), not a signal
    assert one_record("qacct-exit137.txt").exit_code == 137
    assert one_record("qacct-exit137.txt").exit_signal is None


def test_qacct_killed_timeout_and_never_ran() -> None:
    for name in ("qacct-kill9.txt", "qacct-qdel-running.txt"):  # qacct cannot tell these apart
        killed = one_record(name)
        assert (killed.state, killed.exit_code, killed.exit_signal) == (BatchState.FAILED, None, 9)
        assert killed.reason == "failed 100: assumedly after job"
    timeout = one_record("qacct-h_rt.txt")
    assert (timeout.state, timeout.exit_signal, timeout.name) == (BatchState.TIMEOUT, 9, "cap-hrt")
    assert timeout.reason == "failed 37: qmaster enforced h_rt, h_cpu, or h_vmem limit"
    assert timeout.end_time == utc("2026-11-21 06:28:29")
    never = one_record("qacct-bad-workdir.txt")
    assert (never.state, never.exit_code, never.exit_signal) == (BatchState.FAILED, None, None)
    assert never.start_time is None and never.end_time is None
    assert never.reason == "failed 28: changing into working directory"
    again = one_record("qacct-rescheduled.txt")
    assert again.state is BatchState.PENDING and again.end_time is None and again.exit_code is None


def test_qacct_several_records() -> None:
    tasks = [qacct_status(r) for r in parse_qacct(fixture("qacct-array.txt"))]
    assert [(t.job_id, t.exit_code) for t in tasks] == [("37.1", 1), ("37.2", 2)]
    same_name = parse_qacct(fixture("qacct-dupname.txt"))
    assert [(r["jobnumber"], r["jobname"], r["exit_status"]) for r in same_name] == [
        ("38", "cap-dupname", "0"), ("39", "cap-dupname", "3")]
    assert parse_qacct(fixture("qacct-unknown.err")) == []


# --------------------------------------------------------------------------- qsub and friends


def test_parse_qsub_output() -> None:
    assert parse_qsub_output(fixture("qsub-terse.out")) == "66"
    assert parse_qsub_output(fixture("qsub-repeated-directive.out")) == "67"  # after the warning
    assert parse_qsub_output(fixture("qsub-array.out")) == "68"
    assert parse_qsub_output("") is None and parse_qsub_output("Your job 5 has been submitted\n") is None


def test_submit_failure_detail() -> None:
    assert submit_failure_detail(fixture("qsub-unknown-queue.err")) == (
        'Unable to run job: Job was rejected because job requests unknown queue "nope.q"')
    assert submit_failure_detail(fixture("qsub-bad-name.err")) == (
        "Unable to run job: Colon (':') not allowed in objectname")
    assert submit_failure_detail("Exiting.\n") == ""


def test_parse_error_reason() -> None:
    assert parse_error_reason(fixture("qstat-j-error.txt")) == (
        "error: can't chdir to /tmp/sgecap/nonexistent: No such file or directory")
    assert parse_error_reason(fixture("qstat-j-unknown.err")) == ""


def test_shell_of(tmp_path: Path) -> None:
    cases = {
        "#!/bin/bash\necho\n": "/bin/bash",
        "#!/bin/bash -l\n": "/bin/bash",
        "#! /bin/sh\n": "/bin/sh",
        "#!/usr/bin/env bash\n": None,   # -S needs the shell's own path
        "#$ -N x\n": None,
        "": None,
    }
    for i, (text, expected) in enumerate(cases.items()):
        script = tmp_path / f"s{i}.sh"
        script.write_text(text, encoding="utf-8")
        assert shell_of(script) == expected, text
    assert shell_of(tmp_path / "missing.sh") is None


# --------------------------------------------------------------------------- the adapter, replayed


def listing(name: str) -> subprocess.CompletedProcess[str]:
    """A captured qstat -xml listing (qstat-NAME.xml), exit status 0."""
    return subprocess.CompletedProcess(["qstat"], 0, fixture(f"{name}.xml"), "")


def report(name: str) -> subprocess.CompletedProcess[str]:
    """A captured report on stdout (NAME.txt: qacct -j, qstat -j), exit status 0."""
    return subprocess.CompletedProcess(["q"], 0, fixture(f"{name}.txt"), "")


def run(name: str) -> subprocess.CompletedProcess[str]:
    """A captured run with its stdout, stderr and exit status (NAME.out/.err/.rc)."""
    return captured(name, ["q"])


SILENT_OK = subprocess.CompletedProcess(["q"], 0, "", "")


class Replay:
    """FAKE client commands: answers each expected command with a captured real run, in order."""

    def __init__(self, *answers: tuple[tuple[str, ...], subprocess.CompletedProcess[str]]) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    def __call__(
        self, argv: list[str], cwd: Optional[Path] = None, stdin: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        assert self.answers, f"unexpected command {argv}"
        prefix, answer = self.answers.pop(0)
        assert tuple(argv[: len(prefix)]) == prefix, f"expected {prefix}, ran {argv}"
        return subprocess.CompletedProcess(argv, answer.returncode, answer.stdout, answer.stderr)

    def done(self) -> bool:
        return not self.answers


PROBE = ("qacct", "-j", "hpcpull-accounting-probe")


@pytest.fixture
def sge() -> SgeBatchSystem:
    return SgeBatchSystem({"PATH": "/usr/bin:/bin"}, timeout=5)


def use(system: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch,
        *answers: tuple[tuple[str, ...], subprocess.CompletedProcess[str]]) -> Replay:
    replay = Replay(*answers)
    monkeypatch.setattr(system, "_run", replay)
    return replay


def test_environment_pins_time_zone_and_locale() -> None:
    system = SgeBatchSystem({"TZ": "Asia/Tokyo", "LANG": "de_DE.UTF-8", "SGE_CELL": "default"})
    assert system.env["TZ"] == "UTC" and system.env["LC_ALL"] == "C" and system.env["SGE_CELL"] == "default"
    assert system.name == "sge"


def test_invalid_ids_and_names_run_nothing(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    replay = use(sge, monkeypatch)
    for bad_id in ("", "abc", "-1", "12 13", "12;rm", "1.2.3", "31.1-3:1"):
        for call in (sge.job_status, sge.cancel):
            with pytest.raises(ValueError):
                call(bad_id)
    for bad_name in ("1abc", "a/b", "a:b", "a@b", "a b", "a*b", "a?b", "a\\b", "-x", "\u00e9", ""):
        with pytest.raises(ValueError):
            sge.find_by_name(bad_name)
        with pytest.raises(ValueError):
            sge.submit(tmp_path / "x.sh", bad_name, tmp_path, tmp_path / "out")
    for bad_path in ("/tmp/a:b", "/tmp/$HOME", "/tmp/a,b"):
        with pytest.raises(ValueError):
            sge.submit(tmp_path / "x.sh", "hpcpull-1.0-abc", tmp_path, Path(bad_path))
    assert replay.calls == []


def test_submit_command_and_id(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#$ -N ignored\n", encoding="utf-8")
    replay = use(sge, monkeypatch, (("qsub",), run("qsub-repeated-directive")))
    assert sge.submit(script, "hpcpull-123.0-9f8e7d6c", tmp_path, tmp_path / "o.txt") == "67"
    assert replay.calls == [[
        "qsub", "-terse", "-N", "hpcpull-123.0-9f8e7d6c", "-wd", str(tmp_path), "-o", str(tmp_path / "o.txt"),
        "-j", "y", "-S", "/bin/bash", str(script),
    ]]


def test_submit_refused_and_unreachable(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("echo no shebang\n", encoding="utf-8")
    replay = use(sge, monkeypatch, (("qsub",), run("qsub-unknown-queue")), (("qsub",), run("qsub-qmaster-down")))
    with pytest.raises(LrmsError) as info:
        sge.submit(script, "hpcpull-1.0-a", tmp_path, tmp_path / "o")
    err = info.value
    assert str(err) == (
        'qsub failed (rc=1): Unable to run job: Job was rejected because job requests unknown queue "nope.q"')
    assert err.transient is False and err.returncode == 1 and "Exiting." in err.stderr
    assert "-S" not in replay.calls[0]  # no #! line: the queue's shell
    with pytest.raises(LrmsError) as info:
        sge.submit(script, "hpcpull-1.0-a", tmp_path, tmp_path / "o")
    assert info.value.transient is True
    assert str(info.value).startswith("qsub failed (rc=1): Unable to run job: unable to send message to qmaster")


def test_submit_without_id_is_transient(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    use(sge, monkeypatch, (("qsub",), SILENT_OK))
    with pytest.raises(LrmsError) as info:
        sge.submit(tmp_path / "x.sh", "hpcpull-1.0-a", tmp_path, tmp_path / "o")
    assert info.value.transient is True and "no job id" in str(info.value)


def test_bulk_status_is_one_qstat(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = use(sge, monkeypatch, (QSTAT_ACTIVE, listing("qstat-states")))
    jobs = sge.bulk_status()
    assert replay.calls == [list(QSTAT_ACTIVE)] and jobs["22"].state is BatchState.RUNNING
    assert QSTAT_ACTIVE == ("qstat", "-u", "*", "-xml", "-g", "d", "-s", "prs")  # all users, no zombies


def test_bulk_status_errors(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    use(sge, monkeypatch, (QSTAT_ACTIVE, run("qstat-qmaster-down")),
        (QSTAT_ACTIVE, subprocess.CompletedProcess(["q"], 0, "not xml", "")))
    with pytest.raises(LrmsError) as info:
        sge.bulk_status()
    assert info.value.transient is True and info.value.returncode == 1
    assert str(info.value).startswith("qstat failed (rc=1): error: unable to send message to qmaster")
    with pytest.raises(LrmsError) as info:
        sge.bulk_status()
    assert info.value.transient is False and "not XML" in str(info.value)


def test_job_status_still_listed(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-states")))
    assert sge.job_status("22").state is BatchState.RUNNING and replay.done()
    # Eqw: qstat -j tells why
    use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-states")), (("qstat", "-j", "30"), report("qstat-j-error")))
    error = sge.job_status("30")
    assert error is not None and error.state is BatchState.FAILED
    assert error.reason == "error state: error: can't chdir to /tmp/sgecap/nonexistent: No such file or directory"


def test_job_status_from_accounting(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    # a zombie: accounting has the outcome (probed once, then qacct -j)
    replay = use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-states")), (PROBE, run("qacct-probe")),
                 (("qacct", "-j", "19"), report("qacct-exit3")))
    done = sge.job_status("19")
    assert done is not None and (done.state, done.exit_code, done.name) == (BatchState.FAILED, 3, "cap-exit3")
    assert replay.done()
    # gone from qstat and from accounting: nobody knows it
    use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-empty")), (("qacct", "-j", "999999"), run("qacct-unknown")))
    assert sge.job_status("999999") is None
    # a last record "rescheduling" of a job qstat no longer lists is not an outcome
    use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-empty")), (("qacct", "-j", "34"), report("qacct-rescheduled")))
    assert sge.job_status("34") is None
    # an array task
    use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-empty")),
        (("qacct", "-j", "37", "-t", "2"), report("qacct-array")))
    task = sge.job_status("37.2")
    assert task is not None and (task.job_id, task.exit_code) == ("37.2", 2)


def test_job_status_zombie_without_accounting(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-states")), (PROBE, run("qacct-no-file")),
                 (("qconf", "-sconf", "global"), report("qconf-sconf-global-no-accounting")),
                 (QSTAT_ALL, listing("qstat-empty")))
    zombie = sge.job_status("19")
    assert zombie is not None and zombie.state is BatchState.COMPLETED and zombie.native_state == "z"
    assert zombie.exit_code is None and zombie.reason.startswith("finished; no accounting record")
    assert sge.job_status("19") is None  # no accounting (cached): only qstat is asked
    assert replay.done() and sge.accounting_available() is False


def test_cancel_is_idempotent(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = use(sge, monkeypatch, (("qdel", "66"), run("qdel-pending")), (("qdel", "66"), run("qdel-unknown")),
                 (("qdel", "71"), run("qdel-running")), (("qdel", "71"), run("qdel-again")),
                 (("qdel", "1"), run("qdel-qmaster-down")))
    sge.cancel("66")
    sge.cancel("66")  # 'denied: job "66" does not exist'
    sge.cancel("71")
    sge.cancel("71")  # "job 71 is already in deletion"
    with pytest.raises(LrmsError) as info:
        sge.cancel("1")
    assert info.value.transient is True and replay.done()


def test_find_by_name_merges_qstat_and_qacct(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    not_found = run("qacct-probe")  # "error: job name ... not found", rc 1
    use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-states")), (PROBE, not_found),
        (("qacct", "-j", "cap-array"), not_found))
    assert sge.find_by_name("cap-array") == ["31"]  # three tasks, one job
    use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-empty")),
        (("qacct", "-j", "cap-dupname"), report("qacct-dupname")))
    assert sge.find_by_name("cap-dupname") == ["38", "39"]
    use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-states")), (("qacct", "-j", "second-name"), not_found))
    assert sge.find_by_name("second-name") == ["10", "12"]  # zombies of the directive experiment
    use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-states")), (("qacct", "-j", "cap-x"), run("qsub-qmaster-down")))
    with pytest.raises(LrmsError):
        sge.find_by_name("cap-x")


def test_job_status_before_the_first_accounting_record(sge: SgeBatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    # a fresh cell: accounting is on but no job has ended yet, so there is no file to read
    replay = use(sge, monkeypatch, (QSTAT_ALL, listing("qstat-empty")), (PROBE, run("qacct-no-file")),
                 (("qconf", "-sconf", "global"), report("qconf-sconf-global")),
                 (("qacct", "-j", "5"), run("qacct-no-file")))
    assert sge.job_status("5") is None and replay.done()


CONF = ("qconf", "-sconf", "global")


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (((PROBE, run("qacct-probe")),), True),   # "job name ... not found": the file was read
        (((PROBE, SILENT_OK),), True),
        (((PROBE, run("qacct-no-file")), (CONF, report("qconf-sconf-global"))), True),  # file comes later
        (((PROBE, run("qacct-no-file")), (CONF, report("qconf-sconf-global-no-accounting"))), False),
        (((PROBE, run("qacct-no-file")), (CONF, run("qconf-qmaster-down"))), None),  # cannot tell
    ],
)
def test_accounting_probe(monkeypatch: pytest.MonkeyPatch, answers, expected: Optional[bool]) -> None:
    system = SgeBatchSystem({})
    replay = use(system, monkeypatch, *answers)
    if expected is None:
        with pytest.raises(LrmsError) as info:
            system.accounting_available()
        assert info.value.transient is True
        use(system, monkeypatch, *answers[:1], (CONF, report("qconf-sconf-global")))
        assert system.accounting_available() is True  # not cached: asked again
    else:
        assert system.accounting_available() is expected
        assert system.accounting_available() is expected and replay.done()  # cached


def test_transient_classification() -> None:
    system = SgeBatchSystem({})
    for name in ("qsub-qmaster-down", "qstat-qmaster-down", "qdel-qmaster-down"):
        assert system._is_transient(run(name)), name
    for name in ("qsub-unknown-queue", "qsub-bad-name", "qdel-unknown", "qhold-unknown", "qacct-unknown"):
        assert not system._is_transient(run(name)), name
    access = subprocess.CompletedProcess(["qstat"], 1, "", (
        'error: commlib error: access denied (client IP resolved to host name "localhost". '
        'This is not identical to clients host name "vm")\n'
        'error: unable to contact qmaster using port 6444 on host "vm"\n'))
    assert system._is_transient(access)  # a gateway misconfiguration: retry, do not hold jobs
