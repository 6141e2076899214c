#!/usr/bin/env python3
"""hpcpull's payload launcher: runs on the compute node, inside the batch job.

The hook copies this file into the job's control directory (``.hpcpull/launcher.py``)
and the batch script runs it there.  It must work with any python3 >= 3.6 and the
standard library only (no hpcpull, no third-party modules, no newer syntax).

    launcher.py [--env NAME=VALUE ...] [--chain N] --stdin PATH --stdout PATH
                (--stderr PATH | --merge-stderr) --started PATH --status PATH -- EXE [ARGS...]

1. writes ``--started`` (JSON: time, host, batch_job_id) atomically;
2. runs EXE with ARGS, stdin from ``--stdin``, stdout to ``--stdout`` and stderr to
   ``--stderr`` (or to stdout with ``--merge-stderr``); output files are truncated or
   created (mode 0644 minus the umask); relative paths are relative to the cwd.
   Without ``--chain``, EXE gets the launcher's environment plus every ``--env``
   variable, in order (a later one wins): the job's environment is given this way, so
   that it reaches the payload and never the launcher itself.  An EXE without a slash is
   found on the launcher's own PATH, not on a PATH given with ``--env``.

   With ``--chain N``, the first N words of the command are the route's launcher chain
   (srun, mpiexec, apptainer exec ... IMAGE) and the rest is the payload.  The chain then
   runs in the launcher's own environment, the batch job's, and the ``--env`` variables
   are set by one more step inserted right before the payload, where the payload runs
   (inside the container, on every MPI rank)::

       CHAIN... /usr/bin/env -- NAME=VALUE... PAYLOAD [ARGS...]

   That is how HTCondor's starter does it: the job's environment is the job process's
   alone.  A job's LD_PRELOAD would otherwise be loaded into the site's apptainer or
   mpiexec, and a job's APPTAINER_*/SINGULARITY_* or OMPI_MCA_* variables are settings
   that those programs read from their environment (apptainer also hands the host's
   environment into the container by default, which is how the site's variables still
   reach the payload there).  ``env`` takes the first operand without "=" as the command,
   so a payload whose name contains "=" is started through ``/bin/sh -c 'exec "$@"'``;
3. waits for it with ``os.wait4`` (exact status and the child's own rusage);
4. writes ``--status`` atomically (temp file in the same directory, fsync, rename)::

       {"exit_code": int|null, "exit_signal": int|null, "start": float, "end": float,
        "wall_s": float, "user_cpu_s": float, "sys_cpu_s": float, "max_rss_kb": int}

   exactly one of exit_code/exit_signal is non-null;
5. exits with the payload's exit code, or 128 + signal.

If EXE cannot be started, the status says exit_code 127 (not found) or 126 (not
executable) and the error goes to the stderr file, as a shell would do; a stream that
cannot be opened gives exit_code 1, also like a shell redirection.

``max_rss_kb`` is the kernel's ru_maxrss for the payload, which counts the memory the
child had when it was forked from this launcher: a floor of roughly the launcher's own
size (~10-15 MB) for tiny payloads.

There is deliberately no SIGTERM handler: when the batch system kills the job (time
limit, scancel) the launcher dies with the payload and writes no status file, which is
how hpcpull tells "killed by the batch system" from "the payload died of a signal".
"""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

BATCH_JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")
PROG = "launcher.py"


