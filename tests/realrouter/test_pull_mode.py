"""Pull mode on two real pools: an origin access point and an hpcpull gateway, side by side.

Both pools run on loopback, each with its own collector.  Their pull-mode config files are
what ``hpcpull pull-config`` (the installed command) writes; the token is made and installed
by the commands its "next steps" print.  The origin runs stock HTCondor only (no hpcpull
files): its job router turns a ``+WantGateway = true`` vanilla job into a grid-universe copy,
whose C-GAHP (IDTOKENS only) submits it by HTCondor-C, through CCB, to the gateway's
schedd; the gateway's router sends it through hpcpull's hooks into the private Slurm.
Everything comes back to the submitter at the origin: exit code, stdout, stderr, the
user-log events and the output file at its remapped path.  ``condor_rm`` at the origin
cancels the batch job at the gateway.

The gateway's schedd has a PRIVATE_NETWORK_NAME the origin lacks, so the origin reaches it
only through CCB (the origin collector's log shows the C-GAHP's CCB requests).  The jobs of
the module are submitted together by one fixture; the tests wait for and check them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from hpcpull.testing.personal_pool import PersonalPool, free_port, wait_until
from tests.plugins.condor import POLL, GatewayPool, site_config

REPO = Path(__file__).resolve().parents[2]
ORIGIN_SCHEDD = "origin@pulltest"
GATEWAY_SCHEDD = "gateway@pulltest"
GATEWAY_NAME = "pull-gateway"  # PersonalPool name: UID_DOMAIN is <name>.hpcpull.test
GATEWAY_DOMAIN = f"{GATEWAY_NAME}.hpcpull.test"
USER = "hpcuser"

# HTCondor-C polls every 60 s by default (baseresource.cpp); a test waits seconds.
ORIGIN_KNOBS = f"""
SCHEDD_NAME = {ORIGIN_SCHEDD}
GRIDMANAGER_JOB_PROBE_INTERVAL = 5
CONDOR_JOB_POLL_INTERVAL = 5
GRIDMANAGER_RESOURCE_PROBE_INTERVAL = 10
GRIDMANAGER_DEBUG = D_FULLDEBUG
C_GAHP_DEBUG = D_FULLDEBUG
C_GAHP_WORKER_THREAD_DEBUG = D_FULLDEBUG
COLLECTOR_DEBUG = D_FULLDEBUG
"""
# The schedd logs the address it connects back to for each command that came through CCB.
GATEWAY_KNOBS = """
SCHEDD_DEBUG = D_FULLDEBUG D_NETWORK D_SECURITY
"""

COUNT_SH = """#!/bin/sh
wc -l < in.txt | tr -d ' ' > count.txt
echo "counted $(cat count.txt) lines"
echo "a line on stderr" >&2
exit 7
"""

COUNT_JOB = """\
executable = count.sh
transfer_input_files = in.txt
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
transfer_output_files = count.txt
transfer_output_remaps = "count.txt = results/count.txt"
output = job.out
error = job.err
log = job.log
+WantGateway = true
+PullTest = "count"
queue
"""

SLEEP_SH = """#!/bin/sh
echo sleeping
sleep 300
"""

SLEEP_JOB = """\
executable = sleep.sh
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
output = job.out
error = job.err
log = job.log
+WantGateway = true
+PullTest = "remove"
queue
"""


@dataclass
class PullPools:
    origin: PersonalPool
    gateway: GatewayPool
    next_steps: str
    files: dict[str, str]
    jobs: dict[str, tuple[int, Path]] = field(default_factory=dict)  # name -> (origin cluster, Iwd)

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str, step: float = 2.0):
        return wait_until(predicate, timeout, what, step, explain=self.diagnostics)

    def origin_finished(self, cluster: int, timeout: float) -> dict:
        def done():
            if self.origin.q(f"ClusterId == {cluster}", ["JobStatus"]):
                return None
            found = self.origin.history(f"ClusterId == {cluster}")
            return found[0] if found else None
        return self.wait_for(done, timeout, f"origin job {cluster}.0 to leave the queue")

    def arrived(self, name: str) -> Optional[dict]:
        """The job that arrived at the gateway by HTCondor-C (queue, else history)."""
        constraint = f'PullTest == "{name}" && SubmitterId isnt undefined && RoutedBy =!= "hpcpull"'
        found = self.gateway.pool.q(constraint) or self.gateway.pool.history(constraint)
        return found[0] if found else None

    def diagnostics(self) -> str:
        origin_q = self.origin.tool(["condor_q", "-allusers", "-nobatch"], check=False).stdout
        gridmanager = "".join(p.read_text(errors="replace")
                              for p in sorted(self.origin.log_dir.glob("GridmanagerLog*")))
        router = "\n".join(self.origin.router_log_text().splitlines()[-30:])
        return (f"--- origin condor_q\n{origin_q}\n--- origin JobRouterLog (tail)\n{router}\n"
                f"--- origin GridmanagerLog (tail)\n" + "\n".join(gridmanager.splitlines()[-40:]) +
                f"\n--- gateway\n{self.gateway.diagnostics()}")


def pull_config(bin_dir: Path, output_dir: Path, origin_port: int, token_dir: Path, ports: tuple[int, int]) -> str:
    """Run the installed ``hpcpull pull-config``; its next steps (stderr)."""
    result = subprocess.run(
        [str(bin_dir / "hpcpull"), "pull-config", "--gateway-schedd", GATEWAY_SCHEDD,
         "--origin-collector", f"127.0.0.1:{origin_port}", "--user", USER, "--origin-schedd", ORIGIN_SCHEDD,
         "--gateway-domain", GATEWAY_DOMAIN, "--token-dir", str(token_dir), "--ports", f"{ports[0]}-{ports[1]}",
         "--output-dir", str(output_dir)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr


def token_commands(next_steps: str) -> list[str]:
    """Steps 2 and 3 of the next steps: the commands that make and install the token."""
    block = next_steps.split("\n2. ", 1)[1].split("\n4. ", 1)[0]
    commands = [line.strip() for line in block.splitlines()
                if line.strip().startswith(("condor_token_create ", "install "))]
    assert len(commands) == 3, block
    return commands


def ports_for_the_c_gahp() -> tuple[int, int]:
    low = free_port()
    low = min(max(low, 1025), 65535 - 19)
    return low, low + 19


@pytest.fixture(scope="module")
def pull_pools(condor_release: Path, pools_root: Path, hpcpull_bin_dir: Path,
               slurm_env: dict[str, str]) -> Iterator[PullPools]:
    origin_base, gateway_base = pools_root / "pull-origin", pools_root / GATEWAY_NAME
    origin_port = free_port()
    generated = pools_root / "pull-config"
    generated.mkdir()
    token_dir = origin_base / "home" / USER / ".condor" / "tokens.d"
    next_steps = pull_config(hpcpull_bin_dir, generated, origin_port, token_dir, ports_for_the_c_gahp())
    files = {path.name: path.read_text() for path in generated.iterdir()}

    origin = PersonalPool(
        base=origin_base, release=condor_release, bin_dir=hpcpull_bin_dir, local_config="", routes_config="",
        name="pull-origin", port=origin_port, with_startd=False, polling_period=POLL, extra_config=ORIGIN_KNOBS,
        install_hpcpull_config=False, config_files={"70-hpcpull-origin.conf": files["70-hpcpull-origin.conf"]})
    gateway_base.mkdir(mode=0o755)
    scratch, status_dir, log_dir = gateway_base / "scratch", gateway_base / "status", gateway_base / "hpcpull-log"
    for path in (scratch, status_dir, log_dir):
        path.mkdir()
        path.chmod(0o1777)
    gateway_pool = PersonalPool(
        base=gateway_base, release=condor_release, bin_dir=hpcpull_bin_dir, name=GATEWAY_NAME,
        # a gateway that also has local routes: the 60- example's global constraint is widened by the 71- file
        routes_config=(REPO / "condor_config.d" / "60-hpcpull-routes.conf.example").read_text(),
        local_config=site_config(scratch, status_dir, log_dir, slurm_env),
        with_startd=False, polling_period=POLL, extra_config=GATEWAY_KNOBS, first_cluster=500,
        config_files={"71-hpcpull-gateway-ccb.conf": files["71-hpcpull-gateway-ccb.conf"]})
    pools = PullPools(origin, GatewayPool(gateway_pool, slurm_env, scratch, status_dir, log_dir), next_steps, files)
    try:
        origin.start()
        gateway_pool.start()
        # The token, as the next steps say: made as root with the gateway's config, installed
        # for the job owner at the origin, the gateway's copy deleted.
        work = Path(tempfile.mkdtemp(prefix="token-", dir=pools_root))
        for command in token_commands(next_steps):
            subprocess.run(["bash", "-ec", command], cwd=work, env=gateway_pool.env(), check=True,
                           capture_output=True, timeout=60)
        shutil.rmtree(work)
        # Step 6 of the next steps: the gateway's schedd is known at the origin, with a CCBID.
        pools.wait_for(lambda: "CCBID=" in schedd_address(origin, GATEWAY_SCHEDD), 60,
                       f"{GATEWAY_SCHEDD} at the origin's collector with a CCBID")
        submit_jobs(pools)
        yield pools
    finally:
        gateway_pool.stop()
        origin.stop()


def schedd_address(pool: PersonalPool, name: str) -> str:
    out = pool.tool(["condor_status", "-schedd", "-af", "Name", "MyAddress"], check=False).stdout
    return next((line for line in out.splitlines() if line.split(" ", 1)[0] == name), "")


def submit_jobs(pools: PullPools) -> None:
    origin = pools.origin
    count_dir = origin.user_dir("count")
    origin.write_user_file(count_dir / "count.sh", COUNT_SH, mode=0o755)
    origin.write_user_file(count_dir / "in.txt", "one\ntwo\nthree\n")
    origin.write_user_file(count_dir / "results" / ".keep", "")  # the remap's directory exists
    pools.jobs["count"] = (origin.submit(count_dir, COUNT_JOB), count_dir)
    sleep_dir = origin.user_dir("remove")
    origin.write_user_file(sleep_dir / "sleep.sh", SLEEP_SH, mode=0o755)
    pools.jobs["remove"] = (origin.submit(sleep_dir, SLEEP_JOB), sleep_dir)


def events(log: str, cluster: int) -> list[str]:
    """The user log's event codes for <cluster>.0, in order."""
    return re.findall(rf"^(\d{{3}}) \({cluster:03d}\.000\.000\)", log, re.M)


