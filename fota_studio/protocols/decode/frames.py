"""Columnar CAN frame batches and flag bits shared by the trace store, decoders and log files.

A `FrameBatch` holds frames as numpy columns (timestamp, id, flags, length, channel, 8 data
bytes, plus a dict of CAN FD tails beyond byte 8); `FrameRecord` is one frame as plain values.
Lives in protocols/ so infra (log files) and engine (trace store) share one definition. Pure
data; a batch is built on one thread and handed over whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import can
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


@dataclass(frozen=True)
class FrameRecord:
    """One stored frame as plain values (for details panes, tests and writers)."""

    seq: int
    timestamp: float
    arbitration_id: int
    flags: int
    length: int
    channel: int
    data: bytes

    @property
    def is_extended(self) -> bool:
        """29-bit identifier."""
        return bool(self.flags & FLAG_EXTENDED)

    @property
    def is_tx(self) -> bool:
        """Sent by this application (Tx direction)."""
        return bool(self.flags & FLAG_TX)

    def to_message(self, channel_name: str | None = None) -> can.Message:
        """The frame as a python-can Message (for writers and replay)."""
        f = self.flags
        return can.Message(
            timestamp=self.timestamp,
            arbitration_id=self.arbitration_id,
            is_extended_id=bool(f & FLAG_EXTENDED),
            is_remote_frame=bool(f & FLAG_REMOTE),
            is_error_frame=bool(f & FLAG_ERROR),
            is_fd=bool(f & FLAG_FD),
            bitrate_switch=bool(f & FLAG_BRS),
            error_state_indicator=bool(f & FLAG_ESI),
            is_rx=not f & FLAG_TX,
            dlc=self.length,
            data=self.data if not f & FLAG_REMOTE else None,
            channel=channel_name if channel_name is not None else self.channel,
            check=False,
        )


def message_flags(msg: can.Message) -> int:
    """The `flags` column value for a python-can Message."""
    flags = 0
    if msg.is_extended_id:
        flags |= FLAG_EXTENDED
    if msg.is_remote_frame:
        flags |= FLAG_REMOTE
    if msg.is_error_frame:
        flags |= FLAG_ERROR
    if msg.is_fd:  # BRS and ESI exist only in FD frames
        flags |= FLAG_FD
        if msg.bitrate_switch:
            flags |= FLAG_BRS
        if msg.error_state_indicator:
            flags |= FLAG_ESI
    if not msg.is_rx:
        flags |= FLAG_TX
    return flags


class FrameBatch:
    """Column arrays of a batch of frames (the unit handed from capture to the store)."""

    __slots__ = ("channel", "data", "ext", "ext_len", "flags", "ids", "length", "timestamp")

    def __init__(
        self,
        timestamp: npt.NDArray[np.float64],
        ids: npt.NDArray[np.uint32],
        flags: npt.NDArray[np.uint16],
        length: npt.NDArray[np.uint8],
        channel: npt.NDArray[np.uint8],
        data: npt.NDArray[np.uint8],
        ext: dict[int, bytes] | None = None,
    ) -> None:
        self.timestamp = timestamp
        self.ids = ids
        self.flags = flags
        self.length = length
        self.channel = channel
        self.data = data  # shape (n, 8)
        self.ext = ext or {}  # batch row -> bytes 8..63 of an FD frame longer than 8
        self.ext_len = len(self.ext)

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])

    def tail(self, start: int) -> FrameBatch:
        """Rows `start`.. of this batch as a batch of their own (views, no copy)."""
        return FrameBatch(
            self.timestamp[start:],
            self.ids[start:],
            self.flags[start:],
            self.length[start:],
            self.channel[start:],
            self.data[start:],
            {row - start: tail for row, tail in self.ext.items() if row >= start},
        )

    def messages(self, channel_names: Sequence[str] = ()) -> Iterator[can.Message]:
        """The frames as python-can Messages (for writers and replay); channel = index
        (log writers number channels) unless `channel_names` is given."""
        for i in range(len(self)):
            flags = int(self.flags[i])
            length = int(self.length[i])
            data = self.data[i, : min(8, length)].tobytes() + self.ext.get(i, b"")
            ch = int(self.channel[i])
            yield FrameRecord(
                seq=i,
                timestamp=float(self.timestamp[i]),
                arbitration_id=int(self.ids[i]),
                flags=flags,
                length=length,
                channel=ch,
                data=b"" if flags & FLAG_REMOTE else data,
            ).to_message(channel_names[ch] if ch < len(channel_names) else None)

    @classmethod
    def from_messages(
        cls, messages: Sequence[can.Message], channel_index: int | Sequence[int] = 0
    ) -> FrameBatch:
        """Build a batch from python-can Messages (one Python loop, no per-frame objects kept)."""
        n = len(messages)
        ts = np.empty(n, np.float64)
        ids = np.empty(n, np.uint32)
        flags = np.empty(n, np.uint16)
        length = np.empty(n, np.uint8)
        chan = np.empty(n, np.uint8)
        raw = bytearray(8 * n)
        ext: dict[int, bytes] = {}
        per_frame_channel = not isinstance(channel_index, int)
        for i, msg in enumerate(messages):
            ts[i] = msg.timestamp
            ids[i] = msg.arbitration_id
            flags[i] = message_flags(msg)
            data = msg.data
            dl = len(data) if not msg.is_remote_frame else msg.dlc
            length[i] = dl
            if data:
                raw[8 * i : 8 * i + min(8, len(data))] = data[:8]
                if len(data) > 8:
                    ext[i] = bytes(data[8:])
            chan[i] = channel_index[i] if per_frame_channel else channel_index  # type: ignore[index]
        arr = np.frombuffer(bytes(raw), np.uint8).reshape(n, 8).copy()
        return cls(ts, ids, flags, length, chan, arr, ext)
