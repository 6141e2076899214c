"""Jobs that take a wrong turn: given back by route after route, held by someone else,
released, left half cleaned by a killed CLEANUP of another batch system, ended without the
output files they promised, or met by a schedd that does not do what it was asked."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import classad2
import htcondor2  # noqa: F401 - registers HTCondor's ClassAd functions (stringListMember)
import pytest

from hpcpull import holds
from hpcpull.lrms import BatchState, get_batch_system
from hpcpull.router.classads import router_print
from hpcpull.state import jobdir as jd
from hpcpull.state.submission import JobLock, SubmissionState, load_state, save_state
from tests.conftest import make_gateway
from tests.integration.batch_tracking import settled_slurm_state
from tests.integration.test_pipeline import finished, make_job
from tests.reliability.crashes import CrashOnce

pytestmark = pytest.mark.usefixtures("slurm_env")

OWNER = os.environ.get("USER", "root") or "root"
WAITS_AN_HOUR = "--begin=now+3600"  # a batch job that stays PENDING


def append_config(gateway: Any, text: str) -> None:
    with open(gateway.config_path, "a") as config:
        config.write(text)


def log_text(gateway: Any) -> str:
    return "".join(p.read_text() for p in (gateway.workdir / "log" / "hpcpull").glob("HpcPullLog*"))


def job_dir_of(gateway: Any, source: str) -> Path:
    cluster, proc = source.split(".")
    return gateway.scratch / OWNER / cluster / proc


def squeue_state(env: dict[str, str], batch_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-t", "all", "-j", batch_id, "-o", "%T"], env=env,
                          capture_output=True, text=True, timeout=30).stdout.strip()


def given_back(source: str, copy_id: str):
    return lambda r: copy_id not in r.jobs and r.jobs[source].get("Managed") == "Schedd"


# ------------------------------------------------------------------ give-backs


GUARDED_ROUTE = ('REQUIREMENTS WantHpc =?= true && !stringListMember("{name}", HpcPullUndoneRoutes ?: "")\n'
                 "UNIVERSE VANILLA\nSET Requirements false")


def test_a_job_given_back_by_two_routes_is_kept_away_from_both(tmp_path: Path, slurm_env: dict[str, str]) -> None:
    """Short gives the job back, then Long: HpcPullUndoneRoutes names both, so the guard in
    each route's REQUIREMENTS (50-hpcpull.conf) keeps the job away from both for good."""
    gateway = make_gateway(tmp_path, "slurm", slurm_env, route="Short", HPCPULL_ROUTE_NAMES="Short Long",
                           HPCPULL_PARTITION="debug", HPCPULL_MAX_IDLE_TIME="3",
                           HPCPULL_EXTRA_DIRECTIVES=WAITS_AN_HOUR)
    append_config(gateway, "JOB_ROUTER_ROUTE_NAMES = Short Long Other\n"
                           f"JOB_ROUTER_ROUTE_Long @=jrt\n{GUARDED_ROUTE.format(name='Long')}\n@jrt\n")

    def wanted_by(route: str) -> bool:
        guard = classad2.ExprTree(GUARDED_ROUTE.format(name=route).splitlines()[0].split(" ", 1)[1])
        return guard.eval(gateway.jobs[source]) is True

    source = gateway.submit(make_job(tmp_path / "submit", "true\n"))
    assert wanted_by("Short") and wanted_by("Long")
    for route, undone in (("Short", ["Short"]), ("Long", ["Short", "Long"])):
        routed = gateway.route(source, route)
        assert routed.copy_id, gateway.calls[-1].stderr
        gateway.run_until(given_back(source, routed.copy_id), timeout=90)
        src = gateway.jobs[source]
        assert src["JobStatus"] == 1, "idle, free to run elsewhere"
        assert src["HpcPullUndoneRoutes"].split(",") == undone
    assert not wanted_by("Short") and not wanted_by("Long"), "neither route takes the job back"
    assert log_text(gateway).count("UNDONE") == 2


