"""`hpcpull status` on hand-made job directories, gateway log files and snapshots.

The files are written in the formats of their real writers (eventlog.format_line,
status_cache.Snapshot, the launcher's exit_status keys); the integration test runs real jobs.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from hpcpull.admin.common import clock
from hpcpull.admin.status.command import main
from hpcpull.admin.status.gateway_log import log_files, log_owner, parse_log_line
from hpcpull.admin.status.job import JobView, apply_event
from hpcpull.admin.status.story import story, story_text
from hpcpull.admin.status.survey import find_job, select, survey
from hpcpull.admin.status.table import NO_SITE_STATUS, list_text
from hpcpull.config import Config
from hpcpull.lrms.base import BatchJobStatus, BatchState
from hpcpull.state.eventlog import format_line
from hpcpull.state.status_cache import Snapshot

NOW = 1_800_000_000.0


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Any]:
    """Two routes (Slurm and Pbs) on their own scratch roots, a status dir and a log dir."""
    paths = {name: tmp_path / name for name in ("scratch", "pbs-scratch", "status", "log")}
    for path in paths.values():
        path.mkdir()
    knobs = {
        "JOB_ROUTER_ROUTE_NAMES": "Slurm Pbs",
        "JOB_ROUTER_ROUTE_Slurm": "UNIVERSE VANILLA",
        "JOB_ROUTER_ROUTE_Pbs": "UNIVERSE VANILLA",
        "HPCPULL_SCRATCH_ROOT": str(paths["scratch"]),
        "HPCPULL_ROUTE_Pbs_SCRATCH_ROOT": str(paths["pbs-scratch"]),
        "HPCPULL_ROUTE_Pbs_LRMS": "pbs",
        "HPCPULL_STATUS_CACHE_DIR": str(paths["status"]),
        "HPCPULL_LOG": str(paths["log"] / "HpcPullLog"),
    }
    return {"config": Config(lambda key: knobs.get(key)), "knobs": knobs, **paths}


def log(path: Path, *lines: tuple[str, float, dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        for event, when, fields in lines:
            handle.write(format_line(event, fields, now=when))


def job_dir(root: Path, owner: str, cluster: int, **files: Any) -> Path:
    """A job directory with job.ad and the given control files (dicts become JSON)."""
    control = root / owner / str(cluster) / "0" / ".hpcpull"
    control.mkdir(parents=True)
    (control / "job.ad").write_text(f'Owner = "{owner}"\nClusterId = {cluster}\n')
    os.utime(control / "job.ad", (NOW - 600, NOW - 600))
    for name, content in files.items():
        name = {"state": "state.json", "exit_status": "exit_status", "hook_log": "hook.log",
                "manifest": "input-manifest.json"}.get(name, name)
        (control / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return control.parent


def exit_record(code: int = 3, end: float = NOW - 100) -> dict[str, Any]:
    return {"exit_code": code, "exit_signal": None, "start": end - 20, "end": end, "wall_s": 20.0,
            "user_cpu_s": 1.5, "sys_cpu_s": 0.25, "max_rss_kb": 20480}


def snapshot(directory: Path, lrms: str, taken_at: float, **states: BatchState) -> Path:
    jobs = {i: BatchJobStatus(i, s, s.value, name=f"hpcpull-Slurm-1.0-{i}") for i, s in states.items()}
    path = directory / f"{lrms}-status.json"
    path.write_text(Snapshot(taken_at, True, "", jobs).to_json())
    return path


# --------------------------------------------------------------------------- the gateway log


def test_log_lines_parse_as_the_writer_formats_them() -> None:
    line = format_line("HELD", {"job": "5.0", "reason": 'slurm said "no" twice', "wall_s": 1.5}, now=NOW)
    event = parse_log_line(line)
    assert event is not None and event.time == NOW and event.event == "HELD"
    assert event.fields == {"job": "5.0", "reason": 'slurm said "no" twice', "wall_s": "1.5"}
    assert event.line == line.rstrip("\n")
    for junk in ("", "hello world", "2026-13-45T00:00:00Z ROUTED job=1.0", 'ROUTED "unterminated'):
        assert parse_log_line(junk) is None


def test_every_users_log_and_the_rotated_generations_are_read_oldest_first(tmp_path: Path) -> None:
    base = tmp_path / "HpcPullLog"
    for name in ("HpcPullLog", "HpcPullLog.old", "HpcPullLog.alice", "HpcPullLog.alice.old", "HpcPullLogX"):
        (tmp_path / name).write_text("")
    assert [p.name for p in log_files(base)] == [
        "HpcPullLog.old", "HpcPullLog", "HpcPullLog.alice.old", "HpcPullLog.alice"]
    assert [log_owner(base, p) for p in log_files(base)] == ["", "", "alice", "alice"]


@pytest.mark.parametrize("events, expected", [
    (["ROUTED"], "staged"),
    (["ROUTED", "SUBMIT_DEFERRED"], "staged"),
    (["ROUTED", "SUBMITTED"], "submitted"),
    (["ROUTED", "SUBMITTED", "STATUS 1->2"], "running"),
    (["ROUTED", "SUBMITTED", "STATUS 1->2", "STATUS 2->1"], "submitted"),  # requeued by the batch system
    (["ROUTED", "SUBMITTED", "STATUS 1->2", "STATUS 2->4", "FINISHED exit_code=0"], "finished exit 0"),
    (["ROUTED", "SUBMITTED", "STATUS 1->2", "FINISHED exit_signal=9"], "finished signal 9"),
    (["ROUTED", "HELD reason=refused"], "held: refused"),
    (["REFUSED reason=bad"], "held: bad"),
    (["ROUTED", "SUBMITTED", "STATUS 1->5 reason=oom", "STATUS 5->2"], "running"),  # released
    (["ROUTED", "SUBMITTED", "REMOVED"], "removed"),
    (["ROUTED", "SUBMITTED", "REMOVED", "CLEANED"], "cleaned (removed)"),
    (["ROUTED", "SUBMITTED", "STATUS 1->2", "CLEANED"], "cleaned (while running)"),
    (["REFUSED reason=bad", "CLEANED"], "cleaned (held: bad)"),
    (["ROUTED", "FINISHED exit_code=2", "CLEANED"], "cleaned (exit 2)"),
    (["ROUTED", "FINISHED exit_code=2", "CLEANED", "ROUTED", "SUBMITTED"], "submitted"),  # routed again
])
def test_the_phase_follows_the_log(events: list[str], expected: str) -> None:
    job = JobView("1.0")
    for number, spec in enumerate(events):
        kind, _, rest = spec.partition(" ")
        fields = {"job": "1.0", "batch_job": "7" if kind == "SUBMITTED" else ""}
        for word in rest.split():
            key, _, value = word.partition("=")
            fields.update({key: value} if value else {"status": key})
        event = parse_log_line(format_line(kind, fields, now=NOW + number))
        assert event is not None
        apply_event(job, event, "")
    assert job.phase_text == expected


# --------------------------------------------------------------------------- the list


def test_jobs_are_merged_from_directories_log_and_snapshot(site: dict[str, Any]) -> None:
    scratch, logbase = site["scratch"], site["log"] / "HpcPullLog"
    # 10.0 finished (exit_status on disk), 11.0 running (started, snapshot RUNNING),
    # 12.0 held (log only), 13.0 cleaned long ago (alice's rotated log, no directory),
    # 14.0 just staged (directory only), 15.0 on the Pbs route, submitted.
    job_dir(scratch, "bob", 10, state={"batch_job_id": "77", "submitted_at": NOW - 500},
            started={"time": NOW - 120, "host": "n1", "batch_job_id": "77"}, exit_status=exit_record())
    job_dir(scratch, "bob", 11, state={"batch_job_id": "78", "submitted_at": NOW - 400},
            started={"time": NOW - 60, "host": "n2", "batch_job_id": "78"})
    job_dir(scratch, "carol", 14)
    job_dir(site["pbs-scratch"], "bob", 15, state={"batch_job_id": "5.pbsserver", "submitted_at": NOW - 30})
    log(logbase,
        ("ROUTED", NOW - 900, {"job": "12.0", "route": "Slurm", "owner": "dave",
                               "job_dir": str(scratch / "dave/12/0")}),
        ("SUBMITTED", NOW - 890, {"job": "12.0", "copy": "112.0", "route": "Slurm", "batch_job": "79"}),
        ("STATUS", NOW - 880, {"job": "12.0", "copy": "112.0", "route": "Slurm", "batch_job": "79",
                               "status": "1->2"}),
        ("STATUS", NOW - 870, {"job": "12.0", "copy": "112.0", "route": "Slurm", "batch_job": "79",
                               "status": "2->5", "reason": "hpcpull: batch job 79 ran out of memory"}),
        ("SUBMITTED", NOW - 500, {"job": "10.0", "copy": "110.0", "route": "Slurm", "batch_job": "77"}))
    log(site["log"] / "HpcPullLog.alice.old",
        ("ROUTED", NOW - 90_000, {"job": "13.0", "route": "Slurm", "job_dir": str(scratch / "alice/13/0")}),
        ("FINISHED", NOW - 89_000, {"job": "13.0", "copy": "113.0", "route": "Slurm", "batch_job": "70",
                                    "exit_code": 0}),
        ("CLEANED", NOW - 88_990, {"job": "13.0", "copy": "113.0", "route": "Slurm", "batch_job": "70"}))
    snapshot(site["status"], "slurm", NOW - 5, **{"77": BatchState.COMPLETED, "78": BatchState.RUNNING,
                                                 "79": BatchState.RUNNING})

    s = survey(site["config"], now=NOW)
    phases = {j.source_id: j.phase_text for j in s.jobs.values()}
    assert phases == {"10.0": "finished exit 3", "11.0": "running",
                      "12.0": "held: hpcpull: batch job 79 ran out of memory", "13.0": "cleaned (exit 0)",
                      "14.0": "staged", "15.0": "submitted"}
    jobs = s.jobs
    assert (jobs["10.0"].copy_id, jobs["10.0"].owner, jobs["10.0"].route) == ("110.0", "bob", "Slurm")
    assert jobs["13.0"].owner == "alice"  # from the name of the log file the line came from
    assert jobs["13.0"].dir_state == "gone" and jobs["12.0"].dir_state == "gone"
    assert jobs["15.0"].route == "Pbs" and jobs["15.0"].lrms == "pbs"
    assert {j: jobs[j].lrms_state for j in jobs} == {"10.0": "COMPLETED", "11.0": "RUNNING", "12.0": "RUNNING",
                                                     "13.0": "?", "14.0": "-", "15.0": "?"}
    assert s.snapshots["slurm"] is not None and s.snapshots["pbs"] is None

    text = list_text(s, select(s.jobs, None, None), None)
    lines = text.splitlines()
    assert lines[0] == f"Site status: {NO_SITE_STATUS}"
    assert "slurm: snapshot of 3 batch job(s), taken 5s ago" in text and "pbs: no status snapshot yet" in text
    header = lines.index(next(line for line in lines if line.startswith("JOB ")))
    row = {line.split()[0]: line.split() for line in lines[header + 1:header + 7]}
    assert row["11.0"] == ["11.0", "?", "Slurm", "bob", "78", "RUNNING", "10m00s", "running"]
    assert row["13.0"] == ["13.0", "113.0", "Slurm", "alice", "70", "?", "1d01h", "cleaned", "(exit", "0)"]
    assert row["14.0"][4:7] == ["-", "-", "10m00s"]
    counts = lines[header + 8:]
    assert [c.split() for c in counts] == [
        ["ROUTE", "staged", "submitted", "running", "finished", "held", "cleaned", "total"],
        ["Pbs", "0", "1", "0", "0", "0", "0", "1"],
        ["Slurm", "1", "0", "1", "1", "1", "1", "5"],
        ["all", "1", "1", "1", "1", "1", "1", "6"],
    ]
    only = select(s.jobs, "slurm", "bob")
    assert [j.source_id for j in only] == ["10.0", "11.0"]


def test_failed_jobs_kept_aside_are_read_from_there(site: dict[str, Any]) -> None:
    """HPCPULL_KEEP_FAILED_JOBS moves <Owner>/<C>/<P> to <Owner>/failed/<C>.<P>.<stamp>."""
    failed = site["scratch"] / "bob" / "failed"
    for stamp, code in (("20270115T080000", 3), ("20270115T090000", 4)):
        kept = job_dir(failed, "x", 0, state={"batch_job_id": f"7{code}", "cleaned": True},
                       exit_status=exit_record(code), failed=f"exit code {code}\n")
        kept.rename(failed / f"10.0.{stamp}")
        shutil.rmtree(failed / "x")
    job = survey(site["config"], now=NOW).jobs["10.0"]  # no log: the newest copy
    assert (job.dir_state, job.kept_dir, job.kept_reason) == ("kept", failed / "10.0.20270115T090000", "exit code 4")
    assert (job.phase_text, job.batch_job_id, job.owner, job.route) == ("cleaned (exit 4)", "74", "bob", "Slurm")
    assert job.job_dir == site["scratch"] / "bob" / "10" / "0"
    log(site["log"] / "HpcPullLog",  # the log names the copy of the last run
        ("CLEANED", NOW, {"job": "10.0", "copy": "11.0", "kept": str(failed / "10.0.20270115T080000")}))
    s = survey(site["config"], now=NOW)
    job = s.jobs["10.0"]
    assert (job.kept_dir, job.phase_text, job.copy_id) == (failed / "10.0.20270115T080000", "cleaned (exit 3)", "11.0")
    text = story_text(s, job, story(s, job))
    assert f"  job directory         {job.job_dir} (moved aside by CLEANUP)\n" in text
    assert f"  kept for inspection   {failed}/10.0.20270115T080000: exit code 3\n" in text
    assert f"  job stdout            {failed}/10.0.20270115T080000/.hpcpull/stdout (not there)\n" in text


def test_a_snapshot_from_before_the_jobs_end_is_not_its_state_now(site: dict[str, Any]) -> None:
    job_dir(site["scratch"], "bob", 10, state={"batch_job_id": "77"}, exit_status=exit_record(end=NOW - 10))
    snapshot(site["status"], "slurm", NOW - 11, **{"77": BatchState.RUNNING})
    job = survey(site["config"], now=NOW).jobs["10.0"]
    assert job.lrms_state == "?" and "predates the job's end" in job.lrms_error
    snapshot(site["status"], "slurm", NOW - 9, **{"77": BatchState.COMPLETED})
    assert survey(site["config"], now=NOW).jobs["10.0"].lrms_state == "COMPLETED"


def test_a_failed_snapshot_says_why_instead_of_not_knowing_the_job(site: dict[str, Any]) -> None:
    job_dir(site["scratch"], "bob", 12, state={"batch_job_id": "79"})
    path = site["status"] / "slurm-status.json"
    path.write_text(Snapshot(NOW - 30, False, "squeue timed out after 15 s").to_json())
    job = survey(site["config"], now=NOW).jobs["12.0"]
    assert job.lrms_state == "?"
    assert job.lrms_error.startswith("? (the newest status snapshot, taken ")
    assert job.lrms_error.endswith(", failed: squeue timed out after 15 s; try --live)")
    snapshot(site["status"], "slurm", NOW - 5, **{"79": BatchState.PENDING})
    job = survey(site["config"], now=NOW).jobs["12.0"]
    assert job.lrms_state == "PENDING" and not job.lrms_error


def test_snapshots_and_site_status_of_other_users_are_not_believed(site: dict[str, Any]) -> None:
    job_dir(site["scratch"], "bob", 11, state={"batch_job_id": "78"})
    path = snapshot(site["status"], "slurm", NOW - 5, **{"78": BatchState.RUNNING})
    (site["status"] / "site-status.json").write_text(json.dumps({
        "taken_at": NOW - 20, "last_success": NOW - 80, "lrms_reachable": False,
        "last_error": "squeue timed out after 30 s", "status_shared": True,
        "jobs": {"Slurm": {"idle": 2, "running": 5}, "Pbs": {"idle": 0, "running": 1}}, "lrms": ["slurm", "pbs"]}))
    s = survey(site["config"], now=NOW)
    assert s.jobs["11.0"].lrms_state == "RUNNING"
    lines = list_text(s, list(s.jobs.values()), "Slurm").splitlines()
    assert lines[:6] == [
        f"Site status (poller ran {clock(NOW - 20)}, 20s ago):",
        "  LRMS reachable        no (slurm, pbs)",
        f"  last successful poll  {clock(NOW - 80)} (1m20s ago)",
        "  last error            squeue timed out after 30 s",
        "  status shared         yes",
        "  route Slurm           idle 2, running 5",  # --route Slurm: only its counts
    ]
    if os.geteuid() != 0:
        pytest.skip("giving the files to another user needs root")
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(path, nobody, -1)
    os.chown(site["status"] / "site-status.json", nobody, -1)
    s = survey(site["config"], now=NOW)
    assert s.jobs["11.0"].lrms_state == "?" and s.site_status is None
    assert list_text(s, list(s.jobs.values()), None).startswith(f"Site status: {NO_SITE_STATUS}\n")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can reach (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="hpcpull-status-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_other_owners_directories_are_skipped_with_a_note(shared_tmp: Path) -> None:
    """Run the survey as "nobody" (a forked child that drops root): it sees its own jobs only."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    user = pwd.getpwnam("nobody")
    scratch = shared_tmp / "scratch"
    (shared_tmp / "log").mkdir(mode=0o1777)
    (shared_tmp / "log").chmod(0o1777)
    for owner, cluster in (("alice", 20), ("alice", 21), ("carol", 22), ("nobody", 23)):
        job_dir(scratch, owner, cluster, state={"batch_job_id": str(cluster)})
    scratch.chmod(0o1777)
    for owner in ("alice", "carol"):
        (scratch / owner).chmod(0o700)  # as the hooks create them: <root>/<Owner> is private
    for path in [scratch / "nobody", *(scratch / "nobody").rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    log(shared_tmp / "log" / "HpcPullLog",  # the gateway's log knows alice's two jobs
        *(("ROUTED", NOW, {"job": f"{c}.0", "route": "Slurm", "owner": "alice",
                           "job_dir": str(scratch / f"alice/{c}/0")}) for c in (20, 21)))
    knobs = {"JOB_ROUTER_ROUTE_NAMES": "Slurm", "JOB_ROUTER_ROUTE_Slurm": "UNIVERSE VANILLA",
             "HPCPULL_SCRATCH_ROOT": str(scratch), "HPCPULL_STATUS_CACHE_DIR": str(shared_tmp / "status"),
             "HPCPULL_LOG": str(shared_tmp / "log" / "HpcPullLog")}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become nobody, survey, report as JSON
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            s = survey(Config(lambda key: knobs.get(key)), now=NOW)
            result = {"notes": s.notes, "jobs": {j.source_id: [j.phase, j.dir_state] for j in s.jobs.values()}}
            os.write(write, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        result = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    # alice: two jobs the log knows behind one closed directory; carol: at least one
    assert result["notes"] == ["3 job directories not readable as nobody; run as root for all"]
    assert result["jobs"] == {"20.0": ["staged", "unreadable"], "21.0": ["staged", "unreadable"],
                              "23.0": ["submitted", "present"]}


# --------------------------------------------------------------------------- one job


def test_a_job_is_found_by_source_copy_or_batch_id(site: dict[str, Any]) -> None:
    job_dir(site["scratch"], "bob", 5, state={"batch_job_id": "9"})
    job_dir(site["scratch"], "bob", 7, state={"batch_job_id": "5"})
    log(site["log"] / "HpcPullLog", ("SUBMITTED", NOW, {"job": "7.0", "copy": "8.0", "batch_job": "5"}))
    s = survey(site["config"], now=NOW)
    found = {arg: (find_job(s, arg) or JobView("none")).source_id
             for arg in ("5.0", "8.0", "9", "5", "7", "8", "6.0")}
    # a bare number is a batch job id before it is a cluster id
    assert found == {"5.0": "5.0", "8.0": "7.0", "9": "5.0", "5": "7.0", "7": "7.0", "8": "7.0", "6.0": "none"}


def test_the_story_of_a_finished_job(site: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    control = job_dir(
        site["scratch"], "bob", 10, state={"batch_job_id": "77"}, exit_status=exit_record(),
        started={"time": NOW - 120, "host": "node7"},
        hook_log="2027-01-15 08:00:00 update: submitted batch job 77\n"
                 "2027-01-15 08:01:00 finalize: returned 2 output(s); 1 problem(s): out.dat: not found\n",
        manifest={"version": 1, "entries": [{"name": "in.dat", "type": "file", "size": 2048, "mtime_ns": 1}]},
    ) / ".hpcpull"
    log(site["log"] / "HpcPullLog",
        ("SUBMITTED", NOW - 500, {"job": "10.0", "copy": "110.0", "route": "Slurm", "batch_job": "77"}),
        ("FINISHED", NOW - 90, {"job": "10.0", "copy": "110.0", "route": "Slurm", "batch_job": "77",
                                "exit_code": 3, "output_errors": 1}))
    (control / "batch.out").write_text("")
    s = survey(site["config"], now=NOW)
    job = s.jobs["10.0"]
    data = story(s, job)
    assert data["returned"] == {"count": 2, "problems": ["out.dat: not found"], "files": None}
    assert data["exit"]["exit_code"] == 3 and data["ask_lrms"] == "scontrol show job 77; sacct -j 77"
    text = story_text(s, job, data)
    assert text.splitlines()[:5] == ["Job 10.0: finished exit 3", "  source job            10.0",
                                     "  routed copy           110.0", "  route                 Slurm",
                                     "  owner                 bob"]
    assert "\nFiles staged (input-manifest.json):\n  NAME    TYPE     SIZE\n  in.dat  file  2.0 KiB\n" in text
    assert "\nFiles returned: 2\n  problem: out.dat: not found\n" in text
    assert ("\nExit status (exit_status file): exit code 3, wall 20.0 s, CPU 1.50 s user + 0.25 s sys, "
            "max RSS 20.0 MiB\n") in text
    assert f"  batch system output   {control}/batch.out\n" in text
    assert f"  job stdout            {control}/stdout (not there)\n" in text
    assert "payload started       " in text and " on node7\n" in text


def test_main_prints_json_and_says_so_in_one_line_when_a_job_is_unknown(
        condor_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scratch = tmp_path / "scratch"
    job_dir(scratch, "bob", 11, state={"batch_job_id": "78"})
    condor_config({"Slurm": "UNIVERSE VANILLA"}, {"HPCPULL_SCRATCH_ROOT": str(scratch),
                                                   "HPCPULL_STATUS_CACHE_DIR": str(tmp_path / "status")})
    assert main(["--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(j["source_job"], j["phase"], j["batch_job_id"], j["lrms_state"]) for j in listing["jobs"]] == [
        ("11.0", "submitted", "78", None)]
    assert listing["counts"] == {"Slurm": {"submitted": 1}} and listing["site_status"] is None
    assert main(["--json", "78"]) == 0
    assert json.loads(capsys.readouterr().out)["job"]["source_job"] == "11.0"
    assert main(["11.0", "--owner", "alice"]) == 1  # filtered away
    capsys.readouterr()
    assert main(["404.0"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("hpcpull status: no hpcpull job '404.0'")


def test_a_bad_configuration_is_one_line_and_exit_2(condor_config: Any, capsys: pytest.CaptureFixture[str]) -> None:
    condor_config({"Slurm": "UNIVERSE VANILLA"}, {"HPCPULL_STATUS_CACHE_DIR": "relative/dir"})
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("hpcpull status: HPCPULL_STATUS_CACHE_DIR = 'relative/dir'")
    assert len(err.splitlines()) == 1
