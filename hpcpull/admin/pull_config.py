"""Pull mode: the two condor_config files that let an origin access point feed a gateway
that accepts no inbound connections, generated from a few values (``hpcpull pull-config``).

The origin's job router turns an opted-in vanilla job into a sandboxed grid-universe copy
with ``GridResource = "condor <gateway schedd> <origin collector>"``; the gridmanager's
C-GAHP submits it by HTCondor-C to the gateway's schedd, which registered with the origin's
collector as its CCB server (``SCHEDD.CCB_ADDRESS``) and advertises itself there
(``SCHEDD.COLLECTOR_HOST``), so the gateway opens every connection.  The C-GAHP
authenticates with an IDTOKENS token the gateway issued.  On the gateway, the arrived job
(``SubmitterId`` = the origin schedd's name, set by the gridmanager: htcondor/htcondor
src/condor_gridmanager/condorjob.cpp ``buildSubmitAd``) is routed by the gateway's router
into the batch system through hpcpull's hooks.  The undo: a copy idle (or held) at the
gateway longer than a limit is removed by its ``PeriodicRemove``; the origin's router then
returns the original job to idle (src/condor_job_router/submit_job.cpp ``yield_job``).
Both files run on two real pools in tests/realrouter/test_pull_mode.py (HTCondor 25.13.2).

The shipped ``condor_config.d/7*-hpcpull-*.conf.example`` files are this module's output
for :data:`EXAMPLE`, so the text exists once.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import classad2

from hpcpull.errors import HpcPullError

ORIGIN_FILE = "70-hpcpull-origin.conf"
GATEWAY_FILE = "71-hpcpull-gateway-ccb.conf"
_RULE = "#" * 86


class PullConfigError(HpcPullError):
    """An argument of ``hpcpull pull-config`` cannot go into a config file."""


@dataclass(frozen=True)
class PullSettings:
    """Everything the two files depend on.  Build with :func:`settings`, which validates."""

    gateway_schedd: str                  # the gateway schedd's Name, e.g. gateway@vm
    origin_collector: str                # host:port of the origin's collector (= CCB server)
    user: str                            # origin account whose jobs go to the gateway
    origin_schedd: Optional[str] = None  # the origin schedd's Name (SubmitterId at the gateway)
    route: str = "ToGateway"             # the origin's route
    gateway_route: str = "Pull"          # the gateway's route into the batch system
    opt_in: str = "WantGateway"          # job attribute a submitter sets to true to opt in
    constraint: Optional[str] = None     # instead of opt_in: a ClassAd expression
    max_jobs: int = 100                  # the router's defaults (JobRoute::ParseNext)
    max_idle_jobs: int = 50
    idle_timeout: int = 6 * 3600
    held_timeout: int = 600
    port_low: int = 9600
    port_high: int = 9699
    token_dir: Optional[str] = None      # default /home/<user>/.condor/tokens.d
    gateway_user: Optional[str] = None   # gateway account the token maps to (default: user)
    gateway_domain: Optional[str] = None  # the gateway's UID_DOMAIN (token identity domain)
    private_network: str = "gw.internal"
    router_name: str = "hpcpull"         # the gateway's JOB_ROUTER_NAME
    origin_router_name: str = "jobrouter"  # the origin's JOB_ROUTER_NAME (HTCondor's default)

    @property
    def token_directory(self) -> str:
        return self.token_dir or f"/home/{self.user}/.condor/tokens.d"

    @property
    def mapped_user(self) -> str:
        return self.gateway_user or self.user

    @property
    def collector_port(self) -> int:
        return int(self.origin_collector.rpartition(":")[2])

    @property
    def collector_host(self) -> str:
        return self.origin_collector.rpartition(":")[0]


# Example values (an origin whose collector is 10.200.0.1:29700, a gateway schedd gateway@vm):
# the shipped examples use them.
EXAMPLE = PullSettings(gateway_schedd="gateway@vm", origin_collector="10.200.0.1:29700", user="alice",
                       origin_schedd="origin@vm", gateway_domain="gateway.local")

# ------------------------------------------------------------------------------ validation
# Values go into config lines, route transforms and ClassAd strings: anything that could end
# a line, a string or a here-document, or start a $(macro), is refused.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+/?$")
_SAFE = "letters, digits, . _ - (no spaces, quotes, newlines or $)"
_USERNAME = "a user name is letters, digits, . _ - (at most 32, no spaces or quotes)"
_SCHEDD = "a schedd name is letters, digits, . _ - and at most one @ (no spaces, quotes, newlines or $)"


def _check(flag: str, value: str, pattern: re.Pattern, what: str) -> str:
    if not pattern.match(value):
        raise PullConfigError(f"{flag} {value!r}: {what}")
    return value


def _number(flag: str, value: object, low: int, high: int) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"\d{1,9}", text) or not low <= int(text) <= high:
        raise PullConfigError(f"{flag} {value!r}: a whole number from {low} to {high}")
    return int(text)


def _host_port(flag: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not _HOST.match(host):
        raise PullConfigError(f"{flag} {value!r}: HOST:PORT, the host being {_SAFE}")
    _number(flag, port, 1, 65535)
    return value


def parse_ports(value: str) -> tuple[int, int]:
    """``LOW-HIGH``: the origin's inbound range for the C-GAHP's reverse-connect listeners."""
    low, sep, high = value.partition("-")
    if not sep:
        raise PullConfigError(f"--ports {value!r}: LOW-HIGH, e.g. 9600-9699")
    return _number("--ports", low, 1025, 65535), _number("--ports", high, 1025, 65535)


def _constraint(value: str) -> str:
    if any(c in value for c in "\r\n\x00$") or not value.strip():
        raise PullConfigError(f"--constraint {value!r}: one line of ClassAd expression, without $")
    try:
        classad2.ExprTree(value)
    except Exception:  # noqa: BLE001 - classad2 raises ClassAdException for bad syntax
        raise PullConfigError(f"--constraint {value!r}: not a ClassAd expression") from None
    return value.strip()


def settings(**values: object) -> PullSettings:
    """Validated settings: every value checked before it can reach a config file.

    Numbers may come as text (from the command line).  Raises :class:`PullConfigError`
    whose message names the option and the value, on one line.
    """
    s = PullSettings(**values)  # type: ignore[arg-type]
    _check("--gateway-schedd", s.gateway_schedd, _NAME, _SCHEDD)
    _host_port("--origin-collector", s.origin_collector)
    _check("--user", s.user, _USER, _USERNAME)
    if s.origin_schedd is not None:
        _check("--origin-schedd", s.origin_schedd, _NAME, _SCHEDD)
    _check("--route", s.route, _IDENT, "a route name is letters, digits and _ (no spaces or quotes)")
    _check("--gateway-route", s.gateway_route, _IDENT, "a route name is letters, digits and _ (no spaces or quotes)")
    _check("--opt-in", s.opt_in, _IDENT, "a job attribute name is letters, digits and _")
    constraint = _constraint(s.constraint) if s.constraint is not None else None
    if s.gateway_user is not None:
        _check("--gateway-user", s.gateway_user, _USER, _USERNAME)
    if s.gateway_domain is not None:
        _check("--gateway-domain", s.gateway_domain, _HOST, f"a domain is {_SAFE}")
    if s.token_dir is not None:
        _check("--token-dir", s.token_dir, _PATH, f"an absolute path of {_SAFE}")
        if "/../" in s.token_dir + "/" or "/./" in s.token_dir + "/":
            raise PullConfigError(f"--token-dir {s.token_dir!r}: no . or .. components")
    _check("--private-network-name", s.private_network, _HOST, f"a network name is {_SAFE}")
    _check("--gateway-router-name", s.router_name, _IDENT, "a router name is letters, digits and _")
    _check("--origin-router-name", s.origin_router_name, _IDENT, "a router name is letters, digits and _")
    if s.router_name.lower() == s.origin_router_name.lower():
        raise PullConfigError(
            f"--gateway-router-name {s.router_name!r} equals the origin's router name: a job routed by "
            "the origin arrives with RoutedBy = that name, and a router never routes a job it seems to own")
    s = dataclasses.replace(
        s, constraint=constraint,
        max_jobs=_number("--max-jobs", s.max_jobs, 1, 1_000_000),
        max_idle_jobs=_number("--max-idle-jobs", s.max_idle_jobs, 1, 1_000_000),
        idle_timeout=_number("--idle-timeout", s.idle_timeout, 60, 365 * 86400),
        held_timeout=_number("--held-timeout", s.held_timeout, 0, 365 * 86400),
        port_low=_number("--ports", s.port_low, 1025, 65535),
        port_high=_number("--ports", s.port_high, 1025, 65535))
    if s.port_low > s.port_high:
        raise PullConfigError(f"--ports {s.port_low}-{s.port_high}: LOW must not be above HIGH")
    return s


# ------------------------------------------------------------------------- expressions
def origin_requirements(s: PullSettings) -> str:
    """The origin route's REQUIREMENTS: opted in (or the site's constraint), vanilla, never
    routed before (the router sets RoutedToJobId on the source when it submits the copy, and
    yielding the source does not remove it: src/condor_job_router/JobRouter.cpp
    ``FinishSubmitJob``, submit_job.cpp ``yield_job``)."""
    chosen = f"({s.constraint})" if s.constraint else f"{s.opt_in} =?= true"
    return f"{chosen} && JobUniverse == 5 && RoutedToJobId =?= undefined"


def grid_resource(s: PullSettings) -> str:
    return f"condor {s.gateway_schedd} {s.origin_collector}"


def undo_expression(s: PullSettings) -> str:
    """PeriodicRemove for the origin's copy: idle or held too long at the gateway."""
    return (f"(JobStatus == 1 && time() - EnteredCurrentStatus > {s.idle_timeout}) || "
            f"(JobStatus == 5 && time() - EnteredCurrentStatus > {s.held_timeout})")


