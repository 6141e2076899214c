"""hpcpull.admin.route_info: the routing table read through the real htcondor2.param, and the router's
candidate test evaluated with the real classad2 (htcondor-interfaces.md §2.2, §2.4)."""

from __future__ import annotations

import re

import classad2
import pytest

from hpcpull.admin.route_info import (
    BadJobInput,
    decide,
    job_id_of,
    load_job_ad,
    parse_job_ads,
    select_job,
    split_conjuncts,
    umbrella_constraint,
)
from hpcpull.admin.routing_table import load_routing_table
from hpcpull.router.classads import MalformedInput
from tests.conftest import FIXTURES

TWO_JOBS = FIXTURES / "condor_q_long" / "two-jobs.txt"
VANILLA = "UNIVERSE VANILLA\nSET Requirements false"


@pytest.fixture
def gateway(condor_config):
    return condor_config


def job_ad(**changes):
    """Job 78.0 of the condor_q -l fixture (idle, WantRcRoute = true), with attributes changed
    (an ExprTree text per attribute; None deletes it)."""
    ad = load_job_ad(TWO_JOBS.read_text(), "78.0")
    for name, value in changes.items():
        if value is None:
            del ad[name]
        else:
            ad[name] = classad2.ExprTree(value)
    return ad


def verdict(decision, name):
    return next(v for v in decision.routes if v.name == name)


def texts(v):
    return [r.text for r in v.reasons]


# ------------------------------------------------------------------ the routing table
def test_route_text_is_read_through_htcondor2_param(gateway):
    gateway({"Gpu": "# a comment line\n"
                    "NAME SomethingElse\n"
                    "REQUIREMENTS WantRcRoute =?= true && RequestGpus > 0\n"
                    "UNIVERSE vanilla\n"
                    "SET Requirements false\n"
                    "DEFAULT JobPrio 5\n"
                    "EVALSET HpcCpus RequestCpus * 2\n"
                    "COPY Cmd OrigCmd\n"
                    "RENAME Foo Bar\n"
                    "DELETE WantRcRoute\n"
                    "EVALMACRO n RequestCpus\n"
                    "Requirements = not the statement\n"
                    "MaxJobs = 7\n"
                    "maxidlejobs = 3\n"
                    "Notes @=end\n"
                    "REQUIREMENTS inside a multi-line value\n"
                    "@end\n"
                    "SET Last true"},
            {"HPCPULL_ROUTE_NAMES": "Gpu"})
    table = load_routing_table()
    route = table.route("gpu")
    assert route is not None and route.error is None
    assert route.requirements == "WantRcRoute =?= true && RequestGpus > 0"
    assert (route.universe, route.universe_name, route.max_jobs, route.max_idle_jobs) == (5, "vanilla", 7, 3)
    assert [str(s) for s in route.sets] == ["SET Requirements false", "SET Last true"]
    assert [s.keyword for s in route.statements] == ["SET", "DEFAULT", "EVALSET", "COPY", "RENAME", "DELETE",
                                                     "EVALMACRO", "SET"]
    macros = dict(route.macros)
    assert macros["Requirements"] == "not the statement"
    assert macros["Notes"] == "REQUIREMENTS inside a multi-line value"
    assert any("NAME SomethingElse is ignored" in n for n in route.notes)
    assert table.route_names == ("Gpu",) and table.served("Gpu") and table.router_name == "jobrouter"


def test_universe_and_limit_defaults_follow_the_router(gateway):
    gateway({"Grid": 'REQUIREMENTS true\nGridResource = "batch slurm"',
             "Target": "REQUIREMENTS true\nTargetUniverse = 5\nMaxJobs = 0",
             "Number": "REQUIREMENTS true\nUNIVERSE 12\nTargetUniverse = 5",
             "Bogus": "REQUIREMENTS true\nUNIVERSE nosuch"},
            {"JOB_ROUTER_DEFAULT_MAX_IDLE_JOBS_PER_ROUTE": "9"})
    table = load_routing_table()
    grid, target, number, bogus = (table.route(n) for n in ("Grid", "Target", "Number", "Bogus"))
    assert (grid.universe, grid.universe_from, grid.grid_resource) == (9, "default", "batch slurm")
    assert (grid.max_jobs, grid.max_idle_jobs) == (100, 9)
    assert (target.universe, target.universe_from, target.accepts_jobs) == (5, "TargetUniverse = 5", False)
    assert number.universe == 12  # UNIVERSE wins over TargetUniverse
    assert bogus.universe == 9 and any("not a universe" in n for n in bogus.notes)


