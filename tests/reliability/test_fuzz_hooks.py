"""Fuzzing every hook's stdin: no input the router can send makes a hook crash it.

Each hook runs in-process through ``hpcpull.router.protocol.run_hook`` -- exactly what the executables
in hooks/ run (``protocol._main``) -- on the real stdin captured from condor_job_router 25.13.2
(tests/fixtures/router-stdin/), mutated by hypothesis (truncated at any byte, lines duplicated,
dropped, swapped or replaced, binary bytes, NUL, invalid UTF-8, 1 MB values, unbalanced
quotes, missing or extra ``------``, swapped sections, CRLF, hostile names and values), and
on pure garbage.  A few cases also go through the real executables, to show the process
(exit status, stdout bytes, stderr lines) is what run_hook returned.

The contract checked on every case comes from the hpcpull/router/protocol.py module docstring and
from how the router reads hook output (htcondor/htcondor src/condor_job_router/
JobRouterHookMgr.cpp, TranslateClient/StatusClient/ExitClient::hookExited): stdout is split
on "\\n" (StringTokenIterator, empty tokens skipped) and every line goes through
ClassAd::Insert; one line that does not insert abandons TRANSLATE, removes the routed copy
after UPDATE and reroutes the job after FINALIZE.  TRANSLATE output must hold JobUniverse
(the daemon EXCEPTs otherwise: src/condor_job_router/VanillaToGrid.cpp, vanillaToGrid,
"job ad lacks universe").

Nothing is ever submitted: HPCPULL_LRMS_ENVIRONMENT gives batch commands a PATH holding
no sbatch/squeue.  Every path a fuzzed attribute can name lies under this test's tmp dir
(see ``_names_only_safe_paths``): the hooks run as root here and write where Iwd/Out say.

HPCPULL_FUZZ_EXAMPLES sets the number of cases per hook and strategy (default 1000).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import classad2
import htcondor2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hpcpull.router import cleanup, finalize, protocol, translate, update
from hpcpull.router.classads import too_deep
from hpcpull.testing.router_sim import RouterSim, hook_environment, write_gateway_config
from tests.conftest import FIXTURES, ROUTE_BODY

HOOKS = ("translate", "update", "finalize", "cleanup")
FUNCTIONS: dict[str, Callable[..., protocol.HookResult]] = {
    "translate": translate.translate, "update": update.update, "finalize": finalize.finalize,
    "cleanup": cleanup.cleanup,
}
# protocol.py module docstring: the exit codes each hook may use.
ALLOWED_EXIT = {"translate": {0, 1, 2}, "update": {0}, "finalize": {0}, "cleanup": {0, 1}}
MALFORMED_EXIT = {"translate": 2, "update": 0, "finalize": 0, "cleanup": 0}
MAX_EXAMPLES = int(os.environ.get("HPCPULL_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
OLD = classad2.ParserType.Old
MB = 1 << 20
STDIN = FIXTURES / "router-stdin"
HOME, SCRATCH = "@HOME@", "@SCRATCH@"  # placeholders: the real tmp paths are known only at run time

# ---------------------------------------------------------------------------- seeds


def _with_lines(ad_text: str, *lines: str) -> str:
    """``ad_text`` with ``lines`` added where the router's sorted output would have them."""
    body = [line for line in ad_text.split("\n") if line] + list(lines)
    return "".join(f"{line}\n" for line in sorted(body, key=lambda s: s.split(" = ", 1)[0]))


def _job_dir_lines(proc: int) -> tuple[str, str]:
    job = f"{SCRATCH}/alice/78/{proc}"
    return f'HpcPullJobDir = "{job}"', f'HpcPullScript = "{job}/.hpcpull/job.sh"'


def _seeds() -> dict[str, str]:
    """The captured router stdin of each hook, aimed at the hpcpull route "Slurm" and at the
    job directories TRANSLATE made (78.0 for UPDATE, 78.4 for FINALIZE and CLEANUP)."""
    def read(name: str) -> str:
        text = (STDIN / f"{name}.stdin").read_text(encoding="utf-8")
        return text.replace("/home/alice/jobs", HOME).replace('RouteName = "RcRoute"', 'RouteName = "Slurm"')

    translate = read("translate").replace('[ Name = "RcRoute"', '[ Name = "Slurm"', 1)
    source, sep, routed = read("finalize").partition("\n------\n")
    return {
        "translate": translate,
        "update": _with_lines(read("update-first"), *_job_dir_lines(0)),
        "finalize": source + sep + _with_lines(routed, *_job_dir_lines(4)),
        "cleanup": _with_lines(read("cleanup"), *_job_dir_lines(4)),
    }


SEEDS = _seeds()

# ---------------------------------------------------------------------------- hostile material

