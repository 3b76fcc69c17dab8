"""Every malformed firmware file is rejected with `file:line: reason`."""

from __future__ import annotations

import re

import pytest

from fota_studio.core import firmware as fw
from fota_studio.core.errors import ImageError
from fota_studio.core.firmware import FirmwareImage
from tests.fakes.firmware_text import EOF_HEX, hexrec, lines, srec

D1 = hexrec(0, 0x0000, b"\x01\x02\x03\x04")
D2 = hexrec(0, 0x0010, b"\x05\x06")


def hex_error(data: bytes) -> str:
    with pytest.raises(ImageError) as info:
        fw.load_hex(data, source="app.hex")
    return str(info.value)


def srec_error(data: bytes) -> str:
    with pytest.raises(ImageError) as info:
        fw.load_srec(data, source="app.s19")
    return str(info.value)


def with_checksum(line: str, checksum: int) -> str:
    return line[:-2] + f"{checksum:02X}"


# ------------------------------------------------------------------------------ Intel HEX


def test_hex_bad_checksum() -> None:
    good = int(D2[-2:], 16)
    msg = hex_error(lines(D1, with_checksum(D2, good ^ 1), EOF_HEX))
    assert msg == (
        f"app.hex:2: checksum mismatch (record says 0x{good ^ 1:02X}, computed 0x{good:02X})"
    )


def test_hex_unknown_record_type() -> None:
    msg = hex_error(lines(D1, hexrec(6, 0, b"\x00"), EOF_HEX))
    assert msg.startswith("app.hex:2: unknown record type 0x06")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (D1[:-1], "odd number of hex digits"),
        (D1[:5] + "G" + D1[6:], "non-hex character 'G' at column 6"),
        (D1[:5] + " " + D1[6:], "non-hex character ' ' at column 6"),
        (D1[:-4], "line is truncated: byte count 0x04 needs 9 bytes, the line holds 7"),
        (":0102", "line is truncated: a record needs at least 5 bytes"),
        (D1[:-2] + "0000", "byte count 0x04 does not match the line length"),
        ("01000000FF", "line does not start with ':'"),
        (srec(1, 0, b"\x00"), "this looks like an S-record file"),
    ],
)
def test_hex_malformed_lines(line: str, reason: str) -> None:
    msg = hex_error(lines(D1, D2, line, EOF_HEX))
    assert msg.startswith("app.hex:3: ")
    assert reason in msg


def test_hex_wrong_sizes_of_special_records() -> None:
    assert hex_error(lines(D1, hexrec(4, 0, b"\x01"), EOF_HEX)).startswith(
        "app.hex:2: record type 04 must hold 2 bytes"
    )
    assert hex_error(lines(D1, hexrec(5, 0, b"\x01\x02"), EOF_HEX)).startswith(
        "app.hex:2: record type 05 must hold 4 bytes"
    )
    assert hex_error(lines(D1, hexrec(1, 0, b"\x01"))).startswith("app.hex:2: EOF record")


def test_hex_overlap_names_both_lines() -> None:
    data = lines(D1, D2, hexrec(0, 0x0002, b"\xaa\xbb\xcc"), EOF_HEX)
    msg = hex_error(data)
    assert msg == (
        "app.hex:3: overlapping data: this line writes 0x00000002..0x00000004, "
        "line 1 already wrote 0x00000000..0x00000003"
    )


def test_hex_overlap_via_extended_address() -> None:
    data = lines(
        hexrec(4, 0, b"\x00\x01"),
        hexrec(0, 0x0000, b"\x01\x02"),
        hexrec(2, 0, b"\x10\x00"),  # segment 0x1000 -> base 0x10000: same bytes again
        hexrec(0, 0x0001, b"\x03"),
        EOF_HEX,
    )
    assert hex_error(data).startswith("app.hex:4: overlapping data: this line writes 0x00010001")


def test_hex_address_overflow_type_04() -> None:
    data = lines(hexrec(4, 0, b"\xff\xff"), hexrec(0, 0xFFF8, bytes(16)), EOF_HEX)
    assert hex_error(data).startswith(
        "app.hex:2: address overflow: 16 bytes at 0xFFFFFFF8 run past the 32-bit address space"
    )
    # the last byte of the address space is fine
    ok = fw.load_hex(lines(hexrec(4, 0, b"\xff\xff"), hexrec(0, 0xFFFF, b"\x01"), EOF_HEX))
    assert ok.max_address == 1 << 32


def test_hex_missing_eof_and_data_after_eof() -> None:
    assert hex_error(lines(D1, D2)) == (
        "app.hex:2: the file ends without an EOF record (:00000001FF); it may be truncated"
    )
    assert hex_error(lines(D1, EOF_HEX, "", D2)).startswith(
        "app.hex:4: data after the EOF record of line 2"
    )


def test_hex_conflicting_start_addresses() -> None:
    data = lines(D1, hexrec(5, 0, b"\x00\x00\x00\x01"), hexrec(5, 0, b"\x00\x00\x00\x02"), EOF_HEX)
    assert hex_error(data).startswith(
        "app.hex:3: start address 0x00000002 conflicts with 0x00000001 from line 2"
    )


def test_empty_whitespace_and_no_data() -> None:
    assert hex_error(b"") == "app.hex: file is empty (0 bytes)"
    assert hex_error(b" \r\n\n").startswith("app.hex: file holds no Intel HEX records")
    assert hex_error(lines(EOF_HEX)).startswith("app.hex: file holds no data records")
    assert srec_error(b"") == "app.s19: file is empty (0 bytes)"


