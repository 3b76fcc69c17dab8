"""Firmware images: the in-memory model, validating loaders (Intel HEX, S-record, raw binary)
and exporters.

A `FirmwareImage` is a sorted tuple of non-overlapping `Segment`s plus an optional execution start
address. The text loaders validate every record (checksums, lengths, record types, addressing,
overlaps, EOF) and report faults as `ImageError` with a `file:line:` prefix. They are fast because
the common case is checked in bulk with numpy over chunks of lines (hex text to bytes in C,
checksums and lengths vectorised); only when the bulk check finds something unusual does a
precise line-by-line pass run, which either accepts the file (blank lines, trailing blanks) or
names the exact line and fault. Pure functions without shared state: safe from any thread (a
10 MiB image takes a few hundred ms, so call big loads from a worker, not the GUI thread).

Why this size: the firmware image model and its loaders/writers (Intel HEX, S-record, binary)
share the bulk/precise two-pass design and its run structures; one module keeps the format rules
and their fast paths side by side, where a fix to one format's rule is checked against the
others.
"""

from __future__ import annotations

import binascii
import contextlib
import gc
import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from fota_studio.core.errors import ImageError

IMAGE_FORMATS = ("hex", "srec", "bin")

#: One past the highest byte address a 32-bit target can hold.
ADDRESS_LIMIT = 1 << 32

#: Text processed per bulk step; bounds the loader's working memory to a few times this.
_CHUNK_BYTES = 1 << 20

_WHITESPACE = b" \t\r\n\f\v"
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

_HEX_EXTENSIONS = (".hex", ".ihex", ".ihx", ".h86", ".hxl", ".hxh", ".a43", ".a90")
_SREC_EXTENSIONS = (".s19", ".s28", ".s37", ".srec", ".mot", ".mhx", ".sx", ".s1", ".s2", ".s3")

#: Address field width in bytes of S-record types S0..S9 (S4 is reserved: 0).
_SREC_ADDR_BYTES = (2, 2, 3, 4, 0, 2, 3, 4, 3, 2)
_SREC_ADDR_LUT = np.array(_SREC_ADDR_BYTES + (0,) * 246, dtype=np.int64)

#: translate() table that turns the leading 'S' of an S-record into '0', so "S3" becomes the
#: hex byte 0x03 and every record is an even run of hex digits.
_SREC_TABLE = bytes.maketrans(b"S", b"0")

IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]


# --------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True, repr=False)
class Segment:
    """A contiguous run of bytes at an absolute address (never empty, within 32 bits)."""

    address: int
    data: bytes

    def __post_init__(self) -> None:
        if self.address < 0 or not self.data or self.address + len(self.data) > ADDRESS_LIMIT:
            raise ValueError(
                f"segment at 0x{self.address:X} with {len(self.data)} bytes is empty or outside "
                "the 32-bit address space"
            )

    @property
    def length(self) -> int:
        """Number of bytes."""
        return len(self.data)

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.address + len(self.data)

    def __repr__(self) -> str:
        return f"Segment(address=0x{self.address:08X}, length={len(self.data)})"


@dataclass(frozen=True, repr=False)
class FirmwareImage:
    """Segments sorted by address, non-overlapping, touching ones merged; plus a start address.

    Build one from arbitrary pieces with `FirmwareImage.from_segments`; the constructor only
    checks that the segments are already in that normal form.
    """

    segments: tuple[Segment, ...]
    start_address: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.segments, tuple):
            object.__setattr__(self, "segments", tuple(self.segments))
        prev_end = -1
        for seg in self.segments:
            if seg.address <= prev_end:
                raise ValueError(
                    f"segment at 0x{seg.address:X} overlaps, touches or precedes the previous "
                    "one; use FirmwareImage.from_segments to sort and merge"
                )
            prev_end = seg.end
        if self.start_address is not None and not 0 <= self.start_address < ADDRESS_LIMIT:
            raise ValueError(f"start address 0x{self.start_address:X} is outside 32 bits")

    @classmethod
    def from_segments(
        cls, parts: Iterable[Segment | tuple[int, bytes]], start_address: int | None = None
    ) -> FirmwareImage:
        """Sort pieces, merge touching ones; raise ValueError if two pieces overlap."""
        items = sorted(
            (p if isinstance(p, Segment) else Segment(p[0], bytes(p[1])) for p in parts),
            key=lambda s: s.address,
        )
        merged: list[Segment] = []
        group: list[Segment] = []
        for seg in items:
            if group and seg.address < group[-1].end:
                raise ValueError(
                    f"segment at 0x{seg.address:X} overlaps the one ending at 0x{group[-1].end:X}"
                )
            if group and seg.address != group[-1].end:
                merged.append(_join(group))
                group = []
            group.append(seg)
        if group:
            merged.append(_join(group))
        return cls(tuple(merged), start_address)

    @property
    def total_size(self) -> int:
        """Sum of the segment lengths (gaps not counted)."""
        return sum(len(s.data) for s in self.segments)

    @property
    def min_address(self) -> int:
        """Lowest address holding data (0 for an empty image)."""
        return self.segments[0].address if self.segments else 0

    @property
    def max_address(self) -> int:
        """One past the highest address holding data (0 for an empty image)."""
        return self.segments[-1].end if self.segments else 0

    @property
    def span(self) -> int:
        """max_address - min_address, gaps included."""
        return self.max_address - self.min_address

    def gaps(self) -> list[tuple[int, int]]:
        """The (start, end) address ranges between consecutive segments."""
        return [(a.end, b.address) for a, b in zip(self.segments, self.segments[1:], strict=False)]

    def data_bytes(self) -> bytes:
        """The segment data concatenated in address order (gaps omitted)."""
        if len(self.segments) == 1:
            return self.segments[0].data
        return b"".join(s.data for s in self.segments)

    def sha256(self) -> str:
        """SHA-256 hex digest of `data_bytes()`."""
        digest = hashlib.sha256()
        for seg in self.segments:
            digest.update(seg.data)
        return digest.hexdigest()

    def crc32(self) -> int:
        """zlib.crc32 of `data_bytes()`."""
        crc = 0
        for seg in self.segments:
            crc = zlib.crc32(seg.data, crc)
        return crc

    def __repr__(self) -> str:
        start = "None" if self.start_address is None else f"0x{self.start_address:08X}"
        return f"FirmwareImage(segments={self.segments!r}, start_address={start})"


