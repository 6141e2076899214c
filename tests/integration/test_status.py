"""`hpcpull status` on real jobs: a gateway (router simulation + real hooks) in front of the private Slurm.

Three jobs at once: one run to completion (and cleaned up), one held by TRANSLATE (a missing
input file), one still running (sleep 300, removed at the end).  `status` must list all three
with the right phases and Slurm states, and `status <id>` must tell each one's story with the
batch job id Slurm itself knows for that job.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import htcondor2
import pytest

from hpcpull.admin.status.command import main
from tests.conftest import REPO, make_gateway
from tests.integration.batch_tracking import settled_slurm_state
from tests.integration.test_pipeline import make_job

pytestmark = pytest.mark.usefixtures("slurm_env")


def slurm(router, *argv: str) -> str:
    out = subprocess.run(list(argv), env=router.slurm_env, capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def status_cli(router, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m hpcpull.admin.status` with CONDOR_CONFIG pointing at the gateway, as an admin runs it."""
    env = dict(os.environ, CONDOR_CONFIG=str(router.config_path), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "hpcpull.admin.status", *argv], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def three_jobs(gateway, tmp_path):
    """(router, done, held, running): source ids of a finished, a held and a running job."""
    submit = tmp_path / "done"
    submit.mkdir()
    (submit / "in.txt").write_text("twelve bytes")
    done = gateway.submit(make_job(submit, "cat in.txt > out.txt; exit 3\n", TransferInput="in.txt",
                                   TransferOutput="out.txt"))
    held = gateway.submit(make_job(tmp_path / "held", "true\n", TransferInput="nope.dat"))
    running = gateway.submit(make_job(tmp_path / "running", "sleep 300\n"))
    for job in (done, held, running):
        gateway.route(job, "Slurm")

    def settled(r) -> bool:
        return (not r.in_queue(done) and r.jobs[held].get("JobStatus") == 5
                and r.jobs[running].get("JobStatus") == 2)

    try:
        gateway.run_until(settled, timeout=60)
        poll = gateway.schedd_cron()  # the poller: site status and a snapshot taken after all this
        assert poll.exit_code == 0, poll.stderr
        yield gateway, done, held, running
    finally:
        if gateway.in_queue(running):
            gateway.condor_rm(running)
            gateway.run_until(lambda r: not r.in_queue(running), timeout=30)


