"""Errors that carry what an operator or a user needs to act on them."""

from __future__ import annotations


class HpcPullError(Exception):
    """Base class: the message is one clear line meant for a log or a HoldReason."""


class ConfigError(HpcPullError):
    """The HTCondor configuration for hpcpull is missing or invalid (an admin must fix it)."""


class JobRejected(HpcPullError):
    """This job cannot run as submitted (bad request, missing input, hostile value).

    ``hold_code``/``hold_subcode`` are the HTCondor HoldReasonCode/SubCode the job gets.
    """

    def __init__(self, reason: str, hold_code: int = 0, hold_subcode: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hold_code = hold_code
        self.hold_subcode = hold_subcode


class SandboxError(JobRejected):
    """An input or output file could not be transferred."""