# Attributes naming files the hooks read, write or remove (sandbox.py, hpcpull/router/).  They only
# ever get values from SAFE_PATH_VALUES: everything there stays inside the tmp dir.
PATH_ATTRS = frozenset(name.lower() for name in (
    "Cmd", "Iwd", "In", "Out", "Err", "TransferInput", "TransferOutput", "TransferOutputRemaps",
    "SUBMIT_Iwd", "SUBMIT_Cmd", "HpcPullJobDir", "HpcPullScript", "ContainerImage", "SingularityImage",
    "OutputDestination", "UserLog", "x509userproxy", "TransferIn", "TransferExecutable",
))
SAFE_PATH_VALUES = (
    f'"{HOME}"', f'"{HOME}/"', f'"{HOME}/missing"', f'"{HOME}/a b,c"', f'"{HOME}/\u2028x"',
    f'"{HOME}/x\\"y"', f'"{HOME}/../jobs"', f'"{HOME}/out.78.4"', '"relative"', '"../up"', '""', '" "',
    '",,,"', "undefined", "error", "1", "true", f'"{SCRATCH}/alice/78/0"', f'"{SCRATCH}/alice/78/4"',
    f'"{SCRATCH}/bob/78/4"', f'"{SCRATCH}/alice/../alice/78/4"', f'"{SCRATCH}/alice/78/4/.hpcpull/job.sh"',
    '"result.txt"', '"result.txt,missing, ,../escape,/abs"', f'"result.txt={HOME}/remapped.txt"',
    '"result.txt=http://example.invalid/x"', '"result.txt=sub/dir/"', f'"{HOME}/\x0cff"',
    f'strcat("{HOME}", "/x")', '"\x00"',
)
HOSTILE_VALUES = (
    '"', '"unterminated', 'unterminated"', '"a" "b"', '"\\"', '"\\\\"', '"a\\"b', '"a\\\\"b"', "'single'",
    '"; rm -rf / #"', '"$(touch pwned)"', '"`id`"', '"${HOME}"', '"%s%s%n%x"', "undefined", "error",
    "1/0", "-1", "0", "99999999999999999999999999", "-9223372036854775809", "1e999", "-0.0", "nan", "inf",
    "[ A = 1; B = ", "[ A = 1 ]", "{ 1, 2", "{ }", "strcat(", 'strcat("a", "b")', "X = Y", "=", "==",
    ";", "", " ", "true && false ||", "MY.Foo", "TARGET.Bar", "ifThenElse(", "\\", "\t", '"\x01\x02\x7f"',
    '"\u2028"', '"\u2029"', '"a\x0cb"', '"a\x0bb"', '"a\x85b"', '"a\x1cb"', '"a\rb"', '"tab\there"',
    '"ÿ é ☃ 😀"', '"../../../../etc/passwd"', "/* comment", "// comment", "# comment", "JobUniverse",
    "-2147483649", "2147483648", "0x10", "010", "--", "------", "(" * 300 + "1" + ")" * 300, "-" * 500 + "1",
    '"' + "\\" * 99 + '"', "5", "2", "4", "1", '"Slurm"', '"Other"', '"alice"', '"root"', '"78.4"', '"78.0"',
    '"78"', '"x.y.z"', '"-1.-1"', '"ScheddDone"', '"External"', 'error("boom")', "parent.X", "a.b.c.d",
)
HOSTILE_NAMES = (
    "", " ", "1abc", "a b", "a-b", "a.b", "MY.x", "TARGET.y", "[", "]", '"quoted"', "a=b", "é", "☃",
    "true", "false", "undefined", "error", "parent", "is", "isnt", "JobStatus", "JobUniverse", "ClusterId",
    "ProcId", "Owner", "RouteName", "RoutedFromJobId", "HpcPullRouteError", "HpcPullRouteErrorCode",
    "HpcPullBatchJobId", "ExitCode", "ExitBySignal", "ExitSignal", "CompletionDate", "RemoteWallClockTime",
    "RequestMemory", "RequestCpus", "RequestGPUs", "maxWallTime", "BatchRuntime", "Arguments", "Args",
    "Environment", "Env", "HoldReason", "WhenToTransferOutput", "ShouldTransferFiles", "SuccessExitCode",
    "HpcPullPartition", "HpcPullWalltime", "BatchQueue", "BatchProject", "WantWholeNode", "Managed",
    "jobstatus", "JOBUNIVERSE", "x" * 300, "Name", "TargetUniverse",
)
ROUTE_NAMES = (
    "Slurm", "Other", "RcRoute", "slurm", "SLURM", "", "Slurm ", ' Slurm', 'Sl\\"urm', "../Slurm", "x" * 5000,
    "Slurm;rm -rf", "Slurm\u2028", "Slurm\\", "Nope",
)
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
# What str.splitlines() splits at besides "\n"; the router prints them raw inside strings.
LINE_BREAKS_IN_STRINGS = ("\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\r")
BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")  # any line break str.splitlines() knows


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_path_attr(name: str) -> bool:
    return name.strip().lower() in PATH_ATTRS


random_names = st.one_of(
    st.sampled_from(HOSTILE_NAMES),
    st.from_regex(NAME_RE, fullmatch=True),
    st.text(max_size=12),
).filter(lambda n: not _is_path_attr(n))
random_values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.text(max_size=40),
    st.text(max_size=40).map(_quoted),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
