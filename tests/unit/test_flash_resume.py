"""Resume (issue 18 §3). Across sessions: after a power loss at 70 % the next run reads the
ECU's sector checksums and writes only what is missing or wrong; the record says how much was
resumed. Inside the session: a bus outage shorter than S3 (the tester's frames are lost for
2 s mid-transfer) is ridden out by repeating the same block counter, without a restart."""

from __future__ import annotations

from pathlib import Path

from fota_studio.core.ea import CompressionSettings, EcuDefinition, SectorChecksum, StepKind
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.flash_job import FlashResult
from fota_studio.sim.faults import Fault
from tests.fakes.flash import fast_ecu, fast_sim, flash_image, memory_matches
from tests.fakes.machine_code import machine_code

SECTOR = 0x1000


def resumable_ecu(name: str = "VCU") -> EcuDefinition:
    """A fast demo ECU with the sector-checksum routine (CRC32 per 4 KiB sector)."""
    ecu = fast_ecu(name)
    ecu.uds.sector_checksum = SectorChecksum(routine_id=0xFF02, sector_bytes=SECTOR)
    return ecu


def image(version: str, size: int = 24 * SECTOR) -> FirmwareImage:
    """One segment of machine code with the app header."""
    body = bytearray(machine_code(size, 0x60000))
    body[: demo_catalog.APP_HEADER_SIZE] = demo_catalog.app_header(version)
    return FirmwareImage((Segment(demo_catalog.APP_REGION_START, bytes(body)),))


def flash(
    ecu: EcuDefinition,
    channel: str,
    img: FirmwareImage,
    version: str,
    stall: dict[str, float] | None = None,
) -> FlashResult:
    """One flash; `stall`: the tester's frames are lost for `stall_s` after `after_frames`."""
    fault = None
    if stall is not None:
        fault = {**stall, "mode": "stall", "after_frames": int(stall["after_frames"])}
    return flash_image(ecu, channel, img, adapter_fault=fault, expected_version=version)


def test_resume_after_power_loss_at_70_percent(can_channel: str, tmp_path: Path) -> None:
    ecu = resumable_ecu()
    img = image("7.0.0")
    total = len(img.segments[0].data)
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        sim.inject(Fault(step="transfer_data", kind="power_loss", arg=total * 7 // 10))
        first = flash(ecu, can_channel, img, "7.0.0")
        assert not first.ok and first.record.failed_step == "transfer_data"
        assert not sim.state().app_valid
        second = flash(ecu, can_channel, img, "7.0.0")
        assert second.ok and second.verified, second.error
        assert memory_matches(sim, img)
        assert not sim.violations, "\n".join(str(v) for v in sim.violations)
    rec = second.record
    # The sectors fully written before the power loss are kept: ~70 % resumed.
    assert rec.bytes_skipped >= total * 7 // 10 - 2 * SECTOR
    assert rec.bytes_on_wire <= total - rec.bytes_skipped
    assert rec.sectors_skipped >= 14


def test_resume_after_power_loss_with_compression(can_channel: str, tmp_path: Path) -> None:
    ecu = resumable_ecu("HCU")
    ecu.uds.compression = CompressionSettings(method_id=1, codec="zlib")
    img = image("7.1.0", size=12 * SECTOR)
    total = len(img.segments[0].data)
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        sim.inject(Fault(step="transfer_data", kind="power_loss", arg=total // 2))
        assert not flash(ecu, can_channel, img, "7.1.0").ok
        second = flash(ecu, can_channel, img, "7.1.0")
        assert second.ok and second.verified, second.error
        assert memory_matches(sim, img)
    assert second.record.bytes_skipped >= total // 2 - 2 * SECTOR


def test_bus_outage_shorter_than_s3_resumes_in_session(can_channel: str, tmp_path: Path) -> None:
    """2 s without a tester frame reaching the bus mid-transfer (S3 = 5 s): the same block is
    repeated until the link is back and the flash completes in one run."""
    ecu = fast_ecu()
    assert ecu.uds.s3_ms > 2000 + ecu.uds.p2_timeout_ms
    # No re-send for a lost answer: the old engine gave up at the first timeout.
    step = next(s for s in ecu.uds.sequence if s.kind is StepKind.TRANSFER_DATA)
    step.params["max_retries"] = 0
    img = image("7.2.0", size=16 * SECTOR)
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        result = flash(ecu, can_channel, img, "7.2.0", stall={"after_frames": 1500, "stall_s": 2.0})
        assert result.ok and result.verified, result.error
        assert memory_matches(sim, img)
        assert not sim.violations, "\n".join(str(v) for v in sim.violations)
    rec = result.record
    assert rec.link_outages == 1
    assert rec.block_retries >= 1
    assert [s.step for s in rec.steps].count("request_download") == 1  # no restart
