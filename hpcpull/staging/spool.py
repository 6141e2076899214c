"""Spooled jobs: the schedd keeps the job's sandbox in its SPOOL directory.

HTCondor-C arrivals (pull mode) and ``condor_submit -spool`` jobs have their Iwd there,
and the schedd sets ``SUBMIT_Iwd`` to the submitter's own path when it moves the Iwd
(``schedd.cpp``, ``spoolJobFilesReaper``).  Such a job may read and write nothing outside
its Iwd: everything it brought is inside.
"""

from __future__ import annotations

from typing import Optional

import classad2


def spool_dir() -> str:
    """The schedd's SPOOL of this configuration ("" when unset)."""
    import htcondor2

    return htcondor2.param.get("SPOOL") or ""


def is_spooled(ad: classad2.ClassAd, spool: Optional[str] = None) -> bool:
    """Whether ``ad`` is a spooled job: ``SUBMIT_Iwd`` is set, or its Iwd is in ``spool``
    (this configuration's SPOOL when not given)."""
    if "SUBMIT_Iwd" in ad:
        return True
    iwd = ad.get("Iwd")
    iwd = iwd if isinstance(iwd, str) else ""
    spool = spool_dir() if spool is None else spool
    return bool(spool and iwd) and (iwd == spool or iwd.startswith(spool.rstrip("/") + "/"))
