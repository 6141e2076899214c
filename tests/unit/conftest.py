"""Unit-test helpers: a RouteSettings factory."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import htcondor2
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


@pytest.fixture
def condor_config(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``use(routes, knobs)``: write a real gateway CONDOR_CONFIG and point htcondor2.param
    at it in this process; the previous configuration is restored afterwards."""
    from hpcpull.testing.router_sim import write_gateway_config

    old = os.environ.get("CONDOR_CONFIG")

    def use(routes: dict[str, str], knobs: Optional[dict[str, str]] = None) -> Path:
        config = write_gateway_config(tmp_path / "gw", routes, knobs or {})
        os.environ["CONDOR_CONFIG"] = str(config)
        htcondor2.reload_config()
        return config

    yield use
    if old is None:
        os.environ.pop("CONDOR_CONFIG", None)
    else:
        os.environ["CONDOR_CONFIG"] = old
    htcondor2.reload_config()