def test_unusable_routes_say_why(gateway):
    gateway({"NoReq": VANILLA, "BadReq": "REQUIREMENTS (WantHpc ==\n" + VANILLA,
             "Cut": "REQUIREMENTS true\nTRANSFORM\nSET Never true", "Ok": "REQUIREMENTS true"},
            {"JOB_ROUTER_ROUTE_NAMES": "NoReq BadReq Ok Cut Missing"})
    table = load_routing_table()
    assert "no REQUIREMENTS and no JOB_ROUTER_SOURCE_JOB_CONSTRAINT" in table.route("NoReq").error
    assert table.route("BadReq").error.startswith("invalid REQUIREMENTS : (WantHpc ==")
    assert table.route("Cut").error is None and table.route("Cut").statements == ()
    assert any("after TRANSFORM" in n for n in table.route("Cut").notes)
    missing = table.route("Missing")
    assert not missing.defined and missing.error == "JOB_ROUTER_ROUTE_Missing is not defined"
    decision = decide(job_ad(), table)
    assert decision.chosen == "Ok"
    for name in ("NoReq", "BadReq", "Missing"):
        v = verdict(decision, name)
        assert not v.matches and v.reasons[0].kind == "route", name


def test_a_source_constraint_makes_requirements_optional(gateway):
    gateway({"Any": VANILLA}, {"JOB_ROUTER_SOURCE_JOB_CONSTRAINT": "WantRcRoute =?= true"})
    table = load_routing_table()
    assert table.route("Any").error is None and table.route("Any").requirements is None
    decision = decide(job_ad(), table)
    assert decision.chosen == "Any"
    assert verdict(decision, "Any").requirements.value == "true"


def test_umbrella_is_the_routers_query(gateway):
    gateway({"Zeta": "REQUIREMENTS WantHpc =?= true", "alpha": "REQUIREMENTS RequestCpus > 1",
             "Same": "REQUIREMENTS WantHpc =?= true", "Full": "REQUIREMENTS Full\nMaxJobs = 0"},
            {"JOB_ROUTER_SOURCE_JOB_CONSTRAINT": "Owner =!= \"root\"", "JOB_ROUTER_NAME": "gw1"})
    # JobRouter.cpp GetCandidateJobs: routes in case-insensitive name order, each distinct
    # REQUIREMENTS once, full routes left out; then the router's own conditions.
    assert umbrella_constraint(load_routing_table()) == (
        '(Owner =!= "root") && ( (RequestCpus > 1) || (WantHpc =?= true) ) && (target.ProcId >= 0 && '
        "target.JobStatus == 1 && (target.StageInStart is undefined || target.StageInFinish isnt undefined) && "
        'target.Managed isnt "ScheddDone" && target.Managed isnt "External" && target.Owner isnt Undefined && '
        'target.RoutedBy isnt "gw1")')


# ------------------------------------------------------------------ matching
def test_first_match_in_route_names_order_wins(gateway):
    gateway({"Zeta": "REQUIREMENTS WantRcRoute =?= true", "Alpha": "REQUIREMENTS RequestMemory <= 64",
             "Never": "REQUIREMENTS WantHpc =?= true"},
            {"HPCPULL_ROUTE_NAMES": "Alpha"})
    decision = decide(job_ad(), load_routing_table())
    assert decision.candidate and decision.umbrella_value == "true"
    assert decision.matching == ("Zeta", "Alpha") and decision.chosen == "Zeta"
    assert [v.matches for v in decision.routes] == [True, True, False]
    assert not verdict(decision, "Zeta").served and verdict(decision, "Alpha").served


def test_round_robin_spreads_over_all_matches(gateway):
    gateway({"A": "REQUIREMENTS true", "B": "REQUIREMENTS WantRcRoute =?= true", "C": "REQUIREMENTS false"},
            {"JOB_ROUTER_ROUND_ROBIN_SELECTION": "true"})
    decision = decide(job_ad(), load_routing_table())
    assert decision.matching == ("A", "B") and decision.chosen is None
    assert "A, B in turn" in decision.notes[0]


