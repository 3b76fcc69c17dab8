"""The hostile-conditions cases of `make reliability` (reliability/hostile.py) run and pass:
the cheap ones here (the costly ones — two flash processes, a kill at 70 %, a full disk,
read-only media, the seeding race — have their own unit tests: test_ecu_lock.py,
test_flash_kill.py, test_hostile_storage.py, test_workspace.py)."""

from __future__ import annotations

import os

import pytest

from reliability import hostile

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")

CHEAP = [
    "stale lock of killed pid",
    "newer schema untouched",
    "check: scribbled DB pages",
    "version + U+202E",
    "EA nested 5,000 deep",
    "EA 400-digit bitrate",
]


def test_cheap_hostile_cases_pass() -> None:
    results = hostile.run_cases(CHEAP)
    assert [r.name for r in results] == CHEAP
    assert [r for r in results if not r.ok] == []


def test_every_case_is_named_once() -> None:
    names = [name for name, _fn in hostile.CASES]
    assert len(names) == len(set(names)) >= 18