def _join(group: list[Segment]) -> Segment:
    if len(group) == 1:
        return group[0]
    return Segment(group[0].address, b"".join(s.data for s in group))


# --------------------------------------------------------------------------------------------
# Shared helpers for the text loaders


class _Fallback(Exception):
    """The bulk check met something it does not decide; the precise pass must run."""


@dataclass
class LoadStats:
    """How a text image was parsed (fill one by passing it to a loader; for tests and benches).

    `chunks` is how many ~1 MiB regions the fast bulk path read, `tidied_chunks` how many of
    them held something the standard allows but the bulk check does not take as is (trailing
    blanks, blank lines) and were tidied line by line before the bulk check ran again, and
    `precise_file` is True when the whole file went through the line-by-line parser (a real
    fault, which that parser names with its line, or a layout the bulk path does not decide).
    """

    chunks: int = 0
    tidied_chunks: int = 0
    precise_file: bool = False


def _tidy(chunk: bytes) -> bytes:
    """The chunk with each line's trailing blanks cut and blank lines dropped (LF ends).

    Exactly what the precise pass accepts around a record, so a tidied region parses to the
    same bytes; anything else (leading blanks, junk inside a record) still fails the bulk check.
    """
    kept = [cut for line in chunk.split(b"\n") if (cut := line.rstrip(_WHITESPACE))]
    return b"\n".join(kept) + b"\n" if kept else b""


def _err(message: str, source: str, line: int | None = None) -> ImageError:
    return ImageError(message, source=source, line=line)


def _check_text(data: bytes, source: str, kind: str) -> int:
    """Reject empty files and binary junk; return the end of the content (trailing blanks cut)."""
    if not data:
        raise _err("file is empty (0 bytes)", source)
    bad = data.find(b"\0")
    if not data.isascii():
        arr = np.frombuffer(data, np.uint8)
        first_high = int(np.argmax(arr >= 0x80))
        bad = first_high if bad < 0 else min(bad, first_high)
    if bad >= 0:
        line = data.count(b"\n", 0, bad) + 1
        column = bad - (data.rfind(b"\n", 0, bad) + 1) + 1
        raise _err(
            f"binary data (byte 0x{data[bad]:02X} at column {column}) in a text {kind} file; "
            "if this is a raw binary, load it as 'bin' with a base address",
            source,
            line,
        )
    end = len(data)
    while end and data[end - 1] in _WHITESPACE:
        end -= 1
    if end == 0:
        raise _err(f"file holds no {kind} records (only whitespace)", source)
    return end


def _chunks(data: bytes, end: int) -> Iterator[tuple[bytes, bool]]:
    """Yield (chunk of whole lines ending in '\\n', is_last) over data[:end]."""
    pos = 0
    while pos < end:
        stop = pos + _CHUNK_BYTES
        nl = data.rfind(b"\n", pos, stop) if stop < end else -1
        if stop < end and nl < 0:
            nl = data.find(b"\n", stop, end)
        if nl < 0:
            yield data[pos:end] + b"\n", True
            return
        yield data[pos : nl + 1], False
        pos = nl + 1


def _line_geometry(chunk: bytes, arr: ByteArray, lead: int) -> tuple[IntArray, IntArray]:
    """Line starts and content lengths (CR of CRLF excluded); fallback on stray ':'/'S'/CR."""
    nl = np.flatnonzero(arr == 0x0A)
    starts = np.empty_like(nl)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    cr = arr[nl - 1] == 0x0D
    lens = nl - starts - cr
    if chunk.count(b"\r") != int(np.count_nonzero(cr)) or chunk.count(bytes([lead])) != len(nl):
        raise _Fallback
    if not bool(np.all(arr[starts] == lead)):
        raise _Fallback
    return starts, lens


def _record_offsets(reclen: IntArray, raw_len: int) -> IntArray:
    if int(reclen.sum()) != raw_len:
        raise _Fallback
    offs = np.empty_like(reclen)
    offs[0] = 0
    np.cumsum(reclen[:-1], out=offs[1:])
    return offs