def test_failing_conjuncts_are_listed_with_their_values(gateway):
    gateway({"Hpc": "REQUIREMENTS WantRcRoute =?= true && (WantHpc =?= true && RequestMemory >= 4096) "
                    '&& Owner == "alice" && (RequestCpus > 4 || Cmd == "/bin/true")'})
    decision = decide(job_ad(), load_routing_table())
    v = verdict(decision, "Hpc")
    assert not v.matches and decision.chosen is None
    assert texts(v) == [
        "WantHpc =?= true -> false (WantHpc is undefined)",
        "RequestMemory >= 4096 -> false (RequestMemory = 64)",
        '(RequestCpus > 4 || Cmd == "/bin/true") -> false (Cmd = "/bin/sh", RequestCpus = 1)',
    ]
    assert [r.kind for r in v.reasons] == ["requirements"] * 3


def test_split_conjuncts_respects_precedence_and_strings():
    assert split_conjuncts("a && (b && c) && d") == ["a", "b", "c", "d"]
    assert split_conjuncts("((a && b))") == ["a", "b"]
    assert split_conjuncts("a && b || c") == ["a && b || c"]
    assert split_conjuncts('x == "p && q" && y =?= true && z =!= 1') == ['x == "p && q"', "y =?= true", "z =!= 1"]
    assert split_conjuncts("a ? b : c && d") == ["a ? b : c && d"]
    assert split_conjuncts("(a ?: 1) <= 4 && b") == ["(a ?: 1) <= 4", "b"]
    assert split_conjuncts("(a) && (b) || (c)") == ["(a) && (b) || (c)"]


@pytest.mark.parametrize("requirements,value", [
    ("WantHpc", "undefined"),      # UNDEFINED is not a boolean: no match
    ("Owner > 5", "error"),        # an ERROR value is not a boolean either
    ('"yes"', '"yes"'),            # nor is a string
    ("RequestCpus - 1", "0"),      # old-ClassAd semantics: 0 is false
])
def test_non_boolean_requirements_do_not_match(gateway, requirements, value):
    gateway({"R": f"REQUIREMENTS {requirements}"})
    v = verdict(decide(job_ad(), load_routing_table()), "R")
    assert not v.matches and v.requirements.value == value and not v.requirements.passed


def test_a_non_zero_number_matches(gateway):
    gateway({"R": "REQUIREMENTS RequestCpus"})
    decision = decide(job_ad(), load_routing_table())
    assert decision.chosen == "R" and verdict(decision, "R").requirements.value == "1"


def deep_chain_ad(depth=450):
    """A job whose A0 refers to A1 ... refers to A<depth>: classad2 (like the router) gives up
    evaluating it ("failed to evaluate expression") rather than returning a value."""
    lines = [f"A{i} = A{i + 1}" for i in range(depth)] + [f"A{depth} = 5"]
    return job_ad(**dict(line.split(" = ") for line in lines))


def test_a_failed_evaluation_counts_as_a_match(gateway):
    gateway({"Deep": "REQUIREMENTS A0 == 5", "Alpha": "REQUIREMENTS true"})
    job = deep_chain_ad()
    with pytest.raises(classad2.ClassAdException, match="failed to evaluate"):
        classad2.ExprTree("A0 == 5").eval(job)
    decision = decide(job, load_routing_table())
    # The query ORs (true) || (A0 == 5) in name order and stops at true; then Deep is tried
    # first and MacroStreamXFormSource::matches counts the failed evaluation as a match.
    assert decision.candidate and decision.chosen == "Deep"
    deep = verdict(decision, "Deep")
    assert str(deep.requirements) == "A0 == 5 -> evaluation failed (a failed evaluation counts as a match " \
                                     "for the route)"
    assert deep.requirements.passed and deep.reasons == ()


