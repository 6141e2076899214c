"""Arguments and environment split exactly where HTCondor's starter splits them.

HTCondor's own rules (src/condor_utils/condor_arglist.cpp ``split_args`` and
``AppendArgsV1Raw_unix``, src/condor_utils/env.cpp ``MergeFrom(ClassAd)``,
``MergeFromV1AutoDelim`` and ``ReadFromDelimitedString``) separate words at space, tab,
LF and CR only: a ``switch`` on those four characters, not ``isspace()`` and not Python's
``str.split()``.  Every other character -- C's other isspace() characters, the ASCII
information separators and the Unicode spaces alike -- is part of the word, so the payload
must get it inside one argument, exactly as under a real starter.
"""

from __future__ import annotations

import classad2
import pytest

from hpcpull.errors import JobRejected
from hpcpull.script import payload as pl
from hpcpull.script.payload import parse_arguments, parse_environment, payload_for, split_env_v1, split_v1, split_v2

SEPARATORS = [" ", "\t", "\n", "\r"]

# Characters Python's str.split() treats as whitespace that HTCondor does not, by class.
NOT_SEPARATORS = {
    "vertical tab (C isspace)": "\v",
    "form feed (C isspace)": "\f",
    "file separator U+001C": "\x1c",
    "group separator U+001D": "\x1d",
    "record separator U+001E": "\x1e",
    "unit separator U+001F": "\x1f",
    "next line U+0085": "\x85",
    "no-break space U+00A0": "\xa0",
    "ogham space mark U+1680": "\u1680",
    **{f"U+{code:04X} (U+2000-U+200A spaces)": chr(code) for code in range(0x2000, 0x200B)},
    "line separator U+2028": "\u2028",
    "paragraph separator U+2029": "\u2029",
    "narrow no-break space U+202F": "\u202f",
    "medium mathematical space U+205F": "\u205f",
    "ideographic space U+3000": "\u3000",
}
NOT_SEPARATOR_PARAMS = [pytest.param(char, id=name) for name, char in NOT_SEPARATORS.items()]


def ad(**attrs: object) -> classad2.ClassAd:
    job = classad2.ClassAd()
    job["Cmd"] = "/home/alice/jobs/run.sh"
    job["Iwd"] = "/home/alice/jobs"
    for name, value in attrs.items():
        job[name] = value
    return job


def test_the_list_is_every_character_python_splits_at_and_htcondor_does_not() -> None:
    python_spaces = {chr(code) for code in range(0x110000) if chr(code).isspace()}
    assert python_spaces - set(SEPARATORS) == set(NOT_SEPARATORS.values())


# --------------------------------------------------------------------------- Args (V1)


def test_args_nbsp_is_one_argument_as_in_htcondor() -> None:
    job = classad2.parseOne('Cmd = "/bin/x"\nArgs = "in.dat\u00a0--force"\n', classad2.ParserType.Old)
    assert parse_arguments(job) == ["in.dat\u00a0--force"]
    assert payload_for(job).arguments == ("in.dat\u00a0--force",)


@pytest.mark.parametrize("char", NOT_SEPARATOR_PARAMS)
def test_args_v1_does_not_split_at(char: str) -> None:
    assert parse_arguments(ad(Args=f"in.dat{char}--force  next")) == [f"in.dat{char}--force", "next"]
    assert parse_arguments(ad(Args=f"{char}lead trail{char}")) == [f"{char}lead", f"trail{char}"]


@pytest.mark.parametrize("sep", SEPARATORS, ids=["space", "tab", "LF", "CR"])
def test_args_v1_splits_at_each_of_the_four_separators(sep: str) -> None:
    assert parse_arguments(ad(Args=f"{sep}a{sep}{sep}b{sep}")) == ["a", "b"]


def test_args_v1_runs_of_mixed_separators_make_one_gap() -> None:
    assert split_v1(" \t\r\n a \r\n\t b\n") == ["a", "b"]
    assert split_v1("") == [] and split_v1(" \t\r\n") == []


def test_args_v1_has_no_quoting() -> None:
    assert split_v1("'a b' \"c d\" e\\ f") == ["'a", "b'", '"c', 'd"', "e\\", "f"]


# --------------------------------------------------------------------------- Arguments (V2)


@pytest.mark.parametrize("char", NOT_SEPARATOR_PARAMS)
def test_arguments_v2_does_not_split_at(char: str) -> None:
    assert parse_arguments(ad(Arguments=f"in.dat{char}--force next")) == [f"in.dat{char}--force", "next"]
    assert parse_arguments(ad(Arguments=f"'quoted {char}' x{char}'y z'")) == [f"quoted {char}", f"x{char}y z"]


@pytest.mark.parametrize("sep", SEPARATORS, ids=["space", "tab", "LF", "CR"])
def test_arguments_v2_splits_at_each_of_the_four_separators_outside_quotes(sep: str) -> None:
    assert split_v2(f"a{sep}b{sep}'c{sep}d'", "Arguments", 11) == ["a", "b", f"c{sep}d"]


