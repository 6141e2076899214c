"""UPDATE's shell front end (hooks/hpcpull-update) and the poller's status index behind it.

The front end is run for real (/bin/sh and the system awk) with a stand-in full hook beside
it that records what it got: the front end must stay silent only when the index is current
and agrees with the copy's JobStatus, and hand the unchanged stdin to the full hook otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from hpcpull.lrms.base import BatchJobStatus, BatchState
from hpcpull.state import fast_index

REPO = Path(__file__).resolve().parents[2]
# A stand-in for hpcpull-update-full that goes through hpcpull's own hook protocol (so that
# hpcpull-hook-batch can have it serve its queue), records the input it got, and reports a
# change; the batch job id "fail" makes it fail.
FULL_HOOK = """#!{python}
import sys
sys.path.insert(0, {repo!r})
from hpcpull.router.protocol import HookResult, _main

def hook(text, config):
    with open({recorded!r}, "w") as handle:
        handle.write(text)
    if 'HpcPullBatchJobId = "fail"' in text:
        return HookResult("", 1, ["oops"])
    return HookResult("JobStatus = 4\\n", 0, [])

sys.exit(_main("update", hook))
"""


@pytest.fixture
def front_end(tmp_path: Path, condor_config: Callable[..., Path]):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("hpcpull-update", "hpcpull-hook-batch", "hpcpull-hook-slot"):
        shutil.copy(REPO / "hooks" / name, bindir / name)
    full = bindir / "hpcpull-update-full"
    full.write_text(FULL_HOOK.format(python=sys.executable, repo=str(REPO),
                                     recorded=str(full.with_name("hpcpull-update-full.stdin"))))
    full.chmod(0o755)
    (tmp_path / "slots").mkdir()
    env = {"PATH": "/usr/bin:/bin", "HPCPULL_HOOK_SLOT_DIR": str(tmp_path / "slots"),
           "CONDOR_CONFIG": str(condor_config({}))}
    index = tmp_path / "slurm-index"
    index.mkdir()
    (index / "valid-until").write_text(f"{int(time.time()) + 60} {int(time.time()) - 5}\n")
    (index / "42").write_text("2\n")

    def run(ad: str):
        stdin = full.with_name("hpcpull-update-full.stdin")
        stdin.unlink(missing_ok=True)
        proc = subprocess.run([str(bindir / "hpcpull-update")], input=ad, capture_output=True, text=True,
                              timeout=30, env=env)
        got = stdin.read_text() if stdin.exists() else None
        return proc, got
    run.index = index  # type: ignore[attr-defined]
    return run


def ad(index: Path, status: int = 2, batch_id: str = "42", check_at: Optional[int] = 0,
       **extra: Optional[str]) -> str:
    lines = {
        "ClusterId": "7", "JobStatus": str(status), "HpcPullBatchJobId": f'"{batch_id}"',
        "HpcPullFastIndex": f'"{index}"', "HpcPullFullCheckAt": None if check_at is None else str(check_at),
        "Owner": '"alice"', **extra,
    }
    return "".join(f"{k} = {v}\n" for k, v in sorted(lines.items()) if v is not None)


def test_silent_when_the_index_agrees(front_end) -> None:
    proc, full_stdin = front_end(ad(front_end.index))
    assert (proc.returncode, proc.stdout, proc.stderr, full_stdin) == (0, "", "", None)


@pytest.mark.parametrize("change", [
    "status differs", "index entry missing", "index stale", "index invalidated", "deadline passed",
    "no index attribute", "no batch id", "held copy", "climbing id", "climbing index", "no check attribute",
])
def test_anything_else_runs_the_full_hook_with_the_same_stdin(front_end, change: str) -> None:
    index = front_end.index
    text = ad(index)
    if change == "status differs":
        text = ad(index, status=1)
    elif change == "index entry missing":
        (index / "42").unlink()
    elif change == "index stale":
        (index / "valid-until").write_text(f"{int(time.time()) - 1} {int(time.time()) - 30}\n")
    elif change == "index invalidated":
        (index / "valid-until").write_text("0 0\n")
    elif change == "deadline passed":
        text = ad(index, check_at=int(time.time()) - 1)
    elif change == "no index attribute":
        text = ad(index, HpcPullFastIndex=None)
    elif change == "no batch id":
        text = ad(index, HpcPullBatchJobId=None)
    elif change == "held copy":
        text = ad(index, status=5)
    elif change == "climbing id":
        (index.parent / "escape").write_text("2\n")
        text = ad(index, batch_id="../escape")
    elif change == "climbing index":
        text = ad(index, HpcPullFastIndex=f'"{index}/../slurm-index"')
    elif change == "no check attribute":
        text = ad(index, HpcPullFullCheckAt=None)
    proc, full_stdin = front_end(text)
    assert full_stdin == text
    assert proc.stdout == "JobStatus = 4\n" and proc.returncode == 0


def test_a_job_newer_than_the_snapshot_is_taken_as_waiting_while_idle(front_end) -> None:
    index = front_end.index
    taken_at = int((index / "valid-until").read_text().split()[1])
    new = ad(index, status=1, batch_id="43", HpcPullSubmittedAt=str(taken_at + 1))
    assert front_end(new)[1] is None  # silent
    for text in (ad(index, status=1, batch_id="43", HpcPullSubmittedAt=str(taken_at - 1)),  # should be listed
                 ad(index, status=2, batch_id="43", HpcPullSubmittedAt=str(taken_at + 1)),  # the copy says running
                 ad(index, status=1, batch_id="43")):                                       # no submission time
        assert front_end(text)[1] == text


def test_a_future_deadline_keeps_it_silent(front_end) -> None:
    proc, full_stdin = front_end(ad(front_end.index, check_at=int(time.time()) + 100))
    assert (proc.stdout, full_stdin) == ("", None)


def test_the_full_hook_answers_through_the_hook_queue(front_end) -> None:
    """Its stdout, its exit code and its one line on stderr are the front end's."""
    proc, _ = front_end(ad(front_end.index, batch_id="fail"))
    assert (proc.returncode, proc.stdout) == (1, "") and "oops" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    proc, _ = front_end(ad(front_end.index, status=2, batch_id="43"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "JobStatus = 4\n", "")


def _status(state: BatchState, name: str = "hpcpull-Slurm-1.0-abc") -> BatchJobStatus:
    return BatchJobStatus(job_id="x", state=state, native_state=state.value, name=name)


def test_index_holds_waiting_and_running_jobs_only_and_rewrites_only_changes(tmp_path: Path) -> None:
    directory = tmp_path / "slurm-index"
    jobs = {"1": _status(BatchState.PENDING), "2": _status(BatchState.RUNNING),
            "3": _status(BatchState.COMPLETED), "4": _status(BatchState.PENDING), "bad/id": _status(BatchState.RUNNING)}
    changed = fast_index.write_index(directory, jobs, time.time(), time.time() + 30, is_ours=["1", "2", "3", "bad/id"])
    assert changed == 2
    assert (directory / "1").read_text() == "1\n" and (directory / "2").read_text() == "2\n"
    assert not (directory / "3").exists() and not (directory / "4").exists()  # ended; not hpcpull's
    assert oct(directory.stat().st_mode & 0o777) == "0o755"
    before = (directory / "1").stat().st_ino
    jobs["2"] = _status(BatchState.COMPLETED)
    assert fast_index.write_index(directory, jobs, time.time(), time.time() + 30, is_ours=["1", "2"]) == 1
    assert not (directory / "2").exists()
    assert (directory / "1").stat().st_ino == before  # unchanged entries are not rewritten
    fast_index.invalidate(directory)
    assert (directory / "valid-until").read_text() == "0 0\n"


def test_index_is_trusted_only_if_no_other_user_can_change_it(tmp_path: Path) -> None:
    base = tmp_path / "status"
    base.mkdir()
    base.chmod(0o1777)  # as the admin guide makes the status directory: sticky, like /tmp
    directory = base / "slurm-index"
    directory.mkdir(mode=0o755)
    me = {os.getuid()}
    assert fast_index.trusted(directory, me)
    assert not fast_index.trusted(directory, {os.getuid() + 12345})  # someone else's
    directory.chmod(0o775)
    assert not fast_index.trusted(directory, me)  # group-writable
    directory.chmod(0o755)
    base.chmod(0o777)
    assert not fast_index.trusted(directory, me)  # a world-writable, non-sticky parent
    base.chmod(0o1777)
    link = tmp_path / "link"
    link.symlink_to(base)
    assert not fast_index.trusted(link / "slurm-index", me)
    assert not fast_index.trusted(Path(str(base) + "/odd name"), me)


def test_full_check_at() -> None:
    now = 1000.0
    assert fast_index.full_check_at(0, now, None, False) == 0
    assert fast_index.full_check_at(0, now, 1500.0, False) == 1500
    assert fast_index.full_check_at(0, now, None, True) == 1000 + fast_index.CREDENTIAL_CHECK_S
    assert fast_index.full_check_at(1200, now, None, True) == 1200  # not yet due: kept
    assert fast_index.full_check_at(1200, now, 1100.0, True) == 1100


def test_hook_slots_bound_how_many_python_hooks_run_at_once(tmp_path: Path) -> None:
    """hooks/hpcpull-hook-slot: at most 2 per CPU at once, each with its own stdin, its exit code."""
    slots = 2 * os.cpu_count()  # what nproc says on this machine
    hook = tmp_path / "hook"
    hook.write_text(f"""#!/bin/sh
read line
echo "start $(date +%s.%N)" >> {tmp_path}/events
sleep 0.4
echo "end $(date +%s.%N)" >> {tmp_path}/events
echo "got $line"
exit 3
""")
    hook.chmod(0o755)
    runs = [subprocess.Popen([str(REPO / "hooks" / "hpcpull-hook-slot"), str(hook)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={"PATH": "/usr/bin:/bin", "HPCPULL_HOOK_SLOT_DIR": str(tmp_path)})
            for _ in range(3 * slots)]
    for i, run in enumerate(runs):  # every stdin first: a hook holding a slot reads its own
        assert run.stdin is not None
        run.stdin.write(f"job {i}\n")
        run.stdin.close()
    outputs = []
    for run in runs:
        assert run.stdout is not None
        outputs.append((run.stdout.read(), run.wait(timeout=60)))
    assert [out for out, _ in outputs] == [f"got job {i}\n" for i in range(len(runs))]
    assert {run.returncode for run in runs} == {3}
    lines = (tmp_path / "events").read_text().splitlines()
    events = sorted((float(t), kind) for kind, t in (line.split() for line in lines))
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert 2 <= peak <= slots, peak


def test_a_hook_waiting_for_its_input_holds_no_slot(tmp_path: Path) -> None:
    """The router writes a hook's stdin from its event loop, minutes late after a poll that
    started thousands of hooks: hooks whose input is still missing must not keep the slots
    from the hooks whose input is there."""
    slots = 2 * os.cpu_count()
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\nread line\necho \"got $line\"\n")
    hook.chmod(0o755)
    inputs = tmp_path / "tmp"
    inputs.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HPCPULL_HOOK_SLOT_DIR": str(tmp_path), "TMPDIR": str(inputs)}

    def start() -> subprocess.Popen:
        return subprocess.Popen([str(REPO / "hooks" / "hpcpull-hook-slot"), str(hook)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env)
    waiting = [start() for _ in range(slots)]  # started first, their input not yet written
    time.sleep(1)
    ready = [start() for _ in range(slots)]
    try:
        outputs = [run.communicate(f"job {i}\n", timeout=30)[0] for i, run in enumerate(ready)]
    finally:
        late = [run.communicate("late\n", timeout=30)[0] for run in waiting]
    assert outputs == [f"got job {i}\n" for i in range(slots)]
    assert late == ["got late\n"] * slots
    assert [run.returncode for run in waiting + ready] == [0] * (2 * slots)
    assert list(inputs.iterdir()) == [], "the inputs' temporary files are removed"


def test_a_hook_killed_while_waiting_for_its_input_leaves_no_file(tmp_path: Path) -> None:
    """The router kills its hooks when it stops: the file that keeps a hook's input is
    unlinked as soon as it is open, so nothing is left in TMPDIR."""
    inputs = tmp_path / "tmp"
    inputs.mkdir()
    run = subprocess.Popen([str(REPO / "hooks" / "hpcpull-hook-slot"), "/bin/cat"], stdin=subprocess.PIPE,
                           env={"PATH": "/usr/bin:/bin", "HPCPULL_HOOK_SLOT_DIR": str(tmp_path),
                                "TMPDIR": str(inputs)})
    time.sleep(1)
    assert run.poll() is None, "it waits for its input"
    run.kill()
    run.wait(timeout=10)
    assert list(inputs.iterdir()) == []


def test_the_pollers_rule_agrees_with_the_front_end(front_end) -> None:
    """fast_index.front_end_passes (the poller's judgement, state/wake.py) says "silent" exactly
    when the real front end, over the same index, prints nothing and starts no full hook."""
    index = front_end.index
    now = int(time.time())
    taken_at = now - 5
    (index / "valid-until").write_text(f"{now + 60} {taken_at}\n")
    entries = {"42": 2, "43": 1}
    for batch_id, value in entries.items():
        (index / batch_id).write_text(f"{value}\n")
    cases = 0
    for status in (1, 2, 5):
        for batch_id in ("42", "43", "44"):
            for check_at in (None, 0, now - 1, now + 100):
                for submitted in (None, taken_at - 1, taken_at):
                    text = ad(index, status=status, batch_id=batch_id, check_at=check_at,
                              HpcPullSubmittedAt=None if submitted is None else str(submitted))
                    silent = front_end(text)[1] is None
                    judged = fast_index.front_end_passes(status, batch_id, check_at, submitted, entries, taken_at,
                                                         time.time())
                    assert judged == silent, (status, batch_id, check_at, submitted)
                    cases += silent
    assert cases > 10, "some cases are silent, others not"
