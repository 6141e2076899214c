"""hpcpull/node/launcher.py, run as on a compute node: a standalone script in a subprocess."""

from __future__ import annotations

import ast
import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest

import hpcpull.node.launcher

LAUNCHER = Path(hpcpull.node.launcher.__file__)
STATUS_KEYS = {"exit_code", "exit_signal", "start", "end", "wall_s", "user_cpu_s", "sys_cpu_s", "max_rss_kb"}


def old_pythons() -> list[str]:
    """Interpreters older than ours that happen to be installed (the launcher supports >= 3.6)."""
    found = {shutil.which(f"python3.{minor}") for minor in (6, 7, 8)}
    found.update(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[678].*/bin/python3")))
    return sorted(p for p in found if p and "/shims/" not in p)  # pyenv shims only dispatch


class Run:
    def __init__(self, job: Path, proc: subprocess.CompletedProcess) -> None:
        self.job = job
        self.returncode = proc.returncode
        self.launcher_stderr = proc.stderr

    def _json(self, name: str) -> Optional[dict[str, Any]]:
        path = self.job / ".hpcpull" / name
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def status(self) -> Optional[dict[str, Any]]:
        return self._json("exit_status")

    @property
    def started(self) -> Optional[dict[str, Any]]:
        return self._json("started")

    def read(self, name: str) -> str:
        return (self.job / ".hpcpull" / name).read_text()


def launcher_argv(
    command: list[str], stdin: str = "/dev/null", merge: bool = False, python: str = sys.executable
) -> list[str]:
    streams = ["--merge-stderr"] if merge else ["--stderr", ".hpcpull/stderr"]
    return [
        python, "-I", ".hpcpull/launcher.py", "--stdin", stdin, "--stdout", ".hpcpull/stdout", *streams,
        "--started", ".hpcpull/started", "--status", ".hpcpull/exit_status", "--", *command,
    ]


def job_dir(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    (job / ".hpcpull").mkdir(parents=True)
    shutil.copy(LAUNCHER, job / ".hpcpull" / "launcher.py")
    return job


def run(tmp_path: Path, command: list[str], env: Optional[dict[str, str]] = None, **kwargs: Any) -> Run:
    job = job_dir(tmp_path)
    environment = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "PBS_JOBID")}
    environment.update(env or {})
    proc = subprocess.run(
        launcher_argv(command, **kwargs), cwd=job, env=environment, capture_output=True, text=True, timeout=60
    )
    return Run(job, proc)


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def check_status_shape(status: dict[str, Any]) -> None:
    assert set(status) == STATUS_KEYS
    assert (status["exit_code"] is None) != (status["exit_signal"] is None)
    assert status["start"] <= status["end"]
    assert status["wall_s"] >= 0
    assert isinstance(status["max_rss_kb"], int)


def test_exit_code(tmp_path: Path) -> None:
    result = run(tmp_path, sh("exit 3"))
    assert result.returncode == 3
    status = result.status
    assert status is not None
    check_status_shape(status)
    assert (status["exit_code"], status["exit_signal"]) == (3, None)


def test_success(tmp_path: Path) -> None:
    result = run(tmp_path, ["/bin/true"])
    assert result.returncode == 0
    assert result.status is not None and result.status["exit_code"] == 0


def test_signal(tmp_path: Path) -> None:
    result = run(tmp_path, sh("kill -9 $$"))
    assert result.returncode == 128 + 9
    status = result.status
    assert status is not None
    check_status_shape(status)
    assert (status["exit_code"], status["exit_signal"]) == (None, 9)