# ------------------------------------------------------------------------------ the tests
def test_the_generated_files_are_what_the_pools_run(pull_pools: PullPools) -> None:
    origin_file = pull_pools.files["70-hpcpull-origin.conf"]
    assert "JobShouldBeSandboxed = true" in origin_file
    assert f'SET GridResource "condor {GATEWAY_SCHEDD} 127.0.0.1:{pull_pools.origin.port}"' in origin_file
    gateway = pull_pools.gateway.pool
    names = gateway.tool(["condor_config_val", "JOB_ROUTER_ROUTE_NAMES"]).stdout.split()
    assert names[0] == "Pull" and len(names) > 1  # the local routes stay
    constraint = gateway.tool(["condor_config_val", "JOB_ROUTER_SOURCE_JOB_CONSTRAINT"]).stdout.strip()
    assert constraint == f'(WantHpc =?= true) || (SubmitterId =?= "{ORIGIN_SCHEDD}")'


def test_condor_rm_at_the_origin_cancels_the_batch_job(pull_pools: PullPools) -> None:
    pools, gw = pull_pools, pull_pools.gateway
    cluster, directory = pools.jobs["remove"]
    arrived = pools.wait_for(lambda: pools.arrived("remove"), 120, "the job to arrive at the gateway")
    gateway_cluster = arrived["ClusterId"]

    def batch_running() -> Optional[str]:
        found = gw.batch_jobs(gateway_cluster)
        return found[0] if found and gw.batch_state(found[0]) == "RUNNING" else None
    batch_id = pools.wait_for(batch_running, 120, "the batch job to run in Slurm")
    # The origin shows the job running: the gateway's state, mirrored twice.
    pools.wait_for(lambda: [job["JobStatus"] for job in pools.origin.q(f"ClusterId == {cluster}", ["JobStatus"])]
                   == [2], 60, "the origin job to be running")

    pools.origin.tool(["condor_rm", f"{cluster}.0"], user=USER)
    pools.wait_for(lambda: gw.batch_state(batch_id) in ("CANCELLED", ""), 60,
                   f"Slurm job {batch_id} to be cancelled")
    left = gw.pool.wait_until_gone('PullTest == "remove"', 60)
    assert not left, f"still in the gateway's queue: {left}\n{pools.diagnostics()}"
    assert not pools.origin.wait_until_gone(f"ClusterId == {cluster} || RoutedFromJobId == \"{cluster}.0\"", 60)
    assert gw.batch_jobs(gateway_cluster) == [batch_id]  # never started again
    log = gw.user_log(directory)
    assert events(log, cluster)[0] == "000" and "009" in events(log, cluster), log