huge_values = st.sampled_from((
    lambda: '"' + "x" * MB + '"',
    lambda: '"' + "é" * (MB // 2) + '"',
    lambda: "1" * MB,
    lambda: "a" * MB,
    lambda: '"' + "x" * MB,  # unterminated too
    lambda: "1 + " * (MB // 4) + "1",
    lambda: "{ " + "1, " * (MB // 3) + "1 }",
))
injected_bytes = st.one_of(
    st.sampled_from((b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\r", b"\x0c", b"\xe2\x80\xa8",
                     b"\xc2\x85", b"\n", b"\n------\n", b'"', b"=", b"\x1b[2J", b"\xf4\x90\x80\x80")),
    st.binary(min_size=1, max_size=16),
)

# ---------------------------------------------------------------------------- mutations
# Each takes (draw, lines, hook) and returns new lines; lines are "\n"-separated and the
# last one is the empty string after the final newline.


def _index(draw: st.DrawFn, lines: list[str], extra: int = 0) -> int:
    return draw(st.integers(0, max(0, len(lines) - 1 + extra)))


def _attr_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if " = " in line and not line.startswith("[")]


def _value_for(draw: st.DrawFn, name: str) -> str:
    if _is_path_attr(name):
        return draw(st.sampled_from(SAFE_PATH_VALUES))
    if name.strip().lower() == "routename":
        return _quoted(draw(st.sampled_from(ROUTE_NAMES)))
    return draw(random_values)


def m_duplicate(draw, lines, hook):
    line = lines[_index(draw, lines)]
    new = list(lines)
    new.insert(_index(draw, lines), line)
    return new


def m_delete(draw, lines, hook):
    new = list(lines)
    del new[_index(draw, lines)]
    return new


def m_swap(draw, lines, hook):
    new = list(lines)
    i, j = _index(draw, lines), _index(draw, lines)
    new[i], new[j] = new[j], new[i]
    return new


def m_replace_value(draw, lines, hook):
    candidates = _attr_lines(lines)
    if not candidates:
        return lines
    i = draw(st.sampled_from(candidates))
    name = lines[i].split(" = ", 1)[0]
    new = list(lines)
    new[i] = f"{name} = {_value_for(draw, name)}"
    return new


def m_duplicate_attr_other_value(draw, lines, hook):
    """The same attribute twice with different values (and case)."""
    candidates = _attr_lines(lines)
    if not candidates:
        return lines
    name = lines[draw(st.sampled_from(candidates))].split(" = ", 1)[0]
    name = draw(st.sampled_from((name, name.lower(), name.upper())))
    new = list(lines)
    new.insert(_index(draw, lines), f"{name} = {_value_for(draw, name)}")
    return new


def m_insert_attr(draw, lines, hook):
    name = draw(random_names)
    new = list(lines)
    new.insert(_index(draw, lines), f"{name} = {_value_for(draw, name)}")
    return new


def m_garbage_line(draw, lines, hook):
    new = list(lines)
    new[_index(draw, lines)] = draw(st.one_of(st.text(max_size=80), st.sampled_from(HOSTILE_VALUES)))
    return new


def m_huge_value(draw, lines, hook):
    candidates = [i for i in _attr_lines(lines) if not _is_path_attr(lines[i].split(" = ", 1)[0])]
    new = list(lines)
    value = draw(huge_values)()
    if candidates and draw(st.booleans()):
        i = draw(st.sampled_from(candidates))
        new[i] = f"{lines[i].split(' = ', 1)[0]} = {value}"
    else:
        new.insert(_index(draw, lines), f"{draw(st.sampled_from(('HugeAttr', 'Arguments', 'Owner')))} = {value}")
    return new


def m_many_lines(draw, lines, hook):
    count = draw(st.sampled_from((1000, 5000)))
    new = list(lines)
    at = _index(draw, lines)
    new[at:at] = [f"Fuzz{n} = {n}" for n in range(count)]
    return new


def m_unbalance_quote(draw, lines, hook):
    candidates = [i for i, line in enumerate(lines) if '"' in line]
    if not candidates:
        return lines
    i = draw(st.sampled_from(candidates))
    line = lines[i]
    new = list(lines)
    if draw(st.booleans()):
        cut = line.rfind('"')
        new[i] = line[:cut] + line[cut + 1:]
    else:
        at = draw(st.integers(0, len(line)))
        new[i] = line[:at] + draw(st.sampled_from(('"', '\\"', '\\', "'"))) + line[at:]
    return new


def m_break_in_value(draw, lines, hook):
    """A line break (any kind str.splitlines() knows) or control byte inside a string value."""
    candidates = [i for i, line in enumerate(lines) if line.count('"') >= 2 and " = " in line]
    if not candidates:
        return lines
    i = draw(st.sampled_from(candidates))
    line = lines[i]
    at = draw(st.integers(line.index('"') + 1, line.rindex('"')))
    char = draw(st.sampled_from(LINE_BREAKS_IN_STRINGS + ("\t", "\x01")))
    new = list(lines)
    new[i] = line[:at] + char + line[at:]
    return new


def m_separator(draw, lines, hook):
    seps = [i for i, line in enumerate(lines) if line == "------"]
    new = list(lines)
    choice = draw(st.integers(0, 3))
    if seps and choice == 0:
        del new[seps[0]]
    elif seps and choice == 1:
        new[seps[0]] = draw(st.sampled_from(("-----", "------ ", " ------", "------\r", "-------", "", "======")))
    else:
        new.insert(_index(draw, lines), "------")
    return new


def m_swap_sections(draw, lines, hook):
    text = "\n".join(lines)
    head, sep, tail = text.partition("\n------\n")
    if not sep:
        return lines
    return (tail.rstrip("\n") + sep + head + "\n").split("\n")


def m_route_line(draw, lines, hook):
    """TRANSLATE's route ad (the first line); the other hooks get a different RouteName."""
    new = list(lines)
    name = draw(st.sampled_from(ROUTE_NAMES))
    if hook == "translate":
        new[0] = draw(st.sampled_from((
            f"[ Name = {_quoted(name)}; TargetUniverse = 5 ]", f"[ Name = {_quoted(name)} ]",
            "[", "[ Name = Slurm ]", "[ Name = 5 ]", 'Name = "Slurm"', '[ Name = "Slurm"; Name = "Other" ]',
            '[ Name = "Slurm" ] [ Name = "Other" ]', '[ Name = "Slurm"; TargetUniverse = 5 ]junk',
            '[ Name = strcat("Sl", "urm") ]', "[ ]", "", '[ Name = "Slurm"; TargetUniverse = ]',
        )))
    else:
        for i in _attr_lines(lines):
            if lines[i].startswith("RouteName = "):
                new[i] = f"RouteName = {_quoted(name)}"
    return new


def m_crlf(draw, lines, hook):
    return [line + "\r" if line else line for line in lines]


def m_recase(draw, lines, hook):
    candidates = _attr_lines(lines)
    if not candidates:
        return lines
    i = draw(st.sampled_from(candidates))
    name, _, value = lines[i].partition(" = ")
    new = list(lines)
    name = draw(st.sampled_from((name.lower(), name.upper())))
    new[i] = name + draw(st.sampled_from((" = ", "=", "  =  ", " ="))) + value
    return new


def m_drop_key(draw, lines, hook):
    """Lose an attribute a hook depends on."""
    key = draw(st.sampled_from(("JobUniverse", "Owner", "ClusterId", "ProcId", "RouteName", "RoutedFromJobId",
                                "HpcPullJobDir", "JobStatus", "Iwd", "Cmd")))
    return [line for line in lines if not line.startswith(f"{key} = ")]


TEXT_MUTATIONS = (
    m_duplicate, m_delete, m_swap, m_replace_value, m_duplicate_attr_other_value, m_insert_attr, m_garbage_line,
    m_huge_value, m_many_lines, m_unbalance_quote, m_break_in_value, m_separator, m_swap_sections, m_route_line,
    m_crlf, m_recase, m_drop_key, m_replace_value, m_replace_value, m_insert_attr,
)


@st.composite
def mutated_stdin(draw: st.DrawFn, hook: str) -> bytes:
    """The hook's real stdin after 1-4 line-level mutations and 0-2 byte-level ones."""
    lines = SEEDS[hook].split("\n")
    for _ in range(draw(st.integers(1, 4))):
        lines = draw(st.sampled_from(TEXT_MUTATIONS))(draw, lines, hook)
    data = "\n".join(lines).encode("utf-8")
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data = data[:at]  # truncated
        else:
            data = data[:at] + draw(injected_bytes) + data[at:]
    return data


garbage = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=512).map(lambda t: t.encode("utf-8")),
    st.lists(st.sampled_from(HOSTILE_VALUES + tuple(f"{n} = 1" for n in HOSTILE_NAMES) + ("------", "", "[ ]")),
             max_size=40).map(lambda ls: "\n".join(ls).encode("utf-8")),
)