def test_status_lists_finished_held_and_running_jobs_and_tells_their_stories(three_jobs, capsys):
    router, done, held, running = three_jobs
    copies = {job: router.routed[job].copy_id for job in (done, held, running)}
    batch_done = router.history[done]["HpcPullBatchJobId"]
    batch_running = router.jobs[copies[running]]["HpcPullBatchJobId"]
    # Slurm's own word: each batch job is the one named after its source job.
    assert f"-{done}-" in slurm(router, "squeue", "-h", "-t", "all", "-j", batch_done, "-o", "%j")
    assert slurm(router, "squeue", "-h", "-t", "all", "-j", batch_running, "-o", "%j|%T").endswith(
        f"-{running}-" + slurm(router, "squeue", "-h", "-t", "all", "-j", batch_running, "-o", "%j")
        .rsplit("-", 1)[1] + "|RUNNING")

    # ---- the list, as JSON through the module's command line
    out = status_cli(router, "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    owner = os.environ.get("USER", "root") or "root"
    jobs = {j["source_job"]: j for j in listing["jobs"]}
    assert set(jobs) == {done, held, running}
    # A job refused by TRANSLATE has one log line, written before the router numbers its copy.
    assert {j: jobs[j]["routed_copy"] for j in (done, running)} == {j: copies[j] for j in (done, running)}
    assert all(jobs[j]["route"] == "Slurm" for j in jobs)
    assert jobs[done]["phase"] == "cleaned" and jobs[done]["phase_text"] == "cleaned (exit 3)"
    done_state = slurm(router, "squeue", "-h", "-t", "all", "-j", batch_done, "-o", "%T")
    assert done_state == "FAILED"  # the launcher exits as the payload did (3)
    assert jobs[done]["batch_job_id"] == batch_done and jobs[done]["lrms_state"] == done_state
    # a failed job's directory is kept (HPCPULL_KEEP_FAILED_JOBS) and read from there
    assert jobs[done]["job_dir_state"] == "kept"
    kept = Path(jobs[done]["kept_dir"])
    assert kept.parent == router.scratch / owner / "failed" and kept.name.startswith(f"{done}.")
    assert jobs[held]["phase"] == "held" and "nope.dat" in jobs[held]["hold_reason"]
    assert jobs[held]["batch_job_id"] is None and jobs[held]["job_dir_state"] == "none"
    assert jobs[running]["phase"] == "running" and jobs[running]["lrms_state"] == "RUNNING"
    assert jobs[running]["batch_job_id"] == batch_running
    assert jobs[running]["owner"] == owner and jobs[done]["owner"] == owner
    assert listing["counts"] == {"Slurm": {"cleaned": 1, "held": 1, "running": 1}}
    site = listing["site_status"]
    assert site["lrms_reachable"] is True and site["jobs"] == {"Slurm": {"idle": 0, "running": 1}}

    # ---- the list, as text, in-process through main() (CONDOR_CONFIG for this call)
    old_config = os.environ.get("CONDOR_CONFIG")
    os.environ["CONDOR_CONFIG"] = str(router.config_path)
    htcondor2.reload_config()
    try:
        assert main([]) == 0
        text = capsys.readouterr().out
        assert main([done]) == 0
        done_story = capsys.readouterr().out
        assert main(["--live", batch_running]) == 0
        running_story = capsys.readouterr().out
        assert main(["--json", held]) == 0
        held_story = json.loads(capsys.readouterr().out)
        assert main(["--route", "Other"]) == 0
        other = capsys.readouterr().out
        assert main(["999999.0"]) == 1
        unknown = capsys.readouterr()
    finally:
        if old_config is None:
            os.environ.pop("CONDOR_CONFIG", None)
        else:
            os.environ["CONDOR_CONFIG"] = old_config
        htcondor2.reload_config()
    print(text, done_story, running_story, sep="\n")  # the examples in the report (pytest -s)

    lines = text.splitlines()
    assert lines[0].startswith("Site status (poller ran ")
    assert lines[1:6] == ["  LRMS reachable        yes (slurm)", lines[2], "  last error            none",
                          "  status shared         yes", "  route Slurm           idle 0, running 1"]
    assert lines[2].startswith("  last successful poll  ") and lines[2].endswith("s ago)")
    header = next(i for i, line in enumerate(lines) if line.startswith("JOB "))
    assert lines[header].split() == ["JOB", "COPY", "ROUTE", "OWNER", "BATCH", "JOB", "LRMS", "STATE", "AGE",
                                     "HPCPULL", "PHASE"]
    rows = {line.split()[0]: line for line in lines[header + 1:header + 4]}
    assert rows[done].split()[:6] == [done, copies[done], "Slurm", owner, batch_done, "FAILED"]
    assert rows[done].endswith("cleaned (exit 3)")
    assert rows[running].split()[:6] == [running, copies[running], "Slurm", owner, batch_running, "RUNNING"]
    assert rows[running].endswith("running")
    assert rows[held].split()[4:6] == ["-", "-"] and "held: input file 'nope.dat' not found" in rows[held]
    # columns are aligned: every row's COPY column starts where the header's does
    column = lines[header].index("COPY")
    assert all(row[column - 2:column] == "  " and row[column] != " " for row in rows.values())
    counts_header = next(line for line in lines if line.startswith("ROUTE"))
    assert counts_header.split() == ["ROUTE", "running", "held", "cleaned", "total"]
    assert lines[lines.index(counts_header) + 1].split() == ["Slurm", "1", "1", "1", "3"]
    assert "No hpcpull jobs match." in other

    # ---- the finished job's story: log lines in order, hook.log and exit facts from the kept directory
    assert done_story.startswith(f"Job {done}: cleaned (exit 3)\n")
    assert f"kept for inspection   {kept}: exit code 3\n" in done_story
    assert f"Hook log ({kept}/.hpcpull/hook.log):\n" in done_story and "update: JobStatus 2 -> 4" in done_story
    assert f"batch system output   {kept}/.hpcpull/batch.out\n" in done_story
    assert f"routed copy           {copies[done]}" in done_story
    assert f"slurm batch job {batch_done}: FAILED" in done_story
    events = [line.split()[1] for line in done_story.splitlines() if line.startswith("  20") and "Z " in line]
    assert events == ["ROUTED", "SUBMITTED", "STATUS", "STATUS", "FINISHED", "CLEANED"]
    assert "Exit status (exit_status file): exit code 3, wall" in done_story
    assert f"scontrol show job {batch_done}" in done_story

    # ---- the running job's story, found by its batch job id, with one live Slurm query
    assert running_story.startswith(f"Job {running}: running\n")
    assert f"slurm batch job {batch_running}: RUNNING" in running_story and "live query" in running_story
    job_dir = router.scratch / owner / running.split(".")[0] / "0"
    assert f"job directory         {job_dir}\n" in running_story
    assert f"batch script          {job_dir}/.hpcpull/job.sh\n" in running_story
    assert f"translate: submitted batch job {batch_running}" in running_story  # from hook.log (TRANSLATE submits)
    assert "Files staged (input-manifest.json):" in running_story
    assert f"batch system output   {job_dir}/.hpcpull/batch.out" in running_story

    # ---- the held job's story, as JSON
    assert held_story["job"]["source_job"] == held
    assert [line.split()[1] for line in held_story["log"]] == ["REFUSED", "HELD"]
    assert held_story["job"]["phase"] == "held" and held_story["exit"] is None and held_story["script"] is None

    assert unknown.out == "" and len(unknown.err.splitlines()) == 1
    assert unknown.err.startswith("hpcpull status: no hpcpull job '999999.0'")

    # ---- the running job removed: Slurm cancels it, CLEANUP removes its directory
    router.condor_rm(running)
    router.run_until(lambda r: not r.in_queue(running), timeout=30)
    out = status_cli(router, "--live", running)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"Job {running}: cleaned (while running)\n")
    assert settled_slurm_state(router.slurm_env, batch_running) == "CANCELLED"
    assert f"slurm batch job {batch_running}: CANCELLED (live query)" in out.stdout
    assert [line.split()[1] for line in out.stdout.splitlines() if line.startswith("  20") and "Z " in line] \
        == ["ROUTED", "SUBMITTED", "STATUS", "CLEANED"]


