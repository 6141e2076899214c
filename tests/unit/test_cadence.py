"""HPCPULL_UPDATE_INTERVAL: the HookKeyword that spaces a routed job's UPDATEs."""

from __future__ import annotations

from typing import Optional

import classad2
import pytest

from hpcpull.config import Config
from hpcpull.router.cadence import Cadence, cadence, resting_keyword_problem, window_for

SHIPPED = {
    "JOB_ROUTER_HOOK_KEYWORD": "HPCPULL",
    "HPCPULL_HOOK_TRANSLATE_JOB": "/opt/hpcpull/bin/hpcpull-translate",
    "HPCPULL_HOOK_UPDATE_JOB_INFO": "/opt/hpcpull/bin/hpcpull-update",
    "HPCPULL_HOOK_JOB_FINALIZE": "/opt/hpcpull/bin/hpcpull-finalize",
    "HPCPULL_HOOK_JOB_CLEANUP": "/opt/hpcpull/bin/hpcpull-cleanup",
    "HPCPULL_ATTRS_TO_COPY": "HpcPullBatchJobId HookKeyword HpcPullWake",
    "HPCPULL_RESTING_HOOK_TRANSLATE_JOB": "/opt/hpcpull/bin/hpcpull-translate",
    "HPCPULL_RESTING_HOOK_JOB_FINALIZE": "/opt/hpcpull/bin/hpcpull-finalize",
    "HPCPULL_RESTING_HOOK_JOB_CLEANUP": "/opt/hpcpull/bin/hpcpull-cleanup",
    "HPCPULL_RESTING_ATTRS_TO_COPY": "HpcPullBatchJobId HookKeyword HpcPullWake",
}


def config(**knobs: Optional[str]) -> Config:
    values = {**SHIPPED, **knobs}
    return Config(lambda name: values.get(name))


def keyword(expression: str, at: Optional[int] = None, **attrs: object) -> object:
    """What the router's getHookKeyword sees: HookKeyword evaluated in the source ad (at
    time ``at``, written into the expression in place of time())."""
    ad = classad2.ClassAd({"HpcPullBatchJobId": "42", **attrs})
    text = expression if at is None else expression.replace("time()", str(at))
    ad["HookKeyword"] = classad2.ExprTree(text)
    return ad.eval("HookKeyword")


def test_no_interval_means_every_poll() -> None:
    assert cadence(config()) == (None, "")
    assert cadence(config(HPCPULL_UPDATE_INTERVAL="0")) == (None, "")


def test_an_interval_no_longer_than_a_poll_changes_nothing() -> None:
    # polling 30 s: a window of 36 s; an interval of 30 s is every poll anyway
    assert cadence(config(HPCPULL_UPDATE_INTERVAL="30", JOB_ROUTER_POLLING_PERIOD="30")) == (None, "")


def test_the_window_holds_a_poll_with_room_for_a_late_one() -> None:
    chosen, why = cadence(config(HPCPULL_UPDATE_INTERVAL="60"))
    assert why == ""
    assert chosen == Cadence("HPCPULL", "HPCPULL_RESTING", 60, window_for(10))
    assert window_for(10) == 12 and window_for(5) == 7 and window_for(60) == 72


def test_each_job_gets_exactly_one_window_per_interval() -> None:
    chosen = Cadence("HPCPULL", "HPCPULL_RESTING", 60, 12)
    expression = chosen.hook_keyword("1234.5")
    seconds = [keyword(expression, at=t) for t in range(1_800_000_000, 1_800_000_000 + 120)]
    assert seconds.count("HPCPULL") == 24 and seconds.count("HPCPULL_RESTING") == 96
    first = seconds.index("HPCPULL")
    window = seconds[first:first + 12]
    assert window == ["HPCPULL"] * 12, "the window is one stretch of 12 s"
    assert seconds[first + 60:first + 72] == window, "and comes back after 60 s"


def test_windows_are_spread_over_the_interval() -> None:
    chosen = Cadence("HPCPULL", "HPCPULL_RESTING", 60, 12)
    now = 1_800_000_000
    awake = [keyword(chosen.hook_keyword(f"{cluster}.{proc}"), at=now) == "HPCPULL"
             for cluster in range(100, 120) for proc in range(100)]
    assert 0.15 < sum(awake) / len(awake) < 0.25  # 12 / 60 of the jobs at any one time


def test_a_job_without_a_batch_job_is_updated_at_every_poll() -> None:
    """Submission waiting for a throttle is retried by UPDATE: no resting for it."""
    expression = Cadence("HPCPULL", "HPCPULL_RESTING", 60, 12).hook_keyword("7.0")
    ad = classad2.ClassAd()
    for t in range(1_800_000_000, 1_800_000_060):
        ad["HookKeyword"] = classad2.ExprTree(expression.replace("time()", str(t)))
        assert ad.eval("HookKeyword") == "HPCPULL"


def test_a_job_the_poller_woke_is_updated_at_every_poll_until_it_rests_again() -> None:
    """HpcPullWake (state/wake.py) opens the window whatever the time; false or absent does not."""
    expression = Cadence("HPCPULL", "HPCPULL_RESTING", 60, 12).hook_keyword("7.0")
    start = 1_800_000_000
    assert {keyword(expression, at=t, HpcPullWake=True) for t in range(start, start + 60)} == {"HPCPULL"}
    for rested in ({"HpcPullWake": False}, {}):
        seconds = [keyword(expression, at=t, **rested) for t in range(start, start + 60)]
        assert seconds.count("HPCPULL") == 12


