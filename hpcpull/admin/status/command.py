"""`hpcpull status [JOB]`: what the gateway is doing with its jobs, for people and scripts.

Modelled on HTCondor-CE's tools: without an argument it is ``condor_ce_router_q`` (one line
per routed job, then counts per route and state, as ``condor_router_q -S`` prints
``JOBS ST Route``; htcondor/htcondor src/condor_job_router/condor_router_q); with a job it
is ``condor_ce_trace`` turned backwards: the whole story of one job, from routing to
cleanup, and where to look next.

The jobs are gathered by survey.py (from files only: the job directories, the gateway
log, the status snapshots), listed by table.py, and one job's story told by story.py.

Only ``--live`` runs a batch command (one ``job_status()``): ``status`` must stay cheap
enough to run in a loop on a busy gateway.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from hpcpull.admin.status.story import story, story_text
from hpcpull.admin.status.survey import find_job, live_status, select, survey
from hpcpull.admin.status.table import list_json, list_text

PROG = "hpcpull status"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", nargs="?", metavar="JOB",
                        help="a source job id (1234.0), routed copy id or batch job id: tell this job's story")
    parser.add_argument("--route", metavar="NAME", help="only jobs on this route")
    parser.add_argument("--owner", metavar="NAME", help="only jobs of this user")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of the text")
    parser.add_argument("--live", action="store_true",
                        help="with JOB: ask the batch system about the job now (one command) instead of "
                             "using the newest status snapshot")


def run(args: argparse.Namespace) -> int:
    from hpcpull.config import Config
    from hpcpull.errors import ConfigError

    try:
        config = Config()
        s = survey(config)
    except ConfigError as exc:
        print(f"{PROG}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if args.job is None:
        jobs = select(s.jobs, args.route, args.owner)
        if args.json:
            json.dump(list_json(s, jobs), sys.stdout, indent=1, sort_keys=True)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(list_text(s, jobs, args.route))
        return 0
    job = find_job(s, args.job.strip())
    if job is not None and (args.route or args.owner) and job not in select(s.jobs, args.route, args.owner):
        job = None
    if job is None:
        places = ", ".join(str(r) for r in s.roots) or "no scratch root"
        print(f"{PROG}: no hpcpull job {args.job!r} (not a source, routed copy or batch job id in {places} "
              f"or in the gateway log {s.log_path})", file=sys.stderr)
        return 1
    if args.live:
        live_status(job, config)
    data = story(s, job)
    if args.json:
        json.dump(data, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(story_text(s, job, data))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Show the site status and every hpcpull job (source id, routed copy, route, owner, batch "
                    "job, its state in the batch system, hpcpull's phase), or one job's whole story. "
                    "Exit status: 0 shown, 1 unknown job, 2 configuration error.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