def test_status_of_a_finished_job_whose_directory_is_kept(slurm_env, tmp_path):
    """HPCPULL_KEEP_JOB_DIRS: the story has the exit_status file, hook.log, staged and returned files."""
    router = make_gateway(tmp_path, "slurm", slurm_env, HPCPULL_ROUTE_Slurm_PARTITION="debug",
                          HPCPULL_KEEP_JOB_DIRS="true")
    submit = tmp_path / "submit"
    submit.mkdir()
    (submit / "in.txt").write_text("twelve bytes")
    source = router.submit(make_job(submit, "cat in.txt > out.txt; echo hi\n", TransferInput="in.txt",
                                    TransferOutput="out.txt"))
    router.route(source, "Slurm")
    router.run_until(lambda r: not r.in_queue(source), timeout=60)
    batch_id = router.history[source]["HpcPullBatchJobId"]
    job_dir = router.scratch / (os.environ.get("USER", "root") or "root") / source.split(".")[0] / "0"
    record = json.loads((job_dir / ".hpcpull" / "exit_status").read_text())

    out = status_cli(router, batch_id)  # found by its batch job id
    assert out.returncode == 0, out.stderr
    story = out.stdout
    print(story)
    assert story.startswith(f"Job {source}: cleaned (exit 0)\n")
    assert f"job directory         {job_dir}\n" in story
    # Every snapshot was taken while the job ran, before it was submitted, or failed under load:
    # none is shown as the batch job's state now (which snapshot it was is timing; the unit
    # tests of the survey pin each wording).
    [batch_line] = [line for line in story.splitlines() if line.startswith("  batch system          ")]
    assert batch_line.startswith(f"  batch system          slurm batch job {batch_id}: ? (")
    assert batch_line.endswith("try --live)")
    live = status_cli(router, "--live", source).stdout
    assert f"batch system          slurm batch job {batch_id}: COMPLETED (live query)\n" in live
    assert (f"Exit status (exit_status file): exit code 0, wall {record['wall_s']:.1f} s, "
            f"CPU {record['user_cpu_s']:.2f} s user + {record['sys_cpu_s']:.2f} s sys, "
            f"max RSS {record['max_rss_kb'] / 1024:.1f} MiB") in story
    staged = story.split("Files staged (input-manifest.json):\n")[1].split("\n\n")[0].splitlines()
    assert [line.split() for line in staged] == [["NAME", "TYPE", "SIZE"], ["in.txt", "file", "12", "B"],
                                                 ["job.sh", "file", str((submit / "job.sh").stat().st_size), "B"]]
    assert re.search(r"\nFiles returned: 1 \([^)\n]+\)\n", story)
    assert "finalize: returned 1 output(s)" in story and "cleanup: nothing to cancel" in story
    look = story.split("Where to look next:\n")[1]
    assert f"job stdout            {job_dir}/.hpcpull/stdout\n" in look and "(not there)" not in look
    assert (job_dir / ".hpcpull" / "stdout").read_text() == "hi\n"
