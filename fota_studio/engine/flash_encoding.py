"""What the flash job sends, computed without I/O: the erase plan, the fingerprint record and
the address/length encodings (through udsoncan's `MemoryLocation`).

`plan_erases` turns the EA's `erase_policy`, memory regions (sector size) and protected ranges
into the erase requests of one flash, before anything is sent: never a sector twice, never
outside the regions, never into a protected range. `fingerprint_record` builds the fingerprint
from the step's `format`/`data`/`length`. Pure functions; safe from any thread.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from udsoncan.common.MemoryLocation import MemoryLocation

from fota_studio.core.ea import (
    ERASE_POLICIES,
    ERASE_RECORD_FORMATS,
    MemoryRegion,
    SequenceStep,
    UdsProfile,
)
from fota_studio.core.errors import ConfigurationError


class SegmentLike(Protocol):
    """One contiguous block of an image (core/firmware.py Segment)."""

    @property
    def address(self) -> int:
        """Start address."""
        ...

    @property
    def data(self) -> bytes:
        """The bytes."""
        ...


#: Fingerprint formats whose record is the step's `data` itself: how it is read, what is
#: wrong when it cannot be read (`{exc}`: the reader's words) and what to do.
_DATA_FORMATS: dict[str, tuple[Callable[[str], bytes], str, str]] = {
    "raw": (
        bytes.fromhex,
        "is not hex bytes ({exc})",
        "write the fingerprint data as hex bytes like 'A1 B2 C3' in the EA",
    ),
    "ascii": (
        lambda data: data.encode("ascii"),
        "is not ASCII text",
        "use ASCII characters only, or format raw with hex bytes",
    ),
}


def fingerprint_record(step: SequenceStep, tester: str, today: _dt.date | None = None) -> bytes:
    """The fingerprint WriteDataByIdentifier record from the step's `format`/`data`/`length`.

    date_tester: 3 BCD bytes YY MM DD + the tester name (ASCII); ascii: `data` as text; raw:
    `data` as hex bytes. The record is padded with 0x00 or truncated to `length` bytes.
    """
    fmt = str(step.param("format"))
    data = str(step.param("data") or "")
    where = f"{step.kind.value} step (format {fmt})"
    if fmt in _DATA_FORMATS:
        decode, problem, hint = _DATA_FORMATS[fmt]
        try:
            body = decode(data)
        except ValueError as exc:  # UnicodeEncodeError is a ValueError
            raise ConfigurationError(
                f"{where}: data {data!r} {problem.format(exc=exc)}", hint=hint
            ) from exc
    elif fmt == "date_tester":
        day = today or _dt.date.today()
        bcd = bytes(int(f"{v:02d}", 16) for v in (day.year % 100, day.month, day.day))
        body = bcd + tester.encode("ascii", "replace")
    else:
        raise ConfigurationError(
            f'{where}: unknown fingerprint format "{fmt}"',
            hint="use date_tester, ascii or raw",
        )
    length = int(step.param("length"))
    if length < 1:
        raise ConfigurationError(
            f"{where}: length {length} must be 1 byte or more",
            hint="set the fingerprint length the ECU's specification gives",
        )
    return body[:length].ljust(length, b"\x00")


def memory_location(alfid: int, address: int, length: int) -> MemoryLocation:
    """udsoncan's MemoryLocation for the profile's addressAndLengthFormatIdentifier.

    udsoncan silently cuts an address that does not fit the format; we refuse it instead.
    """
    addr_len, size_len = alfid & 0x0F, (alfid >> 4) & 0x0F
    hint = "set address_and_length_format in the EA UDS profile (e.g. 0x44: 4 + 4 bytes)"
    if addr_len == 0 or size_len == 0:
        raise ConfigurationError(
            f"addressAndLengthFormatIdentifier 0x{alfid:02X} is invalid", hint=hint
        )
    if address >= 1 << (8 * addr_len) or length >= 1 << (8 * size_len):
        raise ConfigurationError(
            f"address 0x{address:X} / length {length} do not fit addressAndLengthFormat "
            f"0x{alfid:02X}",
            hint=hint,
        )
    try:
        return MemoryLocation(
            address, length, address_format=8 * addr_len, memorysize_format=8 * size_len
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"addressAndLengthFormatIdentifier 0x{alfid:02X} is not supported: {exc}", hint=hint
        ) from exc


def address_length_record(alfid: int, address: int, length: int) -> bytes:
    """ALFID byte + memoryAddress + memorySize (the erase routine's address_length record)."""
    loc = memory_location(alfid, address, length)
    return loc.alfid.get_byte() + loc.get_address_bytes() + loc.get_memorysize_bytes()


@dataclass(frozen=True)
class EraseRange:
    """One erase request of a flash: a sector-aligned range inside one memory region.

    `index` is the byte the `segment_index` record sends (the segment's index with the
    per_segment policy, the memory region's index otherwise).
    """

    start: int
    length: int
    region: str
    index: int

    @property
    def end(self) -> int:
        """One past the last erased address."""
        return self.start + self.length

    def describe(self) -> str:
        """'0x00010000..0x00013000 (region application)' for step details and errors."""
        where = f" (region {self.region})" if self.region else ""
        return f"0x{self.start:08X}..0x{self.end:08X}{where}"


def _span(start: int, end: int) -> str:
    return f"0x{start:08X}..0x{end:08X}"


def _sector_bytes(region: MemoryRegion) -> int:
    return region.erase_sector_bytes if region.erase_sector_bytes > 0 else 1


def _sectors(region: MemoryRegion, start: int, end: int) -> tuple[int, int]:
    """Indices [first, last+1) of the region's sectors covering [start, end)."""
    size = _sector_bytes(region)
    return (start - region.start) // size, -(-(end - region.start) // size)


def _subtract(lo: int, hi: int, holes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """[lo, hi) minus the `holes` intervals, as sorted disjoint intervals."""
    out: list[tuple[int, int]] = []
    cur = lo
    for h_lo, h_hi in sorted(holes):
        if h_hi <= cur or h_lo >= hi:
            continue
        if h_lo > cur:
            out.append((cur, h_lo))
        cur = max(cur, h_hi)
    if cur < hi:
        out.append((cur, hi))
    return out


def plan_erases(
    profile: UdsProfile, segments: Sequence[SegmentLike], record: str = "address_length"
) -> list[list[EraseRange]]:
    """Per image segment, the erases to run before its download (UdsProfile.erase_policy).

    per_region (default): one erase of the sector-aligned span of the image inside each memory
    region, before the region's first segment (split only around a protected range);
    per_segment: each segment's sectors that no earlier erase covered; whole_region: every
    sector of each touched region outside the protected ranges. No sector is in two erases;
    with the record `none` the ECU chooses what to erase, so it is asked once. Raises
    `ConfigurationError` before anything is sent when a segment lies outside the memory regions
    or needs a sector of a protected range.
    """
    policy = profile.erase_policy
    if policy not in ERASE_POLICIES:
        raise ConfigurationError(
            f'unknown erase_policy "{policy}" in the UDS profile',
            hint=f"use one of {', '.join(ERASE_POLICIES)}",
        )
    if record not in ERASE_RECORD_FORMATS:
        raise ConfigurationError(
            f'unknown erase record format "{record}"',
            hint=f"use one of {', '.join(ERASE_RECORD_FORMATS)}",
        )
    segs = list(segments)
    plan: list[list[EraseRange]] = [[] for _ in segs]
    for seg in segs:
        end = seg.address + len(seg.data)
        for prot in profile.protected_ranges:
            if seg.address < prot.end and prot.start < end:
                raise ConfigurationError(
                    f"image segment {_span(seg.address, end)} overlaps the protected range "
                    f'"{prot.name}" {_span(prot.start, prot.end)}',
                    hint="this image does not fit this ECU (wrong image or wrong EA?); "
                    "nothing was sent",
                )
    regions = profile.memory_regions
    if not regions:
        # As the one image-fits rule (core/image_fit.py): no region, nothing may be written.
        raise ConfigurationError(
            "the ECU has no writable memory region in its Electronic Architecture: nothing can "
            "be erased",
            hint="add the memory regions (start, length, sector size) from the bootloader "
            "specification",
        )
    owner = [_region_of(regions, seg) for seg in segs]
    for r_index, region in enumerate(regions):
        members = [i for i, o in enumerate(owner) if o == r_index]
        if members:
            _plan_region(profile, region, r_index, segs, members, plan)
    if record == "none" and segs:
        # The ECU decides what one erase covers (typically the whole application).
        first = [e for erases in plan for e in erases]
        start = min(e.start for e in first) if first else segs[0].address
        end = max(e.end for e in first) if first else start
        plan = [[] for _ in segs]
        plan[0] = [EraseRange(start, end - start, "the ECU's choice", 0)]
    return plan


def _region_of(regions: Sequence[MemoryRegion], seg: SegmentLike) -> int:
    end = seg.address + len(seg.data)
    for index, region in enumerate(regions):
        if region.start <= seg.address and end <= region.end:
            return index
    names = ", ".join(f"{r.name} {_span(r.start, r.end)}" for r in regions)
    raise ConfigurationError(
        f"image segment {_span(seg.address, end)} lies outside the writable memory regions "
        f"({names})",
        hint="check the image against the EA memory regions (wrong image for this ECU?); "
        "nothing was sent",
    )


def _plan_region(
    profile: UdsProfile,
    region: MemoryRegion,
    r_index: int,
    segs: Sequence[SegmentLike],
    members: list[int],
    plan: list[list[EraseRange]],
) -> None:
    size = _sector_bytes(region)
    n_sectors = -(-region.length // size)
    forbidden: list[tuple[int, int, str]] = []
    for prot in profile.protected_ranges:
        lo, hi = max(prot.start, region.start), min(prot.end, region.end)
        if lo < hi:
            forbidden.append((*_sectors(region, lo, hi), prot.name))
    holes = [(lo, hi) for lo, hi, _ in forbidden]
    needed: list[tuple[int, int]] = []
    for i in members:
        seg = segs[i]
        lo, hi = _sectors(region, seg.address, seg.address + len(seg.data))
        for f_lo, f_hi, name in forbidden:
            if lo < f_hi and f_lo < hi:
                raise ConfigurationError(
                    f"image segment {_span(seg.address, seg.address + len(seg.data))} shares an "
                    f'erase sector ({size} bytes) with the protected range "{name}"',
                    hint="the image or the EA's sectors/protected ranges are wrong; erasing it "
                    "would wipe the protected range — nothing was sent",
                )
        needed.append((lo, hi))

    def erase(lo: int, hi: int, index: int) -> EraseRange:
        start = region.start + lo * size
        return EraseRange(
            start, min(region.start + hi * size, region.end) - start, region.name, index
        )

    policy = profile.erase_policy
    if policy == "per_segment":
        done: list[tuple[int, int]] = []
        for i, (lo, hi) in zip(members, needed, strict=True):
            plan[i] = [erase(a, b, i) for a, b in _subtract(lo, hi, done + holes)]
            done.append((lo, hi))
        return
    if policy == "whole_region":
        pieces = _subtract(0, n_sectors, holes)
    else:  # per_region: the span of the image in the region, around protected ranges only
        span = _subtract(min(lo for lo, _ in needed), max(hi for _, hi in needed), holes)
        pieces = [(a, b) for a, b in span if any(lo < b and a < hi for lo, hi in needed)]
    plan[members[0]] = [erase(a, b, r_index) for a, b in pieces]


# -- delta: the sectors that differ ------------------------------------------------------------


@dataclass(frozen=True)
class DeltaSegment:
    """A part of an image segment to write in a delta (or resumed) flash."""

    address: int
    data: bytes


def sector_pieces(region: MemoryRegion, sector_bytes: int, start: int, end: int) -> list[int]:
    """Start addresses of the pieces of [start, end) on the region's `sector_bytes` grid.

    The first and the last piece are clipped to the range; the ECU's sector-checksum routine
    answers one checksum per piece, in this order.
    """
    size = max(1, sector_bytes)
    out: list[int] = []
    pos = start
    while pos < end:
        out.append(pos)
        pos = min(end, region.start + ((pos - region.start) // size + 1) * size)
    return out


def region_for(profile: UdsProfile, address: int, length: int) -> MemoryRegion:
    """The memory region holding [address, address + length) (ConfigurationError if none)."""
    for region in profile.memory_regions:
        if region.start <= address and address + length <= region.end:
            return region
    raise ConfigurationError(
        f"{_span(address, address + length)} lies outside the writable memory regions",
        hint="check the image against the EA memory regions; nothing was sent",
    )


def delta_segments(
    profile: UdsProfile,
    segments: Sequence[SegmentLike],
    changed: Sequence[tuple[int, int]],
) -> list[DeltaSegment]:
    """What to erase and write when only the `changed` address ranges differ.

    Each changed range is widened to the erase sectors of its region (an erase cannot be
    smaller), and every image byte inside those sectors is written again — also bytes of other
    segments sharing a sector — so nothing erased is left unwritten. Contiguous parts are
    merged; the result is in address order.
    """
    widened: list[tuple[int, int]] = []
    for lo, hi in changed:
        region = region_for(profile, lo, hi - lo)
        size = _sector_bytes(region)
        a = region.start + (lo - region.start) // size * size
        b = min(region.end, region.start + -(-(hi - region.start) // size) * size)
        widened.append((a, b))
    merged: list[list[int]] = []
    for a, b in sorted(widened):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out: list[DeltaSegment] = []
    for seg in sorted(segments, key=lambda s: s.address):
        end = seg.address + len(seg.data)
        for a, b in merged:
            lo, hi = max(a, seg.address), min(b, end)
            if lo < hi:
                data = bytes(seg.data[lo - seg.address : hi - seg.address])
                if out and out[-1].address + len(out[-1].data) == lo:
                    out[-1] = DeltaSegment(out[-1].address, out[-1].data + data)
                else:
                    out.append(DeltaSegment(lo, data))
    return out
