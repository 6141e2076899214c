"""`hpcpull`: the admin tool (render a job's batch script, explain routing, generate pull-mode
config, run the demo)."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import classad2

from hpcpull.admin.common import attribute_text

if TYPE_CHECKING:
    from hpcpull.admin.route_info import RouteVerdict, RoutingDecision


def _read_job_ad(path: str) -> str:
    """The JOB_AD argument: a file, or ``-`` for stdin (raises OSError/ValueError)."""
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


# ClusterId and ProcId are C ints in HTCondor (the schedd's PROC_ID); a routed job's are never negative.
_MAX_JOB_ID = 2**31 - 1


def _kind(value: object) -> str:
    """What a ClassAd value is, in words, for a refusal."""
    if isinstance(value, bool):
        return "a boolean"
    for python_type, words in ((str, "a string"), (int, "an integer"), (float, "a real"), (list, "a list")):
        if isinstance(value, python_type):
            return words
    return "a ClassAd" if isinstance(value, classad2.ClassAd) else "not a value"


def _job_identity(ad: classad2.ClassAd) -> tuple[str, int, int]:
    """Owner, ClusterId and ProcId of a user-given ad, evaluated (``strcat(...)``, ``40 + 2``).

    An attribute that is absent or evaluates to undefined takes ``nobody``/0/0, as a
    hand-written ad may leave them out.  Anything else that is not a valid user name or a
    job id number raises HpcPullError with a one-line reason.
    """
    from hpcpull.errors import HpcPullError
    from hpcpull.script.payload import ad_value
    from hpcpull.state.jobdir import valid_owner

    owner = ad_value(ad, "Owner")
    if owner is None:
        owner = "nobody"
    elif not isinstance(owner, str):
        raise HpcPullError(f"Owner = {attribute_text(ad, 'Owner')} is {_kind(owner)}, not a user name")
    elif not valid_owner(owner):
        raise HpcPullError(f"Owner = {attribute_text(ad, 'Owner')} is not a valid user name "
                           "(1 to 64 letters, digits and _.-, not starting with . or -)")
    ids = []
    for name in ("ClusterId", "ProcId"):
        value = ad_value(ad, name)
        if value is None:
            value = 0
        if type(value) is not int or not 0 <= value <= _MAX_JOB_ID:
            what = "out of range" if type(value) is int else _kind(value)
            raise HpcPullError(f"{name} = {attribute_text(ad, name)} is {what}: it must be a whole number "
                               f"from 0 to {_MAX_JOB_ID}")
        ids.append(value)
    return owner, ids[0], ids[1]


def _render(args: argparse.Namespace) -> int:
    """Print the batch script a job would get on a route, without submitting anything."""
    from hpcpull.admin.route_info import load_job_ad
    from hpcpull.config import Config
    from hpcpull.errors import HpcPullError
    from hpcpull.script.render import render_batch_script
    from hpcpull.state.jobdir import job_dir_for

    try:
        ad = load_job_ad(_read_job_ad(args.job_ad), args.job)
        route = Config().route(args.route)
        owner, cluster_id, proc_id = _job_identity(ad)
        job = job_dir_for(route.scratch_root, owner, cluster_id, proc_id)
        sys.stdout.write(render_batch_script(ad, route, job.path))
    except (HpcPullError, ValueError, OSError) as exc:
        print(f"hpcpull render: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot read {exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"the job ad is not UTF-8 text ({exc.reason} at byte {exc.start})"
    return " ".join(str(exc).split())


def _route_line(verdict: RouteVerdict, decision: RoutingDecision) -> str:
    if verdict.matches:
        if decision.chosen is not None and decision.chosen != verdict.name:
            return f"Route {verdict.name}: MATCHES (but {decision.chosen} is tried first)"
        return f"Route {verdict.name}: MATCHES"
    return f"Route {verdict.name}: does not match"


def _format_decision(decision: RoutingDecision) -> str:
    """The route-info report: one block per route, then the router's choice."""
    from hpcpull.admin.route_info import JOB_STATUS

    table = decision.table
    out: list[str] = []
    header = f"Job {decision.job_id}"
    if decision.owner is not None:
        header += f": Owner {decision.owner}"
    if decision.job_status is not None:
        state = JOB_STATUS.get(decision.job_status, "unknown")
        header += f", JobStatus {decision.job_status} ({state})"
    out.append(header)
    order = ", ".join(table.route_names) or "none"
    policy = "one of the matching routes in turn (JOB_ROUTER_ROUND_ROBIN_SELECTION)" if table.round_robin \
        else "the first match wins"
    out.append(f"Routes are tried in JOB_ROUTER_ROUTE_NAMES order ({order}); {policy}.")
    if table.source_constraint:
        out.append(f"JOB_ROUTER_SOURCE_JOB_CONSTRAINT = {table.source_constraint}")
    for verdict in decision.routes:
        route = verdict.route
        out.append("")
        out.append(_route_line(verdict, decision))
        facts = [
            "enabled" if verdict.enabled else "not enabled (not in JOB_ROUTER_ROUTE_NAMES)",
            "served by hpcpull" if verdict.served else "not served by hpcpull (HPCPULL_ROUTE_NAMES)",
        ]
        if route.defined and not route.error:
            facts.append(f"universe {route.universe_name} ({route.universe})")
            facts.append(f"MaxJobs {route.max_jobs}, MaxIdleJobs {route.max_idle_jobs}")
            if route.grid_resource:
                facts.append(f"GridResource {route.grid_resource}")
        out.append("  " + "; ".join(facts))
        if verdict.requirements is not None and route.requirements is None:
            out.append("  no REQUIREMENTS (JOB_ROUTER_SOURCE_JOB_CONSTRAINT alone selects jobs)")
        elif verdict.requirements is not None:
            out.append(f"  REQUIREMENTS {verdict.requirements}")
        for statement in route.sets:
            out.append(f"  {statement}")
        for reason in verdict.reasons:
            label = "REQUIREMENTS" if reason.kind == "requirements" else reason.kind
            out.append(f"  - {label}: {reason.text}")
        for note in verdict.notes:
            out.append(f"  note: {note}")
    out.append("")
    if decision.chosen is not None:
        served = "served by hpcpull" if table.served(decision.chosen) else \
            "not in HPCPULL_ROUTE_NAMES: hpcpull's hooks pass its jobs through untouched"
        out.append(f"The router would choose: {decision.chosen} ({served})")
    elif decision.matching:
        out.append("The router would choose one of: " + ", ".join(decision.matching))
    else:
        out.append("No route takes this job.")
    out.extend(f"note: {note}" for note in decision.notes)
    return "\n".join(out) + "\n"


