"""The poller's choice of routed jobs whose UPDATE to wake (state/wake.py), and the full
UPDATE letting a woken job rest again."""

from __future__ import annotations

from typing import Any

from hpcpull.config import Config
from hpcpull.router.update import update
from hpcpull.state.wake import Snapshot, choose

NOW = 1_800_000_000.0
SLURM = Snapshot({"100": 1, "101": 2}, NOW - 2)
ROUTES = {"Slurm": "slurm", "Pbs": "pbs"}


def copy(proc: int, status: int, batch_id: str, route: str = "Slurm", **attrs: Any) -> dict[str, Any]:
    return {"ClusterId": 9, "ProcId": proc, "JobStatus": status, "RouteName": route, "HpcPullBatchJobId": batch_id,
            "HpcPullFullCheckAt": 0, "HpcPullSubmittedAt": int(NOW) - 600, **attrs}


def test_jobs_with_news_are_woken_the_others_left_alone() -> None:
    copies = [
        copy(0, 1, "100"),                       # waiting, as the snapshot says: nothing to do
        copy(1, 1, "101"),                       # the batch job started: wake
        copy(2, 2, "102"),                       # left the listing (ended): wake
        copy(3, 2, "101", HpcPullFullCheckAt=int(NOW) - 1),   # its own deadline passed: wake
        copy(4, 1, "103", HpcPullSubmittedAt=int(NOW)),       # submitted after the snapshot: wait
    ]
    chosen = choose(copies, ROUTES, {"slurm": SLURM}, NOW)
    assert (chosen.wake, chosen.rest) == (["9.1", "9.2", "9.3"], [])


def test_a_woken_job_is_not_woken_again_and_one_without_news_rests() -> None:
    copies = [copy(0, 1, "101", HpcPullWake=True),    # still news, already awake: no edit
              copy(1, 2, "101", HpcPullWake=True),    # its UPDATE reported it meanwhile: rest
              copy(2, 2, "101", HpcPullWake=False)]   # nothing new
    chosen = choose(copies, ROUTES, {"slurm": SLURM}, NOW)
    assert (chosen.wake, chosen.rest) == ([], ["9.1"])


def test_without_a_fresh_snapshot_of_its_batch_system_a_job_keeps_its_window() -> None:
    """The pbs snapshot failed (or that batch system hides other users' jobs), and the third
    copy's route is not hpcpull's: nobody can tell whether they have news."""
    copies = [copy(0, 2, "7.pbs", route="Pbs"), copy(1, 1, "101", HpcPullWake=True, route="Pbs"),
              copy(2, 1, "101", route="Other"), {"ProcId": 3, "RouteName": "Slurm"}]
    chosen = choose(copies, ROUTES, {"slurm": SLURM}, NOW)
    assert (chosen.wake, chosen.rest) == ([], [])


def completed_copy(**attrs: str) -> str:
    lines = {"ClusterId": "9", "ProcId": "0", "JobStatus": "4", "RouteName": '"Slurm"', **attrs}
    return "".join(f"{name} = {value}\n" for name, value in lines.items())


def test_the_full_update_lets_a_woken_job_rest_again() -> None:
    config = Config(lambda name: {"JOB_ROUTER_ROUTE_NAMES": "Slurm"}.get(name))
    assert update(completed_copy(HpcPullWake="true"), config).stdout == "HpcPullWake = false\n"
    assert update(completed_copy(HpcPullWake="false"), config).stdout == ""
    assert update(completed_copy(), config).stdout == ""