def test_a_failed_evaluation_alone_never_makes_the_job_a_candidate(gateway):
    gateway({"Deep": "REQUIREMENTS A0 == 5"})
    decision = decide(deep_chain_ad(), load_routing_table())
    assert not decision.candidate and decision.umbrella_value == "evaluation failed"
    assert decision.chosen is None
    assert texts(verdict(decision, "Deep")) == [
        "the router's candidate query is evaluation failed for this job, so it never reaches the routes: "
        "Deep's REQUIREMENTS A0 == 5 -> evaluation failed (the query ORs every route's REQUIREMENTS in name order)"]


def test_an_error_in_one_routes_requirements_hides_the_job_from_all_routes(gateway):
    # (Owner > 5) || (true) is ERROR in ClassAd logic, so the router's query never returns
    # this job, although route B alone would take it.
    gateway({"B": "REQUIREMENTS true", "A": "REQUIREMENTS Owner > 5"})
    decision = decide(job_ad(), load_routing_table())
    assert (decision.candidate, decision.umbrella_value, decision.chosen) == (False, "error", None)
    assert texts(verdict(decision, "A")) == ['Owner > 5 -> error (Owner = "alice")']
    assert texts(verdict(decision, "B")) == [
        "the router's candidate query is error for this job, so it never reaches the routes: "
        "A's REQUIREMENTS Owner > 5 -> error (the query ORs every route's REQUIREMENTS in name order)"]
    gateway({"B": "REQUIREMENTS true", "Z": "REQUIREMENTS Owner > 5"})  # (true) || ... stops at true
    assert decide(job_ad(), load_routing_table()).chosen == "B"


# ------------------------------------------------------------------ the router's own conditions
@pytest.mark.parametrize("changes,reason", [
    ({"JobStatus": "2"}, "JobStatus is 2 (running): the router only routes idle jobs (1)"),
    ({"JobStatus": "5"}, "JobStatus is 5 (held): the router only routes idle jobs (1)"),
    ({"Managed": '"External"', "ManagedManager": '"htcondor-ce"'},
     'Managed is "External": the job is already managed externally (ManagedManager "htcondor-ce")'),
    ({"Managed": '"ScheddDone"'},
     'Managed is "ScheddDone": an external manager finished this job and does not want it back'),
    ({"Owner": None}, "Owner is undefined: the router skips jobs without an Owner"),
    ({"ProcId": "-1"}, "ProcId is -1: the router only routes jobs with ProcId >= 0"),
    ({"StageInStart": "1795238341"},
     "StageInStart is set but StageInFinish is not: the job's input files are still being spooled"),
    ({"RoutedBy": '"jobrouter"'}, 'RoutedBy is "jobrouter": the job is a routed copy made by this router '
                                  "(JOB_ROUTER_NAME), which never routes its own copies"),
])
def test_router_conditions_explain_themselves(gateway, changes, reason):
    gateway({"Rc": "REQUIREMENTS WantRcRoute =?= true"})
    decision = decide(job_ad(**changes), load_routing_table())
    v = verdict(decision, "Rc")
    assert not decision.candidate and not v.matches and decision.chosen is None
    assert v.requirements.passed  # the route itself would take it
    assert texts(v) == [reason] and v.reasons[0].kind == "router"


def test_managed_schedd_and_another_routers_copy_are_fine(gateway):
    gateway({"Rc": "REQUIREMENTS WantRcRoute =?= true"}, {"JOB_ROUTER_NAME": "gw1"})
    decision = decide(job_ad(Managed='"Schedd"', RoutedBy='"jobrouter"'), load_routing_table())
    assert decision.chosen == "Rc"


def test_the_running_job_of_condor_q_output(gateway):
    gateway({"Rc": "REQUIREMENTS WantRcRoute =?= true"})
    running = load_job_ad(TWO_JOBS.read_text(), "78.1")
    decision = decide(running, load_routing_table())
    assert (decision.job_id, decision.owner, decision.job_status) == ("78.1", "alice", 2)
    assert texts(verdict(decision, "Rc")) == ["JobStatus is 2 (running): the router only routes idle jobs (1)"]


