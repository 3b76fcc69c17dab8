"""Columnar CAN frame batches: the one frame type of the trace (capture, store, log files).

A `FrameBatch` holds frames as numpy columns (timestamp, id, flags, length, channel, 8 data
bytes, plus a dict of CAN FD tails beyond byte 8). It is pure data with no CAN library behind
it, so capture (engine), log files (infra) and decoders (protocols) share one definition; the
python-can conversions live in `protocols/decode/frames.py`; `id_text`/`type_text` are the one
wording of an identifier and a frame type (trace table, exports). A batch is built on one thread
and handed over whole; nothing here is thread-safe by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# Flag bits of the `flags` column.
FLAG_EXTENDED = 0x0001
FLAG_REMOTE = 0x0002
FLAG_ERROR = 0x0004
FLAG_FD = 0x0008
FLAG_BRS = 0x0010
FLAG_ESI = 0x0020
FLAG_TX = 0x0040

IntArray = npt.NDArray[np.int64]


@dataclass(slots=True, eq=False)
class FrameBatch:
    """Column arrays of a batch of frames (the unit handed from capture/files to the store)."""

    timestamp: npt.NDArray[np.float64]
    ids: npt.NDArray[np.uint32]
    flags: npt.NDArray[np.uint16]
    length: npt.NDArray[np.uint8]
    channel: npt.NDArray[np.uint8]
    data: npt.NDArray[np.uint8]  # shape (n, 8)
    ext: dict[int, bytes] = field(default_factory=dict)  # batch row -> bytes 8..63 of an FD frame
    ext_len: int = field(init=False)

    def __post_init__(self) -> None:
        # A batch never shares an empty tail dict with its caller (nor keeps a None).
        self.ext = self.ext or {}
        self.ext_len = len(self.ext)

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])

    @classmethod
    def empty(cls, n: int = 0) -> FrameBatch:
        """A batch of `n` zeroed frames (to fill column by column)."""
        return cls(
            np.zeros(n, np.float64),
            np.zeros(n, np.uint32),
            np.zeros(n, np.uint16),
            np.zeros(n, np.uint8),
            np.zeros(n, np.uint8),
            np.zeros((n, 8), np.uint8),
        )

    def slice(self, start: int, stop: int | None = None) -> FrameBatch:
        """Rows [start, stop) as a batch of their own (views, no copy)."""
        stop = len(self) if stop is None else stop
        return FrameBatch(
            self.timestamp[start:stop],
            self.ids[start:stop],
            self.flags[start:stop],
            self.length[start:stop],
            self.channel[start:stop],
            self.data[start:stop],
            {row - start: tail for row, tail in self.ext.items() if start <= row < stop},
        )

    def tail(self, start: int) -> FrameBatch:
        """Rows `start`.. of this batch (views, no copy)."""
        return self.slice(start)

    def payload(self, row: int) -> bytes:
        """The data bytes of one row (empty for remote frames), FD tail included."""
        if int(self.flags[row]) & FLAG_REMOTE:
            return b""
        length = int(self.length[row])
        return self.data[row, : min(8, length)].tobytes() + self.ext.get(row, b"")


def id_text(can_id: int, extended: bool) -> str:
    """`7E8` for 11-bit, `18DA11F1x` for 29-bit identifiers (the trailing x marks 29-bit)."""
    return f"{can_id:08X}x" if extended else f"{can_id:03X}"


def type_text(flags: int) -> str:
    """data / remote / error / FD, with BRS and ESI."""
    if flags & FLAG_ERROR:
        return "error"
    if flags & FLAG_REMOTE:
        return "remote"
    if flags & FLAG_FD:
        return "FD" + (" BRS" if flags & FLAG_BRS else "") + (" ESI" if flags & FLAG_ESI else "")
    return "data"
