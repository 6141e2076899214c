"""What ``hpcpull doctor`` finds, and what every group of checks shares.

A finding is a ``Check``: OK, WARN or FAIL, the check's name, what was found and how to fix
it.  ``DoctorBase`` holds the configuration being checked and collects the findings; each
module of this package adds one group of checks to it as a mixin, and command.py's
``Doctor`` puts them together in the order an admin fixes things.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from hpcpull.config import Config, GatewaySettings, RouteSettings
from hpcpull.lrms.base import one_line

OK, WARN, FAIL = "OK", "WARN", "FAIL"

Lookup = Callable[[str], Optional[str]]


@dataclass(frozen=True)
class Check:
    """One finding: status OK, WARN or FAIL, a check name, what was found and how to fix it."""

    status: str
    name: str
    message: str
    fix: str = ""

    def lines(self) -> list[str]:
        text = [f"{self.status} {self.name}: {one_line(self.message, 2000)}"]
        if self.status != OK and self.fix:
            text.append(f"    fix: {one_line(self.fix, 2000)}")
        return text


def mode_text(st: os.stat_result) -> str:
    """A file's permission bits as ``ls`` users read them: 0755, 1777."""
    return f"{stat.S_IMODE(st.st_mode):04o}"


def knob_list(text: Optional[str]) -> list[str]:
    """A knob list (HTCondor's StringTokenIterator: commas and white space)."""
    return [word for word in re.split(r"[\s,]+", text or "") if word]


def jobs_text(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def tail(text: str, lines: int = 3) -> str:
    """The last non-blank ``lines`` of a command's output, on one line."""
    kept = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


class DoctorBase:
    """The configuration under check and the findings so far; ``results`` collects them."""

    def __init__(
        self,
        lookup: Lookup,
        keys: Callable[[], Iterable[str]],
        route: Optional[str] = None,
        probe: bool = False,
        probe_timeout: float = 60.0,
        hook_env: Optional[Mapping[str, str]] = None,
        config: Optional[Config] = None,
        hook_user: Optional[str] = None,
    ) -> None:
        self.lookup = lookup
        self.hook_user = hook_user  # --as-user; None: DEFAULT_HOOK_USER
        self.keys = keys
        self.config = Config(lookup) if config is None else config
        self.only_route = route
        self.probe = probe
        self.probe_timeout = probe_timeout
        self.hook_env = dict(os.environ if hook_env is None else hook_env)
        self.results: list[Check] = []
        self.gateway: Optional[GatewaySettings] = None
        self.routes: dict[str, RouteSettings] = {}     # selected routes whose knobs resolve
        self.rendered: set[str] = set()                # routes whose template renders
        self.scratch_ok: dict[Path, bool] = {}

    def add(self, status: str, name: str, message: str, fix: str = "") -> Check:
        check = Check(status, name, message, fix)
        self.results.append(check)
        return check

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.results)

    def served_route_names(self) -> list[str]:
        """HPCPULL_ROUTE_NAMES (default: JOB_ROUTER_ROUTE_NAMES), as Config reads them."""
        names = (self.lookup("HPCPULL_ROUTE_NAMES") or "").strip() or self.lookup("JOB_ROUTER_ROUTE_NAMES")
        return knob_list(names)

    def selected_route_names(self) -> list[str]:
        served = self.served_route_names()
        if self.only_route is None:
            return served
        return [name for name in served if name.lower() == self.only_route.lower()]
