"""The hooks as the router runs them: real fixture bytes, bad input, exit codes, exactly-once submit."""

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import classad2
import pytest

from hpcpull import holds
from hpcpull.router.classads import parse_old_ad, parse_translate_input, router_print
from hpcpull.state.jobdir import JobDir
from hpcpull.state.submission import SubmissionState, batch_job_name, save_state
from tests.conftest import FIXTURES
from tests.integration.test_pipeline import make_job

STDIN = FIXTURES / "router-stdin"


def lines_parse(text):
    return all(len(classad2.parseOne(line + "\n", classad2.ParserType.Old)) == 1
               for line in text.splitlines() if line.strip())


def squeue_names(router):
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%j"], env=router.slurm_env,
                         capture_output=True, text=True, timeout=15)
    return out.stdout.split()


def batch_jobs_of(router, job):
    """Names of the batch jobs of HTCondor job ``job``: hpcpull-<route>-<job>-<token>."""
    return [n for n in squeue_names(router) if re.fullmatch(rf"hpcpull-Slurm-{re.escape(job)}-[0-9a-f]+", n)]


# ---------------------------------------------------------------- fixture bytes


def test_other_tools_routes_pass_through_untouched(gateway):
    """RcRoute exists in the config but is not an hpcpull route: echo, and no-ops."""
    text = (STDIN / "translate.stdin").read_text().replace('"RcRoute"', '"Other"')
    call = gateway.run_hook("translate", "78.0", text)
    assert call.exit_code == 0 and lines_parse(call.stdout)
    assert router_print(parse_old_ad(call.stdout)) == text.split("------\n", 1)[1]
    for hook, name in (("update", "update-first"), ("finalize", "finalize"), ("cleanup", "cleanup")):
        stdin = (STDIN / f"{name}.stdin").read_text().replace('RouteName = "RcRoute"', 'RouteName = "Other"')
        call = gateway.run_hook(hook, "x", stdin)
        assert (call.exit_code, call.stdout) == (0, ""), (hook, call.stderr)


def test_translate_of_the_real_router_input(gateway, tmp_path):
    """The captured TRANSLATE stdin, routed by hpcpull: an earlier routing's bookkeeping dropped,
    Managed/ManagedManager and the job directory added."""
    route_ad, source = parse_translate_input((STDIN / "translate.stdin").read_text())
    home = tmp_path / "home" / "alice" / "jobs"
    home.mkdir(parents=True)
    text = (STDIN / "translate.stdin").read_text().replace('"RcRoute"', '"Slurm"')
    text = text.replace("/home/alice/jobs", str(home))
    # pretend a previous routing left bookkeeping behind, as on a job given back and routed again
    text = text.replace("JobStatus = 1\n", 'JobStatus = 1\nManaged = "Schedd"\nRoutedToJobId = "9.0"\n'
                        "ShadowBday = 5\nHoldReason = \"old\"\nLastJobStatus = 5\nHpcPullBatchJobId = \"77\"\n")
    call = gateway.run_hook("translate", "78.0", text)
    assert call.exit_code == 0, call.stderr
    assert lines_parse(call.stdout)
    routed = parse_old_ad(call.stdout)
    assert routed["JobUniverse"] == 5
    assert (routed["Managed"], routed["ManagedManager"]) == ("External", "hpcpull")
    for dropped in ("RoutedToJobId", "ShadowBday", "HoldReason", "LastJobStatus"):
        assert dropped not in routed, dropped
    assert routed["HpcPullBatchJobId"] != "77", "the stale batch job id is dropped; TRANSLATE submitted anew"
    assert routed["NumJobStarts"] == 0 and "JobRunCount" not in source or routed["JobRunCount"] == 0
    job_dir = Path(routed["HpcPullJobDir"])
    assert job_dir == gateway.scratch / "alice" / "78" / "0"
    assert routed["HpcPullScript"] == str(job_dir / ".hpcpull" / "job.sh")
    assert (job_dir / "sh").exists(), "Cmd /bin/sh is staged (transfer_executable defaults to true)"
    assert oct(job_dir.stat().st_mode & 0o777) == "0o700"
    assert "#SBATCH --partition=debug" in Path(routed["HpcPullScript"]).read_text()


