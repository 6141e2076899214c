"""Queue, account and GPU type names from the job: plain names only, per batch system.

A job chooses its queue (``BatchQueue``/``queue``), account (``BatchProject``) and GPU type
(``HpcPullGPUType``); each lands on a directive line where the batch systems read ``:``,
``+``, ``,``, ``@`` and others as separators (hpcpull/script/resources.py, "Names the job
chooses").  A job whose name is not a plain name is refused with a reason, which the
TRANSLATE hook turns into the job's hold reason (HoldReasonSubCode 15), like every other
refusal of resources.py.
"""

from __future__ import annotations

from typing import Callable

import classad2
import pytest

from hpcpull.config import SUPPORTED_LRMS, RouteSettings
from hpcpull.errors import JobRejected
from hpcpull.holds import HOLD_SUBCODE_UNSAFE_VALUE
from hpcpull.lrms import batch_system_class
from hpcpull.script.render import render_batch_script
from hpcpull.script.resources import NAME_MAX_LENGTH, ResourceRequest, resource_request
from tests.unit.test_render import JOB_DIR, simple_ad

RouteFactory = Callable[..., RouteSettings]

# Attribute -> (what it is, the ResourceRequest field it sets).
NAMED = {"BatchQueue": "partition", "queue": "partition", "BatchProject": "account", "HpcPullGPUType": "gpu_type"}
MEGABYTE = "q" * 1_000_000


def request(route: RouteSettings, **attrs: object) -> ResourceRequest:
    job = classad2.ClassAd()
    job["RequestGPUs"] = 1
    for name, value in attrs.items():
        job[name] = value
    return resource_request(job, route)


def refused(route: RouteSettings, **attrs: object) -> JobRejected:
    with pytest.raises(JobRejected) as info:
        request(route, **attrs)
    assert info.value.hold_subcode == HOLD_SUBCODE_UNSAFE_VALUE
    assert "\n" not in info.value.reason and len(info.value.reason) < 400, info.value.reason[:500]
    return info.value


# --------------------------------------------------------------------------- the reported cases


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
@pytest.mark.parametrize("gpu_type", ["a100:8", "a100+4"])
def test_gpu_type_with_a_separator_is_refused(route_factory: RouteFactory, lrms: str, gpu_type: str) -> None:
    error = refused(route_factory(lrms=lrms), HpcPullGPUType=gpu_type)
    assert error.reason.startswith(f"HpcPullGPUType = {gpu_type!r} is not a valid name for a GPU type on {lrms}")


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
def test_queue_at_another_server_is_refused_even_when_any_queue_is_allowed(
    route_factory: RouteFactory, lrms: str
) -> None:
    route = route_factory(lrms=lrms, allowed_queues=("*",))
    error = refused(route, BatchQueue="q@otherserver")
    assert "BatchQueue = 'q@otherserver' is not a valid name for a queue" in error.reason


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
@pytest.mark.parametrize("attribute", list(NAMED))
def test_megabyte_names_are_refused_with_a_short_reason(
    route_factory: RouteFactory, lrms: str, attribute: str
) -> None:
    error = refused(route_factory(lrms=lrms), **{attribute: MEGABYTE})
    assert f"({len(MEGABYTE)} characters)" in error.reason


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
def test_hostile_names_hold_the_job_through_the_whole_render(route_factory: RouteFactory, lrms: str) -> None:
    route = route_factory(lrms=lrms)
    for attrs in ({"RequestGPUs": 2, "HpcPullGPUType": "a100:8"}, {"BatchQueue": "q@otherserver"},
                  {"BatchProject": "p" * 100_000}):
        with pytest.raises(JobRejected) as info:
            render_batch_script(simple_ad(**attrs), route, JOB_DIR)
        assert info.value.hold_subcode == HOLD_SUBCODE_UNSAFE_VALUE


# --------------------------------------------------------------------------- the rule


# No NUL: a ClassAd string cannot hold one (classad2 cuts the string there).
REFUSED_CHARACTERS = list(",@:+=%*?[]{}()|/\\'\"#$&;<>!~` \t\n\r\x0b") + ["\u00a0", "\u00e9", "\u2028", "\uff21"]


@pytest.mark.parametrize("attribute", list(NAMED))
@pytest.mark.parametrize("char", REFUSED_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in REFUSED_CHARACTERS])
def test_names_with_other_characters_are_refused(route_factory: RouteFactory, attribute: str, char: str) -> None:
    refused(route_factory(), **{attribute: f"ab{char}cd"})


