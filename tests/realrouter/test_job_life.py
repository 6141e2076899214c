"""A job's life on Slurm through the real condor_job_router, seen as its submitter sees it.

Every job of this module is submitted at once by the module fixture, through condor_submit
as the ordinary user; what happens to it is read back through condor_q, condor_history and
its user log, and on the Slurm side through squeue/sacct.  Scenarios that need someone to
act on a running job (condor_rm, condor_hold, scancel, scontrol requeue, scontrol hold) are
driven by one thread each, started by the fixture, so that all of them progress together;
each test waits for its own driver and asserts on its own job.
"""

from __future__ import annotations

import re
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from tests.plugins.condor import POLL, GatewayPool

# A partition created for this module, DOWN: a job sent there is queued but never started
# (slurm.conf(5), PartitionName "State=DOWN"), so a test can act on it while it waits.
PARKED_PARTITION = "parked"

# hpcpull's statuses as condor_q shows them.
IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5

PAYLOAD = """\
#!/bin/sh
# Every argument on its own line, then the environment, then the input sandbox.
for word in "$@"; do printf 'arg[%s]\\n' "$word"; done
printf 'A[%s] B[%s]\\n' "$A" "$B"
cat in.txt indir/a.txt indir/deep/c.txt b.txt
if [ -e indir2 ]; then echo "indir2 was staged as a directory"; fi
mkdir -p outdir/sub
echo out-a > outdir/a.txt
echo out-b > outdir/sub/b.txt
echo result > result.txt
echo "this goes to stderr" >&2
exit 0
"""


@dataclass
class Job:
    name: str
    directory: Path
    cluster: int = 0
    driver: Optional[Future] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.cluster}.0"


@dataclass
class Life:
    gw: GatewayPool
    jobs: dict[str, Job]

    def __getitem__(self, name: str) -> Job:
        return self.jobs[name]

    def driven(self, name: str, timeout: float = 240) -> tuple[Job, dict[str, Any]]:
        """The job and what its driver saw (re-raises the driver's failure)."""
        job = self.jobs[name]
        assert job.driver is not None
        return job, job.driver.result(timeout=timeout)


# --------------------------------------------------------------------------- helpers


