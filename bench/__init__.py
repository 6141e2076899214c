"""Benchmarks a person runs on one machine; each measures hpcpull side by side with a baseline.

See bench/README.md.  Run one with ``python -m bench.<name>`` (or ``python bench/<name>.py``),
all of them with ``python -m bench.run_all``.
"""
