"""The job router's routing table as hpcpull sees it, and why a job does (not) match a route.

``hpcpull route-info`` answers "where would condor_job_router send this job, and if
nowhere, why?" without a running router.  What it reproduces (htcondor/htcondor,
src/condor_job_router/JobRouter.cpp, RoutedJob.h and src/condor_utils/xform_utils.cpp;
see also reference/htcondor-interfaces.md §2):

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
* A job is a candidate only if the router's query is true for it (``GetCandidateJobs``):
  ``(SOURCE_JOB_CONSTRAINT) && ((req1) || (req2) ...) && (target.ProcId >= 0 &&
  target.JobStatus == 1 && ... && target.RoutedBy isnt "<JOB_ROUTER_NAME>")``, evaluated
  with the job as the target of a match ad (``classad::LocalCollectionQuery::Query``).
* A route then takes the job if its REQUIREMENTS evaluated in the job ad is true
  (``MacroStreamXFormSource::matches``): a boolean (or, with the daemons' old-ClassAd
  semantics, a non-zero number) decides; any other value - UNDEFINED, ERROR, a string -
  is *not* a match; only an evaluation that fails outright (classad2 raises
  "failed to evaluate expression", e.g. a too-deep attribute chain) counts as a match.

Everything here is a pure function over a parameter lookup (``htcondor2.param`` by
default) and classad2 ads; the CLI only formats the dataclasses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import classad2

from hpcpull.errors import HpcPullError
from hpcpull.router.classads import ad_lines, parse_old_ad

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

JOB_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held",
              6: "transferring output", 7: "suspended"}

# Transform statements besides the four that open() takes out (xform_utils.cpp keywords).
_STATEMENTS = ("SET", "DEFAULT", "EVALSET", "EVALMACRO", "COPY", "RENAME", "DELETE")
_CONDITIONALS = ("if", "elif", "else", "endif", "error", "warning")
_MACRO = re.compile(r"^([A-Za-z_][A-Za-z0-9_.+]*)\s*=\s?(.*)$")
_HERE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.+]*)\s*@=\s*(\S+)\s*$")
_JOB_ID = re.compile(r"^(\d+)\.(\d+)$")


class BadJobInput(HpcPullError):
    """The job ad input cannot be used (no ad, several ads and no --job, unknown job id)."""


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


# ------------------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class Check:
    """One expression evaluated for the job, and what its value means."""

    expr: str
    value: str        # the ClassAd value as text: true, false, undefined, error, 3, "x"
    passed: bool
    detail: str = ""  # e.g. "WantHpc is undefined", or the router's explanation

    def __str__(self) -> str:
        text = f"{self.expr} -> {self.value}"
        return f"{text} ({self.detail})" if self.detail else text


_FAILED = object()  # the evaluation itself failed (classad2 raised)


def format_value(value: Any) -> str:
    """A classad2 evaluation result as ClassAd text."""
    if value is _FAILED:
        return "evaluation failed"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, classad2.Value):
        return value.name.lower()
    if isinstance(value, str):
        return classad2.quote(value)
    return str(value)


def _truth(value: Any) -> Optional[bool]:
    """``Value::IsBooleanValueEquiv`` with old-ClassAd semantics (what the daemons use):
    booleans, and numbers (non-zero is true); None for anything else."""
    if isinstance(value, classad2.Value):  # UNDEFINED / ERROR (an int enum: test it first)
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return None


def _evaluate(expr: str, job: classad2.ClassAd, as_target: bool = False) -> Any:
    """Evaluate ``expr`` for ``job``; ``as_target`` puts the job on the target side of a
    match ad, as the router's candidate query does (``target.X`` and bare ``X`` both reach it).

    The daemons resolve a bare name that MY lacks in TARGET (old ClassAd semantics);
    classad2 does not, so a copy of the job stands in as MY: bare names and ``target.X``
    then reach the job, and only an explicit ``MY.X`` differs (the router would see
    undefined there).
    """
    try:
        tree = classad2.ExprTree(expr)
    except Exception:  # noqa: BLE001 - ClassAdException: does not parse
        raise HpcPullError(f"expression does not parse: {expr}") from None
    try:
        if as_target:
            return tree.eval(classad2.parseOne(job.printOld(), classad2.ParserType.Old), job)
        return tree.eval(job)
    except Exception:  # noqa: BLE001 - ClassAdException "failed to evaluate expression"
        return _FAILED


def _refs_detail(expr: str, job: classad2.ClassAd, as_target: bool = False) -> str:
    """Which attributes of ``expr`` the job lacks, and the values of those it has.

    Evaluated in the job ad, ``TARGET.x`` has nothing to refer to; on the target side of
    the candidate query, ``MY.x`` refers to the (empty) query ad instead.
    """
    try:
        tree = classad2.ExprTree(expr)
        # classad2 returns [''] rather than [] when there is no reference
        refs = [r for r in list(job.externalRefs(tree)) + list(job.internalRefs(tree)) if r]
    except Exception:  # noqa: BLE001 - no detail rather than no answer
        return ""
    parts: list[str] = []
    for ref in refs:
        scope, _, bare = ref.rpartition(".")
        if not scope and as_target and re.search(rf"(?i)\bmy\s*\.\s*{re.escape(bare)}\b", expr):
            scope, ref = "my", f"MY.{bare}"  # classad2 reports MY.x as plain x
        missing_scope = "my" if as_target else "target"
        if scope.lower() == missing_scope or bare not in job:
            parts.append(f"{ref} is undefined")
        else:
            parts.append(f"{ref} = {str(job.lookup(bare))[:60]}")
        if len(parts) == 6:
            break
    return ", ".join(parts)


def _split_top(text: str, operator: str) -> Optional[list[str]]:
    """Split ``text`` on ``operator`` outside brackets and strings; None if an operator of
    lower precedence (``||``, ``?:``) is at the top level, so the split would be wrong."""
    parts, depth, start, i, quote = [], 0, 0, 0, ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            two = text[i:i + 2]
            if two == operator:
                parts.append(text[start:i].strip())
                start = i + 2
                i += 1
            elif two == "||" or (c == "?" and not (text[i - 1:i] == "=" and text[i + 1:i + 2] == "=")):
                return None
        i += 1
    parts.append(text[start:].strip())
    return parts


def _strip_parens(text: str) -> str:
    """``((a && b))`` -> ``a && b`` when the outer parentheses enclose everything."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth, quote = 0, ""
        for i, c in enumerate(text):
            if quote:
                quote = "" if c == quote and text[i - 1] != "\\" else quote
            elif c in "\"'":
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0 and i != len(text) - 1:
                    return text
        text = text[1:-1].strip()
    return text


