"""Parsing of PBS client output, and the PBS adapters' decisions that follow from it.

``wrapper-*`` fixtures are real output of Debian's Torque wrappers (slurm-wlm-torque) on the
private Slurm; ``torque-qstat-f.txt`` and ``pbspro-qstat-fx.txt`` are composed in the format
of Torque's and OpenPBS's qstat.c (see tests/fixtures/pbs/README.md).  Messages quoted below
come from the commands' sources: Torque src/cmds/qstat.c (``get_err_msg``: "qstat: " + text +
" " + id), src/cmds/qsub_functions.c ("qsub: submit error (%s)", "cannot connect to server %s
(errno=%d) %s"), src/include/pbs_error_db.h (texts); OpenPBS src/cmds/qstat.c ("qstat: %s %s,
use -x or -H to obtain historical job information", "qstat: cannot connect to server %s
(errno=%d)").  The adapters' commands are answered by :class:`FakePbsRun`, a labelled fake.
"""

from __future__ import annotations

import calendar
import subprocess
from pathlib import Path
from typing import Mapping, Optional

import pytest

from hpcpull.lrms.base import BatchJobStatus, BatchState, LrmsError
from hpcpull.lrms.pbs import (
    JOB_NAME_MAX,
    PBSPRO,
    PBSPRO_EXEC_CODES,
    PBSPRO_STATES,
    TORQUE,
    TORQUE_EXEC_CODES,
    TORQUE_STATES,
    PbsBatchSystem,
    PbsProBatchSystem,
    parse_ctime,
    parse_exit_status,
    parse_qstat,
    parse_qstat_full,
    parse_qsub_output,
    same_job,
    status_from_record,
    submit_error_detail,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pbs"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def utc(*fields: int) -> int:
    return calendar.timegm(fields)


def record_text(output: str, job_id: str) -> str:
    """The lines of one job's record in qstat -f output (what ``qstat -f ID`` prints)."""
    block = output.split(f"Job Id: {job_id}\n", 1)[1].split("\nJob Id:", 1)[0]
    return f"Job Id: {job_id}\n{block}"


WRAPPER_QSTAT = fixture("wrapper-qstat-f.txt")
TORQUE_QSTAT = fixture("torque-qstat-f.txt")
PBSPRO_QSTAT = fixture("pbspro-qstat-fx.txt")

TORQUE_UNKNOWN = "qstat: Unknown Job Id Error 4107.head.example.org\n"
PBSPRO_UNKNOWN = "qstat: Unknown Job Id 8109.pbs01\n"
PBSPRO_FINISHED = (
    "qstat: 8101.pbs01 Job has finished, use -x or -H to obtain historical job information\n"
)
PBSPRO_NO_HISTORY = "qstat: job_history_enable not SET\n"
TORQUE_CANNOT_CONNECT = "qstat: cannot connect to server head.example.org (errno=111) Connection refused\n"
PBSPRO_CANNOT_CONNECT = "qstat: cannot connect to server pbs01 (errno=15010)\n"
TORQUE_BAD_QUEUE = "qsub: submit error (Unknown queue MSG=requested queue not found)\n"


# --- the wrapper's real output ---------------------------------------------------------


def test_wrapper_qstat_f_lists_every_job_with_its_full_name() -> None:
    jobs = parse_qstat(WRAPPER_QSTAT, TORQUE)
    assert list(jobs) == ["1", "2", "3", "4", "5", "6", "7"]
    assert [j.name for j in jobs.values()] == [
        "cap-ok", "cap-exit3", "cap-sigkill", "cap-run", "cap-runcancel", "cap-held", "cap-pendcancel"]
    assert [j.native_state for j in jobs.values()] == ["C", "C", "C", "R", "C", "Q", "C"]


def test_wrapper_ended_jobs_are_completed_without_exit_code() -> None:
    jobs = parse_qstat(WRAPPER_QSTAT, TORQUE)
    # C covers Slurm's COMPLETED, FAILED and CANCELLED alike and the wrapper prints no exit status
    for job_id in ("1", "2", "3", "5", "7"):
        assert jobs[job_id].state is BatchState.COMPLETED
        assert (jobs[job_id].exit_code, jobs[job_id].exit_signal) == (None, None)
    # the wrapper prints Slurm's start as mtime and its end as ctime
    assert jobs["1"] == BatchJobStatus("1", BatchState.COMPLETED, "C", "", utc(2026, 11, 21, 6, 32, 51),
                                       utc(2026, 11, 21, 6, 32, 51), None, None, "cap-ok")
    assert (jobs["5"].start_time, jobs["5"].end_time) == (utc(2026, 11, 21, 6, 32, 51),
                                                          utc(2026, 11, 21, 6, 32, 53))


def test_wrapper_running_job_has_no_end_time() -> None:
    running = parse_qstat(WRAPPER_QSTAT, TORQUE)["4"]
    assert running.state is BatchState.RUNNING and running.start_time == utc(2026, 11, 21, 6, 32, 51)
    assert running.end_time is None  # its ctime is Slurm's expected end, a year later


def test_wrapper_held_job_is_pending_with_a_reason() -> None:
    held = parse_qstat(WRAPPER_QSTAT, TORQUE)["6"]
    assert held.state is BatchState.PENDING and held.native_state == "Q"
    assert held.reason == "held (Priority=0)" and held.start_time is None


def test_wrapper_records_use_tabs() -> None:
    (record,) = parse_qstat_full(fixture("wrapper-qstat-f-job2.txt"))
    assert record["Job Id"] == "2" and record["Job_Name"] == "cap-exit3"
    assert record["Resource_List.walltime"] == "71582788:15:00" and "server" not in record
    assert status_from_record(record, TORQUE) == parse_qstat(WRAPPER_QSTAT, TORQUE)["2"]


def test_wrapper_qsub_output_and_refusal() -> None:
    assert parse_qsub_output(fixture("wrapper-qsub.txt")) == "1"
    refusal = subprocess.CompletedProcess(["qsub"], 1, fixture("wrapper-qsub-badqueue.txt"), "")
    assert submit_error_detail(refusal) == "Batch job submission failed: Invalid partition name specified"


# --- Torque and PBS Pro formats ------------------------------------------------------------


def test_torque_finished_jobs_with_exit_status() -> None:
    jobs = parse_qstat(TORQUE_QSTAT, TORQUE)
    ok = jobs["4101.head.example.org"]
    assert ok == BatchJobStatus("4101.head.example.org", BatchState.COMPLETED, "C", "",
                                utc(2020, 3, 2, 9, 15, 24), utc(2020, 3, 2, 9, 16, 5), 0, None,
                                "hpcpull-41.0-0a1b2c3d")
    killed = jobs["4102.head.example.org"]
    assert killed.state is BatchState.FAILED and (killed.exit_code, killed.exit_signal) == (None, 15)
    assert killed.reason == "killed by signal 15 (exit status 271)"
    walltime = jobs["4103.head.example.org"]
    assert walltime.state is BatchState.TIMEOUT and walltime.reason == "JOB_EXEC_OVERLIMIT_WT (-11)"
    assert walltime.exit_code is None and walltime.end_time == utc(2020, 3, 2, 9, 26, 0)


def test_torque_active_jobs() -> None:
    jobs = parse_qstat(TORQUE_QSTAT, TORQUE)
    running = jobs["4104.head.example.org"]
    assert running.state is BatchState.RUNNING and running.start_time == utc(2020, 3, 2, 9, 15, 27)
    assert running.end_time is None
    held = jobs["4105.head.example.org"]
    assert held.state is BatchState.PENDING and held.native_state == "H"
    assert held.reason == "held (Hold_Types=u)"
    queued = jobs["4106.head.example.org"]
    assert queued.state is BatchState.PENDING and queued.reason == "Not enough of the right type of nodes available"
    assert queued.start_time is None  # Torque's mtime is not a start time


def test_multi_line_values_and_blank_lines_do_not_break_records() -> None:
    records = {r["Job Id"]: r for r in parse_qstat_full(TORQUE_QSTAT)}
    record = records["4102.head.example.org"]
    assert record["Error_Path"] == "login1.example.org:/scratch/alice/hpcpull/41.1/job.err"
    assert record["Hold_Types"] == "n"
    assert record["sched_hint"].splitlines()[1] == (
        "Unable to copy file 4102.head.example.org.OU to /scratch/alice/hpcpull/41.1/job.out")
    assert record["etime"] == "Mon Mar  2 09:15:01 2020" and record["exit_status"] == "271"


def test_pbspro_folded_values_are_joined() -> None:
    record = parse_qstat_full(PBSPRO_QSTAT)[0]
    variables = record["Variable_List"].split(",")
    assert "PBS_O_PATH=/usr/local/bin:/usr/bin:/bin:/opt/pbs/bin" in variables  # folded inside a word
    assert "PBS_O_WORKDIR=/scratch/carol/hpcpull/81.0" in variables  # folded after a comma
    assert record["Submit_arguments"].endswith("-o /scratch/carol/hpcpull/81.0/job.out job.sh")
    assert record["history_timestamp"] == "1592301624"


def test_a_folded_line_that_looks_like_an_attribute_stays_a_continuation() -> None:
    # prt_attr() folds near column 78 wherever it must; in a 4-space record a tab-led line
    # is always a continuation, even one that reads "name = value"
    text = ("Job Id: 9.pbs01\n    comment = Not Running: would exceed queue workq's per-user limit on\n"
            "\tncpus = 48\n    job_state = Q\n")
    (record,) = parse_qstat_full(text)
    assert record == {"Job Id": "9.pbs01", "job_state": "Q",
                      "comment": "Not Running: would exceed queue workq's per-user limit onncpus = 48"}


def test_pbspro_history_jobs() -> None:
    jobs = parse_qstat(PBSPRO_QSTAT, PBSPRO)
    ok = jobs["8101.pbs01"]
    assert ok == BatchJobStatus("8101.pbs01", BatchState.COMPLETED, "F",
                                "Job run at Tue Jun 16 at 10:00 on (cn001:ncpus=1) and finished",
                                utc(2020, 6, 16, 10, 0, 11), utc(2020, 6, 16, 10, 0, 24), 0, None,
                                "hpcpull-81.0-4e5f6a7b")
    signalled = jobs["8102.pbs01"]
    assert signalled.state is BatchState.FAILED and signalled.exit_signal == 15
    assert signalled.end_time == utc(2020, 6, 16, 10, 11, 2)  # obittime, not mtime
    walltime = jobs["8103.pbs01"]
    assert walltime.state is BatchState.TIMEOUT and walltime.reason == "JOB_EXEC_KILL_WALLTIME (-29)"
    assert walltime.end_time == utc(2020, 6, 16, 10, 11, 30)  # no obittime: mtime of the finished job
    failed = jobs["8104.pbs01"]
    assert failed.state is BatchState.FAILED and (failed.exit_code, failed.exit_signal) == (3, None)


def test_pbspro_active_and_moved_jobs() -> None:
    jobs = parse_qstat(PBSPRO_QSTAT, PBSPRO)
    running = jobs["8105.pbs01"]
    assert running.state is BatchState.RUNNING and running.start_time == utc(2020, 6, 16, 10, 0, 15)
    assert running.reason == "Job run at Tue Jun 16 at 10:00 on (cn004:ncpus=1)"
    assert jobs["8106.pbs01"].state is BatchState.PENDING and jobs["8106.pbs01"].reason == "held (Hold_Types=u)"
    queued = jobs["8107.pbs01"]
    assert queued.reason == "Not Running: Insufficient amount of resource: ncpus (R: 64 A: 48 T: 48)"
    moved = jobs["8108.pbs01"]
    assert moved.state is BatchState.UNKNOWN and moved.reason == "moved to another server"
    assert not moved.state.is_terminal and not moved.state.is_active


# --- tables and small parsers ----------------------------------------------------------------

EXPECTED_TORQUE_STATES = {
    "Q": BatchState.PENDING, "H": BatchState.PENDING, "W": BatchState.PENDING, "T": BatchState.PENDING,
    "R": BatchState.RUNNING, "E": BatchState.RUNNING, "S": BatchState.SUSPENDED,
    "C": BatchState.COMPLETED, "F": BatchState.COMPLETED, "U": BatchState.UNKNOWN,
}
EXPECTED_PBSPRO_STATES = {
    **EXPECTED_TORQUE_STATES, "B": BatchState.RUNNING, "X": BatchState.COMPLETED,
    "U": BatchState.SUSPENDED, "M": BatchState.UNKNOWN,
}


def test_state_tables() -> None:
    assert TORQUE_STATES == EXPECTED_TORQUE_STATES
    assert PBSPRO_STATES == EXPECTED_PBSPRO_STATES


@pytest.mark.parametrize(
    "value, expected",
    [("0", (BatchState.COMPLETED, 0, None, "")),
     ("1", (BatchState.FAILED, 1, None, "")),
     ("137", (BatchState.FAILED, 137, None, "")),  # a shell's child killed by SIGKILL: indistinguishable
     ("255", (BatchState.FAILED, 255, None, "")),
     ("256", (BatchState.FAILED, None, None, "exit status 256")),
     ("265", (BatchState.FAILED, None, 9, "killed by signal 9 (exit status 265)")),
     ("271", (BatchState.FAILED, None, 15, "killed by signal 15 (exit status 271)")),
     ("-1", (BatchState.FAILED, None, None, "JOB_EXEC_FAIL1 (-1)")),
     ("-4", (BatchState.NODE_FAIL, None, None, "JOB_EXEC_INITABT (-4)")),
     ("-99", (BatchState.FAILED, None, None, "JOB_EXEC_UNKNOWN (-99)")),
     ("junk", (BatchState.COMPLETED, None, None, ""))],
)
def test_parse_exit_status(value: str, expected: tuple[BatchState, Optional[int], Optional[int], str]) -> None:
    assert parse_exit_status(value, TORQUE) == expected
    assert parse_exit_status(value, PBSPRO) == expected


@pytest.mark.parametrize(
    "value, torque, pbspro",
    [(-10, BatchState.FAILED, BatchState.FAILED),       # OVERLIMIT(_MEM) / FAILUID
     (-11, BatchState.TIMEOUT, BatchState.FAILED),      # OVERLIMIT_WT / RERUN
     (-12, BatchState.TIMEOUT, BatchState.FAILED),      # OVERLIMIT_CPUT / CHKP
     (-20, BatchState.FAILED, BatchState.NODE_FAIL),    # - / RERUN_MS_FAIL
     (-27, BatchState.FAILED, BatchState.OUT_OF_MEMORY),
     (-29, BatchState.FAILED, BatchState.TIMEOUT)],
)
def test_negative_exit_codes_differ_between_dialects(value: int, torque: BatchState, pbspro: BatchState) -> None:
    assert parse_exit_status(str(value), TORQUE)[0] is torque
    assert parse_exit_status(str(value), PBSPRO)[0] is pbspro


def test_exec_code_tables_are_negative_and_named() -> None:
    for table in (TORQUE_EXEC_CODES, PBSPRO_EXEC_CODES):
        assert all(code < 0 and name.startswith("JOB_EXEC_") for code, (name, _) in table.items())
        assert all(state.is_terminal for _, state in table.values())
    assert PBSPRO_EXEC_CODES[-29][0] == "JOB_EXEC_KILL_WALLTIME"
    assert TORQUE_EXEC_CODES[-11][0] == "JOB_EXEC_OVERLIMIT_WT"


@pytest.mark.parametrize(
    "value, expected",
    [("Sat Nov 21 06:32:51 2026", utc(2026, 11, 21, 6, 32, 51)),
     ("Fri Jul  1 14:42:57 2022", utc(2022, 7, 1, 14, 42, 57)),   # ctime pads the day with a space
     ("1592301624", 1592301624), ("0", None), ("", None), ("Someday", None),
     ("Sat Foo 21 06:32:51 2026", None), ("Sat Nov 21 06:32 2026", None)],
)
def test_parse_ctime(value: str, expected: Optional[int]) -> None:
    assert parse_ctime(value) == expected


@pytest.mark.parametrize(
    "stdout, expected",
    [("17\n", "17"), ("123.head.example.org\n", "123.head.example.org"), ("8101.pbs01", "8101.pbs01"),
     ("42[].pbs01\n", "42[].pbs01"), ("qsub: warning: something\n18.pbs01\n", "18.pbs01"),
     ("", None), ("Submitted batch job 17\n", None), ("17 extra\n", None)],
)
def test_parse_qsub_output(stdout: str, expected: Optional[str]) -> None:
    assert parse_qsub_output(stdout) == expected


def test_submit_error_detail_of_real_qsub() -> None:
    proc = subprocess.CompletedProcess(["qsub"], 168, "", TORQUE_BAD_QUEUE)
    assert submit_error_detail(proc) == "submit error (Unknown queue MSG=requested queue not found)"
    assert submit_error_detail(subprocess.CompletedProcess(["qsub"], 1, "", "")) == ""


@pytest.mark.parametrize(
    "a, b, same",
    [("12", "12", True), ("12", "12.pbs01", True), ("12.head", "12.head.example.org", True),
     ("12.head.example.org", "12.head.example.org", True), ("12.pbs01", "12.pbs02", False),
     ("12", "13", False), ("12", "123", False), ("12.head", "12.headnode", False)],
)
def test_same_job(a: str, b: str, same: bool) -> None:
    assert same_job(a, b) is same and same_job(b, a) is same


# --- adapters, with the commands answered by a fake -------------------------------------------

Answer = tuple[int, str, str]


class FakePbsRun:
    """FAKE command runner: replays recorded answers instead of running qsub/qstat/...

    The first key that starts the command line wins; an answer may be a list, consumed in
    order.  Every call is recorded with the environment and cwd it would have run with.
    """

    def __init__(self, batch: PbsBatchSystem, answers: Mapping[str, object]) -> None:
        self.batch = batch
        self.answers = {k: list(v) if isinstance(v, list) else v for k, v in answers.items()}
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self.cwds: list[Optional[Path]] = []
        batch._run = self  # type: ignore[method-assign]

    def __call__(
        self, argv: list[str], cwd: Optional[Path] = None, stdin: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        self.envs.append(dict(self.batch.env))
        self.cwds.append(cwd)
        line = " ".join(argv)
        for prefix, answer in self.answers.items():
            if line.startswith(prefix):
                if isinstance(answer, list):
                    answer = answer.pop(0)
                rc, out, err = answer  # type: ignore[misc]
                return subprocess.CompletedProcess(argv, rc, out, err)
        raise AssertionError(f"unexpected command {line}")


def torque(answers: Mapping[str, object], env: Optional[dict[str, str]] = None) -> tuple[PbsBatchSystem, FakePbsRun]:
    batch = PbsBatchSystem(env or {"PATH": "/usr/bin"}, timeout=5)
    return batch, FakePbsRun(batch, answers)


def pbspro(answers: Mapping[str, object]) -> tuple[PbsProBatchSystem, FakePbsRun]:
    batch = PbsProBatchSystem({"PATH": "/usr/bin"}, timeout=5)
    return batch, FakePbsRun(batch, answers)


def test_names() -> None:
    assert PbsBatchSystem.name == "pbs" and PbsProBatchSystem.name == "pbspro"
    assert PbsBatchSystem({}).accounting_available() is False


def test_bulk_status_is_one_qstat_in_utc() -> None:
    batch, run = torque({"qstat -f -1": (0, WRAPPER_QSTAT, "")},
                        env={"PATH": "/usr/bin", "TZ": "Europe/Paris", "PBS_QSTAT_NO_COMPLETE": "1"})
    assert len(batch.bulk_status()) == 7
    assert run.calls == [["qstat", "-f", "-1"]]
    assert run.envs[0] == {"PATH": "/usr/bin", "TZ": "UTC"}  # finished jobs not hidden, times in UTC
    assert batch.env["TZ"] == "Europe/Paris"  # other commands keep the caller's environment


def test_wrapper_without_jobs_answers_153_and_nothing() -> None:
    batch, _ = torque({"qstat": (153, "", "")})
    assert batch.bulk_status() == {}
    batch, _ = torque({"qstat": (153, "", TORQUE_UNKNOWN)})
    with pytest.raises(LrmsError):
        batch.bulk_status()


@pytest.mark.parametrize(
    "answer, transient",
    [((8, "", fixture("wrapper-qstat-unreachable.stderr.txt")), True),
     ((111, "", TORQUE_CANNOT_CONNECT), True),
     ((2, "", "Unknown option: x\nUsage:\n    qstat [-f] [-a|-i|-r] [-n [-1]]\n"), False)],
)
def test_bulk_status_failures(answer: Answer, transient: bool) -> None:
    batch, _ = torque({"qstat": answer})
    with pytest.raises(LrmsError) as info:
        batch.bulk_status()
    assert info.value.transient is transient and info.value.returncode == answer[0]
    assert info.value.command[:2] == ["qstat", "-f"]


def test_pbspro_asks_for_history() -> None:
    batch, run = pbspro({"qstat -f -x": (0, PBSPRO_QSTAT, "")})
    assert batch.bulk_status()["8101.pbs01"].exit_code == 0
    assert run.calls == [["qstat", "-f", "-x"]]


def test_pbspro_without_history_drops_x_once() -> None:
    batch, run = pbspro({"qstat -f -x": (0, "", PBSPRO_NO_HISTORY),
                         "qstat -f": (0, PBSPRO_QSTAT.split("\nJob Id: 8102")[0], "")})
    assert list(batch.bulk_status()) == ["8101.pbs01"]
    assert batch.job_status("8101.pbs01") is not None
    assert run.calls == [["qstat", "-f", "-x"], ["qstat", "-f"], ["qstat", "-f", "8101.pbs01"]]


def test_job_status_single_job() -> None:
    batch, run = torque({"qstat -f -1 4103": (0, record_text(TORQUE_QSTAT, "4103.head.example.org"), "")})
    status = batch.job_status("4103")  # asked by number, answered with the full id
    assert status is not None and status.job_id == "4103.head.example.org" and status.state is BatchState.TIMEOUT
    assert run.calls == [["qstat", "-f", "-1", "4103"]]


@pytest.mark.parametrize(
    "answer",
    [(153, "", ""),                      # the wrapper: nothing, rc 153
     (153, "", TORQUE_UNKNOWN),          # Torque
     (153, "", PBSPRO_UNKNOWN)],         # PBS Pro
)
def test_job_status_of_a_forgotten_job_is_none(answer: Answer) -> None:
    batch, run = torque({"qstat": answer})
    assert batch.job_status("4107") is None
    assert len(run.calls) == 1  # no accounting to ask


def test_pbspro_finished_without_history_details() -> None:
    batch, _ = pbspro({"qstat": (35, "", PBSPRO_FINISHED)})
    status = batch.job_status("8101.pbs01")
    assert status == BatchJobStatus("8101.pbs01", BatchState.COMPLETED, "F", reason="Job has finished")


def test_job_status_failures_raise() -> None:
    batch, _ = pbspro({"qstat": (15010 & 0xFF, "", PBSPRO_CANNOT_CONNECT)})
    with pytest.raises(LrmsError) as info:
        batch.job_status("8101.pbs01")
    assert info.value.transient
    batch, _ = torque({"qstat": (0, WRAPPER_QSTAT.split("Job Id:\t2")[0], "")})
    with pytest.raises(LrmsError):
        batch.job_status("5")  # rc 0 but not the job asked for


def test_find_by_name_is_one_command() -> None:
    batch, run = torque({"qstat -f -1": (0, WRAPPER_QSTAT, "")})
    assert batch.find_by_name("cap-held") == ["6"]
    assert batch.find_by_name("cap-nothing") == []
    assert len(run.calls) == 2


def test_submit_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    batch, run = torque({"qsub": (0, fixture("wrapper-qsub.txt"), "")}, env={"PATH": "/usr/bin", "TZ": "CET"})
    workdir = tmp_path / "work"
    assert batch.submit(Path("job.sh"), "hpcpull-1.0-ab12", workdir, Path("out/job.out")) == "1"
    assert run.calls == [["qsub", "-N", "hpcpull-1.0-ab12", "-j", "oe", "-o", f"{workdir}/out/job.out",
                          f"{tmp_path}/job.sh"]]
    assert run.cwds == [workdir] and run.envs[0]["TZ"] == "CET"


def test_submit_refused() -> None:
    batch, _ = torque({"qsub": (1, fixture("wrapper-qsub-badqueue.txt"), "")})
    with pytest.raises(LrmsError) as info:
        batch.submit(Path("/w/job.sh"), "x", Path("/w"), Path("/w/out"))
    err = info.value
    assert str(err) == "qsub failed (rc=1): Batch job submission failed: Invalid partition name specified"
    assert err.transient is False and err.returncode == 1 and "invalid partition" in err.stdout


def test_submit_unreachable_and_silent() -> None:
    unreachable = ("There was an error running the Slurm sbatch command.\n...\n'sbatch: error: Batch job "
                   "submission failed: Unable to contact slurm controller (connect failure)\n'\n")
    batch, _ = torque({"qsub": (1, unreachable, "")})
    with pytest.raises(LrmsError) as info:
        batch.submit(Path("/w/job.sh"), "x", Path("/w"), Path("/w/out"))
    assert info.value.transient
    batch, _ = torque({"qsub": (0, "", "")})
    with pytest.raises(LrmsError) as info:
        batch.submit(Path("/w/job.sh"), "x", Path("/w"), Path("/w/out"))
    assert info.value.transient  # accepted without an id: find_by_name decides


def test_cancel() -> None:
    batch, run = torque({"qdel": (0, "", "")})
    batch.cancel("4")
    assert run.calls == [["qdel", "4"]]
    # the wrapper: rc 1 and silence for a finished or unknown job; qstat confirms it is gone
    batch, run = torque({"qdel": (1, "", ""), "qstat": (153, "", "")})
    batch.cancel("999")
    assert [c[0] for c in run.calls] == ["qdel", "qstat"]
    batch, run = torque({"qdel": (1, "", ""), "qstat": (0, fixture("wrapper-qstat-f-job2.txt"), "")})
    batch.cancel("2")  # finished (C)
    # real servers say so: no qstat needed
    for message in ("qdel: Unknown Job Id Error 4107.head.example.org\n", "qdel: Job has finished 8101.pbs01\n"):
        batch, run = torque({"qdel": (1, "", message)})
        batch.cancel("4107")
        assert len(run.calls) == 1


def test_cancel_failures_raise() -> None:
    running = WRAPPER_QSTAT.split("\n\n")[3] + "\n"
    assert "cap-run\n" in running
    batch, _ = torque({"qdel": (1, "", "qdel: Unauthorized Request  4.head\n"), "qstat": (0, running, "")})
    with pytest.raises(LrmsError) as info:
        batch.cancel("4")  # still running
    assert not info.value.transient
    batch, run = torque({"qdel": (1, "qdel: Kill job error on job id 4: Unable to contact slurm controller "
                                     "(connect failure)\n", "")})
    with pytest.raises(LrmsError) as info:
        batch.cancel("4")
    assert info.value.transient and len(run.calls) == 1


@pytest.mark.parametrize(
    "stderr, transient",
    [(TORQUE_CANNOT_CONNECT, True), (PBSPRO_CANNOT_CONNECT, True),
     ("qsub: submit error (Time out)\n", True), ("qstat: Server busy. Not available threads 12.h\n", True),
     ("pbs_iff: cannot connect to host\n", True), ("qsub: Premature End of File\n", True),
     ("qdel: Server could not connect to MOM 12.h\n", True),
     (TORQUE_BAD_QUEUE, False), (TORQUE_UNKNOWN, False), ("qdel: Unauthorized Request  12.h\n", False),
     ("qsub: submit error (Job exceeds queue resource limits MSG=cannot satisfy queue max walltime "
      "requirement)\n", False),
     ("qsub: illegal -N value\n", False)],
)
def test_transient_or_refusal(stderr: str, transient: bool) -> None:
    proc = subprocess.CompletedProcess(["qsub"], 1, "", stderr)
    assert PbsBatchSystem({})._failure(proc).transient is transient


@pytest.mark.parametrize(
    "name", ["", "1abc", "-N", "a b", "x;rm", "a/b", "naïve", "a\nb", "abc\n", "a:b", "x" * (JOB_NAME_MAX + 1)]
)
def test_bad_job_names_are_refused_before_running_anything(name: str) -> None:
    batch, run = torque({})
    with pytest.raises(ValueError):
        batch.submit(Path("/w/job.sh"), name, Path("/w"), Path("/w/out"))
    with pytest.raises(ValueError):
        batch.find_by_name(name)
    assert run.calls == []


def test_longest_name_is_accepted() -> None:
    batch, run = torque({"qsub": (0, "5\n", "")})
    assert batch.submit(Path("/w/job.sh"), "h" * JOB_NAME_MAX, Path("/w"), Path("/w/out")) == "5"


@pytest.mark.parametrize("path", ["/w/a b.out", "/w/$(id)", "/w/out;rm", "/w/%j.out", "/w/host:out", "/w/é"])
def test_unsafe_paths_are_refused(path: str) -> None:
    batch, run = torque({})
    with pytest.raises(ValueError):
        batch.submit(Path("/w/job.sh"), "x", Path("/w"), Path(path))
    with pytest.raises(ValueError):
        batch.submit(Path(path), "x", Path("/w"), Path("/w/out"))
    assert run.calls == []


@pytest.mark.parametrize("job_id", ["", "abc", "1 2", "--help", "-1", "12\n", "12;rm", "12.", ".pbs01", "12[x]"])
def test_bad_job_ids_are_refused(job_id: str) -> None:
    batch, run = pbspro({})
    for call in (batch.cancel, batch.job_status):
        with pytest.raises(ValueError):
            call(job_id)
    assert run.calls == []