class _Runs:
    """Contiguous data runs found so far, kept as arrays per bulk region: start and end address,
    and where the run's bytes lie in that region's data buffer. Merging and the overlap check
    are vectorised, so a sparse image (one run per record) costs one slice and one `Segment`
    per run, not a Python loop over records (issue 21: 262k one-record segments)."""

    def __init__(self) -> None:
        self._starts: list[IntArray] = []
        self._ends: list[IntArray] = []
        self._lo: list[IntArray] = []
        self._hi: list[IntArray] = []
        self._bufs: list[bytes] = []

    def __bool__(self) -> bool:
        return bool(self._starts)

    def add(self, rec: ByteArray, dstart: IntArray, dcount: IntArray, absaddr: IntArray) -> None:
        """Collect the data bytes of records (offsets into rec) at their absolute addresses."""
        keep = dcount > 0
        if not bool(np.all(keep)):
            dstart, dcount, absaddr = dstart[keep], dcount[keep], absaddr[keep]
        if len(dstart) == 0:
            return
        delta = np.zeros(len(rec) + 1, dtype=np.int8)
        delta[dstart] = 1
        delta[dstart + dcount] = -1
        mask = np.cumsum(delta[:-1], dtype=np.int8).view(np.bool_)
        data = rec[mask].tobytes()
        del delta, mask
        dend = absaddr + dcount
        breaks = np.flatnonzero(absaddr[1:] != dend[:-1]) + 1
        doff = np.empty_like(dcount)
        doff[0] = 0
        np.cumsum(dcount[:-1], out=doff[1:])
        first = np.concatenate(([0], breaks))
        last = np.concatenate((breaks - 1, [len(dstart) - 1]))
        self._starts.append(absaddr[first])
        self._ends.append(dend[last])
        self._lo.append(doff[first])
        self._hi.append(doff[last] + dcount[last])
        self._bufs.append(data)

    def image(self, start_address: int | None) -> FirmwareImage:
        """Sorted, merged image; _Fallback if two runs overlap (the precise pass names them)."""
        starts = np.concatenate(self._starts)
        ends = np.concatenate(self._ends)
        lo = np.concatenate(self._lo)
        hi = np.concatenate(self._hi)
        buf = np.repeat(np.arange(len(self._bufs)), [len(a) for a in self._starts])
        bufs, self._bufs = self._bufs, []
        self._starts, self._ends, self._lo, self._hi = [], [], [], []
        if len(starts) > 1 and bool(np.any(starts[1:] < starts[:-1])):
            order = np.argsort(starts, kind="stable")
            starts, ends, lo, hi, buf = starts[order], ends[order], lo[order], hi[order], buf[order]
        if bool(np.any(starts[1:] < ends[:-1])):
            raise _Fallback
        # Runs that touch (a region ends where the next begins) form one segment.
        heads = np.flatnonzero(np.concatenate(([True], starts[1:] != ends[:-1])))
        tails = np.concatenate((heads[1:], [len(starts)]))
        views = [memoryview(b) for b in bufs]
        segments: list[Segment] = []
        new = object.__new__
        with _gc_paused():
            self._build(segments, new, heads, tails, starts, buf, lo, hi, bufs, views)
        return _image(tuple(segments), start_address)

    @staticmethod
    def _build(
        segments: list[Segment],
        new: Callable[[type[Segment]], Segment],
        heads: IntArray,
        tails: IntArray,
        starts: IntArray,
        buf: IntArray,
        lo: IntArray,
        hi: IntArray,
        bufs: list[bytes],
        views: list[memoryview],
    ) -> None:
        """Append one Segment per merged run (the loop a sparse image spends its time in)."""
        for head, tail, start, b_i, a, b in zip(
            heads.tolist(),
            tails.tolist(),
            starts[heads].tolist(),
            buf[heads].tolist(),
            lo[heads].tolist(),
            hi[heads].tolist(),
            strict=True,
        ):
            if tail - head == 1:
                data = bufs[b_i][a:b]
            else:
                data = b"".join(
                    views[k][x:y]
                    for k, x, y in zip(
                        buf[head:tail].tolist(),
                        lo[head:tail].tolist(),
                        hi[head:tail].tolist(),
                        strict=True,
                    )
                )
            # A Segment the bulk loader already checked (in 32 bits, not empty), built without
            # re-validation: its fields are set once, here (a sparse image has 100k+ of them).
            seg = new(Segment)
            seg.__dict__.update(address=start, data=data)
            segments.append(seg)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a loop allocates 100k+ acyclic objects (Segments of
    ints and bytes): each collection would walk every object made so far, more than half of a
    sparse image's parse time (issue 21: 262k segments)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _image(segments: tuple[Segment, ...], start_address: int | None) -> FirmwareImage:
    """A FirmwareImage of segments the bulk loader already sorted, merged and checked."""
    image = object.__new__(FirmwareImage)
    object.__setattr__(image, "segments", segments)
    object.__setattr__(image, "start_address", start_address)
    if start_address is not None and not 0 <= start_address < ADDRESS_LIMIT:
        raise _Fallback
    return image


def _digits(text: bytes, source: str, line: int, col0: int, what: str) -> bytes:
    """Decode the hex digits of one record or raise the precise fault with its column."""
    for k, ch in enumerate(text):
        if ch not in _HEX_DIGITS:
            raise _err(
                f"non-hex character {chr(ch)!r} at column {col0 + k} in {what}", source, line
            )
    if len(text) % 2:
        raise _err(f"odd number of hex digits ({len(text)}) in {what}", source, line)
    return binascii.a2b_hex(text)


def _range(address: int, length: int) -> str:
    return f"0x{address:08X}..0x{address + length - 1:08X}"