def split_conjuncts(expr: str) -> list[str]:
    """The top-level ``&&`` parts of ``expr`` (nested pure conjunctions are flattened)."""
    parts = _split_top(_strip_parens(expr), "&&")
    if not parts or len(parts) == 1:
        return [expr.strip()]
    flat: list[str] = []
    for part in parts:
        flat.extend(split_conjuncts(part))
    return flat


def explain(expr: str, job: classad2.ClassAd, as_target: bool = False) -> tuple[Check, tuple[Check, ...]]:
    """The whole expression's check, and the failing ``&&`` parts (each with its value and
    the attributes behind it).  A conjunct "fails" unless it is true (or a non-zero number)."""
    value = _evaluate(expr, job, as_target)
    whole = Check(expr, format_value(value), _truth(value) is True)
    failing = []
    for part in split_conjuncts(expr):
        part_value = _evaluate(part, job, as_target)
        if _truth(part_value) is True:
            continue
        detail = _refs_detail(part, job, as_target)
        if part_value is _FAILED:
            detail = "the evaluation itself failed" + (f"; {detail}" if detail else "")
        elif _truth(part_value) is None and not isinstance(part_value, classad2.Value):
            detail = "not a boolean" + (f"; {detail}" if detail else "")
        failing.append(Check(part, format_value(part_value), False, detail))
    return whole, tuple(failing)


def route_matches(requirements: Optional[str], job: classad2.ClassAd) -> tuple[bool, Check]:
    """``MacroStreamXFormSource::matches``: no REQUIREMENTS matches; a failed evaluation
    matches; otherwise only true (or a non-zero number) does."""
    if requirements is None:
        return True, Check("(no REQUIREMENTS)", "true", True)
    value = _evaluate(requirements, job)
    if value is _FAILED:
        return True, Check(requirements, format_value(value), True,
                           "a failed evaluation counts as a match for the route")
    truth = _truth(value)
    return bool(truth), Check(requirements, format_value(value), bool(truth))


