"""The role / signing-key / package-policy attacks of issue 14 as `make reliability` runs them
(reliability/access_attacks.py): every one is refused with nothing changed."""

from __future__ import annotations

from reliability import access_attacks


def test_every_access_attack_is_refused() -> None:
    report = access_attacks.campaign()
    assert report.cases == len(access_attacks.ATTACKS) >= 10
    missed = [(r.name, r.crash) for r in report.results if not r.refused]
    assert not missed
    assert report.refused == report.cases
