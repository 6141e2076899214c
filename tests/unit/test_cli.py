"""`hpcpull render`: the exact script a job would get, without submitting anything."""

import io
import os
import subprocess
import sys

import pytest

from hpcpull.admin.cli import main
from hpcpull.testing.router_sim import write_gateway_config
from tests.conftest import FIXTURES, REPO, ROUTE_BODY


def test_render_prints_the_routes_script_for_a_job_ad(tmp_path):
    config = write_gateway_config(tmp_path / "gw", {"Gpu": ROUTE_BODY},
                                  {"HPCPULL_ROUTE_Gpu_PARTITION": "gpu", "HPCPULL_SCRATCH_ROOT": "/scratch/x"})
    ad = tmp_path / "job.ad"
    ad.write_text((FIXTURES / "router-stdin" / "translate.stdin").read_text().split("------\n", 1)[1])
    env = dict(os.environ, CONDOR_CONFIG=str(config), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "hpcpull.admin.cli", "render", str(ad), "Gpu"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --partition=gpu" in out.stdout
    assert "#SBATCH --chdir=/scratch/x/alice/78/0" in out.stdout
    assert not (tmp_path / "scratch").exists()
    bad = subprocess.run([sys.executable, "-m", "hpcpull.admin.cli", "render", str(ad), "Nope"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "hpcpull render: unknown route 'Nope': no JOB_ROUTER_ROUTE_Nope in the configuration")


# ---------------------------------------------------------------------- route-info
TWO_JOBS = FIXTURES / "condor_q_long" / "two-jobs.txt"
ROUTES = {"Short": "REQUIREMENTS WantHpc =?= true && RequestCpus <= 8\nUNIVERSE VANILLA\nSET Requirements false",
          "Rc": "REQUIREMENTS WantRcRoute =?= true\nUNIVERSE VANILLA\nSET Requirements false\nMaxJobs = 20"}


@pytest.fixture
def use_config(condor_config):
    """A real CONDOR_CONFIG with this module's routes (hpcpull serves Rc)."""

    def use(routes=None, knobs=None):
        return condor_config(ROUTES if routes is None else routes, {"HPCPULL_ROUTE_NAMES": "Rc", **(knobs or {})})

    return use


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_route_info_says_which_route_and_why_not_the_others(use_config, capsys):
    use_config()
    code, out, err = run(capsys, "route-info", str(TWO_JOBS), "--job", "78.0")
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == [
        "Job 78.0: Owner alice, JobStatus 1 (idle)",
        "Routes are tried in JOB_ROUTER_ROUTE_NAMES order (Short, Rc); the first match wins.",
    ]
    short = out.split("Route Short: does not match\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert short == [
        "  enabled; not served by hpcpull (HPCPULL_ROUTE_NAMES); universe vanilla (5); MaxJobs 100, MaxIdleJobs 50",
        "  REQUIREMENTS WantHpc =?= true && RequestCpus <= 8 -> false",
        "  SET Requirements false",
        "  - REQUIREMENTS: WantHpc =?= true -> false (WantHpc is undefined)",
    ]
    assert "Route Rc: MATCHES\n  enabled; served by hpcpull; universe vanilla (5); MaxJobs 20," in out
    assert out.endswith("The router would choose: Rc (served by hpcpull)\n")


def test_route_info_running_job_matches_nothing(use_config, capsys, monkeypatch):
    use_config()
    monkeypatch.setattr(sys, "stdin", io.StringIO(TWO_JOBS.read_text()))
    code, out, err = run(capsys, "route-info", "-", "--job", "78.1", "--route", "Rc")
    assert (code, err) == (1, "")
    assert "Route Short" not in out and "Route Rc: does not match" in out
    assert "  - router: JobStatus is 2 (running): the router only routes idle jobs (1)\n" in out
    assert out.endswith("No route takes this job.\n")


def test_route_info_route_filter_exit_status_is_that_routes(use_config, capsys, tmp_path):
    use_config()
    ad = tmp_path / "job.ad"
    ad.write_text(TWO_JOBS.read_text().split("\n\n")[0] + "\n")
    code, out, _ = run(capsys, "route-info", str(ad), "--route", "short")
    assert code == 1 and "Route Short: does not match" in out and "Route Rc" not in out
    assert "The router would choose: Rc" in out  # the choice is still over the whole table
    code, out, _ = run(capsys, "route-info", str(ad), "--route", "Rc")
    assert code == 0 and "Route Rc: MATCHES" in out


def test_route_info_through_the_real_entry_point(use_config, tmp_path):
    config = use_config()
    ad = tmp_path / "job.ad"
    ad.write_text(TWO_JOBS.read_text().split("\n\n")[0]
                  + '\nManaged = "External"\nManagedManager = "jobrouter"\n')
    env = dict(os.environ, CONDOR_CONFIG=str(config), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "hpcpull.admin.cli", "route-info", str(ad)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (1, "")
    assert ('  - router: Managed is "External": the job is already managed externally '
            '(ManagedManager "jobrouter")\n') in out.stdout


@pytest.mark.parametrize("argv,message", [
    (["--job", "9.9"], "no job 9.9 in the input (it has 78.0, 78.1)"),
    ([], "2 job ads in the input (78.0, 78.1): pick one with --job CLUSTER.PROC"),
    (["--job", "x"], "--job 'x' is not CLUSTER.PROC (e.g. 78.0)"),
    (["--job", "78.0", "--route", "Nope"], "unknown route 'Nope': no JOB_ROUTER_ROUTE_Nope in the configuration"),
    (["--job", "78.0", "--route", "a-b"], "route name 'a-b' must be letters, digits and _"),
])
def test_route_info_bad_input_is_one_line_and_exit_2(use_config, capsys, argv, message):
    use_config()
    code, out, err = run(capsys, "route-info", str(TWO_JOBS), *argv)
    assert (code, out, err) == (2, "", f"hpcpull route-info: {message}\n")


def test_route_info_malformed_or_missing_file_exit_2(use_config, capsys, tmp_path):
    use_config()
    bad = tmp_path / "bad.ad"
    bad.write_text('Owner = "alice"\nJobStatus = 1\nnot an attribute\n')
    code, out, err = run(capsys, "route-info", str(bad))
    assert (code, out) == (2, "")
    assert err == "hpcpull route-info: job ad line 3 is not 'Name = value': 'not an attribute'\n"
    code, out, err = run(capsys, "route-info", str(tmp_path / "missing.ad"))
    assert (code, out) == (2, "") and err == f"hpcpull route-info: cannot read {tmp_path}/missing.ad: " \
                                             "No such file or directory\n"


def test_render_reads_condor_q_output_with_job(use_config, capsys):
    use_config(knobs={"HPCPULL_SCRATCH_ROOT": "/scratch/x", "HPCPULL_ROUTE_NAMES": "Rc Short"})
    code, out, err = run(capsys, "render", str(TWO_JOBS), "Rc", "--job", "78.1")
    assert (code, err) == (0, "")
    assert "#SBATCH --chdir=/scratch/x/alice/78/1" in out
    code, out, err = run(capsys, "render", str(TWO_JOBS), "Rc")
    assert (code, out) == (1, "")
    assert err == "hpcpull render: 2 job ads in the input (78.0, 78.1): pick one with --job CLUSTER.PROC\n"


def test_route_info_later_matches_and_routes_without_requirements(use_config, capsys):
    use_config({"First": "REQUIREMENTS WantRcRoute =?= true", "Second": "UNIVERSE VANILLA\nSET Requirements false"},
               {"JOB_ROUTER_SOURCE_JOB_CONSTRAINT": "Owner =!= \"root\"", "HPCPULL_ROUTE_NAMES": "First Second"})
    code, out, _ = run(capsys, "route-info", str(TWO_JOBS), "--job", "78.0")
    assert code == 0
    assert 'JOB_ROUTER_SOURCE_JOB_CONSTRAINT = Owner =!= "root"\n' in out
    assert ("Route Second: MATCHES (but First is tried first)\n"
            "  enabled; served by hpcpull; universe vanilla (5); MaxJobs 100, MaxIdleJobs 50\n"
            "  no REQUIREMENTS (JOB_ROUTER_SOURCE_JOB_CONSTRAINT alone selects jobs)\n"
            "  SET Requirements false\n") in out
    assert out.endswith("The router would choose: First (served by hpcpull)\n")
