"""`hpcpull`: the admin tool (render a job's batch script, run the demo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def _render(args: argparse.Namespace) -> int:
    """Print the batch script a job would get on a route, without submitting anything."""
    from .classads import parse_old_ad
    from .config import Config
    from .errors import HpcPullError
    from .jobdir import job_dir_for
    from .render import render_batch_script

    text = Path(args.job_ad).read_text() if args.job_ad != "-" else sys.stdin.read()
    try:
        ad = parse_old_ad(text)
        route = Config().route(args.route)
        owner = ad.get("Owner") or "nobody"
        job = job_dir_for(route.scratch_root, owner, int(ad.get("ClusterId") or 0), int(ad.get("ProcId") or 0))
        sys.stdout.write(render_batch_script(ad, route, job.path))
    except (HpcPullError, ValueError) as exc:
        print(f"hpcpull render: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.workdir))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="hpcpull", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="print the batch script a job ad gets on a route")
    render.add_argument("job_ad", help="job ad file in old ClassAd syntax (condor_q -l), or -")
    render.add_argument("route", help="route name (JOB_ROUTER_ROUTE_<name>)")
    render.set_defaults(func=_render)
    demo = sub.add_parser("demo", help="run a sample job through the hooks into Slurm (needs SLURM_CONF)")
    demo.add_argument("--workdir", default="demo-output", help="where the demo writes (default: %(default)s)")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