def test_simulated_copy_matches_the_real_routers_copy(gateway, tmp_path):
    """Harness fidelity: an echoing TRANSLATE gives the attribute set the real router produced."""
    _, source = parse_translate_input((STDIN / "translate.stdin").read_text())
    real_copy = parse_old_ad((STDIN / "update-first.stdin").read_text())
    job = gateway.submit(source)
    routed = gateway.route(job, "Other")  # not an hpcpull route: TRANSLATE echoes
    ours = gateway.jobs[routed.copy_id]
    # the captured copy also carries the Managed/ManagedManager its TRANSLATE printed; an echo prints none
    assert set(ours.keys()) | {"Managed", "ManagedManager"} == set(real_copy.keys())
    for same in ("Requirements", "LeaveJobInQueue", "Remote_JobUniverse", "TotalSubmitProcs", "CompletionDate"):
        assert str(ours.lookup(same)) == str(real_copy.lookup(same)), same


def _scripted_router(tmp_path, **scripts):
    """RouterSim around shell scripts standing in for the hooks (hook name -> script body;
    ``$STATE`` is a directory the scripts may keep counters in): tests of the simulation itself."""
    from hpcpull.testing.router_sim import RouterSim

    state = tmp_path / "hook-state"
    state.mkdir()
    paths = {}
    for hook, body in scripts.items():
        paths[hook] = tmp_path / f"fake-{hook}.sh"
        paths[hook].write_text(f"STATE={state}\n{body}")
    router = RouterSim(env={"PATH": os.environ["PATH"]}, workdir=tmp_path)
    router.hook_command = lambda hook: ["/bin/sh", str(paths[hook])]  # type: ignore[method-assign]
    return router


ECHO_SOURCE = "sed '1,/^------$/d'\n"  # TRANSLATE that hands the job through unchanged
KILLED = "kill -KILL $$\n"


def _plain_job():
    return classad2.ClassAd({"Owner": "alice", "JobUniverse": 5, "Cmd": "/bin/true", "Iwd": "/tmp"})


def test_simulated_router_keeps_a_job_claimed_when_translate_prints_nothing(tmp_path):
    """Harness fidelity: TRANSLATE exiting 0 without output neither submits nor yields the
    job (JobRouterHookMgr.cpp, TranslateClient::hookExited); the next poll runs it again."""
    router = _scripted_router(tmp_path, translate=(
        'if [ -e "$STATE/once" ]; then ' + ECHO_SOURCE.strip() + '; else touch "$STATE/once"; cat >/dev/null; fi\n'))
    job = router.submit(_plain_job())
    routed = router.route(job, "Other")
    assert (routed.state, routed.copy_id) == ("claimed", None)
    assert (router.jobs[job]["Managed"], router.jobs[job]["JobStatus"]) == ("External", 1)
    router.poll()
    assert routed.state == "submitted" and routed.copy_id in router.jobs
    assert [c.hook for c in router.calls] == ["translate", "translate"]
    assert router.jobs[routed.copy_id]["RoutedFromJobId"] == job


def test_simulated_router_yields_a_job_whose_translate_fails(tmp_path):
    router = _scripted_router(tmp_path, translate="cat >/dev/null; exit 1\n")
    job = router.submit(_plain_job())
    routed = router.route(job, "Other")
    assert (routed.state, routed.copy_id) == ("retired", None)
    assert router.jobs[job]["Managed"] == "Schedd"
    router.poll()
    assert [c.hook for c in router.calls] == ["translate"], "a yielded job is not translated again"