@pytest.mark.parametrize("refused", ["remove", "edit HpcPullUndoneRoutes"])
def test_a_give_back_the_schedd_does_not_apply_is_tried_again(gateway: Any, tmp_path: Path, refused: str) -> None:
    """The schedd does not apply the removal of the copy (or the edit of the source): the
    copy stays as it is -- not held, not removed without the route in HpcPullUndoneRoutes --
    and each UPDATE tries again until the schedd takes both."""
    append_config(gateway, "HPCPULL_ROUTE_Slurm_MAX_IDLE_TIME = 3\n"
                           f"HPCPULL_ROUTE_Slurm_EXTRA_DIRECTIVES = {WAITS_AN_HOUR}\n")
    refuse = Path(f"{gateway.schedd_double}.refuse")
    refuse.write_text(refused + "\n")
    source = gateway.submit(make_job(tmp_path / "submit", "true\n"))
    routed = gateway.route(source, "Slurm")
    gateway.run_until(lambda r: any("waits for the schedd" in c.stderr for c in r.calls), timeout=60)
    batch_id = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    for _ in range(3):
        gateway.poll()
    copy, src = gateway.jobs[routed.copy_id], gateway.jobs[source]
    assert copy["JobStatus"] == 1 and src["JobStatus"] == 1, "neither held nor removed"
    if refused == "remove":
        assert src["HpcPullUndoneRoutes"] == "Slurm", "the edit was applied; the removal waits"
    else:
        assert "HpcPullUndoneRoutes" not in src, "the copy stays until the source names the route"
    assert settled_slurm_state(gateway.slurm_env, batch_id) == "CANCELLED"
    refuse.unlink()
    gateway.run_until(given_back(source, routed.copy_id), timeout=30)
    assert gateway.jobs[source]["JobStatus"] == 1 and gateway.jobs[source]["HpcPullUndoneRoutes"] == "Slurm"
    assert not [c for c in gateway.calls if c.hook == "update" and "JobStatus = 5" in c.stdout], "never held"
    assert log_text(gateway).count("UNDONE") == 1


# ------------------------------------------------------------------ holds and releases


def test_a_copy_held_by_someone_else_is_not_taken_for_a_release(gateway: Any, tmp_path: Path) -> None:
    """An admin holds the routed copy of a running job: the UPDATE that sees it runs before
    the router mirrors the hold onto the source, which is still running -- not released.
    Once the source was seen held, its condor_release routes it again."""
    source = gateway.submit(make_job(tmp_path / "submit", "sleep 120\n"))
    routed = gateway.route(source, "Slurm")
    gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 2, timeout=60)
    batch_id = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    copy = gateway.jobs[routed.copy_id]
    copy["JobStatus"], copy["HoldReason"], copy["HoldReasonCode"] = 5, "held by the admin", 1
    gateway.poll()
    assert routed.copy_id in gateway.jobs and gateway.jobs[routed.copy_id]["JobStatus"] == 5
    assert gateway.jobs[source]["JobStatus"] == 5, "the router mirrored the hold onto the source"
    assert squeue_state(gateway.slurm_env, batch_id) == "RUNNING", "not cancelled as if released"
    assert "RELEASED" not in log_text(gateway)
    gateway.poll()  # an UPDATE sees the source held
    gateway.condor_release(source)
    gateway.run_until(given_back(source, routed.copy_id), timeout=30)
    assert "RELEASED" in log_text(gateway)
    deadline = time.monotonic() + 30
    while squeue_state(gateway.slurm_env, batch_id) != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert squeue_state(gateway.slurm_env, batch_id) == "CANCELLED"


def test_a_released_job_keeps_its_directory_with_keep_job_dirs(gateway: Any, tmp_path: Path) -> None:
    """HPCPULL_KEEP_JOB_DIRS holds for a released job too: its directory is set aside before
    the job is routed again into a fresh one (even with HPCPULL_KEEP_FAILED_JOBS off)."""
    append_config(gateway, "HPCPULL_KEEP_JOB_DIRS = true\nHPCPULL_KEEP_FAILED_JOBS = false\n")
    source = gateway.submit(make_job(tmp_path / "submit", "kill -9 $PPID\nsleep 1\n"))
    routed = gateway.route(source, "Slurm")
    gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 5, timeout=60)
    gateway.poll()
    gateway.condor_release(source)
    gateway.run_until(given_back(source, routed.copy_id), timeout=30)
    kept = sorted((gateway.scratch / OWNER / "failed").glob(f"{source}.*"))
    assert len(kept) == 1, "the released job's directory is kept"
    assert (kept[0] / jd.CONTROL_DIR / jd.BATCH_SCRIPT).is_file()
    assert "without writing its exit_status" in (kept[0] / jd.CONTROL_DIR / "failed").read_text()
    assert not job_dir_of(gateway, source).exists(), "the next routing starts from a fresh directory"


