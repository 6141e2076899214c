"""hpcpull.script.payload: HTCondor's argument/environment syntax and the job's streams."""

from __future__ import annotations

from pathlib import Path

import classad2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcpull.errors import JobRejected
from hpcpull.script import payload as pl
from hpcpull.script.payload import Payload, join_v2, parse_arguments, parse_environment, payload_for, split_v2

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def ad(**attrs: object) -> classad2.ClassAd:
    job = classad2.ClassAd()
    job["Cmd"] = "/home/alice/jobs/run.sh"
    job["Iwd"] = "/home/alice/jobs"
    job["In"] = "/dev/null"
    job["Out"] = "out.txt"
    job["Err"] = "err.txt"
    for name, value in attrs.items():
        job[name] = value
    return job


def translate_fixture_ad() -> classad2.ClassAd:
    text = (FIXTURES / "router-stdin" / "translate.stdin").read_text()
    return classad2.parseOne(text.split("------\n", 1)[1], classad2.ParserType.Old)


# --------------------------------------------------------------------------- Arguments (V2)


def test_real_arguments_from_the_router_fixture() -> None:
    job = translate_fixture_ad()
    assert job["Arguments"] == "-c date' '>>' '/home/alice/jobs/RAN-src78.0.txt;' 'sleep' '8"
    assert parse_arguments(job) == ["-c", "date >> /home/alice/jobs/RAN-src78.0.txt; sleep 8"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", []),
        ("   ", []),
        ("a b  c", ["a", "b", "c"]),
        ("''", [""]),  # an empty argument
        ("a '' b", ["a", "", "b"]),
        ("'it''s'", ["it's"]),  # '' inside quotes is one literal quote
        ("'''quoted'''", ["'quoted'"]),
        ("'a b'c' d'", ["a bc d"]),  # quoted and bare parts join into one word
        ("x'' y", ["x", "y"]),  # '' glued to a word adds nothing
        ("one\ttwo\nthree\r\nfour", ["one", "two", "three", "four"]),  # all blanks separate
        ("'keep\ttabs\nand newlines'", ["keep\ttabs\nand newlines"]),
        ('say "hi"', ["say", '"hi"']),  # double quotes are ordinary characters
        ("back\\slash 'back\\slash'", ["back\\slash", "back\\slash"]),  # so are backslashes
        ("$(rm -rf /) `id`", ["$(rm", "-rf", "/)", "`id`"]),
    ],
)
def test_arguments_v2_quoting(raw: str, expected: list[str]) -> None:
    assert parse_arguments(ad(Arguments=raw)) == expected


@pytest.mark.parametrize("raw", ["'open", "a 'b", "'it''s", "'''"])
def test_unbalanced_quote_is_rejected(raw: str) -> None:
    with pytest.raises(JobRejected, match="unbalanced quote") as info:
        parse_arguments(ad(Arguments=raw))
    assert info.value.hold_code == 0
    assert info.value.hold_subcode == pl.HOLD_SUBCODE_ARGUMENTS


def test_arguments_win_over_args() -> None:
    assert parse_arguments(ad(Arguments="'a b'", Args="c d")) == ["a b"]
    assert parse_arguments(ad(Arguments="", Args="c d")) == []  # present though empty


def test_args_v1_splits_on_whitespace_without_quoting() -> None:
    assert parse_arguments(ad(Args="hello world")) == ["hello", "world"]
    assert parse_arguments(ad(Args=" 'a  b'\t\"c d\" ")) == ["'a", "b'", '"c', 'd"']


def test_no_arguments_at_all() -> None:
    assert parse_arguments(ad()) == []


def test_undefined_arguments_fall_back_to_args() -> None:
    job = ad(Args="x y")
    job["Arguments"] = classad2.Value.Undefined
    assert parse_arguments(job) == ["x", "y"]


def test_non_string_arguments_are_rejected() -> None:
    with pytest.raises(JobRejected, match="Arguments must be a string"):
        parse_arguments(ad(Arguments=42))


@given(st.lists(st.text(st.characters(blacklist_characters="\0"), max_size=20), max_size=8))
def test_join_and_split_round_trip(words: list[str]) -> None:
    assert split_v2(join_v2(words), "Arguments", 0) == words


def test_join_v2_matches_htcondor() -> None:
    # condor_arglist.cpp append_arg() output for these words (it quotes char by char,
    # merging adjacent quoted sections; both forms split the same way).
    assert split_v2("date' '>>' '/tmp/x;' 'sleep' '8", "Arguments", 0) == ["date >> /tmp/x; sleep 8"]
    assert join_v2(["a", "", "b c", "it's"]) == "a '' 'b c' 'it''s'"


# --------------------------------------------------------------------------- Environment


def test_environment_v2() -> None:
    job = ad(Environment="A=1 B='two words' C='it''s' D= E=x=y 'F=tab\there'")
    assert parse_environment(job) == {
        "A": "1", "B": "two words", "C": "it's", "D": "", "E": "x=y", "F": "tab\there"
    }


def test_environment_v2_keeps_order_and_later_wins() -> None:
    env = parse_environment(ad(Environment="Z=1 A=2 Z=3"))
    assert list(env.items()) == [("Z", "3"), ("A", "2")]


def test_empty_environment() -> None:
    assert parse_environment(ad(Environment="")) == {}
    assert parse_environment(ad()) == {}


def test_env_v1_semicolons() -> None:
    job = ad(Env="A=1;B=two words; C=3;;D=a=b")
    assert parse_environment(job) == {"A": "1", "B": "two words", "C": "3", "D": "a=b"}


