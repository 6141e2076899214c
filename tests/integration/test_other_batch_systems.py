"""Jobs through the real hooks into every other batch system and back (router simulation).

PBS runs on the real Torque-compatible wrappers (slurm-wlm-torque) over the private Slurm,
Grid Engine on a real Debian Grid Engine, LSF on the labelled fake LSF (no LSF can be
installed here).  The same checks run on each: the rendered directives reach the batch
system, inputs go in, outputs, exit code and usage come back, and condor_rm cancels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hpcpull.lrms import get_batch_system
from tests.conftest import make_gateway
from tests.integration.test_pipeline import finished, make_job

# batch system -> (fixture giving its environment, extra route knobs)
SYSTEMS: dict[str, tuple[str, dict[str, str]]] = {
    "pbs": ("torque_env", {"HPCPULL_PARTITION": "long"}),
    "sge": ("sge_env", {"HPCPULL_PARTITION": "long.q"}),
    "lsf": ("lsf_env", {}),
}


@pytest.fixture(params=sorted(SYSTEMS))
def other_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    lrms = request.param
    fixture, knobs = SYSTEMS[lrms]
    env = request.getfixturevalue(fixture)
    router = make_gateway(tmp_path, lrms, env, route="Hpc", **knobs)
    router.lrms = lrms  # type: ignore[attr-defined]
    return router


def test_job_runs_with_its_sandbox_and_reports_its_exit_code(other_gateway: Any, tmp_path: Path) -> None:
    gateway = other_gateway
    submit = tmp_path / "submit"
    submit.mkdir()
    (submit / "input.txt").write_text("from the submit side\n")
    script = r"""
printf '%s\n' "$@" > args.txt
cat input.txt > copy.txt
echo "GREETING=$GREETING" >> copy.txt
echo "stdout line"
echo "stderr line" >&2
exit 3
"""
    ad = make_job(submit, script, Arguments="one 'two words'", Environment="GREETING='hi there'",
                  TransferInput="input.txt", TransferOutput="args.txt,copy.txt", RequestCpus=2)
    source = gateway.submit(ad)
    routed = gateway.route(source, "Hpc")
    job_dir = Path(gateway.jobs[routed.copy_id]["HpcPullJobDir"])
    gateway.run_until(finished(gateway, source), timeout=120)
    assert not [c for c in gateway.calls if c.exit_code != 0], [(c.hook, c.stderr) for c in gateway.calls]
    seen = gateway.history[source]
    assert seen["ExitCode"] == 3 and seen["JobStatus"] == 4
    assert seen["HpcPullBatchJobId"]
    assert seen["RemoteWallClockTime"] > 0
    assert (submit / "args.txt").read_text() == "one\ntwo words\n"
    assert (submit / "copy.txt").read_text() == "from the submit side\nGREETING=hi there\n"
    assert (submit / "job.out").read_text() == "stdout line\n"
    assert (submit / "job.err").read_text() == "stderr line\n"
    assert gateway.events[source][-1] == "005 terminated normally (return value 3)"
    assert not job_dir.exists()


def test_condor_rm_cancels_the_batch_job(other_gateway: Any, tmp_path: Path) -> None:
    gateway = other_gateway
    source = gateway.submit(make_job(tmp_path / "submit", "sleep 300\n"))
    routed = gateway.route(source, "Hpc")
    gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 2, timeout=90)
    batch_id = gateway.jobs[routed.copy_id]["HpcPullBatchJobId"]
    gateway.condor_rm(source)
    gateway.run_until(finished(gateway, source), timeout=60)
    batch = get_batch_system(gateway.lrms, gateway.lrms_env, timeout=20)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = batch.job_status(batch_id)
        if status is None or status.state.is_terminal:
            break
        time.sleep(0.5)
    assert status is None or status.state.is_terminal, status
    assert "009 aborted" in gateway.events[source]