def test_a_job_goes_to_the_gateway_and_everything_comes_back(pull_pools: PullPools) -> None:
    pools = pull_pools
    cluster, directory = pools.jobs["count"]
    record = pools.origin_finished(cluster, timeout=180)
    assert record["ExitCode"] == 7 and record["JobStatus"] == 4, pools.diagnostics()
    # the output file at its remapped path, and only there; stdout and stderr in the Iwd
    assert (directory / "results" / "count.txt").read_text() == "3\n", pools.diagnostics()
    assert not (directory / "count.txt").exists()
    assert (directory / "job.out").read_text() == "counted 3 lines\n"
    assert (directory / "job.err").read_text() == "a line on stderr\n"
    log = pools.gateway.user_log(directory)
    seen = events(log, cluster)
    assert seen[0] == "000" and seen[-1] == "005" and set(seen) <= {"000", "001", "005"}, log
    assert "Normal termination (return value 7)" in log

    # It went the pull-mode way: a grid copy at the origin, sent by HTCondor-C ...
    copy = pools.origin.history(f'RoutedFromJobId == "{cluster}.0"')
    assert copy and copy[0]["JobUniverse"] == 9, pools.diagnostics()
    assert copy[0]["GridResource"] == f"condor {GATEWAY_SCHEDD} 127.0.0.1:{pools.origin.port}"
    # ... arriving at the gateway from the origin's schedd, authenticated by the token as the user ...
    arrived = pools.arrived("count")
    assert arrived is not None, pools.diagnostics()
    assert arrived["SubmitterId"] == ORIGIN_SCHEDD and arrived["Owner"] == USER
    assert arrived["AuthTokenSubject"] == f"{USER}@{GATEWAY_DOMAIN}"
    # ... and run in Slurm by hpcpull's hooks, on the route for arrived jobs.
    assert arrived["HpcPullSite"] == "Pull" and arrived["HpcPullLrms"] == "slurm"
    assert pools.gateway.batch_jobs(arrived["ClusterId"]) == [arrived["HpcPullBatchJobId"]]