def write_json_atomically(path, data):
    """Write ``data`` as JSON to ``path`` so that readers see all of it or nothing."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort: not every filesystem allows it)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def batch_job_id():
    for name in BATCH_JOB_ID_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


USAGE = (
    f"usage: {PROG} [--env NAME=VALUE ...] [--chain N] --stdin PATH --stdout PATH\n"
    "       (--stderr PATH | --merge-stderr) --started PATH --status PATH -- EXE [ARGS...]"
)
_VALUE_OPTIONS = ("--env", "--chain", "--stdin", "--stdout", "--stderr", "--started", "--status")
# The step that gives the payload its environment after a launcher chain: POSIX env, at the
# path Linux systems and container images have it (the one "#!/usr/bin/env" lines rely on);
# after a container launcher it is the image's own.
ENV_PROGRAM = "/usr/bin/env"
# For a payload named NAME=VALUE, which env would take for one more variable.
EXEC_ARGUMENTS = ("/bin/sh", "-c", 'exec "$@"', "sh")


class UsageError(Exception):
    pass


class Options:
    def __init__(self):
        self.env = []
        self.chain = 0
        self.stdin = None
        self.stdout = None
        self.stderr = None
        self.merge_stderr = False
        self.started = None
        self.status = None
        self.command = []


def parse_args(argv):
    """Parse the command line by hand: option values are taken verbatim (even "--")."""
    opts = Options()
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            opts.command = list(argv[i:])
            break
        if token == "--merge-stderr":
            opts.merge_stderr = True
            continue
        name, eq, value = token.partition("=")
        if name not in _VALUE_OPTIONS:
            raise UsageError(f"unknown option {token!r}")
        if not eq:
            if i >= len(argv):
                raise UsageError(f"{name} needs a value")
            value = argv[i]
            i += 1
        if name == "--env":
            if "=" not in value or value.startswith("="):
                raise UsageError(f"--env {value!r} is not NAME=VALUE")
            opts.env.append(value)
        elif name == "--chain":
            if not value.isdigit():
                raise UsageError(f"--chain {value!r} is not a number of words")
            opts.chain = int(value)
        else:
            setattr(opts, name[2:], value)
    for name in ("stdin", "stdout", "started", "status"):
        if getattr(opts, name) is None:
            raise UsageError(f"--{name} is required")
    if (opts.stderr is None) == (not opts.merge_stderr):
        raise UsageError("give exactly one of --stderr PATH and --merge-stderr")
    if len(opts.command) <= opts.chain:
        raise UsageError("no executable given after --" if not opts.command else
                         f"--chain {opts.chain}: no payload after the launcher chain")
    return opts


def command_and_environment(opts):
    """The command to start and its environment: the ``--env`` variables go to the payload only."""
    if not opts.chain:
        environment = dict(os.environ)
        for assignment in opts.env:
            name, _, value = assignment.partition("=")
            environment[name] = value
        return list(opts.command), environment
    chain, payload = opts.command[:opts.chain], opts.command[opts.chain:]
    step = [ENV_PROGRAM, "--", *opts.env]
    if "=" in payload[0]:
        step += EXEC_ARGUMENTS
    return chain + step + payload, dict(os.environ)


def open_output(path):
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


def report(stderr_fd, message):
    """Write one line to the payload's stderr file (or ours if there is none)."""
    data = f"{PROG}: {message}\n".encode("utf-8", "replace")
    try:
        os.write(stderr_fd if stderr_fd is not None else 2, data)
    except OSError:
        pass


def find_program(name):
    """``name`` as found on the launcher's own PATH; a name with a slash is a path already."""
    if "/" in name:
        return name
    path = shutil.which(name, path=os.environ.get("PATH", os.defpath))
    if path is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return os.path.abspath(path)  # an empty PATH entry gives a bare name, which Popen would search again


def status_record(exit_code, exit_signal, start, end, wall_s, rusage):
    max_rss = rusage.ru_maxrss if rusage is not None else 0
    if sys.platform == "darwin":  # bytes there, KB on Linux and the BSDs
        max_rss //= 1024
    return {
        "exit_code": exit_code,
        "exit_signal": exit_signal,
        "start": start,
        "end": end,
        "wall_s": wall_s,
        "user_cpu_s": rusage.ru_utime if rusage is not None else 0.0,
        "sys_cpu_s": rusage.ru_stime if rusage is not None else 0.0,
        "max_rss_kb": int(max_rss),
    }


def run(args):
    # Die of SIGINT like any process (Python would raise KeyboardInterrupt instead).
    # SIGTERM keeps its default action on purpose: see the module docstring.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    command, environment = command_and_environment(args)

    write_json_atomically(args.started, {
        "time": time.time(),
        "host": socket.gethostname(),
        "batch_job_id": batch_job_id(),
    })

    fds = []
    stderr_fd = None
    start = time.time()
    clock = time.monotonic()
    exit_code = None
    exit_signal = None
    rusage = None
    try:
        try:
            stdout_fd = open_output(args.stdout)
            fds.append(stdout_fd)
            stderr_fd = stdout_fd if args.merge_stderr else open_output(args.stderr)
            if stderr_fd != stdout_fd:
                fds.append(stderr_fd)
            stdin_fd = os.open(args.stdin, os.O_RDONLY)
            fds.append(stdin_fd)
        except OSError as exc:
            report(stderr_fd, f"{exc.filename}: {exc.strerror}")
            exit_code = 1
        if exit_code is None:
            try:
                # Found here: Popen would search the PATH of env=, which may be the job's.
                program = find_program(command[0])
                child = subprocess.Popen(command, executable=program, stdin=stdin_fd, stdout=stdout_fd,
                                         stderr=stderr_fd, env=environment, close_fds=True, restore_signals=True)
            except OSError as exc:
                report(stderr_fd, f"{args.command[0]}: {exc.strerror}")
                exit_code = 127 if exc.errno == errno.ENOENT else 126
            else:
                for fd in fds:  # the child has them; keep none open while it runs
                    os.close(fd)
                fds = []
                _, status, rusage = os.wait4(child.pid, 0)
                child.returncode = status  # reaped here: stop Popen from waiting again
                if os.WIFSIGNALED(status):
                    exit_signal = os.WTERMSIG(status)
                else:
                    exit_code = os.WEXITSTATUS(status)
    finally:
        for fd in fds:
            os.close(fd)

    end = time.time()
    wall_s = time.monotonic() - clock
    write_json_atomically(args.status, status_record(exit_code, exit_signal, start, end, wall_s, rusage))
    return exit_code if exit_signal is None else 128 + exit_signal


def main(argv=None):
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n{USAGE}\n")
        return 2
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
