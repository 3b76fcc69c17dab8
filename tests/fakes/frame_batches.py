"""Columnar CAN traffic (`FrameBatch`) for the trace tests and the trace benchmark
(bench/trace.py): classic 8-byte frames from their columns, and UDS single frames as a tester
polls an ECU. Any thread."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fota_studio.core.frames import FrameBatch


def classic_batch(
    timestamps: npt.NDArray[np.float64], ids: npt.NDArray[np.uint32], data: npt.NDArray[np.uint8]
) -> FrameBatch:
    """Classic frames of 8 data bytes on channel 0, no flags: `data` has shape (n, 8)."""
    n = len(ids)
    return FrameBatch(
        timestamps,
        ids,
        np.zeros(n, np.uint16),
        np.full(n, 8, np.uint8),
        np.zeros(n, np.uint8),
        data,
    )


def uds_batch(n: int, start: int, can_id: int = 0x7E0, period_s: float = 1e-3) -> FrameBatch:
    """Rows [start, start + n) of single frames on `can_id`, `period_s` apart: every 10th a
    TesterPresent, the others ReadDataByIdentifier of one of 50 DIDs (so the decoded text
    repeats like real cyclic traffic)."""
    rows = np.arange(start, start + n)
    tp = rows % 10 == 0
    data = np.zeros((n, 8), np.uint8)
    data[:, 0] = np.where(tp, 0x02, 0x03)
    data[:, 1] = np.where(tp, 0x3E, 0x22)
    data[:, 2] = np.where(tp, 0x00, 0xF1)
    data[:, 3] = np.where(tp, 0x00, rows % 50)
    return classic_batch(rows.astype(np.float64) * period_s, np.full(n, can_id, np.uint32), data)
