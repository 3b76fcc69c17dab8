"""CAN frames of every kind a trace log format may hold, for the trace file tests."""

from __future__ import annotations

from typing import Any

import can

_T0_S = 1_700_000_000.0

# One row a frame, 1 ms apart: (arbitration id, channel, received?, the frame's other fields).
_FRAME_SPECS: tuple[tuple[int, int, bool, dict[str, Any]], ...] = (
    (0x123, 0, True, {"data": b"\x01\x02\x03", "is_extended_id": False}),
    (
        0x18DAF110,
        1,
        False,
        {
            "data": bytes(range(12)),
            "is_extended_id": True,
            "is_fd": True,
            "bitrate_switch": True,
            "error_state_indicator": True,
        },
    ),
    (
        0x7E8,
        0,
        True,
        {"data": bytes(range(64)), "is_extended_id": False, "is_fd": True, "bitrate_switch": True},
    ),
    (0x7E0, 1, False, {"data": bytes(20), "is_extended_id": False, "is_fd": True}),
    (0x200, 0, True, {"is_remote_frame": True, "dlc": 4, "is_extended_id": False}),
    (0x0, 0, True, {"is_error_frame": True, "dlc": 0}),
    (0x7E0, 1, False, {"data": bytes(8), "is_extended_id": False}),
)


def sample_frames() -> list[can.Message]:
    """Classic, CAN FD (BRS, ESI), remote and error frames, both directions, two channels."""
    return [
        can.Message(
            timestamp=_T0_S + index * 0.001,
            arbitration_id=arbitration_id,
            channel=channel,
            is_rx=is_rx,
            **fields,
        )
        for index, (arbitration_id, channel, is_rx, fields) in enumerate(_FRAME_SPECS)
    ]
