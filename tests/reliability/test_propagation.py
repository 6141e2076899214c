"""Both-way propagation between the HTCondor job and the batch job (real private Slurm).

condor_rm / condor_hold of the source cancel the batch job; condor_release routes the job
again from a clean state, also after a hold that came from the batch side (which the job
router alone would re-apply from the still-held copy at its next poll:
src/condor_job_router/VanillaToGrid.cpp, update_job_status -> set_job_status_held).
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from tests.integration.test_pipeline import finished, make_job


def slurm_state(gateway: Any, batch_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", batch_id, "-o", "%T"], env=gateway.slurm_env,
                         capture_output=True, text=True, timeout=15)
    return out.stdout.strip()


def wait_slurm(gateway: Any, batch_id: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while slurm_state(gateway, batch_id) != state and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slurm_state(gateway, batch_id) == state


def running(source: str):
    return lambda r: r.jobs.get(source, {}).get("JobStatus") == 2


def test_hold_cancels_the_batch_job_and_release_routes_again(gateway: Any, tmp_path: Any) -> None:
    source = gateway.submit(make_job(tmp_path / "submit", "sleep 4\necho done > result.txt\n",
                                     TransferOutput="result.txt"))
    routed = gateway.route(source, "Slurm")
    gateway.run_until(running(source), timeout=60)
    first_batch = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    gateway.condor_hold(source, "held by alice for a fix")
    gateway.run_until(lambda r: routed.copy_id not in r.jobs, timeout=60)
    wait_slurm(gateway, first_batch, "CANCELLED")
    held = gateway.jobs[source]
    assert held["JobStatus"] == 5 and held["HoldReason"] == "held by alice for a fix"
    assert held["Managed"] == "Schedd", "the router yielded the job: HTCondor's own hold"

    gateway.condor_release(source)
    again = gateway.route(source, "Slurm")  # idle again: the router routes it afresh
    gateway.run_until(finished(gateway, source), timeout=90)
    second_batch = gateway.history[source]["HpcPullBatchJobId"]
    assert second_batch != first_batch and again.copy_id != routed.copy_id
    assert (tmp_path / "submit" / "result.txt").read_text() == "done\n"
    assert gateway.history[source]["ExitCode"] == 0


def test_release_after_a_batch_side_hold_starts_over_from_a_clean_state(gateway: Any, tmp_path: Any) -> None:
    source = gateway.submit(make_job(tmp_path / "submit", "sleep 300\n"))
    routed = gateway.route(source, "Slurm")
    gateway.run_until(running(source), timeout=60)
    batch_id = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    subprocess.run(["scancel", batch_id], env=gateway.slurm_env, check=True, timeout=15)  # an admin's scancel
    gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 5, timeout=60)
    assert "cancelled outside HTCondor" in gateway.jobs[source]["HoldReason"]
    assert gateway.jobs[source]["HoldReasonSubCode"] == 25

    # The router alone would hold the job again at once; hpcpull notices the release,
    # removes the held copy and keeps its directory for inspection.
    gateway.condor_release(source)
    gateway.run_until(lambda r: routed.copy_id not in r.jobs and r.jobs[source].get("Managed") == "Schedd",
                      timeout=60)
    assert gateway.jobs[source]["JobStatus"] == 1, "idle again, not re-held"
    kept = list((gateway.scratch / gateway.jobs[source]["Owner"] / "failed").glob(f"{source.split('.')[0]}.0.*"))
    assert len(kept) == 1 and "cancelled outside HTCondor" in (kept[0] / ".hpcpull" / "failed").read_text()
    again = gateway.route(source, "Slurm")
    gateway.run_until(lambda r: r.jobs.get(source, {}).get("JobStatus") == 2, timeout=60)
    new_batch = gateway.jobs[again.copy_id]["HpcPullBatchJobId"]
    assert new_batch != batch_id
    gateway.condor_rm(source)
    gateway.run_until(finished(gateway, source), timeout=60)
    wait_slurm(gateway, new_batch, "CANCELLED")