def _path_values(text: str) -> set[str]:
    values = set()
    for line in text.split("\n"):
        name, sep, value = line.partition("=")
        if sep and _is_path_attr(name):
            values.add(value.strip())
    return values


# The seeds' own paths are safe too: /bin/sh and /dev/null are only read, the rest is in Iwd.
ALLOWED_PATH_VALUES = frozenset(SAFE_PATH_VALUES).union(*(_path_values(seed) for seed in SEEDS.values()))


def _names_only_safe_paths(data: bytes) -> bool:
    """True when every line (split at any line break) that names a file attribute has a safe
    value: a random line like ``Out = "/x"`` would make a root-run hook write outside the
    tmp dir.  (Mutations never generate one; random text could, rarely.)"""
    text = data.decode("utf-8", "replace")
    return all(value in ALLOWED_PATH_VALUES for value in _path_values(BREAKS.sub("\n", text)))


# ---------------------------------------------------------------------------- the gateway


@dataclass
class Call:
    stdout: str
    exit_code: int
    lines: list[str]


@dataclass
class FuzzGateway:
    root: Path
    config: Path
    scratch: Path
    home: Path
    template: Path
    cwd: Path
    dirty: bool = True  # whether the last hook may have changed scratch or Iwd since reset()

    def substitute(self, data: bytes) -> bytes:
        data = data.replace(HOME.encode(), str(self.home).encode())
        return data.replace(SCRATCH.encode(), str(self.scratch).encode())

    def reset(self) -> None:
        """The job directories TRANSLATE made, as they were; nothing else in scratch or Iwd."""
        for path in (self.scratch, self.home.parent.parent):
            shutil.rmtree(path)
        self.scratch.mkdir(mode=0o1777)
        self.home.mkdir(parents=True)
        shutil.copytree(self.template, self.scratch / "alice", symlinks=True)

    def run(self, hook: str, data: bytes) -> Call:
        if self.dirty:
            self.reset()
        stdout, code, lines = protocol.run_hook(hook, FUNCTIONS[hook], self.substitute(data))
        # Every hook parses its stdin before touching anything: refused input changed nothing.
        self.dirty = not (lines and (" malformed input: " in lines[0] or "stdin is not UTF-8" in lines[0]))
        return Call(stdout, code, lines)

    def run_process(self, hook: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
        self.reset()
        self.dirty = True
        env = hook_environment(self.config)
        command = RouterSim(env=env, workdir=self.cwd).hook_command(hook)
        return subprocess.run(command, input=self.substitute(data), capture_output=True, env=env, cwd=self.cwd,
                              timeout=120)


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzGateway]:
    """A real gateway CONDOR_CONFIG (routes "Slurm" by hpcpull and "Other" not) read in this
    process, and the job directories TRANSLATE makes for jobs 78.0 and 78.4."""
    # tmpfs when there is one: a case costs a few file operations, 20x faster there than on disk
    shm = Path("/dev/shm")
    in_memory = shm.is_dir() and os.access(shm, os.W_OK)
    root = Path(tempfile.mkdtemp(prefix="hpcpull-fuzz-", dir=shm)) if in_memory else tmp_path_factory.mktemp("fuzz")
    no_batch = root / "no-batch-commands"
    no_batch.mkdir()
    scratch = root / "scratch"
    scratch.mkdir(mode=0o1777)
    home = root / "home" / "alice" / "jobs"
    home.mkdir(parents=True)
    cwd = root / "cwd"
    cwd.mkdir()
    gateway_dir = root / "gateway"
    config = write_gateway_config(
        gateway_dir,
        routes={"Slurm": ROUTE_BODY, "Other": ROUTE_BODY},
        knobs={
            "HPCPULL_ROUTE_NAMES": "Slurm",
            "HPCPULL_LRMS": "slurm",
            "HPCPULL_SCRATCH_ROOT": str(scratch),
            "HPCPULL_STATUS_CACHE_DIR": str(gateway_dir / "status"),
            "HPCPULL_STATUS_MAX_AGE": "1",
            "HPCPULL_EXIT_FILE_GRACE": "2",
            "HPCPULL_COMMAND_TIMEOUT": "5",
            "HPCPULL_SCHEDD_DOUBLE": str(gateway_dir / "schedd-double.jsonl"),
            "HPCPULL_LRMS_ENVIRONMENT": f"PATH={no_batch}",
            "HPCPULL_ROUTE_Slurm_PARTITION": "debug",
            # No batch system here: TRANSLATE would only record failed submissions, and
            # UPDATE's submission path is fuzzed all the same.
            "HPCPULL_SUBMIT_AT_ROUTING": "false",
        },
    )
    # The schedd test double's queue: empty, as if the source jobs had left it (CLEANUP asks).
    (gateway_dir / "schedd-double.jsonl.queue.json").write_text("{}")
    old_config, old_cwd = os.environ.get("CONDOR_CONFIG"), os.getcwd()
    os.environ["CONDOR_CONFIG"] = str(config)
    htcondor2.reload_config()
    os.chdir(cwd)  # a relative path in a fuzzed ad lands in the tmp dir
    try:
        gw = FuzzGateway(root, config, scratch, home, root / "template", cwd)
        for proc in (0, 4):
            text = SEEDS["translate"].replace("ProcId = 0\n", f"ProcId = {proc}\n")
            stdout, code, lines = protocol.run_hook("translate", translate.translate, gw.substitute(text.encode()))
            assert (code, lines) == (0, []), lines
            assert "HpcPullRouteError" not in stdout
        finished = scratch / "alice" / "78" / "4"
        (finished / ".hpcpull" / "stdout").write_text("hello\n")
        (finished / ".hpcpull" / "stderr").write_text("")
        (finished / "result.txt").write_text("42\n")
        shutil.copytree(scratch / "alice", gw.template, symlinks=True)
        yield gw
    finally:
        os.chdir(old_cwd)
        if in_memory:
            shutil.rmtree(root, ignore_errors=True)
        if old_config is None:
            os.environ.pop("CONDOR_CONFIG", None)
        else:
            os.environ["CONDOR_CONFIG"] = old_config
        htcondor2.reload_config()


