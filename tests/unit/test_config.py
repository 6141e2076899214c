"""condor_config.d loads with the real htcondor2.param reader, and every knob resolves."""

import json
import os
import re
import subprocess
import sys

import pytest

from hpcpull.config import GLOBAL_KNOBS, ROUTE_KNOBS, Config
from hpcpull.errors import ConfigError
from tests.conftest import REPO

CONFIG_D = REPO / "condor_config.d"
ROUTE = "REQUIREMENTS WantHpc =?= true\nUNIVERSE VANILLA\nSET Requirements false"


def param(config, *names):
    """Read knobs in a fresh process, as a hook would (htcondor2 reads CONDOR_CONFIG once)."""
    code = ("import json, sys, htcondor2; "
            "print(json.dumps({n: htcondor2.param.get(n) for n in sys.argv[1:]}))")
    env = dict(os.environ, CONDOR_CONFIG=str(config))
    out = subprocess.run([sys.executable, "-c", code, *names], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def write_config(tmp_path, *files, extra=""):
    lines = [f"LOCAL_DIR = {tmp_path}"] + [f"include : {f}" for f in files] + [extra]
    config = tmp_path / "condor_config"
    config.write_text("\n".join(lines) + "\n")
    return config


def documented_defaults():
    """Knob = value lines of 50-hpcpull.conf."""
    text = (CONFIG_D / "50-hpcpull.conf").read_text()
    return dict(re.findall(r"^(HPCPULL_[A-Z_]+) = ?(.*)$", text, re.M))


def test_every_knob_is_documented_with_the_code_default():
    documented = documented_defaults()
    for knob, default in {**ROUTE_KNOBS, **GLOBAL_KNOBS}.items():
        name = f"HPCPULL_{knob}"
        assert name in documented, f"{name} missing from 50-hpcpull.conf"
        if knob not in ("STATUS_CACHE_DIR", "ROUTE_NAMES", "LOG"):  # these use $(...) macros
            assert documented[name] == default, name


def test_every_knob_has_a_comment_above_it():
    lines = (CONFIG_D / "50-hpcpull.conf").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("HPCPULL_") and not line.startswith("HPCPULL_HOOK_"):
            above = [x for x in lines[max(0, i - 4):i]]
            assert any(x.startswith("#") for x in above), f"no comment above {line}"


def test_shipped_files_load_and_hooks_resolve(tmp_path):
    routes = tmp_path / "60-routes.conf"
    routes.write_text((CONFIG_D / "60-hpcpull-routes.conf.example").read_text())
    config = write_config(tmp_path, CONFIG_D / "50-hpcpull.conf", routes)
    values = param(config, "JOB_ROUTER_HOOK_KEYWORD", "HPCPULL_HOOK_TRANSLATE_JOB",
                   "HPCPULL_HOOK_UPDATE_JOB_INFO", "HPCPULL_HOOK_JOB_FINALIZE", "HPCPULL_HOOK_JOB_CLEANUP",
                   "HPCPULL_ROUTE_NAMES", "JOB_ROUTER_ROUTE_Short", "HPCPULL_STATUS_CACHE_DIR",
                   "HPCPULL_ATTRS_TO_COPY")
    assert values["JOB_ROUTER_HOOK_KEYWORD"] == "HPCPULL"
    assert values["HPCPULL_HOOK_TRANSLATE_JOB"] == "/opt/hpcpull/bin/hpcpull-translate"
    assert values["HPCPULL_HOOK_JOB_CLEANUP"] == "/opt/hpcpull/bin/hpcpull-cleanup"
    assert values["HPCPULL_ROUTE_NAMES"] == "Gpu Mpi Short Long"
    assert "SET Requirements false" in values["JOB_ROUTER_ROUTE_Short"]
    assert values["HPCPULL_STATUS_CACHE_DIR"] == f"{tmp_path}/lib/hpcpull/status"


def test_route_overrides_and_defaults_through_param(tmp_path):
    routes = tmp_path / "60-routes.conf"
    routes.write_text((CONFIG_D / "60-hpcpull-routes.conf.example").read_text())
    config = write_config(tmp_path, CONFIG_D / "50-hpcpull.conf", routes)
    knobs = ["JOB_ROUTER_ROUTE_NAMES", "HPCPULL_ROUTE_NAMES", "JOB_ROUTER_ROUTE_Short", "JOB_ROUTER_ROUTE_Long"]
    knobs += [f"HPCPULL_{k}" for k in {**ROUTE_KNOBS, **GLOBAL_KNOBS}]
    knobs += [f"JOB_ROUTER_ROUTE_{r}" for r in ("Gpu", "Mpi")]
    knobs += [f"HPCPULL_ROUTE_{r}_{k}" for r in ("Gpu", "Mpi", "Short", "Long") for k in ROUTE_KNOBS]
    values = param(config, *knobs)
    cfg = Config(lambda name: values.get(name))
    short, long_ = cfg.route("Short"), cfg.route("Long")
    assert (short.partition, short.default_walltime_s, short.account) == ("short", 3600, "")
    assert short.max_walltime_s == 4 * 3600 and long_.max_walltime_s is None
    assert (long_.partition, long_.account, long_.extra_directives) == ("long", "htc", ("--qos=htc",))
    assert short.lrms == "slurm" and short.template_name == "slurm/job.sh.j2"
    gpu, mpi = cfg.route("Gpu"), cfg.route("Mpi")
    assert (gpu.gpu_type, gpu.max_gpus, gpu.max_walltime_s) == ("a100", 4, 2 * 86400)
    assert (mpi.max_nodes, mpi.max_cpus, [s.name for s in mpi.launcher]) == (16, 64, ["srun"])
    gateway = cfg.gateway()
    assert gateway.route_names == ("Gpu", "Mpi", "Short", "Long") and gateway.status_max_age_s == 30
    assert cfg.is_hpcpull_route("short") and not cfg.is_hpcpull_route("Other")


@pytest.mark.parametrize("knob,value,message", [
    ("HPCPULL_LRMS", "condor", "supported are slurm"),
    ("HPCPULL_SCRATCH_ROOT", "relative/dir", "absolute path"),
    ("HPCPULL_SCRATCH_ROOT", "/scratch/$(whoami)", "absolute path"),
    ("HPCPULL_KEEP_JOB_DIRS", "maybe", "not a boolean"),
    ("HPCPULL_DEFAULT_WALLTIME", "1h", "not a duration"),
    ("HPCPULL_MAX_WALLTIME", "1:2:3:4", "not a duration"),
    ("HPCPULL_MAX_MEMORY", "lots", "not a number"),
    ("HPCPULL_LAUNCHER", "docker", "'docker' is not a launcher"),
])
def test_bad_knobs_are_clear_config_errors(knob, value, message):
    values = {"JOB_ROUTER_ROUTE_R": ROUTE, knob: value}
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config(values.get).route("R")


@pytest.mark.parametrize("raw,seconds", [
    ("3600", 3600), ("90:00", 5400), ("01:30:00", 5400), ("2-00:00:00", 172800), ("48:00:00", 172800),
])
def test_walltimes_in_seconds_or_batch_notation(raw, seconds):
    values = {"JOB_ROUTER_ROUTE_R": ROUTE, "HPCPULL_DEFAULT_WALLTIME": raw, "HPCPULL_MAX_WALLTIME": raw}
    route = Config(values.get).route("R")
    assert route.default_walltime_s == route.max_walltime_s == seconds


def test_limits_and_launcher_knobs():
    values = {
        "JOB_ROUTER_ROUTE_R": ROUTE, "HPCPULL_ROUTE_R_LRMS": "PBSPro", "HPCPULL_MAX_CPUS": "64",
        "HPCPULL_ROUTE_R_MAX_NODES": "16", "HPCPULL_ALLOWED_QUEUES": "short, long",
        "HPCPULL_ROUTE_R_LAUNCHER": "mpiexec --bind-to core",
    }
    route = Config(values.get).route("R")
    assert (route.lrms, route.max_cpus, route.max_nodes, route.max_memory_mb) == ("pbspro", 64, 16, None)
    assert route.allowed_queues == ("short", "long") and route.template_name == "pbspro/job.sh.j2"
    assert [step.name for step in route.launcher] == ["mpiexec"]


def test_route_whose_knobs_contradict_each_other_is_refused():
    values = {"JOB_ROUTER_ROUTE_R": ROUTE, "HPCPULL_DEFAULT_WALLTIME": "2:00:00", "HPCPULL_MAX_WALLTIME": "1:00:00"}
    with pytest.raises(ConfigError, match="DEFAULT_WALLTIME .* is above HPCPULL_MAX_WALLTIME"):
        Config(values.get).route("R")
    values = {"JOB_ROUTER_ROUTE_R": ROUTE, "HPCPULL_LRMS": "sge", "HPCPULL_LAUNCHER": "srun"}
    with pytest.raises(ConfigError, match="launcher srun needs slurm"):
        Config(values.get).route("R")


def test_unknown_route_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown route 'Nope'"):
        Config({}.get).route("Nope")


@pytest.mark.parametrize("attrs,route", [
    ({"RequestGPUs": 2}, "Gpu"),
    ({"HpcPullNodes": 4, "HpcPullTasksPerNode": 32}, "Mpi"),
    ({"BatchRuntime": 600}, "Short"),
    ({"BatchRuntime": 86400}, "Long"),
])
def test_example_routes_send_each_kind_of_job_where_its_comment_says(tmp_path, attrs, route):
    import classad2

    from hpcpull.admin.route_info import decide
    from hpcpull.admin.routing_table import load_routing_table

    routes = tmp_path / "60-routes.conf"
    routes.write_text((CONFIG_D / "60-hpcpull-routes.conf.example").read_text())
    config = write_config(tmp_path, CONFIG_D / "50-hpcpull.conf", routes)
    names = ["JOB_ROUTER_ROUTE_NAMES", "HPCPULL_ROUTE_NAMES", "JOB_ROUTER_SOURCE_JOB_CONSTRAINT"]
    names += [f"JOB_ROUTER_ROUTE_{r}" for r in ("Gpu", "Mpi", "Short", "Long")]
    values = param(config, *names)
    job = classad2.ClassAd({"ClusterId": 1, "ProcId": 0, "JobStatus": 1, "Owner": "alice", "WantHpc": True,
                            "JobUniverse": 5, **attrs})
    assert decide(job, load_routing_table(lambda name: values.get(name))).chosen == route


def test_readme_route_examples_are_the_shipped_ones():
    readme = (REPO / "README.md").read_text()
    example = (CONFIG_D / "60-hpcpull-routes.conf.example").read_text()
    blocks = re.findall(r"```\n(JOB_ROUTER_ROUTE_\w+ @=jrt\n.*?)```", readme, re.S)
    assert len(blocks) == 3
    for block in blocks:
        assert block in example, block.splitlines()[0]


def test_example_routes_back_off_from_black_holes():
    """The router throttles a route whose jobs keep failing fast (JobFailureTest)."""
    import classad2

    from hpcpull.admin.routing_table import parse_route

    text = (CONFIG_D / "60-hpcpull-routes.conf.example").read_text()
    body = text.split("JOB_ROUTER_ROUTE_Short @=jrt\n", 1)[1].split("@jrt", 1)[0]
    macros = dict(parse_route("Short", body).macros)
    test = macros["JobFailureTest"]
    fast_failure = classad2.ClassAd({"ExitCode": 1, "RemoteWallClockTime": 5.0})
    slow_failure = classad2.ClassAd({"ExitCode": 1, "RemoteWallClockTime": 600.0})
    success = classad2.ClassAd({"ExitCode": 0, "RemoteWallClockTime": 5.0})
    held = classad2.ClassAd({"RemoteWallClockTime": 0.0})
    results = [classad2.ExprTree(test).eval(ad) for ad in (fast_failure, slow_failure, success, held)]
    assert results == [True, False, False, False]
    assert float(macros["FailureRateThreshold"]) > 0


def test_a_route_clears_a_gateway_wide_knob_with_two_quotes():
    # HTCondor reads "KNOB =" as unset (htcondor2.param.get gives None), so '""' means empty.
    values = {"JOB_ROUTER_ROUTE_R": ROUTE, "HPCPULL_PARTITION": "short", "HPCPULL_ROUTE_R_PARTITION": '""',
              "HPCPULL_LOG": '""'}
    cfg = Config(values.get)
    assert cfg.route("R").partition == "" and cfg.gateway().log_path is None
