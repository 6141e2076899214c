"""A job's environment reaches its payload, never the site's launchers: through the real hooks and Slurm.

The route runs every job in a container (HPCPULL_LAUNCHER apptainer, alone or after srun).
The site's apptainer is on the batch job's PATH; the job ships an ``apptainer`` of its own
first on the PATH of its ``Environment``, an LD_PRELOAD library that notes every process
loading it, and settings apptainer reads from its environment.  The site's apptainer must
run, the job's must not; neither the launcher process nor the chain (srun, apptainer) may
get the job's variables; the payload must still get them, and HTCondor's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_gateway
from tests.integration.test_pipeline import finished, make_job
from tests.unit.test_launcher_integrity import IMAGE, JOB_PROGRAM, PRELOAD_SOURCE, SITE_APPTAINER, executable

pytestmark = pytest.mark.usefixtures("slurm_env")

PAYLOAD = """
printf '%s\\n' "$PATH" > {results}/path
printf '%s\\n' "$GREETING" > {results}/greeting
printf '%s\\n' "$JOB_SECRET_MARKER" "$APPTAINER_BIND" > {results}/job-variables
printf '%s\\n' "$_CONDOR_SCRATCH_DIR" "$_CONDOR_JOB_AD" > {results}/condor-variables
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the LD_PRELOAD library")
@pytest.mark.parametrize("launcher", ["apptainer --bind /cvmfs", "srun apptainer --bind /cvmfs"])
def test_the_jobs_environment_chooses_no_launcher_and_reaches_the_payload(
    tmp_path: Path, slurm_env: dict[str, str], launcher: str
) -> None:
    events = tmp_path / "events.log"
    site_bin = tmp_path / "site" / "bin"
    executable(site_bin / "apptainer", SITE_APPTAINER.format(events=events, image=IMAGE))
    job_bin = tmp_path / "home" / "alice" / "bin"
    for name in ("apptainer", "srun", "python3"):
        executable(job_bin / name, JOB_PROGRAM.format(name=name, events=events))
    marker = tmp_path / "preloaded.log"
    library = tmp_path / "home" / "alice" / "evil.so"
    (tmp_path / "evil.c").write_text(PRELOAD_SOURCE)
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library), str(tmp_path / "evil.c")],
                   check=True, timeout=120)
    results = tmp_path / "results"
    results.mkdir()

    # The batch jobs run with the gateway's PATH for batch commands: the site's programs come first.
    lrms_env = dict(slurm_env, PATH=f"{site_bin}:{slurm_env['PATH']}")
    gateway = make_gateway(tmp_path, "slurm", lrms_env, HPCPULL_ROUTE_Slurm_PARTITION="debug",
                           HPCPULL_ROUTE_Slurm_LAUNCHER=launcher, HPCPULL_ROUTE_Slurm_CONTAINER_IMAGE=IMAGE)
    job_path = f"{job_bin}:/usr/bin:/bin"
    ad = make_job(tmp_path / "submit", PAYLOAD.format(results=results),
                  Environment=f"PATH={job_path} LD_PRELOAD={library} GREETING='hello world' "
                            "JOB_SECRET_MARKER=s3cret APPTAINER_BIND=/home/alice:/opt")
    source = gateway.submit(ad)
    gateway.route(source, "Slurm")
    assert gateway.calls[-1].exit_code == 0, gateway.calls[-1].stderr
    gateway.run_until(finished(gateway, source), timeout=90)

    assert gateway.events[source][-1] == "005 terminated normally (return value 0)"
    assert events.read_text().splitlines() == ["site apptainer"]
    loaded_by = marker.read_text().splitlines()
    assert any("./job.sh" in cmdline for cmdline in loaded_by), loaded_by  # the payload got LD_PRELOAD
    assert not any("launcher.py" in cmdline for cmdline in loaded_by), loaded_by
    assert not any(f"{site_bin}/apptainer" in cmdline or "srun" in cmdline for cmdline in loaded_by), loaded_by
    apptainer_env = Path(f"{events}.apptainer.env").read_text()
    for name in ("JOB_SECRET_MARKER", "APPTAINER_BIND", "LD_PRELOAD", "GREETING"):
        assert f"\n{name}=" not in f"\n{apptainer_env}", name
    assert f"\nPATH={site_bin}:" in f"\n{apptainer_env}"
    assert (results / "path").read_text() == job_path + "\n"
    assert (results / "greeting").read_text() == "hello world\n"
    assert (results / "job-variables").read_text() == "s3cret\n/home/alice:/opt\n"
    scratch_dir, job_ad = (results / "condor-variables").read_text().splitlines()
    assert scratch_dir.startswith("/") and job_ad == f"{scratch_dir}/.hpcpull/job.ad"