# ---------------------------------------------------------------------------- the contract


def router_reads(stdout: str) -> classad2.ClassAd:
    """What the router makes of hook stdout: "\\n"-separated lines, each inserted alone."""
    ad = classad2.ClassAd()
    for line in stdout.split("\n"):
        if not line:
            continue
        one = classad2.parseOne(line + "\n", OLD)
        assert len(one) == 1, f"stdout line is not one 'Name = expr': {line[:200]!r}"
        ad.update(one)
    return ad


def _router_could_write(ad_text: str) -> bool:
    """An old-syntax ad as the router writes one: "\\n"-separated lines, each one ``Name = expr``."""
    lines = [line for line in ad_text.split("\n") if line.strip(" \t\r\f\v")]  # ASCII blanks, as ClassAds
    if any(too_deep(line) for line in lines):
        return False  # the router's own unparser overflows its stack long before (classads.py)
    return bool(lines) and "\x00" not in ad_text and all(
        len(classad2.parseOne(line + "\n", OLD)) == 1 for line in lines)


def well_formed(hook: str, stdin: bytes) -> bool:
    """Whether ``stdin`` has the shape the router gives ``hook`` (src/condor_job_router/
    JobRouterHookMgr.cpp: TRANSLATE the one-line route ad, "------" and the source ad;
    FINALIZE the source ad, "------" and the copy; UPDATE and CLEANUP the copy; ads in old
    syntax): if so, no hook may call it malformed, whatever the values are."""
    try:
        text = stdin.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if hook == "translate":
        route_text, sep, job_text = text.partition("\n------\n")
        if any(too_deep(line) for line in route_text.split("\n")):
            return False
        try:
            route = classad2.parseOne(route_text, classad2.ParserType.New)
        except Exception:  # noqa: BLE001 - classad2 raises several types for bad syntax
            return False
        return bool(sep) and isinstance(route.get("Name"), str) and _router_could_write(job_text) and (
            "JobUniverse" in classad2.parseOne(job_text, OLD))
    if hook == "finalize":
        source_text, sep, routed_text = text.partition("\n------\n")
        return bool(sep) and _router_could_write(source_text) and _router_could_write(routed_text)
    return _router_could_write(text)


