"""python-can conversions of the trace's frame types (`core.frames.FrameBatch`).

`FrameRecord` is one stored frame as plain values with `to_message()`; `message_flags` gives
the flags column of a python-can Message and `copy_message` a re-stamped copy of one (logs,
the trace's Tx frames); `batch_from_messages` / `batch_messages` convert whole batches
(writers, replay, tests). The batch type itself lives in `core/frames.py` (no CAN
library there); its names are re-exported here for `infra/tracefile.py` and `cli/trace.py`,
which import the flag bits from this module. Pure functions: any thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import can
import numpy as np
import numpy.typing as npt

from fota_studio.core.frames import (
    FLAG_BRS,
    FLAG_ERROR,
    FLAG_ESI,
    FLAG_EXTENDED,
    FLAG_FD,
    FLAG_REMOTE,
    FLAG_TX,
    FrameBatch,
    IntArray,
)

__all__ = [
    "FLAG_BRS",
    "FLAG_ERROR",
    "FLAG_ESI",
    "FLAG_EXTENDED",
    "FLAG_FD",
    "FLAG_REMOTE",
    "FLAG_TX",
    "ByteColumn",
    "FlagColumn",
    "FrameBatch",
    "FrameRecord",
    "IdColumn",
    "IntArray",
    "RowMask",
    "batch_from_messages",
    "batch_messages",
    "copy_message",
    "message_flags",
]


#: Column types of a `FrameBatch` as filters and decoders take them, and their row masks.
IdColumn = npt.NDArray[np.uint32]
FlagColumn = npt.NDArray[np.uint16]
ByteColumn = npt.NDArray[np.uint8]
RowMask = npt.NDArray[np.bool_]


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

    def to_message(self, channel_name: str | int | None = None) -> can.Message:
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


def copy_message(
    msg: can.Message,
    *,
    channel: Any = None,
    is_rx: bool | None = None,
    as_data_frame: bool = False,
) -> can.Message:
    """A copy of `msg` for a log or the trace: its frame fields, its timestamp (now when it has
    none), `channel`, no check; `is_rx` overrides the direction, `as_data_frame` clears the
    error-frame and ESI flags (the trace's own Tx record). Per frame on the flash bus log's
    path, so one direct constructor call (no field dict)."""
    return can.Message(
        timestamp=msg.timestamp or time.time(),
        arbitration_id=msg.arbitration_id,
        is_extended_id=msg.is_extended_id,
        is_remote_frame=msg.is_remote_frame,
        is_error_frame=False if as_data_frame else msg.is_error_frame,
        is_fd=msg.is_fd,
        bitrate_switch=msg.bitrate_switch,
        error_state_indicator=False if as_data_frame else msg.error_state_indicator,
        dlc=msg.dlc,
        data=msg.data,
        is_rx=msg.is_rx if is_rx is None else is_rx,
        channel=channel,
        check=False,
    )


def batch_messages(batch: FrameBatch, channel_names: Sequence[str] = ()) -> Iterator[can.Message]:
    """The frames of `batch` as python-can Messages (for writers and replay); channel = index
    (log writers number channels) unless `channel_names` is given."""
    for i in range(len(batch)):
        ch = int(batch.channel[i])
        yield FrameRecord(
            seq=i,
            timestamp=float(batch.timestamp[i]),
            arbitration_id=int(batch.ids[i]),
            flags=int(batch.flags[i]),
            length=int(batch.length[i]),
            channel=ch,
            data=batch.payload(i),
        ).to_message(channel_names[ch] if ch < len(channel_names) else None)


def batch_from_messages(
    messages: Sequence[can.Message], channel_index: int | Sequence[int] = 0
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
    per_frame = not isinstance(channel_index, int)
    for i, msg in enumerate(messages):
        ts[i] = msg.timestamp
        ids[i] = msg.arbitration_id
        flags[i] = message_flags(msg)
        data = msg.data
        length[i] = len(data) if not msg.is_remote_frame else msg.dlc
        if data:
            raw[8 * i : 8 * i + min(8, len(data))] = data[:8]
            if len(data) > 8:
                ext[i] = bytes(data[8:])
        chan[i] = channel_index[i] if per_frame else channel_index  # type: ignore[index]  # per_frame
    arr = np.frombuffer(bytes(raw), np.uint8).reshape(n, 8).copy()
    return FrameBatch(ts, ids, flags, length, chan, arr, ext)
