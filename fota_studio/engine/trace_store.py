"""Columnar, bounded store of CAN frames for the live trace (no Python object per frame).

Frames live in fixed-size chunks of numpy columns: timestamp (float64), arbitration id
(uint32), flags (uint16), length (uint8), channel index (uint8) and 8 data bytes (uint8); the
bytes 9..64 of CAN FD frames go to a per-chunk side pool addressed by an int32 slot column, so
a classic frame costs 28 bytes. Capacity is a setting; when full, the OLDEST chunk is dropped
and `dropped` grows. Rows are addressed by an absolute sequence number (`seq`): row
`seq - first_seq` of the store; sequence numbers never change when old chunks are dropped.
Vectorised filters return numpy index arrays of sequence numbers.

Threads: not thread-safe by itself. One thread (the GUI timer, or a bench/CLI loop) owns it and
calls `append_batch`; capture threads hand frames over through `TraceCapture` (staging + lock).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import can
import numpy as np
import numpy.typing as npt

from fota_studio.protocols.decode.frames import (
    FLAG_BRS,
    FLAG_ERROR,
    FLAG_ESI,
    FLAG_EXTENDED,
    FLAG_FD,
    FLAG_REMOTE,
    FLAG_TX,
    FrameBatch,
    FrameRecord,
    IntArray,
    message_flags,
)

__all__ = [
    "CHUNK_FRAMES",
    "FLAG_BRS",
    "FLAG_ERROR",
    "FLAG_ESI",
    "FLAG_EXTENDED",
    "FLAG_FD",
    "FLAG_REMOTE",
    "FLAG_TX",
    "FrameBatch",
    "FrameRecord",
    "TraceFilter",
    "TraceStore",
    "message_flags",
    "parse_id_filter",
]

CHUNK_FRAMES = 65_536
"""Frames per chunk; the unit of trimming (one beginRemoveRows per chunk in the model)."""

DEFAULT_CAPACITY_FRAMES = 5_000_000


class _Chunk:
    """One fixed-size chunk of columns plus its CAN FD side pool."""

    __slots__ = (
        "channel",
        "data",
        "delta",
        "fd_pool",
        "fd_slot",
        "fill",
        "flags",
        "ids",
        "length",
        "ts",
    )

    def __init__(self, size: int) -> None:
        self.ts = np.zeros(size, np.float64)
        self.ids = np.zeros(size, np.uint32)
        self.flags = np.zeros(size, np.uint16)
        self.length = np.zeros(size, np.uint8)
        self.channel = np.zeros(size, np.uint8)
        self.data = np.zeros((size, 8), np.uint8)
        self.fd_slot = np.full(size, -1, np.int32)
        self.delta = np.zeros(size, np.float32)  # s since the previous frame of this ID
        self.fd_pool: list[bytes] = []  # bytes 8.. of long FD frames; rare, so a list is fine
        self.fill = 0

    def nbytes(self) -> int:
        cols = (
            self.ts,
            self.ids,
            self.flags,
            self.length,
            self.channel,
            self.data,
            self.fd_slot,
            self.delta,
        )
        return sum(int(c.nbytes) for c in cols) + sum(len(b) for b in self.fd_pool)


class TraceStore:
    """Bounded columnar frame store; see the module docstring for threading."""

    def __init__(
        self, capacity_frames: int = DEFAULT_CAPACITY_FRAMES, chunk_frames: int = CHUNK_FRAMES
    ) -> None:
        self.chunk_frames = chunk_frames
        """Frames per chunk (tests use small chunks to exercise trimming cheaply)."""
        self._chunks: list[_Chunk] = []
        self._last_ts_by_id: dict[int, float] = {}
        self._max_chunks = max(2, -(-capacity_frames // self.chunk_frames))
        self.capacity_frames = self._max_chunks * self.chunk_frames
        self.first_seq = 0
        """Sequence number of the oldest stored frame (= frames dropped so far)."""
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
    def dropped(self) -> int:
        """Frames dropped because the store was full (oldest first)."""
        return self.first_seq

    def nbytes(self) -> int:
        """Memory held by the columns (including preallocated free slots)."""
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
        if not self._chunks:
            free = self.capacity_frames
        else:
            free = (self._max_chunks - len(self._chunks)) * self.chunk_frames + (
                self.chunk_frames - self._chunks[-1].fill
            )
        if incoming <= free:
            return 0
        need_chunks = -(-(incoming - free) // self.chunk_frames)
        return min(need_chunks * self.chunk_frames, len(self))

    def drop_oldest(self, frames: int) -> int:
        """Drop whole oldest chunks covering at least `frames` frames; return frames dropped."""
        dropped = 0
        while dropped < frames and self._chunks:
            chunk = self._chunks.pop(0)
            dropped += chunk.fill
        self.first_seq += dropped
        return dropped

    def clear(self) -> None:
        """Forget all frames (sequence numbers continue)."""
        self.first_seq = self.end_seq
        self._chunks.clear()
        self._last_ts_by_id.clear()

    # -- append -----------------------------------------------------------------------------
    def append_batch(self, batch: FrameBatch) -> int:
        """Append a batch (dropping the oldest chunks if needed); return frames dropped."""
        n = len(batch)
        if n == 0:
            return 0
        if n > self.capacity_frames:  # keep only the newest frames of a huge batch
            skip = n - self.capacity_frames
            batch = _slice_batch(batch, skip, n)
            n = len(batch)
            self.first_seq += skip
        dropped = self.drop_oldest(self.frames_to_drop(n))
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
            if batch.ext:
                for row, tail in batch.ext.items():
                    if pos <= row < pos + take:
                        chunk.fd_slot[a + row - pos] = len(chunk.fd_pool)
                        chunk.fd_pool.append(tail)
            chunk.fill = b
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
        return self.append_batch(FrameBatch.from_messages(messages, channel_index))

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

    def record(self, seq: int) -> FrameRecord:
        """One frame as a FrameRecord."""
        chunk, i = self._locate(seq)
        length = int(chunk.length[i])
        flags = int(chunk.flags[i])
        data = b"" if flags & FLAG_REMOTE else chunk.data[i, : min(8, length)].tobytes()
        slot = int(chunk.fd_slot[i])
        if slot >= 0:
            data += chunk.fd_pool[slot]
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

    def column(
        self, name: str, start_seq: int | None = None, end_seq: int | None = None
    ) -> npt.NDArray[np.generic]:
        """A column (`ts`, `ids`, `flags`, `length`, `channel`, `delta`, or `data`: the first
        8 bytes, shape (n, 8)) over [start, end)."""
        start = max(self.first_seq if start_seq is None else start_seq, self.first_seq)
        end = min(self.end_seq if end_seq is None else end_seq, self.end_seq)
        if end <= start:
            return _empty(name)
        r0, r1 = start - self.first_seq, end - self.first_seq
        parts = []
        for ci in range(r0 // self.chunk_frames, (r1 - 1) // self.chunk_frames + 1):
            chunk = self._chunks[ci]
            lo = max(r0 - ci * self.chunk_frames, 0)
            hi = min(r1 - ci * self.chunk_frames, chunk.fill)
            parts.append(getattr(chunk, name)[lo:hi])
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def batch(self, seqs: npt.NDArray[np.int64]) -> FrameBatch:
        """The frames at `seqs` as a FrameBatch (for saving a filtered selection)."""
        rows = np.asarray(seqs, np.int64) - self.first_seq
        n = len(rows)
        out = FrameBatch(
            np.empty(n, np.float64),
            np.empty(n, np.uint32),
            np.empty(n, np.uint16),
            np.empty(n, np.uint8),
            np.empty(n, np.uint8),
            np.empty((n, 8), np.uint8),
        )
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
            slots = chunk.fd_slot[idx]
            first = sel.start if isinstance(sel, slice) else 0
            for j in np.nonzero(slots >= 0)[0]:
                row = first + int(j) if isinstance(sel, slice) else int(sel[j])
                out.ext[row] = chunk.fd_pool[int(slots[j])]
        return out

    # -- filtering --------------------------------------------------------------------------
    def filter(
        self, flt: TraceFilter, start_seq: int | None = None, end_seq: int | None = None
    ) -> IntArray:
        """Sequence numbers in [start_seq, end_seq) that pass `flt` (vectorised)."""
        start = max(self.first_seq if start_seq is None else start_seq, self.first_seq)
        end = min(self.end_seq if end_seq is None else end_seq, self.end_seq)
        if end <= start:
            return np.empty(0, np.int64)
        out: list[IntArray] = []
        r0, r1 = start - self.first_seq, end - self.first_seq
        for ci in range(r0 // self.chunk_frames, (r1 - 1) // self.chunk_frames + 1):
            chunk = self._chunks[ci]
            lo = max(r0 - ci * self.chunk_frames, 0)
            hi = min(r1 - ci * self.chunk_frames, chunk.fill)
            mask = flt.mask(chunk.ids[lo:hi], chunk.flags[lo:hi], chunk.channel[lo:hi])
            base = self.first_seq + ci * self.chunk_frames + lo
            out.append(np.nonzero(mask)[0].astype(np.int64) + base)
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


def _slice_batch(batch: FrameBatch, a: int, b: int) -> FrameBatch:
    ext = {k - a: v for k, v in batch.ext.items() if a <= k < b}
    return FrameBatch(
        batch.timestamp[a:b],
        batch.ids[a:b],
        batch.flags[a:b],
        batch.length[a:b],
        batch.channel[a:b],
        batch.data[a:b],
        ext,
    )


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

    def mask(
        self,
        ids: npt.NDArray[np.uint32],
        flags: npt.NDArray[np.uint16],
        channel: npt.NDArray[np.uint8],
    ) -> npt.NDArray[np.bool_]:
        """Boolean mask of frames passing the filter."""
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