def check_contract(hook: str, call: Call, stdin: Optional[bytes] = None) -> Optional[classad2.ClassAd]:
    """Assert the hook contract for one call; returns what the router read from stdout."""
    code, lines, stdout = call.exit_code, call.lines, call.stdout
    assert code in ALLOWED_EXIT[hook], (code, lines)
    assert len(lines) <= 1, lines
    for line in (line.replace("\n", " ") for line in lines):  # what protocol._main prints
        assert line.startswith(f"hpcpull {hook}: "), line[:200]
        assert "\r" not in line and "\x00" not in line, f"stderr line is not one clean line: {line[:200]!r}"
        assert "internal error" not in line, line[:500]  # an exception no code path expected
    malformed = bool(lines) and (" malformed input: " in lines[0] or "stdin is not UTF-8" in lines[0])
    if malformed:
        assert (code, stdout) == (MALFORMED_EXIT[hook], ""), (code, lines)
        assert stdin is None or not well_formed(hook, stdin), f"well-formed input refused: {lines}"
    if hook == "translate":
        assert (code == 2) == malformed, (code, lines)
        if code == 1:
            assert lines and ("unknown route" in lines[0] or "scratch root" in lines[0]), lines
    if code != 0 or hook == "cleanup":
        assert stdout == "", stdout[:300]
        return None
    if not stdout:
        assert hook != "translate", "TRANSLATE exited 0 without printing the routed ad"
        return None
    assert stdout.endswith("\n") and "\x00" not in stdout
    assert all(line.strip() for line in stdout.split("\n")[:-1]), "blank line in hook stdout"
    ad = router_reads(stdout)
    if hook == "translate":
        assert "JobUniverse" in ad, "TRANSLATE output without JobUniverse makes the router EXCEPT"
        if "HpcPullRouteError" in ad:  # routed to a hold: the reason is also the one stderr line
            assert lines and " will be held: " in lines[0], lines
    return ad


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("hook", HOOKS)
def test_the_seeds_reach_the_deep_paths(fuzz_gateway: FuzzGateway, hook: str) -> None:
    """Unmutated, each seed is routed/updated/finalized/cleaned for real: the fuzz starts deep."""
    call = fuzz_gateway.run(hook, SEEDS[hook].encode())
    ad = check_contract(hook, call)
    assert call.exit_code == 0
    if hook == "translate":
        assert ad is not None and ad["HpcPullJobDir"] == str(fuzz_gateway.scratch / "alice" / "78" / "0")
        assert "HpcPullRouteError" not in ad
    elif hook == "update":  # tried to submit: sbatch is not on the batch commands' PATH
        assert call.stdout == "" and "submit deferred" in call.lines[0], call.lines
    elif hook == "finalize":
        assert ad is not None and ad["SpooledOutputFiles"] == "result.txt", call.lines
        assert (fuzz_gateway.home / "out.78.4").read_text() == "hello\n"
    else:
        assert not (fuzz_gateway.scratch / "alice" / "78" / "4").exists()


@pytest.mark.parametrize("hook", HOOKS)
@FUZZ
@given(data=st.data())
def test_mutated_router_stdin_keeps_the_contract(fuzz_gateway: FuzzGateway, hook: str, data: st.DataObject) -> None:
    stdin = data.draw(mutated_stdin(hook), label="stdin")
    assume(_names_only_safe_paths(stdin))
    check_contract(hook, fuzz_gateway.run(hook, stdin), fuzz_gateway.substitute(stdin))


@pytest.mark.parametrize("hook", HOOKS)
@FUZZ
@given(stdin=garbage)
def test_garbage_is_malformed_input(fuzz_gateway: FuzzGateway, hook: str, stdin: bytes) -> None:
    assume(_names_only_safe_paths(stdin))
    call = fuzz_gateway.run(hook, stdin)
    check_contract(hook, call, stdin)
    try:
        stdin.decode("utf-8")
    except UnicodeDecodeError:
        assert call.lines == [f"hpcpull {hook}: stdin is not UTF-8 text"]
        assert (call.exit_code, call.stdout) == (MALFORMED_EXIT[hook], "")


# ---------------------------------------------------------------------------- regressions


def _translate_with(**values: str) -> str:
    """The TRANSLATE seed with attribute lines replaced (or added)."""
    text = SEEDS["translate"]
    for name, value in values.items():
        text = re.sub(rf"^{name} = .*$", lambda _m, n=name, v=value: f"{n} = {v}", text, flags=re.M) \
            if re.search(rf"^{name} = ", text, flags=re.M) else text + f"{name} = {value}\n"
    return text