def slurm(gw: GatewayPool, *args: str) -> str:
    """A Slurm command as the cluster's admin (root, with the cluster's SLURM_CONF)."""
    out = subprocess.run(list(args), env=gw.lrms_env, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def events(log_text: str) -> list[tuple[str, str]]:
    """The user log as (event number, event text), in order; events end with a "..." line."""
    found = []
    for chunk in re.split(r"^\.\.\.$", log_text, flags=re.M):
        chunk = chunk.strip("\n")
        if chunk:
            found.append((chunk[:3], chunk))
    return found


def codes(log_text: str) -> list[str]:
    return [code for code, _ in events(log_text)]


def status(gw: GatewayPool, job: Job) -> Optional[dict]:
    """The job's queue ad (a few attributes), None once it has left the queue."""
    found = gw.pool.q(f"ClusterId == {job.cluster} && ProcId == 0",
                      ["JobStatus", "HoldReason", "HoldReasonCode", "HoldReasonSubCode", "HpcPullUndoneRoutes"])
    return found[0] if found else None


def wait_status(gw: GatewayPool, job: Job, wanted: int, timeout: float) -> dict:
    return gw.wait_for(lambda: (s := status(gw, job)) and s.get("JobStatus") == wanted and s,
                       timeout, f"job {job.id} ({job.name}) to reach JobStatus {wanted}", step=1)


def batch_ids(gw: GatewayPool, job: Job) -> list[str]:
    """The job's batch jobs, oldest first (Slurm numbers jobs in submission order)."""
    return sorted(gw.batch_jobs(job.cluster), key=int)


def wait_batch(gw: GatewayPool, job: Job, state: str, count: int = 1, timeout: float = 90) -> str:
    """Wait until the job's ``count``-th batch job is in ``state``; returns its id."""
    def seen():
        ids = batch_ids(gw, job)
        return ids[count - 1] if len(ids) >= count and gw.batch_state(ids[count - 1]) == state else None
    return gw.wait_for(seen, timeout, f"batch job #{count} of {job.id} ({job.name}) to be {state}", step=1)


def running_on_both_sides(gw: GatewayPool, job: Job, count: int = 1) -> str:
    """Wait until the batch job runs and hpcpull has shown the source job running."""
    batch_id = wait_batch(gw, job, "RUNNING", count)
    wait_status(gw, job, RUNNING, 60)
    return batch_id


# --------------------------------------------------------------------------- drivers


def drive_rm(gw: GatewayPool, job: Job) -> dict:
    batch_id = running_on_both_sides(gw, job)
    gw.pool.tool(["condor_rm", job.id], user=gw.pool.user)
    cancelled = gw.wait_for(lambda: gw.batch_state(batch_id) == "CANCELLED", 60,
                            f"batch job {batch_id} of {job.id} to be cancelled after condor_rm")
    return {"batch_id": batch_id, "cancelled": cancelled, "record": gw.finished(job.cluster, 60)}


def drive_hold_release(gw: GatewayPool, job: Job) -> dict:
    first = running_on_both_sides(gw, job)
    gw.pool.tool(["condor_hold", job.id], user=gw.pool.user)
    gw.wait_for(lambda: gw.batch_state(first) == "CANCELLED", 60,
                f"batch job {first} of {job.id} to be cancelled after condor_hold")
    gw.wait_for(lambda: gw.copy_of(job.cluster) is None, 60, f"the routed copy of {job.id} to leave")
    # Two more router polls: a held job is never routed again by itself.
    time.sleep(2 * POLL + 1)
    held = status(gw, job)
    batch_while_held = batch_ids(gw, job)
    gw.pool.tool(["condor_release", job.id], user=gw.pool.user)
    second = wait_batch(gw, job, "COMPLETED", count=2, timeout=90)
    record = gw.finished(job.cluster, 90)
    return {"first": first, "second": second, "held": held, "batch_while_held": batch_while_held,
            "record": record}


def drive_scancel(gw: GatewayPool, job: Job) -> dict:
    batch_id = running_on_both_sides(gw, job)
    slurm(gw, "scancel", batch_id)
    held = wait_status(gw, job, HELD, 60)
    return {"batch_id": batch_id, "held": held, "batch_state": gw.batch_state(batch_id)}


def drive_slurm_requeue(gw: GatewayPool, job: Job) -> dict:
    batch_id = running_on_both_sides(gw, job)
    slurm(gw, "scontrol", "requeue", batch_id)
    # A requeued batch job waits for its begin time, cred_expire (default 120 s) later
    # (slurm.conf(5), AuthInfo cred_expire): long enough for hpcpull to see it pending.
    idle = wait_status(gw, job, IDLE, 60)
    pending = gw.batch_state(batch_id)
    slurm(gw, "scontrol", "update", f"JobId={batch_id}", "StartTime=now")
    record = gw.finished(job.cluster, 90)
    return {"batch_id": batch_id, "idle": idle, "pending": pending, "record": record}


def drive_requeue_on(gw: GatewayPool, job: Job) -> dict:
    first = running_on_both_sides(gw, job)
    slurm(gw, "scancel", first)
    record = gw.finished(job.cluster, 120)
    return {"first": first, "first_state": gw.batch_state(first), "record": record}


def drive_idle_undo(gw: GatewayPool, job: Job) -> dict:
    # On a free node Slurm starts a batch job about a second after sbatch (it schedules
    # batch jobs at submit time: slurm.conf(5), SchedulerParameters batch_sched_delay), too
    # soon to hold it; in the DOWN partition it waits until the admin hold is on.
    batch_id = wait_batch(gw, job, "PENDING", timeout=90)
    slurm(gw, "scontrol", "hold", batch_id)
    # From here on only the admin hold keeps the batch job waiting.
    slurm(gw, "scontrol", "update", f"PartitionName={PARKED_PARTITION}", "State=UP")
    reason = slurm(gw, "squeue", "-h", "-j", batch_id, "-o", "%T %r").strip()
    cancelled = gw.wait_for(lambda: gw.batch_state(batch_id) == "CANCELLED", 60,
                            f"batch job {batch_id} to be cancelled")
    # Given back: idle again, or held by mistake (then the test says so at once).
    given_back = gw.wait_for(
        lambda: (s := status(gw, job)) and (s.get("JobStatus") == HELD or (
            s.get("JobStatus") == IDLE and s.get("HpcPullUndoneRoutes") and gw.copy_of(job.cluster) is None)) and s,
        60, f"job {job.id} to be given back by route Limited")
    time.sleep(2 * POLL + 1)  # two more router polls: Limited does not take it again
    return {"batch_id": batch_id, "reason_while_held": reason, "given_back": given_back,
            "cancelled": cancelled, "later": status(gw, job), "batch_later": batch_ids(gw, job)}


# --------------------------------------------------------------------------- the jobs


HPC = "+WantHpc = true\n"
STREAMS = "output = job.out\nerror = job.err\nlog = job.log\n"


def shell(command: str, extra: str = "", hpc: bool = True) -> str:
    return (f"executable = /bin/sh\narguments = \"-c '{command}'\"\n{STREAMS}"
            + (HPC if hpc else "") + extra + "queue\n")


def submit_all(gw: GatewayPool) -> dict[str, Job]:
    jobs: dict[str, Job] = {}

    def add(name: str, submit: Callable[[Path], str], setup: Callable[[Path], None] = lambda d: None) -> None:
        job = Job(name, gw.job_dir(f"life-{name}"))
        setup(job.directory)
        job.extra["submit"] = submit(job.directory)
        jobs[name] = job

    def sandbox(d: Path) -> None:
        write = gw.pool.write_user_file
        write(d / "payload.sh", PAYLOAD, mode=0o755)
        write(d / "in.txt", "in\n")
        write(d / "indir" / "a.txt", "indir-a\n")
        write(d / "indir" / "deep" / "c.txt", "indir-deep-c\n")
        write(d / "indir2" / "b.txt", "indir2-b\n")
        write(d / "results" / ".keep", "")  # the remap's target directory exists beforehand

    add("normal", lambda d: """\
executable = payload.sh
arguments = "'one two' three 'it''s here'"
environment = "A=1 B='x y'"
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
transfer_input_files = in.txt, indir, indir2/
transfer_output_files = outdir, result.txt
transfer_output_remaps = "result.txt = results/result.txt"
""" + STREAMS + HPC + "queue\n", sandbox)
    add("exit", lambda d: shell("echo failing; exit 42"))
    add("kill9", lambda d: shell("kill -9 $$"))
    add("term", lambda d: shell("kill -TERM $$"))
    add("rm", lambda d: shell("sleep 300"))
    add("hold", lambda d: shell(f"if [ -e {d}/ran-once ]; then echo second run; exit 0; fi; "
                                f": > {d}/ran-once; sleep 300"))
    # slurm_time (hpcpull/lrms/slurm.py) rounds a walltime up to whole minutes: --time=1.
    # slurmctld checks time limits in its periodic background pass (src/slurmctld/controller.c,
    # _slurmctld_background), so the batch job ends 60-90 s after it started.
    add("walltime", lambda d: shell("sleep 300", "+BatchRuntime = 5\n"))
    add("scancel", lambda d: shell("sleep 300"))
    # Slurm sets SLURM_RESTART_COUNT in a batch job it runs again after a requeue.
    add("requeue", lambda d: shell("echo restart count ${SLURM_RESTART_COUNT:-0}; "
                                   "test ${SLURM_RESTART_COUNT:-0} -gt 0 && exit 0; sleep 300"))
    add("requeue_on", lambda d: shell("if [ -e first-run ]; then echo second run; exit 0; fi; "
                                      ": > first-run; sleep 300", '+HpcPullTestRoute = "Requeue"\n'))
    add("idle", lambda d: shell("echo ran", f'+HpcPullTestRoute = "Limited"\n+BatchQueue = "{PARKED_PARTITION}"\n'))
    add("too_big", lambda d: shell("echo ran", '+HpcPullTestRoute = "Limited"\nrequest_cpus = 4\n'))
    add("local", lambda d: shell("echo local run; exit 5", hpc=False))

    for job in jobs.values():
        job.cluster = gw.submit(job.directory, job.extra["submit"])
    return jobs


DRIVERS: dict[str, Callable[[GatewayPool, Job], dict]] = {
    "rm": drive_rm,
    "hold": drive_hold_release,
    "scancel": drive_scancel,
    "requeue": drive_slurm_requeue,
    "requeue_on": drive_requeue_on,
    "idle": drive_idle_undo,
}


@pytest.fixture(scope="module")
def life(gateway_pool: GatewayPool) -> Iterator[Life]:
    gw = gateway_pool
    slurm(gw, "scontrol", "create", f"PartitionName={PARKED_PARTITION}", "Nodes=ALL", "State=DOWN")
    pool = ThreadPoolExecutor(max_workers=len(DRIVERS), thread_name_prefix="job-life")
    jobs: dict[str, Job] = {}
    try:
        jobs = submit_all(gw)
        for name, drive in DRIVERS.items():
            jobs[name].driver = pool.submit(drive, gw, jobs[name])
        yield Life(gw, jobs)
    finally:
        pool.shutdown(wait=True)
        clusters = " || ".join(f"ClusterId == {job.cluster}" for job in jobs.values() if job.cluster)
        if clusters:
            gw.pool.tool(["condor_rm", "-constraint", clusters], check=False)
            gw.pool.wait_until_gone(clusters, 60)
        subprocess.run(["scontrol", "delete", f"PartitionName={PARKED_PARTITION}"], env=gw.lrms_env,
                       capture_output=True, timeout=30)


# --------------------------------------------------------------------------- normal ends


def test_normal_end_brings_back_sandbox_streams_and_exit_code(life: Life):
    gw, job = life.gw, life["normal"]
    record = gw.finished(job.cluster)
    d = job.directory
    assert record["JobStatus"] == COMPLETED
    assert record["ExitCode"] == 0 and record["ExitBySignal"] is False
    # Arguments (new syntax: '' is a quote inside a quoted word), Environment, and the input
    # sandbox: "indir" arrives as a directory, "indir2/" as its contents.
    assert (d / "job.out").read_text() == (
        "arg[one two]\narg[three]\narg[it's here]\n"
        "A[1] B[x y]\n"
        "in\nindir-a\nindir-deep-c\nindir2-b\n"
    )
    assert (d / "job.err").read_text() == "this goes to stderr\n"
    # transfer_output_files with a directory, and a remap into a subdirectory.
    assert (d / "outdir" / "a.txt").read_text() == "out-a\n"
    assert (d / "outdir" / "sub" / "b.txt").read_text() == "out-b\n"
    assert (d / "results" / "result.txt").read_text() == "result\n"
    assert not (d / "result.txt").exists()
    assert len(batch_ids(gw, job)) == 1
    log = gw.user_log(d)
    assert codes(log) == ["000", "001", "005"], log
    assert "Normal termination (return value 0)" in events(log)[-1][1]


def test_exit_code_is_reported(life: Life):
    gw, job = life.gw, life["exit"]
    record = gw.finished(job.cluster)
    assert record["JobStatus"] == COMPLETED
    assert record["ExitCode"] == 42 and record["ExitBySignal"] is False
    assert (job.directory / "job.out").read_text() == "failing\n"
    log = gw.user_log(job.directory)
    assert codes(log) == ["000", "001", "005"], log
    assert "Normal termination (return value 42)" in events(log)[-1][1]


@pytest.mark.parametrize("name, signal", [("kill9", 9), ("term", 15)])
def test_payload_killed_by_a_signal(life: Life, name: str, signal: int):
    gw, job = life.gw, life[name]
    record = gw.finished(job.cluster)
    assert record["JobStatus"] == COMPLETED  # the payload's own death is an end, not a batch failure
    assert record["ExitBySignal"] is True and record["ExitSignal"] == signal
    log = gw.user_log(job.directory)
    assert codes(log) == ["000", "001", "005"], log
    assert f"Abnormal termination (signal {signal})" in events(log)[-1][1]


# --------------------------------------------------------------------------- the user acts


def test_condor_rm_of_a_running_job_cancels_its_batch_job(life: Life):
    job, seen = life.driven("rm")
    assert seen["cancelled"]
    assert seen["record"]["JobStatus"] == REMOVED
    assert batch_ids(life.gw, job) == [seen["batch_id"]]
    assert "009" in codes(life.gw.user_log(job.directory))  # aborted


def test_condor_hold_cancels_and_release_runs_again(life: Life):
    gw = life.gw
    job, seen = life.driven("hold")
    # Held by its user: the batch job was cancelled, and nothing ran while it was held.
    assert seen["held"]["JobStatus"] == HELD
    assert seen["held"]["HoldReasonCode"] == 1  # UserRequest (condor_holdcodes.h): still the user's own hold
    assert seen["batch_while_held"] == [seen["first"]]
    assert gw.batch_state(seen["first"]) == "CANCELLED"
    # Released: routed again, a second batch job, completed once.
    assert batch_ids(gw, job) == [seen["first"], seen["second"]]
    record = seen["record"]
    assert record["JobStatus"] == COMPLETED and record["ExitCode"] == 0
    assert (job.directory / "job.out").read_text() == "second run\n"
    log = codes(gw.user_log(job.directory))
    assert log.count("005") == 1 and log[-1] == "005", log
    assert "013" in log and "001" in log[log.index("013"):], log  # released, then executing again


# --------------------------------------------------------------------------- the batch side ends it


def test_walltime_exceeded_holds_with_reason(life: Life):
    gw, job = life.gw, life["walltime"]
    held = wait_status(gw, job, HELD, 180)
    [batch_id] = batch_ids(gw, job)
    assert gw.batch_state(batch_id) == "TIMEOUT"
    assert "walltime" in held["HoldReason"] and batch_id in held["HoldReason"], held
    assert held["HoldReasonCode"] == 46  # JobDurationExceeded (src/condor_utils/condor_holdcodes.h)


def test_scancel_outside_htcondor_holds_with_reason(life: Life):
    job, seen = life.driven("scancel")
    assert seen["batch_state"] == "CANCELLED"
    reason = seen["held"]["HoldReason"]
    assert "cancelled outside HTCondor" in reason and seen["batch_id"] in reason, reason
    assert batch_ids(life.gw, job) == [seen["batch_id"]]


def test_slurm_requeue_runs_the_same_batch_job_again(life: Life):
    gw = life.gw
    job, seen = life.driven("requeue")
    assert seen["pending"] == "PENDING"
    assert seen["idle"]["JobStatus"] == IDLE  # hpcpull showed the requeue
    record = seen["record"]
    assert record["JobStatus"] == COMPLETED and record["ExitCode"] == 0
    assert record["NumJobStarts"] == 2
    assert batch_ids(gw, job) == [seen["batch_id"]]
    assert (job.directory / "job.out").read_text() == "restart count 1\n"
    log = codes(gw.user_log(job.directory))
    assert log.count("001") == 2 and log.count("005") == 1 and log[-1] == "005", log


def test_requeue_on_resubmits_a_cancelled_batch_job(life: Life):
    gw = life.gw
    job, seen = life.driven("requeue_on")
    assert seen["first_state"] == "CANCELLED"
    ids = batch_ids(gw, job)
    assert len(ids) == 2 and ids[0] == seen["first"]
    record = seen["record"]
    assert record["JobStatus"] == COMPLETED and record["ExitCode"] == 0
    assert record["NumJobStarts"] == 2
    assert (job.directory / "job.out").read_text() == "second run\n"
    log = codes(gw.user_log(job.directory))
    assert log.count("001") == 2 and log.count("005") == 1 and log[-1] == "005", log


# --------------------------------------------------------------------------- routing decisions


def test_idle_batch_job_is_cancelled_and_the_job_given_back(life: Life):
    gw = life.gw
    job, seen = life.driven("idle")
    assert seen["reason_while_held"] == "PENDING JobHeldAdmin"
    assert seen["cancelled"]
    assert seen["given_back"]["JobStatus"] == IDLE, seen["given_back"].get("HoldReason")
    assert "Limited" in seen["given_back"]["HpcPullUndoneRoutes"].split(",")
    # Still idle two polls later, with no new batch job: the route stays away from it.
    assert seen["later"]["JobStatus"] == IDLE
    assert seen["batch_later"] == [seen["batch_id"]]
    assert gw.copy_of(job.cluster) is None


def test_request_above_route_maximum_is_held_with_the_limit(life: Life):
    gw, job = life.gw, life["too_big"]
    held = wait_status(gw, job, HELD, 90)
    assert "maximum of 1" in held["HoldReason"] and "HPCPULL_ROUTE_Limited_MAX_CPUS" in held["HoldReason"], held
    assert batch_ids(gw, job) == []


def test_job_for_no_route_runs_on_the_local_startd(life: Life):
    gw, job = life.gw, life["local"]
    record = gw.finished(job.cluster)
    assert record["JobStatus"] == COMPLETED and record["ExitCode"] == 5
    assert (job.directory / "job.out").read_text() == "local run\n"
    assert "slot" in record.get("LastRemoteHost", ""), record.get("LastRemoteHost")
    assert "RouteName" not in record and "RoutedToJobId" not in record
    assert batch_ids(gw, job) == []
    assert f"src={job.cluster}.0" not in gw.pool.router_log_text()
