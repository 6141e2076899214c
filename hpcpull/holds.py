"""The HoldReasonCode / HoldReasonSubCode values hpcpull gives jobs, in one place.

HoldReasonCode is HTCondor's own (src/condor_utils/condor_holdcodes.h) where one fits,
else 0 (Unspecified); HoldReasonSubCode then says which hpcpull check failed, so tools
and periodic_release expressions can tell causes apart.  The README's "Hold reasons"
table lists the same values.
"""

# HoldReasonCode (HTCondor's)
UNSPECIFIED = 0
TRANSFER_OUTPUT_ERROR = 12       # subcode: the errno of the failed output (2 = missing)
TRANSFER_INPUT_ERROR = 13        # subcode: the errno of the failed input (2 = not found)
JOB_OUT_OF_RESOURCES = 34
JOB_DURATION_EXCEEDED = 46

# HoldReasonSubCode with code 0: the job description cannot run as written.
HOLD_SUBCODE_COMMAND = 10        # Cmd
HOLD_SUBCODE_ARGUMENTS = 11      # Arguments / Args quoting
HOLD_SUBCODE_ENVIRONMENT = 12    # Environment / Env
HOLD_SUBCODE_STREAMS = 13        # In / Out / Err
HOLD_SUBCODE_RESOURCES = 14      # RequestCpus, RequestMemory, BatchRuntime, ...
HOLD_SUBCODE_UNSAFE_VALUE = 15   # a value that cannot be placed safely in the script
HOLD_SUBCODE_INVALID_JOB = 16    # anything else about the job ad (e.g. Owner)

# HoldReasonSubCode: the batch system side.
SUB_SUBMIT_REFUSED = 20          # code 0: the batch system refused the script
SUB_WALLTIME = 21                # code 46: exceeded its walltime
SUB_MEMORY = 22                  # code 34: ran out of memory
SUB_NODE_FAILURE = 23            # code 0
SUB_PREEMPTED = 24               # code 0
SUB_CANCELLED = 25               # code 0: cancelled outside HTCondor
SUB_NO_EXIT_STATUS = 26          # code 0: ended without writing exit_status
SUB_VANISHED = 27                # code 0: the batch system forgot the job
SUB_JOB_DIR_MISSING = 28         # code 0