def test_simulated_router_counts_a_hook_killed_by_a_signal_as_done(tmp_path):
    """Harness fidelity: a hook killed by a signal is WEXITSTATUS 0 to the router
    (JobRouterHookMgr.cpp: TRANSLATE, UPDATE and FINALIZE test WEXITSTATUS only, CLEANUP
    WIFSIGNALED || !WEXITSTATUS): a killed UPDATE is a poll without news, a killed FINALIZE
    still writes the terminate event, a killed CLEANUP is not run again."""
    finished = "JobStatus = 4\nJobFinishedHookDone = 1700000000\nExitCode = 3\nExitBySignal = false\n"
    router = _scripted_router(
        tmp_path,
        translate=ECHO_SOURCE,
        update=f'if [ -e "$STATE/once" ]; then printf \'{finished}\'; else touch "$STATE/once"; {KILLED.strip()}; fi\n',
        finalize=KILLED,
        cleanup=KILLED,
    )
    job = router.submit(_plain_job())
    routed = router.route(job, "Other")
    router.poll()  # the killed UPDATE: nothing changes, the copy stays
    assert [(c.hook, c.exit_code) for c in router.calls] == [("translate", 0), ("update", -9)]
    assert routed.state == "submitted" and router.jobs[routed.copy_id]["JobStatus"] == 1
    assert router.jobs[job]["JobStatus"] == 1
    router.run_until(lambda r: not r.in_queue(job), timeout=30, period=0)
    router.poll()
    assert [(c.hook, c.exit_code) for c in router.calls] == [
        ("translate", 0), ("update", -9), ("update", 0), ("finalize", -9), ("cleanup", -9)]
    assert router.events[job][-1] == "005 terminated normally (return value 3)"
    assert router.history[job]["JobStatus"] == 4 and router.history[job]["Managed"] == "ScheddDone"
    assert routed.state == "retired"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("hook,code", [("translate", 2), ("update", 0), ("finalize", 0), ("cleanup", 0)])
@pytest.mark.parametrize("stdin", ["", "garbage\n", "\xff\xfe binary", "[ Name = \"Slurm\" ]\nA = 1 +\n"])
def test_malformed_stdin_gives_one_line_and_no_output(gateway, hook, code, stdin):
    proc = subprocess.run(gateway.hook_command(hook), input=stdin.encode("latin-1"), capture_output=True,
                          env=gateway.env, timeout=60)
    assert proc.returncode == code
    assert proc.stdout == b""
    assert len(proc.stderr.decode().strip().splitlines()) == 1
    assert proc.stderr.decode().startswith(f"hpcpull {hook}: ")


def test_missing_job_universe_is_refused_without_output(gateway):
    text = (STDIN / "translate.stdin").read_text().replace('"RcRoute"', '"Slurm"').replace("JobUniverse = 5\n", "")
    call = gateway.run_hook("translate", "78.0", text)
    assert (call.exit_code, call.stdout) == (2, "")
    assert "no JobUniverse" in call.stderr


def test_unknown_route_is_refused(gateway):
    text = (STDIN / "translate.stdin").read_text()  # RcRoute is not configured on this gateway
    call = gateway.run_hook("translate", "78.0", text)
    assert (call.exit_code, call.stdout) == (1, "")
    assert "unknown route 'RcRoute'" in call.stderr


def test_unwritable_scratch_root_keeps_the_job_idle(gateway, tmp_path):
    gateway.scratch.chmod(0o500)
    blocker = gateway.scratch / os.environ.get("USER", "root")
    try:
        if os.geteuid() == 0:  # root ignores modes: make the owner directory a file instead
            blocker.write_text("")
        job = gateway.submit(make_job(tmp_path / "submit", "true\n"))
        routed = gateway.route(job, "Slurm")
        call = gateway.calls[-1]
        assert call.exit_code == 1 and call.stdout == ""
        assert "scratch root" in call.stderr and "not writable" in call.stderr
        assert routed.copy_id is None and gateway.jobs[job]["Managed"] == "Schedd"
    finally:
        gateway.scratch.chmod(0o1777)
        if blocker.is_file():
            blocker.unlink()


def test_missing_input_file_holds_the_job_with_the_reason(gateway, tmp_path):
    job = gateway.submit(make_job(tmp_path / "submit", "true\n", TransferInput="nope.dat"))
    gateway.route(job, "Slurm")
    assert "nope.dat" in gateway.calls[-1].stderr
    gateway.run_until(lambda r: r.jobs[job].get("JobStatus") == 5, timeout=30)
    src = gateway.jobs[job]
    assert "nope.dat" in src["HoldReason"] and src["HoldReasonCode"] == 13
    assert not batch_jobs_of(gateway, job)


