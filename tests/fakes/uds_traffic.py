"""Columnar UDS diagnostic traffic for the trace tests and the trace benchmark (bench/trace.py):
a `FrameBatch` of single frames as a tester polls an ECU. Any thread."""

from __future__ import annotations

import numpy as np

from fota_studio.core.frames import FrameBatch


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
    return FrameBatch(
        rows.astype(np.float64) * period_s,
        np.full(n, can_id, np.uint32),
        np.zeros(n, np.uint16),
        np.full(n, 8, np.uint8),
        np.zeros(n, np.uint8),
        data,
    )
