"""Parsing of Slurm client output, captured from the real private Slurm 22.05 (SLURM_TIME_FORMAT=%s).

Also the adapter's decisions that follow from that output, with the commands faked.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from hpcpull.errors import ConfigError
from hpcpull.lrms import SlurmBatchSystem, get_batch_system
from hpcpull.lrms.base import BatchJobStatus, BatchState, LrmsError
from hpcpull.lrms.slurm import (
    SLURM_STATES,
    map_state,
    parse_exit_code,
    parse_sacct,
    parse_sbatch_output,
    parse_scontrol_fields,
    parse_scontrol_job,
    parse_squeue,
    parse_squeue_line,
    parse_time,
)

# squeue -a -h -t all -o '%i|%T|%r|%S|%e|%j', right after submitting: the first jobs wait
# for the first scheduling pass; 6 has --begin=now+60 (its %S is the *expected* start),
# 5 was submitted with sbatch -H.
SQUEUE_SUBMITTED = """\
1|PENDING|None|N/A|N/A|cap-j3
2|PENDING|Priority|N/A|N/A|cap-j0
3|PENDING|Priority|N/A|N/A|cap-jk
4|PENDING|Priority|N/A|N/A|cap-js
6|PENDING|BeginTime|1795240708|NONE|cap-begin
5|PENDING|JobHeldUser|N/A|N/A|cap-held
"""

# the same 4 s later: 1 exited 3, 2 exited 0, 3 killed itself with SIGKILL, 4 sleeps
SQUEUE_LATER = """\
2|COMPLETED|None|1795240649|1795240649|cap-j0
1|FAILED|NonZeroExitCode|1795240649|1795240650|cap-j3
3|FAILED|JobLaunchFailure|1795240649|1795240649|cap-jk
6|PENDING|BeginTime|1795240708|NONE|cap-begin
5|PENDING|JobHeldUser|N/A|N/A|cap-held
4|RUNNING|None|1795240649|NONE|cap-js
"""

# 8 runs with -t 10 (its %e is the expected end), 9 was cancelled while pending,
# 10 cancelled while running, 11 held by the cluster owner (an admin hold)
SQUEUE_MORE = """\
9|CANCELLED|BeginTime|1795240928|1795240928|cap-pendcancel
10|CANCELLED|None|1795240926|1795240928|cap-run-cancel
11|PENDING|JobHeldAdmin|1795240986|NONE|cap-held2
8|RUNNING|None|1795240926|1795241526|cap-limit
"""

# scontrol show job -o 1   (the script did "exit 3")
SCONTROL_EXIT_3 = " ".join([
    "JobId=1 JobName=cap-j3 UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759",
    "Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null)",
    "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 RunTime=00:00:01 TimeLimit=UNLIMITED",
    "TimeMin=N/A SubmitTime=1795240648 EligibleTime=1795240648 AccrueTime=1795240648",
    "StartTime=1795240649 EndTime=1795240650 Deadline=N/A SuspendTime=None SecsPreSuspend=0",
    "LastSchedEval=1795240649 Scheduler=Main Partition=debug AllocNode:Sid=localhost:3019",
    "ReqNodeList=(null) ExcNodeList=(null) NodeList=localhost BatchHost=localhost NumNodes=1",
    "NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 Socks/Node=*",
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0",
    "Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null)",
    "Network=(null) Command=/tmp/devslurm/j3.sh WorkDir=/tmp/devslurm StdErr=/dev/null",
    "StdIn=/dev/null StdOut=/dev/null Power= ",
]) + "\n"

# scontrol show job -o 3   (the script did "kill -9 $$")
SCONTROL_SIGKILL = " ".join([
    "JobId=3 JobName=cap-jk UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901757",
    "Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=JobLaunchFailure Dependency=(null)",
    "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:9 RunTime=00:00:00 TimeLimit=UNLIMITED",
    "TimeMin=N/A SubmitTime=1795240648 EligibleTime=1795240648 AccrueTime=1795240648",
    "StartTime=1795240649 EndTime=1795240649 Deadline=N/A SuspendTime=None SecsPreSuspend=0",
    "LastSchedEval=1795240649 Scheduler=Main Partition=debug AllocNode:Sid=localhost:3019",
    "ReqNodeList=(null) ExcNodeList=(null) NodeList=localhost BatchHost=localhost NumNodes=1",
    "NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 Socks/Node=*",
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0",
    "Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null)",
    "Network=(null) Command=/tmp/devslurm/jk.sh WorkDir=/tmp/devslurm StdErr=/dev/null",
    "StdIn=/dev/null StdOut=/dev/null Power= ",
]) + "\n"

# scontrol show job -o 8   (running, -t 10: EndTime is the expected end)
SCONTROL_RUNNING = " ".join([
    "JobId=8 JobName=cap-limit UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901750",
    "Nice=0 Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) Requeue=1",
    "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:23 TimeLimit=00:10:00 TimeMin=N/A",
    "SubmitTime=1795240926 EligibleTime=1795240926 AccrueTime=1795240926 StartTime=1795240926",
    "EndTime=1795241526 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=1795240926",
    "Scheduler=Main Partition=debug AllocNode:Sid=localhost:3019 ReqNodeList=(null)",
    "ExcNodeList=(null) NodeList=localhost BatchHost=localhost NumNodes=1 NumCPUs=1 NumTasks=1",
    "CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 Socks/Node=*",
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0",
    "Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null)",
    "Network=(null) Command=(null) WorkDir=/tmp/devslurm StdErr=/dev/null StdIn=/dev/null",
    "StdOut=/dev/null Power= ",
]) + "\n"

# scontrol show job -o 10   (scancel of a running job)
SCONTROL_CANCELLED = " ".join([
    "JobId=10 JobName=cap-run-cancel UserId=root(0) GroupId=root(0) MCS_label=N/A",
    "Priority=4294901748 Nice=0 Account=(null) QOS=(null) JobState=CANCELLED Reason=None",
    "Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:00:02",
    "TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=1795240926 EligibleTime=1795240926",
    "AccrueTime=1795240926 StartTime=1795240926 EndTime=1795240928 Deadline=N/A SuspendTime=None",
    "SecsPreSuspend=0 LastSchedEval=1795240926 Scheduler=Main Partition=debug",
    "AllocNode:Sid=localhost:3019 ReqNodeList=(null) ExcNodeList=(null) NodeList=localhost",
    "BatchHost=localhost NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*",
    "TRES=cpu=1,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1",
    "MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK",
    "Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp/devslurm",
    "StdErr=/dev/null StdIn=/dev/null StdOut=/dev/null Power= ",
]) + "\n"

# scontrol show job -o 11   (--begin=now+60, then scontrol hold: StartTime is the expected one)
SCONTROL_HELD = " ".join([
    "JobId=11 JobName=cap-held2 UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=0 Nice=0",
    "Account=(null) QOS=(null) JobState=PENDING Reason=JobHeldAdmin Dependency=(null) Requeue=1",
    "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED",
    "TimeMin=N/A SubmitTime=1795240926 EligibleTime=1795240986 AccrueTime=1795240986",
    "StartTime=1795240986 EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0",
    "LastSchedEval=1795240926 Scheduler=Main Partition=debug AllocNode:Sid=localhost:3019",
    "ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1",
    "ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=8000M,node=1,billing=1 Socks/Node=*",
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0",
    "Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null)",
    "Network=(null) Command=(null) WorkDir=/tmp/devslurm StdErr=/dev/null StdIn=/dev/null",
    "StdOut=/dev/null Power= ",
]) + "\n"

# sacct -c -X -n -P -o JobID,JobName,State,ExitCode,Start,End  (same client formatting as
# sacct with slurmdbd; sacct/dbd also writes "CANCELLED by <uid>")
SACCT = """\
3|cap-jk|FAILED|0:9|1795240649|1795240649
2|cap-j0|COMPLETED|0:0|1795240649|1795240649
1|cap-j3|FAILED|3:0|1795240649|1795240650
4|cap-js|CANCELLED|0:0|1795240649|1795240664
"""

# the real messages
SBATCH_BAD_PARTITION = (
    "sbatch: error: invalid partition specified: nope\n"
    "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
)
SQUEUE_DEAD_CONTROLLER = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
SBATCH_DEAD_CONTROLLER = (
    "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n"
)
SCANCEL_DEAD_CONTROLLER = (
    "scancel: error: Kill job error on job id 1: Unable to contact slurm controller (connect failure)\n"
)
SCONTROL_INVALID_ID = "slurm_load_jobs error: Invalid job id specified\n"
SACCT_DISABLED = "Slurm accounting storage is disabled\n"


# --- squeue -------------------------------------------------------------------------


def test_squeue_pending_jobs_have_no_times() -> None:
    jobs = parse_squeue(SQUEUE_SUBMITTED)
    assert list(jobs) == ["1", "2", "3", "4", "6", "5"]
    assert all(j.state is BatchState.PENDING and j.native_state == "PENDING" for j in jobs.values())
    begin = jobs["6"]
    assert begin.reason == "BeginTime" and begin.name == "cap-begin"
    assert begin.start_time is None and begin.end_time is None  # 1795240708 is only the expected start
    assert jobs["5"].reason == "JobHeldUser"
    assert jobs["1"].reason == ""  # "None"


def test_squeue_finished_and_running() -> None:
    jobs = parse_squeue(SQUEUE_LATER)
    assert jobs["2"] == BatchJobStatus("2", BatchState.COMPLETED, "COMPLETED", "", 1795240649, 1795240649,
                                       None, None, "cap-j0")
    assert jobs["1"] == BatchJobStatus("1", BatchState.FAILED, "FAILED", "NonZeroExitCode", 1795240649,
                                       1795240650, None, None, "cap-j3")
    assert jobs["3"].state is BatchState.FAILED and jobs["3"].reason == "JobLaunchFailure"
    running = jobs["4"]
    assert running.state is BatchState.RUNNING and running.start_time == 1795240649
    assert running.end_time is None  # "NONE"
    assert running.exit_code is None  # squeue -o has no exit code: job_status has it


def test_squeue_expected_end_of_running_job_is_dropped() -> None:
    jobs = parse_squeue(SQUEUE_MORE)
    assert jobs["8"].state is BatchState.RUNNING
    assert jobs["8"].start_time == 1795240926 and jobs["8"].end_time is None  # 1795241526 = start + 10 min
    assert jobs["9"].state is BatchState.CANCELLED and jobs["9"].reason == "BeginTime"
    assert (jobs["9"].start_time, jobs["9"].end_time) == (1795240928, 1795240928)
    assert jobs["10"].state is BatchState.CANCELLED and jobs["10"].end_time == 1795240928
    assert jobs["11"].state is BatchState.PENDING and jobs["11"].reason == "JobHeldAdmin"


def test_squeue_name_is_last_and_may_contain_the_delimiter() -> None:
    status = parse_squeue_line("12|RUNNING|None|1795240926|NONE|a|b c")
    assert status is not None and status.name == "a|b c" and status.job_id == "12"


@pytest.mark.parametrize("line", ["", "CLUSTER: private", "12|RUNNING", "|RUNNING|None|N/A|N/A|x"])
def test_squeue_lines_that_are_not_jobs_are_skipped(line: str) -> None:
    assert parse_squeue_line(line) is None
    assert parse_squeue(line + "\n1|PENDING|None|N/A|N/A|x\n").keys() == {"1"}


# --- scontrol -------------------------------------------------------------------------


def test_scontrol_fields() -> None:
    fields = parse_scontrol_fields(SCONTROL_EXIT_3)
    assert fields["JobId"] == "1" and fields["JobState"] == "FAILED" and fields["ExitCode"] == "3:0"
    assert fields["AllocNode:Sid"] == "localhost:3019" and fields["CPUs/Task"] == "1"
    assert fields["TRES"] == "cpu=1,node=1,billing=1" and fields["Power"] == ""
    assert parse_scontrol_fields(SCONTROL_HELD)["NodeList"] == ""
    # a value with spaces stays whole
    assert parse_scontrol_fields("JobId=5 Command=/a dir/job.sh WorkDir=/x")["Command"] == "/a dir/job.sh"


def test_scontrol_exit_code_3() -> None:
    status = parse_scontrol_job(SCONTROL_EXIT_3, "1")
    assert status == BatchJobStatus(
        job_id="1", state=BatchState.FAILED, native_state="FAILED", reason="NonZeroExitCode",
        start_time=1795240649, end_time=1795240650, exit_code=3, exit_signal=None, name="cap-j3",
    )


def test_scontrol_killed_by_signal_9() -> None:
    status = parse_scontrol_job(SCONTROL_SIGKILL, "3")
    assert status is not None
    assert status.state is BatchState.FAILED
    assert (status.exit_code, status.exit_signal) == (None, 9)


def test_scontrol_cancelled_running_job_has_signal_15() -> None:
    status = parse_scontrol_job(SCONTROL_CANCELLED, "10")
    assert status is not None and status.state is BatchState.CANCELLED
    assert (status.exit_code, status.exit_signal) == (None, 15)
    assert (status.start_time, status.end_time) == (1795240926, 1795240928)


def test_scontrol_running_job_has_no_end_and_no_exit_code() -> None:
    status = parse_scontrol_job(SCONTROL_RUNNING, "8")
    assert status is not None and status.state is BatchState.RUNNING
    assert status.start_time == 1795240926 and status.end_time is None
    assert status.exit_code is None and status.exit_signal is None


def test_scontrol_held_pending_job() -> None:
    status = parse_scontrol_job(SCONTROL_HELD, "11")
    assert status is not None and status.state is BatchState.PENDING and status.reason == "JobHeldAdmin"
    assert status.start_time is None and status.end_time is None  # expected start only


def test_scontrol_picks_the_asked_job_and_rejects_garbage() -> None:
    both = SCONTROL_EXIT_3 + "\n" + SCONTROL_SIGKILL
    status = parse_scontrol_job(both, "3")
    assert status is not None and status.job_id == "3"
    assert parse_scontrol_job("", "3") is None
    assert parse_scontrol_job("No jobs in the system\n", "3") is None


# --- sacct, sbatch, small fields --------------------------------------------------------


def test_sacct_rows() -> None:
    rows = {r.job_id: r for r in parse_sacct(SACCT)}
    assert rows["1"] == BatchJobStatus("1", BatchState.FAILED, "FAILED", "", 1795240649, 1795240650, 3, None,
                                       "cap-j3")
    assert (rows["3"].exit_code, rows["3"].exit_signal) == (None, 9)
    assert rows["4"].state is BatchState.CANCELLED and rows["4"].exit_code == 0


def test_sacct_cancelled_by_uid_and_name_with_delimiter() -> None:
    (row,) = parse_sacct("17|x|y|CANCELLED by 1000|0:15|1795240649|1795240664\n")
    assert row.job_id == "17" and row.name == "x|y"
    assert row.state is BatchState.CANCELLED and row.native_state == "CANCELLED by 1000"
    (pending,) = parse_sacct("18|p|PENDING|0:0|Unknown|Unknown\n")
    assert pending.state is BatchState.PENDING and pending.start_time is None and pending.exit_code is None


@pytest.mark.parametrize(
    "stdout, expected",
    [("12\n", "12"), ("12;private\n", "12"), ("", None), ("Submitted batch job 12\n", None)],
)
def test_sbatch_parsable_output(stdout: str, expected: Optional[str]) -> None:
    assert parse_sbatch_output(stdout) == expected


@pytest.mark.parametrize(
    "value, expected",
    [("1795240649", 1795240649), ("N/A", None), ("Unknown", None), ("NONE", None), ("None", None),
     ("0", None), ("", None), ("2026-11-21T05:57:29", None)],
)
def test_parse_time(value: str, expected: Optional[int]) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [("3:0", (3, None)), ("0:0", (0, None)), ("0:9", (None, 9)), ("0:15", (None, 15)), ("1:9", (1, 9)),
     ("7", (7, None)), ("junk", (None, None))],
)
def test_parse_exit_code(value: str, expected: tuple[Optional[int], Optional[int]]) -> None:
    assert parse_exit_code(value) == expected


# --- states -------------------------------------------------------------------------------

STATE_TABLE = {
    "PENDING": BatchState.PENDING, "CONFIGURING": BatchState.PENDING, "REQUEUED": BatchState.PENDING,
    "REQUEUE_HOLD": BatchState.PENDING, "REQUEUE_FED": BatchState.PENDING,
    "RESV_DEL_HOLD": BatchState.PENDING,
    "RUNNING": BatchState.RUNNING, "COMPLETING": BatchState.RUNNING, "STAGE_OUT": BatchState.RUNNING,
    "RESIZING": BatchState.RUNNING, "SIGNALING": BatchState.RUNNING,
    "SUSPENDED": BatchState.SUSPENDED, "STOPPED": BatchState.SUSPENDED,
    "COMPLETED": BatchState.COMPLETED, "FAILED": BatchState.FAILED, "CANCELLED": BatchState.CANCELLED,
    "TIMEOUT": BatchState.TIMEOUT, "NODE_FAIL": BatchState.NODE_FAIL,
    "OUT_OF_MEMORY": BatchState.OUT_OF_MEMORY, "PREEMPTED": BatchState.PREEMPTED,
    "BOOT_FAIL": BatchState.BOOT_FAIL, "DEADLINE": BatchState.DEADLINE,
    "SPECIAL_EXIT": BatchState.FAILED, "REVOKED": BatchState.CANCELLED,
}


def test_state_table_is_complete() -> None:
    assert SLURM_STATES == STATE_TABLE


@pytest.mark.parametrize("native, expected", sorted(STATE_TABLE.items()))
def test_map_state(native: str, expected: BatchState) -> None:
    assert map_state(native) is expected


@pytest.mark.parametrize(
    "native, expected",
    [("CANCELLED by 0", BatchState.CANCELLED), ("CANCELLED+", BatchState.CANCELLED),
     ("running", BatchState.RUNNING), ("CD", BatchState.UNKNOWN), ("WEIRD", BatchState.UNKNOWN),
     ("", BatchState.UNKNOWN)],
)
def test_map_state_odd_strings(native: str, expected: BatchState) -> None:
    assert map_state(native) is expected


def test_active_and_terminal() -> None:
    active = {s for s in BatchState if s.is_active}
    terminal = {s for s in BatchState if s.is_terminal}
    assert active == {BatchState.PENDING, BatchState.RUNNING, BatchState.SUSPENDED}
    assert terminal == set(BatchState) - active - {BatchState.UNKNOWN}


# --- status (de)serialisation ---------------------------------------------------------------


def test_status_round_trip_through_json() -> None:
    status = parse_scontrol_job(SCONTROL_SIGKILL, "3")
    assert status is not None
    data = json.loads(json.dumps(status.to_dict()))
    assert data["state"] == "FAILED"
    assert BatchJobStatus.from_dict(data) == status
    for s in parse_squeue(SQUEUE_SUBMITTED + SQUEUE_MORE).values():
        assert BatchJobStatus.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_from_dict_tolerates_new_states_and_keys() -> None:
    status = BatchJobStatus.from_dict({"job_id": "5", "state": "LIMBO", "native_state": "X", "extra": 1})
    assert status == BatchJobStatus("5", BatchState.UNKNOWN, "X")


@pytest.mark.parametrize(
    "data", [{}, {"job_id": "5"}, {"job_id": 5, "state": "RUNNING"}, [],
             {"job_id": "5", "state": "RUNNING", "start_time": "soon"},
             {"job_id": "5", "state": "RUNNING", "exit_code": True}],
)
def test_from_dict_rejects_damaged_data(data: object) -> None:
    with pytest.raises(ValueError):
        BatchJobStatus.from_dict(data)  # type: ignore[arg-type]


# --- errors ----------------------------------------------------------------------------------


def _completed(
    argv: list[str], rc: int, stdout: str = "", stderr: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(argv, rc, stdout, stderr)


def test_lrms_error_is_one_line_and_keeps_the_output() -> None:
    argv = ["sbatch", "--parsable", "--job-name=x", "--chdir=/w", "/w/job.sh"]
    err = SlurmBatchSystem({})._failure(_completed(argv, 1, "", SBATCH_BAD_PARTITION))
    assert str(err) == "sbatch failed (rc=1): Batch job submission failed: Invalid partition name specified"
    assert err.command == argv and err.stderr == SBATCH_BAD_PARTITION and err.stdout == ""
    assert err.returncode == 1 and err.transient is False
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.command, copy.stderr, copy.returncode, copy.transient) == (
        str(err), err.command, err.stderr, err.returncode, err.transient)


def test_lrms_error_message_never_spans_lines() -> None:
    err = LrmsError("a\nb\n  c", command=["x"])
    assert str(err) == "a b c"
    bare = LrmsError.from_completed(_completed(["/usr/bin/squeue"], 2), transient=True)
    assert str(bare) == "squeue failed (rc=2)" and bare.transient


@pytest.mark.parametrize(
    "argv, stderr, transient",
    [(["squeue"], SQUEUE_DEAD_CONTROLLER, True), (["sbatch"], SBATCH_DEAD_CONTROLLER, True),
     (["scancel"], SCANCEL_DEAD_CONTROLLER, True),
     (["sbatch"], "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n",
      True),
     (["sbatch"], "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying\n", True),
     (["sbatch"], "sbatch: error: Batch job submission failed: Zero Bytes were transmitted or received\n",
      True),
     (["sbatch"], SBATCH_BAD_PARTITION, False),
     (["sbatch"], "sbatch: error: Batch job submission failed: Invalid account or account/partition "
                  "combination specified\n", False),
     (["scontrol"], "Job has already finished for job 2\nslurm_suspend error: Job has already finished\n",
      False)],
)
def test_transient_or_refusal(argv: list[str], stderr: str, transient: bool) -> None:
    err = SlurmBatchSystem({})._failure(_completed(argv, 1, "", stderr))
    assert err.transient is transient


def test_run_timeout_and_missing_command_are_transient() -> None:
    batch = SlurmBatchSystem({}, timeout=0.3)
    with pytest.raises(LrmsError) as info:
        batch._run([sys.executable, "-c", "import time; time.sleep(10)"])
    assert info.value.transient and info.value.returncode is None
    assert str(info.value) == f"{Path(sys.executable).name} timed out after 0.3 s"
    with pytest.raises(LrmsError) as info:
        batch._run(["/nonexistent/squeue"])
    assert info.value.transient and str(info.value).startswith("squeue could not be run: ")


# --- factory and argument checks --------------------------------------------------------------


def test_get_batch_system() -> None:
    batch = get_batch_system("Slurm", {"SLURM_CONF": "/x/slurm.conf"}, timeout=7)
    assert isinstance(batch, SlurmBatchSystem) and batch.name == "slurm" and batch.timeout == 7
    assert batch.env == {"SLURM_CONF": "/x/slurm.conf", "SLURM_TIME_FORMAT": "%s"}
    with pytest.raises(ConfigError, match=r"unknown batch system 'condor' \(supported: lsf, pbs, pbspro, sge, slurm\)"):
        get_batch_system("condor", {})


class FakeSlurm(SlurmBatchSystem):
    """Answers commands from a table: the first key that starts the command line wins."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        super().__init__({}, timeout=5)
        self.answers = answers
        self.calls: list[list[str]] = []

    def _run(
        self, argv: list[str], cwd: Optional[Path] = None, stdin: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        line = " ".join(argv)
        for prefix, (rc, out, err) in self.answers.items():
            if line.startswith(prefix):
                return _completed(argv, rc, out, err)
        raise AssertionError(f"unexpected command {line}")


@pytest.mark.parametrize("name", ["", "a b", "x;rm", "naïve", "a/b", "a\nb", "abc\n"])
def test_bad_job_names_are_refused_before_running_anything(name: str) -> None:
    batch = FakeSlurm({})
    with pytest.raises(ValueError):
        batch.submit(Path("/w/job.sh"), name, Path("/w"), Path("/w/out"))
    with pytest.raises(ValueError):
        batch.find_by_name(name)
    assert batch.calls == []


@pytest.mark.parametrize("job_id", ["", "-1", "1 2", "abc", "--help", "12\n"])
def test_bad_job_ids_are_refused(job_id: str) -> None:
    batch = FakeSlurm({})
    for call in (batch.cancel, batch.job_status):
        with pytest.raises(ValueError):
            call(job_id)
    assert batch.calls == []


def test_submit_command_and_id() -> None:
    batch = FakeSlurm({"sbatch": (0, "12;private\n", "")})
    assert batch.submit(Path("/w/job.sh"), "hpcpull-1.0-ab12", Path("/w"), Path("/w/out")) == "12"
    assert batch.calls == [
        ["sbatch", "--parsable", "--job-name=hpcpull-1.0-ab12", "--chdir=/w", "--output=/w/out", "/w/job.sh"]
    ]
    silent = FakeSlurm({"sbatch": (0, "", "")})
    with pytest.raises(LrmsError) as info:
        silent.submit(Path("/w/job.sh"), "x", Path("/w"), Path("/w/out"))
    assert info.value.transient  # the job may exist: find_by_name decides


def test_cancel_of_finished_or_unknown_job_is_fine() -> None:
    FakeSlurm({"scancel": (1, "", "scancel: error: Kill job error on job id 5: Invalid job id specified\n")}
              ).cancel("5")
    FakeSlurm({"scancel": (1, "", "scancel: error: Kill job error on job id 5: Job/step already completing "
                                  "or completed\n")}).cancel("5")
    denied = "scancel: error: Kill job error on job id 5: Access/permission denied\n"
    with pytest.raises(LrmsError) as info:
        FakeSlurm({"scancel": (1, "", denied)}).cancel("5")
    assert not info.value.transient


def test_job_status_without_accounting_is_none_for_a_forgotten_job() -> None:
    batch = FakeSlurm({"scontrol show job": (1, "", SCONTROL_INVALID_ID), "sacct": (1, "", SACCT_DISABLED)})
    assert batch.job_status("99999999") is None
    assert batch.job_status("99999998") is None
    assert [c[0] for c in batch.calls] == ["scontrol", "sacct", "scontrol"]  # probe cached


def test_job_status_falls_back_to_accounting() -> None:
    batch = FakeSlurm({
        "scontrol show job": (1, "", SCONTROL_INVALID_ID),
        "sacct -n -X -j 1 -o JobID": (0, "", ""),
        "sacct -a -X -n -P -j 1 ": (0, "1|cap-j3|FAILED|3:0|1795240649|1795240650\n", ""),
        "sacct -a -X -n -P -j 7 ": (0, "", ""),
    })
    status = batch.job_status("1")
    assert status is not None and status.state is BatchState.FAILED and status.exit_code == 3
    assert batch.job_status("7") is None


def test_job_status_errors_other_than_unknown_id_raise() -> None:
    batch = FakeSlurm({"scontrol show job": (1, "", SQUEUE_DEAD_CONTROLLER)})
    with pytest.raises(LrmsError) as info:
        batch.job_status("1")
    assert info.value.transient


def test_accounting_probe() -> None:
    assert FakeSlurm({"sacct": (1, "", SACCT_DISABLED)}).accounting_available() is False
    assert FakeSlurm({"sacct": (1, SACCT_DISABLED, "")}).accounting_available() is False
    assert FakeSlurm({"sacct": (0, "", "")}).accounting_available() is True
    refused = "sacct: error: Problem talking to the database: Connection refused\n"
    down = FakeSlurm({"sacct": (1, "", refused)})
    with pytest.raises(LrmsError):
        down.accounting_available()  # cannot tell: not cached, asked again next time
    with pytest.raises(LrmsError):
        down.accounting_available()
    assert len(down.calls) == 2


def test_find_by_name_merges_squeue_and_accounting() -> None:
    batch = FakeSlurm({
        "squeue": (0, "12\n", ""),
        "sacct -n -X -j 1 -o JobID": (0, "", ""),
        "sacct -a -X -n -P --name=n": (0, "11\n12\n", ""),
    })
    assert batch.find_by_name("n") == ["12", "11"]
    assert FakeSlurm({"squeue": (0, "", ""), "sacct": (1, "", SACCT_DISABLED)}).find_by_name("n") == []