def gateway_requirements(s: PullSettings) -> str:
    """The gateway route's REQUIREMENTS: jobs that arrived by HTCondor-C (from that origin).

    The gridmanager sets ``SubmitterId`` (the origin schedd's Name) and
    ``SubmitterGlobalJobId`` on every job it submits by HTCondor-C; local jobs have neither.
    """
    if s.origin_schedd:
        return f'SubmitterId =?= "{s.origin_schedd}"'
    return "SubmitterGlobalJobId =!= undefined"


def command_line(s: PullSettings) -> list[str]:
    """The ``hpcpull pull-config`` arguments that produce ``s`` (non-default ones only)."""
    words = ["--gateway-schedd", s.gateway_schedd, "--origin-collector", s.origin_collector, "--user", s.user]
    flags = {"origin_schedd": "--origin-schedd", "route": "--route", "gateway_route": "--gateway-route",
             "opt_in": "--opt-in", "constraint": "--constraint", "max_jobs": "--max-jobs",
             "max_idle_jobs": "--max-idle-jobs", "idle_timeout": "--idle-timeout",
             "held_timeout": "--held-timeout", "token_dir": "--token-dir", "gateway_user": "--gateway-user",
             "gateway_domain": "--gateway-domain", "private_network": "--private-network-name",
             "router_name": "--gateway-router-name", "origin_router_name": "--origin-router-name"}
    defaults = PullSettings(gateway_schedd="", origin_collector="", user="")
    for name, flag in flags.items():
        value = getattr(s, name)
        if value != getattr(defaults, name):
            words += [flag, str(value)]
    if (s.port_low, s.port_high) != (defaults.port_low, defaults.port_high):
        words += ["--ports", f"{s.port_low}-{s.port_high}"]
    return words