def test_finalize_that_cannot_lock_the_job_records_nothing(gateway: Any, tmp_path: Path) -> None:
    """FINALIZE returns the outputs but cannot get the job lock: it does not write the state
    behind the back of the hook that holds it; CLEANUP returns the outputs again."""
    append_config(gateway, "HPCPULL_COMMAND_TIMEOUT = 2\n")
    submit = tmp_path / "submit"
    source = gateway.submit(make_job(submit, "echo made > out.txt\n", TransferOutput="out.txt"))
    routed = gateway.route(source, "Slurm")
    gateway.run_until(lambda r: r.jobs[routed.copy_id].get("JobStatus") == 4, timeout=60)
    job = jd.JobDir(job_dir_of(gateway, source))
    with JobLock(job) as lock:
        assert lock.acquired
        gateway.poll()  # FINALIZE, and a CLEANUP that cannot get the lock either
        assert [(c.hook, c.exit_code) for c in gateway.calls[-2:]] == [("finalize", 0), ("cleanup", 1)]
        assert not load_state(job).outputs_returned, "no state written without the lock"
        assert "not recorded" in job.file(jd.HOOK_LOG).read_text()
    assert gateway.events[source][-1] == "005 terminated normally (return value 0)"
    (submit / "out.txt").unlink()
    # CLEANUP again, as the router retries it (the simulation lets the finished copy leave
    # the queue first, so it is run here by hand).
    copy = gateway.jobs.get(routed.copy_id) or gateway.history[routed.copy_id]
    call = gateway.run_hook("cleanup", routed.copy_id, router_print(copy))
    assert call.exit_code == 0, call.stderr
    assert (submit / "out.txt").read_text() == "made\n", "CLEANUP returned the outputs again"
    assert not job.path.exists()


# ------------------------------------------------------------------ missing outputs


def test_a_missing_output_file_holds_the_job_as_htcondor_does(gateway: Any, tmp_path: Path) -> None:
    """An output file the job promised and did not write: held with HTCondor's
    TransferOutputError (12), errno 2, the file named -- not completed."""
    submit = tmp_path / "submit"
    source = gateway.submit(make_job(submit, "echo here > made.txt\n", TransferOutput="made.txt,never.txt"))
    gateway.route(source, "Slurm")
    gateway.run_until(lambda r: source not in r.jobs or r.jobs[source].get("JobStatus") == 5, timeout=90)
    assert source in gateway.jobs, f"completed: {gateway.history[source].get('HpcPullOutputErrors')}"
    src = gateway.jobs[source]
    assert (src["HoldReasonCode"], src["HoldReasonSubCode"]) == (holds.TRANSFER_OUTPUT_ERROR, 2)
    reason = src["HoldReason"]
    assert "Transfer output files failure" in reason and "(errno 2) No such file or directory" in reason
    assert f"{job_dir_of(gateway, source)}/never.txt" in reason and "made.txt" not in reason
    events = gateway.events[source]
    assert "001" in "".join(e[:3] for e in events) and not [e for e in events if e.startswith("005")]
    assert load_state(jd.JobDir(job_dir_of(gateway, source))).route == "Slurm"
    assert load_state(jd.JobDir(job_dir_of(gateway, source))).lrms == "slurm"


# ------------------------------------------------------------------ leftovers of killed CLEANUPs


def _leftover(gateway: Any, cluster: int, state: SubmissionState, content: dict[str, str]) -> tuple[Path, Path]:
    """A job directory whose CLEANUP was killed: its state and the owner's marker."""
    job = jd.JobDir(gateway.scratch / OWNER / str(cluster) / "0")
    job.control.mkdir(parents=True, mode=0o700)
    save_state(job, state)
    markers = gateway.scratch / OWNER / ".hpcpull-cleaning"
    markers.mkdir(mode=0o700, exist_ok=True)
    marker = markers / f"{cluster}.0"
    marker.write_text(json.dumps(content))
    os.utime(marker, (time.time() - 3600, time.time() - 3600))
    return job.path, marker


def test_a_leftover_of_an_unknown_batch_system_never_fails_translate_nor_reaches_slurm(
        gateway: Any, tmp_path: Path) -> None:
    """Leftovers whose batch system nothing tells (a state written before it was recorded,
    of a route no longer configured): a PBS id, and a numeric id that is also a live Slurm
    job's.  TRANSLATE of a Slurm job neither fails nor scancels: each is logged once, left."""
    unrelated = subprocess.run(["sbatch", "--parsable", "-p", "debug", "-J", "unrelated", "-o", "/dev/null",
                                "--wrap", "sleep 300"], env=gateway.slurm_env, capture_output=True, text=True,
                               timeout=30, check=True).stdout.strip().split(";")[0]
    try:
        base = gateway.first_cluster + 500
        pbs_dir, pbs_marker = _leftover(gateway, base, SubmissionState(
            token="0123456789ab", job_name=f"hpcpull-OnPbs-{base}.0-0123456789ab", batch_job_id="4242.pbs-server",
            submitted_at=time.time() - 7200), {})
        num_dir, num_marker = _leftover(gateway, base + 1, SubmissionState(
            token="0123456789ac", job_name=f"hpcpull-OnPbs-{base + 1}.0-0123456789ac", batch_job_id=unrelated,
            submitted_at=time.time() - 7200), {})
        for n in range(2):  # two routings of the owner: the leftovers are logged once
            source = gateway.submit(make_job(tmp_path / f"submit{n}", "true\n"))
            routed = gateway.route(source, "Slurm")
            call = gateway.calls[-1]
            assert (call.exit_code, routed.state) == (0, "submitted"), call.stderr
        assert squeue_state(gateway.slurm_env, unrelated) in ("PENDING", "RUNNING"), "never scancelled"
        for path in (pbs_dir, pbs_marker, num_dir, num_marker):
            assert path.exists(), f"{path} is left for an admin"
        log = log_text(gateway)
        assert log.count("LEFTOVER") == 2, log
        assert f"job={base}.0" in log and "4242.pbs-server" in log and f"job={base + 1}.0" in log
    finally:
        subprocess.run(["scancel", unrelated], env=gateway.slurm_env, capture_output=True, timeout=30)


