"""`hpcpull render`: the exact script a job would get, without submitting anything."""

import os
import subprocess
import sys

from hpcpull.routersim import write_gateway_config
from tests.conftest import FIXTURES, REPO, ROUTE_BODY


def test_render_prints_the_routes_script_for_a_job_ad(tmp_path):
    config = write_gateway_config(tmp_path / "gw", {"Gpu": ROUTE_BODY},
                                  {"HPCPULL_ROUTE_Gpu_PARTITION": "gpu", "HPCPULL_SCRATCH_ROOT": "/scratch/x"})
    ad = tmp_path / "job.ad"
    ad.write_text((FIXTURES / "router-stdin" / "translate.stdin").read_text().split("------\n", 1)[1])
    env = dict(os.environ, CONDOR_CONFIG=str(config), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "hpcpull.cli", "render", str(ad), "Gpu"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --partition=gpu" in out.stdout
    assert "#SBATCH --chdir=/scratch/x/alice/78/0" in out.stdout
    assert not (tmp_path / "scratch").exists()
    bad = subprocess.run([sys.executable, "-m", "hpcpull.cli", "render", str(ad), "Nope"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "hpcpull render: unknown route 'Nope': no JOB_ROUTER_ROUTE_Nope in the configuration")
