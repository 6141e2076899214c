"""The output files a job promised (TransferOutput) and did not leave in its sandbox.

HTCondor does not complete such a job: the starter cannot read the file, and the job is
held with HoldReasonCode 12 (TransferOutputError, src/condor_utils/condor_holdcodes.h:
"the subcode will contain the unix errno"), subcode 2 (ENOENT) and a reason naming the
file, "Transfer output files failure at execution point ... Details: reading from file
<path>: (errno 2) No such file or directory" (src/condor_tests/test_xfer_hold_codes.py,
jobOutputFailureEP).  UPDATE does the same before it would report the job completed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Optional

import classad2

from hpcpull import holds
from hpcpull.router.jobstate import ExitRecord, Hold
from hpcpull.state.jobdir import CONTROL_DIR


def _evaluated(ad: classad2.ClassAd, name: str) -> Any:
    try:
        value = ad.eval(name) if name in ad else None
    except Exception:  # noqa: BLE001 - a value that does not evaluate counts as unset
        return None
    return None if isinstance(value, classad2.Value) else value


def _transfers_outputs(ad: classad2.ClassAd, record: ExitRecord) -> bool:
    """Whether HTCondor would transfer the output files after this exit: not with
    should_transfer_files = NO, and with when_to_transfer_output = ON_SUCCESS only if the job
    exited with SuccessExitCode (default 0) and not by a signal."""
    if str(_evaluated(ad, "ShouldTransferFiles") or "").upper() == "NO":
        return False
    if str(_evaluated(ad, "WhenToTransferOutput") or "").upper() != "ON_SUCCESS":
        return True
    success = _evaluated(ad, "SuccessExitCode")
    wanted = success if isinstance(success, int) and not isinstance(success, bool) else 0
    return record.exit_signal is None and record.exit_code == wanted


def missing_outputs(ad: classad2.ClassAd, sandbox: Path, record: ExitRecord) -> list[str]:
    """The TransferOutput entries that are not in ``sandbox``, in the job's order.

    Only a list the job wrote counts (without one, HTCondor returns what the job made, and
    nothing can be missing).  Names that are refused anyway (absolute, with '..', URLs,
    hpcpull's control directory) are left to the output return, which reports them.
    """
    listed = _evaluated(ad, "TransferOutput")
    if not isinstance(listed, str) or not _transfers_outputs(ad, record):
        return []
    missing = []
    for entry in (e.strip() for e in listed.split(",")):
        parts = [part for part in entry.split("/") if part not in ("", ".")]
        if not parts or os.path.isabs(entry) or "://" in entry or ".." in parts or parts[0] == CONTROL_DIR:
            continue
        if not os.path.lexists(sandbox.joinpath(*parts)):
            missing.append(entry)
    return missing


def hold_for_missing_outputs(sandbox: Path, missing: list[str], batch_job: Optional[str], lrms: str) -> Hold:
    """HTCondor's hold for an output the job did not write, one "reading from file" per file."""
    details = "; ".join(
        f"reading from file {sandbox.joinpath(*[p for p in name.split('/') if p not in ('', '.')])}: "
        f"(errno {errno.ENOENT}) {os.strerror(errno.ENOENT)}"
        for name in missing)
    where = f"{lrms} batch job {batch_job}" if batch_job else f"{lrms} batch job"
    return Hold(f"hpcpull: Transfer output files failure at execution point {where}. Details: {details}",
                holds.TRANSFER_OUTPUT_ERROR, errno.ENOENT)