def test_arguments_v2_quoting_rules() -> None:
    assert split_v2("'it''s' '' a''b \"x y\" 'a'b'c'", "Arguments", 11) == ["it's", "", "ab", '"x', 'y"', "abc"]
    with pytest.raises(JobRejected, match="unbalanced quote"):
        split_v2("ok 'never closed\u00a0", "Arguments", 11)


# --------------------------------------------------------------------------- Environment (V2)


@pytest.mark.parametrize("char", NOT_SEPARATOR_PARAMS)
def test_environment_v2_does_not_split_at(char: str) -> None:
    assert parse_environment(ad(Environment=f"A=x{char}B=y C=z")) == {"A": f"x{char}B=y", "C": "z"}


@pytest.mark.parametrize("char", NOT_SEPARATOR_PARAMS)
def test_environment_v2_a_non_separator_before_a_name_makes_it_invalid(char: str) -> None:
    # HTCondor would define a variable whose name starts with that character; no shell can.
    with pytest.raises(JobRejected, match="not a valid environment variable name") as info:
        parse_environment(ad(Environment=f"A=1 {char}B=2"))
    assert info.value.hold_subcode == pl.HOLD_SUBCODE_ENVIRONMENT


# --------------------------------------------------------------------------- Env (V1)


@pytest.mark.parametrize("char", NOT_SEPARATOR_PARAMS)
def test_env_v1_value_keeps_the_character(char: str) -> None:
    assert parse_environment(ad(Env=f"A=x{char}y;B=2{char}")) == {"A": f"x{char}y", "B": f"2{char}"}


@pytest.mark.parametrize("char", NOT_SEPARATOR_PARAMS)
def test_env_v1_skips_only_space_tab_lf_cr_before_an_entry(char: str) -> None:
    assert parse_environment(ad(Env="A=1; \t\r\n B=2")) == {"A": "1", "B": "2"}
    with pytest.raises(JobRejected, match="not a valid environment variable name"):
        parse_environment(ad(Env=f"A=1;{char}B=2"))


def test_env_v1_lf_always_separates_and_trailing_blanks_stay() -> None:
    assert parse_environment(ad(Env="A=1 \nB=2\t|C=3", EnvDelim="|")) == {"A": "1 ", "B": "2\t", "C": "3"}


def test_env_v1_delimiter_is_the_first_character_of_env_delim() -> None:
    assert parse_environment(ad(Env="A=1|B=2;3", EnvDelim="|#")) == {"A": "1", "B": "2;3"}


@pytest.mark.parametrize("env_delim", ["", 5, classad2.Value.Undefined])
def test_env_v1_empty_or_non_string_env_delim_means_semicolon(env_delim: object) -> None:
    assert parse_environment(ad(Env="A=1;B=x|y", EnvDelim=env_delim)) == {"A": "1", "B": "x|y"}


def test_env_v1_error_env_delim_means_semicolon() -> None:
    job = classad2.parseOne('Env = "A=1;B=2"\nEnvDelim = error\n', classad2.ParserType.Old)
    assert parse_environment(job) == {"A": "1", "B": "2"}


def test_env_v1_non_ascii_env_delim_is_refused() -> None:
    # HTCondor would split at the first UTF-8 byte of the character, cutting characters apart.
    with pytest.raises(JobRejected, match="EnvDelim .* must start with an ASCII character") as info:
        parse_environment(ad(Env="A=1\u00a7B=2", EnvDelim="\u00a7"))
    assert info.value.hold_subcode == pl.HOLD_SUBCODE_ENVIRONMENT


@pytest.mark.parametrize("first", list("!#$%&*+,-/:;<>?@^`|~\x1f"))
def test_env_v1_a_leading_delimiter_character_names_the_delimiter(first: str) -> None:
    other = ";" if first == "|" else "|"
    assert split_env_v1(f"{first}A=1{first}B=2{other}3") == ["A=1", f"B=2{other}3"]
    assert parse_environment(ad(Env=f"{first}A=1{first}B=2")) == {"A": "1", "B": "2"}


def test_env_v1_a_leading_env_delim_is_skipped() -> None:
    assert split_env_v1("|A=1|B=2", "|") == ["A=1", "B=2"]
    assert split_env_v1(";A=1|2;B=3", "|") == ["A=1|2", "B=3"]  # ';' is a delimiter too: it wins


@pytest.mark.parametrize("first", ["A", "_", "0", " ", "\t", "=", ".", '"', "'", "(", "[", "{", "\\", "\u00a0"])
def test_env_v1_other_first_characters_keep_the_delimiter(first: str) -> None:
    assert split_env_v1(f"{first}X=1;B=2") == [f"{first}X=1".lstrip(" \t"), "B=2"]


def test_env_v1_real_condor_submit_form() -> None:
    job = classad2.parseOne('Env = "PATH=/bin:/usr/bin;HOME=/home/alice;EMPTY="\n', classad2.ParserType.Old)
    assert parse_environment(job) == {"PATH": "/bin:/usr/bin", "HOME": "/home/alice", "EMPTY": ""}
