"""Crash injection for hpcpull's own crash-safety tests (tests/reliability/).

``crash_point(name)`` kills the current process with SIGKILL when the environment
variable ``HPCPULL_TEST_CRASH_AT`` names that point, so a test can stop a hook exactly
between two steps (say, after sbatch returned and before the id was recorded) and check
that the next invocation repairs the state.  Unset -- always, in production -- it costs
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "HPCPULL_TEST_CRASH_AT"

# Every point, in hook order (the tests iterate over this list).
CRASH_POINTS = (
    "translate:staged-one-input",      # in the middle of staging the input sandbox
    "translate:before-swap",           # sandbox staged, not yet moved into place
    "translate:before-control-files",  # sandbox in place, no script yet
    "translate:before-submit",         # submission token recorded, batch command not run
    "translate:after-submit",          # batch job exists, its id not recorded
    "update:before-submit",            # the same, where UPDATE submits (HPCPULL_SUBMIT_AT_ROUTING
    "update:after-submit",             # = false, or a submission TRANSLATE left to UPDATE)
    "update:after-record",             # id recorded, the router not told
    "finalize:returned-one-output",    # in the middle of returning the output sandbox
    "cleanup:after-cancel",            # batch job cancelled, copy not handed back
)


def crash_point(name: str) -> None:
    """SIGKILL this process if HPCPULL_TEST_CRASH_AT names ``name`` (test-only fault injection)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
