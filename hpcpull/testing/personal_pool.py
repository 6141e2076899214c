"""A real HTCondor personal pool on loopback, with hpcpull installed as the README tells an admin.

Tests, the demo and the benchmarks share it: collector, negotiator, schedd, the stock
``condor_job_router`` (enabled by hpcpull's own ``50-hpcpull.conf``) and a startd for local
jobs, all started by one ``condor_master`` as root with the daemons running as ``condor``
(``CONDOR_IDS``), jobs submitted by an ordinary user.  Everything lives under one base
directory; ``stop()`` ends what ``start()`` started, by the master's pid.

Where HTCondor comes from, in order: ``HPCPULL_CONDOR_RELEASE`` (a release directory), a
``condor_master`` on PATH, or an archive named by ``HPCPULL_CONDOR_ARCHIVE`` or found next
to the checkout (``../shared/htcondor/*.tar.xz``), unpacked once under /var/tmp.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
UNPACK_ROOT = Path("/var/tmp/hpcpull-htcondor")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
TEST_USER = "hpcuser"


class PoolUnavailable(RuntimeError):
    """No pool can be started here; the message is the one-line reason."""


# --------------------------------------------------------------------------- finding HTCondor


def _archives() -> list[Path]:
    named = os.environ.get("HPCPULL_CONDOR_ARCHIVE")
    if named:
        return [Path(named)]
    return sorted((REPO.parent / "shared" / "htcondor").glob("htcondor-*.tar.xz"))


def find_release() -> Path:
    """The release directory (bin/, sbin/, libexec/) of an HTCondor to run, or PoolUnavailable."""
    named = os.environ.get("HPCPULL_CONDOR_RELEASE")
    if named:
        release = Path(named)
        if not (release / "sbin" / "condor_master").exists():
            raise PoolUnavailable(f"HPCPULL_CONDOR_RELEASE={named} has no sbin/condor_master")
        return release
    master = shutil.which("condor_master")
    if master:
        return Path(master).resolve().parent.parent
    for archive in _archives():
        target = UNPACK_ROOT / archive.name.removesuffix(".tar.xz")
        if not (target / "sbin" / "condor_master").exists():
            partial = Path(tempfile.mkdtemp(prefix=".unpack-", dir=_mkdir(UNPACK_ROOT)))
            subprocess.run(["tar", "-xJf", str(archive), "-C", str(partial)], check=True, timeout=600)
            partial.chmod(0o755)
            try:
                partial.rename(target)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)  # another run unpacked it first
        return target
    raise PoolUnavailable(
        "no HTCondor: set HPCPULL_CONDOR_RELEASE, put condor_master on PATH, or provide "
        "../shared/htcondor/htcondor-*.tar.xz"
    )


def _mkdir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def unavailable_reason() -> Optional[str]:
    """Why no pool can run here (one line), or None."""
    if os.geteuid() != 0:
        return "a personal HTCondor pool needs root (condor_master switches to the condor user and job owners)"
    try:
        find_release()
    except PoolUnavailable as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- users and install


def ensure_user(name: str, system: bool = False) -> pwd.struct_passwd:
    """An account created for the tests (an ordinary user, or the ``condor`` service user)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    args = ["useradd", "--user-group"]
    args += ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin"] if system else ["--create-home"]
    subprocess.run([*args, name], check=True, capture_output=True, timeout=60)
    return pwd.getpwnam(name)


def install_hpcpull(venv: Path, source: Path = REPO, python: str = "/usr/bin/python3") -> Path:
    """Install hpcpull as the README tells an admin: a venv made with the system Python,
    ``pip install``, world-readable.  Returns the venv's bin/ (HPCPULL_BIN_DIR)."""
    if not (venv / "bin" / "pip").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    with tempfile.TemporaryDirectory() as build:
        # A copy of the checkout: pip builds in place, and the checkout must stay clean.
        tree = Path(build) / "src"
        shutil.copytree(source, tree, ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "demo-output"))
        pip = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--force-reinstall",
             "--no-deps", str(tree)],
            capture_output=True, text=True, timeout=600,
        )
        if pip.returncode != 0:
            raise RuntimeError(f"pip install of hpcpull failed: {pip.stderr.strip()[-2000:]}")
    deps = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "htcondor>=24.0", "jinja2>=3.0"],
        capture_output=True, text=True, timeout=600,
    )
    if deps.returncode != 0:
        raise RuntimeError(f"pip install of hpcpull's dependencies failed: {deps.stderr.strip()[-2000:]}")
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(venv)], check=True, timeout=120)
    return venv / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- the pool


