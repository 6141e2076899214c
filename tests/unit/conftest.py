"""Unit-test helpers: a RouteSettings factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from hpcpull.config import RouteSettings

# RouteSettings as a fresh route with every knob at its documented default.
ROUTE_DEFAULTS: dict[str, Any] = {
    "name": "Slurm",
    "lrms": "slurm",
    "scratch_root": Path("/scratch/hpcpull"),
    "partition": "",
    "account": "",
    "template": "",
    "template_dirs": (),
    "extra_directives": (),
    "environment_setup": (),
    "default_walltime_s": 0,
    "map_request_disk": False,
    "python": "python3",
    "keep_job_dirs": False,
    "link_inputs": "auto",
}


def make_route(**overrides: Any) -> RouteSettings:
    """A RouteSettings with the default knobs; ``overrides`` replace fields (lists become tuples)."""
    fields = dict(ROUTE_DEFAULTS)
    for name, value in overrides.items():
        if name not in fields:
            raise TypeError(f"RouteSettings has no field {name!r}")
        if isinstance(value, list):
            value = tuple(Path(v) for v in value) if name == "template_dirs" else tuple(value)
        elif name == "scratch_root":
            value = Path(value)
        fields[name] = value
    return RouteSettings(**fields)


@pytest.fixture(scope="session")
def route_factory() -> Callable[..., RouteSettings]:
    return make_route
