"""hpcpull's knobs, read from the HTCondor configuration through ``htcondor2.param``.

Every knob is ``HPCPULL_<KNOB>``; a route may override a per-route knob with
``HPCPULL_ROUTE_<RouteName>_<KNOB>`` (HTCondor knob names are case-insensitive).
The defaults below are the ones documented in ``condor_config.d/50-hpcpull.conf``;
a test checks that the two agree.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

from hpcpull.errors import ConfigError
from hpcpull.lrms import BATCH_SYSTEMS
from hpcpull.script.launchers import LaunchStep, check_launcher, parse_launcher

# Knobs a route may override, with their defaults (strings, as in a config file).
ROUTE_KNOBS: dict[str, str] = {
    "LRMS": "slurm",
    "SUBMIT_AT_ROUTING": "true",
    "SCRATCH_ROOT": "/scratch/hpcpull",
    "PARTITION": "",
    "ACCOUNT": "",
    "TEMPLATE": "",
    "EXTRA_DIRECTIVES": "",
    "ENVIRONMENT_SETUP": "",
    "DEFAULT_WALLTIME": "0",
    "MAP_REQUEST_DISK": "false",
    "PYTHON": "python3",
    "KEEP_JOB_DIRS": "false",
    "KEEP_FAILED_JOBS": "true",
    "KEEP_HOOK_IO": "false",
    "LINK_INPUTS": "auto",
    "MAX_CPUS": "",
    "MAX_MEMORY": "",
    "MAX_GPUS": "",
    "MAX_NODES": "1",
    "MAX_WALLTIME": "",
    "ALLOWED_QUEUES": "*",
    "ALLOWED_ACCOUNTS": "*",
    "GPU_TYPE": "",
    "LAUNCHER": "",
    "CONTAINER_IMAGE": "",
    "REQUEUE_ON": "NODE_FAIL BOOT_FAIL PREEMPTED",
    "MAX_REQUEUES": "2",
    "MAX_IDLE_TIME": "",
    "MAX_BATCH_JOBS": "",
    "MAX_BATCH_IDLE": "",
    "SUBMITS_PER_MINUTE": "",
    "PARALLEL_ENVIRONMENT": "smp",
    "MPI_PARALLEL_ENVIRONMENT": "mpi",
}

# Knobs that only exist gateway-wide.
GLOBAL_KNOBS: dict[str, str] = {
    "ROUTE_NAMES": "",
    "TEMPLATE_DIRS": "/etc/condor/hpcpull/templates",
    "STATUS_MAX_AGE": "30",
    "STATUS_CACHE_DIR": "/var/lib/hpcpull/status",
    "COMMAND_TIMEOUT": "30",
    "EXIT_FILE_GRACE": "60",
    "LRMS_ENVIRONMENT": "",
    "SCHEDD_DOUBLE": "",
    "ALLOW_ROOT": "false",
    "DEBUG": "",
    "LOG": "/var/log/condor/hpcpull/HpcPullLog",
    "MAX_LOG": "10000000",
    "FAST_UPDATE": "true",
    "UPDATE_INTERVAL": "0",
}

# The batch systems a route may name: the registry's (importing it imports no adapter).
SUPPORTED_LRMS: tuple[str, ...] = tuple(BATCH_SYSTEMS)

# Admin-written paths end up in batch directives (#SBATCH --chdir=...): keep them plain.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+-]*$")
_ROUTE_NAME = re.compile(r"^[A-Za-z0-9_]+$")

ParamLookup = Callable[[str], Optional[str]]


def _htcondor_param(name: str) -> Optional[str]:
    import htcondor2  # imported lazily: hooks that never read config stay fast

    value = htcondor2.param.get(name)
    # param returns typed values (bool, int) for knobs HTCondor itself defines
    return None if value is None else str(value)


def _explicit(value: str) -> str:
    """A knob's value; ``""`` means empty.  HTCondor reads ``KNOB =`` as not set at all, so
    ``KNOB = ""`` is how a route clears a knob that is set gateway-wide."""
    value = value.strip()
    return "" if value == '""' else value


def _as_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off", ""):
        return False
    raise ConfigError(f"{name} = {raw!r} is not a boolean (use true or false)")


def _as_float(name: str, raw: str, minimum: float = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} = {raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name} = {raw!r} must be at least {minimum:g}")
    return value


_DURATION = re.compile(r"^(?:(?:(\d+)-)?(\d+):)?(\d+):(\d+)$")


def _as_duration(name: str, raw: str) -> int:
    """Seconds, given as a number of seconds or as [[D-]HH:]MM:SS (as batch systems write it)."""
    text = raw.strip()
    if re.fullmatch(r"\d+(\.\d*)?", text):
        return int(float(text))
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"{name} = {raw!r} is not a duration (seconds, or [[D-]HH:]MM:SS)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _as_limit(name: str, raw: str, duration: bool = False) -> Optional[int]:
    """A route maximum: empty means "no limit"."""
    if not raw.strip():
        return None
    if duration:
        return _as_duration(name, raw)
    value = _as_float(name, raw)
    return int(value)


def _as_words(raw: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,]+", raw) if w)


DEBUG_LEVELS = ("D_ALWAYS", "D_FULLDEBUG")


def _as_debug_levels(raw: str) -> tuple[str, ...]:
    levels = tuple(w.upper() for w in _as_words(raw))
    unknown = [w for w in levels if w not in DEBUG_LEVELS]
    if unknown:
        raise ConfigError(f"HPCPULL_DEBUG = {raw!r}: unknown level {unknown[0]} (known: {', '.join(DEBUG_LEVELS)})")
    return levels


def _as_path(name: str, raw: str) -> Path:
    if not _SAFE_PATH.match(raw) or "/../" in raw + "/":
        raise ConfigError(
            f"{name} = {raw!r} must be an absolute path of letters, digits and _./+-"
        )
    return Path(raw)


def _as_env_assignments(name: str, raw: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for word in shlex.split(raw):
        key, sep, value = word.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ConfigError(f"{name}: {word!r} is not NAME=VALUE")
        env[key] = value
    return env


def _as_lines(raw: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in raw.splitlines() if line.strip())


@dataclass(frozen=True)
class RouteSettings:
    """Everything hpcpull needs to know about one route (its site, queue and policy)."""

    name: str
    lrms: str
    scratch_root: Path
    partition: str
    account: str
    template: str
    template_dirs: tuple[Path, ...]
    extra_directives: tuple[str, ...]
    environment_setup: tuple[str, ...]
    default_walltime_s: int
    map_request_disk: bool
    python: str
    keep_job_dirs: bool
    link_inputs: str
    keep_failed_jobs: bool = True   # failed jobs' directories are moved to <root>/<Owner>/failed/
    keep_hook_io: bool = False      # each hook's last stdin/stdout/stderr in .hpcpull/hook-io/
    submit_at_routing: bool = True  # TRANSLATE submits; else the first UPDATE does
    # Route maxima (None: no limit).  A job asking for more is refused with the reason.
    max_cpus: Optional[int] = None
    max_memory_mb: Optional[int] = None
    max_gpus: Optional[int] = None
    max_nodes: Optional[int] = 1
    max_walltime_s: Optional[int] = None
    # Queues / accounts a job may choose itself (BatchQueue, queue, BatchProject); "*": any.
    allowed_queues: tuple[str, ...] = ("*",)
    allowed_accounts: tuple[str, ...] = ("*",)
    gpu_type: str = ""
    launcher: tuple[LaunchStep, ...] = ()  # HPCPULL_LAUNCHER (script/launchers.py)
    container_image: str = ""
    # Batch states that resubmit the job (at most max_requeues times) instead of holding it.
    requeue_on: tuple[str, ...] = ("NODE_FAIL", "BOOT_FAIL", "PREEMPTED")
    max_requeues: int = 2
    # A batch job waiting longer than this is cancelled and the job given back (None: never).
    max_idle_s: Optional[int] = None
    # Throttles on submission (None: none): jobs of the route in the batch system, of them
    # waiting, and submissions per minute (per user: hooks run as the job owners).
    max_batch_jobs: Optional[int] = None
    max_batch_idle: Optional[int] = None
    submits_per_minute: Optional[int] = None
    # Grid Engine parallel environments for multicore and for multi-node jobs.
    parallel_environment: str = "smp"
    mpi_parallel_environment: str = "mpi"

    @property
    def template_name(self) -> str:
        """The template file to render, relative to a template directory."""
        return self.template or f"{self.lrms}/job.sh.j2"


@dataclass(frozen=True)
class GatewaySettings:
    """Gateway-wide knobs: status cache, command limits, which routes are ours."""

    route_names: tuple[str, ...]
    status_max_age_s: float
    status_cache_dir: Path
    command_timeout_s: float
    exit_file_grace_s: float
    lrms_environment: Mapping[str, str] = field(default_factory=dict)
    schedd_double: str = ""
    log_path: Optional[Path] = None  # HPCPULL_LOG (eventlog.py); None: no gateway log
    allow_root: bool = False         # hooks refuse to run as root unless this is set
    debug: tuple[str, ...] = ()      # HPCPULL_DEBUG levels, e.g. ("D_FULLDEBUG",)
    max_log_bytes: int = 10_000_000
    fast_update: bool = True         # UPDATE's shell front end may answer steady-state polls
    update_interval_s: int = 0       # HPCPULL_UPDATE_INTERVAL (router/cadence.py); 0: every poll


class Config:
    """Reads hpcpull knobs; ``lookup`` defaults to ``htcondor2.param``."""

    def __init__(self, lookup: ParamLookup = _htcondor_param) -> None:
        self._lookup = lookup
        # One hook run asks for the same settings several times (root check, the hook,
        # the log, hook I/O); each build is dozens of param lookups: build each once.
        self._gateway: Optional[GatewaySettings] = None
        self._routes: dict[str, RouteSettings] = {}

    def _raw(self, name: str, default: str) -> str:
        value = self._lookup(name)
        return default if value is None else _explicit(value)

    def param(self, name: str) -> Optional[str]:
        """Any configuration knob, HTCondor's own included; None when not set."""
        value = self._lookup(name)
        return None if value is None else _explicit(value)

    def global_knob(self, knob: str) -> str:
        return self._raw(f"HPCPULL_{knob}", GLOBAL_KNOBS[knob])

    def route_knob(self, route: str, knob: str) -> str:
        value = self._lookup(f"HPCPULL_ROUTE_{route}_{knob}")
        if value is not None:
            return _explicit(value)
        return self._raw(f"HPCPULL_{knob}", ROUTE_KNOBS[knob])

    def _route_names(self) -> tuple[str, ...]:
        names = self.global_knob("ROUTE_NAMES") or (self._lookup("JOB_ROUTER_ROUTE_NAMES") or "")
        return tuple(n for n in re.split(r"[\s,]+", names) if n)

    def gateway(self) -> GatewaySettings:
        if self._gateway is None:
            self._gateway = self._read_gateway()
        return self._gateway

    def _read_gateway(self) -> GatewaySettings:
        return GatewaySettings(
            route_names=self._route_names(),
            status_max_age_s=_as_float("HPCPULL_STATUS_MAX_AGE", self.global_knob("STATUS_MAX_AGE"), 1.0),
            status_cache_dir=_as_path("HPCPULL_STATUS_CACHE_DIR", self.global_knob("STATUS_CACHE_DIR")),
            command_timeout_s=_as_float("HPCPULL_COMMAND_TIMEOUT", self.global_knob("COMMAND_TIMEOUT"), 1.0),
            exit_file_grace_s=_as_float("HPCPULL_EXIT_FILE_GRACE", self.global_knob("EXIT_FILE_GRACE")),
            lrms_environment=_as_env_assignments(
                "HPCPULL_LRMS_ENVIRONMENT", self.global_knob("LRMS_ENVIRONMENT")
            ),
            schedd_double=self.global_knob("SCHEDD_DOUBLE"),
            log_path=_as_path("HPCPULL_LOG", self.global_knob("LOG")) if self.global_knob("LOG") else None,
            max_log_bytes=int(_as_float("HPCPULL_MAX_LOG", self.global_knob("MAX_LOG"))),
            allow_root=_as_bool("HPCPULL_ALLOW_ROOT", self.global_knob("ALLOW_ROOT")),
            debug=_as_debug_levels(self.global_knob("DEBUG")),
            fast_update=_as_bool("HPCPULL_FAST_UPDATE", self.global_knob("FAST_UPDATE")),
            update_interval_s=int(_as_float("HPCPULL_UPDATE_INTERVAL", self.global_knob("UPDATE_INTERVAL"))),
        )

    def is_hpcpull_route(self, route: str) -> bool:
        """True if hpcpull serves this route (HPCPULL_ROUTE_NAMES, default: every route)."""
        return route.lower() in (n.lower() for n in self._route_names())

    def route_exists(self, route: str) -> bool:
        return self._lookup(f"JOB_ROUTER_ROUTE_{route}") is not None

    def route(self, route: str) -> RouteSettings:
        if route not in self._routes:
            self._routes[route] = self._read_route(route)
        return self._routes[route]

    def _read_route(self, route: str) -> RouteSettings:
        if not _ROUTE_NAME.match(route):
            raise ConfigError(f"route name {route!r} must be letters, digits and _")
        if not self.route_exists(route):
            raise ConfigError(f"unknown route {route!r}: no JOB_ROUTER_ROUTE_{route} in the configuration")

        def knob(name: str) -> str:
            return self.route_knob(route, name)

        lrms = knob("LRMS").lower()
        if lrms not in SUPPORTED_LRMS:
            raise ConfigError(
                f"HPCPULL_ROUTE_{route}_LRMS = {lrms!r}: supported are {', '.join(SUPPORTED_LRMS)}"
            )
        link_inputs = knob("LINK_INPUTS").lower()
        if link_inputs not in ("auto", "always", "never"):
            raise ConfigError(f"HPCPULL_LINK_INPUTS = {link_inputs!r}: use auto, always or never")
        launcher = parse_launcher(f"HPCPULL_ROUTE_{route}_LAUNCHER", knob("LAUNCHER"))
        check_launcher(f"HPCPULL_ROUTE_{route}_LAUNCHER", launcher, lrms)
        walltime = _as_duration("HPCPULL_DEFAULT_WALLTIME", knob("DEFAULT_WALLTIME"))
        max_walltime = _as_limit("HPCPULL_MAX_WALLTIME", knob("MAX_WALLTIME"), duration=True)
        if walltime and max_walltime is not None and walltime > max_walltime:
            raise ConfigError(
                f"route {route}: HPCPULL_DEFAULT_WALLTIME ({walltime} s) is above HPCPULL_MAX_WALLTIME "
                f"({max_walltime} s)"
            )
        return RouteSettings(
            name=route,
            lrms=lrms,
            scratch_root=_as_path("HPCPULL_SCRATCH_ROOT", knob("SCRATCH_ROOT")),
            partition=knob("PARTITION"),
            account=knob("ACCOUNT"),
            template=knob("TEMPLATE"),
            template_dirs=tuple(
                Path(p) for p in re.split(r"[\s,]+", self.global_knob("TEMPLATE_DIRS")) if p
            ),
            extra_directives=_as_lines(knob("EXTRA_DIRECTIVES")),
            environment_setup=_as_lines(knob("ENVIRONMENT_SETUP")),
            default_walltime_s=walltime,
            map_request_disk=_as_bool("HPCPULL_MAP_REQUEST_DISK", knob("MAP_REQUEST_DISK")),
            python=knob("PYTHON"),
            keep_job_dirs=_as_bool("HPCPULL_KEEP_JOB_DIRS", knob("KEEP_JOB_DIRS")),
            keep_failed_jobs=_as_bool("HPCPULL_KEEP_FAILED_JOBS", knob("KEEP_FAILED_JOBS")),
            keep_hook_io=_as_bool("HPCPULL_KEEP_HOOK_IO", knob("KEEP_HOOK_IO")),
            submit_at_routing=_as_bool("HPCPULL_SUBMIT_AT_ROUTING", knob("SUBMIT_AT_ROUTING")),
            link_inputs=link_inputs,
            max_cpus=_as_limit("HPCPULL_MAX_CPUS", knob("MAX_CPUS")),
            max_memory_mb=_as_limit("HPCPULL_MAX_MEMORY", knob("MAX_MEMORY")),
            max_gpus=_as_limit("HPCPULL_MAX_GPUS", knob("MAX_GPUS")),
            max_nodes=_as_limit("HPCPULL_MAX_NODES", knob("MAX_NODES")),
            max_walltime_s=max_walltime,
            allowed_queues=_as_words(knob("ALLOWED_QUEUES")),
            allowed_accounts=_as_words(knob("ALLOWED_ACCOUNTS")),
            gpu_type=knob("GPU_TYPE"),
            launcher=launcher,
            container_image=knob("CONTAINER_IMAGE"),
            requeue_on=tuple(w.upper() for w in _as_words(knob("REQUEUE_ON"))),
            max_requeues=int(_as_float("HPCPULL_MAX_REQUEUES", knob("MAX_REQUEUES"))),
            max_idle_s=_as_limit("HPCPULL_MAX_IDLE_TIME", knob("MAX_IDLE_TIME"), duration=True),
            max_batch_jobs=_as_limit("HPCPULL_MAX_BATCH_JOBS", knob("MAX_BATCH_JOBS")),
            max_batch_idle=_as_limit("HPCPULL_MAX_BATCH_IDLE", knob("MAX_BATCH_IDLE")),
            submits_per_minute=_as_limit("HPCPULL_SUBMITS_PER_MINUTE", knob("SUBMITS_PER_MINUTE")),
            parallel_environment=knob("PARALLEL_ENVIRONMENT"),
            mpi_parallel_environment=knob("MPI_PARALLEL_ENVIRONMENT"),
        )


def lrms_command_environment(settings: GatewaySettings) -> dict[str, str]:
    """A minimal environment for batch commands.

    The hook's own environment holds HTCondor session keys (CONDOR_PRIVATE_INHERIT) and
    sbatch exports the submitting environment into the job by default, so batch
    commands never see it: only PATH, locale, SLURM_CONF-style variables the admin
    names in HPCPULL_LRMS_ENVIRONMENT, and those the LRMS client needs.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C",
        "LC_ALL": "C",
    }
    for name in ("HOME", "USER", "LOGNAME", "TZ", "SLURM_CONF"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(settings.lrms_environment)
    return env