def _route_info(args: argparse.Namespace) -> int:
    """Explain where condor_job_router would send a job, and why other routes do not take it."""
    from hpcpull.admin.route_info import decide, load_job_ad
    from hpcpull.admin.routing_table import load_routing_table
    from hpcpull.errors import HpcPullError

    try:
        if args.route is not None and not re.match(r"^[A-Za-z0-9_]+$", args.route):
            raise HpcPullError(f"route name {args.route!r} must be letters, digits and _")
        job = load_job_ad(_read_job_ad(args.job_ad), args.job)
        table = load_routing_table(extra_routes=[args.route] if args.route else ())
        if args.route is not None:
            route = table.route(args.route)
            if route is None or (not route.defined and not table.enabled(args.route)):
                raise HpcPullError(f"unknown route {args.route!r}: no JOB_ROUTER_ROUTE_{args.route} "
                                   "in the configuration")
        decision = decide(job, table, only=args.route)
    except (HpcPullError, ValueError, OSError) as exc:
        print(f"hpcpull route-info: {_one_line(exc)}", file=sys.stderr)
        return 2
    sys.stdout.write(_format_decision(decision))
    return 0 if any(v.matches for v in decision.routes) else 1


def _pull_config(args: argparse.Namespace) -> int:
    """Write (or print) the origin's and the gateway's pull-mode config files, then say what
    else to do (tokens, firewall) on stderr."""
    from hpcpull.admin.pull_config import PullConfigError, next_steps, parse_ports, render, settings, write

    try:
        values = {key: getattr(args, key) for key in (
            "gateway_schedd", "origin_collector", "user", "origin_schedd", "route", "gateway_route", "opt_in",
            "constraint", "max_jobs", "max_idle_jobs", "idle_timeout", "held_timeout", "token_dir",
            "gateway_user", "gateway_domain", "private_network", "router_name", "origin_router_name")
            if getattr(args, key) is not None}
        if args.ports is not None:
            values["port_low"], values["port_high"] = parse_ports(args.ports)
        pull = settings(**values)
        output_dir = Path(args.output_dir) if args.output_dir is not None else None
        if output_dir is not None:
            for path in write(pull, output_dir, force=args.force):
                print(f"wrote {path}")
        else:
            for name, text in render(pull).items():
                sys.stdout.write(f"# ===== {name} =====\n{text}\n")
    except (PullConfigError, OSError) as exc:
        print(f"hpcpull pull-config: {_one_line(exc)}", file=sys.stderr)
        return 2
    sys.stderr.write(next_steps(pull, output_dir))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from hpcpull.admin.demo import run_demo

    return run_demo(Path(args.workdir))


