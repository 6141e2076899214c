"""Pull mode, gateway side: jobs that arrived by HTCondor-C, through the hooks into Slurm and back.

Such a job (tests/fixtures/condor-c-arrived-job.ad, captured on a real gateway) has its Iwd
in the gateway's SPOOL, Cmd and TransferInput relative to it, and the origin's own paths in
SUBMIT_Iwd / SUBMIT_Cmd.  hpcpull must stage from the spooled Iwd, return the outputs into
it with SpooledOutputFiles set as the shadow sets it (the origin fetches exactly those),
never touch the origin's paths, and record who ran what for which access point.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import classad2
import pytest

from hpcpull.router.classads import parse_old_ad
from tests.conftest import FIXTURES, make_gateway
from tests.integration.test_pipeline import finished

ARRIVED = FIXTURES / "condor-c-arrived-job.ad"
# What the captured ad gained by running at the gateway: an arriving job has none of it.
AFTER_THE_RUN = (
    "CompletionDate", "ExitBySignal", "ExitCode", "ExitStatus", "JobFinishedHookDone", "SpooledOutputFiles",
    "TerminationPending", "RemoteWallClockTime", "LastRemoteWallClockTime", "NumJobStarts", "JobRunCount",
    "JobStartDate", "JobCurrentStartDate", "LastJobStatus", "StageOutStart", "StageOutFinish",
    "CommittedTime", "CumulativeSlotTime", "LastRemoteHost", "ResidentSetSize", "MemoryUsage",
)
JOB_SH = """#!/bin/bash
printf '%s\\n' "$@" > args.txt
{ cat infile.txt; cat indir/a.txt; cat indir/sub/b.txt; echo "SLEEP=$SLEEP args=$*"; } > result.txt
echo "stdout of the pulled job"
echo "stderr of the pulled job" >&2
"""


@pytest.fixture
def pull_gateway(tmp_path: Path, slurm_env: dict[str, str]) -> Any:
    """A gateway whose route "Pull" serves arrived jobs (the simulation routes by name; which
    jobs a real router sends there is tested with 71-hpcpull-gateway-ccb.conf.example)."""
    router = make_gateway(tmp_path, "slurm", slurm_env, route="Pull", HPCPULL_PARTITION="debug")
    router.spool = tmp_path / "gateway" / "spool"  # type: ignore[attr-defined]  # SPOOL of its config
    return router


def arrived_job(spool: Path, cmd: str = "job.sh", **changes: Any) -> tuple[classad2.ClassAd, Path]:
    """The captured arrived job, idle again, with its spooled sandbox under ``spool``."""
    ad = parse_old_ad(ARRIVED.read_text())
    for attr in AFTER_THE_RUN:
        if attr in ad:
            del ad[attr]
    iwd = spool / "5" / "0" / "cluster5.proc0.subproc0"
    (iwd / "indir" / "sub").mkdir(parents=True)
    (iwd / "infile.txt").write_text("infile\n")
    (iwd / "indir" / "a.txt").write_text("a\n")
    (iwd / "indir" / "sub" / "b.txt").write_text("b\n")
    exe = iwd / cmd
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text(JOB_SH)
    exe.chmod(0o755)
    ad["Iwd"] = str(iwd)
    ad["Cmd"] = cmd
    ad["WantHpc"] = True
    for name, value in changes.items():
        ad[name] = value
    return ad, iwd


def run_pulled(gateway: Any, ad: classad2.ClassAd) -> str:
    source = gateway.submit(ad)
    gateway.route(source, "Pull")
    gateway.run_until(finished(gateway, source), timeout=90)
    assert all(c.exit_code == 0 for c in gateway.calls), [(c.hook, c.stderr) for c in gateway.calls]
    return source


def test_arrived_job_runs_from_its_spooled_iwd_and_returns_into_it(pull_gateway: Any) -> None:
    ad, iwd = arrived_job(pull_gateway.spool)
    origin_iwd = Path(ad["SUBMIT_Iwd"])
    source = run_pulled(pull_gateway, ad)
    done = pull_gateway.history[source]
    assert done["ExitCode"] == 0 and done["JobStatus"] == 4
    # the outputs are in the spooled Iwd, under the names the origin will fetch
    assert (iwd / "result.txt").read_text() == "infile\na\nb\nSLEEP=5 args=hello world\n"
    assert not (iwd / "args.txt").exists()  # not in TransferOutput
    assert (iwd / "out.6.txt").read_text() == "stdout of the pulled job\n"
    assert (iwd / "err.6.txt").read_text() == "stderr of the pulled job\n"
    assert done["SpooledOutputFiles"] == "result.txt"  # TransferOutput; stdout/stderr go anyway
    assert not origin_iwd.exists(), "nothing is written to the origin's paths on the gateway"
    # accounting: who ran what for which access point
    assert done["HpcPullBatchJobId"] and done["HpcPullSite"] == "Pull" and done["HpcPullLrms"] == "slurm"
    assert (done["SubmitterId"], done["Owner"]) == ("origin@vm", "alice")
    log = (pull_gateway.workdir / "log" / "hpcpull" / "HpcPullLog").read_text()
    finished_lines = [dict(w.split("=", 1) for w in shlex.split(line)[2:])
                      for line in log.splitlines() if " FINISHED " in line]
    assert len(finished_lines) == 1
    record = finished_lines[0]
    assert record["job"] == source and record["batch_job"] == done["HpcPullBatchJobId"]
    assert (record["submitter"], record["submitter_job"], record["owner"]) == (
        "origin@vm", "origin@vm#6.0#1795239601", "alice")
    assert record["exit_code"] == "0" and float(record["wall_s"]) > 0


def test_arrived_job_without_transfer_output_lists_what_came_back(pull_gateway: Any) -> None:
    ad, iwd = arrived_job(pull_gateway.spool)
    del ad["TransferOutput"]
    source = run_pulled(pull_gateway, ad)
    returned = pull_gateway.history[source]["SpooledOutputFiles"].split(",")
    assert sorted(returned) == ["args.txt", "result.txt"]  # new files; not the staged inputs
    assert (iwd / "args.txt").exists()


def test_relative_cmd_in_a_subdirectory_and_a_submit_side_remap(pull_gateway: Any) -> None:
    # The schedd keeps the submitter's remaps in SUBMIT_TransferOutputRemaps and blanks
    # TransferOutputRemaps: remaps happen when the origin fetches, never on the gateway.
    ad, iwd = arrived_job(pull_gateway.spool, cmd="bin/job.sh",
                          SUBMIT_TransferOutputRemaps="result.txt = /home/alice/job3/out/r.txt")
    source = run_pulled(pull_gateway, ad)
    assert (iwd / "result.txt").exists()
    assert pull_gateway.history[source]["SpooledOutputFiles"] == "result.txt"
    assert not Path("/home/alice/job3").exists()


def test_arrived_job_from_a_sandboxed_origin_copy(pull_gateway: Any, tmp_path: Path) -> None:
    # The generated origin route sandboxes its copy (JobShouldBeSandboxed): the job then arrives
    # with the copy's SPOOL directory on the origin as SUBMIT_Iwd and no remaps at all (the
    # origin's router applies them when it fetches the copy's output; the gridmanager does not
    # send SUBMIT_ attributes: condorjob.cpp buildSubmitAd).  As seen on two real pools
    # (tests/realrouter/test_pull_mode.py).
    origin_spool = tmp_path / "origin" / "spool" / "3" / "0" / "cluster3.proc0.subproc0"
    ad, iwd = arrived_job(pull_gateway.spool, SUBMIT_Iwd=str(origin_spool),
                          SUBMIT_Cmd=str(origin_spool / "job.sh"))
    for attr in ("TransferOutputRemaps", "SUBMIT_TransferOutputRemaps"):
        if attr in ad:
            del ad[attr]
    source = run_pulled(pull_gateway, ad)
    done = pull_gateway.history[source]
    assert done["ExitCode"] == 0 and done["SpooledOutputFiles"] == "result.txt"
    assert (iwd / "result.txt").read_text() == "infile\na\nb\nSLEEP=5 args=hello world\n"
    assert (iwd / "out.6.txt").read_text() == "stdout of the pulled job\n"
    assert not (tmp_path / "origin").exists(), "nothing is written to the origin's paths on the gateway"


def test_outputs_are_never_written_to_origin_paths(pull_gateway: Any) -> None:
    # Were a remap or Out to name an origin path, the output stays out of it and the
    # problem is recorded; the rest comes back.
    ad, iwd = arrived_job(pull_gateway.spool, TransferOutputRemaps="result.txt = /home/alice/job3/r.txt",
                          Err="/home/alice/job3/err.txt")
    source = run_pulled(pull_gateway, ad)
    done = pull_gateway.history[source]
    assert not Path("/home/alice/job3").exists()
    assert "outside the job's spooled Iwd" in done["HpcPullOutputErrors"]
    assert (iwd / "out.6.txt").exists() and done["SpooledOutputFiles"] == ""


def test_inputs_outside_the_spooled_iwd_are_refused(pull_gateway: Any, tmp_path: Path) -> None:
    secret = tmp_path / "gateway-file.txt"
    secret.write_text("not the origin's\n")
    ad, _ = arrived_job(pull_gateway.spool, TransferInput=f"infile.txt,{secret}")
    source = pull_gateway.submit(ad)
    pull_gateway.route(source, "Pull")
    pull_gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 5, timeout=30)
    assert "outside the job's spooled Iwd" in pull_gateway.jobs[source]["HoldReason"]
    assert pull_gateway.jobs[source]["HoldReasonCode"] == 13


@pytest.mark.parametrize("attribute", ["x509userproxy", "ScitokensFile"])
def test_credentials_outside_the_spooled_iwd_are_refused(pull_gateway: Any, tmp_path: Path, attribute: str) -> None:
    """A spooled job's credential comes with it (the schedd spools it beside Cmd and
    TransferInput): one named outside its Iwd is a gateway file and is refused alike."""
    secret = tmp_path / "gateway-proxy.pem"
    secret.write_text("the gateway's own credential\n")
    ad, _ = arrived_job(pull_gateway.spool, **{attribute: str(secret)})
    source = pull_gateway.submit(ad)
    pull_gateway.route(source, "Pull")
    pull_gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 5, timeout=30)
    assert "outside the job's spooled Iwd" in pull_gateway.jobs[source]["HoldReason"]
    assert pull_gateway.jobs[source]["HoldReasonCode"] == 13
    copies = [f for f in tmp_path.rglob("*") if f != secret and f.is_file() and not f.is_symlink()
              and b"the gateway's own credential" in f.read_bytes()]
    assert copies == [], "the credential was copied"
