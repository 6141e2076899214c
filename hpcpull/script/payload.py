"""The job's command line, environment and standard streams, with HTCondor's semantics.

HTCondor keeps a job's command line in ``Arguments`` (V2 raw syntax) or, in old ads only,
``Args`` (V1 raw syntax), and its environment in ``Environment`` (V2) or ``Env`` (V1).
The splitting rules below are those of HTCondor's starter, read in its source
(``src/condor_utils/condor_arglist.cpp``: ``AppendArgsFromClassAd``, ``split_args``,
``AppendArgsV1Raw_unix``; ``src/condor_utils/env.cpp``: ``MergeFrom(ClassAd)``,
``MergeFromV2Raw``, ``MergeFromV1AutoDelim``, ``ReadFromDelimitedString``):

* Words are separated by exactly four characters, space, tab, LF and CR, in V1 and V2
  alike (a ``switch`` on those four, not ``isspace()``): vertical tab, form feed,
  U+00A0, U+2028 and every other character are part of a word.  HTCondor works on the
  UTF-8 bytes, and these separators are ASCII, so working on characters is the same.
* V2 (``Arguments``, ``Environment``): ``'...'`` quotes literally, ``''`` inside quotes
  is one ``'``; double quotes and backslashes are ordinary characters.
* V1 ``Args``: no quoting at all.
* V1 ``Env``: entries separated by the delimiter or LF, each entry's leading space, tab,
  LF and CR skipped.  The delimiter is the first character of ``EnvDelim`` (``;`` when
  absent or empty); an ``Env`` that starts with the delimiter, or with one of
  ``!#$%&*+,-/:;<>?@^`|~`` or U+001F, names its own delimiter with that first character.

Every value here comes from the job ad and is hostile until validated: this module
rejects what cannot be represented safely (NUL characters, bad environment names,
unbalanced quotes) with :class:`~hpcpull.errors.JobRejected`; quoting for the shell is
the templates' business (``shquote``).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import classad2

from hpcpull.errors import JobRejected

# HoldReasonSubCode of the holds raised here (HoldReasonCode 0); all codes: holds.py.
from hpcpull.holds import (
    HOLD_SUBCODE_ARGUMENTS,
    HOLD_SUBCODE_COMMAND,
    HOLD_SUBCODE_ENVIRONMENT,
    HOLD_SUBCODE_STREAMS,
)

NULL_FILE = "/dev/null"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The only word separators of V1 and V2 arguments and V2 environments (see the docstring).
_V2_SPACE = " \t\r\n"
_V1_SPLIT = re.compile("[" + _V2_SPACE + "]+")
# env.cpp is_permitted_delim: a V1 Env starting with one of these uses it as its delimiter.
_V1_ENV_SELF_DELIMITERS = frozenset("!#$%&*+,-/:;<>?@^`|~\x1f")

JobAd = Mapping[str, Any]


@dataclass(frozen=True)
class Payload:
    """What the launcher runs on the compute node, relative to the job directory."""

    executable: str  # "./<basename(Cmd)>" when staged, else the absolute Cmd
    arguments: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]  # in order
    stdin: str  # "/dev/null", a sandbox-relative basename, or an absolute path
    merge_stderr: bool  # Out == Err: HTCondor sends both streams to one file


def ad_value(job_ad: JobAd, name: str, subcode: int = HOLD_SUBCODE_COMMAND) -> Any:
    """The evaluated value of ``name``: ``None`` if missing or undefined.

    ``job_ad`` is a ``classad2.ClassAd`` (expressions are evaluated, names are
    case-insensitive) or any plain mapping of Python values (used as they are).
    An attribute that evaluates to ``error`` rejects the job.
    """
    if name not in job_ad:
        return None
    evaluate = getattr(job_ad, "eval", None)
    value = evaluate(name) if callable(evaluate) else job_ad[name]
    if value is classad2.Value.Undefined:
        return None
    if value is classad2.Value.Error:
        raise JobRejected(f"job attribute {name} evaluates to error", hold_subcode=subcode)
    return value


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` short enough for a hold reason, whatever the value's size (a job
    value may be megabytes): escaped, so it is also one printable line."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r} ... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]} ..."


def _string(job_ad: JobAd, name: str, subcode: int) -> Optional[str]:
    """A string attribute (``None`` if absent); NUL characters reject the job."""
    value = ad_value(job_ad, name, subcode)
    if value is None:
        return None
    if not isinstance(value, str):
        raise JobRejected(f"job attribute {name} must be a string, not {short_repr(value)}", hold_subcode=subcode)
    if "\0" in value:
        raise JobRejected(f"job attribute {name} contains a NUL character", hold_subcode=subcode)
    return value


def _flag(job_ad: JobAd, name: str, default: bool) -> bool:
    value = ad_value(job_ad, name)
    if value is None:
        return default
    if isinstance(value, (bool, int)):
        return bool(value)
    raise JobRejected(
        f"job attribute {name} must be a boolean, not {short_repr(value)}", hold_subcode=HOLD_SUBCODE_COMMAND
    )


def split_v2(raw: str, attribute: str, subcode: int) -> list[str]:
    """Split a V2 raw string: words separated by space/tab/CR/LF; '...' is literal, '' inside is '."""
    words: list[str] = []
    buf: list[str] = []
    in_token = False
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            start = i
            in_token = True
            i += 1
            while True:
                if i >= n:
                    raise JobRejected(
                        f"{attribute}: unbalanced quote starting here: {raw[start:start + 40]!r}",
                        hold_subcode=subcode,
                    )
                if raw[i] == "'":
                    if i + 1 < n and raw[i + 1] == "'":
                        buf.append("'")  # '' inside a quoted section is one literal quote
                        i += 2
                        continue
                    i += 1  # the closing quote
                    break
                buf.append(raw[i])
                i += 1
        elif c in _V2_SPACE:
            i += 1
            if in_token:
                words.append("".join(buf))
                buf = []
                in_token = False
        else:
            in_token = True
            buf.append(c)
            i += 1
    if in_token:
        words.append("".join(buf))
    return words


