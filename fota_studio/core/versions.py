"""The one ordering of firmware version strings: repository lists, downgrade checks, the demo.

Semantic versions (SemVer 2.0, with an optional leading "v" and optional minor/patch: "v2",
"1.2", "2.0.0-rc.10") sort by SemVer precedence (§11: numeric identifiers numerically, a
pre-release before its release); everything else sorts after them in natural order (digit runs
numerically, letters case-insensitively), so "build-9" comes before "build-10". Every place that
orders versions or says "older"/"newer" calls this module; before it, two orderings disagreed
(`1.0.0-rc.9` vs `rc.10`, `v2.0` vs `10.0`). Pure functions; safe from any thread.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import semver

_DIGITS = re.compile(r"(\d+)")


@functools.lru_cache(maxsize=4096)
def parse_version(version: str) -> semver.Version | None:
    """The semantic version of `version` ("1.2.0", "v1.2", "2.0.0-rc.1"), or None."""
    text = version.strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    try:
        return semver.Version.parse(text, optional_minor_and_patch=True)
    except (ValueError, TypeError):
        return None


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Digit runs numerically ("v10" after "v9"), the rest case-insensitively."""
    parts = _DIGITS.split(text)
    return tuple((0, int(p)) if p.isdigit() else (1, p.casefold()) for p in parts if p)


def version_key(version: str) -> tuple[Any, ...]:
    """Ascending sort key: semantic versions first (SemVer precedence), then the others in
    natural order; the raw text breaks ties ("v1.2" and "1.2.0" are distinct but adjacent)."""
    parsed = parse_version(version)
    if parsed is not None:
        return (0, parsed, version)
    return (1, _natural_key(version), version)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as `a` is older than, equal to or newer than `b` (0 also for "v1.2" vs
    "1.2.0", which name the same semantic version)."""
    pa, pb = parse_version(a), parse_version(b)
    if pa is not None and pb is not None:
        return pa.compare(pb)
    ka, kb = version_key(a)[:2], version_key(b)[:2]
    return (ka > kb) - (ka < kb)


def is_prerelease(version: str) -> bool:
    """True for a semantic pre-release ("2.2.0-rc.1", "3.0.0-beta"): not for production ECUs
    unless chosen on purpose."""
    parsed = parse_version(version)
    return parsed is not None and bool(parsed.prerelease)


def sort_versions(versions: list[str]) -> list[str]:
    """`versions` oldest first."""
    return sorted(versions, key=version_key)
