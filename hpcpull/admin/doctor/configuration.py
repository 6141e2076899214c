"""The configuration: HTCondor's files load, every HPCPULL_* knob resolves (globally and per
route), and no knob is set that hpcpull does not read (usually a typo)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Mapping, Optional

from hpcpull.admin.doctor.findings import FAIL, OK, WARN, Check, DoctorBase
from hpcpull.admin.doctor.hooks import HOOKS
from hpcpull.config import GLOBAL_KNOBS, ROUTE_KNOBS
from hpcpull.errors import ConfigError
from hpcpull.lrms.base import one_line
from hpcpull.router.cadence import SHARED_HOOKS

# Knobs hpcpull (or HTCondor, for keyword HPCPULL) reads besides ROUTE_KNOBS/GLOBAL_KNOBS.
OTHER_KNOBS = ("BIN_DIR", "ATTRS_TO_COPY", "HOOK_JOB_EXIT") + tuple(f"HOOK_{kind}" for _, kind in HOOKS) + tuple(
    f"RESTING_{knob}" for knob in ("ATTRS_TO_COPY", *(f"HOOK_{hook}" for hook in SHARED_HOOKS)))


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


class KnobChecks(DoctorBase):
    """1. The HPCPULL_* knobs."""

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