def join_v2(words: list[str]) -> str:
    """The V2 raw string for ``words`` (HTCondor's ``join_args``); inverse of :func:`split_v2`."""
    out = []
    for word in words:
        if word == "":
            out.append("''")
        elif any(c in word for c in _V2_SPACE + "'"):
            out.append("'" + word.replace("'", "''") + "'")
        else:
            out.append(word)
    return " ".join(out)


def parse_arguments(job_ad: JobAd) -> list[str]:
    """The job's argv after the executable: ``Arguments`` (V2) if present, else ``Args`` (V1)."""
    v2 = _string(job_ad, "Arguments", HOLD_SUBCODE_ARGUMENTS)
    if v2 is not None:
        return split_v2(v2, "Arguments", HOLD_SUBCODE_ARGUMENTS)
    v1 = _string(job_ad, "Args", HOLD_SUBCODE_ARGUMENTS)
    if v1 is not None:
        return split_v1(v1)
    return []


def split_v1(raw: str) -> list[str]:
    """Split V1 raw arguments as HTCondor does on Unix: space/tab/CR/LF separate, no quoting.

    Not ``str.split()``: that also splits at U+00A0, U+2028, vertical tab and the other
    Unicode spaces, where HTCondor passes one argument.
    """
    return [word for word in _V1_SPLIT.split(raw) if word]


def _set_env(env: dict[str, str], entry: str, attribute: str) -> None:
    name, sep, value = entry.partition("=")
    if not sep:
        raise JobRejected(
            f"{attribute}: missing '=' after environment variable {entry[:80]!r}",
            hold_subcode=HOLD_SUBCODE_ENVIRONMENT,
        )
    if not _ENV_NAME.match(name):
        raise JobRejected(
            f"{attribute}: {name[:80]!r} is not a valid environment variable name "
            "(letters, digits and _, not starting with a digit)",
            hold_subcode=HOLD_SUBCODE_ENVIRONMENT,
        )
    env[name] = value  # a later definition wins, as in HTCondor


def parse_environment(job_ad: JobAd) -> dict[str, str]:
    """The job's environment: ``Environment`` (V2) if present, else ``Env`` (V1, ``;``-separated)."""
    env: dict[str, str] = {}
    v2 = _string(job_ad, "Environment", HOLD_SUBCODE_ENVIRONMENT)
    if v2 is not None:
        for word in split_v2(v2, "Environment", HOLD_SUBCODE_ENVIRONMENT):
            _set_env(env, word, "Environment")
        return env
    v1 = _string(job_ad, "Env", HOLD_SUBCODE_ENVIRONMENT)
    if v1 is not None:
        for entry in split_env_v1(v1, _env_delimiter(job_ad)):
            _set_env(env, entry, "Env")
    return env


