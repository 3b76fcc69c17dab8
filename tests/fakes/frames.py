"""CAN frames of every kind a trace log format may hold, for the trace file tests."""

from __future__ import annotations

import can


def sample_frames() -> list[can.Message]:
    """Classic, CAN FD (BRS, ESI), remote and error frames, both directions, two channels."""
    t0 = 1_700_000_000.0
    return [
        can.Message(
            timestamp=t0,
            arbitration_id=0x123,
            data=b"\x01\x02\x03",
            is_extended_id=False,
            channel=0,
            is_rx=True,
        ),
        can.Message(
            timestamp=t0 + 0.001,
            arbitration_id=0x18DAF110,
            data=bytes(range(12)),
            is_extended_id=True,
            is_fd=True,
            bitrate_switch=True,
            error_state_indicator=True,
            channel=1,
            is_rx=False,
        ),
        can.Message(
            timestamp=t0 + 0.002,
            arbitration_id=0x7E8,
            data=bytes(range(64)),
            is_extended_id=False,
            is_fd=True,
            bitrate_switch=True,
            channel=0,
            is_rx=True,
        ),
        can.Message(
            timestamp=t0 + 0.003,
            arbitration_id=0x7E0,
            data=bytes(20),
            is_extended_id=False,
            is_fd=True,
            channel=1,
            is_rx=False,
        ),
        can.Message(
            timestamp=t0 + 0.004,
            arbitration_id=0x200,
            is_remote_frame=True,
            dlc=4,
            is_extended_id=False,
            channel=0,
            is_rx=True,
        ),
        can.Message(
            timestamp=t0 + 0.005,
            arbitration_id=0x0,
            is_error_frame=True,
            dlc=0,
            channel=0,
            is_rx=True,
        ),
        can.Message(
            timestamp=t0 + 0.006,
            arbitration_id=0x7E0,
            data=bytes(8),
            is_extended_id=False,
            channel=1,
            is_rx=False,
        ),
    ]
