"""Compressed downloads (issue 18 §1): the EA names a method ID + codec per ECU, the engine
sends the compressed stream with memorySize = the uncompressed size, the strict simulated
bootloader decompresses block by block, and the check routine covers the uncompressed bytes.
An ECU that does not know the method answers NRC 0x31 and the error says what to change.
Firmware-like content: bytes of libpython (real machine code), not random data."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from fota_studio.core.compression import CompressionError, Decompressor, compress, stream_lengths
from fota_studio.core.ea import CompressionSettings, EcuDefinition
from fota_studio.core.ea_validate import Severity, validate
from fota_studio.core.errors import UdsNegativeResponseError
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.core.flash_plan import make_plan
from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.flash_job import FlashResult
from tests.fakes.flash import assert_no_violations, fast_ecu, fast_sim, flash_image, memory_matches
from tests.fakes.machine_code import machine_code


def firmware_image(version: str, sizes: tuple[int, ...] = (0x6000, 0x2800)) -> FirmwareImage:
    """Segments of machine code from the application start (the first with the app header)."""
    segs = []
    addr = demo_catalog.APP_REGION_START
    for i, size in enumerate(sizes):
        body = machine_code(size, 0x40000 + i * 0x10000)
        if i == 0:
            body = demo_catalog.app_header(version) + body[demo_catalog.APP_HEADER_SIZE :]
        segs.append(Segment(addr, body))
        addr += size + 0x1000
    return FirmwareImage(tuple(segs))


def flash(ecu: EcuDefinition, channel: str, image: FirmwareImage, version: str) -> FlashResult:
    """One flash through the engine on the tester's own bus instance, expecting `version`."""
    return flash_image(ecu, channel, image, expected_version=version)


@pytest.mark.parametrize("codec", ["zlib", "lzma", "lz4"])
def test_codec_round_trip_streaming(codec: str) -> None:
    data = machine_code(0x5000)
    stream = compress(codec, data)
    assert len(stream) < len(data) * 0.8  # real code compresses
    dec = Decompressor(codec)
    out = b"".join(dec.feed(stream[i : i + 97]) for i in range(0, len(stream), 97))
    dec.finish()
    assert out == data
    cut = Decompressor(codec)
    cut.feed(stream[: len(stream) // 2])
    with pytest.raises(CompressionError):
        cut.finish()


@pytest.mark.parametrize(
    ("name", "codec", "method"), [("VCU", "zlib", 1), ("HCU", "lz4", 3), ("BCU", "lzma", 2)]
)
def test_compressed_flash_of_each_demo_ecu(
    name: str, codec: str, method: int, can_channel: str, tmp_path: Path
) -> None:
    ecu = fast_ecu(name)
    ecu.uds.compression = CompressionSettings(method_id=method, codec=codec)
    ea = demo_catalog.demo_architecture()
    ea.ecus = [ecu if e.name == name else e for e in ea.ecus]
    assert not [p for p in validate(ea) if p.severity is Severity.ERROR]
    image = firmware_image("5.0.0")
    with fast_sim(ecu, can_channel, tmp_path / "sim", fd=ecu.connection.fd) as sim:
        result = flash(ecu, can_channel, image, "5.0.0")
        assert result.ok and result.verified, result.error
        assert memory_matches(sim, image)
        assert_no_violations(sim)
    rec = result.record
    assert rec.compression == f"method 0x{method:X} {codec}"
    total = sum(len(s.data) for s in image.segments)
    assert rec.bytes_total == total and rec.bytes_sent == total
    assert 0 < rec.bytes_on_wire < 0.8 * total
    assert rec.bytes_on_wire == sum(s.wire_length for s in rec.segments)
    downloads = [x for x in rec.exchanges if x.request_hex.startswith("34")]
    # dataFormatIdentifier = method << 4; memorySize = the uncompressed segment length
    assert [x.request_hex[2:4] for x in downloads] == [f"{method << 4:02x}"] * 2
    sizes = [int(x.request_hex[14:22], 16) for x in downloads]
    assert sizes == [len(s.data) for s in image.segments]


def test_unknown_method_is_refused_with_a_clear_error(can_channel: str, tmp_path: Path) -> None:
    """The ECU knows method 1 only; the EA says 5: NRC 0x31 at request_download, the error
    names the compression setting, and the check routine is never reached."""
    machine = fast_ecu()
    machine.uds.compression = CompressionSettings(method_id=1, codec="zlib")
    tester = copy.deepcopy(machine)
    assert tester.uds.compression is not None
    tester.uds.compression.method_id = 5
    image = firmware_image("5.0.1")
    with fast_sim(machine, can_channel, tmp_path / "sim"):
        result = flash(tester, can_channel, image, "5.0.1")
    assert not result.ok
    assert isinstance(result.error, UdsNegativeResponseError)
    assert result.error.nrc == 0x31
    assert result.record.failed_step == "request_download"
    assert "compression method 5 (zlib)" in str(result.error)
    assert "uds.compression" in str(result.error)


def test_uncompressed_ecu_refuses_a_compressed_download(can_channel: str, tmp_path: Path) -> None:
    """A bootloader without compression answers 0x31 to any method (not silently corrupt)."""
    machine = fast_ecu()
    tester = copy.deepcopy(machine)
    tester.uds.compression = CompressionSettings(method_id=1, codec="lz4")
    with fast_sim(machine, can_channel, tmp_path / "sim"):
        result = flash(tester, can_channel, firmware_image("5.0.2"), "5.0.2")
    assert isinstance(result.error, UdsNegativeResponseError) and result.error.nrc == 0x31


def test_validator_checks_compression() -> None:
    ea = demo_catalog.demo_architecture()
    ea.ecus[0].uds.compression = CompressionSettings(method_id=16, codec="zip")
    ea.ecus[1].uds.compression = CompressionSettings(method_id=2, codec="zlib")
    ea.ecus[1].uds.data_format = 0x20
    errors = {p.path for p in validate(ea) if p.severity is Severity.ERROR}
    assert "ecus[0].uds.compression.method_id" in errors
    assert "ecus[0].uds.compression.codec" in errors
    assert "ecus[1].uds.data_format" in errors


def test_plan_shows_wire_bytes_and_a_shorter_estimate() -> None:
    """The dry-run plan counts blocks, frames and wire time of the compressed stream, and the
    ECU's programming time of the uncompressed bytes."""
    ecu = fast_ecu()
    ecu.uds.timing.programming_ms_per_kib = 10.0
    image = firmware_image("5.1.0")
    segs = [(s.address, len(s.data)) for s in image.segments]
    plain = make_plan(ecu, segs)
    ecu.uds.compression = CompressionSettings(method_id=1, codec="zlib")
    wire = stream_lengths("zlib", [s.data for s in image.segments])
    packed = make_plan(ecu, segs, wire_lengths=wire)
    assert packed.bytes_total == plain.bytes_total == sum(n for _, n in segs)
    assert packed.bytes_on_wire == sum(wire) < 0.8 * plain.bytes_on_wire
    assert packed.frames_total < 0.8 * plain.frames_total
    assert packed.wire_time_s < 0.8 * plain.wire_time_s
    assert packed.estimated_s < plain.estimated_s
    programming_s = plain.bytes_total / 1024 * 10.0 / 1000
    assert packed.estimated_s > programming_s  # the ECU still programs every byte
    assert "compressed with zlib (method 0x1)" in packed.to_text()
    assert "compressed" not in plain.to_text()