def _precise_image(
    records: list[tuple[int, bytes, int]], start: int | None, source: str
) -> FirmwareImage:
    """Check overlaps (naming both lines) and build the image from (address, data, line)."""
    if not records:
        raise _err("file holds no data records; nothing to flash", source)
    records.sort(key=lambda r: (r[0], r[2]))
    parts: list[tuple[int, bytearray]] = []
    owner = records[0]
    for rec in records:
        addr, data, line = rec
        if parts and addr < parts[-1][0] + len(parts[-1][1]):
            o_line = owner[2]
            first, second = sorted((line, o_line))
            later, earlier = (rec, owner) if line == second else (owner, rec)
            raise _err(
                f"overlapping data: this line writes {_range(later[0], len(later[1]))}, "
                f"line {first} already wrote {_range(earlier[0], len(earlier[1]))}",
                source,
                second,
            )
        if parts and addr == parts[-1][0] + len(parts[-1][1]):
            parts[-1][1].extend(data)
        else:
            parts.append((addr, bytearray(data)))
        if addr + len(data) >= owner[0] + len(owner[1]):
            owner = rec
    return FirmwareImage(tuple(Segment(a, bytes(d)) for a, d in parts), start)


# --------------------------------------------------------------------------------------------
# Intel HEX


def load_hex(
    data: bytes, *, source: str = "<hex>", stats: LoadStats | None = None
) -> FirmwareImage:
    """Parse an Intel HEX file (record types 00-05); raise ImageError naming file:line.

    Trailing blanks, blank lines, lower case and CRLF stay on the fast path: a region holding
    them is tidied and checked in bulk again, so one odd line costs its region, not the file.
    """
    end = _check_text(data, source, "Intel HEX")
    stats = stats if stats is not None else LoadStats()
    try:
        return _hex_bulk(data, end, stats)
    except _Fallback:
        stats.precise_file = True
        return _hex_precise(data, source)


def _hex_decode(chunk: bytes) -> tuple[IntArray, bytes]:
    """(content length of each line, the record bytes) of whole HEX lines; _Fallback if odd."""
    arr = np.frombuffer(chunk, np.uint8)
    _starts, lens = _line_geometry(chunk, arr, 0x3A)
    if int(lens.min()) < 11 or bool(np.any((lens & 1) == 0)):
        raise _Fallback
    try:
        return lens, binascii.a2b_hex(chunk.translate(None, b":\r\n"))
    except binascii.Error:
        raise _Fallback from None


def _decode_or_tidy(
    decode: Callable[[bytes], tuple[IntArray, bytes]], chunk: bytes, stats: LoadStats
) -> tuple[IntArray, bytes] | None:
    """Bulk-decode a region; tidy it once when that fails (None: only blank lines in it)."""
    stats.chunks += 1
    try:
        return decode(chunk)
    except _Fallback:
        tidy = _tidy(chunk)
        if tidy == chunk:
            raise
        stats.tidied_chunks += 1
        return decode(tidy) if tidy else None


def _hex_bulk(data: bytes, end: int, stats: LoadStats) -> FirmwareImage:
    runs = _Runs()
    base = 0
    start: int | None = None
    eof = False
    for chunk, is_last in _chunks(data, end):
        if eof:
            raise _Fallback
        decoded = _decode_or_tidy(_hex_decode, chunk, stats)
        if decoded is None:
            continue
        lens, raw = decoded
        del chunk
        rec = np.frombuffer(raw, np.uint8)
        reclen = (lens - 1) >> 1
        offs = _record_offsets(reclen, len(rec))
        count = rec[offs].astype(np.int64)
        if bool(np.any(count + 5 != reclen)):
            raise _Fallback
        if bool(np.any(np.add.reduceat(rec, offs, dtype=np.uint8) != 0)):
            raise _Fallback
        rtype = rec[offs + 3]
        if int(rtype.max()) > 5:
            raise _Fallback
        ext_pos: list[int] = []
        ext_val: list[int] = [base]
        for i in np.flatnonzero(rtype != 0).tolist():
            kind, n, o = int(rtype[i]), int(count[i]), int(offs[i])
            if kind == 1:
                if n != 0 or i != len(offs) - 1 or not is_last:
                    raise _Fallback
                eof = True
            elif kind in (2, 4):
                if n != 2:
                    raise _Fallback
                value = int(rec[o + 4]) << 8 | int(rec[o + 5])
                ext_pos.append(i)
                ext_val.append(value << (16 if kind == 4 else 4))
            else:
                if n != 4 or start is not None:
                    raise _Fallback
                b = rec[o + 4 : o + 8].tolist()
                start = (
                    ((b[0] << 8 | b[1]) << 4) + (b[2] << 8 | b[3])
                    if kind == 3
                    else int.from_bytes(bytes(b), "big")
                )
        didx = np.flatnonzero(rtype == 0)
        doffs = offs[didx]
        addr16 = rec[doffs + 1].astype(np.int64) << 8 | rec[doffs + 2]
        if ext_pos:
            bases = np.array(ext_val, dtype=np.int64)[np.searchsorted(ext_pos, didx)]
            absaddr = bases + addr16
        else:
            absaddr = addr16 + base
        base = ext_val[-1]
        dcount = count[didx]
        if len(didx) and int((absaddr + dcount).max()) > ADDRESS_LIMIT:
            raise _Fallback
        runs.add(rec, doffs + 4, dcount, absaddr)
    if not eof or not runs:
        raise _Fallback
    return runs.image(start)