def test_the_gateway_connects_back_through_ccb_to_the_configured_ports(pull_pools: PullPools) -> None:
    """The origin's C-GAHP asked the origin's collector (the CCB server) to have the gateway
    connect back, and the gateway did, each time to a port of the generated range."""
    origin_file = pull_pools.files["70-hpcpull-origin.conf"]
    low, high = (int(re.search(rf"^C_GAHP_WORKER_THREAD\.IN_{edge}PORT = (\d+)$", origin_file, re.M).group(1))
                 for edge in ("LOW", "HIGH"))
    collector_log = (pull_pools.origin.log_dir / "CollectorLog").read_text(errors="replace")
    requests = re.findall(r"CCB: received request id \d+ from C_GAHP_WORKER_THREAD <127\.0\.0\.1:(\d+)", collector_log)
    assert requests and all(low <= int(port) <= high for port in requests), (low, high, requests)
    sched_log = (pull_pools.gateway.pool.log_dir / "SchedLog").read_text(errors="replace")
    # (The origin's negotiator, which sees the gateway's schedd ads, connects back too: to a
    # port outside the range, which a firewall may block without harm.)
    back = [int(port) for port in re.findall(
        r" C_GAHP\w* <[^>]*> on <[^>]*> with reverse connect address <127\.0\.0\.1:(\d+)", sched_log)]
    assert back, "the gateway's schedd logged no reverse connection to the C-GAHP"
    assert all(low <= port <= high for port in back), (low, high, sorted(set(back)))
