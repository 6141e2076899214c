"""Fixture ``lsf_env``: the labelled fake LSF commands (tests/fakes/lsf) on PATH."""