def _env_delimiter(job_ad: JobAd) -> str:
    """``EnvDelim``'s first character; ``;`` (HTCondor's on Unix) when absent, empty or not a string."""
    try:
        value = ad_value(job_ad, "EnvDelim", HOLD_SUBCODE_ENVIRONMENT)
    except JobRejected:  # an error value: HTCondor's LookupString fails and the default applies
        value = None
    if not isinstance(value, str) or value == "":
        return ";"
    if not value[0].isascii() or value[0] == "\0":
        # HTCondor takes the first byte: a UTF-8 lead byte would cut characters in half.
        raise JobRejected(
            f"EnvDelim = {value[:20]!r} must start with an ASCII character",
            hold_subcode=HOLD_SUBCODE_ENVIRONMENT,
        )
    return value[0]


def split_env_v1(raw: str, delimiter: str = ";") -> list[str]:
    """The non-empty entries of a V1 ``Env`` string (``NAME=value``, not yet checked).

    An ``Env`` starting with ``delimiter`` or with another character HTCondor accepts
    as a delimiter uses that character (env.cpp ``MergeFromV1AutoDelim``).  Entries end
    at the delimiter or at LF; space, tab, LF and CR before an entry are skipped, nothing
    after it is (``ReadFromDelimitedString``).
    """
    if raw and (raw[0] == delimiter or raw[0] in _V1_ENV_SELF_DELIMITERS):
        delimiter, raw = raw[0], raw[1:]
    entries = []
    for entry in re.split("[" + re.escape(delimiter) + "\n]", raw):
        entry = entry.lstrip(_V2_SPACE)
        if entry:
            entries.append(entry)
    return entries


def _sandbox_name(path: str, attribute: str, subcode: int) -> str:
    name = posixpath.basename(path)
    if name in ("", ".", ".."):
        raise JobRejected(f"{attribute} = {path[:200]!r} does not name a file", hold_subcode=subcode)
    return name


def _absolute(path: str, job_ad: JobAd, attribute: str, subcode: int) -> str:
    """``path`` as HTCondor would resolve it on a shared filesystem (relative to Iwd)."""
    if path.startswith("/"):
        return path
    iwd = _string(job_ad, "Iwd", subcode) or ""
    if not iwd.startswith("/"):
        raise JobRejected(
            f"{attribute} = {path[:200]!r} is relative, not transferred, and Iwd is not absolute",
            hold_subcode=subcode,
        )
    return posixpath.join(iwd, path)


def payload_for(job_ad: JobAd) -> Payload:
    """The payload of a job ad: executable, argv, environment and streams.

    The executable and stdin are staged into the job directory under their basenames
    (hpcpull.staging.input_sandbox does that) unless ``TransferExecutable``/``TransferIn`` is false:
    then the job's own path is used, made absolute against ``Iwd`` as HTCondor does.
    """
    cmd = _string(job_ad, "Cmd", HOLD_SUBCODE_COMMAND)
    if not cmd:
        raise JobRejected("the job has no executable (Cmd is empty)", hold_subcode=HOLD_SUBCODE_COMMAND)
    if _flag(job_ad, "TransferExecutable", True):
        executable = "./" + _sandbox_name(cmd, "Cmd", HOLD_SUBCODE_COMMAND)
    else:
        executable = _absolute(cmd, job_ad, "Cmd", HOLD_SUBCODE_COMMAND)

    infile = _string(job_ad, "In", HOLD_SUBCODE_STREAMS) or ""
    if infile in ("", NULL_FILE):
        stdin = NULL_FILE
    elif _flag(job_ad, "TransferIn", True):
        stdin = _sandbox_name(infile, "In", HOLD_SUBCODE_STREAMS)
    else:
        stdin = _absolute(infile, job_ad, "In", HOLD_SUBCODE_STREAMS)

    out = _string(job_ad, "Out", HOLD_SUBCODE_STREAMS) or ""
    err = _string(job_ad, "Err", HOLD_SUBCODE_STREAMS) or ""

    return Payload(
        executable=executable,
        arguments=tuple(parse_arguments(job_ad)),
        environment=tuple(parse_environment(job_ad).items()),
        stdin=stdin,
        merge_stderr=out == err and out not in ("", NULL_FILE),
    )