def test_hostile_arguments_hold_the_job_instead_of_reaching_the_shell(gateway, tmp_path):
    job = gateway.submit(make_job(tmp_path / "submit", "true\n", Arguments="unbalanced 'quote"))
    gateway.route(job, "Slurm")
    gateway.run_until(lambda r: r.jobs[job].get("JobStatus") == 5, timeout=30)
    assert "quote" in gateway.jobs[job]["HoldReason"].lower()


def test_refusal_after_staging_leaves_no_job_directory(gateway, tmp_path):
    # An environment name that cannot be exported is refused when the script is
    # rendered, after the sandbox was staged.
    job = gateway.submit(make_job(tmp_path / "submit", "true\n", Environment="BAD-NAME=1"))
    routed = gateway.route(job, "Slurm")
    assert "BAD-NAME" in gateway.calls[-1].stderr
    assert "HpcPullJobDir" not in gateway.jobs[routed.copy_id]
    cluster_dir = gateway.scratch / (os.environ.get("USER") or "root") / job.split(".")[0]
    assert not (cluster_dir / "0").exists()


def test_request_above_the_route_maximum_is_held_with_the_limit_not_capped(gateway, tmp_path):
    with open(gateway.config_path, "a") as config:
        config.write("HPCPULL_ROUTE_Slurm_MAX_WALLTIME = 4:00:00\nHPCPULL_ROUTE_Slurm_MAX_MEMORY = 8000\n")
    long_job = gateway.submit(make_job(tmp_path / "a", "true\n", maxWallTime=600))
    big_job = gateway.submit(make_job(tmp_path / "b", "true\n", RequestMemory=16000))
    for job in (long_job, big_job):
        gateway.route(job, "Slurm")
    gateway.run_until(lambda r: all(r.jobs[j].get("JobStatus") == 5 for j in (long_job, big_job)), timeout=30)
    assert gateway.jobs[long_job]["HoldReason"] == (
        "maxWallTime = 600 min (10:00:00) is above route Slurm's maximum walltime of 04:00:00 "
        "(HPCPULL_ROUTE_Slurm_MAX_WALLTIME)")
    assert "RequestMemory = 16000 MB is above route Slurm's maximum of 8000 MB" in gateway.jobs[big_job]["HoldReason"]
    assert gateway.jobs[big_job]["HoldReasonSubCode"] == holds.HOLD_SUBCODE_RESOURCES
    assert not batch_jobs_of(gateway, long_job) and not batch_jobs_of(gateway, big_job)


def test_sbatch_refusal_holds_the_job_with_slurms_message(gateway, tmp_path):
    with open(gateway.config_path, "a") as config:
        config.write("HPCPULL_ROUTE_Slurm_PARTITION = nosuchpartition\n")
    job = gateway.submit(make_job(tmp_path / "submit", "true\n"))
    gateway.route(job, "Slurm")
    gateway.run_until(lambda r: r.jobs[job].get("JobStatus") == 5, timeout=30)
    src = gateway.jobs[job]
    assert "refused" in src["HoldReason"] and "Invalid partition" in src["HoldReason"]
    assert src["HoldReasonSubCode"] == holds.SUB_SUBMIT_REFUSED
    gateway.poll()
    assert sum(1 for c in gateway.calls if c.hook == "update" and "JobStatus" in c.stdout) == 1


def test_job_that_leaves_slurm_without_exit_status_is_held(gateway, tmp_path):
    # The payload kills the launcher: Slurm says the job ended, but no exit_status exists.
    job = gateway.submit(make_job(tmp_path / "submit", "kill -9 $PPID\nsleep 1\n"))
    gateway.route(job, "Slurm")
    gateway.run_until(lambda r: r.jobs[job].get("JobStatus") == 5, timeout=60)
    src = gateway.jobs[job]
    assert "without writing its exit_status" in src["HoldReason"], src["HoldReason"]
    assert src["HoldReasonSubCode"] == holds.SUB_NO_EXIT_STATUS
    assert "ExitCode" not in src or src.get("JobStatus") != 4


