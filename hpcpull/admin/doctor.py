"""`hpcpull doctor`: an admin's health check of an hpcpull gateway.

In the spirit of HTCondor-CE's ``condor_ce_trace`` and ``condor_job_router_info``: every
way a gateway silently fails to run jobs gets one line ``OK|WARN|FAIL <check>: <found>``,
and each WARN/FAIL gets an indented ``fix:`` hint.  What is checked, and why it matters:

* the HTCondor configuration loads and every ``HPCPULL_*`` knob resolves (a bad value
  only shows up when a hook runs, as a job stuck idle);
* the four router hooks (and the schedd-cron poller) pass HTCondor's own test
  (``validateHookPath`` in src/condor_utils/hook_utils.cpp: the path must stat, have an
  execute bit, not be world-writable, and its directory must not be world-writable;
  otherwise the router logs ERROR and treats the hook as not configured);
* the job owners can run them: the router runs every hook as the job's Owner, so each
  directory on the way to a hook, to the ``-full`` Python hook behind a shell front end
  and to their ``#!`` interpreters must let an ordinary user through, and the hooks are
  run -- with the interpreter and the hpcpull package they load -- as ``nobody`` (or
  ``--as-user NAME``), not as root: a venv under /root passes every check root makes;
* the job router runs and the routes hpcpull serves parse and render for a sample job;
* the scratch root, status cache and log directory are usable by hooks that run as the
  job owners (hence mode 1777);
* the batch system's commands are on the batch command PATH and answer a status query;
  with ``--probe-job`` a tiny batch job shows that compute nodes see the scratch root.

Exit status 0 when nothing FAILs (WARN does not fail), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from hpcpull.config import (
    GLOBAL_KNOBS,
    ROUTE_KNOBS,
    Config,
    GatewaySettings,
    RouteSettings,
    lrms_command_environment,
)
from hpcpull.errors import ConfigError, HpcPullError, JobRejected
from hpcpull.lrms.base import BatchState, LrmsError, one_line
from hpcpull.state.status_cache import service_uids

OK, WARN, FAIL = "OK", "WARN", "FAIL"

# (check name, HTCondor hook type) -- knobs <KEYWORD>_HOOK_<type> (JobRouterHookMgr).
HOOKS = (
    ("translate", "TRANSLATE_JOB"),
    ("update", "UPDATE_JOB_INFO"),
    ("finalize", "JOB_FINALIZE"),
    ("cleanup", "JOB_CLEANUP"),
)
KEYWORD = "HPCPULL"

# Every client command each adapter runs (hpcpull/lrms/*.py): a missing one breaks
# submit, status, cancel, hold/release or the accounting fallback.
LRMS_COMMANDS: dict[str, tuple[str, ...]] = {
    "slurm": ("sbatch", "squeue", "scontrol", "scancel", "sacct"),
    "pbs": ("qsub", "qstat", "qdel", "qhold", "qrls"),
    "pbspro": ("qsub", "qstat", "qdel", "qhold", "qrls"),
    "sge": ("qsub", "qstat", "qacct", "qdel", "qhold", "qrls", "qconf"),
    "lsf": ("bsub", "bjobs", "bkill", "bstop", "bresume"),
}
# Variables that tell a batch client which cluster to talk to, shown in messages.
LRMS_ENV_NAMES = ("SLURM_CONF", "SGE_ROOT", "SGE_CELL", "PBS_SERVER", "LSF_ENVDIR")

# Knobs hpcpull (or HTCondor, for keyword HPCPULL) reads besides ROUTE_KNOBS/GLOBAL_KNOBS.
OTHER_KNOBS = ("BIN_DIR", "ATTRS_TO_COPY", "HOOK_JOB_EXIT") + tuple(f"HOOK_{kind}" for _, kind in HOOKS)

PROBE_FILE = "doctor-probe"
SITE_STATUS = "site-status.json"  # written by the schedd cron poller (poller.py)
POLLER = "HPCPULL"                # SCHEDD_CRON_JOBLIST entry of the poller (50-hpcpull.conf)

# The account the hooks are checked as when hpcpull doctor runs as root: it stands for the
# job owners, who have no rights beyond what every user has.
DEFAULT_HOOK_USER = "nobody"
NOBODY_ID = 65534  # nobody's uid and gid where the account is missing
# What a hook prints for the blank line the doctor sends: "malformed input" (the hook
# started, loaded hpcpull and the configuration) with these exit codes (hooks.py).
MALFORMED_EXIT = {"translate": 2, "update": 0, "finalize": 0, "cleanup": 0}
# The README's install, which every job owner can run.
INSTALL_FIX = ("install hpcpull where every user can reach it: /usr/bin/python3 -m venv /opt/hpcpull && "
               "/opt/hpcpull/bin/pip install hpcpull && chmod -R a+rX /opt/hpcpull, then set "
               "HPCPULL_BIN_DIR = /opt/hpcpull/bin (90-hpcpull-local.conf)")

Lookup = Callable[[str], Optional[str]]


@dataclass(frozen=True)
class Check:
    """One finding: status OK, WARN or FAIL, a check name, what was found and how to fix it."""

    status: str
    name: str
    message: str
    fix: str = ""

    def lines(self) -> list[str]:
        text = [f"{self.status} {self.name}: {one_line(self.message, 2000)}"]
        if self.status != OK and self.fix:
            text.append(f"    fix: {one_line(self.fix, 2000)}")
        return text


# ----------------------------------------------------------------------------- helpers
def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def _split(text: Optional[str]) -> list[str]:
    """A knob list (HTCondor's StringTokenIterator: commas and white space)."""
    return [word for word in re.split(r"[\s,]+", text or "") if word]


def _age(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _cron_period(text: Optional[str]) -> Optional[float]:
    """A schedd cron period: N, Ns, Nm or Nh (reference/htcondor-interfaces.md, schedd cron)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", (text or "").lower())
    if not match:
        return None
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


@dataclass(frozen=True)
class Account:
    """The account the hooks are checked as, standing for the job owners."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @property
    def label(self) -> str:
        return self.name if self.name.startswith("uid ") else f"{self.name} (uid {self.uid})"


def hook_account(name: Optional[str] = None) -> Account:
    """``name``'s account, else nobody's (uid 65534 where there is no such account).

    Raises KeyError for a ``name`` that no account has."""
    wanted = name or DEFAULT_HOOK_USER
    try:
        entry = pwd.getpwnam(wanted)
    except KeyError:
        if name:
            raise
        return Account(f"uid {NOBODY_ID}", NOBODY_ID, NOBODY_ID, (NOBODY_ID,), "/")
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid,
                   tuple(os.getgrouplist(entry.pw_name, entry.pw_gid)), entry.pw_dir)


def _may(st: os.stat_result, account: Account, bits: int) -> bool:
    """Whether ``account`` has ``bits`` (4 read, 1 execute/search) on a file, by its mode:
    the owner's bits for its owner, the group's for its group, else the others'."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == account.uid:
        have = mode >> 6
    elif st.st_gid in account.groups:
        have = mode >> 3
    else:
        have = mode
    return have & bits == bits


def _has_acl(path: str) -> bool:
    """An access ACL may grant what the mode bits deny: such a path is left to the run."""
    try:
        os.getxattr(path, "system.posix_acl_access")
    except (OSError, AttributeError):
        return False
    return True


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def interpreter_of(path: str) -> Optional[str]:
    """The interpreter named by ``path``'s ``#!`` line (None for a binary or an unreadable file)."""
    try:
        with open(path, "rb") as handle:
            first = handle.read(256).split(b"\n", 1)[0]
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return words[0] if words else ""


def unreachable(path: str, account: Account) -> Optional[tuple[str, str]]:
    """Why ``account`` cannot execute ``path`` (and, being a script, read it), judged by the
    mode bits: (the path that stops it, why), or None when nothing does or nothing can be
    told (root; a path this process cannot stat; a path with an ACL).

    Every directory on the way must be searchable: those of the path as written and those
    of the file it resolves to (a symlink into /root stops at /root).
    """
    if account.uid == 0:
        return None
    checked: set[str] = set()
    for candidate in (os.path.abspath(path), os.path.realpath(path)):
        parts = Path(candidate).parts
        for depth in range(1, len(parts)):
            directory = os.path.join(*parts[:depth])
            if directory in checked:
                continue
            checked.add(directory)
            try:
                st = os.stat(directory)
            except OSError:
                return None
            if not _may(st, account, 1) and not _has_acl(directory):
                return directory, f"cannot enter {directory} (mode {_mode(st)}, owner {_owner_name(st.st_uid)})"
    try:
        st = os.stat(path)
    except OSError:
        return None
    if _has_acl(path):
        return None
    if not _may(st, account, 1):
        return path, f"cannot execute {path} (mode {_mode(st)}, owner {_owner_name(st.st_uid)})"
    if interpreter_of(path) is not None and not _may(st, account, 4):
        return path, f"cannot read {path} (mode {_mode(st)}, owner {_owner_name(st.st_uid)})"
    return None


def owner_problem(path: str, account: Account) -> Optional[tuple[str, str]]:
    """What stops ``account`` from running the hook ``path``: the hook, the ``-full`` Python
    hook and slot gate behind a shell front end, and each one's ``#!`` interpreter.
    Returns (message, fix) for the first obstacle, or None."""
    for executable in (path, *_behind_front_end(path)):
        for target, what in ((executable, executable), (interpreter_of(executable), None)):
            if not target or not target.startswith("/"):
                continue  # a relative '#!' is reported by executable_problems
            found = unreachable(target, account)
            if found is None:
                continue
            blocker, why = found
            subject = what or f"{target}, the interpreter of {executable}"
            # Only the file's own mode in an open place is a chmod; anything else a reinstall.
            fix = f"chmod a+rx {blocker}" if blocker == target and not _in_private_tree(blocker) else INSTALL_FIX
            return f"the job owners cannot run {subject}: {account.label}, standing for them, {why}", fix
    return None


def _in_private_tree(path: str) -> bool:
    """Under a home directory (root's, or /home): what lives there is no place for hooks."""
    home = os.path.expanduser("~root")
    return any(path == top or path.startswith(top.rstrip("/") + "/") for top in (home, "/home"))


def _as_command(account: Account, switch: bool) -> str:
    """The command prefix that runs a program as ``account``, for fix hints."""
    if not switch:
        return ""
    if account.name.startswith("uid "):
        return f"setpriv --reuid={account.uid} --regid={account.gid} --clear-groups "
    return f"runuser -u {account.name} -- "


def _python_hook(path: str) -> str:
    """The hook to run for a check: the ``-full`` Python hook behind a shell front end (the
    front end waits for a free hook slot first), else the hook itself."""
    behind = _behind_front_end(path)
    shell = os.path.basename(interpreter_of(path) or "") in ("sh", "bash", "dash")
    return behind[0] if behind and shell else path


def _behind_front_end(path: str) -> list[str]:
    """What a shell front end (hooks/hpcpull-translate, hooks/hpcpull-update) runs: the
    ``-full`` Python hook and ``hpcpull-hook-slot`` beside it; [] for any other hook."""
    full = f"{path}-full"
    if not os.path.exists(full):
        return []
    return [full, os.path.join(os.path.dirname(path), "hpcpull-hook-slot")]


def executable_problems(path: str, what: str, runs_as: str = "the job owners") -> list[tuple[str, str, str]]:
    """Why HTCondor would refuse (FAIL) or a job owner could not run (WARN) ``path``.

    Mirrors ``validateHookPath`` (src/condor_utils/hook_utils.cpp): stat() follows
    symlinks; any execute bit counts (``StatInfo``); the directory is the textual parent
    of the configured path.  Beyond it: the ``#!`` interpreter must exist (the checkout's
    ``hooks/`` start with ``#!python``, which only pip's install rewrites), and hooks run
    as the job owners (the poller as condor), so "other" needs read and execute permission.
    Returns (status, message, fix) tuples, empty when all is well.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return [(FAIL, f"{path}: {exc.strerror}: HTCondor treats {what} as not configured",
                 "install hpcpull (the README's venv puts the executables in HPCPULL_BIN_DIR, default "
                 "/opt/hpcpull/bin) or set HPCPULL_BIN_DIR to the directory that holds them")]
    if not stat.S_ISREG(st.st_mode):
        return [(FAIL, f"{path} is not a regular file", f"point the knob at the {what} executable")]
    if st.st_mode & stat.S_IWOTH:
        return [(FAIL, f"{path} is world-writable (mode {_mode(st)}): HTCondor refuses to run it",
                 f"chmod o-w {path}")]
    if not st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return [(FAIL, f"{path} is not executable (mode {_mode(st)}): HTCondor refuses to run it",
                 f"chmod 755 {path}")]
    directory = os.path.dirname(path) or "."
    try:
        dir_st = os.stat(directory)
    except OSError as exc:
        return [(FAIL, f"directory {directory}: {exc.strerror}", f"check {directory}")]
    if dir_st.st_mode & stat.S_IWOTH:
        return [(FAIL, f"{path} is in a world-writable directory ({directory}, mode {_mode(dir_st)}): "
                       "HTCondor refuses to run it",
                 f"chmod o-w {directory}, or install the executables elsewhere and set HPCPULL_BIN_DIR")]
    problems: list[tuple[str, str, str]] = []
    try:
        with open(path, "rb") as handle:
            first = handle.read(256).split(b"\n", 1)[0]
    except OSError as exc:
        first = b""
        problems.append((WARN, f"{path} cannot be read by this user: {exc.strerror}", f"chmod a+r {path}"))
    if first.startswith(b"#!"):
        words = first[2:].decode("utf-8", "replace").split()
        interpreter = words[0] if words else ""
        if not interpreter.startswith("/"):
            return [(FAIL, f"{path} starts with '#!{interpreter}', not an absolute interpreter path: "
                           "the kernel cannot start it (pip rewrites '#!python' when it installs hpcpull; "
                           "the checkout's hooks/ are not runnable as they are)",
                     "point HPCPULL_BIN_DIR at the installed executables (pip install hpcpull)")]
        if not os.access(interpreter, os.X_OK):
            return [(FAIL, f"{path}: its interpreter {interpreter} does not exist or is not executable",
                     f"reinstall hpcpull with the Python that should run it, or fix the '#!' line of {path}")]
    if not st.st_mode & stat.S_IXOTH or (first.startswith(b"#!") and not st.st_mode & stat.S_IROTH):
        problems.append((WARN, f"{path} has mode {_mode(st)}: {what} runs as {runs_as}, who may not be "
                               "allowed to run it", f"chmod 755 {path}"))
    return problems


def sample_job_ad(owner: str, arguments: str = f"-c 'uname -n > {PROBE_FILE}'", walltime_s: int = 0) -> Any:
    """A small vanilla job, as a route gets it; ``/bin/sh`` is not transferred."""
    import classad2

    ad = classad2.ClassAd()
    ad.update({
        "ClusterId": 1, "ProcId": 0, "Owner": owner, "GlobalJobId": "hpcpull-doctor#1.0#0",
        "JobUniverse": 5, "Cmd": "/bin/sh", "TransferExecutable": False, "Arguments": arguments,
        "Iwd": "/tmp", "In": "/dev/null", "Out": "_condor_stdout", "Err": "_condor_stderr",
        "RequestCpus": 1, "Environment": "",
    })
    if walltime_s:
        ad["BatchRuntime"] = walltime_s
    return ad


def template_file(route: RouteSettings) -> Optional[Path]:
    """Where the route's template comes from: the first search directory that has it."""
    from hpcpull.script.render import template_search_path

    for directory in template_search_path(route):
        candidate = directory / route.template_name
        if candidate.is_file():
            return candidate
    return None


# ------------------------------------------------------------------------------ probe
@dataclass
class _Probe:
    route: RouteSettings
    directory: Path
    batch: Any
    job_id: str = ""
    started: float = field(default_factory=time.monotonic)
    waiting: bool = True           # the batch system last said the job waits to start
    last_state: str = ""           # its native state, for messages
    last_reason: str = ""
    grace_until: Optional[float] = None
    result: Optional[Check] = None


# ----------------------------------------------------------------------------- doctor
class Doctor:
    """Runs the checks against one configuration; ``results`` collects what was found."""

    def __init__(
        self,
        lookup: Lookup,
        keys: Callable[[], Iterable[str]],
        route: Optional[str] = None,
        probe: bool = False,
        probe_timeout: float = 60.0,
        hook_env: Optional[Mapping[str, str]] = None,
        config: Optional[Config] = None,
        hook_user: Optional[str] = None,
    ) -> None:
        self.lookup = lookup
        self.hook_user = hook_user  # --as-user; None: DEFAULT_HOOK_USER
        self.keys = keys
        self.config = Config(lookup) if config is None else config
        self.only_route = route
        self.probe = probe
        self.probe_timeout = probe_timeout
        self.hook_env = dict(os.environ if hook_env is None else hook_env)
        self.results: list[Check] = []
        self.gateway: Optional[GatewaySettings] = None
        self.routes: dict[str, RouteSettings] = {}     # selected routes whose knobs resolve
        self.rendered: set[str] = set()                # routes whose template renders
        self.scratch_ok: dict[Path, bool] = {}

    @classmethod
    def from_htcondor(cls, **kwargs: Any) -> Doctor:
        """Read the configuration through ``htcondor2.param`` (typed values become text)."""
        import htcondor2

        def lookup(name: str) -> Optional[str]:
            value = htcondor2.param.get(name)
            if value is None:
                return None
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)

        # Config() itself, exactly as the hooks build it
        return cls(lookup, lambda: list(htcondor2.param.keys()), config=Config(), **kwargs)

    def add(self, status: str, name: str, message: str, fix: str = "") -> Check:
        check = Check(status, name, message, fix)
        self.results.append(check)
        return check

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.results)

    # ------------------------------------------------------------------ all of it
    def run(self) -> list[Check]:
        """Every check, in the order an admin fixes things (configuration first)."""
        self.check_knobs()
        self.check_hooks()
        self.check_poller()
        self.check_router()
        self.check_routes()
        self.check_templates()
        self.check_scratch()
        if self.probe:
            self.check_probe_jobs()
        self.check_lrms()
        self.check_status_cache()
        self.check_log()
        self.check_user()
        return self.results

    # ------------------------------------------------------------------ 1. knobs
    def served_route_names(self) -> list[str]:
        """HPCPULL_ROUTE_NAMES (default: JOB_ROUTER_ROUTE_NAMES), as Config reads them."""
        names = (self.lookup("HPCPULL_ROUTE_NAMES") or "").strip() or self.lookup("JOB_ROUTER_ROUTE_NAMES")
        return _split(names)

    def selected_route_names(self) -> list[str]:
        served = self.served_route_names()
        if self.only_route is None:
            return served
        return [name for name in served if name.lower() == self.only_route.lower()]

    def check_knobs(self) -> None:
        try:
            self.gateway = self.config.gateway()
        except ConfigError as exc:
            self.add(FAIL, "knobs", str(exc), "correct the knob in your local configuration "
                                              "(50-hpcpull.conf documents every HPCPULL_* knob)")
        else:
            gw = self.gateway
            self.add(OK, "knobs", f"gateway knobs resolve: routes {', '.join(gw.route_names) or '(none)'}; "
                                  f"status cache {gw.status_cache_dir} (max age {gw.status_max_age_s:g} s); "
                                  f"command timeout {gw.command_timeout_s:g} s; "
                                  f"log {gw.log_path or '(none)'}")
            if gw.allow_root:
                self.add(WARN, "allow-root", "HPCPULL_ALLOW_ROOT = true: a hook that runs as root goes ahead "
                                             "instead of refusing (hooks should run as the job owners)",
                         "set HPCPULL_ALLOW_ROOT = false on a production gateway (true is for test gateways)")
        self._check_knob_names()
        if self.only_route is not None and not self.selected_route_names():
            defined = self.config.route_exists(self.only_route)
            served = " ".join(self.served_route_names()) or "(empty)"
            self.add(FAIL, f"route.{self.only_route}",
                     (f"JOB_ROUTER_ROUTE_{self.only_route} exists but is not served by hpcpull"
                      if defined else f"no route {self.only_route} is configured")
                     + f" (HPCPULL_ROUTE_NAMES = {served})",
                     f"add {self.only_route} to HPCPULL_ROUTE_NAMES" if defined
                     else "name one of the routes in HPCPULL_ROUTE_NAMES")
        for name in self.selected_route_names():
            if not re.fullmatch(r"[A-Za-z0-9_]+", name) or not self.config.route_exists(name):
                continue  # reported by check_routes
            try:
                route = self.config.route(name)
            except ConfigError as exc:
                self.add(FAIL, f"knobs.{name}", str(exc),
                         f"correct the knob (HPCPULL_ROUTE_{name}_<KNOB> overrides HPCPULL_<KNOB> for this route)")
                continue
            self.routes[name] = route
            details = [f"lrms {route.lrms}", f"scratch {route.scratch_root}", f"template {route.template_name}"]
            if route.partition:
                details.insert(1, f"partition {route.partition}")
            if route.account:
                details.insert(2, f"account {route.account}")
            self.add(OK, f"knobs.{name}", "route knobs resolve: " + ", ".join(details))

    def _check_knob_names(self) -> None:
        """HPCPULL_* knobs nobody reads are usually typos (HPCPULL_PARTITON = ...)."""
        known = {f"HPCPULL_{k}" for k in (*GLOBAL_KNOBS, *ROUTE_KNOBS, *OTHER_KNOBS)}
        set_names = sorted({k.upper() for k in self.keys() if k.upper().startswith("HPCPULL_")})
        unknown: list[str] = []
        orphaned: list[str] = []
        for name in set_names:
            if name in known:
                continue
            if name.startswith("HPCPULL_ROUTE_"):
                rest = name[len("HPCPULL_ROUTE_"):]
                routes = [rest[: -len(knob) - 1] for knob in ROUTE_KNOBS if rest.endswith("_" + knob)]
                routes = [r for r in routes if r]
                if routes:
                    if not any(self.config.route_exists(r) for r in routes):
                        orphaned.append(name)
                    continue
            unknown.append(name)
        if unknown:
            self.add(WARN, "knob-names", f"{', '.join(unknown)}: not a knob hpcpull reads (a typo?)",
                     "rename it to one of the knobs in 50-hpcpull.conf (per route: HPCPULL_ROUTE_<Route>_<KNOB>)")
        if orphaned:
            self.add(WARN, "knob-names", f"{', '.join(orphaned)}: names a route that has no JOB_ROUTER_ROUTE_<Route>",
                     "correct the route name (route names are case-insensitive) or remove the knob")
        if not unknown and not orphaned:
            self.add(OK, "knob-names", f"{len(set_names)} HPCPULL_* knobs set, all known")

    # ------------------------------------------------------------------ 2. hooks
    def check_hooks(self) -> None:
        keyword = (self.lookup("JOB_ROUTER_HOOK_KEYWORD") or "").strip()
        account = self._hook_account()
        runnable: list[tuple[str, str]] = []
        for short, kind in HOOKS:
            knob = f"{KEYWORD}_HOOK_{kind}"
            path = self.lookup(knob)
            if path is None and kind == "JOB_FINALIZE":
                knob = f"{KEYWORD}_HOOK_JOB_EXIT"  # the old name, read when JOB_FINALIZE is unset
                path = self.lookup(knob)
            if not path or not path.strip():
                self.add(FAIL, f"hook.{short}", f"{KEYWORD}_HOOK_{kind} is not set: the router runs no {kind} hook",
                         f"set {KEYWORD}_HOOK_{kind} = $(HPCPULL_BIN_DIR)/hpcpull-{short} (50-hpcpull.conf does)")
                continue
            path = path.strip()
            problems = executable_problems(path, f"the {kind} hook")
            for neighbour in _behind_front_end(path):  # the Python hook and the slot gate it runs
                if not any(status == FAIL for status, _, _ in problems):
                    problems += executable_problems(neighbour, f"the {kind} hook's {os.path.basename(neighbour)}")
            if not any(status == FAIL for status, _, _ in problems) and account is not None:
                # HTCondor's checks are made as the router; the hook runs as the job owner.
                found = owner_problem(path, account)
                if found is not None:
                    problems = [(FAIL, *found)]  # what the owners meet replaces the mode-bit guesses
            for status, message, fix in problems:
                self.add(status, f"hook.{short}", f"{knob}: {message}", fix)
            if not any(status == FAIL for status, _, _ in problems):
                if not problems:
                    reach = f"; {account.name}, as the job owners, can reach it" \
                        if account is not None and account.uid != 0 else ""
                    self.add(OK, f"hook.{short}", f"{knob} = {path} passes HTCondor's checks{reach}")
                runnable.append((short, _python_hook(path)))
        self._check_keyword(keyword)
        if runnable and account is not None:
            self._check_hooks_run(runnable, account)

    def _hook_account(self) -> Optional[Account]:
        """Who the hooks are checked as: ``--as-user`` or nobody; None (after a FAIL) for an
        account that does not exist."""
        try:
            return hook_account(self.hook_user)
        except KeyError:
            self.add(FAIL, "hook-run", f"--as-user {self.hook_user}: no such account",
                     "name an existing account, e.g. a user who submits jobs, or leave --as-user out (nobody)")
            return None

    def _check_keyword(self, keyword: str) -> None:
        """JobRouterHookMgr::getHookKeyword: the source job's HookKeyword, else JOB_ROUTER_HOOK_KEYWORD."""
        note = "a job's own HookKeyword attribute overrides it"
        if not keyword:
            self.add(WARN, "hook-keyword",
                     f'JOB_ROUTER_HOOK_KEYWORD is not set: only jobs with +HookKeyword = "{KEYWORD}" reach '
                     "hpcpull's hooks; other jobs routed to hpcpull's routes are copies that never run",
                     f"set JOB_ROUTER_HOOK_KEYWORD = {KEYWORD} (50-hpcpull.conf does; is it included?)")
        elif keyword.upper() == KEYWORD:
            self.add(OK, "hook-keyword", f"JOB_ROUTER_HOOK_KEYWORD = {keyword} ({note})")
        elif (self.lookup(f"{keyword}_HOOK_TRANSLATE_JOB") or "").strip() == \
                (self.lookup(f"{KEYWORD}_HOOK_TRANSLATE_JOB") or "").strip() != "":
            self.add(OK, "hook-keyword", f"JOB_ROUTER_HOOK_KEYWORD = {keyword}, whose hooks are hpcpull's ({note})")
        else:
            self.add(WARN, "hook-keyword",
                     f"JOB_ROUTER_HOOK_KEYWORD = {keyword}: jobs without their own HookKeyword get "
                     f"{keyword}_HOOK_* hooks, not hpcpull's {KEYWORD}_HOOK_*",
                     f'set JOB_ROUTER_HOOK_KEYWORD = {KEYWORD}, or have the jobs set +HookKeyword = "{KEYWORD}"')

    def _check_hooks_run(self, hooks: Sequence[tuple[str, str]], account: Account) -> None:
        """Run each hook on a blank line as ``account`` (this process's user when not root):
        hpcpull's hooks answer "malformed input" (TRANSLATE with exit 2, the others 0), or,
        run as root without HPCPULL_ALLOW_ROOT, refuse with exit 1 after reading the
        configuration: either way the interpreter, hpcpull and the configuration load for
        that user.  Behind a shell front end its ``-full`` Python hook is run directly: the
        front end would wait for one of the gateway's hook slots, all taken on a busy
        gateway, and its own files were checked above."""
        switch = os.geteuid() == 0 and account.uid != 0
        if switch:
            who = f"{account.label}, as the job owners run them"
            env = dict(self.hook_env, HOME=account.home, USER=account.name, LOGNAME=account.name)
            ids: dict[str, Any] = {"user": account.uid, "group": account.gid, "extra_groups": list(account.groups)}
        else:
            user = _current_user()
            who = "root" if os.geteuid() == 0 else \
                f"{user}, the current user (only root can run them as {account.name}, standing for the job owners)"
            env, ids = dict(self.hook_env), {}

        def run(path: str) -> Union[subprocess.CompletedProcess, Exception]:
            try:
                return subprocess.run([path], input=b"\n", capture_output=True, env=env, cwd="/", timeout=60, **ids)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return exc

        with ThreadPoolExecutor(max_workers=len(hooks)) as pool:  # together: each starts a Python
            results = list(pool.map(run, [path for _, path in hooks]))
        answered: list[str] = []
        refused: list[str] = []
        for (short, path), proc in zip(hooks, results):
            if isinstance(proc, Exception):
                self.add(FAIL, "hook-run", f"{path} could not be run as {who}: {proc}",
                         f"run it by hand: echo | {_as_command(account, switch)}{path}; {INSTALL_FIX}")
                continue
            stderr = proc.stderr.decode("utf-8", "replace")
            if proc.returncode == MALFORMED_EXIT[short] and f"hpcpull {short}: malformed input" in stderr:
                answered.append(short)
            elif proc.returncode == 1 and f"hpcpull {short}: refusing to run as root" in stderr:
                refused.append(short)
            else:
                self.add(FAIL, "hook-run", f"{path} run as {who} exited {proc.returncode} for an empty input "
                                           f"(hpcpull's {short.upper()} exits {MALFORMED_EXIT[short]}): "
                                           f"{_tail(stderr) or '(no output)'}",
                         f"run it by hand: echo | {_as_command(account, switch)}{path}; an import or permission "
                         f"error means that user cannot load the interpreter or hpcpull: {INSTALL_FIX}")
        if answered:
            codes = "exit 2 for an empty input from translate, 0 from the others" if "translate" in answered \
                else "exit 0 for an empty input"
            self.add(OK, "hook-run", f"{', '.join(answered)} start and answer as {who} ({codes}, as expected)")
        if refused:
            self.add(OK, "hook-run", f"{', '.join(refused)} start and answer as {who} (it refuses to run as root, "
                                     "as expected: hooks run as the job owners; --as-user NAME runs them as NAME)")

    def check_poller(self) -> None:
        """The schedd cron poller (SCHEDD_CRON_HPCPULL_*): one status query per period for all users."""
        joblist = [w.upper() for w in _split(self.lookup("SCHEDD_CRON_JOBLIST"))]
        path = (self.lookup(f"SCHEDD_CRON_{POLLER}_EXECUTABLE") or "").strip()
        if not path:
            if POLLER in joblist:
                self.add(FAIL, "poller", f"SCHEDD_CRON_JOBLIST names {POLLER} but SCHEDD_CRON_{POLLER}_EXECUTABLE "
                                         "is not set", f"set SCHEDD_CRON_{POLLER}_EXECUTABLE = "
                                                       "$(HPCPULL_BIN_DIR)/hpcpull-poll")
            else:
                self.add(WARN, "poller", "the schedd cron poller is not configured: every user's hooks query the "
                                         "batch system for themselves, and the schedd ad has no HpcPull* status",
                         "keep the SCHEDD_CRON_JOBLIST / SCHEDD_CRON_HPCPULL_* lines of 50-hpcpull.conf")
            return
        problems = executable_problems(path, "the poller", runs_as="the condor user")
        for status, message, fix in problems:
            self.add(status, "poller", f"SCHEDD_CRON_{POLLER}_EXECUTABLE: {message}", fix)
        if POLLER not in joblist:
            self.add(WARN, "poller", f"SCHEDD_CRON_{POLLER}_EXECUTABLE is set but {POLLER} is not in "
                                     "SCHEDD_CRON_JOBLIST: the schedd never runs it",
                     f"SCHEDD_CRON_JOBLIST = $(SCHEDD_CRON_JOBLIST) {POLLER}, then condor_restart -schedd "
                     "(the list is read at start-up only)")
            return
        period = _cron_period(self.lookup(f"SCHEDD_CRON_{POLLER}_PERIOD"))
        if period is not None and self.gateway is not None and period >= self.gateway.status_max_age_s:
            self.add(WARN, "poller", f"SCHEDD_CRON_{POLLER}_PERIOD ({period:g} s) is not below "
                                     f"HPCPULL_STATUS_MAX_AGE ({self.gateway.status_max_age_s:g} s): hooks query "
                                     "the batch system themselves between polls",
                     "make the period shorter than HPCPULL_STATUS_MAX_AGE")
            return
        if not problems:
            every = f" every {period:g} s" if period is not None else ""
            self.add(OK, "poller", f"the schedd runs {path}{every} (SCHEDD_CRON_JOBLIST has {POLLER})")

    # ------------------------------------------------------------------ 3. router and routes
    def check_router(self) -> None:
        daemons = [w.upper() for w in _split(self.lookup("DAEMON_LIST"))]
        if "JOB_ROUTER" in daemons:
            self.add(OK, "router", f"JOB_ROUTER is in DAEMON_LIST ({' '.join(daemons)})")
        else:
            self.add(FAIL, "router", f"JOB_ROUTER is not in DAEMON_LIST ({' '.join(daemons) or 'empty'}): "
                                     "no job router runs on this host",
                     "DAEMON_LIST = $(DAEMON_LIST) JOB_ROUTER (50-hpcpull.conf does: is it included?), "
                     "then condor_restart")
        names = _split(self.lookup("JOB_ROUTER_ROUTE_NAMES"))
        if names:
            self.add(OK, "route-names", f"JOB_ROUTER_ROUTE_NAMES = {' '.join(names)}")
        else:
            self.add(FAIL, "route-names", "JOB_ROUTER_ROUTE_NAMES is not set: the router routes no job",
                     "list your routes in JOB_ROUTER_ROUTE_NAMES (see 60-hpcpull-routes.conf.example)")
        constraint = (self.lookup("JOB_ROUTER_SOURCE_JOB_CONSTRAINT") or "").strip()
        if constraint:
            import classad2

            try:
                classad2.ExprTree(constraint)
            except Exception as exc:  # noqa: BLE001 - classad2 raises ClassAdException for bad syntax
                self.add(FAIL, "source-constraint", f"JOB_ROUTER_SOURCE_JOB_CONSTRAINT does not parse: "
                                                    f"{constraint} ({exc})", "correct the ClassAd expression")
            else:
                self.add(OK, "source-constraint", f"JOB_ROUTER_SOURCE_JOB_CONSTRAINT = {constraint}")

    def check_routes(self) -> None:
        from hpcpull.admin.routing_table import DEFAULT_ROUTER_NAME, load_routing_table

        selected = self.selected_route_names()
        table = load_routing_table(self.lookup, extra_routes=selected)
        pull_routes = []
        for name in selected:
            route = table.route(name)
            if route is None or not route.defined:
                self.add(FAIL, f"route.{name}", f"HPCPULL_ROUTE_NAMES names {name}, but JOB_ROUTER_ROUTE_{name} "
                                                "is not defined",
                         f"define JOB_ROUTER_ROUTE_{name} (see 60-hpcpull-routes.conf.example) or remove {name} "
                         "from HPCPULL_ROUTE_NAMES")
                continue
            if route.error:
                self.add(FAIL, f"route.{name}", route.error, f"correct JOB_ROUTER_ROUTE_{name}")
                continue
            if route.requirements and "submitterid" in route.requirements.lower():
                pull_routes.append(name)
            problems = []
            if not table.enabled(name):
                problems.append((WARN, "is not in JOB_ROUTER_ROUTE_NAMES: the router never uses it",
                                 f"add {name} to JOB_ROUTER_ROUTE_NAMES"))
            if route.universe != 5 or not any(s.attr.lower() == "requirements" and s.value.strip().lower() == "false"
                                              for s in route.sets):
                problems.append((WARN, f"universe {route.universe_name} ({route.universe_from}) without "
                                       "'UNIVERSE VANILLA' + 'SET Requirements false': HTCondor may try to run "
                                       "the routed copy itself", "add 'UNIVERSE VANILLA' and 'SET Requirements "
                                                                 "false' to the route"))
            if not route.accepts_jobs:
                problems.append((WARN, f"MaxJobs {route.max_jobs}, MaxIdleJobs {route.max_idle_jobs}: the route "
                                       "accepts no jobs", "raise MaxJobs / MaxIdleJobs"))
            for status, message, fix in problems:
                self.add(status, f"route.{name}", f"JOB_ROUTER_ROUTE_{name} {message}", fix)
            if not problems:
                self.add(OK, f"route.{name}", f"REQUIREMENTS {route.requirements or '(none)'}; universe "
                                              f"{route.universe_name}; MaxJobs {route.max_jobs}, "
                                              f"MaxIdleJobs {route.max_idle_jobs}")
        if pull_routes:
            if table.router_name.lower() == DEFAULT_ROUTER_NAME:
                self.add(WARN, "router-name",
                         f"route {', '.join(pull_routes)} takes jobs that arrived by HTCondor-C (SubmitterId), "
                         f'but JOB_ROUTER_NAME is "{DEFAULT_ROUTER_NAME}": they carry RoutedBy = "jobrouter" from '
                         "the origin's router, and a router never routes a job whose RoutedBy is its own name",
                         "set JOB_ROUTER_NAME = hpcpull before the router routes its first job "
                         "(71-hpcpull-gateway-ccb.conf.example)")
            else:
                self.add(OK, "router-name", f'JOB_ROUTER_NAME = "{table.router_name}" differs from the origin '
                                            f'router\'s default "{DEFAULT_ROUTER_NAME}"')

    # ------------------------------------------------------------------ 4. templates
    def check_templates(self) -> None:
        from hpcpull.script.render import render_batch_script
        from hpcpull.state.jobdir import job_dir_for

        owner = _current_user() if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", _current_user()) else "nobody"
        for name, route in self.routes.items():
            source = template_file(route)
            where = f" ({source})" if source else ""
            job = job_dir_for(route.scratch_root, owner, 1, 0)
            try:
                script = render_batch_script(sample_job_ad(owner), route, job.path)
            except ConfigError as exc:
                self.add(FAIL, f"template.{name}", f"{exc}{where}",
                         f"correct the template; `hpcpull render JOB_AD {name}` shows what a job gets")
                continue
            except JobRejected as exc:
                self.add(WARN, f"template.{name}", f"the route refuses a sample job, so its template was not "
                                                   f"rendered: {exc.reason}",
                         "check the route's limits and launcher knobs")
                continue
            except Exception as exc:  # noqa: BLE001 - a site template can raise anything Jinja2 lets through
                self.add(FAIL, f"template.{name}", f"template {route.template_name}{where}: "
                                                   f"{type(exc).__name__}: {exc}", "correct the template")
                continue
            try:
                proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired) as exc:
                self.add(WARN, f"template.{name}", f"rendered, but bash -n could not check it: {exc}")
                continue
            if proc.returncode != 0:
                self.add(FAIL, f"template.{name}", f"{route.template_name}{where} renders a script bash cannot "
                                                   f"parse: {_tail(proc.stderr)}",
                         f"correct the template; `hpcpull render JOB_AD {name}` shows the script")
                continue
            self.rendered.add(name)
            self.add(OK, f"template.{name}", f"{route.template_name}{where} renders a sample job "
                                             f"({len(script.splitlines())} lines, bash -n passes)")

    # ------------------------------------------------------------------ 5. scratch
    def _scratch_check(self, root: Path) -> tuple[str, str, str]:
        fix_create = (f"mkdir -p {root} && chmod 1777 {root} on the shared filesystem, mounted at the same path "
                      "on the gateway and every compute node")
        try:
            st = os.stat(root)
        except OSError as exc:
            return FAIL, f"{root}: {exc.strerror}", fix_create
        if not stat.S_ISDIR(st.st_mode):
            return FAIL, f"{root} is not a directory", fix_create
        probe = root / f".hpcpull-doctor-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return FAIL, f"{root} is not writable: {exc.strerror}", \
                f"make {root} writable (mounted read-write, mode 1777)"
        if stat.S_IMODE(st.st_mode) != 0o1777:
            return WARN, f"{root} has mode {_mode(st)}, not 1777: hooks run as the job owners and create " \
                         f"{root}/<Owner> themselves", f"chmod 1777 {root}"
        return OK, f"{root} is a writable directory with mode 1777", ""

    def check_scratch(self) -> None:
        results: dict[Path, tuple[str, str, str]] = {}
        for name, route in self.routes.items():
            root = route.scratch_root
            if root not in results:
                results[root] = self._scratch_check(root)
            status, message, fix = results[root]
            self.scratch_ok[root] = status != FAIL
            self.add(status, f"scratch.{name}", message, fix)

    def check_probe_jobs(self) -> None:
        """Submit one tiny job per route through its template; wait for the file it writes."""
        if self.gateway is None:
            return
        probes: list[_Probe] = []
        for name, route in self.routes.items():
            if name not in self.rendered or not self.scratch_ok.get(route.scratch_root):
                self.add(FAIL, f"probe.{name}", "no probe job: the route's template or scratch root failed above",
                         "fix those first")
                continue
            probes.append(self._submit_probe(route))
        deadline = time.monotonic() + self.probe_timeout
        try:
            while any(p.result is None for p in probes) and time.monotonic() < deadline:
                for probe in probes:
                    if probe.result is None:
                        self._poll_probe(probe)
                if any(p.result is None for p in probes):
                    time.sleep(0.5)
            for probe in probes:
                if probe.result is None:
                    probe.result = self._probe_timed_out(probe)
        finally:
            for probe in probes:
                self._cleanup_probe(probe)
        for probe in probes:
            assert probe.result is not None
            self.results.append(probe.result)

    def _submit_probe(self, route: RouteSettings) -> _Probe:
        from hpcpull.lrms import get_batch_system
        from hpcpull.node import launcher
        from hpcpull.router.classads import format_ad
        from hpcpull.script.render import render_batch_script
        from hpcpull.state import jobdir

        assert self.gateway is not None
        token = secrets.token_hex(4)
        # A name no Owner can have (owners never start with "."): never a real job's directory.
        directory = route.scratch_root / f".hpcpull-doctor-{route.name}-{token}"
        batch = get_batch_system(route.lrms, lrms_command_environment(self.gateway), self.gateway.command_timeout_s)
        probe = _Probe(route, directory, batch)
        walltime = min(300, route.max_walltime_s or 300)
        try:
            control = jobdir.JobDir(directory).control
            control.mkdir(mode=0o755, parents=True)
            directory.chmod(0o755)
            ad = sample_job_ad(_current_user(), walltime_s=walltime)
            shutil.copyfile(launcher.__file__, control / jobdir.LAUNCHER)
            (control / jobdir.JOB_AD).write_text(format_ad(ad), encoding="utf-8")
            script = control / jobdir.BATCH_SCRIPT
            script.write_text(render_batch_script(ad, route, directory), encoding="utf-8")
            script.chmod(0o700)
            probe.job_id = batch.submit(script, f"hpcpull-doctor-{token}", directory,
                                        control / jobdir.BATCH_OUTPUT)
        except LrmsError as exc:
            as_root = " (batch systems often refuse root's jobs: run the probe as a user who may submit)" \
                if os.geteuid() == 0 else ""
            probe.result = Check(FAIL, f"probe.{route.name}", f"{route.lrms} refused the probe job: {exc}"
                                 + (f"; stderr: {_tail(exc.stderr)}" if exc.stderr else ""),
                                 "check the route's partition/account knobs against the batch system" + as_root)
        except (OSError, HpcPullError, ValueError) as exc:
            probe.result = Check(FAIL, f"probe.{route.name}", f"could not prepare the probe job in {directory}: "
                                                              f"{exc}", "see the scratch and template checks")
        probe.started = time.monotonic()
        return probe

    def _poll_probe(self, probe: _Probe) -> None:
        from hpcpull.state import jobdir

        name = f"probe.{probe.route.name}"
        marker = probe.directory / PROBE_FILE
        exit_file = jobdir.JobDir(probe.directory).file(jobdir.EXIT_STATUS)
        if marker.exists() and exit_file.exists():
            host = marker.read_text(encoding="utf-8", errors="replace").strip() or "a compute node"
            try:
                record = json.loads(exit_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = {}
            took = time.monotonic() - probe.started
            if record.get("exit_code") == 0:
                probe.result = Check(OK, name, f"batch job {probe.job_id} ran on {host} and wrote into "
                                               f"{probe.directory} within {took:.0f} s: compute nodes see the "
                                               "scratch root")
            else:
                probe.result = Check(FAIL, name, f"batch job {probe.job_id} ran on {host} but the payload ended "
                                                 f"with {record}", "see the probe's .hpcpull/stderr")
            return
        try:
            status = probe.batch.job_status(probe.job_id)
        except LrmsError:
            return  # try again until the deadline
        if status is None:
            if time.monotonic() - probe.started < 10:
                return  # not listed yet
            probe.result = self._probe_failed(probe, "is unknown to the batch system")
            return
        probe.last_state, probe.last_reason = status.native_state, status.reason
        probe.waiting = status.state is BatchState.PENDING
        if status.state.is_terminal:
            # The files may still be on their way over the shared filesystem: a short grace period.
            if probe.grace_until is None:
                probe.grace_until = time.monotonic() + 5
            elif time.monotonic() > probe.grace_until:
                probe.result = self._probe_failed(probe, f"ended ({status.native_state})")

    def _probe_failed(self, probe: _Probe, what: str) -> Check:
        from hpcpull.state import jobdir

        batch_out = jobdir.JobDir(probe.directory).file(jobdir.BATCH_OUTPUT)
        name = f"probe.{probe.route.name}"
        partition = f" of partition {probe.route.partition}" if probe.route.partition else ""
        if batch_out.exists():
            text = batch_out.read_text(encoding="utf-8", errors="replace")
            return Check(FAIL, name, f"batch job {probe.job_id} {what} without writing {PROBE_FILE}; its "
                                     f"batch.out says: {_tail(text) or '(empty)'}",
                         "the script started on the compute node but failed: check HPCPULL_PYTHON and "
                         "HPCPULL_ENVIRONMENT_SETUP there")
        return Check(FAIL, name, f"batch job {probe.job_id} {what} and nothing appeared in {probe.directory} "
                                 "(not even the batch system's output file)",
                     f"is {probe.route.scratch_root} mounted at the same path on the compute nodes{partition}, "
                     "writable by the job owners?")

    def _probe_timed_out(self, probe: _Probe) -> Check:
        name = f"probe.{probe.route.name}"
        waited = f"{self.probe_timeout:g} s"
        if probe.waiting:
            reason = f" (reason: {probe.last_reason})" if probe.last_reason else ""
            return Check(WARN, name, f"batch job {probe.job_id} still waited to start after {waited}{reason}; "
                                     "cancelled, so compute node access is unknown",
                         "run again with a longer --probe-timeout, when the partition has free nodes")
        return Check(FAIL, name, f"batch job {probe.job_id} ({probe.last_state}) wrote no {PROBE_FILE} into "
                                 f"{probe.directory} within {waited}",
                     f"is {probe.route.scratch_root} mounted at the same path on the compute nodes?")

    def _cleanup_probe(self, probe: _Probe) -> None:
        if probe.job_id:
            try:
                probe.batch.cancel(probe.job_id)
            except (LrmsError, ValueError):
                pass  # best effort: the job is tiny and its walltime short
        shutil.rmtree(probe.directory, ignore_errors=True)

    # ------------------------------------------------------------------ 6. batch system
    def check_lrms(self) -> None:
        from hpcpull.lrms import get_batch_system

        if self.gateway is None:
            return
        env = lrms_command_environment(self.gateway)
        path = env.get("PATH", "")
        where = ", ".join(f"{n}={env[n]}" for n in LRMS_ENV_NAMES if n in env)
        for lrms in sorted({route.lrms for route in self.routes.values()}):
            commands = LRMS_COMMANDS.get(lrms, ())
            found = {c: shutil.which(c, path=path) for c in commands}
            missing = [c for c, p in found.items() if p is None]
            if missing:
                self.add(FAIL, f"commands.{lrms}", f"{', '.join(missing)} not found in the batch command PATH "
                                                   f"({path})",
                         f"install the {lrms} client commands on the gateway, or add their directory to "
                         "HPCPULL_LRMS_ENVIRONMENT (PATH=...)")
            else:
                dirs = sorted({os.path.dirname(p) for p in found.values() if p})
                self.add(OK, f"commands.{lrms}", f"{', '.join(commands)} found in {', '.join(dirs)}")
            batch = get_batch_system(lrms, env, self.gateway.command_timeout_s)
            started = time.monotonic()
            try:
                jobs = batch.bulk_status()
            except LrmsError as exc:
                # stderr lines the one-line message does not already say
                stderr = _tail("\n".join(line for line in exc.stderr.splitlines()
                                         if line.strip() and line.strip().split(": ")[-1] not in str(exc)))
                kind = "the batch system did not answer" if exc.transient else "the status command failed"
                self.add(FAIL, f"lrms.{lrms}", f"{exc}" + (f"; stderr: {stderr}" if stderr else "")
                         + (f" ({where})" if where else ""),
                         f"{kind}: is the controller up and does the batch command environment reach it "
                         f"(HPCPULL_LRMS_ENVIRONMENT, e.g. SLURM_CONF=...; HPCPULL_COMMAND_TIMEOUT = "
                         f"{self.gateway.command_timeout_s:g} s)? Run `{shlex.join(exc.command)}` as condor")
                continue
            took = time.monotonic() - started
            self.add(OK, f"lrms.{lrms}", f"one bulk status query answered in {took:.1f} s: {_jobs(len(jobs))} "
                                         "visible" + (f" ({where})" if where else ""))

    # ------------------------------------------------------------------ 7. status cache
    def check_status_cache(self) -> None:
        if self.gateway is None:
            return
        directory = self.gateway.status_cache_dir
        fix = f"mkdir -p {directory} && chmod 1777 {directory}"
        try:
            st = os.stat(directory)
        except OSError as exc:
            self.add(WARN, "status-cache", f"{directory}: {exc.strerror}; the first hook or poll creates it, "
                                           "with its own umask (so usually not 1777)", fix)
            return
        if not stat.S_ISDIR(st.st_mode):
            self.add(FAIL, "status-cache", f"{directory} is not a directory: status snapshots cannot be shared",
                     f"remove it, then {fix}")
            return
        if stat.S_IMODE(st.st_mode) != 0o1777:
            self.add(WARN, "status-cache", f"{directory} has mode {_mode(st)}, not 1777: hooks of other users "
                                           "cannot keep their own snapshots and locks there", fix)
        else:
            self.add(OK, "status-cache", f"{directory} exists with mode 1777")
        for lrms in sorted({route.lrms for route in self.routes.values()}):
            self._check_snapshot(directory, lrms)
        self._check_site_status(directory)

    def _check_snapshot(self, directory: Path, lrms: str) -> None:
        from hpcpull.state.status_cache import Snapshot

        assert self.gateway is not None
        max_age = self.gateway.status_max_age_s
        candidates = [directory / f"{lrms}-status.json", *sorted(directory.glob(f"{lrms}-status.*.json"))]
        newest: Optional[tuple[Snapshot, Path]] = None
        for path in candidates:
            try:
                snap = Snapshot.from_json(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if newest is None or snap.taken_at > newest[0].taken_at:
                newest = (snap, path)
        name = f"status-cache.{lrms}"
        if newest is None:
            self.add(WARN, name, f"no {lrms} status snapshot in {directory}: neither the poller nor a hook has "
                                 "queried the batch system yet",
                     "check that the schedd runs the poller (SCHEDD_CRON_JOBLIST has HPCPULL; read at schedd "
                     "start-up only)")
            return
        snap, path = newest
        age = time.time() - snap.taken_at
        shared = path.name == f"{lrms}-status.json"
        try:
            owner = path.stat().st_uid
        except OSError:
            owner = 0
        if shared and owner not in service_uids():
            self.add(WARN, name, f"{path} is owned by uid {owner}: hooks trust only root's or condor's shared "
                                 "snapshot", f"remove {path}; the poller (running as condor) writes it again")
        elif age < 0:
            self.add(WARN, name, f"{path} was taken {_age(-age)} in the future: clocks disagree",
                     "synchronise the gateway's clock (NTP)")
        elif age >= 2 * max_age:
            self.add(WARN, name, f"the newest snapshot ({path.name}) is {_age(age)} old, more than twice "
                                 f"HPCPULL_STATUS_MAX_AGE ({max_age:g} s)",
                     "is the schedd cron poller running (SCHEDD_CRON_HPCPULL_*; condor_restart -schedd "
                     "after changing SCHEDD_CRON_JOBLIST)? Hooks refresh it only while jobs are routed")
        elif not snap.ok:
            self.add(WARN, name, f"the newest snapshot ({path.name}, {_age(age)} old) is a failed query: "
                                 f"{snap.error}", "see the lrms check")
        else:
            self.add(OK, name, f"the newest snapshot ({path.name}) is {_age(age)} old with {_jobs(len(snap.jobs))} "
                               f"(HPCPULL_STATUS_MAX_AGE {max_age:g} s)")

    def _check_site_status(self, directory: Path) -> None:
        path = directory / SITE_STATUS
        if not path.exists():
            if (self.lookup(f"SCHEDD_CRON_{POLLER}_EXECUTABLE") or "").strip():
                self.add(WARN, "site-status", f"no {path}: the poller has not run yet",
                         "check that the schedd runs (condor_status -schedd) and started the poller "
                         "(SCHEDD_CRON_JOBLIST is read at schedd start-up only)")
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            taken_at = float(data["taken_at"])
            reachable = data.get("lrms_reachable")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.add(WARN, "site-status", f"{path} cannot be read: {exc}", "the poller rewrites it on its next run")
            return
        age = _age(time.time() - taken_at)
        error = str(data.get("last_error") or "")
        if reachable is not True:
            self.add(WARN, "site-status", f"the poller found the batch system unreachable {age} ago: "
                                          f"{error or '(no error recorded)'}", "see the lrms check")
        elif data.get("status_shared") is False:
            self.add(WARN, "site-status", f"the poller ({age} ago) could not share one status query: {error}",
                     "let the condor user see all jobs (Slurm: PrivateData without 'jobs', or make condor an "
                     "operator)")
        else:
            jobs = data.get("jobs") or {}
            idle = sum(int(c.get("idle", 0)) for c in jobs.values() if isinstance(c, dict))
            running = sum(int(c.get("running", 0)) for c in jobs.values() if isinstance(c, dict))
            self.add(OK, "site-status", f"the poller found {', '.join(data.get('lrms') or []) or 'the batch system'} "
                                        f"reachable {age} ago ({idle} idle, {running} running hpcpull jobs)")

    # ------------------------------------------------------------------ 8. log, 9. user
    def check_log(self) -> None:
        if self.gateway is None:
            return
        if self.gateway.log_path is None:
            self.add(OK, "log", "HPCPULL_LOG is empty: no gateway log")
            return
        directory = self.gateway.log_path.parent
        fix = f"mkdir -p {directory} && chmod 1777 {directory}"
        try:
            st = os.stat(directory)
        except OSError as exc:
            self.add(WARN, "log", f"{directory} (HPCPULL_LOG's directory): {exc.strerror}; nothing is logged", fix)
            return
        if not stat.S_ISDIR(st.st_mode):
            self.add(WARN, "log", f"{directory} (HPCPULL_LOG's directory) is not a directory", fix)
        elif stat.S_IMODE(st.st_mode) != 0o1777:
            self.add(WARN, "log", f"{directory} has mode {_mode(st)}, not 1777: hooks of ordinary users cannot "
                                  "write their HpcPullLog.<user> files", f"chmod 1777 {directory}")
        else:
            self.add(OK, "log", f"{directory} exists with mode 1777 (HPCPULL_LOG = {self.gateway.log_path})")

    def check_user(self) -> None:
        user = _current_user()
        if os.geteuid() == 0:
            self.add(OK, "user", "running as root")
        else:
            self.add(WARN, "user", f"running as {user}, not root: hooks run as the job owners and the poller as "
                                   "condor, so checks of what they can reach are partial",
                     "run hpcpull doctor as root")


# ----------------------------------------------------------------------------- config
def check_config_loads(env: Optional[Mapping[str, str]] = None) -> Check:
    """Load the HTCondor configuration in a child process first: htcondor2 ends the process
    that imports it (exit 1) when a configuration file does not parse."""
    env = dict(os.environ if env is None else env)
    source = env.get("CONDOR_CONFIG") or "the default locations (/etc/condor/condor_config, ...)"
    try:
        proc = subprocess.run([sys.executable, "-c", "import htcondor2"], env=env, capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(FAIL, "config", f"cannot load the HTCondor configuration: {exc}", "check the Python bindings")
    detail = one_line(proc.stderr, 600)
    if proc.returncode != 0:
        return Check(FAIL, "config", f"the HTCondor configuration from {source} does not load: "
                                     f"{detail or f'exit {proc.returncode}'}",
                     "correct the file and line named above (condor_config_val -summary shows what is read)")
    if "condor_config source" in proc.stderr or "does not exist" in proc.stderr:
        return Check(FAIL, "config", f"no HTCondor configuration: {detail}",
                     "set CONDOR_CONFIG, or install HTCondor's /etc/condor/condor_config")
    if detail:
        return Check(WARN, "config", f"the HTCondor configuration from {source} loads with messages: {detail}",
                     "read the messages above")
    return Check(OK, "config", f"the HTCondor configuration loads (CONDOR_CONFIG = {source})")


def diagnose(route: Optional[str] = None, probe: bool = False, probe_timeout: float = 60.0,
             hook_user: Optional[str] = None) -> list[Check]:
    """Every check against the configuration htcondor2 reads (CONDOR_CONFIG)."""
    loaded = check_config_loads()
    if loaded.status == FAIL:
        return [loaded]
    import htcondor2

    htcondor2.reload_config()  # the child could load it: so can we, and it may have changed
    doctor = Doctor.from_htcondor(route=route, probe=probe, probe_timeout=probe_timeout, hook_user=hook_user)
    doctor.results.append(loaded)
    return doctor.run()


def format_text(checks: Sequence[Check]) -> str:
    lines = [line for check in checks for line in check.lines()]
    counts = {s: sum(1 for c in checks if c.status == s) for s in (OK, WARN, FAIL)}
    lines.append(f"hpcpull doctor: {counts[OK]} OK, {counts[WARN]} WARN, {counts[FAIL]} FAIL")
    return "\n".join(lines) + "\n"


def format_json(checks: Sequence[Check]) -> str:
    counts = {s: sum(1 for c in checks if c.status == s) for s in (OK, WARN, FAIL)}
    return json.dumps({"ok": counts[FAIL] == 0, "counts": counts,
                       "checks": [{"check": c.name, **{k: v for k, v in asdict(c).items() if k != "name"}}
                                  for c in checks]}, indent=2) + "\n"


# -------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--route", metavar="NAME", help="limit the route checks to this route")
    parser.add_argument("--probe-job", action="store_true",
                        help="also submit a tiny batch job per route, to see that compute nodes reach the scratch root")
    parser.add_argument("--probe-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for a probe job (default: %(default)g)")
    parser.add_argument("--as-user", metavar="NAME",
                        help="run the hooks as this account, as the router runs them as each job's owner "
                             f"(default: {DEFAULT_HOOK_USER}; needs root)")


def run(args: argparse.Namespace) -> int:
    checks = diagnose(route=args.route, probe=args.probe_job, probe_timeout=args.probe_timeout,
                      hook_user=args.as_user)
    sys.stdout.write(format_json(checks) if args.json else format_text(checks))
    sys.stdout.flush()
    return 1 if any(c.status == FAIL for c in checks) else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcpull doctor",
        description="Check an hpcpull gateway: configuration, hooks, router, routes, templates, scratch, "
                    "batch system, status cache and log.  Exit status: 0 nothing FAILs, 1 something does.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