def test_env_v1_custom_delimiter() -> None:
    assert parse_environment(ad(Env="A=1|B=2;3", EnvDelim="|")) == {"A": "1", "B": "2;3"}


def test_environment_wins_over_env() -> None:
    assert parse_environment(ad(Environment="A=v2", Env="A=v1;B=v1")) == {"A": "v2"}


def test_real_environment_from_the_condor_c_fixture() -> None:
    job = classad2.parseOne((FIXTURES / "condor-c-arrived-job.ad").read_text(), classad2.ParserType.Old)
    assert parse_environment(job) == {"SLEEP": "5"}
    assert parse_arguments(job) == ["hello", "world"]


@pytest.mark.parametrize(
    "raw",
    ["1A=x", "A-B=x", "'A B=x'", "=x", "$(id)=x", "PATH", "A.B=1", "ÄÖ=1", "'A\n#SBATCH=x'"],
)
def test_invalid_environment_names_are_rejected(raw: str) -> None:
    with pytest.raises(JobRejected) as info:
        parse_environment(ad(Environment=raw))
    assert info.value.hold_subcode == pl.HOLD_SUBCODE_ENVIRONMENT


def test_invalid_env_v1_name_is_rejected() -> None:
    with pytest.raises(JobRejected, match="not a valid environment variable name"):
        parse_environment(ad(Env="GOOD=1;BAD NAME=2"))


def test_unbalanced_environment_quote_is_rejected() -> None:
    with pytest.raises(JobRejected, match="Environment: unbalanced quote"):
        parse_environment(ad(Environment="A='x"))


# --------------------------------------------------------------------------- NUL and Cmd


@pytest.mark.parametrize("attribute", ["Cmd", "Arguments", "Args", "Environment", "Env", "In", "Out", "Err"])
def test_nul_anywhere_is_rejected(attribute: str) -> None:
    # classad2 cannot even hold a NUL (it truncates), so use a plain mapping as the ad.
    job = {"Cmd": "/bin/true", "In": "in.txt", "Out": "o", "Err": "e", attribute: "A=x\0y"}
    with pytest.raises(JobRejected, match="NUL"):
        payload_for(job)


def test_empty_cmd_is_rejected() -> None:
    with pytest.raises(JobRejected, match="no executable"):
        payload_for(ad(Cmd=""))
    job = ad()
    del job["Cmd"]
    with pytest.raises(JobRejected, match="no executable"):
        payload_for(job)


@pytest.mark.parametrize("cmd", ["/home/alice/", "..", "/home/alice/.."])
def test_cmd_that_names_no_file_is_rejected(cmd: str) -> None:
    with pytest.raises(JobRejected, match="does not name a file"):
        payload_for(ad(Cmd=cmd))


def test_staged_executable_is_its_basename() -> None:
    assert payload_for(ad()).executable == "./run.sh"
    assert payload_for(ad(Cmd="job.sh")).executable == "./job.sh"  # spooled (HTCondor-C) ad


def test_transfer_executable_false_uses_the_absolute_cmd() -> None:
    assert payload_for(ad(Cmd="/usr/bin/env", TransferExecutable=False)).executable == "/usr/bin/env"
    relative = ad(Cmd="bin/tool", TransferExecutable=False)
    assert payload_for(relative).executable == "/home/alice/jobs/bin/tool"


def test_relative_untransferred_cmd_needs_an_absolute_iwd() -> None:
    with pytest.raises(JobRejected, match="relative"):
        payload_for(ad(Cmd="tool", TransferExecutable=False, Iwd="relative/dir"))


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize(
    ("attrs", "stdin"),
    [
        ({"In": "/dev/null"}, "/dev/null"),
        ({"In": ""}, "/dev/null"),
        ({}, "/dev/null"),
        ({"In": "/home/alice/jobs/input.txt"}, "input.txt"),  # staged: sandbox-relative
        ({"In": "data/input.txt"}, "input.txt"),
        ({"In": "/shared/input.txt", "TransferIn": False}, "/shared/input.txt"),
        ({"In": "input.txt", "TransferIn": False}, "/home/alice/jobs/input.txt"),
        ({"In": "/dev/null", "TransferIn": False}, "/dev/null"),
    ],
)
def test_stdin_variants(attrs: dict[str, object], stdin: str) -> None:
    job = ad(**attrs)
    if not attrs:
        del job["In"]
    assert payload_for(job).stdin == stdin


def test_merge_stderr_when_out_equals_err() -> None:
    assert payload_for(ad(Out="job.log", Err="job.log")).merge_stderr is True
    assert payload_for(ad(Out="out.txt", Err="err.txt")).merge_stderr is False
    assert payload_for(ad(Out="/dev/null", Err="/dev/null")).merge_stderr is False
    assert payload_for(ad(Out="", Err="")).merge_stderr is False


def test_payload_of_the_router_fixture() -> None:
    assert payload_for(translate_fixture_ad()) == Payload(
        executable="./sh",
        arguments=("-c", "date >> /home/alice/jobs/RAN-src78.0.txt; sleep 8"),
        environment=(),
        stdin="/dev/null",
        merge_stderr=False,
    )


def test_error_valued_attribute_is_rejected() -> None:
    job = ad()
    job["Arguments"] = classad2.Value.Error
    with pytest.raises(JobRejected, match="Arguments evaluates to error"):
        payload_for(job)
