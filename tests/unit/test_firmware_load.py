"""Loaders and exporters of fota_studio.core.firmware on well-formed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core import firmware as fw
from fota_studio.core.errors import ImageError
from fota_studio.core.firmware import FirmwareImage, Segment
from tests.fakes.firmware_text import EOF_HEX, hexrec, lines, srec


def sample_image() -> FirmwareImage:
    return FirmwareImage.from_segments(
        [
            (0x0800_0000, bytes(range(256)) * 300),
            (0x0801_2C00 + 0x40, b"\x11" * 1000),
            (0x2000_0000, b"\xaa\x55" * 7 + b"\x01"),
        ],
        start_address=0x0800_0101,
    )


def test_segment_and_image_properties() -> None:
    img = FirmwareImage.from_segments([(0x100, b"abc"), (0x10, b"xy"), (0x103, b"d")])
    assert img.segments == (Segment(0x10, b"xy"), Segment(0x100, b"abcd"))
    assert img.total_size == 6
    assert (img.min_address, img.max_address, img.span) == (0x10, 0x104, 0xF4)
    assert img.gaps() == [(0x12, 0x100)]
    assert img.data_bytes() == b"xyabcd"
    assert img.segments[1].length == 4 and img.segments[1].end == 0x104
    import hashlib
    import zlib

    assert img.sha256() == hashlib.sha256(b"xyabcd").hexdigest()
    assert img.crc32() == zlib.crc32(b"xyabcd")
    assert "length=4" in repr(img)


def test_model_rejects_overlap_and_unsorted() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        FirmwareImage.from_segments([(0, b"abcd"), (2, b"x")])
    with pytest.raises(ValueError):
        FirmwareImage((Segment(10, b"a"), Segment(0, b"b")))
    with pytest.raises(ValueError):
        FirmwareImage((Segment(0, b"a"), Segment(1, b"b")))  # touching: must be merged
    with pytest.raises(ValueError):
        Segment(0xFFFF_FFFF, b"ab")
    with pytest.raises(ValueError):
        Segment(0, b"")


def test_hex_multi_segment_with_gaps_and_start() -> None:
    data = lines(
        hexrec(4, 0, b"\x08\x00"),
        hexrec(0, 0x0000, b"\x01\x02\x03\x04"),
        hexrec(0, 0x0004, b"\x05\x06"),
        hexrec(0, 0x1000, b"\xaa"),
        hexrec(4, 0, b"\x20\x00"),
        hexrec(0, 0xFFFE, b"\xbb\xcc"),
        hexrec(5, 0, b"\x08\x00\x01\x23"),
        EOF_HEX,
    )
    img = fw.load_hex(data, source="a.hex")
    assert img.segments == (
        Segment(0x0800_0000, b"\x01\x02\x03\x04\x05\x06"),
        Segment(0x0800_1000, b"\xaa"),
        Segment(0x2000_FFFE, b"\xbb\xcc"),
    )
    assert img.start_address == 0x0800_0123
    assert img.gaps() == [(0x0800_0006, 0x0800_1000), (0x0800_1001, 0x2000_FFFE)]


def test_hex_type_02_segment_addressing_and_type_03_start() -> None:
    data = lines(
        hexrec(2, 0, b"\x12\x34"),
        hexrec(0, 0x0010, b"\x99\x98"),
        hexrec(3, 0, b"\x10\x00\x00\x20"),
        EOF_HEX,
    )
    img = fw.load_hex(data)
    assert img.segments == (Segment(0x12340 + 0x10, b"\x99\x98"),)
    assert img.start_address == (0x1000 << 4) + 0x20


def test_hex_crlf_trailing_whitespace_lowercase_blank_lines() -> None:
    base = [hexrec(0, 0x10, b"\xab\xcd\xef"), hexrec(0, 0x13, b"\x01"), EOF_HEX]
    expected = FirmwareImage((Segment(0x10, b"\xab\xcd\xef\x01"),))
    assert fw.load_hex(lines(*base, eol="\r\n")) == expected
    assert fw.load_hex(lines(*(s.lower() for s in base))) == expected
    assert fw.load_hex(lines(*(s + " \t" for s in base))) == expected
    assert fw.load_hex(("\n".join(base) + "\n\n\n").encode()) == expected
    assert fw.load_hex(("\n\n".join(base)).encode()) == expected  # blank lines, no final EOL


def test_hex_records_out_of_order_are_sorted_and_merged() -> None:
    data = lines(hexrec(0, 0x20, b"\x03\x04"), hexrec(0, 0x1E, b"\x01\x02"), EOF_HEX)
    assert fw.load_hex(data).segments == (Segment(0x1E, b"\x01\x02\x03\x04"),)


def test_srec_s1_s2_s3_and_start_addresses() -> None:
    s1 = lines(srec(0, 0, b"hdr"), srec(1, 0x1000, b"\x01\x02"), srec(5, 1), srec(9, 0x1000))
    img = fw.load_srec(s1)
    assert img.segments == (Segment(0x1000, b"\x01\x02"),)
    assert img.start_address == 0x1000
    s2 = lines(srec(2, 0x12_3456, b"\xff"), srec(2, 0x12_3457, b"\xee"), srec(8, 0))
    img = fw.load_srec(s2)
    assert img.segments == (Segment(0x12_3456, b"\xff\xee"),)
    assert img.start_address is None  # 0 in the termination record means "not given"
    s3 = lines(
        srec(3, 0x8000_0000, b"\x01"),
        srec(3, 0x9000_0000, b"\x02"),
        srec(1, 0x10, b"\x03"),
        srec(6, 3),
        srec(7, 0x8000_0000),
        eol="\r\n",
    )
    img = fw.load_srec(s3)
    assert [s.address for s in img.segments] == [0x10, 0x8000_0000, 0x9000_0000]
    assert img.start_address == 0x8000_0000


@pytest.mark.parametrize("record_bytes", [1, 16, 32, 255])
def test_hex_round_trip(record_bytes: int) -> None:
    img = sample_image()
    text = fw.to_hex(img, record_bytes=record_bytes)
    assert fw.load_hex(text) == img
    assert fw._hex_precise(text, "x") == img  # the precise pass agrees with the bulk one


@pytest.mark.parametrize("record_bytes", [1, 16, 32, 250])
def test_srec_round_trip(record_bytes: int) -> None:
    img = sample_image()
    text = fw.to_srec(img, record_bytes=record_bytes)
    assert text.startswith(b"S0") and b"\nS7" in text
    assert fw.load_srec(text) == img
    assert fw._srec_precise(text, "x") == img


def test_srec_uses_narrow_records_when_addresses_fit() -> None:
    small = FirmwareImage.from_segments([(0x100, b"abc")], start_address=0x100)
    text = fw.to_srec(small)
    assert b"\nS1" in text and b"\nS9" in text and b"S3" not in text
    assert fw.load_srec(text) == small
    mid = FirmwareImage.from_segments([(0x10_0000, b"abc")])
    text = fw.to_srec(mid)
    assert b"\nS2" in text and b"\nS8" in text
    assert fw.load_srec(text) == mid


def test_hex_record_never_crosses_64k_boundary() -> None:
    img = FirmwareImage.from_segments([(0xFFF8, bytes(range(32)))])
    text = fw.to_hex(img, record_bytes=32)
    assert hexrec(4, 0, b"\x00\x01").encode() in text
    assert fw.load_hex(text) == img


def test_binary_round_trip_and_fill() -> None:
    img = FirmwareImage.from_segments([(0x100, b"\x01\x02"), (0x104, b"\x03")])
    base, blob = fw.to_binary(img, fill=0x00)
    assert (base, blob) == (0x100, b"\x01\x02\x00\x00\x03")
    back = fw.load_binary(blob, base)
    assert back.segments == (Segment(0x100, blob),)
    assert fw.to_binary(img)[1] == b"\x01\x02\xff\xff\x03"


def test_detect_format_by_content_then_extension() -> None:
    assert fw.detect_format(lines(EOF_HEX), "x.bin") == "hex"
    assert fw.detect_format(b"\r\n" + lines(srec(9, 0)), "x.hex") == "srec"
    assert fw.detect_format(b"\x00\x01\x02", "a.s19") == "srec"
    assert fw.detect_format(b"\x00\x01\x02", "a.HEX") == "hex"
    assert fw.detect_format(b"\x00\x01\x02", "a.img") == "bin"
    assert fw.detect_format(b"\x00\x01\x02") == "bin"


def test_load_image_and_file(tmp_path: Path) -> None:
    img = sample_image()
    (tmp_path / "app.hex").write_bytes(fw.to_hex(img))
    (tmp_path / "app.s19").write_bytes(fw.to_srec(img))
    (tmp_path / "app.bin").write_bytes(b"\x01\x02\x03")
    assert fw.load_image_file(tmp_path / "app.hex") == (img, "hex")
    assert fw.load_image_file(str(tmp_path / "app.s19")) == (img, "srec")
    loaded, fmt = fw.load_image_file(tmp_path / "app.bin", base_address=0x4000)
    assert fmt == "bin" and loaded.segments == (Segment(0x4000, b"\x01\x02\x03"),)
    assert fw.load_image(fw.to_hex(img), fmt="hex", base_address=5)[0] == img
    with pytest.raises(ImageError, match=r"^nothing\.bin: cannot read the file"):
        fw.load_image_file(tmp_path / "nothing.bin", base_address=0)
    with pytest.raises(ImageError, match="unknown image format 'elf'"):
        fw.load_image(b"x", fmt="elf", source="a.elf")


def test_bulk_path_handles_many_chunks() -> None:
    # > 1 MiB of text so the loader works over several chunks, with 04 records in between.
    img = FirmwareImage.from_segments(
        [(0x0000_F000, bytes(range(256)) * 4000), (0x0100_0000, b"\x5a" * 300_001)],
        start_address=0x1234,
    )
    text = fw.to_hex(img, record_bytes=16)
    assert len(text) > 3 * (1 << 20)
    assert fw.load_hex(text) == img
    assert fw.load_hex(text.replace(b"\n", b"\r\n")) == img
    assert fw.load_srec(fw.to_srec(img, record_bytes=16)) == img


def test_clean_files_never_need_the_precise_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """CRLF, lower case, many chunks, 02/03/04 records: all decided by the bulk check."""

    def no_precise(data: bytes, source: str) -> FirmwareImage:
        raise AssertionError("precise pass ran")

    img = FirmwareImage.from_segments(
        [(0x0000_F000, bytes(range(256)) * 5000), (0x0100_0000, b"\x5a" * 1000)],
        start_address=0x1234,
    )
    monkeypatch.setattr(fw, "_hex_precise", no_precise)
    monkeypatch.setattr(fw, "_srec_precise", no_precise)
    text = fw.to_hex(img, record_bytes=16)
    assert fw.load_hex(text.replace(b"\n", b"\r\n").lower()) == img
    assert fw.load_srec(fw.to_srec(img).replace(b"\n", b"\r\n")) == img
    seg02 = lines(hexrec(2, 0, b"\x10\x00"), hexrec(0, 4, b"\x01"), hexrec(3, 0, bytes(4)), EOF_HEX)
    assert fw.load_hex(seg02).segments == (Segment(0x10004, b"\x01"),)
