"""The demo: one ordinary HTCondor job through the real hooks into a real Slurm and back.

Run by ``hpcpull demo`` (scripts/demo.sh starts a private Slurm first).  The job router
and schedd are the simulation in hpcpull.routersim; the hooks, the batch script, sbatch,
squeue and the job itself are real.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import classad2

from .routersim import RouterSim, hook_environment, write_gateway_config

STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held"}

JOB_SCRIPT = """\
#!/bin/bash
# A user's job: reads its input, writes results, prints to stdout and stderr.
echo "running on $(hostname) as $(id -un), in $PWD"
echo "arguments: $# -> $(printf '[%s] ' "$@")"
echo "GREETING=$GREETING"
mkdir -p results
wc -l < data/numbers.txt > results/count.txt
sort -n data/numbers.txt | tail -n 1 > biggest.txt
echo "this goes to stderr" >&2
exit 0
"""

SUBMIT_AD = """\
Cmd = "{iwd}/analyse.sh"
Arguments = "--label 'two words' 'it''s quoted'"
Environment = "GREETING='hello from HTCondor'"
Iwd = "{iwd}"
Out = "analyse.out"
Err = "analyse.err"
In = "/dev/null"
TransferInput = "data"
TransferOutput = "results,biggest.txt"
TransferOutputRemaps = "biggest.txt = answers/biggest.txt"
RequestCpus = 2
RequestMemory = 256
BatchRuntime = 600
Owner = "{owner}"
JobUniverse = 5
WantHpc = true
ShouldTransferFiles = "YES"
WhenToTransferOutput = "ON_EXIT"
"""


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(workdir: Path, timeout: float = 120.0) -> int:
    if not os.environ.get("SLURM_CONF"):
        _say("hpcpull demo: SLURM_CONF is not set; run scripts/demo.sh, which starts a private Slurm")
        return 2
    workdir = workdir.resolve()
    submit_dir = workdir / "submit"
    (submit_dir / "data").mkdir(parents=True, exist_ok=True)
    (submit_dir / "data" / "numbers.txt").write_text("\n".join(str(n) for n in (7, 42, 3, 19)) + "\n")
    script = submit_dir / "analyse.sh"
    script.write_text(JOB_SCRIPT)
    script.chmod(0o755)
    scratch = workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    scratch.chmod(0o1777)
    config = write_gateway_config(
        workdir / "gateway",
        routes={"Slurm": "REQUIREMENTS WantHpc =?= true\nUNIVERSE VANILLA\nSET Requirements false"},
        knobs={
            "HPCPULL_SCRATCH_ROOT": str(scratch),
            "HPCPULL_ROUTE_Slurm_PARTITION": "debug",
            "HPCPULL_STATUS_CACHE_DIR": str(workdir / "gateway" / "status"),
            "HPCPULL_STATUS_MAX_AGE": "2",
            "HPCPULL_SCHEDD_DOUBLE": str(workdir / "gateway" / "schedd-double.jsonl"),
            "HPCPULL_LRMS_ENVIRONMENT": f"SLURM_CONF={os.environ['SLURM_CONF']}",
        },
    )
    owner = os.environ.get("USER") or "root"
    router = RouterSim(env=hook_environment(config), workdir=workdir / "gateway")
    ad = classad2.parseOne(SUBMIT_AD.format(iwd=submit_dir, owner=owner), classad2.ParserType.Old)
    source = router.submit(ad)
    _say(f"== 1. A user submits job {source} (condor_submit), opted in with +WantHpc = true")
    _say(textwrap.indent(SUBMIT_AD.format(iwd=submit_dir, owner=owner), "   "))

    _say("== 2. The job router picks route 'Slurm' and runs TRANSLATE (stage in, render)")
    routed = router.route(source, "Slurm")
    translate = router.calls[-1]
    if not routed.copy_id:
        _say(f"TRANSLATE failed (exit {translate.exit_code}): {translate.stderr.strip()}")
        return 1
    copy = router.jobs[routed.copy_id]
    job_dir = Path(copy["HpcPullJobDir"])
    _say(f"   routed copy {routed.copy_id}, job directory {job_dir}")
    _say(f"   staged: {sorted(p.name for p in job_dir.iterdir())}")
    _say(f"== 3. The rendered batch script ({copy['HpcPullScript']})")
    _say(textwrap.indent(Path(copy["HpcPullScript"]).read_text(), "   | ", lambda line: True))

    _say("== 4. UPDATE_JOB_INFO submits it once, then follows it (status transitions)")
    last = None
    start = time.monotonic()
    while router.in_queue(source) and time.monotonic() - start < timeout:
        router.poll()
        src = router.jobs.get(source)
        cp = router.jobs.get(routed.copy_id)
        now = (src.get("JobStatus") if src else "gone", cp.get("JobStatus") if cp else "gone")
        if now != last:
            batch = (cp or src or {}).get("HpcPullBatchJobId", "-") if (cp or src) else "-"
            _say(f"   t={time.monotonic() - start:5.1f}s  source: {STATUS.get(now[0], now[0]):9}"
                 f"  copy: {STATUS.get(now[1], now[1]):9}  slurm job: {batch}")
            last = now
        time.sleep(0.5)
    if router.in_queue(source):
        _say("the job did not finish in time")
        return 1

    _say("== 5. The user's log (events the router wrote for the source job)")
    for event in router.events[source]:
        _say(f"   {event}")
    final = next(c for c in reversed(router.calls) if c.hook == "finalize")
    _say(f"== 6. FINALIZE returned the outputs; it printed: {final.stdout.strip()}")
    for path in sorted(submit_dir.rglob("*")):
        if path.is_file() and path.parent.name != "data" and path.name != "analyse.sh":
            _say(f"   {path.relative_to(submit_dir)}: {path.read_text().strip()!r}")
    _say(f"== 7. CLEANUP removed the job directory: {'gone' if not job_dir.exists() else 'still there'}")
    return 0
