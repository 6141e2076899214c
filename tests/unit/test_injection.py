"""No job-ad value can add a batch directive, end one early, or run shell code: every template.

A property test per batch system (at least 1,000 cases each) sets every job-controlled
string the templates use -- arguments, environment, streams, command, owner, queue,
project, GPU type, container image -- to hostile text (newlines followed by #SBATCH, #PBS,
#$ or #BSUB lines, quotes, ``$(...)``, backticks, CR, very long values) and checks that the
job is either refused cleanly (JobRejected) or rendered with exactly the directive lines of
a harmless job, one line per value, and the payload's argv intact.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcpull.config import SUPPORTED_LRMS, RouteSettings
from hpcpull.errors import JobRejected
from hpcpull.script.launchers import parse_launcher
from hpcpull.script.payload import join_v2
from hpcpull.script.render import render_batch_script
from tests.unit.test_render import JOB_DIR, exec_words, simple_ad

EXAMPLES = int(os.environ.get("HPCPULL_INJECTION_EXAMPLES", "1000"))
DIRECTIVE_PREFIX = {"slurm": "#SBATCH", "pbs": "#PBS", "pbspro": "#PBS", "sge": "#$", "lsf": "#BSUB"}
FRAGMENTS = [
    "\n#SBATCH --partition=evil", "\n#PBS -q evil", "\n#$ -q evil", "\n#BSUB -q evil", "\r#SBATCH -p x",
    "'", '"', "\\", "$(touch /tmp/pwned)", "`id`", "${IFS}", ";", "&&", "|", ">", "<", "#", " ", "\t",
    "\n", "\x1b[2J", "-", "--", "=", ":", "*", "?", "~", "!", "%", "é", "\u2028", "x" * 300,
]
# No NUL: a ClassAd string cannot hold one (classad2 cuts the string there); render.py
# refuses NUL anyway (test_render.py).
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")
HOSTILE = st.one_of(
    st.text(CHARS, max_size=30),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(CHARS, max_size=5), max_size=8).map("".join),
    st.integers(0, 5000).map(lambda n: "A" * n + "\n#SBATCH --mem=1"),
)
ENV_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
RouteFactory = Callable[..., RouteSettings]


# Any line a batch system could read as a directive: bsub also reads "# BSUB" and lines
# after the first command, and some parsers skip leading blanks.
ANY_DIRECTIVE = re.compile(r"\s*#\s*(SBATCH|PBS|\$|BSUB)")


def directive_lines(script: str, lrms: str) -> list[str]:
    lines = [line for line in script.split("\n") if ANY_DIRECTIVE.match(line)]
    assert all(line.startswith(DIRECTIVE_PREFIX[lrms]) for line in lines), lines  # only our own kind
    return lines


def payload_words(script: str) -> list[str]:
    return exec_words(script)


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
def test_hostile_values_never_inject(route_factory: RouteFactory, lrms: str) -> None:
    route = route_factory(
        lrms=lrms, partition="debug", account="a0", gpu_type="t0", extra_directives=["-m n"],
        launcher=parse_launcher("K", "apptainer"), container_image="/images/default.sif",
    )  # every directive has a route default, so an empty job value changes no line count
    safe = {"BatchQueue": "q0", "BatchProject": "p0", "HpcPullGPUType": "g0", "ContainerImage": "/i.sif"}
    baseline = render_batch_script(simple_ad(RequestGPUs=1, **safe), route, JOB_DIR)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(
        args=st.lists(HOSTILE, max_size=5),
        env=st.lists(st.tuples(ENV_NAME, HOSTILE), max_size=4),
        owner=HOSTILE, stream=HOSTILE, cmd=HOSTILE, queue=HOSTILE, project=HOSTILE, gpu_type=HOSTILE,
        image=HOSTILE,
    )
    def check(args: list[str], env: list[tuple[str, str]], owner: str, stream: str, cmd: str,
              queue: str, project: str, gpu_type: str, image: str) -> None:
        job = simple_ad(
            RequestGPUs=1,
            Arguments=join_v2(args),
            Environment=join_v2([f"{name}={value}" for name, value in env]),
            Owner=owner, GlobalJobId=owner, In=stream, Out=stream, Cmd=cmd or "x",
            BatchQueue=queue, BatchProject=project, HpcPullGPUType=gpu_type, ContainerImage=image,
        )
        try:
            script = render_batch_script(job, route, JOB_DIR)
        except JobRejected:
            return  # refused with a reason: nothing was written anywhere
        lines = directive_lines(script, lrms)
        assert len(lines) == len(directive_lines(baseline, lrms))
        for value in (queue, project, gpu_type):  # the values that may reach a directive line
            if value:  # a plain name (resources.py, "Names the job chooses")
                assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", value), value
        assert script.count("\n") == baseline.count("\n") + len({name for name, _ in env})
        assert all(" " <= c or c == "\n" for c in script)
        words = payload_words(script)
        assert words[:2] == ['"$hpcpull_apptainer"', "exec"]  # the site's apptainer, by its path
        assert words[2] == (image.strip() or "/images/default.sif")
        assert words[-len(args):] == args if args else True

    check()


def test_the_property_test_would_catch_an_injection(route_factory: RouteFactory, tmp_path: Path) -> None:
    """A template that writes a job value unquoted onto a directive line fails the check above."""
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm" / "job.sh.j2").write_text("#!/bin/bash\n#SBATCH --comment={{ job.Owner }}\n")
    route = route_factory(template_dirs=[tmp_path])
    script = render_batch_script(simple_ad(Owner="x\n#SBATCH --partition=evil"), route, JOB_DIR)
    assert len(directive_lines(script, "slurm")) == 2  # one more than the template has
