"""Trace plots (pyqtgraph): bus load % and frames/s per channel, per-ID rate, DBC signals.

Every x axis is labelled "time (s)" and counts seconds relative to the document's first frame
(never raw epoch stamps such as 1.79659e+09). A LIVE document adds one point per channel / ID
per `update_plots()` (the panel calls it every ~250 ms while the plots tab is visible) from the
frames that arrived since the last call, over the frames' own timestamps. A FILE document is
plotted from its timestamps once (histogram bins, ≤ MAX_FILE_BINS), so a log read at a million
frames per second still shows the rate and bus load it had on the wire. Bus load is estimated
from the frame lengths: classic 11-bit frame ≈ 47 + 8·len bits, 29-bit ≈ 67 + 8·len, plus
≈ 20 % stuff bits; CAN FD data phases are counted at the nominal rate (an upper bound).
Preallocated ring arrays, `setData`, downsampling and clip-to-view. GUI thread.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.frames import FLAG_EXTENDED
from fota_studio.engine.trace_store import TraceFilter, TraceStore
from fota_studio.protocols.decode import Decoder
from fota_studio.ui.widgets.plots import ThemedPlotWidget

HISTORY_POINTS = 600
STUFFING_FACTOR = 1.2
PER_ID_CURVES = 8
MAX_FILE_BINS = 2_000
PLOT_MIN_HEIGHT_PX = 170
SIGNAL_POINTS = 100_000
"""Points kept for a DBC signal plot (a ring: the oldest are dropped)."""
SIGNAL_DECODE_MAX_FRAMES = 20_000
"""Frames of the signal's message decoded per update at most (newest first)."""
PEN_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
)


class _Ring:
    """A preallocated (x, y) ring of points."""

    def __init__(self, size: int) -> None:
        self.x = np.zeros(size)
        self.y = np.zeros(size)
        self.n = 0

    def extend(self, x: np.ndarray, y: np.ndarray) -> None:
        size = self.x.shape[0]
        k = x.shape[0]
        if k >= size:
            self.x[:], self.y[:] = x[-size:], y[-size:]
            self.n = size
            return
        overflow = self.n + k - size
        if overflow > 0:  # shift left once per update, not per point
            self.x[: self.n - overflow] = self.x[overflow : self.n]
            self.y[: self.n - overflow] = self.y[overflow : self.n]
            self.n -= overflow
        self.x[self.n : self.n + k] = x
        self.y[self.n : self.n + k] = y
        self.n += k

    def clear(self) -> None:
        self.n = 0