def _header(s: PullSettings, title: str, where: str) -> list[str]:
    words = [w if re.fullmatch(r"[A-Za-z0-9._@:/=-]+", w) else "'" + w.replace("'", "'\\''") + "'"
             for w in command_line(s)]
    # one "--flag value" pair per piece, wrapped at the rule's width with shell continuations
    pieces = [" ".join(words[i:i + 2]) for i in range(0, len(words), 2)]
    lines, line = [], "#   hpcpull pull-config"
    for piece in pieces:
        if len(line) + 1 + len(piece) + 2 > len(_RULE):
            lines.append(line + " \\")
            line = "#    "
        line += " " + piece
    lines.append(line)
    return [_RULE, f"# {title}", "# Generated by (run it again with your values; see docs/pull-mode.md):", *lines,
            *where.splitlines(), _RULE, ""]


def _section(title: str) -> str:
    """A section rule in 50-hpcpull.conf's style: ``# ---- Title ----...`` at the header's width."""
    text = f"# ---- {title} "
    return text + "-" * (len(_RULE) - len(text))


# ------------------------------------------------------------------------------- origin
def origin_config(s: PullSettings) -> str:
    """70-hpcpull-origin.conf: the route to the gateway, the C-GAHP's token, its ports."""
    p = s.port_low, s.port_high
    return "\n".join([
        *_header(s, "hpcpull pull mode, ORIGIN side: the access point whose users' jobs go to the gateway.",
                 "# Install as 70-hpcpull-origin.conf in the config directory of the origin access point\n"
                 "# (the host of the schedd the jobs are submitted to), then condor_reconfig.  The origin\n"
                 "# runs stock HTCondor (job router + HTCondor-C): hpcpull is installed on the gateway only."),
        "# The gateway accepts no inbound connections.  Its schedd registers with this pool's",
        "# collector, which is also the pool's CCB server (ENABLE_CCB_SERVER, True by default),",
        "# and opens every connection that crosses the boundary itself.  The job router below",
        "# makes a grid-universe copy of every job that opts in, with the job's input files in",
        "# this schedd's SPOOL; the gridmanager submits the copy to the gateway's schedd by",
        "# HTCondor-C, spools the input files there, and brings stdout, stderr and the output files",
        "# back into the copy's SPOOL, from where the router fetches them into the job's Iwd.",
        "# condor_rm reaches the gateway the same way.  Submitters see an ordinary vanilla job.",
        "",
        _section("The route to the gateway"),
        "# Run the job router (delete this line if this access point already runs one).",
        "DAEMON_LIST = $(DAEMON_LIST) JOB_ROUTER",
        "",
        "# This router keeps its own name (JOB_ROUTER_NAME, default jobrouter), which must differ",
        f"# from the gateway's ({s.router_name}): every copy reaches the gateway with RoutedBy = this",
        "# router's name, and a router never routes a job whose RoutedBy is its own name.",
        "",
        "# Tried before any route this access point already has; jobs that do not match are left",
        "# to those routes and to the local pool.",
        f"JOB_ROUTER_ROUTE_NAMES = {s.route} $(JOB_ROUTER_ROUTE_NAMES)",
        "",
        f"JOB_ROUTER_ROUTE_{s.route} @=jrt",
        *(["  # Which jobs: vanilla jobs for which the site's constraint holds, never routed before."]
          if s.constraint else
          [f"  # Which jobs: vanilla jobs that opt in (+{s.opt_in} = true in the submit file) and were",
           "  # never routed before."]),
        "  # RoutedToJobId stays on a job that came back from the gateway (see the undo below), so",
        "  # such a job is left to the local pool instead of going to the gateway again.",
        f"  REQUIREMENTS {origin_requirements(s)}",
        "  # The copy is a grid-universe job, run by the gridmanager.",
        "  UNIVERSE GRID",
        "  # Sandboxed: the router submits the copy with the job's input files spooled into this",
        "  # schedd's SPOOL and, when the copy has finished, fetches its output into the job's Iwd",
        "  # itself, applying the job's transfer_output_remaps (HTCondor's",
        "  # src/condor_job_router/submit_job.cpp, submit_job and finalize_job).  A copy that is",
        "  # not sandboxed loses TransferOutputRemaps (src/condor_job_router/VanillaToGrid.cpp):",
        "  # a remapped output file would come back into the Iwd under its own name.",
        "  JobShouldBeSandboxed = true",
        "  # condor <the gateway schedd's Name> <the collector it advertises itself to>.  It must be",
        "  # a SET statement: the router ignores a route with a bare GRIDRESOURCE line.",
        f'  SET GridResource "{grid_resource(s)}"',
        "  # Marks the copy (condor_q -constraint RoutedToGateway).",
        "  SET RoutedToGateway true",
        f"  # The undo: a copy idle for more than {s.idle_timeout} s (the gateway is down or its batch",
        f"  # queue is full) or held for more than {s.held_timeout} s (refused at the gateway, no token)",
        "  # is removed; the router then returns the original job to idle here, and the local pool",
        "  # can run it.  The gridmanager evaluates this on the copy; the user's own periodic",
        "  # expressions stay on the original job, where the router evaluates them.",
        f"  SET PeriodicRemove {undo_expression(s)}",
        f"  # At most {s.max_jobs} copies at the gateway, at most {s.max_idle_jobs} of them not running (waiting",
        "  # at the gateway or in its batch queue); beyond that, jobs wait here, unrouted.",
        f"  MaxJobs = {s.max_jobs}",
        f"  MaxIdleJobs = {s.max_idle_jobs}",
        "@jrt",
        "",
        _section("Authentication to the gateway: IDTOKENS only"),
        "# The C-GAHP (the gridmanager's HTCondor-C client, one per job owner) presents a token the",
        f"# gateway issued for {s.mapped_user}@<the gateway's UID_DOMAIN>; the gateway runs the job as that",
        "# account.  FS only works on a shared /tmp and CLAIMTOBE is no authentication: never across",
        "# hosts.  Without a token the copy is held (\"Failed to authenticate using IDTOKENS\").",
        "C_GAHP.SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
        "C_GAHP_WORKER_THREAD.SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
        f"# The C-GAHP runs as the job owner ({s.user}), so the token must be in a directory that",
        "# account can read (mode 700, the token file 600, both owned by it).",
        f"C_GAHP.SEC_TOKEN_DIRECTORY = {s.token_directory}",
        f"C_GAHP_WORKER_THREAD.SEC_TOKEN_DIRECTORY = {s.token_directory}",
        "",
        _section("Network: what the origin accepts from the gateway"),
        "# The gateway connects (1) to this pool's collector, "
        f"{s.origin_collector} (CCB registration,",
        "# schedd ads), and (2) to short-lived listeners of the C-GAHP on this host (the reverse",
        "# connection for every HTCondor-C command: submit, spool, status, remove, output).  Open",
        f"# both, to the gateway's address only: TCP port {s.collector_port} on the collector's host and",
        f"# {p[0]}-{p[1]} here.  CCB cannot work if both sides are firewalled.",
        f"C_GAHP.IN_LOWPORT = {p[0]}",
        f"C_GAHP.IN_HIGHPORT = {p[1]}",
        f"C_GAHP_WORKER_THREAD.IN_LOWPORT = {p[0]}",
        f"C_GAHP_WORKER_THREAD.IN_HIGHPORT = {p[1]}",
        "",
    ])


