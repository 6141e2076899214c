"""The job router's routing table, read from the configuration as condor_job_router reads it.

What it reproduces (htcondor/htcondor, src/condor_job_router/JobRouter.cpp, RoutedJob.h and
src/condor_utils/xform_utils.cpp):

* Only routes named in ``JOB_ROUTER_ROUTE_NAMES`` are loaded (``JobRouter::config``), and
  they are tried in that order (``ChooseRoute``): the first match wins, unless
  ``JOB_ROUTER_ROUND_ROBIN_SELECTION`` spreads jobs over all matching routes.
* A route's text is a transform (``MacroStreamXFormSource::open``): ``NAME``,
  ``REQUIREMENTS``, ``UNIVERSE`` and ``TRANSFORM`` lines are taken out (``TRANSFORM`` ends
  the route), everything else is transform statements and ``Name = value`` macros, of
  which the router reads ``MaxJobs``, ``MaxIdleJobs``, ``TargetUniverse`` and
  ``GridResource`` (``JobRoute::ParseNext``).  A route without REQUIREMENTS is only
  valid when ``JOB_ROUTER_SOURCE_JOB_CONSTRAINT`` is set; one whose REQUIREMENTS do not
  parse is ignored.

Pure functions over a parameter lookup (``htcondor2.param`` by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import classad2

ParamLookup = Callable[[str], Any]

DEFAULT_ROUTER_NAME = "jobrouter"
DEFAULT_MAX_JOBS = 100       # JobRoute::ParseNext, or JOB_ROUTER_DEFAULT_MAX_JOBS_PER_ROUTE
DEFAULT_MAX_IDLE_JOBS = 50   # JobRoute::ParseNext, or JOB_ROUTER_DEFAULT_MAX_IDLE_JOBS_PER_ROUTE
GRID_UNIVERSE = 9

# CondorUniverseNumber() names (src/condor_utils/condor_universe.cpp); "globus" is the old
# name of grid.  UNIVERSE also accepts a number (CondorUniverseNumberEx: atoi first).
UNIVERSES = {
    "standard": 1, "pipe": 2, "linda": 3, "pvm": 4, "vanilla": 5, "pvmd": 6, "scheduler": 7,
    "mpi": 8, "grid": 9, "globus": 9, "java": 10, "parallel": 11, "local": 12, "vm": 13,
}
UNIVERSE_NAMES = {number: name for name, number in UNIVERSES.items() if name != "globus"}

# Transform statements besides the four that open() takes out (xform_utils.cpp keywords).
_STATEMENTS = ("SET", "DEFAULT", "EVALSET", "EVALMACRO", "COPY", "RENAME", "DELETE")
_CONDITIONALS = ("if", "elif", "else", "endif", "error", "warning")
_MACRO = re.compile(r"^([A-Za-z_][A-Za-z0-9_.+]*)\s*=\s?(.*)$")
_HERE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.+]*)\s*@=\s*(\S+)\s*$")


# ---------------------------------------------------------------------------------- routes
@dataclass(frozen=True)
class Statement:
    """One transform statement of a route, e.g. ``SET Requirements false``."""

    keyword: str  # SET, DEFAULT, EVALSET, EVALMACRO, COPY, RENAME, DELETE
    attr: str
    value: str

    def __str__(self) -> str:
        return f"{self.keyword} {self.attr} {self.value}".rstrip()


@dataclass(frozen=True)
class RouteDefinition:
    """A JOB_ROUTER_ROUTE_<name> knob, read the way condor_job_router reads it."""

    name: str
    text: str
    requirements: Optional[str]
    universe: int
    universe_from: str            # "UNIVERSE vanilla", "TargetUniverse = 5" or "default"
    grid_resource: Optional[str]
    max_jobs: int
    max_idle_jobs: int
    statements: tuple[Statement, ...] = ()
    macros: tuple[tuple[str, str], ...] = ()
    error: Optional[str] = None   # set: the router ignores this route, and why
    notes: tuple[str, ...] = ()
    defined: bool = True          # JOB_ROUTER_ROUTE_<name> exists in the configuration

    @property
    def sets(self) -> tuple[Statement, ...]:
        """The SET statements (what the routed copy gets)."""
        return tuple(s for s in self.statements if s.keyword == "SET")

    @property
    def universe_name(self) -> str:
        return UNIVERSE_NAMES.get(self.universe, "unknown").lower()

    @property
    def accepts_jobs(self) -> bool:
        """``JobRoute::AcceptingMoreJobs`` with no job routed yet: MaxJobs 0 or MaxIdleJobs 0 take none."""
        return self.max_jobs > 0 and self.max_idle_jobs != 0


def _as_text(value: Any) -> Optional[str]:
    """htcondor2.param returns typed values for knobs it knows (JOB_ROUTER_ROUND_ROBIN_SELECTION is a bool)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_int(text: Optional[str]) -> Optional[int]:
    """string_is_long_param: an integer literal, or an expression that evaluates to one."""
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        value = classad2.ExprTree(text).eval()
    except Exception:  # noqa: BLE001 - classad2 raises ClassAdException for bad syntax
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _as_bool(text: Optional[str], default: bool) -> bool:
    if text is None or not text.strip():
        return default
    return text.strip().lower() in ("true", "yes", "1", "t", "y")


