"""The one narrow interface through which hpcpull talks to a schedd.

Hooks run as the job owner, who may edit their own jobs; the only thing hpcpull asks of
the gateway schedd today is to take a routed copy back (``Managed = "ScheddDone"``), so
that an externally managed copy never lingers in the queue (routed-copy recipe, pitfall 1).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Protocol

MANAGED_DONE = '"ScheddDone"'


class GatewaySchedd(Protocol):
    def hand_back(self, job_id: str) -> str:
        """Set Managed = "ScheddDone" on ``job_id``; return a one-line outcome for the log."""
        ...


class HTCondorSchedd:
    """The local schedd, through ``htcondor2.Schedd``."""

    def hand_back(self, job_id: str) -> str:
        import htcondor2

        try:
            htcondor2.Schedd().edit(job_id, "Managed", MANAGED_DONE)
        except Exception as exc:  # noqa: BLE001 - htcondor2 raises several types
            # Expected when the copy is already gone or the schedd is restarting: the
            # router removes the copy itself, and UPDATE's completed set yields it too.
            return f"hand back of {job_id} not applied: {str(exc).strip() or type(exc).__name__}"
        return f"handed {job_id} back to the schedd"


class ScheddTestDouble:
    """TEST DOUBLE, not a schedd: records each call as a JSON line in ``path``.

    Selected only by the HPCPULL_SCHEDD_DOUBLE knob, which the test and demo harness
    (hpcpull.routersim) sets; it then applies the recorded edits to its simulated queue.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def hand_back(self, job_id: str) -> str:
        record = {"time": time.time(), "op": "edit", "job": job_id, "attr": "Managed", "value": MANAGED_DONE}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        return f"handed {job_id} back to the schedd (test double)"


def gateway_schedd(double_path: str = "") -> GatewaySchedd:
    return ScheddTestDouble(Path(double_path)) if double_path else HTCondorSchedd()