def test_source_constraint_failures_are_split_too(gateway):
    gateway({"Rc": "REQUIREMENTS WantRcRoute =?= true"},
            {"JOB_ROUTER_SOURCE_JOB_CONSTRAINT": 'WantHpc =?= true && target.Owner == "alice" && MY.Owner =?= "x"'})
    v = verdict(decide(job_ad(), load_routing_table()), "Rc")
    assert texts(v) == [
        "JOB_ROUTER_SOURCE_JOB_CONSTRAINT: WantHpc =?= true -> false (WantHpc is undefined)",
        # in the router's query MY is the (empty) query ad, not the job
        'JOB_ROUTER_SOURCE_JOB_CONSTRAINT: MY.Owner =?= "x" -> false (MY.Owner is undefined)',
    ]


def test_route_limits_and_disabled_routes(gateway):
    gateway({"Full": "REQUIREMENTS true\nMaxJobs = 0", "Idle": "REQUIREMENTS true\nMaxIdleJobs = 0",
             "Off": "REQUIREMENTS true"},
            {"JOB_ROUTER_ROUTE_NAMES": "Full Idle", "HPCPULL_ROUTE_NAMES": "Full Idle"})
    table = load_routing_table(extra_routes=["Off"])
    decision = decide(job_ad(), table)
    assert decision.chosen is None and umbrella_constraint(table) is None
    assert "MaxJobs = 0: the route accepts no jobs" in texts(verdict(decision, "Full"))
    assert "MaxIdleJobs = 0: the route accepts no jobs" in texts(verdict(decision, "Idle"))
    off = verdict(decision, "Off")
    assert not off.enabled and not off.served
    assert any(t.startswith("not enabled: the route is not in JOB_ROUTER_ROUTE_NAMES") for t in texts(off))
    only = decide(job_ad(), table, only="off")
    assert [v.name for v in only.routes] == ["Off"]


def test_router_wide_switches(gateway):
    gateway({"A": "REQUIREMENTS true"}, {"JOB_ROUTER_MAX_JOBS": "0"})
    v = verdict(decide(job_ad(), load_routing_table()), "A")
    assert not v.matches and "JOB_ROUTER_MAX_JOBS = 0: the router takes no jobs" in texts(v)


# ------------------------------------------------------------------ job ad input
def test_condor_q_long_output_with_and_without_job():
    text = TWO_JOBS.read_text()
    assert [ad["ProcId"] for ad in parse_job_ads(text)] == [0, 1]
    assert load_job_ad(text, "78.1")["JobStatus"] == 2
    assert load_job_ad(text, " 78.0 ")["JobStatus"] == 1
    with pytest.raises(BadJobInput, match=re.escape("2 job ads in the input (78.0, 78.1): pick one with --job")):
        load_job_ad(text)
    with pytest.raises(BadJobInput, match=re.escape("no job 78.2 in the input (it has 78.0, 78.1)")):
        load_job_ad(text, "78.2")
    with pytest.raises(BadJobInput, match="is not CLUSTER.PROC"):
        load_job_ad(text, "78")
    single = text.split("\n\n")[0]
    assert load_job_ad(single)["ProcId"] == 0 and load_job_ad(single, "78.0")["ProcId"] == 0


def test_malformed_input_points_at_the_line():
    lines = TWO_JOBS.read_text().splitlines()
    lines[80] = "this is not an attribute"
    with pytest.raises(MalformedInput, match=r"condor_q -l input line 81 is not 'Name = value'"):
        parse_job_ads("\n".join(lines))
    with pytest.raises(BadJobInput, match="empty"):
        parse_job_ads("\n \n")
    with pytest.raises(MalformedInput, match="line 2 does not parse"):
        parse_job_ads('Owner = "alice"\nX = (1 +\n')


def test_job_ids_are_evaluated_and_only_whole_numbers_count() -> None:
    """A hand-written ad may give its ids as expressions; undefined and error are not ids
    (classad2 returns them as IntEnum members, which isinstance(..., int) would accept)."""
    ads = [classad2.ClassAd(text) for text in (
        "[ClusterId = 40 + 2; ProcId = 0]", "[ClusterId = undefined; ProcId = 0]",
        "[ClusterId = error; ProcId = 1]", "[ClusterId = true; ProcId = 0]", "[ProcId = 3]")]
    assert [job_id_of(ad) for ad in ads] == ["42.0", "?", "?", "?", "?"]
    assert select_job(ads, "42.0") is ads[0]