def _statement(line: str, keyword: str) -> Optional[str]:
    """``is_xform_statement``: the arguments if ``line`` is ``KEYWORD args``, else None.

    ``Requirements = x`` (keyword followed by ``=`` or ``:``) is a macro, not the statement.
    """
    stripped = line.lstrip()
    if not stripped.lower().startswith(keyword.lower()):
        return None
    rest = stripped[len(keyword):]
    if not rest or not rest[0].isspace():
        return None
    args = rest.lstrip()
    if args.startswith(("=", ":")):
        return None
    return args


def _universe_number(text: str) -> int:
    """CondorUniverseNumberEx: a leading number wins, else a universe name, else 0."""
    match = re.match(r"^\s*([+-]?\d+)", text)
    if match and int(match.group(1)) != 0:
        return int(match.group(1))
    return UNIVERSES.get(text.strip().lower(), 0)


def parse_route(
    name: str,
    text: Optional[str],
    allow_empty_requirements: bool = False,
    default_max_jobs: int = DEFAULT_MAX_JOBS,
    default_max_idle_jobs: int = DEFAULT_MAX_IDLE_JOBS,
) -> RouteDefinition:
    """Read one route's transform text as ``JobRoute::ParseNext`` does."""

    def invalid(error: str, **kw: Any) -> RouteDefinition:
        return RouteDefinition(name=name, text=text or "", requirements=kw.get("requirements"),
                               universe=GRID_UNIVERSE, universe_from="default", grid_resource=None,
                               max_jobs=default_max_jobs, max_idle_jobs=default_max_idle_jobs,
                               error=error, notes=tuple(kw.get("notes", ())), defined=text is not None)

    if text is None:
        return invalid(f"JOB_ROUTER_ROUTE_{name} is not defined")
    if not text.strip():
        return invalid(f"JOB_ROUTER_ROUTE_{name} definition is empty: the router ignores it")
    if text.lstrip().startswith(("[", "/*")):
        return invalid("old ClassAd route syntax ([ ... ]) is not analysed by hpcpull; "
                       "rewrite the route as a transform")

    requirements: Optional[str] = None
    universe_statement: Optional[str] = None
    statements: list[Statement] = []
    macros: dict[str, tuple[str, str]] = {}  # lower name -> (name, value); the last one wins
    notes: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        here = _HERE.match(stripped)
        if here:  # Name @=tag ... @tag: a multi-line macro value
            tag, body = "@" + here.group(2), []
            while i < len(lines) and lines[i].strip() != tag:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                notes.append(f"{here.group(1)} @={here.group(2)} has no closing {tag} line")
            i += 1
            macros[here.group(1).lower()] = (here.group(1), "\n".join(body))
            continue
        args = _statement(line, "name")
        if args is not None:
            if args.strip() and args.strip().lower() != name.lower():
                notes.append(f"NAME {args.strip()} is ignored: the route is named after its knob ({name})")
            continue
        args = _statement(line, "requirements")
        if args is not None:
            try:
                classad2.ExprTree(args)
            except Exception:  # noqa: BLE001 - ClassAdException: the expression does not parse
                return invalid(f"invalid REQUIREMENTS : {args.strip()} (the router ignores this route)",
                               requirements=args.strip(), notes=notes)
            requirements = args.strip()
            continue
        args = _statement(line, "universe")
        if args is not None:
            universe_statement = args.strip()
            continue
        if _statement(line, "transform") is not None or stripped.lower() == "transform":
            if any(x.strip() and not x.strip().startswith("#") for x in lines[i:]):
                notes.append("lines after TRANSFORM are not part of the route (the router stops there)")
            break
        keyword = next((k for k in _STATEMENTS if _statement(line, k) is not None), None)
        if keyword:
            args = _statement(line, keyword) or ""
            attr, _, value = args.strip().partition(" ")
            statements.append(Statement(keyword, attr, value.strip()))
            continue
        first = stripped.split(None, 1)[0].lower()
        if first in _CONDITIONALS:
            if first == "if" and not any("if/else" in n for n in notes):
                notes.append("the route has if/else blocks: statements are listed as written, "
                             "whichever branch applies")
            continue
        macro = _MACRO.match(stripped)
        if macro:
            macros[macro.group(1).lower()] = (macro.group(1), macro.group(2).strip())
            continue
        notes.append(f"line not understood: {stripped[:80]!r}")

    def macro(key: str) -> Optional[str]:
        found = macros.get(key.lower())
        return found[1] if found else None

    if requirements is None and not allow_empty_requirements:
        return invalid("no REQUIREMENTS and no JOB_ROUTER_SOURCE_JOB_CONSTRAINT: the router ignores "
                       "this route (CONFIGURATION ERROR: Missing Requirements in job route)", notes=notes)

    universe, universe_from = 0, "default"
    if universe_statement is not None:
        universe = _universe_number(universe_statement)
        universe_from = f"UNIVERSE {universe_statement}"
        if not universe:
            notes.append(f"UNIVERSE {universe_statement} is not a universe the router knows")
    if not universe:
        target = _as_int(macro("TargetUniverse"))
        if target is not None:
            universe, universe_from = target, f"TargetUniverse = {macro('TargetUniverse')}"
        else:
            universe, universe_from = GRID_UNIVERSE, "default"
    grid_resource = None
    if universe == GRID_UNIVERSE and macro("GridResource") is not None:
        grid_resource = (macro("GridResource") or "").strip().strip('"')

    max_jobs = _as_int(macro("MaxJobs"))
    max_idle = _as_int(macro("MaxIdleJobs"))
    return RouteDefinition(
        name=name,
        text=text,
        requirements=requirements,
        universe=universe,
        universe_from=universe_from,
        grid_resource=grid_resource,
        max_jobs=default_max_jobs if max_jobs is None else max_jobs,
        max_idle_jobs=default_max_idle_jobs if max_idle is None else max_idle,
        statements=tuple(statements),
        macros=tuple(macros.values()),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class RoutingTable:
    """The router's knobs that decide routing, plus which routes hpcpull serves."""

    route_names: tuple[str, ...]              # JOB_ROUTER_ROUTE_NAMES, in order, de-duplicated
    routes: tuple[RouteDefinition, ...]       # one per name in route_names (plus any asked for)
    source_constraint: Optional[str]
    router_name: str
    round_robin: bool
    router_max_jobs: int                      # JOB_ROUTER_MAX_JOBS (-1: no limit)
    hpcpull_route_names: tuple[str, ...]
    names_configured: bool = True             # JOB_ROUTER_ROUTE_NAMES is set at all

    def route(self, name: str) -> Optional[RouteDefinition]:
        return next((r for r in self.routes if r.name.lower() == name.lower()), None)

    def enabled(self, name: str) -> bool:
        return name.lower() in (n.lower() for n in self.route_names)

    def served(self, name: str) -> bool:
        return name.lower() in (n.lower() for n in self.hpcpull_route_names)


def _names(text: Optional[str]) -> tuple[str, ...]:
    """A route name list (StringTokenIterator: commas and white space), first occurrence kept."""
    seen: dict[str, str] = {}
    for word in re.split(r"[\s,]+", text or ""):
        if word and word.upper() != "NAMES" and word.lower() not in seen:
            seen[word.lower()] = word
    return tuple(seen.values())


def _htcondor_param(name: str) -> Any:
    import htcondor2  # imported lazily, like config.py

    return htcondor2.param.get(name)


def load_routing_table(lookup: ParamLookup = _htcondor_param, extra_routes: Sequence[str] = ()) -> RoutingTable:
    """Read the routing knobs through ``lookup`` (``htcondor2.param``).

    ``extra_routes`` are read too even when they are not enabled, so that
    ``route-info --route X`` can say why X never takes a job.
    """
    from hpcpull.config import Config

    def get(name: str) -> Optional[str]:
        return _as_text(lookup(name))

    names_text = get("JOB_ROUTER_ROUTE_NAMES")
    route_names = _names(names_text)
    constraint = (get("JOB_ROUTER_SOURCE_JOB_CONSTRAINT") or "").strip() or None
    default_max = _as_int(get("JOB_ROUTER_DEFAULT_MAX_JOBS_PER_ROUTE"))
    default_idle = _as_int(get("JOB_ROUTER_DEFAULT_MAX_IDLE_JOBS_PER_ROUTE"))
    router_max = _as_int(get("JOB_ROUTER_MAX_JOBS"))
    wanted = list(route_names)
    for extra in extra_routes:
        if extra.lower() not in (w.lower() for w in wanted):
            wanted.append(extra)
    routes = tuple(
        parse_route(
            name,
            get(f"JOB_ROUTER_ROUTE_{name}"),
            allow_empty_requirements=constraint is not None,
            default_max_jobs=DEFAULT_MAX_JOBS if default_max is None else default_max,
            default_max_idle_jobs=DEFAULT_MAX_IDLE_JOBS if default_idle is None else default_idle,
        )
        for name in wanted
    )
    config = Config(lambda name: get(name))
    hpcpull_names = tuple(n for n in wanted if config.is_hpcpull_route(n))
    return RoutingTable(
        route_names=route_names,
        routes=routes,
        source_constraint=constraint,
        router_name=(get("JOB_ROUTER_NAME") or "").strip() or DEFAULT_ROUTER_NAME,
        round_robin=_as_bool(get("JOB_ROUTER_ROUND_ROBIN_SELECTION"), False),
        router_max_jobs=-1 if router_max is None else router_max,
        hpcpull_route_names=hpcpull_names,
        names_configured=names_text is not None and bool(route_names),
    )
