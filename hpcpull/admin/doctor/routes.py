"""The job router and the routes hpcpull serves: the router runs, the routes parse and
would run routed copies through hpcpull, and each route's template renders a sample job
into a script bash can parse."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Optional

from hpcpull.admin.doctor.findings import FAIL, OK, WARN, DoctorBase, knob_list, tail
from hpcpull.config import RouteSettings
from hpcpull.errors import ConfigError, JobRejected
from hpcpull.state.accounts import current_user

PROBE_FILE = "doctor-probe"  # what the sample job writes where it runs (probe.py)


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


class RouteChecks(DoctorBase):
    """3. The router and the routes, 4. their templates."""

    def check_router(self) -> None:
        daemons = [w.upper() for w in knob_list(self.lookup("DAEMON_LIST"))]
        if "JOB_ROUTER" in daemons:
            self.add(OK, "router", f"JOB_ROUTER is in DAEMON_LIST ({' '.join(daemons)})")
        else:
            self.add(FAIL, "router", f"JOB_ROUTER is not in DAEMON_LIST ({' '.join(daemons) or 'empty'}): "
                                     "no job router runs on this host",
                     "DAEMON_LIST = $(DAEMON_LIST) JOB_ROUTER (50-hpcpull.conf does: is it included?), "
                     "then condor_restart")
        names = knob_list(self.lookup("JOB_ROUTER_ROUTE_NAMES"))
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

        owner = current_user() if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", current_user()) else "nobody"
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
                                                   f"parse: {tail(proc.stderr)}",
                         f"correct the template; `hpcpull render JOB_AD {name}` shows the script")
                continue
            self.rendered.add(name)
            self.add(OK, f"template.{name}", f"{route.template_name}{where} renders a sample job "
                                             f"({len(script.splitlines())} lines, bash -n passes)")