BASE_CONFIG = """\
# A personal HTCondor pool for hpcpull's tests and demo: loopback only, throwaway security.
RELEASE_DIR = {release}
BIN = $(RELEASE_DIR)/bin
SBIN = $(RELEASE_DIR)/sbin
LIB = $(RELEASE_DIR)/lib
LIBEXEC = $(RELEASE_DIR)/libexec
LOCAL_DIR = {local}
LOG = $(LOCAL_DIR)/log
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = $(LOCAL_DIR)/execute
LOCK = $(LOCAL_DIR)/lock
RUN = $(LOCAL_DIR)/run
LOCAL_CONFIG_DIR = {config_d}
CONDOR_IDS = {condor_ids}
CONDOR_ADMIN =
MAIL = /bin/true

CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:{port}
NETWORK_INTERFACE = 127.0.0.1
# Without this the daemons bind 0.0.0.0 even with NETWORK_INTERFACE set.
BIND_ALL_INTERFACES = False
USE_SHARED_PORT = False
ENABLE_IPV6 = False
# Names with '@': a daemon name without one is taken for a host name and resolved through
# DNS each time the job router or a tool locates the daemon by it (build_valid_daemon_name,
# src/condor_utils/daemon_name.cpp); where DNS does not answer, every lookup blocks for 5 s
# (the router logs "Saw slow DNS query ... getaddrinfo(<name>)" once per poll).
MASTER_NAME = {name}@{domain}
SCHEDD_NAME = {name}@{domain}
COLLECTOR_NAME = {name}
UID_DOMAIN = {domain}
FILESYSTEM_DOMAIN = {domain}
TRUST_UID_DOMAIN = True
TRUST_DOMAIN = {domain}

DAEMON_LIST = {daemons}

SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS, CLAIMTOBE
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS, CLAIMTOBE
SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/tokens.d
SEC_PASSWORD_DIRECTORY = $(LOCAL_DIR)/passwords.d
ALLOW_READ = *
ALLOW_WRITE = *
ALLOW_DAEMON = *
ALLOW_ADMINISTRATOR = *
ALLOW_NEGOTIATOR = *
ALLOW_CONFIG = *
ALLOW_OWNER = *
QUEUE_SUPER_USERS = root, condor

# A startd that runs local jobs inside a container, and never a job meant for a route: the
# line the README's admin guide gives (the negotiator could match such a job before the
# router's next poll).
START = TRUE
START = $(START) && {start}
SUSPEND = FALSE
PREEMPT = FALSE
KILL = FALSE
WANT_SUSPEND = FALSE
RunBenchmarks = 0
STARTD_HAS_BAD_UTMP = True
BASE_CGROUP =
USE_PID_NAMESPACES = False
NUM_CPUS = 2
MEMORY = 2048

# Short cycles: a test waits seconds, not minutes.
NEGOTIATOR_INTERVAL = 5
NEGOTIATOR_CYCLE_DELAY = 5
SCHEDD_INTERVAL = 5
UPDATE_INTERVAL = 5
PERIODIC_EXPR_INTERVAL = 5
JOB_ROUTER_POLLING_PERIOD = {polling}
SCHEDD_CLUSTER_INITIAL_VALUE = {first_cluster}
JOB_ROUTER_DEBUG = D_FULLDEBUG
SCHEDD_DEBUG = D_FULLDEBUG
MAX_JOB_ROUTER_LOG = 100000000
MAX_SCHEDD_LOG = 100000000
"""