def _hex_precise(data: bytes, source: str) -> FirmwareImage:
    records: list[tuple[int, bytes, int]] = []
    base = 0
    start: int | None = None
    start_line = 0
    eof_line = 0
    last_line = 0
    for lineno, raw_line in enumerate(data.split(b"\n"), 1):
        line = raw_line.rstrip(_WHITESPACE)
        if not line:
            continue
        last_line = lineno
        if eof_line:
            raise _err(f"data after the EOF record of line {eof_line}", source, lineno)
        if line[:1] != b":":
            hint = "; this looks like an S-record file" if line[:1] == b"S" else ""
            raise _err(
                f"line does not start with ':' (found {chr(line[0])!r}){hint}", source, lineno
            )
        rec = _digits(line[1:], source, lineno, 2, "the record")
        if len(rec) < 5:
            raise _err(
                f"line is truncated: a record needs at least 5 bytes (count, address, type, "
                f"checksum), this one has {len(rec)}",
                source,
                lineno,
            )
        n = rec[0]
        if len(rec) < n + 5:
            raise _err(
                f"line is truncated: byte count 0x{n:02X} needs {n + 5} bytes, the line holds "
                f"{len(rec)}",
                source,
                lineno,
            )
        if len(rec) > n + 5:
            raise _err(
                f"byte count 0x{n:02X} does not match the line length: it needs {n + 5} bytes, "
                f"the line holds {len(rec)}",
                source,
                lineno,
            )
        computed = -sum(rec[:-1]) & 0xFF
        if computed != rec[-1]:
            raise _err(
                f"checksum mismatch (record says 0x{rec[-1]:02X}, computed 0x{computed:02X})",
                source,
                lineno,
            )
        kind = rec[3]
        payload = rec[4:-1]
        if kind == 0:
            address = base + (rec[1] << 8 | rec[2])
            if address + n > ADDRESS_LIMIT:
                raise _err(
                    f"address overflow: {n} bytes at 0x{address:X} run past the 32-bit address "
                    f"space (end 0x{address + n:X})",
                    source,
                    lineno,
                )
            if n:
                records.append((address, payload, lineno))
        elif kind == 1:
            if n != 0:
                raise _err(
                    f"EOF record (type 01) must hold no data, it holds {n} bytes", source, lineno
                )
            eof_line = lineno
        elif kind in (2, 4):
            if n != 2:
                raise _err(f"record type 0{kind} must hold 2 bytes, it holds {n}", source, lineno)
            base = int.from_bytes(payload, "big") << (16 if kind == 4 else 4)
        elif kind in (3, 5):
            if n != 4:
                raise _err(f"record type 0{kind} must hold 4 bytes, it holds {n}", source, lineno)
            value = (
                (int.from_bytes(payload[:2], "big") << 4) + int.from_bytes(payload[2:], "big")
                if kind == 3
                else int.from_bytes(payload, "big")
            )
            if start is not None and value != start:
                raise _err(
                    f"start address 0x{value:08X} conflicts with 0x{start:08X} from line "
                    f"{start_line}",
                    source,
                    lineno,
                )
            start, start_line = value, lineno
        else:
            raise _err(
                f"unknown record type 0x{kind:02X} (Intel HEX knows 00 to 05)", source, lineno
            )
    if not eof_line:
        raise _err(
            "the file ends without an EOF record (:00000001FF); it may be truncated",
            source,
            last_line,
        )
    return _precise_image(records, start, source)


# --------------------------------------------------------------------------------------------
# Motorola S-record


def load_srec(
    data: bytes, *, source: str = "<srec>", stats: LoadStats | None = None
) -> FirmwareImage:
    """Parse a Motorola S-record file (S0-S3, S5-S9); raise ImageError naming file:line.

    The file must end with a termination record (S7/S8/S9) or, as bincopy writes it when there
    is no start address, with a matching S5/S6 count record: either proves it is not truncated.

    A start address of 0 in the S7/S8/S9 termination record means "not given" (writers put 0
    there when they have none), so it loads as start_address None.
    """
    end = _check_text(data, source, "S-record")
    stats = stats if stats is not None else LoadStats()
    try:
        return _srec_bulk(data, end, stats)
    except _Fallback:
        stats.precise_file = True
        return _srec_precise(data, source)


def _srec_decode(chunk: bytes) -> tuple[IntArray, bytes]:
    """(content length of each line, the record bytes) of whole S-record lines; _Fallback if odd."""
    arr = np.frombuffer(chunk, np.uint8)
    _starts, lens = _line_geometry(chunk, arr, 0x53)
    if int(lens.min()) < 10 or bool(np.any(lens & 1)):
        raise _Fallback
    try:
        return lens, binascii.a2b_hex(chunk.translate(_SREC_TABLE, b"\r\n"))
    except binascii.Error:
        raise _Fallback from None


