"""hpcpull.admin.common and hpcpull.state.accounts: the helpers the admin tools share."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hpcpull.admin.common import age, clock
from hpcpull.state.accounts import current_user, read_trusted_text, user_name


@pytest.mark.parametrize("seconds, compact, words", [
    (-5, "0s", "0 s"),
    (45.9, "45s", "45 s"),
    (80, "1m20s", "80 s"),
    (125, "2m05s", "2 min 5 s"),
    (3 * 3600 + 120, "3h02m", "3 h 2 min"),
    (2 * 86400 + 4 * 3600, "2d04h", "52 h 0 min"),
])
def test_age_compact_for_tables_and_in_words_for_sentences(seconds: float, compact: str, words: str) -> None:
    assert age(seconds) == compact
    assert age(seconds, words=True) == words


def test_clock_is_local_time() -> None:
    assert clock(0) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(0))


def test_the_current_user_and_unknown_uids() -> None:
    assert current_user() == (user_name(os.geteuid()) or str(os.geteuid()))
    assert user_name(2**31 - 7) is None


def test_a_trusted_file_is_read_and_a_missing_one_is_none(tmp_path: Path) -> None:
    (tmp_path / "mine").write_text("hello")
    assert read_trusted_text(tmp_path / "mine") == "hello"
    assert read_trusted_text(tmp_path / "missing") is None
