"""Trace plots (pyqtgraph): frames/s and estimated bus load % per channel over time.

Preallocated ring arrays, `setData` once per `update()` (the panel calls it from its timer about
once a second), downsampling and clip-to-view on. Bus load is estimated from the frame lengths:
classic 11-bit frame ≈ 47 + 8·len bits, 29-bit ≈ 67 + 8·len, plus ≈ 20 % stuff bits; CAN FD
data phases are counted at the nominal rate (an upper bound). GUI thread only.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from fota_studio.engine.trace_store import FLAG_EXTENDED, TraceStore

HISTORY_POINTS = 600
STUFFING_FACTOR = 1.2
PEN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


class TracePlots(QWidget):
    """Frames/s and bus load % per channel."""

    def __init__(self, store: TraceStore, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.bitrates_bps: dict[int, int] = {}
        self._t = np.zeros(HISTORY_POINTS)
        self._rate = np.zeros((256, HISTORY_POINTS))
        self._load = np.zeros((256, HISTORY_POINTS))
        self._n = 0
        self._last_seq = store.end_seq
        self._last_time = time.monotonic()
        self._t_start = self._last_time
        self.rate_plot = pg.PlotWidget(title="frames/s")
        self.load_plot = pg.PlotWidget(title="bus load %")
        for plot in (self.rate_plot, self.load_plot):
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.addLegend()
        self._curves: dict[int, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        layout = QVBoxLayout(self)
        layout.addWidget(self.rate_plot)
        layout.addWidget(self.load_plot)

    def update_plots(self) -> None:
        """Add one point per channel from the frames that arrived since the last call."""
        now = time.monotonic()
        dt = max(now - self._last_time, 1e-3)
        start = max(self._last_seq, self.store.first_seq)
        end = self.store.end_seq
        chans = self.store.column("channel", start, end)
        lengths = self.store.column("length", start, end).astype(np.float64)
        ext = (self.store.column("flags", start, end) & FLAG_EXTENDED) != 0
        bits = (np.where(ext, 67.0, 47.0) + 8.0 * lengths) * STUFFING_FACTOR
        self._last_seq, self._last_time = end, now
        if self._n == HISTORY_POINTS:  # shift the ring left; cheap at this size and rate
            self._t[:-1] = self._t[1:]
            self._rate[:, :-1] = self._rate[:, 1:]
            self._load[:, :-1] = self._load[:, 1:]
            self._n -= 1
        i = self._n
        self._t[i] = now - self._t_start
        counts = np.bincount(chans, minlength=256)[:256]
        bit_sums = np.bincount(chans, weights=bits, minlength=256)[:256]
        self._rate[:, i] = counts / dt
        for ch in range(len(self.store.channel_names)):
            rate = self.bitrates_bps.get(ch, 500_000)
            self._load[ch, i] = min(100.0, 100.0 * bit_sums[ch] / dt / rate)
        self._n += 1
        for ch, name in enumerate(self.store.channel_names[:256]):
            if ch not in self._curves:
                pen = pg.mkPen(PEN_COLORS[ch % len(PEN_COLORS)])
                self._curves[ch] = (
                    self.rate_plot.plot(name=name, pen=pen),
                    self.load_plot.plot(name=name, pen=pen),
                )
            rate_curve, load_curve = self._curves[ch]
            rate_curve.setData(self._t[: self._n], self._rate[ch, : self._n])
            load_curve.setData(self._t[: self._n], self._load[ch, : self._n])
