"""A job through the real hooks, the real private Slurm and back, driven by the router simulation."""

import os
import subprocess
import time
from pathlib import Path

import classad2
import pytest

from hpcpull.router.classads import parse_old_ad

pytestmark = pytest.mark.usefixtures("slurm_env")


def make_job(submit_dir: Path, script: str, **attrs) -> classad2.ClassAd:
    submit_dir.mkdir(parents=True, exist_ok=True)
    exe = submit_dir / "job.sh"
    exe.write_text("#!/bin/bash\n" + script)
    exe.chmod(0o755)
    ad = classad2.ClassAd()
    ad.update({
        "Cmd": str(exe), "Iwd": str(submit_dir), "Owner": os.environ.get("USER", "root") or "root",
        "JobUniverse": 5, "WantHpc": True, "In": "/dev/null", "Out": "job.out", "Err": "job.err",
        "RequestCpus": 1, "RequestMemory": 64, "ShouldTransferFiles": "YES",
        "WhenToTransferOutput": "ON_EXIT", "NumJobStarts": 0, "JobRunCount": 0,
    })
    ad.update(attrs)
    return ad


def finished(router, source):
    return lambda r: not r.in_queue(source)


def squeue_state(router, batch_id):
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", batch_id, "-o", "%T"], env=router.slurm_env,
                         capture_output=True, text=True, timeout=15)
    return out.stdout.strip()


def test_full_job_with_inputs_args_env_outputs_and_remap(gateway, tmp_path):
    submit = tmp_path / "submit"
    (submit / "indir" / "sub").mkdir(parents=True)
    (submit / "indir" / "sub" / "deep.txt").write_text("deep\n")
    (submit / "contents").mkdir()
    (submit / "contents" / "flat.txt").write_text("flat\n")
    (submit / "input.txt").write_text("line1\nline2\n")
    (submit / "stdin.txt").write_text("from stdin\n")
    script = r"""
set -e
printf '%s\n' "$@" > args.txt
echo "GREETING=$GREETING" > env.txt
cat indir/sub/deep.txt flat.txt input.txt > combined.txt
mkdir -p outdir/nested && echo nested > outdir/nested/n.txt
read line; echo "stdin: $line"
echo "to stderr" >&2
"""
    ad = make_job(submit, script,
                  Arguments="plain 'with spaces' 'it''s' \"double\"",
                  Environment="GREETING='hello world' OTHER=x",
                  In="stdin.txt", TransferInput="indir,contents/,input.txt",
                  TransferOutput="args.txt,env.txt,combined.txt,outdir",
                  TransferOutputRemaps="combined.txt = results/all.txt")
    source = gateway.submit(ad)
    routed = gateway.route(source, "Slurm")
    translate = gateway.calls[-1]
    assert translate.exit_code == 0, translate.stderr
    for line in translate.stdout.splitlines():
        assert len(classad2.parseOne(line + "\n", classad2.ParserType.Old)) == 1
    copy = gateway.jobs[routed.copy_id]
    assert copy["Managed"] == "External" and copy["ManagedManager"] == "hpcpull"
    assert str(copy.lookup("Requirements")) == "false"
    job_dir = Path(copy["HpcPullJobDir"])
    assert (job_dir / ".hpcpull" / "job.sh").read_text().startswith("#!/bin/bash")

    gateway.run_until(finished(gateway, source), timeout=90)
    assert (submit / "job.out").read_text() == "stdin: from stdin\n"
    assert (submit / "job.err").read_text() == "to stderr\n"
    assert (submit / "args.txt").read_text().splitlines() == ["plain", "with spaces", "it's", '"double"']
    assert (submit / "env.txt").read_text() == "GREETING=hello world\n"
    assert (submit / "results" / "all.txt").read_text() == "deep\nflat\nline1\nline2\n"
    assert not (submit / "combined.txt").exists()
    assert (submit / "outdir" / "nested" / "n.txt").read_text() == "nested\n"
    events = gateway.events[source]
    assert events[1].startswith("001 executing") and events[-1] == "005 terminated normally (return value 0)"
    assert not job_dir.exists(), "CLEANUP removes the job directory"
    # every hook output line the router read parsed, and UPDATE always exited 0
    assert all(c.exit_code == 0 for c in gateway.calls), [(c.hook, c.stderr) for c in gateway.calls]


def test_exit_code_and_usage_reach_the_source_job(gateway, tmp_path):
    ad = make_job(tmp_path / "submit", "python3 -c 'x = bytearray(30_000_000); sum(range(3_000_000))'\nexit 3\n")
    source = gateway.submit(ad)
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    seen = gateway.history[source]
    assert seen["ExitCode"] == 3
    assert seen["NumJobStarts"] == 1
    assert seen["RemoteWallClockTime"] > 0 and seen["RemoteUserCpu"] > 0
    assert seen["MemoryUsage"] >= 25
    assert seen["EnteredCurrentStatus"] == seen["CompletionDate"], "FINALIZE fixes EnteredCurrentStatus"
    assert seen["HpcPullBatchJobId"], "the batch job id is mirrored to the source job"
    assert seen["JobStatus"] == 4 and seen["Managed"] == "ScheddDone"
    assert gateway.events[source][-1] == "005 terminated normally (return value 3)"
    # UPDATE printed the running set before the completed set
    updates = [parse_old_ad(c.stdout) for c in gateway.calls if c.hook == "update" and c.stdout.strip()]
    statuses = [u["JobStatus"] for u in updates if "JobStatus" in u]
    assert statuses == [2, 4]


def test_signal_death_reports_exit_by_signal(gateway, tmp_path):
    ad = make_job(tmp_path / "submit", "kill -9 $$\n")
    source = gateway.submit(ad)
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    assert gateway.events[source][-1] == "005 terminated by signal 9"


def test_removed_while_running_is_cancelled_in_slurm(gateway, tmp_path):
    ad = make_job(tmp_path / "submit", "sleep 300\n")
    source = gateway.submit(ad)
    routed = gateway.route(source, "Slurm")
    gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 2, timeout=60)
    batch_id = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    assert squeue_state(gateway, batch_id) == "RUNNING"
    gateway.condor_rm(source)
    gateway.run_until(finished(gateway, source), timeout=60)
    deadline = time.monotonic() + 30
    while squeue_state(gateway, batch_id) != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert squeue_state(gateway, batch_id) == "CANCELLED"
    assert routed.copy_id not in gateway.jobs, "the copy was handed back and left the queue"
    assert "009 aborted" in gateway.events[source]
