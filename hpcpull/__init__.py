"""hpcpull: run HTCondor jobs on HPC batch systems through condor_job_router hooks."""

__version__ = "0.1.0"
