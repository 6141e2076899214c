"""The one narrow interface through which hpcpull talks to a schedd.

Hooks run as the job owner, who may act on their own jobs.  hpcpull asks the gateway
schedd for four things only: take a routed copy back (``Managed = "ScheddDone"``: the
schedd leaves a job whose Managed is "External" to its manager, even once it is over, and
"ScheddDone" says the manager does not want it back -- src/condor_schedd.V6/scheduler.h,
jobExternallyManaged, jobManagedDone), tell the state of the source job (to notice a
``condor_release`` of a job whose hold mirrors the copy's, which the router would hold
again: src/condor_job_router/VanillaToGrid.cpp, update_job_status), remove a routed copy
(the router then gives the source job back to HTCondor: a released job is routed again from
a clean state, an idle one may run elsewhere), and set an attribute of a job.  The poller,
as the condor user, reads the routed copies and marks those whose UPDATE it wakes
(state/wake.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

MANAGED_DONE = '"ScheddDone"'


@dataclass(frozen=True)
class Outcome:
    """What the schedd made of one request: whether it took effect, and one line for the log.

    ``gone``: the job is not in the queue, so there was nothing to apply the request to.
    Callers that must know (a copy given back has to leave the queue) test ``applied``.
    """

    applied: bool
    text: str
    gone: bool = False

    def __str__(self) -> str:
        return self.text


class ScheddUnreachable(Exception):
    """The schedd did not answer: whether a job is still in its queue cannot be told now."""


class GatewaySchedd(Protocol):
    def hand_back(self, job_id: str) -> Outcome:
        """Set Managed = "ScheddDone" on ``job_id``."""
        ...

    def job_status(self, job_id: str) -> Optional[int]:
        """JobStatus of ``job_id`` (None: not in the queue, or the schedd cannot tell now)."""
        try:
            return self.source_status(job_id)
        except ScheddUnreachable:
            return None

    def source_status(self, job_id: str) -> Optional[int]:
        """JobStatus of ``job_id``, None if it is not in the queue; ScheddUnreachable if the
        schedd cannot tell now."""
        ...

    def remove(self, job_id: str, reason: str) -> Outcome:
        """condor_rm ``job_id`` with ``reason``."""
        ...

    def edit(self, job_id: str, attr: str, expr: str) -> Outcome:
        """condor_qedit ``job_id`` ``attr`` ``expr`` (a ClassAd expression)."""
        ...


def _failure(exc: Exception) -> str:
    return str(exc).strip() or type(exc).__name__


class HTCondorSchedd(GatewaySchedd):
    """The local schedd, through ``htcondor2.Schedd``."""

    def hand_back(self, job_id: str) -> Outcome:
        outcome = self.edit(job_id, "Managed", MANAGED_DONE)
        # Expected to fail when the copy is already gone or the schedd is restarting: the
        # router removes the copy itself, and UPDATE's completed set yields it too.
        if outcome.applied:
            return Outcome(True, f"handed {job_id} back to the schedd")
        if outcome.gone:
            return Outcome(False, f"{job_id} had already left the queue", gone=True)
        return outcome

    def source_status(self, job_id: str) -> Optional[int]:
        import htcondor2

        cluster, _, proc = job_id.partition(".")
        try:
            ads = htcondor2.Schedd().query(f"ClusterId == {int(cluster)} && ProcId == {int(proc)}", ["JobStatus"])
        except Exception as exc:  # noqa: BLE001 - htcondor2 raises several types
            raise ScheddUnreachable(_failure(exc)) from None
        return int(ads[0]["JobStatus"]) if ads else None

    def remove(self, job_id: str, reason: str) -> Outcome:
        import htcondor2

        try:
            result = htcondor2.Schedd().act(htcondor2.JobAction.Remove, job_id, reason=reason)
        except Exception as exc:  # noqa: BLE001
            return Outcome(False, f"removal of {job_id} not applied: {_failure(exc)}")
        # The result ad counts the jobs per outcome (htcondor2/_schedd.py, Schedd.act:
        # TotalSuccess, TotalNotFound, TotalAlreadyDone, TotalPermissionDenied, ...).
        if _count(result, "TotalSuccess") or _count(result, "TotalAlreadyDone"):
            return Outcome(True, f"removed {job_id}: {reason}")
        if _count(result, "TotalNotFound"):
            return Outcome(False, f"removal of {job_id} not applied: no such job", gone=True)
        return Outcome(False, f"removal of {job_id} not applied: the schedd refused it ({_counts(result)})")

    def edit(self, job_id: str, attr: str, expr: str) -> Outcome:
        import htcondor2

        try:
            edited = htcondor2.Schedd().edit(job_id, attr, expr)
        except Exception as exc:  # noqa: BLE001
            text = _failure(exc)
            return Outcome(False, f"edit of {job_id} ({attr}) not applied: {text}", gone="nonexistent job" in text)
        if isinstance(edited, int) and edited == 0:  # Schedd.edit returns the number of jobs edited
            return Outcome(False, f"edit of {job_id} ({attr}) not applied: no such job", gone=True)
        return Outcome(True, f"set {attr} of {job_id}")

    def routed_copies(self, constraint: str, projection: list[str]) -> list[dict[str, Any]]:
        """The routed copies matching ``constraint``, with the ``projection`` attributes."""
        import htcondor2

        return [dict(ad) for ad in htcondor2.Schedd().query(constraint, projection)]

    def mark(self, job_ids: list[str], attr: str, expr: str) -> int:
        """Set ``attr`` of every job in ``job_ids`` in one transaction, without waiting for the
        schedd's disk (NonDurable: for hints that the next poll sets again); how many were set."""
        import htcondor2

        return int(htcondor2.Schedd().edit(job_ids, attr, expr, htcondor2.TransactionFlag.NonDurable))