def test_a_held_job_is_updated_at_every_poll() -> None:
    """A condor_release is seen only by an UPDATE in the poll that would hold the source again."""
    expression = Cadence("HPCPULL", "HPCPULL_RESTING", 60, 12).hook_keyword("7.0")
    start = 1_800_000_000
    assert {keyword(expression, at=t, JobStatus=5) for t in range(start, start + 60)} == {"HPCPULL"}
    assert [keyword(expression, at=t, JobStatus=2) for t in range(start, start + 60)].count("HPCPULL") == 12


def test_outside_the_router_the_job_has_no_keyword() -> None:
    """Given back (Managed = "Schedd") and run by a startd: as if HookKeyword were not set."""
    expression = Cadence("HPCPULL", "HPCPULL_RESTING", 60, 12).hook_keyword("7.0")
    assert keyword(expression, Managed="Schedd") is classad2.Value.Undefined
    assert keyword(expression, Managed="ScheddDone") is classad2.Value.Undefined
    assert keyword(expression, Managed="External") in ("HPCPULL", "HPCPULL_RESTING")  # the schedd's, while routed


@pytest.mark.parametrize("knob, value, says", [
    ("HPCPULL_RESTING_HOOK_JOB_CLEANUP", None, "HPCPULL_RESTING_HOOK_JOB_CLEANUP must name the same hook"),
    ("HPCPULL_RESTING_HOOK_TRANSLATE_JOB", "/elsewhere/translate", "HPCPULL_RESTING_HOOK_TRANSLATE_JOB must"),
    ("HPCPULL_RESTING_HOOK_UPDATE_JOB_INFO", "/opt/hpcpull/bin/hpcpull-update", "must not be set"),
    ("HPCPULL_ATTRS_TO_COPY", "HpcPullBatchJobId HpcPullWake", "must list HookKeyword"),
    ("HPCPULL_ATTRS_TO_COPY", "HpcPullBatchJobId HookKeyword", "must list HpcPullWake"),
    ("HPCPULL_RESTING_ATTRS_TO_COPY", "HpcPullBatchJobId", "must equal HPCPULL_ATTRS_TO_COPY"),
])
def test_a_resting_keyword_that_would_lose_a_hook_turns_the_interval_off(knob: str, value: Optional[str],
                                                                        says: str) -> None:
    broken = config(HPCPULL_UPDATE_INTERVAL="60", **{knob: value})
    assert says in (resting_keyword_problem(broken, "HPCPULL") or "")
    chosen, why = cadence(broken)
    assert chosen is None and "HPCPULL_UPDATE_INTERVAL is ignored" in why and says in why


def test_the_shipped_defaults_file_configures_the_resting_keyword(condor_config) -> None:
    import htcondor2

    condor_config({"Slurm": "UNIVERSE VANILLA"}, {"HPCPULL_UPDATE_INTERVAL": "60"})
    chosen, why = cadence(Config(lambda name: None if htcondor2.param.get(name) is None
                                 else str(htcondor2.param.get(name))))
    assert why == "" and chosen is not None and chosen.resting == "HPCPULL_RESTING"


def test_a_keyword_that_is_not_a_plain_name_is_refused() -> None:
    chosen, why = cadence(config(HPCPULL_UPDATE_INTERVAL="60", JOB_ROUTER_HOOK_KEYWORD='X" || true'))
    assert chosen is None and "JOB_ROUTER_HOOK_KEYWORD" in why


def copy_keyword(own: Optional[str], **knobs: Optional[str]) -> tuple[object, list[str]]:
    """TRANSLATE's HookKeyword for a source job whose own HookKeyword is ``own`` (ClassAd text)."""
    from hpcpull.router.translate import _set_update_cadence

    source = classad2.ClassAd({"ClusterId": 12, "ProcId": 3})
    if own is not None:
        source["HookKeyword"] = classad2.ExprTree(own)
    routed = classad2.ClassAd()
    warnings = _set_update_cadence(source, routed, config(**knobs))
    return (str(routed.lookup("HookKeyword")) if "HookKeyword" in routed else None), warnings


def test_translate_gives_the_copy_its_window() -> None:
    expected = Cadence("HPCPULL", "HPCPULL_RESTING", 60, 12).hook_keyword("12.3")
    for own in (None, '"HPCPULL"', expected):  # none, the router's own keyword, an earlier routing's
        text, warnings = copy_keyword(own, HPCPULL_UPDATE_INTERVAL="60")
        assert text == str(classad2.ExprTree(expected)) and warnings == [], own


def test_translate_leaves_a_jobs_own_choice_of_hooks_alone() -> None:
    for own in ('"SITEHOOKS"', 'ifThenElse(Owner == "alice", "A", "B")'):
        assert copy_keyword(own, HPCPULL_UPDATE_INTERVAL="60") == (None, []), own


def test_with_the_interval_off_an_earlier_window_is_replaced_by_the_plain_keyword() -> None:
    earlier = Cadence("HPCPULL", "HPCPULL_RESTING", 60, 12).hook_keyword("12.3")
    assert copy_keyword(earlier, HPCPULL_UPDATE_INTERVAL="0") == ('"HPCPULL"', [])
    assert copy_keyword(None, HPCPULL_UPDATE_INTERVAL="0") == (None, [])


def test_translate_warns_when_the_interval_cannot_be_used() -> None:
    text, warnings = copy_keyword(None, HPCPULL_UPDATE_INTERVAL="60", HPCPULL_RESTING_HOOK_JOB_CLEANUP=None)
    assert text is None and len(warnings) == 1 and "HPCPULL_UPDATE_INTERVAL is ignored" in warnings[0]
