"""Property tests: our loaders and exporters agree with intelhex (HEX) and bincopy (S-record)."""

from __future__ import annotations

import io

import bincopy
import intelhex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fota_studio.core import firmware as fw
from fota_studio.core.firmware import FirmwareImage

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def images(draw: st.DrawFn) -> FirmwareImage:
    """1-4 segments of 1-400 bytes with gaps that often cross 64 KiB windows."""
    address = draw(st.integers(0, 0xFFF0_0000))
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        data = draw(st.binary(min_size=1, max_size=400))
        parts.append((address, data))
        address += len(data) + draw(st.integers(1, 0x3_0000))
    start = draw(st.none() | st.integers(1, 0xFFFF_FFFF))
    return FirmwareImage.from_segments(parts, start_address=start)


record_sizes = st.integers(1, 64)


def intelhex_segments(ih: intelhex.IntelHex) -> list[tuple[int, bytes]]:
    return [(a, ih.tobinstr(start=a, end=b - 1)) for a, b in ih.segments()]


def ours(img: FirmwareImage) -> list[tuple[int, bytes]]:
    return [(s.address, s.data) for s in img.segments]


@SETTINGS
@given(images(), record_sizes)
def test_our_hex_reads_like_intelhex(img: FirmwareImage, record_bytes: int) -> None:
    text = fw.to_hex(img, record_bytes=record_bytes)
    ih = intelhex.IntelHex()
    ih.loadhex(io.StringIO(text.decode()))
    assert intelhex_segments(ih) == ours(img)
    expected_start = None if img.start_address is None else {"EIP": img.start_address}
    assert ih.start_addr == expected_start
    assert fw.load_hex(text) == img


@SETTINGS
@given(images(), record_sizes)
def test_intelhex_output_loads_like_intelhex(img: FirmwareImage, record_bytes: int) -> None:
    ih = intelhex.IntelHex()
    for seg in img.segments:
        ih.puts(seg.address, seg.data)
    if img.start_address is not None:
        ih.start_addr = {"EIP": img.start_address}
    out = io.StringIO()
    ih.write_hex_file(out, byte_count=record_bytes)
    text = out.getvalue().encode()
    loaded = fw.load_hex(text, source="ih.hex")
    assert ours(loaded) == intelhex_segments(ih)
    assert loaded.start_address == img.start_address
    assert fw._hex_precise(text, "ih.hex") == loaded


def bincopy_segments(bf: bincopy.BinFile) -> list[tuple[int, bytes]]:
    return [(s.address, bytes(s.data)) for s in bf.segments]


@SETTINGS
@given(images(), record_sizes)
def test_our_srec_reads_like_bincopy(img: FirmwareImage, record_bytes: int) -> None:
    text = fw.to_srec(img, record_bytes=record_bytes)
    bf = bincopy.BinFile()
    bf.add_srec(text.decode())
    assert bincopy_segments(bf) == ours(img)
    assert (bf.execution_start_address or None) == img.start_address
    assert fw.load_srec(text) == img


@SETTINGS
@given(images(), record_sizes, st.sampled_from([16, 24, 32]))
def test_bincopy_output_loads_like_bincopy(
    img: FirmwareImage, record_bytes: int, address_bits: int
) -> None:
    if img.max_address > 1 << address_bits:
        address_bits = 32
    bf = bincopy.BinFile()
    for seg in img.segments:
        bf.add_binary(seg.data, address=seg.address)
    if img.start_address is not None and img.start_address < 1 << address_bits:
        bf.execution_start_address = img.start_address
    srec_text = bf.as_srec(number_of_data_bytes=record_bytes, address_length_bits=address_bits)
    loaded = fw.load_srec(srec_text.encode(), source="bc.s19")
    assert ours(loaded) == bincopy_segments(bf)
    assert loaded.start_address == (bf.execution_start_address or None)
    assert fw._srec_precise(srec_text.encode(), "bc.s19") == loaded
    hex_text = bf.as_ihex(number_of_data_bytes=record_bytes, address_length_bits=32)
    assert ours(fw.load_hex(hex_text.encode())) == bincopy_segments(bf)


def outcome(load: object, text: bytes) -> object:
    try:
        return load(text, source="m")  # type: ignore[operator]
    except fw.ImageError as exc:
        return str(exc)


MUTATIONS = st.sampled_from(list(b"0123456789ABCDEFaf:S\r\n \x00G"))


@settings(max_examples=600, deadline=None)
@given(images(), st.integers(1, 40), st.data())
def test_bulk_and_precise_paths_agree_on_corrupted_files(
    img: FirmwareImage, record_bytes: int, data: st.DataObject
) -> None:
    """A single changed, inserted or deleted byte: the fast path never accepts what the
    precise one rejects, and both give the same image or the same message."""
    for export, load, precise in (
        (fw.to_hex, fw.load_hex, fw._hex_precise),
        (fw.to_srec, fw.load_srec, fw._srec_precise),
    ):
        text = bytearray(export(img, record_bytes=record_bytes))
        pos = data.draw(st.integers(0, len(text) - 1))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "delete":
            del text[pos]
        elif action == "insert":
            text.insert(pos, data.draw(MUTATIONS))
        else:
            text[pos] = data.draw(MUTATIONS)
        mutated = bytes(text)
        expected = outcome(precise, mutated) if b"\0" not in mutated else None
        got = outcome(load, mutated)
        if expected is not None:
            assert got == expected
