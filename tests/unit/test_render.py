"""hpcpull.script.render: templates, quoting filters, and hostile job ads that must not inject anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import classad2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hpcpull.node.launcher
from hpcpull.config import RouteSettings
from hpcpull.errors import ConfigError, JobRejected
from hpcpull.lrms import batch_system_class
from hpcpull.script.payload import join_v2
from hpcpull.script.render import (
    directive,
    jinja_environment,
    packaged_template_dir,
    render_batch_script,
    shquote,
    template_search_path,
)

RouteFactory = Callable[..., RouteSettings]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
JOB_DIR = Path("/scratch/hpcpull/alice/78/0")

# Directives every script of the default test route gets (job dir as above, no memory etc.).
BASE_DIRECTIVES = [
    f"#SBATCH --output={JOB_DIR}/.hpcpull/batch.out",
    f"#SBATCH --chdir={JOB_DIR}",
    "#SBATCH --nodes=1",
    "#SBATCH --ntasks=1",
    "#SBATCH --cpus-per-task=1",
]

HOSTILE_ARGS = [
    "a\n#SBATCH --uid=0",
    "\r\n#SBATCH --partition=evil",
    "#SBATCH --account=evil",
    "$(touch PWNED_subst)",
    "`touch PWNED_backtick`",
    "'; touch PWNED_quote; '",
    "\"; touch PWNED_dquote; \"",
    "x; touch PWNED_semicolon",
    "x && touch PWNED_and | cat",
    "$'\\x41' ${HOME} $HOME ~ * ? [a] {a,b} !! \\",
    "tab\there\vvertical\fform\x1bescape\x7fdel",
    "",
    "-- --stdout /etc/passwd",
    "ünïcödé 中文 😀 \u2028 \x85",
    "y" * 100_000,
]

HOSTILE_ENV = {
    "PLAIN": "$(touch PWNED_env)",
    "MULTI": "line1\n#SBATCH --uid=0\nline3",
    "QUOTES": "it's `touch PWNED_env_bt`; \"x\"",
    "LONG": "z" * 50_000,
    "IFS": ":",  # bash-special: must reach the payload without changing the wrapper
    "UID": "0",  # readonly in bash: exporting it would kill the wrapper
    "BASH_ENV": "/nonexistent/$(touch PWNED_bashenv)",
    "hpcpull_python": "/bin/false",  # the wrapper's own variable: must not be overwritten
    "EMPTY": "",
}

HOSTILE_TEXT = "x\n#SBATCH --uid=0\n$(touch PWNED_owner) `touch PWNED_owner2` '\"; rm -rf ~"


def fixture_ad() -> classad2.ClassAd:
    text = (FIXTURES / "router-stdin" / "translate.stdin").read_text()
    return classad2.parseOne(text.split("------\n", 1)[1], classad2.ParserType.Old)


def simple_ad(**attrs: Any) -> classad2.ClassAd:
    job = classad2.ClassAd()
    job["ClusterId"] = 78
    job["ProcId"] = 0
    job["Owner"] = "alice"
    job["GlobalJobId"] = "submit.example.org#78.0#1795238341"
    job["Cmd"] = "/home/alice/jobs/run.sh"
    job["Iwd"] = "/home/alice/jobs"
    job["In"] = "/dev/null"
    job["Out"] = "out"
    job["Err"] = "err"
    for name, value in attrs.items():
        job[name] = value
    return job


def sbatch_lines(script: str) -> list[str]:
    return [line for line in script.split("\n") if line.startswith("#SBATCH")]


def exec_words(script: str) -> list[str]:
    """The payload's argv, decoded from the last line of the exec command (the one after
    ``--status``: another line may start with "    -- " too, e.g. an Owner of "--")."""
    lines = script.split("\n")
    status = [i for i, line in enumerate(lines) if line == "    --status .hpcpull/exit_status \\"]
    assert len(status) == 1 and lines[status[0] + 1].startswith("    -- ")
    return decode_words(lines[status[0] + 1][len("    -- "):])


def decode_words(text: str) -> list[str]:
    """Decode the words shquote produces: bare, '...' (with '\\''), and $'...' (\\\\, \\', \\xHH)."""
    words = []
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        buf = b""
        while i < len(text) and text[i] != " ":
            if text.startswith("$'", i):
                i += 2
                while text[i] != "'":
                    if text[i] == "\\":
                        if text[i + 1] == "x":
                            buf += bytes([int(text[i + 2:i + 4], 16)])
                            i += 4
                        else:
                            buf += text[i + 1].encode()
                            i += 2
                    else:
                        buf += text[i].encode()
                        i += 1
                i += 1
            elif text[i] == "'":
                end = text.index("'", i + 1)
                buf += text[i + 1:end].encode()
                i = end + 1
            elif text[i] == "\\":
                buf += text[i + 1].encode()
                i += 2
            else:
                buf += text[i].encode()
                i += 1
        words.append(buf.decode())
    return words


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "plain"),
        ("/dev/null", "/dev/null"),
        ("a-b_c.d:e,f+g@h%i", "a-b_c.d:e,f+g@h%i"),
        ("", "''"),
        ("two words", "'two words'"),
        ("it's", "'it'\\''s'"),
        ("A=B", "'A=B'"),  # never a bare assignment word
        ("~", "'~'"),
        ("$(id)", "'$(id)'"),
        ("a\nb", "$'a\\x0ab'"),
        ("it's\\\n", "$'it\\'s\\\\\\x0a'"),
        ("é\t", "$'\\xc3\\xa9\\x09'"),
        (42, "42"),
    ],
)
def test_shquote(value: Any, quoted: str) -> None:
    assert shquote(value) == quoted


def test_shquote_rejects_nul() -> None:
    with pytest.raises(JobRejected, match="NUL"):
        shquote("a\0b")


NASTY_WORDS = HOSTILE_ARGS + list(HOSTILE_ENV.values()) + [HOSTILE_TEXT, "\x01\x02\x1f", "\\x41", "'", "''", "\\"]


def bash_words(words: list[str]) -> list[str]:
    """What bash makes of the shquoted words (printf each with a NUL terminator)."""
    script = "printf '%s\\0' " + " ".join(shquote(w) for w in words) + "\n"
    out = subprocess.run(["bash"], input=script.encode(), capture_output=True, check=True, timeout=60).stdout
    return [w.decode() for w in out.split(b"\0")[:-1]]


def test_shquote_through_bash() -> None:
    assert bash_words(NASTY_WORDS) == NASTY_WORDS


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))), min_size=1))
def test_shquote_through_bash_property(words: list[str]) -> None:
    assert bash_words(words) == words


@pytest.mark.parametrize("value", ["debug", "gpu-a100", "proj_123", "normal,long", "cluster@part", 8, "a=b"])
def test_directive_accepts(value: Any) -> None:
    assert directive(value) == str(value)


@pytest.mark.parametrize(
    "value", ["short\n#SBATCH --uid=0", "debug\n", "two words", "", "$(id)", "a;b", "x'y", "é", "a\tb"]
)
def test_directive_rejects(value: str) -> None:
    with pytest.raises(JobRejected, match="batch directive"):
        directive(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "00:01:00"),
        (60, "00:01:00"),
        (61, "00:02:00"),
        (90.5, "00:02:00"),
        (3600, "01:00:00"),
        (7200, "02:00:00"),
        (86399, "1-00:00:00"),
        (86400, "1-00:00:00"),
        (86401, "1-00:01:00"),
        (3 * 86400 + 5 * 3600 + 7 * 60, "3-05:07:00"),
    ],
)
def test_slurm_time(seconds: float, text: str) -> None:
    assert batch_system_class("slurm").format_walltime(seconds) == text


@pytest.mark.parametrize(
    ("lrms", "seconds", "text"),
    [
        ("pbs", 1, "00:00:01"), ("pbspro", 90.5, "00:01:31"), ("sge", 100 * 3600 + 61, "100:01:01"),
        ("lsf", 1, "1"), ("lsf", 60, "1"), ("lsf", 61, "2"), ("lsf", 2 * 86400, "2880"),
    ],
)
def test_walltime_per_batch_system(lrms: str, seconds: float, text: str) -> None:
    assert batch_system_class(lrms).format_walltime(seconds) == text


def test_walltime_filter_asks_the_route_batch_system(route_factory: RouteFactory) -> None:
    template = jinja_environment(route_factory()).from_string("{{ 3601|walltime }}")
    assert [template.render(lrms=lrms) for lrms in ("slurm", "pbs", "lsf")] == ["01:01:00", "01:00:01", "61"]


# --------------------------------------------------------------------------- templates


def test_packaged_templates_are_found() -> None:
    assert (packaged_template_dir() / "slurm" / "job.sh.j2").is_file()
    assert (packaged_template_dir() / "common" / "payload.sh.j2").is_file()


def test_search_path_puts_existing_site_dirs_first(route_factory: RouteFactory, tmp_path: Path) -> None:
    route = route_factory(template_dirs=[tmp_path / "missing", tmp_path])
    assert template_search_path(route) == [tmp_path, packaged_template_dir()]


def test_render_the_router_fixture(route_factory: RouteFactory) -> None:
    script = render_batch_script(fixture_ad(), route_factory(), JOB_DIR)
    assert script.startswith("#!/bin/bash\n")
    assert script.endswith("'date >> /home/alice/jobs/RAN-src78.0.txt; sleep 8'\n")
    assert sbatch_lines(script) == BASE_DIRECTIVES + ["#SBATCH --mem=64M"]
    assert "--job-name" not in script.replace("There is no --job-name", "")
    assert exec_words(script) == ["./sh", "-c", "date >> /home/alice/jobs/RAN-src78.0.txt; sleep 8"]


def test_site_template_overrides_the_packaged_one(route_factory: RouteFactory, tmp_path: Path) -> None:
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm" / "job.sh.j2").write_text(
        "#!/bin/bash\n#SBATCH --partition=site-{{ route|directive }}\n{% include 'common/payload.sh.j2' %}"
    )
    script = render_batch_script(simple_ad(), route_factory(template_dirs=[tmp_path]), JOB_DIR)
    assert sbatch_lines(script) == ["#SBATCH --partition=site-Slurm"]
    assert "exec \"$hpcpull_python\" -I .hpcpull/launcher.py" in script  # packaged partial


def test_site_partial_overrides_the_packaged_partial(route_factory: RouteFactory, tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "site_setup.sh.j2").write_text("source /site/env.sh\n")
    script = render_batch_script(simple_ad(), route_factory(template_dirs=[tmp_path]), JOB_DIR)
    assert "\nsource /site/env.sh\n" in script
    assert sbatch_lines(script) == BASE_DIRECTIVES  # the packaged job.sh.j2 is still used


def test_route_can_name_another_template(route_factory: RouteFactory, tmp_path: Path) -> None:
    (tmp_path / "special.sh.j2").write_text("#!/bin/bash\necho {{ job.Owner|shquote }}\n")
    route = route_factory(template_dirs=[tmp_path], template="special.sh.j2")
    assert render_batch_script(simple_ad(), route, JOB_DIR) == "#!/bin/bash\necho alice\n"


def test_missing_variable_fails_naming_it(route_factory: RouteFactory, tmp_path: Path) -> None:
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm" / "job.sh.j2").write_text("#!/bin/bash\n#SBATCH --qos={{ qos_name }}\n")
    with pytest.raises(ConfigError, match="qos_name"):
        render_batch_script(simple_ad(), route_factory(template_dirs=[tmp_path]), JOB_DIR)


def test_missing_attribute_fails_naming_it(route_factory: RouteFactory, tmp_path: Path) -> None:
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm" / "job.sh.j2").write_text("{{ resources.cpu_count }}\n")
    with pytest.raises(ConfigError, match="cpu_count"):
        render_batch_script(simple_ad(), route_factory(template_dirs=[tmp_path]), JOB_DIR)


def test_missing_template_is_a_config_error(route_factory: RouteFactory) -> None:
    with pytest.raises(ConfigError, match="no/such.sh.j2 not found"):
        render_batch_script(simple_ad(), route_factory(template="no/such.sh.j2"), JOB_DIR)


def test_template_syntax_error_is_a_config_error(route_factory: RouteFactory, tmp_path: Path) -> None:
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm" / "job.sh.j2").write_text("{% if %}\n")
    with pytest.raises(ConfigError, match="job.sh.j2:1"):
        render_batch_script(simple_ad(), route_factory(template_dirs=[tmp_path]), JOB_DIR)


def test_hostile_partition_is_rejected(route_factory: RouteFactory) -> None:
    with pytest.raises(JobRejected, match="batch directive"):
        render_batch_script(simple_ad(), route_factory(partition="short\n#SBATCH --uid=0"), JOB_DIR)
    with pytest.raises(JobRejected, match="batch directive"):
        render_batch_script(simple_ad(), route_factory(account="acct --uid=0"), JOB_DIR)


def test_resource_directives(route_factory: RouteFactory) -> None:
    job = simple_ad(RequestCpus=8, RequestMemory=16000, RequestDisk=2 * 1024 * 1024 + 1, RequestGPUs=2,
                    BatchRuntime=90000)
    route = route_factory(partition="gpu", account="proj1", map_request_disk=True,
                          extra_directives=["--qos=high", "#SBATCH --constraint=a100"])
    assert sbatch_lines(render_batch_script(job, route, JOB_DIR)) == BASE_DIRECTIVES[:4] + [
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=16000M",
        "#SBATCH --time=1-01:00:00",
        "#SBATCH --tmp=2049M",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj1",
        "#SBATCH --qos=high",
        "#SBATCH --constraint=a100",
    ]
    # RequestDisk is only mapped when the route says so
    assert "--tmp" not in render_batch_script(job, route_factory(), JOB_DIR)


def test_nul_in_informational_values_is_rejected(route_factory: RouteFactory) -> None:
    job = {"ClusterId": 1, "ProcId": 0, "Owner": "alice\0evil", "Cmd": "/bin/true"}
    with pytest.raises(JobRejected, match="NUL"):
        render_batch_script(job, route_factory(), JOB_DIR)


def test_relative_job_dir_is_refused(route_factory: RouteFactory) -> None:
    with pytest.raises(ValueError, match="absolute"):
        render_batch_script(simple_ad(), route_factory(), Path("relative/dir"))


# --------------------------------------------------------------------------- hostile job ads

PAYLOAD = """#!{python}
import json, os, sys
names = {names!r}
with open("payload-result.json", "w") as f:
    json.dump({{"argv": sys.argv[1:], "stdin": sys.stdin.read(), "cwd": os.getcwd(),
               "env": {{n: os.environ.get(n) for n in names}}}}, f)