def _count(result: Any, key: str) -> int:
    try:
        return int(result.get(key) or 0)
    except (TypeError, ValueError, AttributeError):
        return 0


def _counts(result: Any) -> str:
    keys = ("TotalError", "TotalBadStatus", "TotalPermissionDenied")
    return ", ".join(f"{k} = {_count(result, k)}" for k in keys)


class ScheddTestDouble(GatewaySchedd):
    """TEST DOUBLE, not a schedd: records each call as a JSON line in ``path``.

    Selected only by the HPCPULL_SCHEDD_DOUBLE knob, which the test and demo harness
    (hpcpull.testing.router_sim) sets; the harness applies the recorded calls to its simulated
    queue and publishes the queue's job states in ``<path>.queue.json`` for job_status.
    A test makes the double refuse requests, as a schedd that is down or denies them
    would, by listing them in ``<path>.refuse``, one per line: ``remove``, ``edit`` or
    ``edit <Attribute>``.  A refused request is not recorded.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _record(self, **record: object) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **record}) + "\n")

    def _refused(self, op: str, attr: str = "") -> bool:
        try:
            lines = Path(f"{self.path}.refuse").read_text(encoding="utf-8").splitlines()
        except OSError:
            return False
        wanted = {op, f"{op} {attr}".strip()}
        return any(line.strip() in wanted for line in lines)

    def hand_back(self, job_id: str) -> Outcome:
        outcome = self.edit(job_id, "Managed", MANAGED_DONE)
        if not outcome.applied:
            return outcome
        return Outcome(True, f"handed {job_id} back to the schedd (test double)")

    def source_status(self, job_id: str) -> Optional[int]:
        try:
            queue = json.loads(Path(f"{self.path}.queue.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ScheddUnreachable(str(exc)) from None
        value = queue.get(job_id)
        return int(value) if value is not None else None

    def remove(self, job_id: str, reason: str) -> Outcome:
        if self._refused("remove"):
            return Outcome(False, f"removal of {job_id} not applied: refused (test double)")
        self._record(op="remove", job=job_id, reason=reason)
        return Outcome(True, f"removed {job_id}: {reason} (test double)")

    def edit(self, job_id: str, attr: str, expr: str) -> Outcome:
        if self._refused("edit", attr):
            return Outcome(False, f"edit of {job_id} ({attr}) not applied: refused (test double)")
        self._record(op="edit", job=job_id, attr=attr, value=expr)
        return Outcome(True, f"set {attr} of {job_id} (test double)")


def gateway_schedd(double_path: str = "") -> GatewaySchedd:
    return ScheddTestDouble(Path(double_path)) if double_path else HTCondorSchedd()