@pytest.mark.parametrize("attribute", list(NAMED))
@pytest.mark.parametrize("value", ["-p", "--partition=x", ".hidden", "..", "."])
def test_names_may_not_start_with_dash_or_dot(route_factory: RouteFactory, attribute: str, value: str) -> None:
    refused(route_factory(), **{attribute: value})


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
@pytest.mark.parametrize("value", ["gpu", "a100", "a100-sxm4-80gb", "1g.10gb", "atlas-pilots", "_x", "Q1"])
def test_plain_names_pass_everywhere(route_factory: RouteFactory, lrms: str, value: str) -> None:
    got = request(route_factory(lrms=lrms), BatchQueue=value, BatchProject=value, HpcPullGPUType=value)
    assert (got.partition, got.account, got.gpu_type) == (value, value, value)


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
def test_length_caps_per_batch_system(route_factory: RouteFactory, lrms: str) -> None:
    route = route_factory(lrms=lrms)
    queue_max = batch_system_class(lrms).queue_name_max
    assert request(route, BatchQueue="q" * queue_max).partition == "q" * queue_max
    assert f"1 to {queue_max} ASCII" in refused(route, BatchQueue="q" * (queue_max + 1)).reason
    for attribute in ("BatchProject", "HpcPullGPUType"):
        assert getattr(request(route, **{attribute: "a" * NAME_MAX_LENGTH}), NAMED[attribute]) == "a" * NAME_MAX_LENGTH
        refused(route, **{attribute: "a" * (NAME_MAX_LENGTH + 1)})


def test_the_caps_are_pbs_queue_names_and_lsf_queue_names() -> None:
    # PBS_MAXQUEUENAME (pbs_ifl.h, Torque and OpenPBS); QUEUE_NAME in lsb.queues(5).
    caps = {lrms: batch_system_class(lrms).queue_name_max for lrms in SUPPORTED_LRMS}
    assert caps == {"slurm": 64, "pbs": 15, "pbspro": 15, "sge": 64, "lsf": 59} and NAME_MAX_LENGTH == 64


def test_non_string_names_are_refused(route_factory: RouteFactory) -> None:
    job = classad2.parseOne('BatchQueue = {"a", "b"}\n', classad2.ParserType.Old)
    with pytest.raises(JobRejected, match="not a valid name") as info:
        resource_request(job, route_factory())
    assert info.value.hold_subcode == HOLD_SUBCODE_UNSAFE_VALUE


def test_names_are_evaluated(route_factory: RouteFactory) -> None:
    job = classad2.parseOne('BatchQueue = strcat("g", "pu")\nBatchProject = strcat("a", ":", "b")\n',
                            classad2.ParserType.Old)
    with pytest.raises(JobRejected, match="BatchProject = 'a:b' is not a valid name"):
        resource_request(job, route_factory())


# --------------------------------------------------------------------------- names the admin wrote


def test_the_routes_own_names_pass_as_written(route_factory: RouteFactory) -> None:
    """A name the admin configured is the admin's (PBS "q@server" routes to a server on purpose)."""
    route = route_factory(lrms="pbs", partition="batch@pbs2", account="grp:1", gpu_type="a100:sxm",
                          allowed_queues=("short@pbs2",), allowed_accounts=("*",))
    got = request(route, BatchQueue="batch@pbs2", BatchProject="grp:1", HpcPullGPUType="a100:sxm")
    assert (got.partition, got.account, got.gpu_type) == ("batch@pbs2", "grp:1", "a100:sxm")
    assert request(route, BatchQueue="short@pbs2").partition == "short@pbs2"
    assert request(route).partition == "batch@pbs2"  # the default, untouched
    with pytest.raises(JobRejected, match="does not allow that queue"):
        request(route, BatchQueue="other@pbs3")  # not listed, and "*" is not allowed
    refused(route, BatchProject="grp:2")  # any account is allowed, but only as a plain name


def test_a_listed_queue_does_not_bypass_the_rule_for_others(route_factory: RouteFactory) -> None:
    route = route_factory(allowed_queues=("*", "special@x"))
    assert request(route, BatchQueue="special@x").partition == "special@x"
    refused(route, BatchQueue="evil@x")
