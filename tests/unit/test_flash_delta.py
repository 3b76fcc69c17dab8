"""Delta flashing (issue 18 §2): with the EA's sector-checksum routine the engine reads the
ECU's checksum per sector after the unlock and erases + writes only the sectors that differ;
the final check routine still covers the whole image. Without the routine (or when the ECU
refuses it) the whole image is written, as before. Strict simulated bootloader: no sector
erased twice, no violation."""

from __future__ import annotations

import copy
from pathlib import Path

from fota_studio.core.ea import CompressionSettings, EcuDefinition, SectorChecksum
from fota_studio.core.ea_validate import Severity, validate
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.core.flash_record import FlashRecord, SegmentRecord
from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.estimates import measured_from_record
from fota_studio.engine.flash_encoding import DeltaSegment, delta_segments
from fota_studio.engine.flash_job import FlashResult
from tests.fakes.flash import (
    assert_no_violations,
    erase_requests,
    fast_ecu,
    fast_sim,
    flash_image,
    memory_matches,
)
from tests.fakes.machine_code import machine_code

SECTOR = 0x1000


def delta_ecu(name: str = "VCU") -> EcuDefinition:
    """A fast demo ECU whose bootloader offers the sector-checksum routine (CRC32 per 4 KiB)."""
    ecu = fast_ecu(name)
    ecu.uds.sector_checksum = SectorChecksum(
        routine_id=0xFF02, record="address_length", sector_bytes=SECTOR, checksum="crc32"
    )
    return ecu


def image(
    version: str, size: int = 20 * SECTOR, patch: dict[int, bytes] | None = None
) -> FirmwareImage:
    """Two segments of machine code (the first with the app header); `patch`: offset -> bytes
    replaced in the first segment (a changed sector)."""
    start = demo_catalog.APP_REGION_START
    body = bytearray(machine_code(size, 0x80000))
    body[: demo_catalog.APP_HEADER_SIZE] = demo_catalog.app_header(version)
    for offset, data in (patch or {}).items():
        body[offset : offset + len(data)] = data
    tail = machine_code(0x1800, 0x120000)
    return FirmwareImage((Segment(start, bytes(body)), Segment(start + size + 0x2000, tail)))


def flash(ecu: EcuDefinition, channel: str, image: FirmwareImage, version: str) -> FlashResult:
    """One flash through the engine on the tester's own bus instance, expecting `version`."""
    return flash_image(ecu, channel, image, expected_version=version)


def test_delta_reflash_writes_only_the_changed_sectors(can_channel: str, tmp_path: Path) -> None:
    ecu = delta_ecu()
    old = image("6.0.0")
    # The new version: the header sector (version string) and one sector in the middle differ.
    new = image("6.1.0", patch={7 * SECTOR + 0x10: b"\x00\x11\x22\x33" * 8})
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        first = flash(ecu, can_channel, old, "6.0.0")
        assert first.ok and first.verified, first.error
        total = first.record.bytes_total
        assert first.record.sectors_compared == 20 + 2
        assert first.record.bytes_on_wire >= total - 2 * SECTOR  # nearly all of it was new
        second = flash(ecu, can_channel, new, "6.1.0")
        assert second.ok and second.verified, second.error
        assert memory_matches(sim, new)
        assert_no_violations(sim)
    rec = second.record
    assert rec.sectors_compared == 22 and rec.sectors_skipped == 20
    assert rec.bytes_on_wire == 2 * SECTOR
    assert rec.bytes_skipped == rec.bytes_total - 2 * SECTOR
    start = demo_catalog.APP_REGION_START
    assert erase_requests(second) == [(start, SECTOR), (start + 7 * SECTOR, SECTOR)]
    assert "20 of 22 sectors already correct" in next(
        s.detail for s in rec.steps if s.step == "sector_checksums"
    )
    # The check routine still covered the whole image (its CRC32 over every segment).
    check = next(x for x in rec.exchanges if x.request_hex.startswith("3101ff01"))
    assert check.request_hex[8:16] == f"{new.crc32() & 0xFFFFFFFF:08x}"