@dataclass
class PersonalPool:
    """One personal pool under ``base``: ``start()``, use, ``stop()``."""

    base: Path
    release: Path
    bin_dir: Path                     # HPCPULL_BIN_DIR: the hooks' venv
    local_config: str                 # 90-hpcpull-local.conf: site knobs
    routes_config: str                # 60-hpcpull-routes.conf
    name: str = "gateway"
    port: int = 0
    with_startd: bool = True
    polling_period: int = 5
    first_cluster: int = 1            # SCHEDD_CLUSTER_INITIAL_VALUE: pools sharing a batch system
                                      # then never share a batch job name (hpcpull-<route>-<job>-...)
    extra_config: str = ""            # appended to the base config (before config.d)
    user: str = TEST_USER
    # False: none of hpcpull's files (50-, 60-, 90-), e.g. for a plain access point.
    install_hpcpull_config: bool = True
    # More files for config.d, name -> text, written after hpcpull's (e.g. pull mode's 70-/71-).
    config_files: dict[str, str] = field(default_factory=dict)
    pid: Optional[int] = field(default=None, init=False)

    @property
    def local(self) -> Path:
        return self.base / "local"

    @property
    def config(self) -> Path:
        return self.base / "condor_config"

    @property
    def config_d(self) -> Path:
        return self.base / "config.d"

    @property
    def log_dir(self) -> Path:
        return self.local / "log"

    @property
    def router_log(self) -> Path:
        return self.log_dir / "JobRouterLog"

    @property
    def home(self) -> Path:
        """A directory of the test user's own, where its jobs are submitted from."""
        return self.base / "home" / self.user

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment for HTCondor's tools and daemons (as a service manager gives)."""
        return {
            "PATH": f"{self.release}/bin:{self.release}/sbin:{SYSTEM_PATH}",
            "CONDOR_CONFIG": str(self.config),
            "LANG": "C.UTF-8",
            **extra,
        }

    # ------------------------------------------------------------------ set up and start

    def write_config(self) -> None:
        condor = ensure_user("condor", system=True)
        ensure_user(self.user)
        _mkdir(self.base)
        for sub in ("log", "spool", "execute", "lock", "run", "tokens.d", "passwords.d"):
            path = _mkdir(self.local / sub, 0o700 if sub in ("tokens.d", "passwords.d") else 0o755)
            if sub not in ("tokens.d", "passwords.d"):
                os.chown(path, condor.pw_uid, condor.pw_gid)
        _mkdir(self.local)
        _mkdir(self.config_d)
        user = pwd.getpwnam(self.user)
        _mkdir(self.home.parent)
        _mkdir(self.home, 0o755)
        os.chown(self.home, user.pw_uid, user.pw_gid)
        if not self.port:
            self.port = free_port()
        daemons = "MASTER, COLLECTOR, NEGOTIATOR, SCHEDD" + (", STARTD" if self.with_startd else "")
        self.config.write_text(BASE_CONFIG.format(
            release=self.release, local=self.local, config_d=self.config_d,
            condor_ids=f"{condor.pw_uid}.{condor.pw_gid}", port=self.port, name=self.name,
            domain=f"{self.name}.hpcpull.test", daemons=daemons, polling=self.polling_period,
            first_cluster=self.first_cluster,
            # Jobs meant for a route (hpcpull's, pull mode's) never run on the local slots.
            start="(TARGET.WantHpc =!= true) && (TARGET.WantGateway =!= true)",
        ) + self.extra_config)
        self.install_config_d()

    def install_config_d(self) -> None:
        """hpcpull's files as the README's admin guide puts them into condor_config.d."""
        shipped = REPO / "condor_config.d"
        if self.install_hpcpull_config:
            shutil.copy(shipped / "50-hpcpull.conf", self.config_d / "50-hpcpull.conf")
            (self.config_d / "60-hpcpull-routes.conf").write_text(self.routes_config)
            (self.config_d / "90-hpcpull-local.conf").write_text(
                f"HPCPULL_BIN_DIR = {self.bin_dir}\n" + self.local_config)
        for name, text in self.config_files.items():
            (self.config_d / name).write_text(text)
        for path in self.config_d.iterdir():
            path.chmod(0o644)

    def start(self, timeout: float = 90) -> None:
        self.write_config()
        pidfile = self.local / "run" / "master.pid"
        subprocess.run(
            [str(self.release / "sbin" / "condor_master"), "-pidfile", str(pidfile)],
            env=self.env(), check=True, timeout=60, cwd="/",
        )
        deadline = time.time() + 30
        while not pidfile.exists() and time.time() < deadline:
            time.sleep(0.2)
        self.pid = int(pidfile.read_text().split()[0])
        self.wait_for_daemons(("Scheduler", "Job_Router", "Negotiator") + (("Machine",) if self.with_startd else ()),
                              timeout)

    def wait_for_daemons(self, kinds: Sequence[str], timeout: float = 90) -> None:
        deadline = time.time() + timeout
        seen: set[str] = set()
        while time.time() < deadline:
            out = self.tool(["condor_status", "-any", "-af", "MyType"], check=False)
            seen = set(out.stdout.split())
            if all(kind in seen for kind in kinds):
                return
            time.sleep(1)
        raise RuntimeError(f"pool {self.name} not ready after {timeout:.0f} s: collector lists {sorted(seen)}; "
                           f"see {self.log_dir}")

    def stop(self, timeout: float = 90) -> None:
        """End the master (and with it every daemon it started), by pid."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGQUIT)  # fast shutdown: the pool is thrown away
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.time() + timeout
        while time.time() < deadline and _alive(self.pid):
            time.sleep(0.2)
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    # ------------------------------------------------------------------ using it

    def tool(self, args: Sequence[str], check: bool = True, user: Optional[str] = None,
             cwd: Optional[Path] = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run an HTCondor command-line tool, as root or as ``user``."""
        env = self.env()
        command = list(args)
        if user:
            home = str(self.home) if user == self.user else "/"
            command = ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                       f"HOME={home}", f"USER={user}", *command]
        result = subprocess.run(command, env=env, cwd=str(cwd or "/"), capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
                               f" {result.stdout.strip()}")
        return result

    def user_dir(self, name: str) -> Path:
        """A fresh directory of the test user's, under its home."""
        user = pwd.getpwnam(self.user)
        path = self.home / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, user.pw_uid, user.pw_gid)
        return path

    def write_user_file(self, path: Path, text: str, mode: int = 0o644) -> Path:
        user = pwd.getpwnam(self.user)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        os.chown(path, user.pw_uid, user.pw_gid)
        for parent in path.parents:
            if parent == self.home or self.home not in parent.parents:
                break
            os.chown(parent, user.pw_uid, user.pw_gid)
        return path

    def submit(self, directory: Path, submit_text: str, name: str = "job.sub") -> int:
        """condor_submit as the test user from ``directory``; returns the cluster id."""
        self.write_user_file(directory / name, submit_text)
        out = self.tool(["condor_submit", "-terse", name], user=self.user, cwd=directory)
        return int(out.stdout.split(".")[0])

    def q(self, constraint: str = "true", attrs: Sequence[str] = ()) -> list[dict[str, Any]]:
        args = ["condor_q", "-allusers", "-json", "-constraint", constraint]
        if attrs:
            args += ["-attributes", ",".join(attrs)]
        out = self.tool(args)
        return json.loads(out.stdout) if out.stdout.strip() else []

    def job(self, job_id: str, attrs: Sequence[str] = ()) -> Optional[dict[str, Any]]:
        """The job from the queue, else from the history, else None."""
        cluster, _, proc = job_id.partition(".")
        constraint = f"ClusterId == {cluster} && ProcId == {proc or 0}"
        found = self.q(constraint, attrs)
        if found:
            return found[0]
        return self.history(constraint, attrs)[0] if self.history(constraint, attrs) else None

    def history(self, constraint: str, attrs: Sequence[str] = ()) -> list[dict[str, Any]]:
        args = ["condor_history", "-json", "-constraint", constraint]
        if attrs:
            args += ["-attributes", ",".join(attrs)]
        out = self.tool(args, check=False)
        return json.loads(out.stdout) if out.stdout.strip() else []

    def wait_until_gone(self, constraint: str, timeout: float) -> list[dict[str, Any]]:
        """Wait until no job matching ``constraint`` is in the queue; returns what is left on timeout."""
        deadline = time.time() + timeout
        left = self.q(constraint, ["ClusterId", "ProcId", "JobStatus"])
        while left and time.time() < deadline:
            time.sleep(2)
            left = self.q(constraint, ["ClusterId", "ProcId", "JobStatus"])
        return left

    def daemon_pid(self, program: str) -> int:
        """The pid of the daemon ``program`` (e.g. condor_job_router) this pool's master runs."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                exe = os.readlink(f"/proc/{entry}/exe")
            except (OSError, ValueError):
                continue
            if parent == self.pid and os.path.basename(exe) == program:
                return int(entry)
        raise RuntimeError(f"no {program} under condor_master {self.pid}")

    def router_log_text(self) -> str:
        try:
            return self.router_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours is gone for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 1.0,
               explain: Callable[[], str] = lambda: "") -> Any:
    """Poll ``predicate`` until it returns something true; AssertionError naming ``what`` (and
    ``explain()``) after ``timeout`` seconds.  A failing HTCondor tool (RuntimeError, e.g.
    while the schedd restarts) counts as "not yet"."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = predicate()
        except RuntimeError:
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")


def world_readable_dir(prefix: str) -> Path:
    """A fresh directory every user can traverse (pytest's own tmp dirs are private to root)."""
    return _mkdir(Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")))