# ---------------------------------------------------------------- exactly once


def _routed_copy(gateway, tmp_path, script="sleep 2\n"):
    job = gateway.submit(make_job(tmp_path / "submit", script))
    routed = gateway.route(job, "Slurm")
    return job, routed, gateway.jobs[routed.copy_id]


def test_repeated_and_concurrent_updates_submit_once(gateway, tmp_path):
    gateway.env["_CONDOR_HPCPULL_SUBMIT_AT_ROUTING"] = "false"  # the first UPDATE submits
    job, routed, copy = _routed_copy(gateway, tmp_path)
    stdin = router_print(copy)
    with ThreadPoolExecutor(8) as pool:
        calls = list(pool.map(lambda _: gateway.run_hook("update", routed.copy_id, stdin), range(8)))
    calls += [gateway.run_hook("update", routed.copy_id, stdin) for _ in range(3)]
    assert all(c.exit_code == 0 for c in calls)
    assert len(batch_jobs_of(gateway, job)) == 1
    ids = {parse_old_ad(c.stdout)["HpcPullBatchJobId"] for c in calls if "HpcPullBatchJobId" in c.stdout}
    assert len(ids) == 1


def test_crash_between_sbatch_and_recording_the_id_is_repaired(gateway, tmp_path):
    gateway.env["_CONDOR_HPCPULL_SUBMIT_AT_ROUTING"] = "false"  # the first UPDATE submits
    job, routed, copy = _routed_copy(gateway, tmp_path)
    job_dir = JobDir(Path(copy["HpcPullJobDir"]))
    # What a hook killed right after sbatch returned leaves behind: a token, a job, no id.
    token = "0123456789ab"
    name = batch_job_name(job, token, "Slurm")
    assert name == f"hpcpull-Slurm-{job}-{token}"
    save_state(job_dir, SubmissionState(token=token, job_name=name, submitted_at=time.time()))
    submitted = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={name}", f"--chdir={job_dir.path}",
         str(job_dir.file("job.sh"))], env=gateway.slurm_env, capture_output=True, text=True, check=True)
    batch_id = submitted.stdout.strip().split(";")[0]
    call = gateway.run_hook("update", routed.copy_id, router_print(copy))
    assert parse_old_ad(call.stdout)["HpcPullBatchJobId"] == batch_id
    assert len(batch_jobs_of(gateway, job)) == 1
    state = json.loads(job_dir.file("state.json").read_text())
    assert state["batch_job_id"] == batch_id


def test_crash_before_sbatch_submits_afresh(gateway, tmp_path):
    gateway.env["_CONDOR_HPCPULL_SUBMIT_AT_ROUTING"] = "false"  # the first UPDATE submits
    job, routed, copy = _routed_copy(gateway, tmp_path)
    job_dir = JobDir(Path(copy["HpcPullJobDir"]))
    save_state(job_dir, SubmissionState(token="deadbeef0000", submitted_at=time.time()))
    call = gateway.run_hook("update", routed.copy_id, router_print(copy))
    assert "HpcPullBatchJobId" in call.stdout
    names = batch_jobs_of(gateway, job)
    assert len(names) == 1 and not names[0].endswith("deadbeef0000")


def test_cleanup_is_idempotent_and_hands_the_copy_back(gateway, tmp_path):
    job, routed, copy = _routed_copy(gateway, tmp_path, "sleep 120\n")
    gateway.run_until(lambda r: r.jobs[job].get("JobStatus") == 2, timeout=60)
    gateway.jobs[job]["JobStatus"] = 3  # the user removed the job: CLEANUP cancels and cleans
    stdin = router_print(gateway.jobs[routed.copy_id])
    results = [gateway.run_hook("cleanup", routed.copy_id, stdin) for _ in range(3)]
    assert [c.exit_code for c in results] == [0, 0, 0]
    assert not Path(copy["HpcPullJobDir"]).exists()
    edits = [json.loads(line) for line in (gateway.workdir / "schedd-double.jsonl").read_text().splitlines()]
    assert {(e["job"], e["attr"], e["value"]) for e in edits} == {(routed.copy_id, "Managed", '"ScheddDone"')}