@pytest.mark.parametrize("char", LINE_BREAKS_IN_STRINGS, ids=lambda c: f"U+{ord(c):04X}")
def test_line_break_characters_inside_string_values_are_routed(fuzz_gateway: FuzzGateway, char: str) -> None:
    """Regression: parse_old_ad split input with str.splitlines(), so a job whose Arguments held a
    form feed or U+2028 was "malformed" (TRANSLATE exit 2, retried forever).  The router splits at
    "\\n" only and prints these characters raw inside the string."""
    arguments = f"a{char}b c"
    call = fuzz_gateway.run("translate", _translate_with(Arguments=f'"{arguments}"').encode())
    ad = check_contract("translate", call)
    assert call.exit_code == 0 and ad is not None, call.lines
    assert ad["Arguments"] == arguments and "HpcPullRouteError" not in ad


@pytest.mark.parametrize("hook", ["update", "finalize", "cleanup"])
def test_line_separator_in_a_value_does_not_stop_the_other_hooks(fuzz_gateway: FuzzGateway, hook: str) -> None:
    """The same bug made UPDATE print nothing forever (job never submitted) and FINALIZE return no output."""
    text = SEEDS[hook].replace('Arguments = "-c', 'Arguments = "\u2028\x0c-c')
    call = fuzz_gateway.run(hook, text.encode())
    check_contract(hook, call, text.encode())
    assert call.exit_code == 0
    assert not any("malformed" in line for line in call.lines), call.lines
    if hook == "update":
        assert "submit deferred" in call.lines[0]
    elif hook == "finalize":
        assert "SpooledOutputFiles = \"result.txt\"" in call.stdout
    else:
        assert not (fuzz_gateway.scratch / "alice" / "78" / "4").exists()


def _chain(levels: int, unit: str = " + 1") -> str:
    return "1" + unit * levels


@pytest.mark.parametrize("hook,expr", [
    ("translate", _chain(30_000)),                     # printOld overflowed the stack (~25,000 levels)
    ("translate", "a" + ".b" * 100_000),               # parseOne overflowed it (~90,000 levels)
    ("update", "true" + " && true" * 200_000),
    ("finalize", "x" + "[0]" * 40_000),
    ("cleanup", _chain(300_000)),
], ids=["plus-30k", "select-100k", "and-200k", "subscript-40k", "plus-300k"])
def test_a_too_deep_expression_is_malformed_input_not_a_segfault(
    fuzz_gateway: FuzzGateway, hook: str, expr: str,
) -> None:
    """Regression: the C++ ClassAd library recurses on expression depth; a hook given such a
    chain died of SIGSEGV with nothing on stderr.  Run as a process: a crash must fail the test,
    not pytest."""
    text = SEEDS[hook].replace("MyType = ", f"DeepChain = {expr}\nMyType = ", 1)
    proc = fuzz_gateway.run_process(hook, text.encode())
    assert proc.returncode == MALFORMED_EXIT[hook], (proc.returncode, proc.stderr[-300:])
    assert proc.stdout == b""
    assert proc.stderr.decode().count("\n") == 1 and b" too deep to handle" in proc.stderr, proc.stderr[-300:]


def test_a_too_deep_route_ad_is_malformed_input(fuzz_gateway: FuzzGateway) -> None:
    text = SEEDS["translate"].replace("TargetUniverse = 5", f"TargetUniverse = {_chain(100_000)}", 1)
    call = fuzz_gateway.run("translate", text.encode())
    check_contract("translate", call, text.encode())
    assert call.exit_code == 2 and "route ad line 1 has more than" in call.lines[0]


def test_a_long_but_shallow_expression_is_routed(fuzz_gateway: FuzzGateway) -> None:
    """Below the limit (and a 1 MB list, and 1 MB strings full of operator characters) is a job."""
    values = {
        "Chain": _chain(9_000), "BigList": "{ " + "1.5, " * 200_000 + "1 }",
        "Environment": '"' + "A=1+2-3*4/5.6 " * 80_000 + '"', "Arguments": '"' + "x" * MB + '"',
    }
    call = fuzz_gateway.run("translate", _translate_with(**values).encode())
    ad = check_contract("translate", call)
    assert call.exit_code == 0 and ad is not None, call.lines
    assert ad["Arguments"] == "x" * MB and ad["Environment"].startswith("A=1+2-3*4/5.6 A=")
    assert str(ad.lookup("Chain")) == _chain(9_000)


