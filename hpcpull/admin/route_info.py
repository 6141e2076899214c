"""Why a job does (not) match a route: ``hpcpull route-info``.

It answers "where would condor_job_router send this job, and if nowhere, why?" without a
running router, from the routing table (hpcpull.admin.routing_table) and the job's ad, as
the router decides (htcondor/htcondor, src/condor_job_router/JobRouter.cpp):

* A job is a candidate only if the router's query is true for it (``GetCandidateJobs``):
  ``(SOURCE_JOB_CONSTRAINT) && ((req1) || (req2) ...) && (target.ProcId >= 0 &&
  target.JobStatus == 1 && ... && target.RoutedBy isnt "<JOB_ROUTER_NAME>")``, evaluated
  with the job as the target of a match ad (``classad::LocalCollectionQuery::Query``).
* A route then takes the job if its REQUIREMENTS evaluated in the job ad is true
  (``MacroStreamXFormSource::matches``): a boolean (or, with the daemons' old-ClassAd
  semantics, a non-zero number) decides; any other value - UNDEFINED, ERROR, a string -
  is *not* a match; only an evaluation that fails outright (classad2 raises
  "failed to evaluate expression", e.g. a too-deep attribute chain) counts as a match.

Pure functions over classad2 ads; the CLI only formats the dataclasses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import classad2

from hpcpull.admin.routing_table import RouteDefinition, RoutingTable
from hpcpull.errors import HpcPullError
from hpcpull.router.classads import ad_lines, parse_old_ad

JOB_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held",
              6: "transferring output", 7: "suspended"}

_JOB_ID = re.compile(r"^(\d+)\.(\d+)$")


class BadJobInput(HpcPullError):
    """The job ad input cannot be used (no ad, several ads and no --job, unknown job id)."""


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
