"""Unit-test helpers: a RouteSettings factory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import pytest

from hpcpull.config import Config, RouteSettings


def default_route(name: str = "Slurm") -> RouteSettings:
    """A route with every knob at its documented default (read through Config itself)."""
    knobs = {f"JOB_ROUTER_ROUTE_{name}": "UNIVERSE VANILLA"}
    return Config(lambda key: knobs.get(key)).route(name)


def make_route(**overrides: Any) -> RouteSettings:
    """A RouteSettings with the default knobs; ``overrides`` replace fields (lists become tuples)."""
    fields = {f.name for f in dataclasses.fields(RouteSettings)}
    changes = {}
    for name, value in overrides.items():
        if name not in fields:
            raise TypeError(f"RouteSettings has no field {name!r}")
        if isinstance(value, list):
            value = tuple(Path(v) for v in value) if name == "template_dirs" else tuple(value)
        elif name == "scratch_root":
            value = Path(value)
        changes[name] = value
    return dataclasses.replace(default_route(), **changes)


@pytest.fixture(scope="session")
def route_factory() -> Callable[..., RouteSettings]:
    return make_route