def test_unchanged_image_writes_nothing_and_still_checks(can_channel: str, tmp_path: Path) -> None:
    ecu = delta_ecu()
    img = image("6.2.0", size=6 * SECTOR)
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        assert flash(ecu, can_channel, img, "6.2.0").ok
        again = flash(ecu, can_channel, img, "6.2.0")
        assert again.ok and again.verified, again.error
        assert_no_violations(sim)
    assert again.record.bytes_on_wire == 0 and not erase_requests(again)
    assert again.record.bytes_skipped == again.record.bytes_total
    assert any(x.request_hex.startswith("3101ff01") for x in again.record.exchanges)


def test_delta_with_compression(can_channel: str, tmp_path: Path) -> None:
    ecu = delta_ecu("HCU")
    ecu.uds.compression = CompressionSettings(method_id=2, codec="lz4")
    old = image("6.3.0", size=8 * SECTOR)
    new = image("6.3.1", size=8 * SECTOR, patch={3 * SECTOR: b"\xa5" * 64})
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        assert flash(ecu, can_channel, old, "6.3.0").ok
        second = flash(ecu, can_channel, new, "6.3.1")
        assert second.ok and second.verified, second.error
        assert memory_matches(sim, new)
        assert_no_violations(sim)
    assert 0 < second.record.bytes_on_wire < 2 * SECTOR


def test_ecu_without_the_routine_gets_the_whole_image(can_channel: str, tmp_path: Path) -> None:
    """The EA names the routine, the ECU answers NRC 0x31: logged, whole image written."""
    tester = delta_ecu()
    machine = copy.deepcopy(tester)
    machine.uds.sector_checksum = None
    img = image("6.4.0", size=4 * SECTOR)
    with fast_sim(machine, can_channel, tmp_path / "sim") as sim:
        result = flash(tester, can_channel, img, "6.4.0")
        assert result.ok and result.verified, result.error
        assert memory_matches(sim, img)
    assert result.record.bytes_on_wire == result.record.bytes_total
    assert result.record.sectors_compared == 0


def test_delta_segments_rewrite_every_byte_of_an_erased_sector() -> None:
    """A changed range is widened to whole erase sectors, and image bytes of other segments
    sharing such a sector are written again (nothing erased stays empty)."""
    ecu = fast_ecu()
    base = demo_catalog.APP_REGION_START
    segs = [Segment(base, b"\x01" * 0x1800), Segment(base + 0x1900, b"\x02" * 0x900)]
    out = delta_segments(ecu.uds, segs, [(base + 0x1000, base + 0x1010)])
    assert out == [
        DeltaSegment(base + 0x1000, b"\x01" * 0x800),
        DeltaSegment(base + 0x1900, b"\x02" * 0x700),
    ]


def test_validator_checks_the_sector_checksum() -> None:
    ea = demo_catalog.demo_architecture()
    ea.ecus[0].uds.sector_checksum = SectorChecksum(sector_bytes=0, checksum="none", record="x")
    errors = {p.path for p in validate(ea) if p.severity is Severity.ERROR}
    assert {
        "ecus[0].uds.sector_checksum.sector_bytes",
        "ecus[0].uds.sector_checksum.checksum",
        "ecus[0].uds.sector_checksum.record",
    } <= errors


def test_a_delta_flash_measures_its_rate_per_byte_written() -> None:
    """The next estimate learns from a delta flash per byte it wrote, not per image byte (the
    delta's short transfer would otherwise make every later full flash look 10x faster)."""
    rec = FlashRecord(ecu="VCU", bytes_total=0x40000, bytes_skipped=0x3D000, result="success")
    rec.segments.append(SegmentRecord(address=demo_catalog.APP_REGION_START, length=0x3000))
    assert measured_from_record(fast_ecu(), rec).bytes_total == 0x3000
