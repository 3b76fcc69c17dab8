"""Open and save CAN trace logs (ASC, BLF, TRC, CSV, candump .log, MF4) with python-can.

`read_log` streams a file in column batches (`FrameBatch`) with progress and cancellation, so a
worker thread can feed the trace store while the window stays responsive; it reads attributes
of python-can's Messages in bulk (`operator.attrgetter` over the reader, numpy conversion per
batch) instead of building objects of our own per frame. `write_log` saves frames (the whole
trace or a filtered selection) through python-can's writers, MF4 via its asammdf-based writer.
`RotatingRecorder` is a thread-safe `can.Listener` that records live traffic with rotation by
size. Reading/writing run on a worker thread; the recorder's `on_message_received` on Notifier
threads.

Why this size: every trace log format is read and written through python-can here, and the
readers and writers share one capability table (`CAPABILITIES`) and one loss check, as python-
can keeps its formats together in `can/io/`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import logging
import os
import struct
import threading
import time as _time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import can
import numpy as np
from can.util import dlc2len, len2dlc

from fota_studio.core.errors import FotaError
from fota_studio.infra.mf4_support import ensure_mf4
from fota_studio.protocols.decode.frames import (
    FLAG_BRS,
    FLAG_ERROR,
    FLAG_ESI,
    FLAG_EXTENDED,
    FLAG_FD,
    FLAG_REMOTE,
    FLAG_TX,
    FrameBatch,
)

log = logging.getLogger(__name__)

FORMATS: dict[str, str] = {
    ".asc": "Vector ASC",
    ".blf": "Vector BLF",
    ".trc": "PEAK TRC",
    ".csv": "CSV",
    ".log": "candump log",
    ".mf4": "ASAM MDF4",
}
READ_BATCH_FRAMES = 100_000
"""Frames per batch handed to the store (and per progress report)."""


class TraceFileError(FotaError):
    """A log file cannot be read or written; names the file and the format."""


_GET = attrgetter(
    "timestamp",
    "arbitration_id",
    "is_extended_id",
    "is_remote_frame",
    "is_error_frame",
    "is_fd",
    "bitrate_switch",
    "error_state_indicator",
    "is_rx",
    "dlc",
    "data",
    "channel",
)


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise TraceFileError(
            f"{path}: unsupported log format '{suffix or '(none)'}'",
            hint="use one of " + ", ".join(FORMATS),
        )
    return suffix


def _batch_from_rows(
    rows: list[tuple[Any, ...]], channel_index: Callable[[Any], int]
) -> FrameBatch:
    """Columns from attrgetter tuples: numpy does the per-column work in C."""
    n = len(rows)
    (ts, ids, ext, rtr, err, fd, brs, esi, rx, dlc, data, chan) = zip(*rows, strict=True)
    flags = (
        np.fromiter(ext, np.bool_, n).astype(np.uint16) * FLAG_EXTENDED
        | np.fromiter(rtr, np.bool_, n).astype(np.uint16) * FLAG_REMOTE
        | np.fromiter(err, np.bool_, n).astype(np.uint16) * FLAG_ERROR
        | np.fromiter(fd, np.bool_, n).astype(np.uint16) * FLAG_FD
        | np.fromiter(brs, np.bool_, n).astype(np.uint16) * FLAG_BRS
        | np.fromiter(esi, np.bool_, n).astype(np.uint16) * FLAG_ESI
        | (~np.fromiter(rx, np.bool_, n)).astype(np.uint16) * FLAG_TX
    ).astype(np.uint16)
    lengths = np.fromiter(map(len, data), np.int64, n)
    ext_tails: dict[int, bytes] = {}
    if n and bool((lengths == 8).all()):
        arr = np.frombuffer(b"".join(data), np.uint8).reshape(n, 8).copy()
    else:
        arr = np.zeros((n, 8), np.uint8)
        for i, d in enumerate(data):
            if d:
                arr[i, : min(8, len(d))] = np.frombuffer(bytes(d[:8]), np.uint8)
                if len(d) > 8:
                    ext_tails[i] = bytes(d[8:])
    rtr_mask = (flags & FLAG_REMOTE) != 0
    length = np.where(rtr_mask, np.fromiter(dlc, np.int64, n), lengths).astype(np.uint8)
    channels = np.fromiter(map(channel_index, chan), np.uint8, n)
    return FrameBatch(
        np.fromiter(ts, np.float64, n),
        np.fromiter(ids, np.uint32, n),
        flags,
        length,
        channels,
        arr,
        ext_tails,
    )


def read_log(
    path: Path | str,
    *,
    channel_names: list[str] | None = None,
    progress: Callable[[int, float], None] | None = None,
    cancel: threading.Event | None = None,
    batch_frames: int = READ_BATCH_FRAMES,
) -> Iterator[FrameBatch]:
    """Yield the frames of a log file as column batches.

    `channel_names` (a list the caller keeps, e.g. `TraceStore.channel_names`) receives a name
    for each new channel seen; the batch's channel column indexes it. `progress(frames,
    fraction)` is called after each batch (fraction of the file size when known). Stops early
    when `cancel` is set. Raises TraceFileError for an unreadable file.
    """
    path = Path(path)
    _check_suffix(path)
    names = channel_names if channel_names is not None else []
    cache: dict[Any, int] = {}

    def channel_index(ch: Any) -> int:
        idx = cache.get(ch)
        if idx is None:
            if ch is None:
                name = "CAN1"
            elif isinstance(ch, int):
                name = f"CAN{ch if one_based else ch + 1}"
            else:
                name = str(ch)
            if name in names:
                idx = names.index(name)
            else:
                names.append(name)
                idx = min(len(names) - 1, 255)
            cache[ch] = idx
        return idx

    size = path.stat().st_size if path.exists() else 0

    suffix = path.suffix.lower()
    # ASC stores times relative to its header date; absolute times match the other formats.
    reader_kwargs: dict[str, Any] = {"relative_timestamp": False} if suffix == ".asc" else {}
    one_based = suffix == ".trc"  # TRC numbers channels from 1, BLF/ASC readers from 0
    if path.suffix.lower() == ".blf":
        yield from _read_blf(path, channel_index, size, progress, cancel, batch_frames)
        return
    if suffix == ".mf4":
        ensure_mf4()  # the GUI starts without asammdf (infra/mf4_support)
    try:
        reader = can.LogReader(str(path), **reader_kwargs)
    except Exception as exc:
        raise TraceFileError(f"{path}: cannot open: {exc}", hint="check the file") from exc
    total = 0
    try:
        iterator = iter(reader)
        while True:
            if cancel is not None and cancel.is_set():
                return
            try:
                rows = list(map(_GET, itertools.islice(iterator, batch_frames)))
            except Exception as exc:
                raise TraceFileError(
                    f"{path}: malformed log after {total} frames: {exc}",
                    hint="the file may be truncated or not of the format its name says",
                ) from exc
            if not rows:
                return
            try:
                batch = _batch_from_rows(rows, channel_index)
            except (OverflowError, ValueError, TypeError) as exc:
                # A reader handed us an ID/DLC/length no CAN frame can have (hostile file).
                raise TraceFileError(
                    f"{path}: impossible frame values after {total} frames: {exc}",
                    hint="the file is damaged or not a CAN log",
                ) from exc
            total += len(rows)
            yield batch
            if progress is not None:
                pos = _file_position(reader)
                progress(total, min(pos / size, 1.0) if size and pos else 0.0)
    finally:
        stop = getattr(reader, "stop", None)
        if stop is not None:
            stop()


#: Largest uncompressed BLF log container accepted (python-can writes 128 KiB ones).
BLF_CONTAINER_MAX_BYTES = 16 * 1024 * 1024

# --- fast BLF ------------------------------------------------------------------------------
# BLF layout (as python-can's BLFReader reads it): a file header, then LOBJ objects; LOG_CONTAINER
# objects hold zlib-compressed runs of further LOBJ objects (CAN messages), which may straddle
# container boundaries. python-can builds a Message per frame (and a Decimal per timestamp);
# here one Python step per object only walks the headers, and the CAN fields of classic frames
# (the bulk of any trace) are gathered for all objects at once with numpy.
_OBJ_BASE = struct.Struct("<4sHHLL")
_CAN_FD = struct.Struct("<HBBLLBBB5x64s")
_CAN_FD64 = struct.Struct("<BBBBLLLLLLLHBBL")
_CAN_ERR = struct.Struct("<HHLBBBxLLH2x8s")
_LOG_CONTAINER = struct.Struct("<H6xL4x")
_T_CAN, _T_CONTAINER, _T_ERR, _T_CAN2, _T_FD, _T_FD64 = 1, 10, 73, 86, 100, 101


def _u(arr: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """Little-endian unsigned ints of `width` bytes at `offsets` in the uint8 array `arr`."""
    idx = offsets[:, None] + np.arange(width)
    return arr[idx].copy().view(f"<u{width}").reshape(-1)


def _parse_blf_objects(buf: bytes, start_ts: float) -> tuple[list[tuple[Any, ...]], int]:
    """Column arrays for the frames in `buf`; returns (parts, bytes consumed)."""
    find = buf.find
    unpack = _OBJ_BASE.unpack_from
    n = len(buf)
    pos = 0
    positions: list[int] = []
    versions: list[int] = []
    types: list[int] = []
    while True:
        found = find(b"LOBJ", pos, pos + 8)
        if found < 0:
            if pos + 8 > n:
                break
            raise TraceFileError("BLF: object signature not found (file damaged)")
        if found + 16 > n:
            break
        _sig, _hsize, hver, osize, otype = unpack(buf, found)
        if found + osize > n:
            break
        positions.append(found)
        versions.append(hver)
        types.append(otype)
        pos = found + osize
    consumed = pos
    if not positions:
        return [], consumed
    arr = np.frombuffer(buf, np.uint8)
    p = np.asarray(positions, np.int64)
    t = np.asarray(types, np.int64)
    v = np.asarray(versions, np.int64)
    frame_mask = np.isin(t, (_T_CAN, _T_CAN2, _T_FD, _T_FD64, _T_ERR)) & ((v == 1) | (v == 2))
    p, t, v = p[frame_mask], t[frame_mask], v[frame_mask]
    m = p.shape[0]
    if m == 0:
        return [], consumed
    tflags = _u(arr, p + 16, 4)
    traw = _u(arr, p + 24, 8).astype(np.float64)
    ts = np.where(tflags == 1, traw * 1e-5, traw * 1e-9) + start_ts
    body = p + np.where(v == 1, 32, 40)
    ids = np.zeros(m, np.uint32)
    flags = np.zeros(m, np.uint16)
    length = np.zeros(m, np.uint8)
    chan = np.zeros(m, np.int64)
    data = np.zeros((m, 8), np.uint8)
    ext: dict[int, bytes] = {}
    classic = np.nonzero((t == _T_CAN) | (t == _T_CAN2))[0]
    if classic.shape[0]:
        b = body[classic]
        raw_id = _u(arr, b + 4, 4)
        mflags = arr[b + 2]
        dlc = arr[b + 3]
        ids[classic] = raw_id & 0x1FFFFFFF
        flags[classic] = (
            ((raw_id >> 31) & 1) * FLAG_EXTENDED
            | ((mflags & 0x80) != 0) * FLAG_REMOTE
            | (mflags & 0x01) * FLAG_TX
        ).astype(np.uint16)
        length[classic] = np.minimum(dlc, 8)
        chan[classic] = _u(arr, b, 2).astype(np.int64) - 1
        data[classic] = arr[b[:, None] + 8 + np.arange(8)]
        rtr = (mflags & 0x80) != 0
        if rtr.any():  # remote frames keep their DLC but carry no data
            length[classic[rtr]] = dlc[rtr]
            data[classic[rtr]] = 0
        short = ~rtr & (dlc < 8)
        if short.any():
            rows = classic[short]
            cols = np.arange(8)[None, :] >= dlc[short][:, None]
            block = data[rows]
            block[cols] = 0
            data[rows] = block
    for j in np.nonzero(~((t == _T_CAN) | (t == _T_CAN2)))[0].tolist():
        off = int(body[j])
        kind = int(t[j])
        if kind == _T_FD:
            ch, mfl, dlc_code, cid, _fl, _bc, fdf, valid, payload = _CAN_FD.unpack_from(buf, off)
            payload = payload[:valid]
            fl = (FLAG_FD if fdf & 1 else 0) | (FLAG_BRS if fdf & 2 else 0)
            fl |= (FLAG_ESI if fdf & 4 else 0) | (FLAG_REMOTE if mfl & 0x80 else 0)
            fl |= FLAG_TX if mfl & 1 else 0
            dl = dlc2len(dlc_code)  # codes above 15 mean 64, as python-can reads them
        elif kind == _T_FD64:
            fields = _CAN_FD64.unpack_from(buf, off)
            ch, dlc_code, valid, cid, fdf, direction, ext_off = (
                fields[0],
                fields[1],
                fields[2],
                fields[4],
                fields[6],
                fields[12],
                fields[13],
            )
            start = off + _CAN_FD64.size
            osize = _OBJ_BASE.unpack_from(buf, int(p[j]))[3]
            hsize = _OBJ_BASE.unpack_from(buf, int(p[j]))[1]
            avail = (ext_off or osize) - hsize - _CAN_FD64.size
            payload = bytes(buf[start : start + min(valid, avail)]).ljust(valid, b"\x00")
            fl = (FLAG_FD if fdf & 0x1000 else 0) | (FLAG_BRS if fdf & 0x2000 else 0)
            fl |= (FLAG_ESI if fdf & 0x4000 else 0) | (FLAG_REMOTE if fdf & 0x10 else 0)
            fl |= FLAG_TX if direction else 0
            dl = dlc2len(dlc_code)  # codes above 15 mean 64, as python-can reads them
        else:
            ch, _l, _f, _e, _p, dlc_code, _fl, cid, _fx, payload = _CAN_ERR.unpack_from(buf, off)
            payload = payload[:dlc_code]
            fl = FLAG_ERROR
            dl = dlc_code
        ids[j] = cid & 0x1FFFFFFF
        fl |= FLAG_EXTENDED if cid & 0x80000000 else 0
        flags[j] = fl
        length[j] = dl if fl & FLAG_REMOTE else len(payload)
        chan[j] = ch - 1
        if not fl & FLAG_REMOTE:
            data[j, : min(8, len(payload))] = np.frombuffer(payload[:8], np.uint8)
            if len(payload) > 8:
                ext[j] = bytes(payload[8:])
    return [(ts, ids, flags, length, chan, data, ext)], consumed


def _read_blf(
    path: Path,
    channel_index: Callable[[Any], int],
    size: int,
    progress: Callable[[int, float], None] | None,
    cancel: threading.Event | None,
    batch_frames: int,
) -> Iterator[FrameBatch]:
    from can.io.blf import FILE_HEADER_STRUCT, systemtime_to_timestamp

    parts: list[tuple[Any, ...]] = []
    pending = 0
    total = 0

    def flush() -> FrameBatch:
        ts = np.concatenate([q[0] for q in parts])
        chans = np.concatenate([q[4] for q in parts])
        uniq, inverse = np.unique(chans, return_inverse=True)
        lut = np.array([channel_index(int(c)) for c in uniq], np.uint8)
        ext: dict[int, bytes] = {}
        offset = 0
        for q in parts:
            for k, tail in q[6].items():
                ext[offset + k] = tail
            offset += q[0].shape[0]
        return FrameBatch(
            ts,
            np.concatenate([q[1] for q in parts]),
            np.concatenate([q[2] for q in parts]),
            np.concatenate([q[3] for q in parts]),
            lut[inverse.reshape(-1)],
            np.concatenate([q[5] for q in parts]),
            ext,
        )

    try:
        fh = path.open("rb")
    except OSError as exc:
        raise TraceFileError(f"{path}: cannot open: {exc}") from exc
    with fh:
        head = fh.read(FILE_HEADER_STRUCT.size)
        try:
            header = FILE_HEADER_STRUCT.unpack(head)
        except struct.error:
            header = (b"",)
        if header[0] != b"LOGG":
            raise TraceFileError(f"{path}: not a BLF file", hint="the file header is not LOGG")
        start_ts = systemtime_to_timestamp(header[14:22])
        if header[1] < FILE_HEADER_STRUCT.size:
            raise TraceFileError(
                f"{path}: damaged BLF header (size {header[1]})", hint="the file is damaged"
            )
        fh.read(header[1] - FILE_HEADER_STRUCT.size)
        tail = b""
        while True:
            if cancel is not None and cancel.is_set():
                return
            base = fh.read(_OBJ_BASE.size)
            if len(base) < _OBJ_BASE.size:
                break
            sig, _hs, _hv, osize, otype = _OBJ_BASE.unpack(base)
            if sig != b"LOBJ" or osize < _OBJ_BASE.size:
                raise TraceFileError(f"{path}: damaged BLF object at byte {fh.tell() - 16}")
            obj = fh.read(osize - _OBJ_BASE.size)
            fh.read(osize % 4)
            if otype != _T_CONTAINER:
                continue
            if len(obj) < _LOG_CONTAINER.size:
                raise TraceFileError(
                    f"{path}: damaged BLF container at byte {fh.tell() - len(obj)} "
                    f"({len(obj)} bytes, header needs {_LOG_CONTAINER.size})",
                    hint="the file is truncated or damaged",
                )
            method, _ = _LOG_CONTAINER.unpack_from(obj)
            payload = obj[_LOG_CONTAINER.size :]
            if method == 2:
                try:
                    inflater = zlib.decompressobj()
                    # Writers use containers of ~128 KiB; a bomb must not exhaust memory.
                    payload = inflater.decompress(payload, BLF_CONTAINER_MAX_BYTES)
                except zlib.error as exc:
                    raise TraceFileError(f"{path}: damaged BLF container: {exc}") from exc
                if inflater.unconsumed_tail:
                    raise TraceFileError(
                        f"{path}: BLF container inflates beyond {BLF_CONTAINER_MAX_BYTES:,} bytes",
                        hint="the file is damaged or hostile",
                    )
            elif method != 0:
                log.warning("%s: unknown BLF compression %d skipped", path, method)
                continue
            buf = tail + payload if tail else payload
            new_parts, consumed = _parse_blf_objects(buf, start_ts)
            tail = buf[consumed:]
            for part in new_parts:
                parts.append(part)
                pending += part[0].shape[0]
            if pending >= batch_frames:
                total += pending
                yield flush()
                parts.clear()
                pending = 0
                if progress is not None:
                    progress(total, min(fh.tell() / size, 1.0) if size else 0.0)
    if pending:
        total += pending
        yield flush()
        if progress is not None:
            progress(total, 1.0)


def _file_position(reader: Any) -> int:
    fh = getattr(reader, "file", None)
    try:
        return int(fh.tell()) if fh is not None else 0
    except (OSError, ValueError, AttributeError):
        return 0


@dataclass(frozen=True)
class FormatCapability:
    """What one log format holds when read back with python-can's reader (tested per format).

    `left_out` kinds are frames the format cannot hold at all (they are not written);
    `not_kept` are properties that are written but do not come back (direction, channel, a
    remote frame's DLC).
    """

    suffix: str
    fd: bool = True
    remote: bool = True
    error: bool = True
    direction: bool = True
    channels: bool = True
    remote_dlc: bool = True
    error_channel: bool = True

    def summary(self) -> str:
        """One line for dialogs and `trace info`: what this format leaves out or loses."""
        missing = [
            name
            for name, ok in (
                ("CAN FD frames", self.fd),
                ("remote frames", self.remote),
                ("error frames", self.error),
                ("direction (Rx/Tx)", self.direction),
                ("channels", self.channels),
                ("the DLC of remote frames", self.remote_dlc),
                ("the channel of error frames", self.error_channel),
            )
            if not ok
        ]
        return "holds every frame" if not missing else "cannot hold " + ", ".join(missing)


#: Per suffix, measured against python-can 4.6's readers (tests/unit/test_tracefile_formats.py
#: round-trips classic, FD, BRS, ESI, remote and error frames, both directions, two channels).
CAPABILITIES: dict[str, FormatCapability] = {
    ".asc": FormatCapability(".asc"),
    ".blf": FormatCapability(".blf"),
    ".mf4": FormatCapability(".mf4"),
    # Our own TRC 2.1 writer (python-can's skips FD and remote frames); python-can's reader
    # ignores TRC error records ("ER"), so error frames cannot come back.
    ".trc": FormatCapability(".trc", error=False),
    # python-can's CSV: timestamp, id, extended, remote, error, dlc, data — no FD flags, no
    # direction, no channel.
    ".csv": FormatCapability(".csv", fd=False, direction=False, channels=False),
    # candump -L: remote frames are written without their DLC; error frames come back without
    # their channel.
    ".log": FormatCapability(".log", remote_dlc=False, error_channel=False),
}


def capability(path_or_suffix: Path | str) -> FormatCapability:
    """The capability of a log format, from a path or a suffix (".trc")."""
    text = str(path_or_suffix)
    suffix = text.lower() if text.startswith(".") else _check_suffix(Path(text))
    if suffix not in CAPABILITIES:
        raise TraceFileError(
            f"unsupported log format '{suffix}'", hint="use one of " + ", ".join(FORMATS)
        )
    return CAPABILITIES[suffix]


@dataclass
class WriteReport:
    """What a save wrote: `written` is the number of frames in the file.

    `left_out` counts frames the format could not hold (by kind); `not_kept` counts frames
    written without a property the format cannot store (e.g. "direction of Tx frames").
    """

    path: Path
    total: int = 0
    written: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    not_kept: dict[str, int] = field(default_factory=dict)

    @property
    def lossless(self) -> bool:
        """True when the file holds every frame with every property."""
        return not self.left_out and not self.not_kept

    def loss_text(self) -> str:
        """e.g. "left out: 2 CAN FD frames, 1 error frame; not kept: direction of 3 Tx frames"."""
        parts = []
        if self.left_out:
            parts.append("left out: " + ", ".join(_plural(n, k) for k, n in self.left_out.items()))
        if self.not_kept:
            parts.append(
                "not kept: " + ", ".join(f"{k} ({n} frames)" for k, n in self.not_kept.items())
            )
        return "; ".join(parts)

    def summary(self) -> str:
        """The line a user reads after a save: the count in the file, and any loss."""
        if self.lossless:
            return f"wrote {self.written} frames"
        return f"wrote {self.written} of {self.total} frames ({self.loss_text()})"


def _plural(n: int, kind: str) -> str:
    return f"{n} {kind}" if n != 1 else f"1 {kind[:-1] if kind.endswith('s') else kind}"


class LossyFormatError(TraceFileError):
    """The chosen format cannot hold every frame; `report` says what would be lost."""

    def __init__(self, report: WriteReport) -> None:
        super().__init__(
            f"{report.path}: {FORMATS[report.path.suffix.lower()]} cannot hold every frame "
            f"({report.loss_text()}); nothing was written",
            hint="choose a format that holds them (BLF, ASC, MF4) or allow the loss explicitly",
        )
        self.report = report


def _frame_loss(
    cap: FormatCapability, msg: can.Message, first_channel: list[Any]
) -> tuple[str | None, list[str]]:
    """(kind left out or None, properties not kept) for one frame in a format."""
    if msg.is_error_frame:
        if not cap.error:
            return "error frames", []
    elif msg.is_remote_frame:
        if not cap.remote:
            return "remote frames", []
    elif msg.is_fd and not cap.fd:
        return "CAN FD frames", []
    lost: list[str] = []
    if not cap.direction and not msg.is_rx:
        lost.append("direction of Tx frames")
    if not cap.channels:
        if not first_channel:
            first_channel.append(msg.channel)
        elif msg.channel != first_channel[0]:
            lost.append("channel of frames on other channels")
    if not cap.remote_dlc and msg.is_remote_frame and msg.dlc:
        lost.append("DLC of remote frames")
    if not cap.error_channel and msg.is_error_frame and msg.channel not in (None, 0):
        lost.append("channel of error frames")
    return None, lost


def scan_loss(path: Path | str, messages: Iterable[can.Message]) -> WriteReport:
    """What saving `messages` to `path`'s format would leave out, without writing anything."""
    path = Path(path)
    cap = capability(path)
    report = WriteReport(path)
    first: list[Any] = []
    for msg in messages:
        report.total += 1
        kind, lost = _frame_loss(cap, msg, first)
        if kind is not None:
            report.left_out[kind] = report.left_out.get(kind, 0) + 1
            continue
        report.written += 1
        for what in lost:
            report.not_kept[what] = report.not_kept.get(what, 0) + 1
    return report


def scan_batch_loss(
    path: Path | str, batch: FrameBatch, channel_names: list[str] | None = None
) -> WriteReport:
    """`scan_loss` for a column batch (vectorised: cheap enough for the GUI thread).

    `channel_names` only matters for formats without channels (any second channel is lost).
    """
    del channel_names
    path = Path(path)
    cap = capability(path)
    report = WriteReport(path, total=len(batch))
    flags = batch.flags
    err = (flags & FLAG_ERROR) != 0
    rtr = ~err & ((flags & FLAG_REMOTE) != 0)
    fd = ~err & ~rtr & ((flags & FLAG_FD) != 0)
    kept = np.ones(len(batch), np.bool_)
    for kind, mask, ok in (
        ("error frames", err, cap.error),
        ("remote frames", rtr, cap.remote),
        ("CAN FD frames", fd, cap.fd),
    ):
        n = int(mask.sum())
        if n and not ok:
            report.left_out[kind] = n
            kept &= ~mask
    report.written = int(kept.sum())
    if not cap.direction:
        n = int((kept & ((flags & FLAG_TX) != 0)).sum())
        if n:
            report.not_kept["direction of Tx frames"] = n
    if not cap.channels and report.written:
        chans = batch.channel[kept]
        n = int((chans != chans[0]).sum())
        if n:
            report.not_kept["channel of frames on other channels"] = n
    if not cap.remote_dlc:
        n = int((kept & rtr & (batch.length > 0)).sum())
        if n:
            report.not_kept["DLC of remote frames"] = n
    if not cap.error_channel:
        n = int((kept & err & (batch.channel != 0)).sum())
        if n:
            report.not_kept["channel of error frames"] = n
    return report


class TrcWriter:
    """PEAK TRC 2.1 writer that also writes CAN FD (FD/FB/FE/BI) and remote (RR) frames.

    python-can's TRCWriter skips FD, remote and error frames; this writer uses the record types
    of the TRC 2.1 specification that python-can's TRCReader reads back. Error frames cannot be
    read back by that reader, so `write_log` leaves them out (and says so).
    """

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "w", encoding="ascii", newline="\r\n")  # noqa: SIM115
        self._start: float | None = None
        self._n = 0
        self._path = path

    def _header(self, start: float) -> None:
        epoch = _dt.datetime(1899, 12, 30, tzinfo=_dt.UTC).timestamp()
        days = (start - epoch) / 86400.0
        self._fh.write(
            ";$FILEVERSION=2.1\n"
            f";$STARTTIME={days:.12f}\n"
            ";$COLUMNS=N,O,T,B,I,d,R,L,D\n"
            ";\n"
            f";   {self._path.name} written by FOTA Studio\n"
            ";   Message Number / Time Offset [ms] / Type / Bus / ID [hex] / Rx|Tx / Reserved /"
            " DLC / Data [hex]\n"
        )

    def on_message_received(self, msg: can.Message) -> None:
        """Write one frame (not an error frame: the caller filters those)."""
        if self._start is None:
            self._start = float(msg.timestamp)
            self._header(self._start)
        self._n += 1
        if msg.is_remote_frame:
            kind = "RR"
        elif msg.is_fd:
            kind = {(False, False): "FD", (True, False): "FB", (True, True): "FE"}.get(
                (bool(msg.bitrate_switch), bool(msg.error_state_indicator)), "BI"
            )
        else:
            kind = "DT"
        ident = f"{msg.arbitration_id:08X}" if msg.is_extended_id else f"{msg.arbitration_id:04X}"
        channel = _channel_number(msg.channel)
        if msg.is_remote_frame:
            dlc = int(msg.dlc)
            data = ""
        else:
            payload = bytes(msg.data)
            dlc = len2dlc(len(payload)) if msg.is_fd else len(payload)
            data = " ".join(f"{b:02X}" for b in payload)
        offset_ms = (float(msg.timestamp) - self._start) * 1000.0
        direction = "Rx" if msg.is_rx else "Tx"
        self._fh.write(
            f"{self._n:>7} {offset_ms:13.3f} {kind} {channel:>2} {ident:>8} {direction} - "
            f"{dlc:>2} {data}".rstrip()
            + "\n"
        )

    def stop(self) -> None:
        """Close the file (an empty trace still gets a header)."""
        if self._start is None:
            self._header(_time.time())
        self._fh.close()


def _channel_number(channel: Any) -> int:
    """TRC bus numbers start at 1; python-can channels are 0-based ints or names."""
    if isinstance(channel, int):
        return channel + 1
    if isinstance(channel, str):
        digits = "".join(ch for ch in channel if ch.isdigit())
        if digits:
            return int(digits) + (0 if channel.upper().startswith("CAN") else 1)
    return 1


def write_log(
    path: Path | str,
    messages: Iterable[can.Message],
    *,
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    allow_loss: bool = False,
) -> WriteReport:
    """Write messages to a log file (format from the suffix); returns what was written.

    Frames the format cannot hold (see `CAPABILITIES`) are never silently dropped: without
    `allow_loss` a LossyFormatError says what would be lost and nothing is written; with it,
    they are left out and the report counts them. `WriteReport.written` is the number of frames
    in the file. The frames go to a temporary file next to `path` that replaces `path` only
    when the whole log is written: a failed or cancelled save never leaves a half file, and an
    existing file at `path` stays as it was. When `cancel` is set during the write, nothing is
    written (check `cancel.is_set()`). Raises TraceFileError when the file cannot be written.
    """
    path = Path(path)
    suffix = _check_suffix(path)
    cap = CAPABILITIES[suffix]
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    report = WriteReport(path)
    first: list[Any] = []
    if suffix == ".mf4":
        ensure_mf4()
    try:
        writer: Any = TrcWriter(tmp) if suffix == ".trc" else can.Logger(str(tmp))
    except Exception as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TraceFileError(
            f"{path}: cannot create {FORMATS[suffix]} file: {exc}",
            hint="check the folder is writable (MF4 also needs asammdf installed)",
        ) from exc
    done = False
    try:
        failure: TraceFileError | None = None
        try:
            for msg in messages:
                if cancel is not None and cancel.is_set():
                    break
                report.total += 1
                kind, lost = _frame_loss(cap, msg, first)
                if kind is not None:
                    report.left_out[kind] = report.left_out.get(kind, 0) + 1
                    continue
                for what in lost:
                    report.not_kept[what] = report.not_kept.get(what, 0) + 1
                writer.on_message_received(msg)
                report.written += 1
                if progress is not None and report.written % 50_000 == 0:
                    progress(report.written)
        except Exception as exc:
            failure = TraceFileError(f"{path}: write failed after {report.written} frames: {exc}")
            failure.__cause__ = exc
        try:
            writer.stop()
        except Exception as exc:  # the format's trailer/index could not be written
            if failure is None:
                failure = TraceFileError(f"{path}: cannot finish the file: {exc}")
                failure.__cause__ = exc
        if failure is not None:
            raise failure
        if cancel is not None and cancel.is_set():
            return report  # nothing written: the partial file goes in `finally`
        if not report.lossless and not allow_loss:
            raise LossyFormatError(report)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise TraceFileError(
                f"{path}: cannot replace the file: {exc}",
                hint="close the file in other programs and check the folder is writable",
            ) from exc
        done = True
        return report
    finally:
        if not done:
            with contextlib.suppress(OSError):
                tmp.unlink()


class RotatingRecorder(can.Listener):
    """Records live frames to `base_path` with rotation when a file reaches `max_bytes`.

    Thread-safe: several Notifier threads (one per channel) may call `on_message_received`.
    """

    def __init__(self, base_path: Path | str, max_bytes: int = 100 * 1024 * 1024) -> None:
        path = Path(base_path)
        cap = CAPABILITIES[_check_suffix(path)]
        if cap.summary() != "holds every frame" or path.suffix.lower() == ".mf4":
            # Live frames cannot be left out after the fact: record only in formats that hold
            # every frame (python-can's rotating logger has no MF4 size rotation).
            raise TraceFileError(
                f"{path}: cannot record to {FORMATS[path.suffix.lower()]}: it {cap.summary()}",
                hint="record to BLF or ASC; convert later with `fota-studio trace convert`",
            )
        self._lock = threading.Lock()
        try:
            self._logger = can.SizedRotatingLogger(str(path), max_bytes=max_bytes)
        except Exception as exc:
            raise TraceFileError(f"{path}: cannot start recording: {exc}") from exc
        self.frames = 0
        self._stopped = False

    def on_message_received(self, msg: can.Message) -> None:
        """Write one frame (Notifier thread)."""
        with self._lock:
            if not self._stopped:
                self._logger.on_message_received(msg)
                self.frames += 1

    def stop(self) -> None:
        """Flush and close the current file (idempotent)."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._logger.stop()