def test_stdin_stdout_stderr(tmp_path: Path) -> None:
    job = job_dir(tmp_path)
    (job / "in put.txt").write_text("from stdin\n")
    proc = subprocess.run(
        launcher_argv(sh("cat; echo to-stderr >&2; echo more"), stdin="in put.txt"),
        cwd=job, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (job / ".hpcpull" / "stdout").read_text() == "from stdin\nmore\n"
    assert (job / ".hpcpull" / "stderr").read_text() == "to-stderr\n"
    assert proc.stdout == "" and proc.stderr == ""  # nothing leaks into the batch output


def test_merged_stderr_keeps_order(tmp_path: Path) -> None:
    result = run(tmp_path, sh("echo one; echo two >&2; echo three"), merge=True)
    assert result.returncode == 0
    assert result.read("stdout") == "one\ntwo\nthree\n"
    assert not (result.job / ".hpcpull" / "stderr").exists()


def test_output_files_are_truncated_and_0644(tmp_path: Path) -> None:
    job = job_dir(tmp_path)
    (job / ".hpcpull" / "stdout").write_text("old content that is longer\n")
    old_umask = os.umask(0o022)
    try:
        subprocess.run(launcher_argv(sh("echo new")), cwd=job, check=True, timeout=60)
    finally:
        os.umask(old_umask)
    assert (job / ".hpcpull" / "stdout").read_text() == "new\n"
    for name in ("stdout", "stderr"):
        assert stat.S_IMODE((job / ".hpcpull" / name).stat().st_mode) == 0o644


def test_usage_cpu(tmp_path: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3:\n    sum(range(50000))"
    result = run(tmp_path, [sys.executable, "-c", burn])
    status = result.status
    assert status is not None
    check_status_shape(status)
    assert status["user_cpu_s"] > 0.1
    assert status["sys_cpu_s"] >= 0
    assert status["wall_s"] >= 0.25


def test_usage_memory(tmp_path: Path) -> None:
    result = run(tmp_path, [sys.executable, "-c", "b = b'x' * (50 * 1024 * 1024)"])
    status = result.status
    assert status is not None
    assert status["max_rss_kb"] > 40000


def test_wall_time(tmp_path: Path) -> None:
    result = run(tmp_path, ["/bin/sleep", "0.3"])
    status = result.status
    assert status is not None
    assert 0.25 <= status["wall_s"] < 10
    assert 0.25 <= status["end"] - status["start"] < 10


def test_missing_executable(tmp_path: Path) -> None:
    result = run(tmp_path, ["./no-such-program", "arg"])
    assert result.returncode == 127
    status = result.status
    assert status is not None
    check_status_shape(status)
    assert (status["exit_code"], status["exit_signal"]) == (127, None)
    assert "./no-such-program: No such file or directory" in result.read("stderr")


def test_executable_without_permission(tmp_path: Path) -> None:
    job = job_dir(tmp_path)
    script = job / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    proc = subprocess.run(launcher_argv(["./job.sh"]), cwd=job, capture_output=True, timeout=60)
    if os.geteuid() == 0 and proc.returncode != 126:
        pytest.skip("root may execute files without execute permission on this system")
    assert proc.returncode == 126
    status = json.loads((job / ".hpcpull" / "exit_status").read_text())
    assert status["exit_code"] == 126
    assert "Permission denied" in (job / ".hpcpull" / "stderr").read_text()


def test_missing_stdin_fails_like_a_shell_redirection(tmp_path: Path) -> None:
    result = run(tmp_path, ["/bin/cat"], stdin="missing.txt")
    assert result.returncode == 1
    assert result.status is not None and result.status["exit_code"] == 1
    assert "missing.txt: No such file or directory" in result.read("stderr")


def test_started_file(tmp_path: Path) -> None:
    before = time.time()
    result = run(tmp_path, ["/bin/true"], env={"SLURM_JOB_ID": "12345", "JOB_ID": "999"})
    started = result.started
    assert started is not None
    assert set(started) == {"time", "host", "batch_job_id"}
    assert started["batch_job_id"] == "12345"  # SLURM_JOB_ID comes before SGE's JOB_ID
    assert before - 1 <= started["time"] <= time.time()
    assert started["host"]


def test_started_file_without_batch_system(tmp_path: Path) -> None:
    batch = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")
    env = {k: v for k, v in os.environ.items() if k not in batch}
    job = job_dir(tmp_path)
    subprocess.run(launcher_argv(["/bin/true"]), cwd=job, env=env, check=True, timeout=60)
    assert json.loads((job / ".hpcpull" / "started").read_text())["batch_job_id"] is None


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    result = run(tmp_path, ["/bin/true"])
    assert sorted(p.name for p in (result.job / ".hpcpull").iterdir()) == [
        "exit_status", "launcher.py", "started", "stderr", "stdout"
    ]


def test_sigterm_to_the_job_leaves_no_exit_status(tmp_path: Path) -> None:
    """A batch system killing the job kills the launcher too: no exit_status, by design."""
    job = job_dir(tmp_path)
    proc = subprocess.Popen(launcher_argv(["/bin/sleep", "30"]), cwd=job, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (job / ".hpcpull" / "started").exists():
            assert time.monotonic() < deadline, "launcher never wrote its started file"
            time.sleep(0.02)
        time.sleep(0.2)  # let the payload start
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (job / ".hpcpull" / "exit_status").exists()


def test_env_option_sets_variables_for_the_payload_only(tmp_path: Path) -> None:
    job = job_dir(tmp_path)
    show = "import os, sys; sys.stdout.write(os.environ['IFS'] + '|' + os.environ['HPCPULL_X'])"
    argv = launcher_argv([sys.executable, "-c", show])
    argv[3:3] = ["--env", "IFS=:", "--env=HPCPULL_X=a=b c"]
    env = {k: v for k, v in os.environ.items() if k != "IFS"}
    subprocess.run(argv, cwd=job, check=True, timeout=60, env=env)
    assert (job / ".hpcpull" / "stdout").read_text() == ":|a=b c"


def test_arguments_after_double_dash_are_the_payloads(tmp_path: Path) -> None:
    result = run(tmp_path, ["/bin/echo", "--stdout", "--", "x"])
    assert result.read("stdout") == "--stdout -- x\n"


def test_option_values_are_taken_verbatim(tmp_path: Path) -> None:
    job = job_dir(tmp_path)
    (job / "--").write_text("stdin named --\n")
    argv = launcher_argv(["/bin/cat"], stdin="--")
    subprocess.run(argv, cwd=job, check=True, timeout=60)
    assert (job / ".hpcpull" / "stdout").read_text() == "stdin named --\n"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--stdin", "/dev/null"],
        ["--bogus", "--", "/bin/true"],
        ["--stdin", "x", "--stdout", "o", "--started", "s", "--status", "t", "--", "/bin/true"],  # no stderr
        ["--stdin", "x", "--stdout", "o", "--stderr", "e", "--merge-stderr", "--started", "s",
         "--status", "t", "--", "/bin/true"],
        ["--stdin", "x", "--stdout", "o", "--stderr", "e", "--started", "s", "--status", "t", "--"],
        ["--env", "NOEQUALS", "--stdin", "x", "--stdout", "o", "--stderr", "e", "--started", "s",
         "--status", "t", "--", "/bin/true"],
    ],
)
def test_usage_errors(tmp_path: Path, argv: list[str]) -> None:
    job = job_dir(tmp_path)
    proc = subprocess.run(
        [sys.executable, ".hpcpull/launcher.py", *argv], cwd=job, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    assert not (job / ".hpcpull" / "started").exists()


def test_source_is_python36_syntax() -> None:
    source = LAUNCHER.read_text()
    ast.parse(source, feature_version=(3, 6))
    assert "from __future__ import annotations" not in source  # needs 3.7
    imports = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    stdlib = getattr(sys, "stdlib_module_names", None)  # Python >= 3.10
    if stdlib is not None:
        assert imports <= set(stdlib)


@pytest.mark.parametrize(
    "python", old_pythons() or [pytest.param(None, marks=pytest.mark.skip(reason="no python3.6-3.8"))]
)
def test_runs_on_old_pythons(tmp_path: Path, python: str) -> None:
    job = job_dir(tmp_path)
    argv = launcher_argv(sh("echo hi; exit 5"), python=python)
    proc = subprocess.run(argv, cwd=job, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5, proc.stderr
    status = json.loads((job / ".hpcpull" / "exit_status").read_text())
    check_status_shape(status)
    assert status["exit_code"] == 5
    assert (job / ".hpcpull" / "stdout").read_text() == "hi\n"