# ------------------------------------------------------------------------------ gateway
def gateway_config(s: PullSettings) -> str:
    """71-hpcpull-gateway-ccb.conf: CCB to the origin, IDTOKENS, the route for arrived jobs."""
    named = ("a name with @ is used as it is; a bare host name only if it is this host's full name."
             if "@" not in s.gateway_schedd else "a name with @ is used as it is.")
    return "\n".join([
        *_header(s, "hpcpull pull mode, GATEWAY side: the schedd that receives the origin's jobs.",
                 "# Install as 71-hpcpull-gateway-ccb.conf next to 50-hpcpull.conf on the gateway (the host\n"
                 "# that runs hpcpull's hooks), then condor_restart: SCHEDD_NAME and CCB_ADDRESS are read\n"
                 "# at start-up.  The gateway needs no inbound connections at all."),
        _section("The schedd, seen from the origin"),
        f"# The name in the origin's GridResource; {named}",
        f"SCHEDD_NAME = {s.gateway_schedd}",
        "",
        "# Advertise the schedd to the gateway's own collector and to the origin's: the origin's",
        "# gridmanager finds it there.  (The origin's negotiator then sees this schedd's submitter",
        "# ads too and may contact it through CCB; that is harmless noise.)",
        f"SCHEDD.COLLECTOR_HOST = $(COLLECTOR_HOST), {s.origin_collector}",
        "",
        "# Register with the origin's collector as CCB server: this one outbound connection is how",
        "# the origin reaches the schedd; the schedd then connects out to the origin for every",
        "# command.  After a restart it registers again; jobs survive in both queues.",
        f"SCHEDD.CCB_ADDRESS = {s.origin_collector}",
        "",
        "# Daemons that share this name (the gateway's own network) connect to each other directly;",
        "# the origin has no such name, so it must go through CCB.",
        f"PRIVATE_NETWORK_NAME = {s.private_network}",
        "",
        _section("Security: the origin's C-GAHP must present a token"),
        "# FS for local tools and daemons, IDTOKENS for the origin; no CLAIMTOBE.  Add the methods",
        "# the gateway's own pool needs (SSL, KERBEROS, ...), never CLAIMTOBE.",
        "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS",
        "SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS",
        "# Submitting, spooling, removing and fetching output need an authenticated identity.",
        "SCHEDD.SEC_WRITE_AUTHENTICATION = REQUIRED",
        f"# The token's identity ({s.mapped_user}@$(UID_DOMAIN), signed with this pool's POOL key) needs WRITE",
        "# access to the schedd and a local account of that name; if ALLOW_WRITE does not grant it:",
        f"#   SCHEDD.ALLOW_WRITE = $(ALLOW_WRITE), {s.mapped_user}@$(UID_DOMAIN)",
        "",
        _section("Routing the arrived jobs into the batch system"),
        "# This router's name must differ from the origin's (default jobrouter): the arrived jobs",
        "# carry RoutedBy = the origin router's name, and a router never routes a job whose",
        "# RoutedBy is its own.  Set it before this router routes its first job.",
        f"JOB_ROUTER_NAME = {s.router_name}",
        "",
        "# Tried first; routes from 60-hpcpull-routes.conf, if any, keep serving local jobs.  The",
        "# route is served by hpcpull's hooks (HPCPULL_ROUTE_NAMES lists every route by default).",
        f"JOB_ROUTER_ROUTE_NAMES = {s.gateway_route} $(JOB_ROUTER_ROUTE_NAMES)",
        "",
        f"JOB_ROUTER_ROUTE_{s.gateway_route} @=jrt",
        "  # Jobs that arrived by HTCondor-C: the origin's gridmanager sets SubmitterId (the origin",
        "  # schedd's Name) and SubmitterGlobalJobId on them; local jobs have neither.",
        f"  REQUIREMENTS {gateway_requirements(s)}",
        "  # The routed copy is one HTCondor never runs itself; hpcpull's hooks drive it.",
        "  UNIVERSE VANILLA",
        "  SET Requirements false",
        "  # HTCondor-C gives the arrived job PeriodicRemove = (StageInFinish > 0) =!= true &&",
        "  # time() > QDate + 28800.  The copy has no StageInFinish, so it would be removed 8 h after",
        "  # routing, batch job or not.  Removal and limits are the origin's business.",
        "  SET PeriodicRemove false",
        f"  # At most {s.max_jobs} batch jobs, at most {s.max_idle_jobs} of them waiting in the batch queue.",
        f"  MaxJobs = {s.max_jobs}",
        f"  MaxIdleJobs = {s.max_idle_jobs}",
        "@jrt",
        f"# Batch settings for this route: HPCPULL_ROUTE_{s.gateway_route}_<KNOB> (see 50-hpcpull.conf), e.g.",
        f"#   HPCPULL_ROUTE_{s.gateway_route}_PARTITION = htc",
        "",
        "# A global constraint (60-hpcpull-routes.conf.example sets WantHpc =?= true) is ANDed with",
        "# every route's REQUIREMENTS: let the arrived jobs through it.  This only sees a constraint",
        "# set before this file is read; one set later must include this alternative itself.",
        "if defined JOB_ROUTER_SOURCE_JOB_CONSTRAINT",
        "  JOB_ROUTER_SOURCE_JOB_CONSTRAINT = ($(JOB_ROUTER_SOURCE_JOB_CONSTRAINT)) || "
        f"({gateway_requirements(s)})",
        "endif",
        "",
    ])


