"""Columnar frame store of one trace document (the live capture, or one opened log file).

Frames live in fixed-size chunks of numpy columns: timestamp (float64), arbitration id
(uint32), flags (uint16), length (uint8), channel index (uint8), 8 data bytes (uint8) and the
time since the previous frame of the same ID (float32): 28 bytes a classic frame. Bytes 9..64
of CAN FD frames go to a per-chunk dict (rare). A live store has a capacity (a setting the
panel states): when full, the OLDEST chunk is dropped and `dropped` grows. A file document's
store has no capacity (`capacity_frames=None`): a 20 M-frame log keeps all 20 M frames.
Rows are addressed by an absolute sequence number (`seq`); sequence numbers never change when
old chunks are dropped or the store is cleared (`cleared` counts those, `dropped` does not).

`segments(start, end)` returns zero-copy views of the stored rows: filled rows of a chunk are
never written again and a dropped chunk stays alive while a view holds it, so a worker thread
may filter or search the views while the owning thread keeps appending and trimming.

Threads: one thread owns a store and calls `append_batch` / `clear` (the GUI timer for the live
capture, a loader worker for a file before it is handed to the GUI); other threads only use
views taken by the owner (`segments`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import can
import numpy as np
import numpy.typing as npt

from fota_studio.protocols.decode.frames import (
    FLAG_ERROR,
    FLAG_EXTENDED,
    FLAG_FD,
    FLAG_REMOTE,
    FLAG_TX,
    ByteColumn,
    FlagColumn,
    FrameBatch,
    FrameRecord,
    IdColumn,
    IntArray,
    RowMask,
    batch_from_messages,
    message_flags,
)

__all__ = [
    "CHUNK_FRAMES",
    "DEFAULT_CAPACITY_FRAMES",
    "FLAG_ERROR",
    "FLAG_EXTENDED",
    "FLAG_FD",
    "FLAG_REMOTE",
    "FLAG_TX",
    "FrameBatch",
    "FrameRecord",
    "Segment",
    "TraceFilter",
    "TraceStore",
    "filter_segments",
    "message_flags",
    "parse_id_filter",
]

CHUNK_FRAMES = 65_536
"""Frames per chunk; the unit of trimming (one beginRemoveRows per chunk in the model)."""

DEFAULT_CAPACITY_FRAMES = 5_000_000
"""Frames the LIVE capture keeps (the newest; the panel's status line states it). File
documents have no limit."""


class _Chunk:
    """One fixed-size chunk of columns plus its CAN FD tails."""

    __slots__ = ("channel", "data", "delta", "fd", "fill", "flags", "ids", "length", "ts")

    def __init__(self, size: int) -> None:
        self.ts = np.zeros(size, np.float64)
        self.ids = np.zeros(size, np.uint32)
        self.flags = np.zeros(size, np.uint16)
        self.length = np.zeros(size, np.uint8)
        self.channel = np.zeros(size, np.uint8)
        self.data = np.zeros((size, 8), np.uint8)
        self.delta = np.zeros(size, np.float32)  # s since the previous frame of this ID
        self.fd: dict[int, bytes] = {}  # row -> bytes 8.. of a long FD frame (rare)
        self.fill = 0

    def batch(self) -> FrameBatch:
        """All rows of the chunk as a batch (views of the columns, no copy)."""
        return FrameBatch(
            self.ts, self.ids, self.flags, self.length, self.channel, self.data, self.fd
        )

    def nbytes(self) -> int:
        cols = (self.ts, self.ids, self.flags, self.length, self.channel, self.data, self.delta)
        return sum(int(c.nbytes) for c in cols) + sum(len(b) + 64 for b in self.fd.values())


@dataclass(frozen=True)
class Segment:
    """Zero-copy views of a run of stored rows: `batch` row i is sequence number `first + i`;
    `delta` is the per-ID period column of those rows."""

    first: int
    batch: FrameBatch
    delta: npt.NDArray[np.float32]


class TraceStore:
    """Columnar frame store; see the module docstring for capacity and threading."""

    def __init__(
        self,
        capacity_frames: int | None = DEFAULT_CAPACITY_FRAMES,
        chunk_frames: int = CHUNK_FRAMES,
    ) -> None:
        self.chunk_frames = chunk_frames
        """Frames per chunk (tests use small chunks to exercise trimming cheaply)."""
        self._chunks: list[_Chunk] = []
        self._last_ts_by_id: dict[int, float] = {}
        if capacity_frames is None:
            self._max_chunks: int | None = None
            self.capacity_frames: int | None = None
        else:
            self._max_chunks = max(2, -(-capacity_frames // self.chunk_frames))
            self.capacity_frames = self._max_chunks * self.chunk_frames
        self.first_seq = 0
        """Sequence number of the oldest stored frame."""
        self.dropped = 0
        """Frames dropped because the store was full (oldest first); never those cleared."""
        self.cleared = 0
        """Frames forgotten by `clear()` (the user asked; not a loss)."""
        self.channel_names: list[str] = []

    # -- size -------------------------------------------------------------------------------
    def __len__(self) -> int:
        if not self._chunks:
            return 0
        return (len(self._chunks) - 1) * self.chunk_frames + self._chunks[-1].fill

    @property
    def end_seq(self) -> int:
        """One past the newest frame's sequence number (= frames ever appended)."""
        return self.first_seq + len(self)

    @property
    def bounded(self) -> bool:
        """True when the store keeps only the newest `capacity_frames` frames."""
        return self._max_chunks is not None

    def nbytes(self) -> int:
        """Memory held by the columns (including preallocated free slots of the last chunk)."""
        return sum(c.nbytes() for c in self._chunks)

    def channel_index(self, name: str) -> int:
        """The index of a channel name in the `channel` column (added when new, max 256)."""
        try:
            return self.channel_names.index(name)
        except ValueError:
            if len(self.channel_names) >= 256:
                return 255
            self.channel_names.append(name)
            return len(self.channel_names) - 1

    # -- trimming ---------------------------------------------------------------------------
    def frames_to_drop(self, incoming: int) -> int:
        """How many of the oldest frames `append_batch(incoming frames)` will drop."""
        if self._max_chunks is None:
            return 0
        if not self._chunks:
            free = self._max_chunks * self.chunk_frames
        else:
            free = (self._max_chunks - len(self._chunks)) * self.chunk_frames + (
                self.chunk_frames - self._chunks[-1].fill
            )
        if incoming <= free:
            return 0
        need_chunks = -(-(incoming - free) // self.chunk_frames)
        return min(need_chunks * self.chunk_frames, len(self))

    def _drop_oldest(self, frames: int) -> int:
        """Drop whole oldest chunks covering at least `frames` frames; return frames dropped."""
        gone = 0
        while gone < frames and self._chunks:
            gone += self._chunks.pop(0).fill
        self.first_seq += gone
        self.dropped += gone
        return gone

    def clear(self) -> None:
        """Forget all frames (sequence numbers continue; counted in `cleared`, not `dropped`)."""
        self.cleared += len(self)
        self.first_seq = self.end_seq
        self._chunks.clear()
        self._last_ts_by_id.clear()

    # -- append -----------------------------------------------------------------------------
    def append_batch(self, batch: FrameBatch) -> int:
        """Append a batch (a bounded store drops its oldest chunks if needed); return frames
        dropped."""
        n = len(batch)
        if n == 0:
            return 0
        skipped = 0
        cap = self.capacity_frames
        if cap is not None and n > cap:  # keep only the newest frames of a huge batch
            skipped = n - cap
            batch = batch.slice(skipped)
            n = len(batch)
            self.first_seq += skipped
            self.dropped += skipped
        dropped = self._drop_oldest(self.frames_to_drop(n)) + skipped
        delta = self._deltas(batch)
        pos = 0
        while pos < n:
            if not self._chunks or self._chunks[-1].fill == self.chunk_frames:
                self._chunks.append(_Chunk(self.chunk_frames))
            chunk = self._chunks[-1]
            take = min(n - pos, self.chunk_frames - chunk.fill)
            a, b = chunk.fill, chunk.fill + take
            chunk.ts[a:b] = batch.timestamp[pos : pos + take]
            chunk.delta[a:b] = delta[pos : pos + take]
            chunk.ids[a:b] = batch.ids[pos : pos + take]
            chunk.flags[a:b] = batch.flags[pos : pos + take]
            chunk.length[a:b] = batch.length[pos : pos + take]
            chunk.channel[a:b] = batch.channel[pos : pos + take]
            chunk.data[a:b] = batch.data[pos : pos + take]
            for row, tail in batch.ext.items():
                if pos <= row < pos + take:
                    chunk.fd[a + row - pos] = tail
            chunk.fill = b  # last: a reader of views never sees a half-written row
            pos += take
        return dropped

    def _deltas(self, batch: FrameBatch) -> npt.NDArray[np.float32]:
        """Per-ID time since the previous frame of the same ID (0 for the first), vectorised:
        a stable sort by ID turns it into differences within each ID group."""
        ids = batch.ids
        ts = batch.timestamp
        order = np.argsort(ids, kind="stable")
        sids = ids[order]
        sts = ts[order]
        diff = np.empty(len(ids), np.float64)
        diff[1:] = sts[1:] - sts[:-1]
        starts = np.ones(len(ids), np.bool_)
        starts[1:] = sids[1:] != sids[:-1]
        last = self._last_ts_by_id
        first_rows = np.nonzero(starts)[0]
        ends = np.append(first_rows[1:], len(ids)) - 1
        for r, e in zip(first_rows.tolist(), ends.tolist(), strict=True):
            key = int(sids[r])
            prev = last.get(key)
            diff[r] = sts[r] - prev if prev is not None else 0.0
            last[key] = float(sts[e])
        if len(last) > 100_000:  # random 29-bit IDs (fuzzing) must not grow this forever
            last.clear()
        out = np.empty(len(ids), np.float32)
        out[order] = diff
        return out

    def append_messages(self, messages: Sequence[can.Message], channel_index: int = 0) -> int:
        """Convenience: append python-can Messages; return frames dropped."""
        return self.append_batch(batch_from_messages(messages, channel_index))

    # -- read -------------------------------------------------------------------------------
    def _locate(self, seq: int) -> tuple[_Chunk, int]:
        row = seq - self.first_seq
        if row < 0 or row >= len(self):
            raise IndexError(f"frame {seq} is not in the store ({self.first_seq}..{self.end_seq})")
        return self._chunks[row // self.chunk_frames], row % self.chunk_frames

    def delta(self, seq: int) -> float:
        """Seconds since the previous frame with the same ID (0.0 for the first one)."""
        chunk, i = self._locate(seq)
        return float(chunk.delta[i])

    def timestamp(self, seq: int) -> float:
        """Timestamp of one frame."""
        chunk, i = self._locate(seq)
        return float(chunk.ts[i])

    def record(self, seq: int) -> FrameRecord:
        """One frame as a FrameRecord."""
        chunk, i = self._locate(seq)
        length = int(chunk.length[i])
        flags = int(chunk.flags[i])
        data = b"" if flags & FLAG_REMOTE else chunk.data[i, : min(8, length)].tobytes()
        if chunk.fd and not flags & FLAG_REMOTE:
            data += chunk.fd.get(i, b"")
        return FrameRecord(
            seq=seq,
            timestamp=float(chunk.ts[i]),
            arbitration_id=int(chunk.ids[i]),
            flags=flags,
            length=length,
            channel=int(chunk.channel[i]),
            data=data,
        )

    def records(self, seqs: Iterable[int]) -> list[FrameRecord]:
        """Several frames as FrameRecords."""
        return [self.record(int(s)) for s in seqs]

    def segments(self, start_seq: int | None = None, end_seq: int | None = None) -> list[Segment]:
        """Zero-copy views of the rows [start, end), one per chunk (see module docstring)."""
        start = max(self.first_seq if start_seq is None else start_seq, self.first_seq)
        end = min(self.end_seq if end_seq is None else end_seq, self.end_seq)
        out: list[Segment] = []
        if end <= start:
            return out
        r0, r1 = start - self.first_seq, end - self.first_seq
        for ci in range(r0 // self.chunk_frames, (r1 - 1) // self.chunk_frames + 1):
            chunk = self._chunks[ci]
            lo = max(r0 - ci * self.chunk_frames, 0)
            hi = min(r1 - ci * self.chunk_frames, chunk.fill)
            out.append(
                Segment(
                    self.first_seq + ci * self.chunk_frames + lo,
                    chunk.batch().slice(lo, hi),
                    chunk.delta[lo:hi],
                )
            )
        return out

    def column(
        self, name: str, start_seq: int | None = None, end_seq: int | None = None
    ) -> npt.NDArray[np.generic]:
        """A column (`ts`, `ids`, `flags`, `length`, `channel`, `delta`, or `data`: the first
        8 bytes, shape (n, 8)) over [start, end), as a copy."""
        attr = {"ts": "timestamp"}.get(name, name)
        parts = [
            s.delta if name == "delta" else getattr(s.batch, attr)
            for s in self.segments(start_seq, end_seq)
        ]
        if not parts:
            return _empty(name)
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def batch(self, seqs: npt.NDArray[np.int64]) -> FrameBatch:
        """The frames at `seqs` (any order) as one FrameBatch (for saving a selection)."""
        rows = np.asarray(seqs, np.int64) - self.first_seq
        n = len(rows)
        out = FrameBatch.empty(n)
        ci = rows // self.chunk_frames
        runs: list[tuple[int, Any]]
        if n and bool((np.diff(rows) >= 0).all()):
            # Sorted (what filters and views give): each chunk is one contiguous run of rows.
            chunks = np.unique(ci)
            bounds = np.searchsorted(ci, np.append(chunks, chunks[-1] + 1))
            runs = [
                (int(c), slice(int(lo), int(hi)))
                for c, lo, hi in zip(chunks, bounds[:-1], bounds[1:], strict=True)
            ]
        else:
            runs = [(int(c), np.nonzero(ci == c)[0]) for c in np.unique(ci)]
        for c, sel in runs:
            chunk = self._chunks[c]
            idx: Any = rows[sel] - c * self.chunk_frames
            if isinstance(sel, slice) and int(idx[-1]) - int(idx[0]) + 1 == len(idx):
                idx = slice(int(idx[0]), int(idx[-1]) + 1)  # a plain range: copy, no gather
            out.timestamp[sel] = chunk.ts[idx]
            out.ids[sel] = chunk.ids[idx]
            out.flags[sel] = chunk.flags[idx]
            out.length[sel] = chunk.length[idx]
            out.channel[sel] = chunk.channel[idx]
            out.data[sel] = chunk.data[idx]
            if chunk.fd:
                local = np.arange(len(rows))[sel]
                for j, r in zip(
                    local.tolist(), (rows[sel] - c * self.chunk_frames).tolist(), strict=True
                ):
                    tail = chunk.fd.get(int(r))
                    if tail is not None:
                        out.ext[j] = tail
        out.ext_len = len(out.ext)
        return out

    # -- filtering --------------------------------------------------------------------------
    def filter(
        self, flt: TraceFilter, start_seq: int | None = None, end_seq: int | None = None
    ) -> IntArray:
        """Sequence numbers in [start_seq, end_seq) that pass `flt` (vectorised)."""
        return filter_segments(self.segments(start_seq, end_seq), flt.segment_mask)


def filter_segments(
    segments: Sequence[Segment],
    mask: Callable[[Segment], RowMask],
    progress: Callable[[float], None] | None = None,
) -> IntArray:
    """Sequence numbers of the rows of `segments` where `mask(segment)` is True, segment by
    segment (temporary memory: one segment's mask); `progress(fraction)` after each segment
    (a background task's report, which may raise CancelledError there)."""
    out: list[IntArray] = []
    total = sum(len(s.batch) for s in segments) or 1
    done = 0
    for seg in segments:
        hits = np.nonzero(mask(seg))[0]
        if hits.shape[0]:
            out.append(hits.astype(np.int64) + seg.first)
        done += len(seg.batch)
        if progress is not None:
            progress(done / total)
    if not out:
        return np.empty(0, np.int64)
    return out[0] if len(out) == 1 else np.concatenate(out)


def _empty(name: str) -> npt.NDArray[np.generic]:
    if name == "data":
        return np.empty((0, 8), np.uint8)
    dtypes = {
        "ts": np.float64,
        "ids": np.uint32,
        "flags": np.uint16,
        "length": np.uint8,
        "delta": np.float32,
    }
    return np.empty(0, dtypes.get(name, np.uint8))


@dataclass(frozen=True)
class TraceFilter:
    """A vectorised frame filter; empty criteria mean "everything".

    ids: exact identifiers; ranges: inclusive (low, high); masks: (id, mask) pairs matching when
    `frame_id & mask == id & mask`; an ID passes when it matches any of them (or none given).
    exclude_ids hides identifiers. direction: "rx", "tx" or None. types: subset of
    {"data", "remote", "error", "fd"}. channels: channel indexes.
    """

    ids: tuple[int, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()
    masks: tuple[tuple[int, int], ...] = ()
    exclude_ids: tuple[int, ...] = ()
    direction: str | None = None
    types: frozenset[str] = frozenset()
    channels: tuple[int, ...] = ()

    def is_empty(self) -> bool:
        """True when the filter passes every frame."""
        return not (
            self.ids
            or self.ranges
            or self.masks
            or self.exclude_ids
            or self.direction
            or self.types
            or self.channels
        )

    def id_passes(self, can_id: int) -> bool:
        """True when an identifier passes the ID criteria (for per-message or per-ID views)."""
        ids = np.asarray([can_id], np.uint32)
        return bool(self.id_mask(ids)[0])

    def id_mask(self, ids: IdColumn) -> RowMask:
        """Boolean mask of identifiers passing the ID criteria (ids, ranges, masks, excludes)."""
        n = ids.shape[0]
        keep = np.ones(n, np.bool_)
        if self.ids or self.ranges or self.masks:
            idm = np.zeros(n, np.bool_)
            if self.ids:
                idm |= np.isin(ids, np.asarray(self.ids, np.uint32))
            for lo, hi in self.ranges:
                idm |= (ids >= lo) & (ids <= hi)
            for value, m in self.masks:
                idm |= (ids & np.uint32(m)) == np.uint32(value & m)
            keep &= idm
        if self.exclude_ids:
            keep &= ~np.isin(ids, np.asarray(self.exclude_ids, np.uint32))
        return keep

    def mask(self, ids: IdColumn, flags: FlagColumn, channel: ByteColumn) -> RowMask:
        """Boolean mask of frames passing the filter."""
        n = ids.shape[0]
        keep = self.id_mask(ids)
        if self.direction == "tx":
            keep &= (flags & FLAG_TX) != 0
        elif self.direction == "rx":
            keep &= (flags & FLAG_TX) == 0
        if self.types:
            tm = np.zeros(n, np.bool_)
            special = FLAG_REMOTE | FLAG_ERROR
            if "data" in self.types:
                tm |= (flags & special) == 0
            if "remote" in self.types:
                tm |= (flags & FLAG_REMOTE) != 0
            if "error" in self.types:
                tm |= (flags & FLAG_ERROR) != 0
            if "fd" in self.types:
                tm |= (flags & FLAG_FD) != 0
            keep &= tm
        if self.channels:
            keep &= np.isin(channel, np.asarray(self.channels, np.uint8))
        return keep

    def segment_mask(self, seg: Segment) -> RowMask:
        """`mask` over one segment's columns."""
        b = seg.batch
        return self.mask(b.ids, b.flags, b.channel)


def parse_id_filter(text: str) -> TraceFilter:
    """Parse an ID filter such as `7E0 7E8, 100-1FF, 700/780, !123` (hex): single IDs,
    inclusive ranges, id/mask pairs, and `!` to hide an ID. Raises ValueError naming the token."""
    ids: list[int] = []
    ranges: list[tuple[int, int]] = []
    masks: list[tuple[int, int]] = []
    exclude: list[int] = []
    for token in text.replace(",", " ").split():
        try:
            if token.startswith("!"):
                exclude.append(int(token[1:], 16))
            elif "-" in token:
                lo, hi = token.split("-", 1)
                ranges.append((int(lo, 16), int(hi, 16)))
            elif "/" in token:
                value, mask = token.split("/", 1)
                masks.append((int(value, 16), int(mask, 16)))
            else:
                ids.append(int(token.rstrip("xX") if len(token) > 3 else token, 16))
        except ValueError:
            raise ValueError(
                f"'{token}' is not a hex ID, range (a-b), mask (id/mask) or !id"
            ) from None
    return TraceFilter(
        ids=tuple(ids), ranges=tuple(ranges), masks=tuple(masks), exclude_ids=tuple(exclude)
    )