def test_cleanup_of_a_job_the_router_gives_back_keeps_its_batch_job_for_the_reroute(gateway, tmp_path):
    """The router gives a job back after a failure of its own (its source job is still
    running): CLEANUP parks the batch job, and the re-route adopts it instead of submitting
    the job again; while the schedd cannot say, CLEANUP waits."""
    job, routed, copy = _routed_copy(gateway, tmp_path, "sleep 120\n")
    gateway.run_until(lambda r: r.jobs[job].get("JobStatus") == 2, timeout=60)
    batch_id = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    stdin = router_print(gateway.jobs[routed.copy_id])
    queue = Path(f"{gateway.workdir / 'schedd-double.jsonl'}.queue.json")
    gateway._publish_queue()
    queue.unlink()  # the schedd does not answer
    waiting = subprocess.run(gateway.hook_command("cleanup"), input=stdin.encode(), capture_output=True,
                             env=gateway.env, cwd=gateway.workdir, timeout=120)
    assert waiting.returncode == 1 and b"schedd cannot tell" in waiting.stderr
    call = gateway.run_hook("cleanup", routed.copy_id, stdin)
    assert call.exit_code == 0 and "kept batch job" in call.stderr
    assert Path(copy["HpcPullJobDir"]).exists()
    state = json.loads(JobDir(Path(copy["HpcPullJobDir"])).file("state.json").read_text())
    assert state["parked"] and state["batch_job_id"] == batch_id
    source = gateway.jobs[job]
    source_text = router_print(source)
    again = gateway.run_hook("translate", job, f'[ Name = "Slurm"; TargetUniverse = 5 ]\n------\n{source_text}')
    assert again.exit_code == 0, again.stderr
    assert "adopted" in "".join(p.read_text() for p in gateway.workdir.glob("log/hpcpull/HpcPullLog*"))
    assert len(batch_jobs_of(gateway, job)) == 1
    assert not json.loads(JobDir(Path(copy["HpcPullJobDir"])).file("state.json").read_text())["parked"]


def test_cleanup_retries_while_slurm_cannot_be_reached(gateway, tmp_path):
    job, routed, copy = _routed_copy(gateway, tmp_path, "sleep 120\n")
    gateway.run_until(lambda r: r.jobs[job].get("JobStatus") == 2, timeout=60)
    gateway.jobs[job]["JobStatus"] = 3  # the user removed the job
    stdin = router_print(gateway.jobs[routed.copy_id])
    dead = tmp_path / "dead-slurm.conf"
    # the same cluster, but a controller port nobody listens on (the unused slurmdbd port)
    conf = Path(gateway.slurm_env["SLURM_CONF"]).read_text()
    port = int(re.search(r"^SlurmctldPort=(\d+)", conf, re.M).group(1))
    dead.write_text(conf.replace(f"SlurmctldPort={port}", f"SlurmctldPort={port + 2}"))
    with open(gateway.config_path, "a") as config:
        config.write(f"HPCPULL_LRMS_ENVIRONMENT = SLURM_CONF={dead}\nHPCPULL_COMMAND_TIMEOUT = 2\n")
    call = gateway.run_hook("cleanup", routed.copy_id, stdin)
    assert call.exit_code == 1 and "cannot cancel" in call.stderr
    assert Path(copy["HpcPullJobDir"]).exists(), "nothing is removed while the batch job may still run"
    with open(gateway.config_path, "a") as config:
        config.write(f"HPCPULL_LRMS_ENVIRONMENT = SLURM_CONF={gateway.slurm_env['SLURM_CONF']}\n")
    assert gateway.run_hook("cleanup", routed.copy_id, stdin).exit_code == 0
    assert not Path(copy["HpcPullJobDir"]).exists()
