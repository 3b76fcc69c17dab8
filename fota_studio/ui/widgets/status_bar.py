"""Status-bar readout: state of every CAN channel, bus load and frames/s, the access mode.

`BusStatusWidget` sits in the main window's status bar and refreshes itself on a ~1 s QTimer.
The channel list and the mode come from callables the Workbench passes in (so this widget knows
nothing about the engine's internals); the load is measured from the trace's columnar
`TraceStore` with a few numpy operations over the frames that arrived since the last tick — the
same frame-length estimate as the trace plots — so it costs well under a millisecond even at
20,000 frames/s and adds no per-frame work on the receive threads. Frames loaded from a log
file carry old timestamps and are left out (only frames stamped within `LIVE_WINDOW_S` of the
wall clock count as live). GUI thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from fota_studio.engine.trace_store import FLAG_EXTENDED, TraceStore
from fota_studio.ui.widgets.timers import periodic_timer

REFRESH_INTERVAL_MS = 1000
LIVE_WINDOW_S = 5.0
"""Frames stamped further than this from the wall clock are not live (a loaded log file)."""
STUFFING_FACTOR = 1.2
"""Average bit-stuffing overhead; the trace plots use the same estimate."""
OVERHEAD_BITS_STD = 47
OVERHEAD_BITS_EXT = 67
DEFAULT_BITRATE_BPS = 500_000

STATE_OPEN = "open"
STATE_CLOSED = "closed"
STATE_ERROR = "error"


@dataclass(frozen=True)
class ChannelStatus:
    """One logical CAN channel as the status bar shows it."""

    name: str
    state: str  # STATE_OPEN | STATE_CLOSED | STATE_ERROR
    interface: str = ""
    bitrate_bps: int = DEFAULT_BITRATE_BPS
    detail: str = ""  # the error text, or the adapter description
    adapter: str = ""  # the adapter channel (can0, PCAN_USBBUS1, fota-demo)

    @property
    def label(self) -> str:
        """`socketcan:can0` (the adapter this channel is mapped to), or the interface alone."""
        if self.interface and self.adapter:
            return f"{self.interface}:{self.adapter}"
        return self.interface


@dataclass(frozen=True)
class ChannelLoad:
    """Traffic of one channel over the last refresh interval."""

    frames_per_s: float
    load_percent: float


def measure_load(
    store: TraceStore,
    since_seq: int,
    dt_s: float,
    bitrates_bps: dict[str, int],
    now_s: float | None = None,
) -> tuple[int, dict[str, ChannelLoad]]:
    """Frames/s and bus load per channel name for the frames in [since_seq, end); returns the
    new `since_seq` and the loads (channels without live frames are absent)."""
    end = store.end_seq
    start = max(since_seq, store.first_seq)
    if end <= start or dt_s <= 0:
        return end, {}
    now = time.time() if now_s is None else now_s
    ts = store.column("ts", start, end).astype(np.float64)
    live = np.abs(ts - now) <= LIVE_WINDOW_S
    if not live.any():
        return end, {}
    chans = store.column("channel", start, end)[live]
    lengths = store.column("length", start, end)[live].astype(np.float64)
    ext = (store.column("flags", start, end)[live].astype(np.int64) & FLAG_EXTENDED) != 0
    bits = (np.where(ext, OVERHEAD_BITS_EXT, OVERHEAD_BITS_STD) + 8.0 * lengths) * STUFFING_FACTOR
    counts = np.bincount(chans, minlength=256)
    bit_sums = np.bincount(chans, weights=bits, minlength=256)
    out: dict[str, ChannelLoad] = {}
    for index, name in enumerate(store.channel_names[:256]):
        if counts[index] == 0:
            continue
        rate = bitrates_bps.get(name, DEFAULT_BITRATE_BPS) or DEFAULT_BITRATE_BPS
        out[name] = ChannelLoad(
            frames_per_s=float(counts[index]) / dt_s,
            load_percent=min(100.0, 100.0 * float(bit_sums[index]) / dt_s / rate),
        )
    return end, out


class BusStatusWidget(QWidget):
    """Bus state, load and frames/s per channel plus the mode, refreshed every second."""

    def __init__(
        self,
        channels: Callable[[], list[ChannelStatus]],
        store: TraceStore | None = None,
        mode: Callable[[], str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._channels, self._store, self._mode = channels, store, mode
        self._since_seq = store.end_seq if store is not None else 0
        self._last_tick = time.monotonic()
        self.loads: dict[str, ChannelLoad] = {}
        self.bus_label = QLabel()
        self.bus_label.setToolTip("CAN channels: state and adapter (CAN ▸ Adapter settings…)")
        self.load_label = QLabel()
        self.load_label.setToolTip(
            "Bus load (estimated from frame lengths, with bit stuffing) and frames per second "
            "of live traffic, per channel"
        )
        self.mode_label = QLabel()
        self.mode_label.setToolTip("Access mode (Mode ▸ Operator / engineering mode…)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)
        layout.addWidget(self.bus_label)
        layout.addWidget(self.load_label)
        layout.addWidget(self.mode_label)
        self.timer = periodic_timer(self, REFRESH_INTERVAL_MS, self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Re-read channel states and mode, and measure the load since the last refresh."""
        now = time.monotonic()
        dt, self._last_tick = now - self._last_tick, now
        channels = self._channels()
        if self._store is not None:
            rates = {c.name: c.bitrate_bps for c in channels}
            self._since_seq, self.loads = measure_load(self._store, self._since_seq, dt, rates)
        self.bus_label.setText(self.bus_text(channels))
        self.bus_label.setToolTip("\n".join(_channel_line(c) for c in channels) or "No channel")
        self.load_label.setText(self.load_text(channels))
        mode = self._mode() if self._mode is not None else ""
        self.mode_label.setText(f"Mode: {mode}" if mode else "")
        self.mode_label.setVisible(bool(mode))

    @staticmethod
    def bus_text(channels: list[ChannelStatus]) -> str:
        """`CAN1 ● open (socketcan:can0)` for each channel — the adapter it is really mapped
        to — and the error in short for a failed one; "No CAN channel" when there is none."""
        if not channels:
            return "No CAN channel"
        marks = {STATE_OPEN: "●", STATE_CLOSED: "○", STATE_ERROR: "⚠"}
        parts = []
        for c in channels:
            text = f"{c.name} {marks.get(c.state, '?')} {c.state}"
            if c.label:
                text += f" ({c.label})"
            if c.state == STATE_ERROR and c.detail:
                text += f": {_short(c.detail)}"
            parts.append(text)
        return "  ".join(parts)

    def load_text(self, channels: list[ChannelStatus]) -> str:
        """`CAN1 12 % · 340 fr/s` for each open channel (0 when quiet)."""
        parts = []
        for c in channels:
            if c.state != STATE_OPEN:
                continue
            load = self.loads.get(c.name, ChannelLoad(0.0, 0.0))
            parts.append(f"{c.name} {load.load_percent:.0f} % · {load.frames_per_s:,.0f} fr/s")
        return "Load: " + ", ".join(parts) if parts else ""


#: How much of an error the status bar itself shows (the tooltip has all of it).
SHORT_ERROR_CHARS = 60


def _short(text: str) -> str:
    first = text.split(" (")[0].split("\n")[0]
    return first if len(first) <= SHORT_ERROR_CHARS else first[: SHORT_ERROR_CHARS - 1] + "…"


def _channel_line(c: ChannelStatus) -> str:
    text = f"{c.name}: {c.state}"
    if c.interface:
        text += f" on {c.label}, {c.bitrate_bps // 1000} kbit/s"
    if c.detail:
        text += f" — {c.detail}"
    return text