def _srec_bulk(data: bytes, end: int, stats: LoadStats) -> FirmwareImage:
    runs = _Runs()
    start: int | None = None
    done = False
    counted = False  # the file ends with a matching S5/S6 count record
    data_records = 0
    for chunk, is_last in _chunks(data, end):
        if done:
            raise _Fallback
        decoded = _decode_or_tidy(_srec_decode, chunk, stats)
        if decoded is None:
            continue
        lens, raw = decoded
        del chunk
        rec = np.frombuffer(raw, np.uint8)
        reclen = lens >> 1
        offs = _record_offsets(reclen, len(rec))
        rtype = rec[offs]
        count = rec[offs + 1].astype(np.int64)
        if bool(np.any(count + 2 != reclen)) or int(rtype.max()) > 9:
            raise _Fallback
        sums = np.add.reduceat(rec, offs, dtype=np.uint8) - rtype
        if bool(np.any(sums != 0xFF)):
            raise _Fallback
        alen = _SREC_ADDR_LUT[rtype]
        if bool(np.any(alen == 0)) or bool(np.any(count < alen + 1)):
            raise _Fallback
        absaddr = np.zeros(len(offs), dtype=np.int64)
        last_index = len(rec) - 1
        for j in range(4):
            byte = rec[np.minimum(offs + 2 + j, last_index)]
            absaddr = np.where(j < alen, absaddr << 8 | byte, absaddr)
        is_data = (rtype >= 1) & (rtype <= 3)
        didx = np.flatnonzero(is_data)
        for i in np.flatnonzero(~is_data).tolist():
            kind = int(rtype[i])
            if kind != 0 and int(count[i]) != int(alen[i]) + 1:
                raise _Fallback
            if kind in (5, 6):
                if int(absaddr[i]) != data_records + int(np.searchsorted(didx, i)):
                    raise _Fallback
                counted = is_last and i == len(offs) - 1
            elif kind >= 7:
                if i != len(offs) - 1 or not is_last:
                    raise _Fallback
                start = int(absaddr[i]) or None
                done = True
        data_records += len(didx)
        dalen = alen[didx]
        dcount = count[didx] - dalen - 1
        daddr = absaddr[didx]
        if len(didx) and int((daddr + dcount).max()) > ADDRESS_LIMIT:
            raise _Fallback
        runs.add(rec, offs[didx] + 2 + dalen, dcount, daddr)
    if not (done or counted) or not runs:
        raise _Fallback
    return runs.image(start)


def _srec_precise(data: bytes, source: str) -> FirmwareImage:
    records: list[tuple[int, bytes, int]] = []
    start: int | None = None
    end_line = 0
    count_line = 0
    last_line = 0
    data_records = 0
    for lineno, raw_line in enumerate(data.split(b"\n"), 1):
        line = raw_line.rstrip(_WHITESPACE)
        if not line:
            continue
        last_line = lineno
        if end_line:
            raise _err(f"data after the termination record of line {end_line}", source, lineno)
        if line[:1] != b"S":
            hint = "; this looks like an Intel HEX file" if line[:1] == b":" else ""
            raise _err(
                f"line does not start with 'S' (found {chr(line[0])!r}){hint}", source, lineno
            )
        type_char = chr(line[1]) if len(line) > 1 else ""
        if not type_char or type_char not in "012356789":
            found = f"S{type_char}" if type_char else "'S' alone"
            raise _err(
                f"unknown record type {found} (S-records know S0-S3 and S5-S9)", source, lineno
            )
        kind = int(type_char)
        rec = _digits(line[2:], source, lineno, 3, "the record")
        alen = _SREC_ADDR_BYTES[kind]
        if not rec:
            raise _err("line is truncated: the record has no byte count", source, lineno)
        n = rec[0]
        if len(rec) < n + 1:
            raise _err(
                f"line is truncated: byte count 0x{n:02X} needs {n} bytes after it, the line "
                f"holds {len(rec) - 1}",
                source,
                lineno,
            )
        if len(rec) > n + 1:
            raise _err(
                f"byte count 0x{n:02X} does not match the line length: it needs {n} bytes "
                f"after it, the line holds {len(rec) - 1}",
                source,
                lineno,
            )
        if n < alen + 1:
            raise _err(
                f"line is truncated: S{kind} needs a {alen}-byte address and a checksum but "
                f"the byte count is 0x{n:02X}",
                source,
                lineno,
            )
        computed = ~sum(rec[:-1]) & 0xFF
        if computed != rec[-1]:
            raise _err(
                f"checksum mismatch (record says 0x{rec[-1]:02X}, computed 0x{computed:02X})",
                source,
                lineno,
            )
        value = int.from_bytes(rec[1 : 1 + alen], "big")
        payload = rec[1 + alen : -1]
        if kind in (1, 2, 3):
            data_records += 1
            if value + len(payload) > ADDRESS_LIMIT:
                raise _err(
                    f"address overflow: {len(payload)} bytes at 0x{value:X} run past the 32-bit "
                    f"address space",
                    source,
                    lineno,
                )
            if payload:
                records.append((value, payload, lineno))
        elif kind != 0:
            if payload:
                raise _err(
                    f"S{kind} must hold only its {alen}-byte field, it has {len(payload)} extra "
                    "bytes",
                    source,
                    lineno,
                )
            if kind in (5, 6):
                if value != data_records:
                    raise _err(
                        f"record count mismatch: S{kind} says {value} data records, the file has "
                        f"{data_records} before it",
                        source,
                        lineno,
                    )
                count_line = lineno
            else:
                start = value or None
                end_line = lineno
    if not end_line and count_line != last_line:
        raise _err(
            "the file ends without a termination record (S7/S8/S9) or a count record "
            "(S5/S6); it may be truncated",
            source,
            last_line,
        )
    return _precise_image(records, start, source)


