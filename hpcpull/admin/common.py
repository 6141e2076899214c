"""Small helpers the admin tools share: durations and times for people, ad attributes as text.

Who this process is and whose files are trusted live in hpcpull/state/accounts.py, as
the hooks need them too.
"""

from __future__ import annotations

import time
from typing import Any


def age(seconds: float, words: bool = False) -> str:
    """How long, in whole seconds (never negative), for people.

    Compact, for tables (``hpcpull status``): 45s, 12m05s, 3h02m, 2d04h.  In words, for
    sentences (``hpcpull doctor``): 45 s up to two minutes, then 12 min 5 s up to two
    hours, then 3 h 2 min.
    """
    s = max(0, int(seconds))
    if words:
        if s < 120:
            return f"{s} s"
        if s < 7200:
            return f"{s // 60} min {s % 60} s"
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock(epoch: float) -> str:
    """A moment in local time: ``2026-05-04 13:02:11``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def attribute_text(ad: Any, name: str, limit: int = 60) -> str:
    """An ad's attribute as written in the ad (not evaluated), on one short line."""
    text = " ".join(str(ad.lookup(name)).split())
    return text if len(text) <= limit else f"{text[:limit]} ... ({len(text)} characters)"