# The router's own conditions on a candidate (GetCandidateJobs), in its order; {name} is
# JOB_ROUTER_NAME.  Each is evaluated with the job as the match target, as the query is.
ROUTER_CONDITIONS = (
    "target.ProcId >= 0",
    "target.JobStatus == 1",
    "(target.StageInStart is undefined || target.StageInFinish isnt undefined)",
    'target.Managed isnt "ScheddDone"',
    'target.Managed isnt "External"',
    "target.Owner isnt Undefined",
    'target.RoutedBy isnt "{name}"',
)


def _attr_text(job: classad2.ClassAd, name: str) -> str:
    return str(job.lookup(name)) if name in job else "undefined"


def _router_reason(condition: str, job: classad2.ClassAd, router_name: str) -> str:
    """Why the router refuses the job, in words an admin can act on."""
    if "ProcId" in condition:
        return f"ProcId is {_attr_text(job, 'ProcId')}: the router only routes jobs with ProcId >= 0"
    if "JobStatus" in condition:
        status = job.get("JobStatus")
        name = JOB_STATUS.get(status, "") if isinstance(status, int) else ""
        shown = f"{status} ({name})" if name else _attr_text(job, "JobStatus")
        return f"JobStatus is {shown}: the router only routes idle jobs (1)"
    if "StageIn" in condition:
        return ("StageInStart is set but StageInFinish is not: the job's input files are still "
                "being spooled")
    if "ScheddDone" in condition:
        return 'Managed is "ScheddDone": an external manager finished this job and does not want it back'
    if "External" in condition:
        manager = _attr_text(job, "ManagedManager")
        return f'Managed is "External": the job is already managed externally (ManagedManager {manager})'
    if "Owner" in condition:
        return "Owner is undefined: the router skips jobs without an Owner"
    return (f'RoutedBy is "{router_name}": the job is a routed copy made by this router '
            "(JOB_ROUTER_NAME), which never routes its own copies")


@dataclass(frozen=True)
class Reason:
    """Why a route does not take the job."""

    kind: str   # "route", "requirements", "constraint", "router"
    text: str


