"""Hook stdin/stdout in the job router's old ClassAd syntax, through classad2.

The router writes ads as sorted ``Name = expr`` lines (``sPrintAd``) and reads hook
output line by line; one unparsable output line makes it abandon or remove the job.
So input is parsed strictly (classad2 alone silently stops at the first bad line) and
every output line is checked by re-parsing it before anything is printed.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Union

import classad2

from hpcpull.errors import HpcPullError

ROUTER_SEPARATOR = "\n------\n"
_OLD = classad2.ParserType.Old

Value = Union[None, bool, int, float, str, classad2.ExprTree]
UNDEFINED = classad2.ExprTree("undefined")


# The C++ ClassAd library unparses and frees expressions recursively, and parses a chain
# of left-associative operators ("1 + 1 + ... + 1", "a.b.c...", "x[0][0]...") into a tree
# as deep as the chain is long: printing one ~25,000 levels deep, or parsing one ~90,000
# deep, overflows an 8 MB stack and the hook dies of SIGSEGV with nothing on stderr
# (found by tests/reliability/test_fuzz_hooks.py).  The router prints ads with that same
# code, so no real job has such an expression: a line with more operators than this is
# malformed input.  Only lines longer than twice the limit can reach it.
MAX_OPERATORS = 10_000
_OPERATOR_CHARS = "-+*/%&|^<>=!?:~.["
_OPERATOR = re.compile(r"[-+*/%&|^<>=!?:~.\[]+|\b(?:is|isnt)\b", re.IGNORECASE)
# A string literal, or an unterminated one up to the end of the line: every match starts at
# the first quote it meets and always succeeds, so the scan stays linear on hostile input.
_NUMBER = re.compile(r"(?<![\w.])(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_STRING = re.compile(r'"(?:[^"\\]|\\.|\\$)*(?:"|$)', re.DOTALL)


# What ClassAd text may have around its lines: ASCII blanks only (str.strip() would also
# drop U+00A0 and other Unicode spaces, which the ClassAd parser does not accept).
_BLANK = " \t\r\f\v"


class MalformedInput(HpcPullError):
    """Hook stdin is not what condor_job_router sends."""


def ad_lines(text: str) -> list[str]:
    """The lines of an old-syntax ad as the router splits them: at "\\n" only.

    Not str.splitlines(), which also splits at \\r, \\f, \\v, \\x1c-\\x1e, \\x85,
    U+2028 and U+2029: the router prints those raw inside string values (an Arguments
    or Environment with a form feed or a Unicode line separator is one line to it).
    """
    return text.split("\n")


def operator_count(line: str) -> int:
    """Operators outside string and number literals: an upper bound on the depth of a
    left-nested chain (a flat list of a million reals has none)."""
    return len(_OPERATOR.findall(_NUMBER.sub("0", _STRING.sub('""', line))))


def too_deep(line: str) -> bool:
    """Whether ``line`` may hold a chain of more than MAX_OPERATORS operators."""
    if len(line) <= 2 * MAX_OPERATORS:
        return False
    lower = line.lower()
    if sum(map(lower.count, _OPERATOR_CHARS)) + lower.count("is") <= MAX_OPERATORS:
        return False  # quick (C-speed) upper bound: the scan below is only for the suspicious
    return operator_count(line) > MAX_OPERATORS


def _check_depth(text: str, what: str) -> None:
    for number, line in enumerate(ad_lines(text), 1):
        if too_deep(line):
            raise MalformedInput(
                f"{what} line {number} has more than {MAX_OPERATORS} operators, too deep to handle: "
                f"{line[:80]!r}")


def parse_old_ad(text: str, what: str = "job ad") -> classad2.ClassAd:
    """Parse one old-syntax ad; every non-blank line must be a valid ``Name = expr``."""
    if "\x00" in text:
        raise MalformedInput(f"{what} contains a NUL byte")
    names = []
    for number, line in enumerate(ad_lines(text), 1):
        if not line.strip(_BLANK):
            continue
        name, sep, _ = line.partition("=")
        if not sep or not name.strip():
            raise MalformedInput(f"{what} line {number} is not 'Name = value': {line[:80]!r}")
        names.append(name.strip(_BLANK).lower())  # as ClassAds: U+2028 is part of a name
    if not names:
        raise MalformedInput(f"{what} is empty")
    _check_depth(text, what)
    try:
        ad = classad2.parseOne(text, _OLD)
    except ValueError:  # classad2: "Unable to parse input stream into a ClassAd"
        ad = None
    if ad is None or len(ad) != len(set(names)):
        for number, line in enumerate(ad_lines(text), 1):
            if line.strip(_BLANK) and not _one_attribute(line):
                raise MalformedInput(f"{what} line {number} does not parse: {line[:80]!r}")
        raise MalformedInput(f"{what} does not parse")
    return ad


def _one_attribute(line: str) -> bool:
    try:
        return len(classad2.parseOne(line + "\n", _OLD)) == 1
    except ValueError:
        return False


def parse_translate_input(text: str) -> tuple[classad2.ClassAd, classad2.ClassAd]:
    """TRANSLATE stdin: a one-line new-syntax route ad, ``------``, then the source job ad."""
    route_text, sep, job_text = text.partition(ROUTER_SEPARATOR)
    if not sep:
        raise MalformedInput("TRANSLATE input has no '------' line after the route ad")
    _check_depth(route_text, "route ad")
    try:
        route = classad2.parseOne(route_text, classad2.ParserType.New)
    except Exception as exc:  # noqa: BLE001 - classad2 raises several types for bad syntax
        raise MalformedInput(f"route ad does not parse: {exc}") from None
    if not isinstance(route.get("Name"), str):
        raise MalformedInput("route ad has no Name")
    return route, parse_old_ad(job_text, "source job ad")


def parse_finalize_input(text: str) -> tuple[classad2.ClassAd, classad2.ClassAd]:
    """FINALIZE stdin: source ad, a blank line, ``------``, routed ad."""
    source_text, sep, routed_text = text.partition(ROUTER_SEPARATOR)
    if not sep:
        raise MalformedInput("FINALIZE input has no '------' line between the two ads")
    return parse_old_ad(source_text, "source job ad"), parse_old_ad(routed_text, "routed job ad")


def _clean(value: Value) -> Value:
    """Strings in hook output must stay on one line: the router reads line by line."""
    if isinstance(value, str):
        return value.replace("\x00", "").replace("\r", " ").replace("\n", " ")
    return value


def format_attributes(attributes: Mapping[str, Value]) -> str:
    """Old-syntax ``Name = value`` lines for the router; ``None`` prints ``undefined``."""
    ad = classad2.ClassAd()
    for name, value in attributes.items():
        ad[name] = UNDEFINED if value is None else _clean(value)
    return format_ad(ad)


def format_ad(ad: classad2.ClassAd) -> str:
    """Print a whole ad in old syntax, refusing anything the router could not read back."""
    text = ad.printOld()
    lines = [line for line in ad_lines(text) if line.strip()]
    if len(lines) != len(ad):
        raise HpcPullError("refusing to print an ad with a multi-line value")
    parse_old_ad(text, "hook output")
    return "".join(line + "\n" for line in lines)


def router_print(ad: classad2.ClassAd) -> str:
    """An ad exactly as the router's ``sPrintAd`` writes it: sorted ``Name = expr`` lines."""
    lines = [line for line in ad_lines(ad.printOld()) if line.strip()]
    return "".join(line + "\n" for line in sorted(lines, key=lambda s: s.split(" = ", 1)[0]))


def string_attr(ad: classad2.ClassAd, name: str, default: str = "") -> str:
    """A string attribute, or ``default`` when absent or not a string."""
    value = ad.get(name)
    return value if isinstance(value, str) else default


def number_attr(ad: classad2.ClassAd, name: str, default: float = 0.0) -> float:
    """A numeric attribute evaluated in the ad (expressions allowed), or ``default``."""
    try:
        value: Any = ad.eval(name) if name in ad else None
    except Exception:  # noqa: BLE001 - an attribute that does not evaluate has no number
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def int_attr(ad: classad2.ClassAd, name: str, default: int = 0) -> int:
    return int(number_attr(ad, name, float(default)))
