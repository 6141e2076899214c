"""hooks/hpcpull-hook-batch and hpcpull/router/hook_queue.py: the calls of one user that
arrive together are served by one Python process, each answered as if it ran alone.

The front end is run for real (/bin/sh, flock, cat) in front of a stand-in ``-full`` hook
that goes through hpcpull's own hook protocol (router/protocol.py ``_main``) and records
which process served which call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from hpcpull.errors import ConfigError
from hpcpull.router.hook_queue import check_queue, serve
from hpcpull.router.protocol import HookResult

REPO = Path(__file__).resolve().parents[2]
STAND_IN = """#!{python}
import os, sys, time
sys.path.insert(0, {repo!r})
from hpcpull.errors import ConfigError
from hpcpull.router.classads import MalformedInput
from hpcpull.router.protocol import HookResult, _main

def hook(text, config):
    word = text.strip()
    with open(os.environ["SERVED"], "a") as log:
        log.write(f"{{os.getpid()}} {{word}}\\n")
    if word == "fail":
        raise ConfigError("the batch system did not answer")
    if word == "malformed":
        raise MalformedInput("no JobUniverse")
    if word.startswith("slow"):
        time.sleep(2)
    return HookResult(f'Echo = "{{word}}"\\n', 0, [f"served {{word}}"])

sys.exit(_main("translate", hook))
"""


@pytest.fixture
def gateway(tmp_path: Path, condor_config: Callable[..., Path]):
    """The front end and the stand-in in one bin/, and how to start a call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("hpcpull-hook-batch", "hpcpull-hook-slot"):
        (bin_dir / name).write_bytes((REPO / "hooks" / name).read_bytes())
        (bin_dir / name).chmod(0o755)
    full = bin_dir / "hpcpull-translate-full"
    full.write_text(STAND_IN.format(python=sys.executable, repo=str(REPO)))
    full.chmod(0o755)
    slots = tmp_path / "slots"
    slots.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HPCPULL_HOOK_SLOT_DIR": str(slots), "SERVED": str(tmp_path / "served"),
           "CONDOR_CONFIG": str(condor_config({}))}

    def start(word: str) -> subprocess.Popen:
        call = subprocess.Popen([str(bin_dir / "hpcpull-hook-batch"), str(full)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert call.stdin is not None
        call.stdin.write(f"{word}\n")
        call.stdin.close()
        return call

    class Gateway:
        queue = slots / f".hpcpull-translate-full.{os.geteuid()}"

        @staticmethod
        def call(word: str) -> subprocess.Popen:
            return start(word)

        @staticmethod
        def served() -> list[tuple[int, str]]:
            path = tmp_path / "served"
            if not path.exists():
                return []
            return [(int(pid), word) for pid, word in (line.split() for line in path.read_text().splitlines())]

    return Gateway


def finish(call: subprocess.Popen) -> tuple[str, str, int]:
    assert call.stdout is not None and call.stderr is not None
    out, err = call.stdout.read(), call.stderr.read()
    return out, err, call.wait(timeout=60)


def wait_for(predicate: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_calls_that_arrive_together_are_served_by_one_process(gateway) -> None:
    first = gateway.call("slow")
    wait_for(lambda: gateway.served() != [])  # its server is busy with it
    others = [gateway.call(f"job{i}") for i in range(10)]
    wait_for(lambda: len(list(gateway.queue.glob("*.ready"))) == 10)
    results = [finish(call) for call in [first, *others]]
    assert results == [(f'Echo = "{word}"\n', f"hpcpull translate: served {word}\n", 0)
                       for word in ["slow", *(f"job{i}" for i in range(10))]]
    served = gateway.served()
    assert sorted(word for _, word in served) == sorted(["slow", *(f"job{i}" for i in range(10))])
    assert len({pid for pid, _ in served}) == 1, served
    assert served[0][1] == "slow", "the call that started the server is served first"
    assert [p.name for p in gateway.queue.iterdir()] == [".lock"], "every answer was taken and removed"


def test_each_call_keeps_its_own_exit_code_and_error_line(gateway) -> None:
    calls = {word: gateway.call(word) for word in ("fail", "malformed", "fine")}
    results = {word: finish(call) for word, call in calls.items()}
    assert results["fail"] == ("", "hpcpull translate: the batch system did not answer\n", 1)
    assert results["malformed"] == ("", "hpcpull translate: malformed input: no JobUniverse\n", 2)
    assert results["fine"] == ('Echo = "fine"\n', "hpcpull translate: served fine\n", 0)


def test_a_killed_server_loses_no_call(gateway) -> None:
    """The server is killed while it serves: its own call runs again alone, the waiting
    ones are served by the next server."""
    first = gateway.call("slow-victim")
    wait_for(lambda: gateway.served() != [])
    waiting = [gateway.call(f"job{i}") for i in range(3)]
    wait_for(lambda: len(list(gateway.queue.glob("*.ready"))) == 3)
    os.kill(gateway.served()[0][0], signal.SIGKILL)
    results = [finish(call) for call in [first, *waiting]]
    assert [(out, code) for out, _, code in results] == [('Echo = "slow-victim"\n', 0),
                                                         *((f'Echo = "job{i}"\n', 0) for i in range(3))]
    words = [word for _, word in gateway.served()]
    assert words.count("slow-victim") == 2 and sorted(words[1:]) == sorted(["slow-victim", "job0", "job1", "job2"])
    assert [p.name for p in gateway.queue.iterdir()] == [".lock"]


def test_the_calls_of_gone_hooks_are_removed_unserved(gateway) -> None:
    gateway.queue.mkdir(mode=0o700)
    gone = subprocess.Popen(["true"])
    gone.wait()
    for suffix in ("req", "ready"):  # a hook the router killed after it queued its call
        (gateway.queue / f"{gone.pid}.{suffix}").write_text("never\n")
    (gateway.queue / f".{gone.pid}.out").write_text("half")  # a server killed while it wrote
    assert finish(gateway.call("now")) == ('Echo = "now"\n', "hpcpull translate: served now\n", 0)
    assert [word for _, word in gateway.served()] == ["now"]
    assert sorted(p.name for p in gateway.queue.iterdir()) == [".lock"]


def test_a_queue_directory_not_this_users_is_not_used(gateway, tmp_path: Path) -> None:
    """Someone else made the directory (here: a symlink to one elsewhere): the call runs
    alone through hpcpull-hook-slot and nothing is written there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o777)
    gateway.queue.symlink_to(elsewhere)
    assert finish(gateway.call("alone")) == ('Echo = "alone"\n', "hpcpull translate: served alone\n", 0)
    assert list(elsewhere.iterdir()) == []


def test_serve_refuses_a_queue_others_can_write(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    queue.mkdir()
    queue.chmod(0o777)

    def hook(text: str, config: object) -> HookResult:
        raise AssertionError("nothing may be served from it")

    with pytest.raises(ConfigError, match="that only it can write"):
        check_queue(queue)
    with pytest.raises(ConfigError):
        serve("translate", hook, queue, os.getpid(), config=None)  # type: ignore[arg-type]