def test_binary_junk_in_text_file() -> None:
    data = lines(D1, D2) + b"\x7fELF\x00\x01" + lines(EOF_HEX)
    assert hex_error(data).startswith("app.hex:3: binary data (byte 0x00 at column 5)")
    assert hex_error(lines(D1) + "é".encode() + lines(EOF_HEX)).startswith(
        "app.hex:2: binary data (byte 0xC3 at column 1)"
    )
    assert srec_error(b"\xff\xfe" + lines(srec(9, 0))).startswith("app.s19:1: binary data")


def test_error_deep_in_a_big_file_has_the_right_line() -> None:
    img = FirmwareImage.from_segments([(0, bytes(range(256)) * 8192)])  # 2 MiB -> many chunks
    text = fw.to_hex(img, record_bytes=16).split(b"\n")
    bad = 100_000
    line = text[bad - 1].decode()
    text[bad - 1] = with_checksum(line, int(line[-2:], 16) ^ 0xFF).encode()
    assert hex_error(b"\n".join(text)).startswith(f"app.hex:{bad}: checksum mismatch")
    srec_text = fw.to_srec(img, record_bytes=16).split(b"\n")
    srec_text[bad - 1] = srec_text[bad - 1][:-1]
    assert srec_error(b"\n".join(srec_text)).startswith(f"app.s19:{bad}: odd number of hex")


# ------------------------------------------------------------------------------ S-record

S1A = srec(1, 0x0100, b"\x01\x02\x03\x04")
S1B = srec(1, 0x0110, b"\x05")


def test_srec_bad_checksum() -> None:
    good = int(S1B[-2:], 16)
    assert srec_error(lines(S1A, with_checksum(S1B, good ^ 0x10), srec(9, 0))) == (
        f"app.s19:2: checksum mismatch (record says 0x{good ^ 0x10:02X}, computed 0x{good:02X})"
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("S4030000FC", "unknown record type S4"),
        ("SX030000FC", "unknown record type SX"),
        ("S", "unknown record type 'S' alone"),
        (S1B[:-1], "odd number of hex digits"),
        (S1B[:6] + "z" + S1B[7:], "non-hex character 'z' at column 7"),
        (S1B[:-4], "line is truncated: byte count 0x04 needs 4 bytes after it, the line holds 2"),
        (S1B + "00", "byte count 0x04 does not match the line length"),
        ("S10200FD", "line is truncated: S1 needs a 2-byte address"),
        (hexrec(0, 0, b"\x01"), "this looks like an Intel HEX file"),
        (srec(9, 0, b"\x01"), "S9 must hold only its 2-byte field"),
    ],
)
def test_srec_malformed_lines(line: str, reason: str) -> None:
    msg = srec_error(lines(srec(0, 0, b"h"), S1A, line, srec(9, 0)))
    assert msg.startswith("app.s19:3: "), msg
    assert reason in msg


def test_srec_count_record_checked() -> None:
    assert srec_error(lines(S1A, S1B, srec(5, 3), srec(9, 0))) == (
        "app.s19:3: record count mismatch: S5 says 3 data records, the file has 2 before it"
    )
    assert fw.load_srec(lines(S1A, S1B, srec(6, 2), srec(9, 0))).total_size == 5


def test_srec_overlap_overflow_termination() -> None:
    msg = srec_error(lines(S1A, srec(1, 0x0103, b"\xee"), srec(9, 0)))
    assert msg.startswith("app.s19:2: overlapping data: this line writes 0x00000103..0x00000103")
    assert "line 1 already wrote 0x00000100..0x00000103" in msg
    assert srec_error(lines(srec(3, 0xFFFF_FFFE, b"\x01\x02\x03"), srec(7, 0))).startswith(
        "app.s19:1: address overflow"
    )
    assert srec_error(lines(S1A, S1B)).startswith(
        "app.s19:2: the file ends without a termination record (S7/S8/S9)"
    )
    assert srec_error(lines(S1A, srec(9, 0), S1B)).startswith(
        "app.s19:3: data after the termination record of line 2"
    )


# ------------------------------------------------------------------------------ raw binary


def test_binary_base_address_problems() -> None:
    with pytest.raises(ImageError, match=r"^app\.bin: a raw binary needs a base address"):
        fw.load_binary(b"\x01", None, source="app.bin")
    with pytest.raises(ImageError, match=r"^app\.bin: base address -1 is negative"):
        fw.load_binary(b"\x01", -1, source="app.bin")
    with pytest.raises(ImageError, match=re.escape("app.bin: 2 bytes at base 0xFFFFFFFF run past")):
        fw.load_binary(b"\x01\x02", 0xFFFF_FFFF, source="app.bin")
    with pytest.raises(ImageError, match=r"^app\.bin: file is empty"):
        fw.load_binary(b"", 0, source="app.bin")
    with pytest.raises(ImageError, match="needs a base address"):
        fw.load_image(b"\x00\x01", source="app.bin")


def test_srec_may_end_with_matching_count_record() -> None:
    assert fw.load_srec(lines(S1A, S1B, srec(5, 2))).total_size == 5
    assert srec_error(lines(S1A, srec(5, 1), S1B)).startswith(
        "app.s19:3: the file ends without a termination record (S7/S8/S9) or a count record"
    )