"""


def hostile_ad(cmd_name: str, in_name: str) -> classad2.ClassAd:
    return simple_ad(
        Cmd="/home/alice/jobs/" + cmd_name,
        Arguments=join_v2(HOSTILE_ARGS),
        Environment=join_v2([f"{name}={value}" for name, value in HOSTILE_ENV.items()]),
        In="/home/alice/jobs/" + in_name,
        Owner=HOSTILE_TEXT,
        GlobalJobId=HOSTILE_TEXT,
        ClusterId=HOSTILE_TEXT,
    )


def test_hostile_job_ad_runs_with_exactly_its_argv(route_factory: RouteFactory, tmp_path: Path) -> None:
    cmd_name = "evil $(touch PWNED_cmd) `touch PWNED_cmd2` ';x\n#SBATCH --uid=0 \\.sh"
    in_name = "in $(touch PWNED_in)'\n#SBATCH --x.txt"
    job_dir = tmp_path / "scratch" / "alice" / "78" / "0"
    (job_dir / ".hpcpull").mkdir(parents=True)
    shutil.copy(hpcpull.node.launcher.__file__, job_dir / ".hpcpull" / "launcher.py")
    exe = job_dir / cmd_name
    exe.write_text(PAYLOAD.format(python=sys.executable, names=sorted(HOSTILE_ENV)))
    exe.chmod(0o755)
    (job_dir / in_name).write_text("stdin: $(touch PWNED_stdin)\n")

    route = route_factory(python=sys.executable)
    script = render_batch_script(hostile_ad(cmd_name, in_name), route, job_dir)
    baseline = render_batch_script(simple_ad(), route, job_dir)

    # No injected directive, and no job value spans lines or carries a raw control character.
    assert sbatch_lines(script) == sbatch_lines(baseline)
    assert all(" " <= c or c == "\n" for c in script)
    assert exec_words(script) == ["./" + cmd_name] + HOSTILE_ARGS

    # Run it as Slurm would, minus Slurm: bash in some other directory.
    (job_dir / ".hpcpull" / "job.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in HOSTILE_ENV and not k.startswith("SLURM_")}
    proc = subprocess.run(
        ["bash", str(job_dir / ".hpcpull" / "job.sh")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((job_dir / "payload-result.json").read_text())
    assert result["argv"] == HOSTILE_ARGS
    assert result["env"] == HOSTILE_ENV
    assert result["stdin"] == "stdin: $(touch PWNED_stdin)\n"
    assert result["cwd"] == str(job_dir)
    status = json.loads((job_dir / ".hpcpull" / "exit_status").read_text())
    assert (status["exit_code"], status["exit_signal"]) == (0, None)
    assert list(tmp_path.rglob("PWNED*")) == []
    assert not list(Path.cwd().glob("PWNED*"))


def test_htcondor_variables_are_set(route_factory: RouteFactory, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    (job_dir / ".hpcpull").mkdir(parents=True)
    shutil.copy(hpcpull.node.launcher.__file__, job_dir / ".hpcpull" / "launcher.py")
    names = ["_CONDOR_SCRATCH_DIR", "_CONDOR_JOB_IWD", "_CONDOR_JOB_AD", "FROM_SITE"]
    exe = job_dir / "run.sh"
    exe.write_text(PAYLOAD.format(python=sys.executable, names=names))
    exe.chmod(0o755)
    route = route_factory(python=sys.executable, environment_setup=["export FROM_SITE=$((6 * 7))"])
    script = render_batch_script(simple_ad(Out="log", Err="log"), route, job_dir)
    assert "--merge-stderr" in script and "--stderr" not in script
    (job_dir / ".hpcpull" / "job.sh").write_text(script)
    subprocess.run(["bash", str(job_dir / ".hpcpull" / "job.sh")], check=True, timeout=60, capture_output=True)
    result = json.loads((job_dir / "payload-result.json").read_text())
    assert result["env"] == {
        "_CONDOR_SCRATCH_DIR": str(job_dir),
        "_CONDOR_JOB_IWD": str(job_dir),
        "_CONDOR_JOB_AD": str(job_dir / ".hpcpull" / "job.ad"),
        "FROM_SITE": "42",
    }


def test_launcher_interpreter_is_resolved_before_site_setup(route_factory: RouteFactory, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    (job_dir / ".hpcpull").mkdir(parents=True)
    shutil.copy(hpcpull.node.launcher.__file__, job_dir / ".hpcpull" / "launcher.py")
    (job_dir / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (job_dir / "run.sh").chmod(0o755)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\necho fake python >&2\nexit 99\n")
    (fake / "python3").chmod(0o755)
    real = tmp_path / "realbin"
    real.mkdir()
    (real / "python3").symlink_to(sys.executable)
    route = route_factory(environment_setup=[f"export PATH={fake}:$PATH"])  # a `module load`, say
    script = render_batch_script(simple_ad(), route, job_dir)
    (job_dir / ".hpcpull" / "job.sh").write_text(script)
    env = dict(os.environ, PATH=f"{real}:/usr/bin:/bin")
    proc = subprocess.run(["bash", str(job_dir / ".hpcpull" / "job.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (job_dir / ".hpcpull" / "stdout").read_text() == "ran\n"


def test_missing_interpreter_stops_the_script(route_factory: RouteFactory, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    (job_dir / ".hpcpull").mkdir(parents=True)
    script = render_batch_script(simple_ad(), route_factory(python="no-such-python"), job_dir)
    (job_dir / ".hpcpull" / "job.sh").write_text(script)
    proc = subprocess.run(["bash", str(job_dir / ".hpcpull" / "job.sh")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 127
    assert "no-such-python is not available" in proc.stderr
    assert not (job_dir / ".hpcpull" / "exit_status").exists()


def test_failing_site_setup_stops_the_script(route_factory: RouteFactory, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    (job_dir / ".hpcpull").mkdir(parents=True)
    route = route_factory(python=sys.executable, environment_setup=["echo $UNSET_IS_FINE_HERE", "false"])
    script = render_batch_script(simple_ad(), route, job_dir)
    (job_dir / ".hpcpull" / "job.sh").write_text(script)
    proc = subprocess.run(["bash", str(job_dir / ".hpcpull" / "job.sh")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert not (job_dir / ".hpcpull" / "started").exists()


# --------------------------------------------------------------------------- property test

TEXT = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40)
ENV_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    args=st.lists(TEXT, max_size=6),
    env=st.lists(st.tuples(ENV_NAME, TEXT), max_size=5),
    owner=TEXT,
    in_name=TEXT,
)
def test_random_values_never_inject(
    route_factory: RouteFactory, args: list[str], env: list[tuple[str, str]], owner: str, in_name: str
) -> None:
    route = route_factory(partition="debug", extra_directives=["--qos=normal"])
    baseline = render_batch_script(simple_ad(), route, JOB_DIR)
    job = simple_ad(
        Arguments=join_v2(args),
        Environment=join_v2([f"{name}={value}" for name, value in env]),
        Owner=owner,
        GlobalJobId=owner,
        In=in_name if in_name.strip("/.") else "/dev/null",
    )
    try:
        script = render_batch_script(job, route, JOB_DIR)
    except JobRejected as rejected:  # only an In that names no file may be refused
        assert "does not name a file" in rejected.reason
        return
    assert sbatch_lines(script) == sbatch_lines(baseline)
    # every value stays on its line: one extra line per distinct environment variable
    assert script.count("\n") == baseline.count("\n") + len({name for name, _ in env})
    assert all(" " <= c or c == "\n" for c in script)
    assert exec_words(script) == ["./run.sh"] + args
