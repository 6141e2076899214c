"""FAKE IBM Spectrum LSF: a TEST DOUBLE for hpcpull's tests. It is NOT IBM LSF.

No LSF can be installed on the development machine, so ``bsub``, ``bjobs``, ``bkill``,
``bstop`` and ``bresume`` in this directory imitate the few behaviours hpcpull relies on,
as IBM documents them (sources in tests/fixtures/lsf/README.md).  Every command first
writes ``FAKE LSF (hpcpull test double, not IBM LSF): <command line>`` on stderr (stdout
is what parsers read) and ``-V`` prints a version that says FAKE.

State lives in the directory ``$HPCPULL_FAKE_LSF_DIR`` (one JSON file per job, guarded by
a lock file).  ``bsub`` reads the job script from stdin like real LSF, applies its
``#BSUB`` lines (command-line options win), records the job and starts a detached
supervisor (``fakelsf.py --supervise ID``) that really runs the script with bash in the
job's cwd, writes its output to ``-o``, and records start, finish and exit code.

What it imitates, and how (LSF documentation or openlava source as noted):

* states PEND -> RUN -> DONE/EXIT; ``bsub -H`` and ``bstop`` of a pending job: PSUSP;
  ``bstop`` of a running job: USUSP (SIGSTOP); ``bresume`` undoes both.
* ``bkill``: a pending job ends at once; a running one gets SIGINT, SIGTERM, SIGKILL,
  ``terminate_interval`` apart (LSF's JOB_TERMINATE_INTERVAL, 10 s there); it ends EXIT
  with "TERM_OWNER: job killed by owner".
* a signal-killed job's exit code is 128 + signal, as the job's shell would report it
  (real reports: run limit -> SIGUSR2 -> "Exited with exit code 140").
* ``-W [hour:]minute`` run limit: SIGUSR2, then SIGKILL; EXIT with "TERM_RUNLIMIT: job
  killed after reaching LSF run time limit".
* queue ``nosuchqueue`` is refused: "nosuchqueue: No such queue. Job not submitted.",
  exit status 255 (openlava lsb.err.c / cmd.sub.c).
* a missing cwd: EXIT, exit code 2 (LSF with LSB_EXIT_IF_CWD_NOTEXIST=Y).

Test knobs (environment of bsub/bjobs; not LSF features):
  HPCPULL_FAKE_LSF_DISPATCH_DELAY   seconds a job stays PEND before it starts (0.1)
  HPCPULL_FAKE_LSF_MINUTE           seconds in a "minute" of -W (60)
  HPCPULL_FAKE_LSF_TERMINATE_INTERVAL  seconds between bkill's signals (1)
  HPCPULL_FAKE_LSF_CLEAN_PERIOD     seconds bjobs -a still shows finished jobs (3600)

Deliberately missing: hosts, slots, queues other than a name, job arrays, -w
dependencies, bhist/bacct, field widths in -o, mail.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

ANNOUNCE = "FAKE LSF (hpcpull test double, not IBM LSF)"
VERSION = f"{ANNOUNCE} 10.1.0.0 -- a Python stand-in for IBM Spectrum LSF, for tests only\n"
STATE_ENV = "HPCPULL_FAKE_LSF_DIR"
DEFAULT_QUEUE = "normal"
REFUSED_QUEUE = "nosuchqueue"
MAX_LIFETIME_S = 600.0  # a supervisor never outlives this, whatever happens to the test
POLL_S = 0.05

UNFINISHED = ("PEND", "PSUSP", "RUN", "USUSP", "SSUSP")
FINISHED = ("DONE", "EXIT")
# bsub options without a value (the others take exactly one); from bsub(1).
BSUB_FLAGS = frozenset({
    "-H", "-x", "-N", "-B", "-r", "-rn", "-I", "-Ip", "-Is", "-IS", "-ISp", "-ISs", "-IX",
    "-K", "-ul", "-Zs", "-hl", "-ar", "-tty", "-XF", "-datachk",
})
# options that share one setting: a command-line -oo overrides a script's -o
OPTION_GROUP = {"-oo": "-o", "-eo": "-e", "-is": "-i"}
TERM_TEXT = {
    "TERM_OWNER": "TERM_OWNER: job killed by owner",
    "TERM_RUNLIMIT": "TERM_RUNLIMIT: job killed after reaching LSF run time limit",
    "TERM_CWD_NOTEXIST": "TERM_CWD_NOTEXIST: current working directory is not accessible "
                         "or does not exist on the execution host",
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Refusal(Exception):
    """A command refuses: message for stderr, exit status."""

    def __init__(self, message: str, status: int = 255) -> None:
        super().__init__(message)
        self.status = status


# --- state --------------------------------------------------------------------------

def state_dir() -> Path:
    value = os.environ.get(STATE_ENV, "")
    if not value:
        raise Refusal(f"{ANNOUNCE}: {STATE_ENV} is not set", 2)
    path = Path(value)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    with open(root / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def job_path(root: Path, job_id: int) -> Path:
    return root / "jobs" / f"{job_id}.json"


def load(root: Path, job_id: int) -> Optional[dict[str, Any]]:
    try:
        return json.loads(job_path(root, job_id).read_text())
    except (OSError, ValueError):
        return None


def save(root: Path, record: dict[str, Any]) -> None:
    path = job_path(root, record["id"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def all_jobs(root: Path) -> list[dict[str, Any]]:
    ids = sorted(int(p.stem) for p in (root / "jobs").glob("*.json") if p.stem.isdigit())
    return [r for r in (load(root, i) for i in ids) if r is not None]


def knob(name: str, default: float) -> float:
    try:
        return float(os.environ.get(f"HPCPULL_FAKE_LSF_{name}", default))
    except ValueError:
        return default


def visible(record: dict[str, Any], now: float) -> bool:
    """bjobs forgets finished jobs after CLEAN_PERIOD."""
    finished = record.get("finish_time")
    return finished is None or now - finished <= knob("CLEAN_PERIOD", 3600)


def signal_group(record: dict[str, Any], sig: int) -> None:
    with contextlib.suppress(OSError, TypeError):
        os.killpg(record["pgid"], sig)


def lookup(root: Path, text: str, now: float) -> dict[str, Any]:
    """The record of a job id argument, or the refusal LSF gives for an unknown job."""
    record = load(root, int(text)) if text.isdigit() else None
    if record is None or not visible(record, now):
        raise Refusal(f"Job <{text}>: No matching job found")
    return record


# --- bsub ---------------------------------------------------------------------------

def parse_options(args: list[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """bsub options in order, and the command words after them (getopt-like)."""
    options: list[tuple[str, Any]] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and len(args[i]) > 1:
        opt = args[i]
        if opt in BSUB_FLAGS:
            options.append((opt, True))
            i += 1
            continue
        if i + 1 >= len(args):
            raise Refusal(f"bsub: option requires an argument -- {opt.lstrip('-')}. Job not submitted.")
        options.append((opt, args[i + 1]))
        i += 2
    return options, args[i:]


def script_directives(text: str) -> tuple[list[tuple[str, Any]], bool]:
    """The #BSUB options of every line of the script (as openlava's parseScript reads
    them: the whole file, '# BSUB' allowed, a '#' word ends the line), and whether the
    script has a command line at all."""
    options: list[tuple[str, Any]] = []
    has_command = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            has_command = True
            continue
        body = stripped[1:].lstrip()
        if not body.startswith("BSUB"):
            continue
        rest = body[4:].lstrip()
        if not rest.startswith("-"):
            continue
        try:
            words = shlex.split(rest, comments=True)
        except ValueError:
            continue
        with contextlib.suppress(Refusal):
            options.extend(parse_options(words)[0])
    return options, has_command


def merge(script: list[tuple[str, Any]], command_line: list[tuple[str, Any]]) -> dict[str, Any]:
    """The options in force: a later #BSUB line overrides an earlier one (openlava keeps
    the first -n; ignored here), and the command line overrides the script (bsub(1))."""
    settings: dict[str, tuple[str, Any]] = {}
    for opt, value in [*script, *command_line]:
        settings[OPTION_GROUP.get(opt, opt)] = (opt, value)
    return dict(settings.values())


def run_limit_minutes(value: str) -> Optional[float]:
    """-W [hour:]minute[/host]"""
    spec = value.split("/", 1)[0]
    try:
        parts = [int(p) for p in spec.split(":")]
    except ValueError:
        return None
    if len(parts) == 1:
        return float(parts[0])
    if len(parts) == 2:
        return float(parts[0] * 60 + parts[1])
    return None


def bsub(args: list[str]) -> int:
    if args[:1] == ["-V"]:
        sys.stderr.write(VERSION)
        return 0
    cmd_options, command = parse_options(args)
    if command:
        text = "#!/bin/bash\n" + shlex.join(command) + "\n"  # bsub command args: no #BSUB parsing
        script_options: list[tuple[str, Any]] = []
    else:
        text = sys.stdin.read()
        script_options, has_command = script_directives(text)
        if not has_command:
            raise Refusal("No command is specified in the script file. Job not submitted.")
    opts = merge(script_options, cmd_options)
    queue = opts.get("-q")
    if queue == REFUSED_QUEUE:
        raise Refusal(f"{queue}: No such queue. Job not submitted.")
    root = state_dir()
    now = time.time()
    limit = run_limit_minutes(opts["-W"]) if "-W" in opts else None
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "job")
    with locked(root):
        counter = root / "next_id"
        job_id = int(counter.read_text()) if counter.exists() else 101
        counter.write_text(str(job_id + 1))
        script = root / "jobs" / f"{job_id}.sh"
        script.write_text(text)
        record: dict[str, Any] = {
            "id": job_id,
            "name": str(opts.get("-J", first_line[:64])),
            "user": getpass.getuser(),
            "queue": queue or DEFAULT_QUEUE,
            "cwd": os.path.join(os.getcwd(), str(opts.get("-cwd", "."))),
            "submit_cwd": os.getcwd(),
            "out": opts.get("-oo", opts.get("-o")),
            "out_mode": "w" if "-oo" in opts else "a",
            "err": opts.get("-eo", opts.get("-e")),
            "err_mode": "w" if "-eo" in opts else "a",
            "options": [[o, v] for o, v in cmd_options],
            "script_options": [[o, v] for o, v in script_options],
            "stat": "PSUSP" if opts.get("-H") else "PEND",
            "submit_time": now,
            "dispatch_at": now + knob("DISPATCH_DELAY", 0.1),
            "run_limit_s": None if limit is None else limit * knob("MINUTE", 60),
            "terminate_interval_s": knob("TERMINATE_INTERVAL", 1),
            "start_time": None,
            "finish_time": None,
            "exit_code": None,
            "exit_reason": None,
            "pgid": None,
            "kill": None,
            "supervisor_pid": None,
        }
        save(root, record)
        with open(root / "jobs" / f"{job_id}.log", "a") as log:
            supervisor = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--supervise", str(job_id)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
                start_new_session=True, env=dict(os.environ, **{STATE_ENV: str(root)}),
            )
        record["supervisor_pid"] = supervisor.pid
        save(root, record)
    where = f"queue <{queue}>" if queue else f"default queue <{DEFAULT_QUEUE}>"
    print(f"Job <{job_id}> is submitted to {where}.")
    return 0


# --- the supervisor: runs one job ------------------------------------------------------

def resolve(record: dict[str, Any], name: Optional[str]) -> Optional[str]:
    if not name:
        return None
    name = str(name).replace("%J", str(record["id"])).replace("%I", "0")
    return name if os.path.isabs(name) else os.path.join(record["cwd"], name)


def open_output(path: Optional[str], mode: str) -> Any:
    if path is None:
        return subprocess.DEVNULL  # real LSF would mail it
    try:
        return open(path, mode)
    except OSError:
        return subprocess.DEVNULL


def finish(root: Path, job_id: int, exit_code: Optional[int], term: Optional[str]) -> None:
    with locked(root):
        record = load(root, job_id)
        if record is None:
            return
        term = term or record.get("kill")  # bkill's SIGINT may end it before we looked
        record["finish_time"] = time.time()
        record["exit_code"] = exit_code
        record["stat"] = "DONE" if exit_code == 0 else "EXIT"
        record["exit_reason"] = TERM_TEXT.get(term or "") if record["stat"] == "EXIT" else None
        record["pgid"] = None
        save(root, record)
    out = resolve(record, record.get("out"))
    if out and record.get("start_time") is not None:
        with contextlib.suppress(OSError), open(out, "a") as handle:
            result = "Successfully completed." if exit_code == 0 else (
                (f"{record['exit_reason']}.\n" if record["exit_reason"] else "")
                + f"Exited with exit code {exit_code}.")
            handle.write(
                "\n------------------------------------------------------------\n"
                f"Sender: {ANNOUNCE}\nSubject: Job {job_id}: <{record['name']}> "
                f"{'Done' if exit_code == 0 else 'Exited'}\n\n{result}\n")


def supervise(job_id: int) -> int:
    root = state_dir()
    # A job starts with the default signal dispositions, as sbatchd starts it.  A supervisor
    # started from a process that ignores SIGINT (anything started with "&" by a
    # non-interactive shell) would hand the job that ignore, and bkill's SIGINT would miss.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    give_up = time.time() + MAX_LIFETIME_S
    while True:  # wait for dispatch
        record = load(root, job_id)
        if record is None or record["stat"] in FINISHED or time.time() > give_up:
            return 0
        if record["stat"] == "PEND" and time.time() >= record["dispatch_at"]:
            with locked(root):
                record = load(root, job_id)
                if record is None or record["stat"] != "PEND":
                    continue
                if not os.path.isdir(record["cwd"]):
                    record.update(stat="RUN", start_time=time.time())
                    save(root, record)
                    proc = None
                else:
                    out = resolve(record, record.get("out"))
                    err = resolve(record, record.get("err"))
                    stdout = open_output(out, record["out_mode"])
                    stderr = subprocess.STDOUT if err is None or err == out else open_output(
                        err, record["err_mode"])
                    env = dict(os.environ, LSB_JOBID=str(job_id), LSB_JOBNAME=record["name"],
                               LSB_QUEUE=record["queue"])
                    proc = subprocess.Popen(
                        ["bash", str(root / "jobs" / f"{job_id}.sh")], cwd=record["cwd"],
                        stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env,
                        start_new_session=True, close_fds=True,
                    )
                    record.update(stat="RUN", start_time=time.time(), pgid=proc.pid)
                    save(root, record)
            break
        time.sleep(POLL_S)
    if proc is None:
        finish(root, job_id, 2, "TERM_CWD_NOTEXIST")
        return 0
    term: Optional[str] = None
    escalation = [signal.SIGTERM, signal.SIGKILL]
    next_signal_at: Optional[float] = None
    while proc.poll() is None:
        record = load(root, job_id) or record
        now = time.time()
        limit = record.get("run_limit_s")
        if term is None and record.get("kill"):
            term = record["kill"]  # bkill already sent SIGINT
            next_signal_at = now + record["terminate_interval_s"]
        elif term is None and limit is not None and now - record["start_time"] >= limit:
            term = "TERM_RUNLIMIT"
            escalation = [signal.SIGKILL]  # after SIGUSR2 (LSF waits 10 minutes, we do not)
            signal_group(record, signal.SIGUSR2)
            next_signal_at = now + record["terminate_interval_s"]
        elif now > give_up:
            term, escalation, next_signal_at = "TERM_OWNER", [signal.SIGKILL], now
        if next_signal_at is not None and now >= next_signal_at and escalation:
            signal_group({"pgid": proc.pid}, escalation.pop(0))
            next_signal_at = now + record["terminate_interval_s"]
        time.sleep(POLL_S)
    code = proc.returncode
    finish(root, job_id, code if code >= 0 else 128 - code, term)
    return 0


# --- bjobs --------------------------------------------------------------------------

def fmt_time(value: Optional[float], flag: str = "") -> str:
    if value is None:
        return "-"
    t = time.localtime(value)
    text = f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}"
    return f"{text} {flag}" if flag else text


def finish_time(record: dict[str, Any]) -> str:
    if record["finish_time"] is not None:
        return fmt_time(record["finish_time"])
    if record["stat"] == "RUN" and record.get("run_limit_s") is not None:
        return fmt_time(record["start_time"] + record["run_limit_s"], "L")  # estimated
    return "-"


FIELDS: dict[str, Any] = {
    "jobid": lambda r: str(r["id"]),
    "stat": lambda r: r["stat"],
    "user": lambda r: r["user"],
    "queue": lambda r: r["queue"],
    "job_name": lambda r: r["name"],
    "exit_code": lambda r: "-" if r["stat"] != "EXIT" or r["exit_code"] is None else str(r["exit_code"]),
    "exit_reason": lambda r: r.get("exit_reason") or "-",
    "submit_time": lambda r: fmt_time(r["submit_time"]),
    "start_time": lambda r: fmt_time(r["start_time"]),
    "finish_time": finish_time,
}
ALIASES = {"id": "jobid", "name": "job_name"}


def parse_format(spec: str) -> tuple[list[str], str]:
    """-o "field[:width] ... delimiter='c'" -> field names, delimiter (widths ignored)."""
    fields, delimiter = [], " "
    for word in shlex.split(spec):
        if word.startswith("delimiter="):
            delimiter = word[len("delimiter="):]
            if len(delimiter) != 1:
                raise Refusal(f"{ANNOUNCE}: the delimiter must be one character: {word}", 255)
            continue
        name = word.split(":", 1)[0].lower()
        name = ALIASES.get(name, name)
        if name not in FIELDS:
            raise Refusal(f"{ANNOUNCE}: bjobs field <{name}> is not implemented by this double", 255)
        fields.append(name)
    return fields, delimiter


def bjobs(args: list[str]) -> int:
    if args[:1] == ["-V"]:
        sys.stderr.write(VERSION)
        return 0
    show_all, header = False, True
    user: Optional[str] = None
    name: Optional[str] = None
    spec = "jobid user stat queue job_name submit_time"
    ids: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-a":
            show_all = True
        elif arg == "-noheader":
            header = False
        elif arg in ("-w", "-W"):
            pass
        elif arg in ("-u", "-o", "-J") and i + 1 < len(args):
            value = args[i + 1]
            i += 1
            if arg == "-u":
                user = value
            elif arg == "-o":
                spec = value
            else:
                name = value
        elif arg.startswith("-"):
            raise Refusal(f"{ANNOUNCE}: bjobs option {arg} is not implemented by this double", 2)
        else:
            ids.append(arg)
        i += 1
    fields, delimiter = parse_format(spec)
    root = state_dir()
    now = time.time()
    me = getpass.getuser()
    errors: list[str] = []
    if ids:  # given job ids: any state, any user
        records = []
        for text in ids:
            record = load(root, int(text)) if text.isdigit() else None
            if record is None or not visible(record, now):
                errors.append(f"Job <{text}> is not found")
            else:
                records.append(record)
    else:
        records = [r for r in all_jobs(root) if visible(r, now)
                   and (show_all or r["stat"] in UNFINISHED)
                   and (user == "all" or r["user"] == (user or me))
                   and (name is None or r["name"] == name)]
        if not records:
            errors.append(f"Job <{name}> is not found" if name is not None
                          else "No job found" if show_all else "No unfinished job found")
    if records and header:
        print(delimiter.join(f.upper() for f in fields))
    for record in records:
        print(delimiter.join(FIELDS[f](record) for f in fields))
    for message in errors:
        sys.stderr.write(message + "\n")
    # exit status as with LSB_BJOBS_CONSISTENT_EXIT_CODE=N (the default): 255 only when a
    # given job id or name matched nothing
    return 255 if errors and (ids or name is not None) else 0


# --- bkill, bstop, bresume ------------------------------------------------------------

def control(command: str, args: list[str]) -> int:
    if args[:1] == ["-V"]:
        sys.stderr.write(VERSION)
        return 0
    ids, i = [], 0
    while i < len(args):
        if args[i] in ("-s", "-C", "-J", "-u", "-q", "-m", "-g", "-app", "-sla"):
            i += 1  # an option with a value: not implemented, the value is no job id
        elif not args[i].startswith("-"):
            ids.append(args[i])
        i += 1
    if not ids:
        raise Refusal("Job ID or one of '-m', '-u' '-q' and '-J' must be specified.")
    root = state_dir()
    failed = False
    for text in ids:
        try:
            with locked(root):
                message = act(command, root, lookup(root, text, time.time()))
            print(message)
        except Refusal as refusal:
            sys.stderr.write(f"{refusal}\n")
            failed = True
    return 255 if failed else 0


def act(command: str, root: Path, record: dict[str, Any]) -> str:
    job = f"Job <{record['id']}>"
    stat = record["stat"]
    if stat in FINISHED:
        raise Refusal(f"{job}: Job has already finished")
    if command == "bkill":
        if stat in ("PEND", "PSUSP"):
            record.update(stat="EXIT", finish_time=time.time(), exit_reason=TERM_TEXT["TERM_OWNER"])
        else:
            record["kill"] = "TERM_OWNER"
            signal_group(record, signal.SIGINT)
            signal_group(record, signal.SIGCONT)  # a stopped job must run to die
        save(root, record)
        return f"{job} is being terminated"
    if command == "bstop":
        if stat in ("PSUSP", "USUSP", "SSUSP"):
            # bstop(1): "You cannot suspend a job that is already suspended" (wording of
            # LSF's message not verified)
            raise Refusal(f"{job}: Job has already been suspended")
        if stat == "RUN":
            signal_group(record, signal.SIGSTOP)
        record["stat"] = "PSUSP" if stat == "PEND" else "USUSP"
        save(root, record)
        return f"{job} is being stopped"
    # bresume
    if stat not in ("PSUSP", "USUSP", "SSUSP"):
        raise Refusal(f"{job}: Job is not suspended")  # wording of LSF's message not verified
    if stat == "PSUSP":
        record.update(stat="PEND", dispatch_at=max(record["dispatch_at"], time.time()))
    else:
        signal_group(record, signal.SIGCONT)
        record["stat"] = "RUN"
    save(root, record)
    return f"{job} is being resumed"


# --- entry point ----------------------------------------------------------------------

def main(command: str, args: list[str]) -> int:
    if command == "fakelsf.py" and args[:1] == ["--supervise"]:
        return supervise(int(args[1]))
    sys.stderr.write(f"{ANNOUNCE}: {shlex.join([command, *args])}\n")
    sys.stderr.flush()
    try:
        if command == "bsub":
            return bsub(args)
        if command == "bjobs":
            return bjobs(args)
        if command in ("bkill", "bstop", "bresume"):
            return control(command, args)
        raise Refusal(f"{ANNOUNCE}: no such command {command}", 2)
    except Refusal as refusal:
        sys.stderr.write(f"{refusal}\n")
        return refusal.status


if __name__ == "__main__":
    sys.exit(main(os.path.basename(sys.argv[0]), sys.argv[1:]))