def test_a_leftover_is_finished_with_the_batch_system_it_was_submitted_to(
        tmp_path: Path, slurm_env: dict[str, str], lsf_env: dict[str, str]) -> None:
    """A killed CLEANUP of a job submitted to LSF, finished by the TRANSLATE of a Slurm route:
    its batch job is cancelled in LSF (bkill), then its directory goes."""
    env = dict(slurm_env, PATH=lsf_env["PATH"], HPCPULL_FAKE_LSF_DIR=lsf_env["HPCPULL_FAKE_LSF_DIR"])
    gateway = make_gateway(tmp_path, "slurm", env, route="OnSlurm", HPCPULL_ROUTE_OnSlurm_PARTITION="debug")
    lsf = get_batch_system("lsf", env, timeout=30)
    base = gateway.first_cluster + 500
    workdir = gateway.scratch / OWNER / str(base) / "0"
    workdir.mkdir(parents=True, mode=0o700)
    script = workdir / "job.sh"
    script.write_text("#!/bin/bash\nsleep 300\n")
    name = f"hpcpull-OnLsf-{base}.0-0123456789ab"
    lsf_id = lsf.submit(script, name, workdir, workdir / "batch.out")
    job_dir, marker = _leftover(gateway, base, SubmissionState(
        token="0123456789ab", job_name=name, batch_job_id=lsf_id, submitted_at=time.time(), route="OnLsf",
        lrms="lsf"), {"failure": ""})
    source = gateway.submit(make_job(tmp_path / "submit", "true\n"))
    routed = gateway.route(source, "OnSlurm")
    assert (gateway.calls[-1].exit_code, routed.state) == (0, "submitted"), gateway.calls[-1].stderr
    deadline = time.monotonic() + 30
    while (status := lsf.job_status(lsf_id)) is not None and status.state.is_active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status is not None and status.state is BatchState.CANCELLED, status
    assert not job_dir.exists() and not marker.exists()
    log = log_text(gateway)
    assert f"CLEANED job={base}.0" in log and "lrms=lsf" in log and f"cancelled={lsf_id}" in log


def test_a_killed_cleanup_of_a_failed_job_is_finished_keeping_its_directory(gateway: Any, tmp_path: Path) -> None:
    """The hook that finishes a killed CLEANUP ends the job as CLEANUP would have: a failed
    job's directory is kept (HPCPULL_KEEP_FAILED_JOBS), with the reason the copy gave."""
    crash = CrashOnce(gateway, "cleanup:after-cancel")
    source = gateway.submit(make_job(tmp_path / "submit", "exit 3\n"))
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    assert crash.killed and job_dir_of(gateway, source).is_dir()
    following = gateway.submit(make_job(tmp_path / "next", "true\n"))
    gateway.route(following, "Slurm")  # its TRANSLATE finishes the killed CLEANUP
    assert not job_dir_of(gateway, source).exists()
    kept = sorted((gateway.scratch / OWNER / "failed").glob(f"{source}.*"))
    assert len(kept) == 1 and (kept[0] / jd.CONTROL_DIR / "failed").read_text() == "exit code 3\n"


def test_the_undone_routes_reach_the_copy(gateway: Any, tmp_path: Path) -> None:
    """TRANSLATE carries HpcPullUndoneRoutes into the copy (the other hpcpull attributes of
    the source stay behind)."""
    ad = make_job(tmp_path / "submit", "true\n", HpcPullUndoneRoutes="Short", HpcPullBatchJobId="77")
    source = gateway.submit(ad)
    text = f'[ Name = "Slurm"; TargetUniverse = 5 ]\n------\n{router_print(gateway.jobs[source])}'
    call = gateway.run_hook("translate", source, text)
    assert call.exit_code == 0, call.stderr
    assert 'HpcPullUndoneRoutes = "Short"' in call.stdout and 'HpcPullBatchJobId = "77"' not in call.stdout