# ---------------------------------------------------------------------------- next steps
def next_steps(s: PullSettings, output_dir: Optional[Path] = None) -> str:
    """What the admin does with the files: tokens, firewall, checks."""
    domain = s.gateway_domain or "$(condor_config_val UID_DOMAIN)"
    where = f" (written to {output_dir})" if output_dir else ""
    token = f"{s.token_directory}/gateway.token"
    return "\n".join([
        f"Next steps for pull mode{where}:",
        f"1. Gateway: put {GATEWAY_FILE} next to 50-hpcpull.conf; create a local account",
        f"   {s.mapped_user} (the token's identity maps to it); condor_restart.",
        "2. Gateway, as root: create the token the origin's C-GAHP presents, signed with the",
        "   gateway's POOL key (its collector creates passwords.d/POOL at first start):",
        f"     condor_token_create -identity {s.mapped_user}@{domain} -key POOL > gateway.token",
        f"3. Origin: install it for {s.user} where {ORIGIN_FILE} looks (C_GAHP.SEC_TOKEN_DIRECTORY),",
        "   then delete the copy on the gateway:",
        f"     install -d -o {s.user} -m 700 {s.token_directory}",
        f"     install -o {s.user} -m 600 gateway.token {token}",
        "4. Origin firewall, from the gateway's address only: TCP port "
        f"{s.collector_port} on {s.collector_host}",
        f"   (the collector) and TCP {s.port_low}-{s.port_high} on the origin access point.",
        f"5. Origin: put {ORIGIN_FILE} in the access point's config directory; condor_reconfig.",
        f"6. Check on the origin: condor_status -schedd -af Name MyAddress lists {s.gateway_schedd}",
        "   with a CCBID; then submit a vanilla job with "
        + (f"+{s.opt_in} = true." if not s.constraint else "the constraint's attributes."),
        "If the origin's collector requires authentication (the tested pool did not), the gateway's",
        "schedd also needs a token from the origin to advertise itself and register with CCB",
        "(untested): on the origin's central manager",
        "     condor_token_create -identity gateway@<origin UID_DOMAIN> -authz ADVERTISE_SCHEDD > origin.token",
        "   (an identity the origin's ALLOW_ADVERTISE_SCHEDD allows),",
        "   and on the gateway: install -m 600 origin.token /etc/condor/tokens.d/origin.token",
        "",
    ])


def render(s: PullSettings) -> dict[str, str]:
    """File name -> text, for both sides."""
    return {ORIGIN_FILE: origin_config(s), GATEWAY_FILE: gateway_config(s)}


def write(s: PullSettings, directory: Path, suffix: str = "", force: bool = False) -> list[Path]:
    """Write both files into ``directory``; existing files are kept unless ``force``."""
    files = {directory / (name + suffix): text for name, text in render(s).items()}
    if not directory.is_dir():
        raise PullConfigError(f"--output-dir {str(directory)!r}: not a directory")
    existing = [str(path) for path in files if path.exists()]
    if existing and not force:
        raise PullConfigError(f"{', '.join(existing)} exists already (use --force to replace)")
    for path, text in files.items():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(path)
    return list(files)
