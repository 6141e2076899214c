"""Pytest plugins (registered in tests/conftest.py): fixtures that start real batch systems."""