# --------------------------------------------------------------------------------------------
# Raw binary, detection, dispatch


def load_binary(data: bytes, base_address: int | None, *, source: str = "<bin>") -> FirmwareImage:
    """Wrap raw bytes as a one-segment image at base_address (required, within 32 bits)."""
    if base_address is None:
        raise _err(
            "a raw binary needs a base address (the address of its first byte); give one",
            source,
        )
    if base_address < 0:
        raise _err(f"base address {base_address} is negative", source)
    if not data:
        raise _err("file is empty (0 bytes)", source)
    if base_address + len(data) > ADDRESS_LIMIT:
        raise _err(
            f"{len(data)} bytes at base 0x{base_address:X} run past the 32-bit address space "
            f"(end 0x{base_address + len(data):X})",
            source,
        )
    return FirmwareImage((Segment(base_address, bytes(data)),))


def detect_format(data: bytes, filename: str = "") -> str:
    """Guess "hex", "srec" or "bin": by content first, by file extension second."""
    head = data[:600].lstrip(_WHITESPACE)
    first = head.split(b"\n", 1)[0].rstrip(_WHITESPACE)
    if len(first) >= 11 and first[:1] == b":" and all(c in _HEX_DIGITS for c in first[1:]):
        return "hex"
    if (
        len(first) >= 4
        and first[:1] == b"S"
        and chr(first[1]) in "0123456789"
        and all(c in _HEX_DIGITS for c in first[2:])
    ):
        return "srec"
    suffix = Path(filename).suffix.lower()
    if suffix in _HEX_EXTENSIONS:
        return "hex"
    if suffix in _SREC_EXTENSIONS:
        return "srec"
    return "bin"


def load_image(
    data: bytes,
    *,
    fmt: str | None = None,
    base_address: int | None = None,
    source: str = "<image>",
    stats: LoadStats | None = None,
) -> tuple[FirmwareImage, str]:
    """Load data as fmt (detected when None); base_address is used for "bin" only; `stats`
    (optional) learns how a text file was parsed."""
    if fmt is None:
        fmt = detect_format(data, source)
    if fmt == "hex":
        return load_hex(data, source=source, stats=stats), fmt
    if fmt == "srec":
        return load_srec(data, source=source, stats=stats), fmt
    if fmt == "bin":
        return load_binary(data, base_address, source=source), fmt
    raise _err(f"unknown image format {fmt!r} (use one of {', '.join(IMAGE_FORMATS)})", source)


