"""Fuzzing of issue 14's hostile text (reliability/fuzz_hostile.py): the EA parser at depth,
hostile numbers in an EA, Unicode look-alikes in version strings. Every input is accepted or
refused with a FotaError that has a message (no RecursionError, no crash), no input is slow,
and anything accepted respects the documented bounds and safe character set."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability import fuzz, fuzz_hostile

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


@pytest.fixture(scope="module")
def targets() -> dict[str, fuzz.Target]:
    return {t.name: t for t in fuzz_hostile.hostile_targets()}


@pytest.mark.parametrize(
    ("name", "count"), [("ea_depth", 60), ("ea_numbers", 25), ("version_text", 3000)]
)
def test_hostile_targets_never_crash(
    targets: dict[str, fuzz.Target], name: str, count: int
) -> None:
    stats = fuzz.run_target(targets[name], count, random.Random(14))
    assert stats.crashes == [] and stats.slow == []
    assert stats.inputs == count + len(targets[name].seeds) + len(targets[name].crafted)
    assert stats.rejected > 0  # the mutations do reach the refusals


def test_crafted_depth_attacks_are_all_refused(targets: dict[str, fuzz.Target]) -> None:
    target = targets["ea_depth"]
    for label, data in target.crafted:
        stats = fuzz.TargetStats(target.name)
        fuzz.feed_one(target, data, stats, label)
        assert stats.crashes == [] and stats.slow == [], label
        if label != "at the limit":
            assert stats.rejected == 1, label


@FUZZ
@given(text=st.text(max_size=80))
def test_any_unicode_version_is_accepted_safely_or_refused(text: str) -> None:
    target = fuzz.Target("version_text", [], fuzz_hostile.feed_version)
    stats = fuzz.TargetStats("version_text")
    fuzz.feed_one(target, text.encode("utf-8", "surrogatepass"), stats)
    assert stats.crashes == []


def test_every_target_is_in_the_full_budget_and_it_exceeds_100k(tmp_path) -> None:  # type: ignore[no-untyped-def]
    names = [t.name for t in fuzz.make_targets(tmp_path)] + ["record_db", "record_bundle"]
    assert set(names) <= set(fuzz.FULL_INPUTS)
    assert sum(fuzz.inputs_for(n, None) for n in names) >= 100_000