# Subcommands that live in their own module (add_arguments(parser) and run(args)).
TOOL_COMMANDS = {
    "status": ("hpcpull.admin.status.command", "all hpcpull jobs per route and state, or one job's whole story"),
    "doctor": ("hpcpull.admin.doctor.command",
               "check the gateway (config, hooks, routes, templates, scratch, batch system)"),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="hpcpull", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="print the batch script a job ad gets on a route")
    render.add_argument("job_ad", help="job ad file in old ClassAd syntax (condor_q -l), or -")
    render.add_argument("route", help="route name (JOB_ROUTER_ROUTE_<name>)")
    render.add_argument("--job", metavar="CLUSTER.PROC", help="the job to use when JOB_AD holds several ads")
    render.set_defaults(func=_render)
    info = sub.add_parser(
        "route-info", help="explain which route condor_job_router would choose for a job, and why not others",
        description="Evaluate the router's candidate test and every route's REQUIREMENTS for a job. "
                    "Exit status: 0 a route matches, 1 none does, 2 bad input.")
    info.add_argument("job_ad", help="job ad file in old ClassAd syntax, condor_q -l output, or -")
    info.add_argument("--job", metavar="CLUSTER.PROC", help="the job to use when JOB_AD holds several ads")
    info.add_argument("--route", metavar="NAME", help="only report this route")
    info.set_defaults(func=_route_info)
    pull = sub.add_parser(
        "pull-config", help="generate the origin's and the gateway's config files for pull mode",
        description="Generate 70-hpcpull-origin.conf (the origin access point's route to the gateway) and "
                    "71-hpcpull-gateway-ccb.conf (the gateway's schedd reached through CCB, and its route "
                    "into the batch system), then print the remaining steps (tokens, firewall) on stderr. "
                    "Exit status: 0 done, 2 a value was refused.")
    pull.add_argument("--gateway-schedd", required=True, metavar="NAME",
                      help="the gateway schedd's Name, e.g. gateway@gw.example.org")
    pull.add_argument("--origin-collector", required=True, metavar="HOST:PORT",
                      help="the origin pool's collector (also its CCB server)")
    pull.add_argument("--user", required=True, metavar="NAME",
                      help="origin account whose jobs go to the gateway (the C-GAHP runs as it)")
    pull.add_argument("--origin-schedd", metavar="NAME",
                      help="the origin schedd's Name: the gateway then routes only jobs from it "
                           "(default: any job that arrived by HTCondor-C)")
    pull.add_argument("--route", metavar="NAME", help="the origin's route (default ToGateway)")
    pull.add_argument("--gateway-route", metavar="NAME", help="the gateway's route (default Pull)")
    choose = pull.add_mutually_exclusive_group()
    choose.add_argument("--opt-in", metavar="ATTR",
                        help="job attribute submitters set to true to opt in (default WantGateway)")
    choose.add_argument("--constraint", metavar="EXPR", help="route jobs for which this ClassAd expression holds")
    pull.add_argument("--max-jobs", metavar="N", help="copies at the gateway, and batch jobs (default 100)")
    pull.add_argument("--max-idle-jobs", metavar="N", help="of those, not running (default 50)")
    pull.add_argument("--idle-timeout", metavar="SECONDS",
                      help="a copy idle this long at the gateway is removed and its job returns (default 21600)")
    pull.add_argument("--held-timeout", metavar="SECONDS",
                      help="the same for a copy held at the gateway (default 600)")
    pull.add_argument("--ports", metavar="LOW-HIGH",
                      help="origin ports the gateway connects back to, the C-GAHP's listeners (default 9600-9699)")
    pull.add_argument("--token-dir", metavar="DIR",
                      help="where the origin's C-GAHP finds the gateway's token (default /home/USER/.condor/tokens.d)")
    pull.add_argument("--gateway-user", metavar="NAME", help="gateway account the token maps to (default: --user)")
    pull.add_argument("--gateway-domain", metavar="DOMAIN",
                      help="the gateway's UID_DOMAIN, for the token's identity (default: asked on the gateway)")
    pull.add_argument("--private-network-name", dest="private_network", metavar="NAME",
                      help="PRIVATE_NETWORK_NAME of the gateway's own network (default gw.internal)")
    pull.add_argument("--gateway-router-name", dest="router_name", metavar="NAME",
                      help="the gateway's JOB_ROUTER_NAME (default hpcpull)")
    pull.add_argument("--origin-router-name", metavar="NAME",
                      help="the origin's JOB_ROUTER_NAME (default jobrouter); must differ from the gateway's")
    pull.add_argument("--output-dir", metavar="DIR", help="write both files there (default: print them)")
    pull.add_argument("--force", action="store_true", help="replace files that exist in --output-dir")
    pull.set_defaults(func=_pull_config)
    for name, (module_name, help_text) in TOOL_COMMANDS.items():
        module = importlib.import_module(module_name)
        tool = sub.add_parser(name, help=help_text, description=module.__doc__.split("\n\n")[0])
        module.add_arguments(tool)
        tool.set_defaults(func=module.run)
    demo = sub.add_parser("demo", help="run a sample job through the hooks into Slurm (needs SLURM_CONF)")
    demo.add_argument("--workdir", default="demo-output", help="where the demo writes (default: %(default)s)")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
