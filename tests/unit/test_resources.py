"""hpcpull.script.resources: job ad -> ResourceRequest, with ClassAd expressions evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import classad2
import pytest

from hpcpull.config import RouteSettings
from hpcpull.errors import JobRejected
from hpcpull.script.resources import HOLD_SUBCODE_RESOURCES, ResourceRequest, resource_request

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

RouteFactory = Callable[..., RouteSettings]


def parse(text: str) -> classad2.ClassAd:
    return classad2.parseOne(text, classad2.ParserType.Old)


def request(text: str, route: RouteSettings) -> ResourceRequest:
    return resource_request(parse(text), route)


def test_defaults(route_factory: RouteFactory) -> None:
    assert resource_request(classad2.ClassAd(), route_factory()) == ResourceRequest(
        cpus=1, memory_mb=None, disk_kb=None, gpus=0, walltime_s=None
    )


def test_the_router_fixture(route_factory: RouteFactory) -> None:
    text = (FIXTURES / "router-stdin" / "translate.stdin").read_text().split("------\n", 1)[1]
    assert resource_request(parse(text), route_factory()) == ResourceRequest(
        cpus=1, memory_mb=64, disk_kb=1048576, gpus=0, walltime_s=None
    )


def test_htcondor_default_request_disk_expression(route_factory: RouteFactory) -> None:
    # condor_submit's default: MAX({ 1024,(TransferInputSizeMB + 1) * 1.25 }) * 1024 KB, i.e.
    # at least 1 GiB: with TransferInputSizeMB = 1 the max is 1024, so 1024 * 1024 KB.
    expr = "RequestDisk = MAX({ 1024,(TransferInputSizeMB + 1) * 1.25 }) * 1024\n"
    job = parse(expr + "TransferInputSizeMB = 1\n")
    assert job.eval("RequestDisk") == 1048576.0  # a float, as classad2 evaluates it
    assert resource_request(job, route_factory()).disk_kb == 1048576
    big = request(expr + "TransferInputSizeMB = 2000\n", route_factory())
    assert big.disk_kb == 2001 * 1.25 * 1024 == 2561280
    assert big.disk_mb == 2502  # 2501.25 MB rounded up


def test_expressions_and_rounding_up(route_factory: RouteFactory) -> None:
    got = request(
        "RequestCpus = 2 * 3\nRequestMemory = 1000.2\nRequestGPUs = ifThenElse(WantGPU, 1, 0)\n"
        "WantGPU = true\nRequestDisk = 10.5\n",
        route_factory(),
    )
    assert got == ResourceRequest(cpus=6, memory_mb=1001, disk_kb=11, gpus=1, walltime_s=None)


def test_zero_means_not_requested(route_factory: RouteFactory) -> None:
    got = request("RequestCpus = 0\nRequestMemory = 0\nRequestDisk = 0\nRequestGPUs = 0\n", route_factory())
    assert got == ResourceRequest(cpus=1, memory_mb=None, disk_kb=None, gpus=0, walltime_s=None)


def test_undefined_expression_takes_the_default(route_factory: RouteFactory) -> None:
    got = request("RequestMemory = NoSuchAttribute * 2\nRequestCpus = undefined\n", route_factory())
    assert (got.cpus, got.memory_mb) == (1, None)


def test_batch_runtime_wins_over_max_wall_time(route_factory: RouteFactory) -> None:
    route = route_factory(default_walltime_s=600)
    assert request("BatchRuntime = 7200\nmaxWallTime = 30\n", route).walltime_s == 7200
    assert request("maxWallTime = 30\n", route).walltime_s == 1800  # minutes -> seconds
    assert request("maxWallTime = 1.5\n", route).walltime_s == 90
    assert request("BatchRuntime = 99.1\n", route).walltime_s == 100
    assert request("", route).walltime_s == 600  # the route's default
    assert request("BatchRuntime = 0\nmaxWallTime = 2\n", route).walltime_s == 120  # 0 = not given


def test_no_default_walltime(route_factory: RouteFactory) -> None:
    assert request("", route_factory(default_walltime_s=0)).walltime_s is None


def test_attribute_names_are_case_insensitive(route_factory: RouteFactory) -> None:
    assert request("requestcpus = 4\nMAXWALLTIME = 1\n", route_factory()).cpus == 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('RequestMemory = "lots"', "RequestMemory = 'lots' is not a number"),
        ("RequestCpus = -1", "RequestCpus = -1 must be a non-negative number"),
        ("RequestDisk = -0.5", "RequestDisk = -0.5 must be a non-negative number"),
        ("RequestGPUs = true", "RequestGPUs = 'True' is not a number"),
        ("RequestMemory = 1e12", "RequestMemory = 1e\\+12 is too large"),
        ("RequestCpus = 1000000001", "RequestCpus = 1e\\+09 is too large"),
        ("BatchRuntime = \"1h\"", "BatchRuntime = '1h' is not a number"),
        ("maxWallTime = -5", "maxWallTime = -5 must be a non-negative number"),
        ("RequestMemory = error", "RequestMemory evaluates to error"),
        ("RequestCpus = {1, 2}", "RequestCpus = .* is not a number"),
    ],
)
def test_invalid_values_are_rejected(route_factory: RouteFactory, line: str, message: str) -> None:
    with pytest.raises(JobRejected, match=message) as info:
        request(line + "\n", route_factory())
    assert info.value.hold_code == 0
    assert info.value.hold_subcode == HOLD_SUBCODE_RESOURCES


def test_plain_mapping_ads_work_too(route_factory: RouteFactory) -> None:
    job: dict[str, Any] = {"RequestCpus": 2, "RequestMemory": 512.5, "BatchRuntime": 60}
    got = resource_request(job, route_factory())
    assert (got.cpus, got.memory_mb, got.walltime_s) == (2, 513, 60)


# --- HTCondor-CE attributes, placement, whole node, MPI --------------------------------


def test_ce_attributes_win_over_the_htcondor_ones(route_factory: RouteFactory) -> None:
    got = request("RequestCpus = 1\nxcount = 8\nRequestMemory = 2000\nmaxMemory = 16000", route_factory())
    assert (got.cpus, got.memory_mb) == (8, 16000)


def test_queue_and_project_from_the_job(route_factory: RouteFactory) -> None:
    route = route_factory(partition="short", account="site")
    assert (request("", route).partition, request("", route).account) == ("short", "site")
    got = request('queue = "long"\nBatchProject = "atlas"', route)
    assert (got.partition, got.account) == ("long", "atlas")
    assert request('BatchQueue = "gpu"\nqueue = "long"', route).partition == "gpu"  # blahp's name first


def test_queue_outside_the_allowed_list_is_refused_naming_the_knob(route_factory: RouteFactory) -> None:
    route = route_factory(partition="short", allowed_queues=("short", "long"), allowed_accounts=())
    assert request('queue = "long"', route).partition == "long"
    with pytest.raises(JobRejected, match=r"does not allow that queue \(HPCPULL_ALLOWED_QUEUES: short, long\)"):
        request('queue = "debug"', route)
    with pytest.raises(JobRejected, match="HPCPULL_ALLOWED_ACCOUNTS: only the default"):
        request('BatchProject = "other"', route)


@pytest.mark.parametrize("value", ['"gpu\\n#SBATCH --x"', '"a b"', '"$(id)"', "3", '"-p"'])
def test_hostile_queue_names_are_refused(route_factory: RouteFactory, value: str) -> None:
    with pytest.raises(JobRejected, match="not a valid name"):
        request(f"BatchQueue = {value}", route_factory())


def test_whole_node_and_gpu_type(route_factory: RouteFactory) -> None:
    got = request("WantWholeNode = true\nRequestGPUs = 2", route_factory(gpu_type="a100"))
    assert got.whole_node and (got.gpus, got.gpu_type) == (2, "a100")
    assert request('RequestGPUs = 1\nHpcPullGPUType = "h100"', route_factory(gpu_type="a100")).gpu_type == "h100"
    assert request("", route_factory(gpu_type="a100")).gpu_type == ""  # no GPUs, no type


def test_mpi_request(route_factory: RouteFactory) -> None:
    route = route_factory(max_nodes=8)
    got = request("HpcPullNodes = 4\nHpcPullTasksPerNode = 8\nRequestCpus = 16", route)
    assert (got.nodes, got.tasks_per_node, got.cpus_per_task) == (4, 8, 2)
    assert (got.total_tasks, got.total_cpus) == (32, 64)
    assert request("HpcPullTasksPerNode = 4", route).cpus == 4  # one core per rank by default
    with pytest.raises(JobRejected, match="does not divide the 6 cores"):
        request("HpcPullTasksPerNode = 4\nRequestCpus = 6", route)


@pytest.mark.parametrize(("ad", "limits", "message"), [
    ("RequestCpus = 65", {"max_cpus": 64},
     r"65 cores per node is above route Slurm's maximum of 64 \(HPCPULL_ROUTE_Slurm_MAX_CPUS\)"),
    ("RequestMemory = 64001", {"max_memory_mb": 64000}, "RequestMemory = 64001 MB is above .* maximum of 64000 MB"),
    ("RequestGPUs = 1", {"max_gpus": 0}, "RequestGPUs = 1 is above route Slurm's maximum of 0"),
    ("HpcPullNodes = 2", {}, "HpcPullNodes = 2 is above route Slurm's maximum of 1"),
    ("maxWallTime = 2880", {"max_walltime_s": 86400},
     r"maxWallTime = 2880 min \(48:00:00\) is above route Slurm's maximum walltime of 24:00:00"),
    ("BatchRuntime = 3601", {"max_walltime_s": 3600}, r"BatchRuntime = 3601 s \(01:00:01\) is above"),
])
def test_requests_above_the_route_maximum_are_refused_not_capped(
    route_factory: RouteFactory, ad: str, limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(JobRejected, match=message) as info:
        request(ad, route_factory(**limits))
    assert info.value.hold_subcode == HOLD_SUBCODE_RESOURCES


def test_requests_at_the_maximum_pass(route_factory: RouteFactory) -> None:
    route = route_factory(max_cpus=64, max_memory_mb=64000, max_gpus=4, max_nodes=2, max_walltime_s=86400)
    got = request("RequestCpus = 64\nRequestMemory = 64000\nRequestGPUs = 4\nHpcPullNodes = 2\n"
                  "maxWallTime = 1440", route)
    assert (got.cpus, got.memory_mb, got.gpus, got.nodes, got.walltime_s) == (64, 64000, 4, 2, 86400)