@dataclass(frozen=True)
class RouteVerdict:
    """One route, and whether the router would send the job there."""

    name: str
    route: RouteDefinition
    enabled: bool                  # in JOB_ROUTER_ROUTE_NAMES
    served: bool                   # in HPCPULL_ROUTE_NAMES (hpcpull's hooks handle it)
    requirements: Optional[Check]  # the route's REQUIREMENTS for this job (None: route unusable)
    matches: bool                  # the router would route the job here (if tried first)
    reasons: tuple[Reason, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingDecision:
    """Where the router would send one job, and why the other routes do not take it."""

    job_id: str
    table: RoutingTable
    router_checks: tuple[Check, ...]      # source constraint and router conditions that fail
    candidate: bool                       # the router's candidate query is true for the job
    umbrella: str                         # that query, as the router builds it
    umbrella_value: str
    routes: tuple[RouteVerdict, ...]
    matching: tuple[str, ...]             # matching routes, in the order the router tries them
    chosen: Optional[str]                 # first match (None: no route, or round robin over several)
    notes: tuple[str, ...] = field(default_factory=tuple)
    owner: Optional[str] = None
    job_status: Optional[int] = None


def _route_constraints(table: RoutingTable) -> list[tuple[str, str]]:
    """(route name, REQUIREMENTS or ``True``) as the query ORs them: routes that can take
    jobs, in routing-table order (a case-insensitive map of names), each distinct text once."""
    seen: list[tuple[str, str]] = []
    usable = [r for r in table.routes if r.error is None and table.enabled(r.name) and r.accepts_jobs]
    for route in sorted(usable, key=lambda r: r.name.lower()):
        this = route.requirements or "True"
        if this not in (text for _, text in seen):
            seen.append((route.name, this))
    return seen


def umbrella_constraint(table: RoutingTable) -> Optional[str]:
    """``GetCandidateJobs``' query: None when no route can take jobs (nothing is queried)."""
    route_constraints = [text for _, text in _route_constraints(table)]
    if not route_constraints:
        return None
    text = f"({table.source_constraint}) && " if table.source_constraint else ""
    text += "( " + " || ".join(f"({c})" for c in route_constraints) + " )"
    conditions = " && ".join(c.format(name=table.router_name) for c in ROUTER_CONDITIONS)
    return text + f" && ({conditions})"


def _query_culprits(table: RoutingTable, job: classad2.ClassAd) -> str:
    """Route REQUIREMENTS that make the query's OR of all routes not true although a route
    matches: an ERROR (or a failed evaluation) before the first true one spoils the OR."""
    culprits = []
    for name, text in _route_constraints(table):
        value = _evaluate(text, job, as_target=True)
        if value is True:
            break
        if value is _FAILED or value is classad2.Value.Error:
            culprits.append(f"{name}'s REQUIREMENTS {text} -> {format_value(value)}")
    if not culprits:
        return ""
    return ": " + "; ".join(culprits) + " (the query ORs every route's REQUIREMENTS in name order)"


def job_id_of(ad: classad2.ClassAd) -> str:
    """``ClusterId.ProcId``, evaluated ("?" unless both are whole numbers).  classad2 gives
    undefined and error as members of an IntEnum, so the type is tested exactly."""
    ids = []
    for name in ("ClusterId", "ProcId"):
        try:
            value = ad.eval(name) if name in ad else None
        except (TypeError, ValueError, RuntimeError):
            value = None
        if type(value) is not int:
            return "?"
        ids.append(value)
    return f"{ids[0]}.{ids[1]}"


def decide(job: classad2.ClassAd, table: RoutingTable, only: Optional[str] = None) -> RoutingDecision:
    """Evaluate the router's candidate test and every route for ``job``.

    ``only`` limits the route verdicts to one route; the chosen route is still computed
    over the whole table (that is what the router does).
    """
    global_reasons: list[Reason] = []
    checks: list[Check] = []
    notes: list[str] = []
    if not table.names_configured:
        global_reasons.append(Reason("router", "JOB_ROUTER_ROUTE_NAMES is not set: job routing is disabled"))
    if table.router_max_jobs == 0:
        global_reasons.append(Reason("router", "JOB_ROUTER_MAX_JOBS = 0: the router takes no jobs"))
    if table.source_constraint:
        try:
            whole, failing = explain(table.source_constraint, job, as_target=True)
        except HpcPullError:
            global_reasons.append(Reason(
                "constraint", f"JOB_ROUTER_SOURCE_JOB_CONSTRAINT does not parse: {table.source_constraint} "
                "(condor_job_router would exit)"))
        else:
            if not whole.passed:
                for part in failing or (whole,):
                    checks.append(part)
                    global_reasons.append(Reason("constraint", f"JOB_ROUTER_SOURCE_JOB_CONSTRAINT: {part}"))
    for condition in ROUTER_CONDITIONS:
        expr = condition.format(name=table.router_name)
        value = _evaluate(expr, job, as_target=True)
        if value is not True:
            reason = _router_reason(condition, job, table.router_name)
            checks.append(Check(expr, format_value(value), False, reason))
            global_reasons.append(Reason("router", reason))

    umbrella = umbrella_constraint(table)
    if umbrella is None:
        candidate, umbrella_value = False, "not queried"
        if table.names_configured:
            global_reasons.append(Reason("router", "no enabled, valid route accepts jobs: the router "
                                                   "does not look for candidates"))
    else:
        try:
            value = _evaluate(umbrella, job, as_target=True)
        except HpcPullError:
            value = _FAILED
        candidate, umbrella_value = value is True, format_value(value)

    verdicts: list[RouteVerdict] = []
    matching: list[str] = []
    for route in table.routes:
        enabled, served = table.enabled(route.name), table.served(route.name)
        reasons: list[Reason] = []
        req_check: Optional[Check] = None
        if route.error:
            reasons.append(Reason("route", route.error))
        else:
            if not enabled:
                reasons.append(Reason("route", "not enabled: the route is not in JOB_ROUTER_ROUTE_NAMES, "
                                               "so the router does not load it"))
            if not route.accepts_jobs:
                limit = "MaxJobs" if route.max_jobs <= 0 else "MaxIdleJobs"
                value_shown = route.max_jobs if route.max_jobs <= 0 else route.max_idle_jobs
                reasons.append(Reason("route", f"{limit} = {value_shown}: the route accepts no jobs"))
            matched, req_check = route_matches(route.requirements, job)
            if not matched and route.requirements is not None:
                _, failing = explain(route.requirements, job)
                for part in failing or (req_check,):
                    reasons.append(Reason("requirements", str(part)))
        takes = not reasons and not global_reasons and candidate
        if not reasons and not global_reasons and not candidate:
            reasons.append(Reason("router", f"the router's candidate query is {umbrella_value} for this job, "
                                            "so it never reaches the routes" + _query_culprits(table, job)))
        if takes:
            matching.append(route.name)
        verdicts.append(RouteVerdict(
            name=route.name, route=route, enabled=enabled, served=served, requirements=req_check,
            matches=takes, reasons=tuple(global_reasons + reasons), notes=route.notes))

    chosen = matching[0] if matching else None
    if table.round_robin and len(matching) > 1:
        chosen = None  # ChooseRoute picks matches[counter % n]: any of them
        notes.append("JOB_ROUTER_ROUND_ROBIN_SELECTION: successive jobs go to "
                     + ", ".join(matching) + " in turn")
    if only is not None:
        verdicts = [v for v in verdicts if v.name.lower() == only.lower()]
    return RoutingDecision(
        job_id=job_id_of(job), table=table, router_checks=tuple(checks), candidate=candidate,
        umbrella=umbrella or "", umbrella_value=umbrella_value, routes=tuple(verdicts),
        matching=tuple(matching), chosen=chosen, notes=tuple(notes),
        owner=job.get("Owner") if isinstance(job.get("Owner"), str) else None,
        job_status=job.get("JobStatus") if type(job.get("JobStatus")) is int else None)


# ------------------------------------------------------------------------------ job input
def split_ads(text: str) -> list[str]:
    """``condor_q -l`` output: ads separated by blank lines.  Each chunk keeps its line
    numbers (leading newlines), so parse errors point at the line in the whole input."""
    chunks: list[str] = []
    current: list[str] = []
    start = 0
    lines = ad_lines(text)  # at "\n" only, as HTCondor does: values may hold \r, U+2028, ...
    for number, line in enumerate(lines):
        if line.strip():
            if not current:
                start = number
            current.append(line)
        elif current:
            chunks.append("\n" * start + "\n".join(current) + "\n")
            current = []
    if current:
        chunks.append("\n" * start + "\n".join(current) + "\n")
    return chunks


def parse_job_ads(text: str) -> list[classad2.ClassAd]:
    """Every ad of an old-syntax input (one ad, or ``condor_q -l`` output)."""
    chunks = split_ads(text)
    if not chunks:
        raise BadJobInput("the job ad input is empty")
    what = "job ad" if len(chunks) == 1 else "condor_q -l input"
    return [parse_old_ad(chunk, what) for chunk in chunks]


def select_job(ads: Sequence[classad2.ClassAd], job: Optional[str] = None) -> classad2.ClassAd:
    """The ad of job ``CLUSTER.PROC``, or the only ad when no job is named."""
    ids = [job_id_of(ad) for ad in ads]
    if job is None:
        if len(ads) == 1:
            return ads[0]
        raise BadJobInput(f"{len(ads)} job ads in the input ({', '.join(ids[:10])}"
                          f"{', ...' if len(ids) > 10 else ''}): pick one with --job CLUSTER.PROC")
    match = _JOB_ID.match(job.strip())
    if not match:
        raise BadJobInput(f"--job {job!r} is not CLUSTER.PROC (e.g. 78.0)")
    wanted = f"{int(match.group(1))}.{int(match.group(2))}"
    for ad, ad_id in zip(ads, ids):
        if ad_id == wanted:
            return ad
    raise BadJobInput(f"no job {wanted} in the input (it has {', '.join(ids[:10])})")


def load_job_ad(text: str, job: Optional[str] = None) -> classad2.ClassAd:
    """The one job ad to work on, from one old-syntax ad or ``condor_q -l`` output."""
    return select_job(parse_job_ads(text), job)
