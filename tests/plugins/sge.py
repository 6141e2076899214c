"""Fixture ``sge_env``: a real Grid Engine (Debian gridengine-*) started for the test session."""
