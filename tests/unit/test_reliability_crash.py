"""CI-sized crash durability (reliability/crash.py): a child writing imports, flash records, EA
saves and update requests is SIGKILLed at random moments; after every kill the workspace reopens
intact, nothing committed is lost, no version is half-written, and updates left In progress are
marked Failed (interrupted)."""

from __future__ import annotations

import os

import pytest

from reliability.crash import kill_campaign

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")


def test_random_kills_never_corrupt_the_workspace() -> None:
    rep = kill_campaign(8, seed=4)
    assert rep.kills == 8
    assert rep.committed > 20
    assert rep.corruptions == []
    assert rep.interrupted_marked >= 1


def test_flash_jobs_killed_mid_way_are_marked_interrupted() -> None:
    """The child's flash journal op: a kill between the "started" row and the final one
    leaves a record the next open marks interrupted (with its partial bus log)."""
    rep = kill_campaign(14, seed=9)
    assert rep.corruptions == []
    assert rep.flashes_interrupted >= 1
