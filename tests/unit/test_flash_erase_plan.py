"""The flash job's pure pieces: the erase plan per policy, the fingerprint record, and the
address/length encoding through udsoncan (engine/flash_job.py)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from fota_studio.core.ea import (
    DEFAULT_STEP_PARAMS,
    MemoryRegion,
    ProtectedRange,
    SequenceStep,
    StepKind,
    UdsProfile,
)
from fota_studio.core.errors import ConfigurationError
from fota_studio.engine.flash_encoding import (
    EraseRange,
    address_length_record,
    fingerprint_record,
    plan_erases,
)
from fota_studio.engine.flash_job import SimpleSegment

SECTOR = 0x1000
APP = MemoryRegion(name="app", start=0x10000, length=0x10000, erase_sector_bytes=SECTOR)
CAL = MemoryRegion(name="cal", start=0x40000, length=0x4000, erase_sector_bytes=0x800)


def _seg(address: int, size: int) -> SimpleSegment:
    return SimpleSegment(address, bytes(size))


def _profile(policy: str, *protected: ProtectedRange) -> UdsProfile:
    return UdsProfile(
        memory_regions=[APP, CAL], erase_policy=policy, protected_ranges=list(protected)
    )


def _flat(plan: list[list[EraseRange]]) -> list[EraseRange]:
    return [e for erases in plan for e in erases]


def _assert_disjoint(erases: list[EraseRange]) -> None:
    spans = sorted((e.start, e.end) for e in erases)
    for (_, a_end), (b_start, _) in itertools.pairwise(spans):
        assert a_end <= b_start, f"a sector is erased twice: {spans}"


def _covered(erases: list[EraseRange], segs: list[SimpleSegment]) -> bool:
    """Every byte of every segment lies in an erase (checked per byte)."""
    return all(
        any(e.start <= a < e.end for e in erases)
        for s in segs
        for a in range(s.address, s.address + len(s.data))
    )


SEGS = [
    _seg(0x10000, 0x900),
    _seg(0x10A00, 0x300),  # shares sector 0x10000 with the first
    _seg(0x13100, 0x800),
    _seg(0x40100, 0x200),
]


def test_per_region_is_one_sector_aligned_erase_per_region() -> None:
    plan = plan_erases(_profile("per_region"), SEGS)
    erases = _flat(plan)
    assert [(e.start, e.end, e.region) for e in erases] == [
        (0x10000, 0x14000, "app"),
        (0x40000, 0x40800, "cal"),
    ]
    # Each region's erase runs before its first segment's download.
    assert [len(p) for p in plan] == [1, 0, 0, 1]
    assert [e.index for e in erases] == [0, 1]  # segment_index record: the region's index
    _assert_disjoint(erases)
    assert _covered(erases, SEGS)


def test_per_segment_never_erases_a_sector_twice() -> None:
    plan = plan_erases(_profile("per_segment"), SEGS)
    assert [[(e.start, e.end) for e in p] for p in plan] == [
        [(0x10000, 0x11000)],
        [],  # its sector was erased for the first segment: erasing it again wipes segment 1
        [(0x13000, 0x14000)],
        [(0x40000, 0x40800)],
    ]
    assert [e.index for e in _flat(plan)] == [0, 2, 3]
    _assert_disjoint(_flat(plan))


def test_whole_region_goes_around_protected_ranges() -> None:
    boot = ProtectedRange(name="boot", start=0x1E000, length=0x2000)
    plan = plan_erases(_profile("whole_region", boot), SEGS[:3])
    erases = _flat(plan)
    assert [(e.start, e.end) for e in erases] == [(0x10000, 0x1E000)]
    mid = ProtectedRange(name="keys", start=0x15000, length=0x1000)
    erases = _flat(plan_erases(_profile("whole_region", mid), SEGS[:3]))
    assert [(e.start, e.end) for e in erases] == [(0x10000, 0x15000), (0x16000, 0x20000)]


def test_per_region_span_is_split_around_a_protected_gap() -> None:
    keys = ProtectedRange(name="keys", start=0x11800, length=0x800)  # in the gap, sector 0x11000
    erases = _flat(plan_erases(_profile("per_region", keys), SEGS[:3]))
    assert [(e.start, e.end) for e in erases] == [(0x10000, 0x11000), (0x12000, 0x14000)]
    assert all(e.end <= keys.start or e.start >= keys.end for e in erases)


def test_protected_or_outside_is_refused_before_anything_is_sent() -> None:
    boot = ProtectedRange(name="bootloader", start=0x13800, length=0x800)
    with pytest.raises(ConfigurationError, match='protected range "bootloader"'):
        plan_erases(_profile("per_region", boot), SEGS)  # shares sector 0x13000 with segment 3
    with pytest.raises(ConfigurationError, match="overlaps the protected range"):
        plan_erases(_profile("per_segment", boot), [_seg(0x13700, 0x200)])
    with pytest.raises(ConfigurationError, match="outside the writable memory regions"):
        plan_erases(_profile("per_region"), [_seg(0x1F800, 0x1000)])
    with pytest.raises(ConfigurationError, match="erase_policy"):
        plan_erases(_profile("sometimes"), SEGS)


def test_record_none_asks_the_ecu_once() -> None:
    plan = plan_erases(_profile("per_segment"), SEGS, record="none")
    assert [len(p) for p in plan] == [1, 0, 0, 0]


def test_no_regions_erases_nothing() -> None:
    profile = UdsProfile(memory_regions=[], erase_policy="per_region")
    with pytest.raises(ConfigurationError, match="no writable memory region"):
        plan_erases(profile, SEGS[:2])


def _fingerprint(**params: object) -> SequenceStep:
    return SequenceStep(
        StepKind.FINGERPRINT, params={**DEFAULT_STEP_PARAMS[StepKind.FINGERPRINT], **params}
    )


def test_fingerprint_is_padded_or_truncated_to_length() -> None:
    day = dt.date(2026, 12, 6)
    nine = fingerprint_record(_fingerprint(length=9), "technician", day)
    assert nine == bytes([0x26, 0x12, 0x06]) + b"techni"
    full = fingerprint_record(_fingerprint(), "ann", day)
    assert len(full) == 19 and full == bytes([0x26, 0x12, 0x06]) + b"ann" + bytes(13)
    raw = fingerprint_record(_fingerprint(format="raw", data="A1 b2", length=4), "x", day)
    assert raw == bytes([0xA1, 0xB2, 0, 0])
    text = fingerprint_record(_fingerprint(format="ascii", data="WS-07", length=3), "x", day)
    assert text == b"WS-"
    with pytest.raises(ConfigurationError, match="not hex"):
        fingerprint_record(_fingerprint(format="raw", data="zz"), "x", day)
    with pytest.raises(ConfigurationError, match="fingerprint format"):
        fingerprint_record(_fingerprint(format="binary"), "x", day)


def test_address_length_record_from_udsoncan() -> None:
    assert address_length_record(0x44, 0x10000, 0x900).hex() == "440001000000000900"
    assert address_length_record(0x24, 0x10000, 0x900).hex() == "24000100000900"
    with pytest.raises(ConfigurationError, match="do not fit"):
        address_length_record(0x22, 0x10000, 0x10)
    with pytest.raises(ConfigurationError, match="invalid"):
        address_length_record(0x40, 0x10, 0x10)