def load_image_file(
    path: str | Path, *, fmt: str | None = None, base_address: int | None = None
) -> tuple[FirmwareImage, str]:
    """Read and load a firmware file; errors name the file by its name (not its folder)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _err(f"cannot read the file: {exc.strerror or exc}", path.name) from exc
    if fmt is None:
        fmt = detect_format(data, path.name)
    return load_image(data, fmt=fmt, base_address=base_address, source=path.name)


# --------------------------------------------------------------------------------------------
# Exporters


def _text_rows(prefix: bytes, rows: ByteArray) -> bytes:
    """prefix + upper-case hex of each row + '\\n', built for all rows at once."""
    n, width = rows.shape
    hexed = np.frombuffer(binascii.b2a_hex(rows.tobytes()).upper(), np.uint8)
    out = np.empty((n, len(prefix) + 2 * width + 1), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    out[:, len(prefix) : -1] = hexed.reshape(n, 2 * width)
    out[:, -1] = 0x0A
    return out.tobytes()


def _record_block(
    header: ByteArray, data: memoryview, record_bytes: int, srec: bool
) -> tuple[ByteArray, int]:
    """Rows [header, data, checksum] for the full records of data; returns (rows, bytes used)."""
    n = len(data) // record_bytes
    hlen = header.shape[1]
    rows = np.empty((n, hlen + record_bytes + 1), dtype=np.uint8)
    rows[:, :hlen] = header[:n]
    rows[:, hlen:-1] = np.frombuffer(data[: n * record_bytes], np.uint8).reshape(n, record_bytes)
    total = rows[:, :-1].sum(axis=1, dtype=np.uint64)
    rows[:, -1] = ((~total if srec else -total.astype(np.int64)) & 0xFF).astype(np.uint8)
    return rows, n * record_bytes


def _hex_line(kind: int, offset: int, payload: bytes) -> bytes:
    rec = bytes([len(payload), offset >> 8, offset & 0xFF, kind]) + payload
    return b":" + (rec + bytes([-sum(rec) & 0xFF])).hex().upper().encode() + b"\n"


def to_hex(image: FirmwareImage, *, record_bytes: int = 32) -> bytes:
    """Intel HEX text (LF line ends): type 04 when the upper address changes, 05 for start."""
    if not 1 <= record_bytes <= 255:
        raise ValueError("record_bytes must be 1..255")
    out: list[bytes] = []
    upper = 0
    for seg in image.segments:
        view = memoryview(seg.data)
        addr, pos = seg.address, 0
        while pos < len(view):
            # A record never crosses a 64 KiB boundary: readers differ on whether it wraps.
            n = min(((addr >> 16) + 1) << 16, seg.end) - addr
            if addr >> 16 != upper:
                upper = addr >> 16
                out.append(_hex_line(4, 0, upper.to_bytes(2, "big")))
            window = view[pos : pos + n]
            full = n // record_bytes
            offsets = (addr & 0xFFFF) + np.arange(full, dtype=np.int64) * record_bytes
            header = np.empty((full, 4), dtype=np.uint8)
            header[:, 0] = record_bytes
            header[:, 1] = offsets >> 8
            header[:, 2] = offsets & 0xFF
            header[:, 3] = 0
            rows, used = _record_block(header, window, record_bytes, srec=False)
            if full:
                out.append(_text_rows(b":", rows))
            if used < n:
                out.append(_hex_line(0, (addr + used) & 0xFFFF, bytes(window[used:])))
            addr += n
            pos += n
    if image.start_address is not None:
        out.append(_hex_line(5, 0, image.start_address.to_bytes(4, "big")))
    out.append(b":00000001FF\n")
    return b"".join(out)


def _srec_line(kind: int, alen: int, value: int, payload: bytes = b"") -> bytes:
    rec = bytes([alen + len(payload) + 1]) + value.to_bytes(alen, "big") + payload
    return f"S{kind}".encode() + (rec + bytes([~sum(rec) & 0xFF])).hex().upper().encode() + b"\n"


def to_srec(image: FirmwareImage, *, record_bytes: int = 32) -> bytes:
    """S-record text: S0 header, S1/S2/S3 data (narrowest that fits), S5/S6 count, S9/S8/S7."""
    top = max(image.max_address - 1, image.start_address or 0)
    alen = 2 if top <= 0xFFFF else 3 if top <= 0xFFFFFF else 4
    data_kind, end_kind = {2: (1, 9), 3: (2, 8), 4: (3, 7)}[alen]
    if not 1 <= record_bytes <= 254 - alen:
        raise ValueError(f"record_bytes must be 1..{254 - alen} for S{data_kind} records")
    out = [_srec_line(0, 2, 0, b"fota_studio")]
    records = 0
    prefix = f"S{data_kind}".encode()
    for seg in image.segments:
        view = memoryview(seg.data)
        full = len(view) // record_bytes
        addrs = seg.address + np.arange(full, dtype=np.int64) * record_bytes
        header = np.empty((full, 1 + alen), dtype=np.uint8)
        header[:, 0] = alen + record_bytes + 1
        for j in range(alen):
            header[:, 1 + j] = (addrs >> (8 * (alen - 1 - j))) & 0xFF
        rows, used = _record_block(header, view, record_bytes, srec=True)
        if full:
            out.append(_text_rows(prefix, rows))
        records += full
        if used < len(view):
            out.append(_srec_line(data_kind, alen, seg.address + used, bytes(view[used:])))
            records += 1
    if records <= 0xFFFF:
        out.append(_srec_line(5, 2, records))
    elif records <= 0xFFFFFF:
        out.append(_srec_line(6, 3, records))
    out.append(_srec_line(end_kind, alen, image.start_address or 0))
    return b"".join(out)


def to_binary(image: FirmwareImage, *, fill: int = 0xFF) -> tuple[int, bytes]:
    """(base address, bytes from min to max address with gaps filled with `fill`).

    Holds the whole span in memory once; for files use `write_binary`, which streams it.
    """
    if not 0 <= fill <= 0xFF:
        raise ValueError("fill must be a byte value 0..255")
    base = image.min_address
    out = bytearray([fill]) * image.span
    for seg in image.segments:
        out[seg.address - base : seg.end - base] = seg.data
    return base, bytes(out)


#: Gap fill written per call by `write_binary`: bounds its working memory.
BINARY_FILL_CHUNK_BYTES = 1 << 20

#: A binary export is "much larger than the data" (callers ask before writing it) when it is
#: more than this many times the data and the gap fill alone exceeds BINARY_ASK_EXCESS_BYTES.
BINARY_BLOWUP_FACTOR = 4
BINARY_ASK_EXCESS_BYTES = 16 << 20


def binary_needs_confirmation(span_bytes: int, data_bytes: int) -> bool:
    """True when a binary file of `span_bytes` holding `data_bytes` of data is much larger
    than the data (see BINARY_BLOWUP_FACTOR): ask the user, naming the size, first."""
    return (
        span_bytes > BINARY_BLOWUP_FACTOR * max(1, data_bytes)
        and span_bytes - data_bytes > BINARY_ASK_EXCESS_BYTES
    )


def write_binary(
    image: FirmwareImage,
    out: BinaryIO,
    *,
    fill: int = 0xFF,
    progress: Callable[[float], None] | None = None,
) -> int:
    """Stream the span min..max address to `out` (gaps filled with `fill`); return its size.

    Memory stays at one fill chunk plus the segments already in the image, whatever the span
    (a 1 MiB image spanning 0x08000000..0x20000000 writes 384 MiB without holding it).
    """
    if not 0 <= fill <= 0xFF:
        raise ValueError("fill must be a byte value 0..255")
    span = image.span
    filler = bytes([fill]) * min(BINARY_FILL_CHUNK_BYTES, max(1, span))
    pos = image.min_address
    written = 0
    for seg in image.segments:
        gap = seg.address - pos
        while gap > 0:
            n = min(gap, len(filler))
            out.write(filler if n == len(filler) else filler[:n])
            gap -= n
            written += n
            if progress is not None:
                progress(written / span)
        out.write(seg.data)
        written += len(seg.data)
        pos = seg.end
        if progress is not None:
            progress(written / span)
    return written