@pytest.mark.parametrize("hook", HOOKS)
def test_windows_line_endings_are_read_like_the_router_writes(fuzz_gateway: FuzzGateway, hook: str) -> None:
    """CRLF: each line still holds one Name = expr (the \\r is blank space to the ClassAd lexer)."""
    text = SEEDS[hook].replace("\n", "\r\n").replace("\n------\r\n", "\n------\n")  # the router's own separator
    call = fuzz_gateway.run(hook, text.encode())
    check_contract(hook, call, text.encode())
    assert call.exit_code == 0 and not any("malformed" in line for line in call.lines), call.lines


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("stdin,message", [
    (b"", "malformed input: "),
    (b"\n\n\n", "malformed input: "),
    (b"\xff\xfe\x00\x01", "stdin is not UTF-8 text"),
    (b"A = 1\x00\n------\nB = 2\n", "malformed input: "),
    (b"[ Name = \"Slurm\" ]\n------\n------\n", "malformed input: "),
])
def test_hopeless_stdin_gives_exactly_one_line(
    fuzz_gateway: FuzzGateway, hook: str, stdin: bytes, message: str,
) -> None:
    call = fuzz_gateway.run(hook, stdin)
    check_contract(hook, call, stdin)
    assert (call.exit_code, call.stdout) == (MALFORMED_EXIT[hook], "")
    assert len(call.lines) == 1 and message in call.lines[0], call.lines


@pytest.mark.parametrize("hook", ["translate", "finalize"])
def test_missing_or_swapped_separator_is_malformed(fuzz_gateway: FuzzGateway, hook: str) -> None:
    for text in (SEEDS[hook].replace("\n------\n", "\n", 1), SEEDS[hook].replace("\n------\n", "\n-----\n", 1)):
        call = fuzz_gateway.run(hook, text.encode())
        check_contract(hook, call, text.encode())
        assert (call.exit_code, call.stdout) == (MALFORMED_EXIT[hook], "") and "------" in call.lines[0], call.lines
    head, sep, tail = SEEDS[hook].partition("\n------\n")
    swapped = tail.rstrip("\n") + sep + head + "\n"
    call = fuzz_gateway.run(hook, swapped.encode())
    check_contract(hook, call, swapped.encode())
    if hook == "translate":  # the job ad is no route ad
        assert call.exit_code == 2 and "route ad does not parse" in call.lines[0], call.lines
    else:  # two good ads, but the second (the "copy") has no hpcpull RouteName: nothing to do
        assert (call.exit_code, call.stdout, call.lines) == (0, "", [])


def test_a_duplicated_attribute_keeps_the_last_value(fuzz_gateway: FuzzGateway) -> None:
    """As the router's own ClassAd::Insert does when it reads an ad line by line."""
    text = SEEDS["translate"].replace("RequestMemory = 64\n", "RequestMemory = 64\nRequestMemory = 128\n")
    ad = check_contract("translate", fuzz_gateway.run("translate", text.encode()))
    assert ad is not None and ad["RequestMemory"] == 128


def test_a_carriage_return_in_a_value_does_not_reach_stderr(fuzz_gateway: FuzzGateway) -> None:
    text = SEEDS["update"].replace('RouteName = "Slurm"\n', 'RouteName = "Slurm"\nHpcPullRouteError = "bad\rjob"\n')
    call = fuzz_gateway.run("update", text.encode())
    assert call.lines and "\r" not in call.lines[0].replace("\n", " ")


@pytest.mark.parametrize("values", [{"Owner": '"' + "y" * MB + '"'}, {}], ids=["owner", "route"])
def test_a_huge_value_gives_a_bounded_stderr_line(fuzz_gateway: FuzzGateway, values: dict[str, str]) -> None:
    text = _translate_with(**values) if values else SEEDS["translate"].replace('"Slurm"', '"' + "x" * MB + '"', 1)
    call = fuzz_gateway.run("translate", text.encode())
    assert call.lines and len(call.lines[0]) <= 4096


def test_a_foreign_job_dir_does_not_make_cleanup_fail_forever(fuzz_gateway: FuzzGateway) -> None:
    text = SEEDS["cleanup"].replace(f'HpcPullJobDir = "{SCRATCH}/alice/78/4"', 'HpcPullJobDir = "/elsewhere"')
    call = fuzz_gateway.run("cleanup", text.encode())
    check_contract("cleanup", call, text.encode())
    assert call.exit_code == 0, call.lines


# ---------------------------------------------------------------------------- the real executables


def _process_cases() -> list:
    cases = []
    for hook in HOOKS:
        seed = SEEDS[hook].encode()
        cut = seed.index(b"Cmd = ") + 9  # inside a string value
        for name, stdin in (
            ("seed", seed),
            ("garbage", b"\xff\xfe garbage\n"),
            ("truncated", seed[:cut]),
            ("1MB-value", seed.replace(b"MyType = ", b"Huge = \"" + b"x" * MB + b"\"\nMyType = ", 1)),
            ("quote-and-NUL", seed.replace(b"JobPrio = 0\n", b"JobPrio = \"unbalanced\nJobPrio = 0\x00\n", 1)),
        ):
            cases.append(pytest.param(hook, stdin, id=f"{hook}-{name}"))
    return cases


@pytest.mark.parametrize("hook,stdin", _process_cases())
def test_the_executables_do_what_run_hook_returns(fuzz_gateway: FuzzGateway, hook: str, stdin: bytes) -> None:
    """The process (hooks/hpcpull-<hook> as RouterSim.hook_command runs it) vs in-process run_hook."""
    call = fuzz_gateway.run(hook, stdin)
    check_contract(hook, call, fuzz_gateway.substitute(stdin))
    proc = fuzz_gateway.run_process(hook, stdin)
    assert proc.returncode == call.exit_code, proc.stderr[-500:]
    assert proc.stdout.decode() == call.stdout
    assert proc.stderr.decode().split("\n") == [line.replace("\n", " ") for line in call.lines] + [""]
