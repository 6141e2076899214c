"""The one narrow interface through which hpcpull talks to a schedd.

Hooks run as the job owner, who may act on their own jobs.  hpcpull asks the gateway
schedd for four things only: take a routed copy back (``Managed = "ScheddDone"``, so that
an externally managed copy never lingers: routed-copy recipe, pitfall 1), tell the state
of the source job (to notice a ``condor_release`` of a job whose hold mirrors the copy's:
pitfall 4), remove a routed copy (the router then gives the source job back to HTCondor:
a released job is routed again from a clean state, an idle one may run elsewhere), and
set an attribute of a job.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Protocol

MANAGED_DONE = '"ScheddDone"'


class ScheddUnreachable(Exception):
    """The schedd did not answer: whether a job is still in its queue cannot be told now."""


class GatewaySchedd(Protocol):
    def hand_back(self, job_id: str) -> str:
        """Set Managed = "ScheddDone" on ``job_id``; return a one-line outcome for the log."""
        ...

    def job_status(self, job_id: str) -> Optional[int]:
        """JobStatus of ``job_id`` (None: not in the queue, or the schedd cannot tell now)."""
        ...

    def source_status(self, job_id: str) -> Optional[int]:
        """JobStatus of ``job_id``, None if it is not in the queue; ScheddUnreachable if the
        schedd cannot tell now."""
        ...

    def remove(self, job_id: str, reason: str) -> str:
        """condor_rm ``job_id`` with ``reason``; a one-line outcome for the log."""
        ...

    def edit(self, job_id: str, attr: str, expr: str) -> str:
        """condor_qedit ``job_id`` ``attr`` ``expr`` (a ClassAd expression); a one-line outcome."""
        ...


def _failure(exc: Exception) -> str:
    return str(exc).strip() or type(exc).__name__


class HTCondorSchedd:
    """The local schedd, through ``htcondor2.Schedd``."""

    def hand_back(self, job_id: str) -> str:
        outcome = self.edit(job_id, "Managed", MANAGED_DONE)
        # Expected to fail when the copy is already gone or the schedd is restarting: the
        # router removes the copy itself, and UPDATE's completed set yields it too.
        if outcome.startswith("set"):
            return f"handed {job_id} back to the schedd"
        if "nonexistent job" in outcome:
            return f"{job_id} had already left the queue"
        return outcome

    def job_status(self, job_id: str) -> Optional[int]:
        try:
            return self.source_status(job_id)
        except ScheddUnreachable:
            return None

    def source_status(self, job_id: str) -> Optional[int]:
        import htcondor2

        cluster, _, proc = job_id.partition(".")
        try:
            ads = htcondor2.Schedd().query(f"ClusterId == {int(cluster)} && ProcId == {int(proc)}", ["JobStatus"])
        except Exception as exc:  # noqa: BLE001 - htcondor2 raises several types
            raise ScheddUnreachable(_failure(exc)) from None
        return int(ads[0]["JobStatus"]) if ads else None

    def remove(self, job_id: str, reason: str) -> str:
        import htcondor2

        try:
            htcondor2.Schedd().act(htcondor2.JobAction.Remove, job_id, reason=reason)
        except Exception as exc:  # noqa: BLE001
            return f"removal of {job_id} not applied: {_failure(exc)}"
        return f"removed {job_id}: {reason}"

    def edit(self, job_id: str, attr: str, expr: str) -> str:
        import htcondor2

        try:
            htcondor2.Schedd().edit(job_id, attr, expr)
        except Exception as exc:  # noqa: BLE001
            return f"edit of {job_id} ({attr}) not applied: {_failure(exc)}"
        return f"set {attr} of {job_id}"


class ScheddTestDouble:
    """TEST DOUBLE, not a schedd: records each call as a JSON line in ``path``.

    Selected only by the HPCPULL_SCHEDD_DOUBLE knob, which the test and demo harness
    (hpcpull.routersim) sets; the harness applies the recorded calls to its simulated
    queue and publishes the queue's job states in ``<path>.queue.json`` for job_status.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _record(self, **record: object) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **record}) + "\n")

    def hand_back(self, job_id: str) -> str:
        self._record(op="edit", job=job_id, attr="Managed", value=MANAGED_DONE)
        return f"handed {job_id} back to the schedd (test double)"

    def job_status(self, job_id: str) -> Optional[int]:
        try:
            return self.source_status(job_id)
        except ScheddUnreachable:
            return None

    def source_status(self, job_id: str) -> Optional[int]:
        try:
            queue = json.loads(Path(f"{self.path}.queue.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ScheddUnreachable(str(exc)) from None
        value = queue.get(job_id)
        return int(value) if value is not None else None

    def remove(self, job_id: str, reason: str) -> str:
        self._record(op="remove", job=job_id, reason=reason)
        return f"removed {job_id}: {reason} (test double)"

    def edit(self, job_id: str, attr: str, expr: str) -> str:
        self._record(op="edit", job=job_id, attr=attr, value=expr)
        return f"set {attr} of {job_id} (test double)"


def gateway_schedd(double_path: str = "") -> GatewaySchedd:
    return ScheddTestDouble(Path(double_path)) if double_path else HTCondorSchedd()