def frame_bits(ids_flags_lengths: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Estimated bits on the wire per frame (header + data + stuffing)."""
    flags, lengths = ids_flags_lengths
    ext = (flags & FLAG_EXTENDED) != 0
    return (np.where(ext, 67.0, 47.0) + 8.0 * lengths.astype(np.float64)) * STUFFING_FACTOR


class TracePlots(QWidget):
    """Frames/s and bus load % per channel, per-ID rate and a DBC signal over time."""

    def __init__(
        self, store: TraceStore, decoder: Decoder | None = None, *, live: bool = True
    ) -> None:
        """`live`: each update adds a point from the new frames (False: a file, plotted whole
        from its timestamps). The document's tab widget becomes the parent."""
        super().__init__()
        self.store = store
        self.decoder = decoder or Decoder()
        self.live = live
        self.bitrates_bps: dict[int, int] = {}
        self._t = np.zeros(HISTORY_POINTS)
        self._rate = np.zeros((256, HISTORY_POINTS))
        self._load = np.zeros((256, HISTORY_POINTS))
        self._id_rate: dict[int, np.ndarray] = {}
        self._n = 0
        self._last_seq = store.end_seq
        self._last_t: float | None = None
        self._file_plotted_end = -1
        self._t0_s: float | None = None
        self.frame_filter = TraceFilter()
        """The view's ID/direction/type filter: the per-ID curves show what it lets through
        (rate and bus load per channel count every frame: they describe the bus)."""
        self.rate_plot = ThemedPlotWidget(title="frames/s per channel")
        self.load_plot = ThemedPlotWidget(title="bus load per channel")
        self.id_plot = ThemedPlotWidget(title="frames/s per ID")
        self.signal_plot = ThemedPlotWidget(title="DBC signal")
        for plot, left, units in (
            (self.rate_plot, "frames/s", None),
            (self.load_plot, "bus load", "%"),
            (self.id_plot, "frames/s", None),
            (self.signal_plot, "value", None),
        ):
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.addLegend(offset=(-10, 10))
            plot.setLabel("bottom", "time", units="s")
            plot.setLabel("left", left, units=units)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setMinimumHeight(PLOT_MIN_HEIGHT_PX)
            plot.apply_palette()  # the legend's and axes' text too
        self.load_plot.setYRange(0, 100)
        self._curves: dict[int, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._id_curves: dict[int, pg.PlotDataItem] = {}
        self.id_edit = QLineEdit()
        self.id_edit.setPlaceholderText(f"IDs to plot (hex), empty = the {PER_ID_CURVES} busiest")
        self.id_edit.editingFinished.connect(self._on_id_edit_editing_finished)
        self._wanted_ids: tuple[int, ...] = ()
        self.signal_combo = QComboBox()
        self.signal_combo.setMinimumContentsLength(30)
        self.signal_combo.currentIndexChanged.connect(self._on_signal_combo_changed)
        self._signal: tuple[int, bool, str] | None = None
        self._signal_ring = _Ring(SIGNAL_POINTS)
        self._signal_seq = store.end_seq
        self._signal_curve = self.signal_plot.plot(pen=pg.mkPen(PEN_COLORS[0]))
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Per-ID"))
        controls.addWidget(self.id_edit, 1)
        controls.addWidget(QLabel("Signal"))
        controls.addWidget(self.signal_combo, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        grid = QGridLayout()
        grid.addWidget(self.rate_plot, 0, 0)
        grid.addWidget(self.load_plot, 1, 0)
        grid.addWidget(self.id_plot, 0, 1)
        grid.addWidget(self.signal_plot, 1, 1)
        layout.addLayout(grid, 1)
        self.refresh_signals()

    # -- configuration ------------------------------------------------------------------------
    def _t0(self) -> float:
        """The time of the first frame plotted: x = 0 (kept when old frames are trimmed, so
        the axis never jumps; a Clear starts again)."""
        if self._t0_s is None and len(self.store):
            self._t0_s = self.store.timestamp(self.store.first_seq)
        return self._t0_s if self._t0_s is not None else 0.0

    def refresh_signals(self) -> None:
        """Fill the signal combo box from the decoder's DBC files (after loading one)."""
        current = self.signal_combo.currentText()
        self.signal_combo.blockSignals(True)
        self.signal_combo.clear()
        self.signal_combo.addItem("(no signal)", None)
        for frame_id, extended, message, signal in self.decoder.dbc.signal_list():
            self.signal_combo.addItem(f"{message}.{signal}", (frame_id, extended, signal))
        index = self.signal_combo.findText(current)
        self.signal_combo.setCurrentIndex(max(index, 0))
        self.signal_combo.blockSignals(False)
        self._on_signal_combo_changed(self.signal_combo.currentIndex())

    def select_signal(self, name: str) -> None:
        """Plot the DBC signal `Message.signal` (ValueError when unknown)."""
        index = self.signal_combo.findText(name)
        if index < 0:
            raise ValueError(f"no DBC signal {name} loaded")
        self.signal_combo.setCurrentIndex(index)

    def _on_signal_combo_changed(self, index: int) -> None:
        data = self.signal_combo.itemData(index) if index >= 0 else None
        self._signal = (int(data[0]), bool(data[1]), str(data[2])) if data else None
        self._signal_ring.clear()
        self._signal_seq = self.store.first_seq  # plot what is already stored, too
        self.signal_plot.setTitle(self.signal_combo.currentText() if data else "DBC signal")
        self._update_signal()

    def _on_id_edit_editing_finished(self) -> None:
        try:
            self._wanted_ids = tuple(
                int(t, 16) for t in self.id_edit.text().replace(",", " ").split()
            )
        except ValueError:
            self._wanted_ids = ()
        for curve in self._id_curves.values():
            self.id_plot.removeItem(curve)
        self._id_curves.clear()
        self._id_rate.clear()
        self._file_plotted_end = -1

    def set_frame_filter(self, flt: TraceFilter) -> None:
        """Follow the view's filter with the per-ID curves (replotted from now on)."""
        if flt == self.frame_filter:
            return
        self.frame_filter = flt
        self._on_id_edit_editing_finished()

    def cleared(self) -> None:
        """The document was cleared: start the curves again."""
        self._n = 0
        self._last_seq = self.store.end_seq
        self._last_t = None
        self._signal_ring.clear()
        self._signal_seq = self.store.end_seq
        self._file_plotted_end = -1
        self._t0_s = None

    # -- updates ------------------------------------------------------------------------------
    def update_plots(self) -> None:
        """Live: add one point from the frames that arrived since the last call. File: plot
        the whole document from its timestamps (once; again after a change)."""
        if self.live:
            self._update_live()
        elif self._file_plotted_end != self.store.end_seq:
            self._update_file()
        self._update_signal()

    def _curve_pair(self, ch: int, name: str) -> tuple[pg.PlotDataItem, pg.PlotDataItem]:
        if ch not in self._curves:
            pen = pg.mkPen(PEN_COLORS[ch % len(PEN_COLORS)])
            self._curves[ch] = (
                self.rate_plot.plot(name=name, pen=pen),
                self.load_plot.plot(name=name, pen=pen),
            )
        return self._curves[ch]

    def _update_live(self) -> None:
        start = max(self._last_seq, self.store.first_seq)
        end = self.store.end_seq
        self._last_seq = end
        if end <= start:
            return
        ts = self.store.column("ts", start, end)
        now = float(ts[-1])
        if self._last_t is None:  # the first point: the span of these frames
            self._last_t = float(ts[0])
        dt = max(now - self._last_t, 1e-3)
        self._last_t = now
        chans = self.store.column("channel", start, end)
        ids = self.store.column("ids", start, end)
        if not self.frame_filter.is_empty():  # per-ID curves follow the view's filter
            keep = self.frame_filter.mask(
                np.asarray(ids, np.uint32),
                np.asarray(self.store.column("flags", start, end), np.uint16),
                np.asarray(self.store.column("channel", start, end), np.uint8),
            )
            ids = ids[keep]
        bits = frame_bits(
            (self.store.column("flags", start, end), self.store.column("length", start, end))
        )
        if self._n == HISTORY_POINTS:  # shift the ring left; cheap at this size and rate
            self._t[:-1] = self._t[1:]
            self._rate[:, :-1] = self._rate[:, 1:]
            self._load[:, :-1] = self._load[:, 1:]
            for arr in self._id_rate.values():
                arr[:-1] = arr[1:]
            self._n -= 1
        i = self._n
        self._t[i] = now - self._t0()
        counts = np.bincount(chans, minlength=256)[:256]
        bit_sums = np.bincount(chans, weights=bits, minlength=256)[:256]
        self._rate[:, i] = counts / dt
        for ch in range(len(self.store.channel_names)):
            rate = self.bitrates_bps.get(ch, 500_000)
            self._load[ch, i] = min(100.0, 100.0 * bit_sums[ch] / dt / rate)
        self._update_id_rates(ids, i, dt)
        self._n += 1
        for ch, name in enumerate(self.store.channel_names[:256]):
            rate_curve, load_curve = self._curve_pair(ch, name)
            rate_curve.setData(self._t[: self._n], self._rate[ch, : self._n])
            load_curve.setData(self._t[: self._n], self._load[ch, : self._n])
        for can_id, curve in self._id_curves.items():
            curve.setData(self._t[: self._n], self._id_rate[can_id][: self._n])

    def _update_file(self) -> None:
        """Rates and load over the file's own time axis (histogram of its timestamps)."""
        self._file_plotted_end = self.store.end_seq
        if not len(self.store):
            return
        t0 = self._t0()
        span = max(self.store.timestamp(self.store.end_seq - 1) - t0, 1e-3)
        width = max(span / MAX_FILE_BINS, 0.01)
        nbins = int(span // width) + 1
        edges = np.arange(nbins + 1) * width
        chans = len(self.store.channel_names) or 1
        counts = np.zeros(chans * nbins)
        bits = np.zeros(chans * nbins)
        totals: dict[int, int] = {}
        segments = self.store.segments()
        for seg in segments:
            b = seg.batch
            idx = np.minimum(((b.timestamp - t0) / width).astype(np.int64), nbins - 1)
            cell = np.minimum(b.channel.astype(np.int64), chans - 1) * nbins + idx
            counts += np.bincount(cell, minlength=chans * nbins)
            bits += np.bincount(
                cell, weights=frame_bits((b.flags, b.length)), minlength=chans * nbins
            )
            shown = b.ids[self.frame_filter.mask(b.ids, b.flags, b.channel)]
            uniq, cnt = np.unique(shown, return_counts=True)
            for u, c in zip(uniq.tolist(), cnt.tolist(), strict=True):
                totals[u] = totals.get(u, 0) + c
        busiest = self._wanted_ids or tuple(
            sorted(totals, key=lambda k: -totals[k])[:PER_ID_CURVES]
        )
        per_id = {can_id: np.zeros(nbins) for can_id in busiest}
        for seg in segments:
            b = seg.batch
            idx = np.minimum(((b.timestamp - t0) / width).astype(np.int64), nbins - 1)
            keep = self.frame_filter.mask(b.ids, b.flags, b.channel)
            for can_id in busiest:
                per_id[can_id] += np.bincount(idx[keep & (b.ids == can_id)], minlength=nbins)
        count_grid = counts.reshape(chans, nbins)
        bit_grid = bits.reshape(chans, nbins)
        x = edges[:-1]
        for ch, name in enumerate(self.store.channel_names[:256]):
            rate_curve, load_curve = self._curve_pair(ch, name)
            rate = self.bitrates_bps.get(ch, 500_000)
            rate_curve.setData(x, count_grid[ch] / width)
            load_curve.setData(x, np.minimum(100.0, 100.0 * bit_grid[ch] / width / rate))
        for curve in self._id_curves.values():
            self.id_plot.removeItem(curve)
        self._id_curves.clear()
        for can_id in busiest:
            self._add_id_curve(can_id)
            self._id_curves[can_id].setData(x, per_id[can_id] / width)

    def _update_id_rates(self, ids: np.ndarray, i: int, dt: float) -> None:
        uniq, counts = np.unique(ids, return_counts=True)
        if not self._wanted_ids and len(self._id_curves) < PER_ID_CURVES and uniq.shape[0]:
            for can_id in uniq[np.argsort(-counts)].tolist():  # busiest first
                if len(self._id_curves) >= PER_ID_CURVES:
                    break
                self._add_id_curve(int(can_id))
        for can_id in self._wanted_ids:
            if can_id not in self._id_curves:
                self._add_id_curve(can_id)
        lookup = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
        for can_id, arr in self._id_rate.items():
            arr[i] = lookup.get(can_id, 0) / dt

    def _add_id_curve(self, can_id: int) -> None:
        if can_id in self._id_curves:
            return
        pen = pg.mkPen(PEN_COLORS[len(self._id_curves) % len(PEN_COLORS)])
        self._id_curves[can_id] = self.id_plot.plot(name=f"{can_id:X}", pen=pen)
        self._id_rate.setdefault(can_id, np.zeros(HISTORY_POINTS))

    @property
    def id_curve_ids(self) -> list[int]:
        """Identifiers with a per-ID rate curve."""
        return list(self._id_curves)

    def _update_signal(self) -> None:
        if self._signal is None:
            self._signal_curve.setData([], [])
            return
        frame_id, extended, signal = self._signal
        start = max(self._signal_seq, self.store.first_seq)
        end = self.store.end_seq
        self._signal_seq = end
        seqs = self.store.filter(TraceFilter(ids=(frame_id,)), start, end)
        if seqs.shape[0] > SIGNAL_DECODE_MAX_FRAMES:
            seqs = seqs[-SIGNAL_DECODE_MAX_FRAMES:]
        xs, ys = [], []
        dbc = self.decoder.dbc
        t0 = self._t0()
        for rec in self.store.records(seqs):
            if rec.is_extended != extended:
                continue
            value = dbc.signal_value(frame_id, extended, rec.data, signal)
            if value is not None:
                xs.append(rec.timestamp - t0)
                ys.append(value)
        if xs:
            self._signal_ring.extend(np.asarray(xs), np.asarray(ys))
        ring = self._signal_ring
        self._signal_curve.setData(ring.x[: ring.n], ring.y[: ring.n])

    @property
    def signal_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(time relative to the first frame, value) of the plotted DBC signal."""
        ring = self._signal_ring
        return ring.x[: ring.n].copy(), ring.y[: ring.n].copy()
