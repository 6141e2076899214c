"""Hook stdin/stdout against the real bytes condor_job_router 25.13.2 wrote."""

import classad2
import pytest

from hpcpull.router.classads import (
    MalformedInput,
    format_attributes,
    parse_finalize_input,
    parse_old_ad,
    parse_translate_input,
    router_print,
)
from tests.conftest import FIXTURES

STDIN = FIXTURES / "router-stdin"


@pytest.mark.parametrize("name", ["update-first", "cleanup"])
def test_router_print_reproduces_the_routers_bytes(name):
    text = (STDIN / f"{name}.stdin").read_text()
    assert router_print(parse_old_ad(text)) == text


def test_translate_input_splits_route_and_job():
    route, job = parse_translate_input((STDIN / "translate.stdin").read_text())
    assert route["Name"] == "RcRoute" and route["TargetUniverse"] == 5
    assert job["ClusterId"] == 78 and job.eval("RequestDisk") == 1024 * 1024


def test_finalize_input_has_source_then_routed():
    source, routed = parse_finalize_input((STDIN / "finalize.stdin").read_text())
    assert source["ClusterId"] == 78 and source["RoutedToJobId"] == "83.0"
    assert routed["ClusterId"] == 83 and routed["RoutedFromJobId"] == "78.4"


@pytest.mark.parametrize(
    "text",
    ["A = 1\ngarbage line\n", "A = 1\nB = \n", "A = \"unterminated\n", "", "\x00binary", "A = 1 +\n"],
)
def test_malformed_ads_are_refused_not_truncated(text):
    with pytest.raises(MalformedInput):
        parse_old_ad(text)


def test_translate_input_without_separator_is_refused():
    with pytest.raises(MalformedInput, match="------"):
        parse_translate_input('[ Name = "R" ]\nA = 1\n')


def test_output_strings_never_span_lines_and_parse_back():
    out = format_attributes({"HoldReason": 'bad\nthing "quoted"\r', "ShadowBday": None, "JobStatus": 5})
    lines = out.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert len(classad2.parseOne(line + "\n", classad2.ParserType.Old)) == 1
    ad = parse_old_ad(out)
    assert ad["HoldReason"] == 'bad thing "quoted" '
    assert ad["JobStatus"] == 5 and str(ad.lookup("ShadowBday")) == "undefined"
