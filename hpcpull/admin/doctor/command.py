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

Exit status 0 when nothing FAILs (WARN does not fail), 1 otherwise.  The checks live in
this package grouped by what they look at (configuration.py, hooks.py, routes.py,
directories.py, batch_system.py, probe.py); ``Doctor`` below runs them in order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Any, Optional, Sequence

from hpcpull.admin.doctor import owner_access
from hpcpull.admin.doctor.batch_system import BatchSystemChecks
from hpcpull.admin.doctor.configuration import KnobChecks, check_config_loads
from hpcpull.admin.doctor.directories import DirectoryChecks
from hpcpull.admin.doctor.findings import FAIL, OK, WARN, Check
from hpcpull.admin.doctor.hooks import HookChecks
from hpcpull.admin.doctor.probe import ProbeChecks
from hpcpull.admin.doctor.routes import RouteChecks
from hpcpull.config import Config
from hpcpull.state.accounts import current_user


class Doctor(KnobChecks, HookChecks, RouteChecks, DirectoryChecks, ProbeChecks, BatchSystemChecks):
    """Runs the checks against one configuration; ``results`` collects what was found."""

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

    def check_user(self) -> None:
        """9. Who runs the doctor: only root sees what the job owners and condor can reach."""
        user = current_user()
        if os.geteuid() == 0:
            self.add(OK, "user", "running as root")
        else:
            self.add(WARN, "user", f"running as {user}, not root: hooks run as the job owners and the poller as "
                                   "condor, so checks of what they can reach are partial",
                     "run hpcpull doctor as root")


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
                             f"(default: {owner_access.DEFAULT_HOOK_USER}; needs root)")


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
