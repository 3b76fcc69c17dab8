"""Qt table models over a trace document's columnar store: the frame table and "by ID" table.

`TraceModel` is a read-only view of a `TraceStore` that someone else feeds (the live capture's
timer, or a file loader): the owner appends to / trims the store, then tells the model
`rows_dropped(k)` (its k oldest frames are gone: one beginRemoveRows) and `rows_appended(n)`
(n new frames at the end: ONE beginInsertRows per batch). Paused, the model does not insert
("N new frames"). Decoded text is computed lazily for the rows the view paints and cached.

A filter (`set_query`, an `engine.trace_search.TraceQuery`) over many frames runs through
`ui/background.py` on zero-copy segment views of the store, with progress
(`query_progress`) and `search_finished(rows)` when its result is shown; frames that arrive
meanwhile are filtered on arrival and shown at once. Every frame is searched: no cap.
`ByIdModel` summarises the store per identifier incrementally. GUI thread only.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QModelRoleData,
    QModelRoleDataSpan,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont

from fota_studio.core.errors import CancelledError
from fota_studio.core.frames import FLAG_ERROR, FLAG_EXTENDED, FLAG_TX, id_text, type_text
from fota_studio.engine.trace_search import TraceQuery, frame_text
from fota_studio.engine.trace_store import Segment, TraceFilter, TraceStore
from fota_studio.protocols.decode import Decoder
from fota_studio.ui.background import BackgroundTask, run_in_background

COLUMNS = ("Time", "Chan", "Dir", "ID", "Type", "DLC", "Data", "Decoded")
COL_TIME, COL_CHAN, COL_DIR, COL_ID, COL_TYPE, COL_DLC, COL_DATA, COL_DECODED = range(8)
TIME_MODES = ("absolute", "relative", "delta")
DECODE_CACHE_ROWS = 20_000
ROW_CACHE_ROWS = 4_000
ASYNC_TEXT_SEARCH_FRAMES = 20_000
"""A free-text search over at least this many frames runs in the background (progress,
cancel)."""
ASYNC_FILTER_FRAMES = 1_000_000
"""An ID/direction/type/protocol filter (vectorised, ≈ 20 ms per million frames) over at least
this many frames runs in the background too."""

log = logging.getLogger(__name__)

_Index = QModelIndex | QPersistentModelIndex
_DISPLAY = Qt.ItemDataRole.DisplayRole
_FONT = Qt.ItemDataRole.FontRole
_BACKGROUND = Qt.ItemDataRole.BackgroundRole
_ALIGN = Qt.ItemDataRole.TextAlignmentRole
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

ViewFilter = TraceQuery
RowCells = tuple[str, str, str, str, str, str, str, str, int]
"""Display strings of the 8 columns of one frame, plus its flags."""
"""What the table shows (frames, protocols, text): the engine's query type."""


#: Timestamps above this are seconds since the epoch (host clock), shown as wall-clock time;
#: smaller ones are an adapter's own clock (seconds since it started) and are shown raw.
EPOCH_THRESHOLD_S = 1e9


def absolute_time_text(timestamp: float) -> str:
    """Wall-clock `HH:MM:SS.ffffff` (local time) for epoch stamps, raw seconds otherwise."""
    if timestamp < EPOCH_THRESHOLD_S:
        return f"{timestamp:.6f}"
    t = time.localtime(timestamp)
    micro = int((timestamp % 1.0) * 1e6)  # truncate: never rounds up into the next second
    return f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{micro:06d}"


class TimeFormat:
    """How every tab of one document writes a time: absolute (wall clock), relative (to the
    document's first frame) or delta (since the previous frame of the same ID; tabs without
    a per-ID delta show relative)."""

    def __init__(self) -> None:
        self.mode = "absolute"
        self.t0: float | None = None

    def text(self, timestamp: float, delta: float | None = None) -> str:
        """The time as the current mode writes it."""
        if self.mode == "delta" and delta is not None:
            return f"{delta * 1000:.3f} ms"
        if self.mode in ("relative", "delta"):
            t0 = self.t0 if self.t0 is not None else timestamp
            return f"{timestamp - t0:.6f}"
        return absolute_time_text(timestamp)


class _FrameTable(QAbstractTableModel):
    """What both frame tables share: fixed column titles (`columns`) and a monospace font."""

    columns: tuple[str, ...] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._mono = QFont("monospace")
        self._mono.setStyleHint(QFont.StyleHint.Monospace)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return None


class TraceModel(_FrameTable):
    """The frame table of one trace document (see module docstring)."""

    columns = COLUMNS

    #: A background filter/search ended and its result is shown (rows now shown).
    search_finished = Signal(int)
    #: Fraction of a running background filter/search.
    query_progress = Signal(float)

    def __init__(
        self,
        store: TraceStore,
        decoder: Decoder | None = None,
        parent: QObject | None = None,
        time_format: TimeFormat | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.decoder = decoder or Decoder()
        self.times = time_format or TimeFormat()
        self._paused = False
        self._first = store.first_seq  # oldest seq the model knows (rows start here)
        self._shown_end = store.end_seq  # frames [_first, _shown_end) are considered
        self._view: np.ndarray | None = None  # seqs shown when filtered
        self._filter = TraceQuery()
        self._task: BackgroundTask | None = None
        self._task_gen = 0
        self._decoded: OrderedDict[int, str] = OrderedDict()
        self._rows: OrderedDict[int, RowCells] = OrderedDict()
        self._tx_brush = QColor(230, 240, 255)
        self._err_brush = QColor(255, 225, 225)
        if len(store) and self.times.t0 is None:
            self.times.t0 = store.timestamp(store.first_seq)

    @property
    def time_mode(self) -> str:
        """absolute / relative / delta."""
        return self.times.mode

    # -- Qt model API ---------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        if self._view is not None:
            return int(self._view.shape[0])
        return max(0, self._shown_end - self._first)

    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        """One Python call per cell instead of two (see bench/trace.py: GIL hand-overs)."""
        if parent.isValid() or row < 0 or column < 0 or column >= len(COLUMNS):
            return QModelIndex()
        if row >= self.rowCount():
            return QModelIndex()
        return self.createIndex(row, column)

    def seq_at(self, row: int) -> int:
        """Store sequence number of a table row."""
        if self._view is not None:
            return int(self._view[row])
        return self._first + row

    def row_of_seq(self, seq: int) -> int | None:
        """Table row showing `seq`, or None when filtered out / not shown."""
        if self._view is not None:
            i = int(np.searchsorted(self._view, seq))
            return i if i < self._view.shape[0] and int(self._view[i]) == seq else None
        row = seq - self._first
        return row if 0 <= row < self.rowCount() else None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if row >= self.rowCount():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._row(self.seq_at(row))[col]
        if role == Qt.ItemDataRole.FontRole and col in (COL_ID, COL_DATA):
            return self._mono
        if role == Qt.ItemDataRole.BackgroundRole:
            flags = self._row(self.seq_at(row))[-1]
            if flags & FLAG_ERROR:
                return self._err_brush
            if flags & FLAG_TX:
                return self._tx_brush
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_TIME, COL_DLC):
            return _RIGHT
        return None

    def multiData(self, index: _Index, span: QModelRoleDataSpan | QModelRoleData) -> None:
        """All roles of one cell in ONE Python call (fewer GIL hand-overs while painting)."""
        if not index.isValid():
            return
        row, col = index.row(), index.column()
        if row >= self.rowCount():
            return
        cells = self._row(self.seq_at(row))
        roles = [span] if isinstance(span, QModelRoleData) else cast(Iterable[QModelRoleData], span)
        for role_data in roles:
            role = role_data.role()
            if role == _DISPLAY:
                role_data.setData(cells[col])
            elif role == _FONT and col in (COL_ID, COL_DATA):
                role_data.setData(self._mono)
            elif role == _BACKGROUND:
                flags = cells[-1]
                if flags & FLAG_ERROR:
                    role_data.setData(self._err_brush)
                elif flags & FLAG_TX:
                    role_data.setData(self._tx_brush)
            elif role == _ALIGN and col in (COL_TIME, COL_DLC):
                role_data.setData(_RIGHT)

    def row_cells(self, row: int) -> RowCells:
        """Display strings of every column of a table row, plus the flags last (cached)."""
        return self._row(self.seq_at(row))

    def _row(self, seq: int) -> RowCells:
        """All display strings of one frame (+ flags), cached: one store lookup per row."""
        row = self._rows.get(seq)
        if row is not None:
            return row
        rec = self.store.record(seq)
        names = self.store.channel_names
        delta = self.store.delta(seq) if self.times.mode == "delta" else None
        row = (
            self.times.text(rec.timestamp, delta),
            names[rec.channel] if rec.channel < len(names) else str(rec.channel),
            "Tx" if rec.flags & FLAG_TX else "Rx",
            id_text(rec.arbitration_id, bool(rec.flags & FLAG_EXTENDED)),
            type_text(rec.flags),
            str(rec.length),
            rec.data.hex(" ").upper(),
            self.decoded(seq),
            rec.flags,
        )
        self._rows[seq] = row
        if len(self._rows) > ROW_CACHE_ROWS:
            self._rows.popitem(last=False)
        return row

    def decoded(self, seq: int) -> str:
        """Decoded text of one frame, cached by sequence number (lazy: visible rows only)."""
        text = self._decoded.get(seq)
        if text is None:
            rec = self.store.record(seq)
            text = frame_text(self.decoder, rec.arbitration_id, rec.flags, rec.data)
            self._decoded[seq] = text
            if len(self._decoded) > DECODE_CACHE_ROWS:
                self._decoded.popitem(last=False)
        return text

    # -- told by the store's owner ------------------------------------------------------------
    @property
    def paused(self) -> bool:
        """True while the view is frozen (the store keeps growing)."""
        return self._paused

    def pending_rows(self) -> int:
        """Frames in the store not shown yet because the view is paused."""
        return max(0, self.store.end_seq - self._shown_end)

    def set_paused(self, paused: bool) -> None:
        """Pause / resume; resuming shows everything that arrived meanwhile in one insert."""
        if paused == self._paused:
            return
        self._paused = paused
        if not paused:
            self._show_new(self.store.end_seq)

    def rows_appended(self, frames: int) -> None:
        """The store grew by `frames` frames at its end: show them (one insert) unless
        paused. Call after `rows_dropped` when one append did both."""
        if frames <= 0:
            return
        if self.times.t0 is None and len(self.store):
            self.times.t0 = self.store.timestamp(self.store.first_seq)
        if not self._paused:
            self._show_new(self.store.end_seq)

    def show_new(self) -> None:
        """Insert the stored frames not shown yet (no-op while paused)."""
        if not self._paused:
            self._show_new(self.store.end_seq)

    def rows_dropped(self, frames: int) -> None:
        """The store dropped its `frames` oldest frames (already gone): remove their rows."""
        if frames <= 0:
            return
        cut = self.store.first_seq
        if self._view is not None:
            k = int(np.searchsorted(self._view, cut))
            if k:
                self.beginRemoveRows(QModelIndex(), 0, k - 1)
                self._view = self._view[k:]
                self._first = cut
                self.endRemoveRows()
        else:
            k = max(0, min(cut, self._shown_end) - self._first)
            if k:
                self.beginRemoveRows(QModelIndex(), 0, k - 1)
                self._first = min(cut, self._shown_end)
                self.endRemoveRows()
        self._first = max(self._first, cut)
        self._shown_end = max(self._shown_end, cut)
        for cache in (self._decoded, self._rows):
            for seq in [s for s in cache if s < cut]:
                del cache[seq]

    def store_cleared(self) -> None:
        """The store was cleared (`TraceStore.clear`): forget every row and running query."""
        self.cancel_search()
        self.beginResetModel()
        self._first = self._shown_end = self.store.end_seq
        self._view = None if self._filter.is_empty() else np.empty(0, np.int64)
        self._decoded.clear()
        self._rows.clear()
        self.times.t0 = None
        self.endResetModel()

    def _show_new(self, end: int) -> None:
        start = max(self._shown_end, self.store.first_seq)
        if end <= start:
            self._shown_end = max(self._shown_end, end)
            return
        if self._view is None:
            rows = self.rowCount()
            self.beginInsertRows(QModelIndex(), rows, rows + (end - start) - 1)
            self._shown_end = end
            self.endInsertRows()
            return
        # New frames of a filtered view: few per tick, filtered here at once.
        new = self._filter.select(self.store.segments(start, end), self.decoder)
        self._shown_end = end
        if new.shape[0]:
            rows = self.rowCount()
            self.beginInsertRows(QModelIndex(), rows, rows + int(new.shape[0]) - 1)
            self._view = np.concatenate([self._view, new])
            self.endInsertRows()

    # -- filtering --------------------------------------------------------------------------
    @property
    def view_filter(self) -> TraceQuery:
        """The active filter."""
        return self._filter

    @property
    def searching(self) -> bool:
        """True while a background filter/search runs (the view shows new frames only)."""
        return self._task is not None

    def set_filter(self, flt: TraceQuery) -> None:
        """Apply a filter to every frame of the view (one model reset). Over many frames it
        runs in the background: the view starts with the matching frames that arrive from now
        on, and `search_finished` follows when the earlier ones are in."""
        self.cancel_search()
        self.beginResetModel()
        self._filter = flt
        if flt.is_empty():
            self._view = None
        else:
            start, end = max(self._first, self.store.first_seq), self._shown_end
            segments = self.store.segments(start, end)
            threshold = ASYNC_TEXT_SEARCH_FRAMES if flt.text else ASYNC_FILTER_FRAMES
            if end - start >= threshold:
                self._view = np.empty(0, np.int64)
                self._start_query(flt, segments)
            else:
                self._view = flt.select(segments, self.decoder)
        self.endResetModel()

    set_query = set_filter

    def cancel_search(self) -> None:
        """Stop a running background query; its result is never shown."""
        self._task_gen += 1
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def wait_search(self, timeout_s: float = 5.0) -> None:
        """Join a running query's worker (shutdown and tests)."""
        if self._task is not None:
            self._task.wait(timeout_s)

    def _start_query(self, flt: TraceQuery, segments: list[Segment]) -> None:
        gen = self._task_gen
        decoder = self.decoder

        def work(report: Callable[[float], None]) -> np.ndarray:
            return flt.select(segments, decoder, report)

        def done(result: object) -> None:
            if gen != self._task_gen or self._view is None:
                return  # stale: the filter changed or the trace was cleared meanwhile
            self._task = None
            assert isinstance(result, np.ndarray)
            found = result[result >= max(self._first, self.store.first_seq)]
            self.beginResetModel()
            self._view = np.concatenate([found.astype(np.int64), self._view])
            self.endResetModel()
            self.search_finished.emit(int(self._view.shape[0]))

        def failed(exc: BaseException, trace: str) -> None:
            if gen != self._task_gen:
                return
            self._task = None
            if not isinstance(exc, CancelledError):
                log.error("trace filter failed: %s\n%s", exc, trace)
            self.search_finished.emit(self.rowCount())

        def progress(fraction: float) -> None:
            if gen == self._task_gen:
                self.query_progress.emit(fraction)

        self._task = run_in_background(
            work,
            name="trace filter",
            on_success=done,
            on_error=failed,
            on_progress=progress,
        )

    # -- misc -------------------------------------------------------------------------------
    def invalidate_decoding(self) -> None:
        """Forget cached decoded text (after loading an EDS/DBC or adding ISO-TP pairs); a
        running search starts again with the new decoding."""
        self._decoded.clear()
        self._rows.clear()
        if self.searching:
            self.set_filter(self._filter)
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, COL_DECODED), self.index(self.rowCount() - 1, COL_DECODED)
            )

    def set_time_mode(self, mode: str) -> None:
        """absolute / relative (to the first frame) / delta (per ID)."""
        if mode not in TIME_MODES:
            raise ValueError(f"unknown time mode {mode}")
        self.times.mode = mode
        self._rows.clear()
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, COL_TIME), self.index(self.rowCount() - 1, COL_TIME)
            )

    def visible_seqs(self) -> np.ndarray:
        """Sequence numbers of every row (for "save filtered selection")."""
        if self._view is not None:
            return self._view.copy()
        return np.arange(self._first, self._shown_end, dtype=np.int64)


BYID_DATA_COLUMNS = 8
BYID_COLUMNS = (
    "ID",
    "Chan",
    "Count",
    "Period mean ms",
    "min ms",
    "max ms",
    *(f"B{i}" for i in range(BYID_DATA_COLUMNS)),
    "B8…",
)
BYID_FIRST_BYTE_COL = 6
BYID_REFRESH_FRAMES = 1_000_000
"""Frames aggregated per refresh at most (a 10 M-frame file fills over several ticks)."""
CHANGED_BYTE_COLOR = QColor(255, 200, 80)
"""Background of a data byte that differs from the previous frame of the same ID."""


@dataclass(frozen=True)
class ByIdRow:
    """One identifier's statistics and its last data with the changed bytes."""

    can_id: int
    extended: bool
    channel: str
    count: int
    period_mean_ms: float
    period_min_ms: float
    period_max_ms: float
    data: bytes
    changed: tuple[bool, ...]

    def cell(self, col: int) -> str:
        """Display text of one column."""
        if col == 0:
            return id_text(self.can_id, self.extended)
        if col == 1:
            return self.channel
        if col == 2:
            return str(self.count)
        if col in (3, 4, 5):
            value = (self.period_mean_ms, self.period_min_ms, self.period_max_ms)[col - 3]
            return f"{value:.2f}"
        i = col - BYID_FIRST_BYTE_COL
        if i < BYID_DATA_COLUMNS:
            return f"{self.data[i]:02X}" if i < len(self.data) else ""
        return self.data[BYID_DATA_COLUMNS:].hex(" ").upper()

    def byte_changed(self, col: int) -> bool:
        """True when the byte (or any FD tail byte) of this column changed."""
        i = col - BYID_FIRST_BYTE_COL
        if i < 0:
            return False
        if i < BYID_DATA_COLUMNS:
            return i < len(self.changed) and self.changed[i]
        return any(self.changed[BYID_DATA_COLUMNS:])

    def data_text(self) -> str:
        """Last data as hex with `*` after each changed byte (for copying / text logs)."""
        return " ".join(
            f"{x:02X}" + ("*" if i < len(self.changed) and self.changed[i] else "")
            for i, x in enumerate(self.data)
        )


@dataclass
class _IdStats:
    count: int
    first_ts: float
    last_ts: float
    min_ms: float
    max_ms: float
    last_seq: int
    prev_seq: int


class ByIdModel(_FrameTable):
    """One row per (ID, channel): count, period statistics and the last data, one column per
    byte; bytes that changed since the previous frame of the ID get a coloured background.
    Honours the ID/direction/type criteria of the view's filter (`set_frame_filter`).
    `refresh()` aggregates the frames that arrived since the last call, segment by segment
    (at most BYID_REFRESH_FRAMES per call: `backlog` says when more wait)."""

    columns = BYID_COLUMNS

    def __init__(self, store: TraceStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._rows: list[ByIdRow] = []
        self._stats: dict[int, _IdStats] = {}
        self._next = store.first_seq
        self._filter = TraceFilter()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.cell(col)
        if role == Qt.ItemDataRole.BackgroundRole and row.byte_changed(col):
            return CHANGED_BYTE_COLOR
        if role == Qt.ItemDataRole.FontRole and (col == 0 or col >= BYID_FIRST_BYTE_COL):
            return self._mono
        if role == Qt.ItemDataRole.ToolTipRole and col >= BYID_FIRST_BYTE_COL:
            return row.data_text()
        return None

    def row(self, row: int) -> ByIdRow:
        """The statistics of one row."""
        return self._rows[row]

    def set_frame_filter(self, flt: TraceFilter) -> None:
        """Count only frames passing `flt` (recomputed on the next refreshes)."""
        if flt != self._filter:
            self._filter = flt
            self.reset()

    def reset(self) -> None:
        """Forget the statistics (the trace was cleared or the filter changed)."""
        self._stats.clear()
        self._next = self.store.first_seq
        self.beginResetModel()
        self._rows = []
        self.endResetModel()

    @property
    def backlog(self) -> bool:
        """True when stored frames wait to be aggregated."""
        return self._next < self.store.end_seq

    def refresh(self, max_frames: int = BYID_REFRESH_FRAMES) -> None:
        """Aggregate the frames that arrived since the last call (vectorised per segment)."""
        start = max(self._next, self.store.first_seq)
        end = min(self.store.end_seq, start + max_frames)
        self._next = end
        for seg in self.store.segments(start, end):
            self._aggregate(seg)
        live = {k: s for k, s in self._stats.items() if s.last_seq >= self.store.first_seq}
        self._stats = live
        rows: list[ByIdRow] = []
        names = self.store.channel_names
        for key in sorted(live):
            st = live[key]
            last = self.store.record(st.last_seq)
            prev = self.store.record(st.prev_seq) if st.prev_seq >= self.store.first_seq else last
            changed = tuple(
                i >= len(prev.data) or prev.data[i] != x for i, x in enumerate(last.data)
            )
            chan = (key >> 40) & 0xFF
            mean = (st.last_ts - st.first_ts) * 1000.0 / (st.count - 1) if st.count > 1 else 0.0
            rows.append(
                ByIdRow(
                    key & 0xFFFFFFFF,
                    bool((key >> 32) & 1),
                    names[chan] if chan < len(names) else str(chan),
                    st.count,
                    mean,
                    st.min_ms if st.count > 1 else 0.0,
                    st.max_ms if st.count > 1 else 0.0,
                    last.data,
                    changed
                    if st.count > 1 and st.prev_seq != st.last_seq
                    else (False,) * len(last.data),
                )
            )
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def _aggregate(self, seg: Segment) -> None:
        b = seg.batch
        mask = self._filter.mask(b.ids, b.flags, b.channel)
        rows = np.nonzero(mask)[0]
        if rows.shape[0] == 0:
            return
        key = (
            b.ids[rows].astype(np.uint64)
            | ((b.flags[rows] & FLAG_EXTENDED).astype(np.uint64) << np.uint64(32))
            | (b.channel[rows].astype(np.uint64) << np.uint64(40))
        )
        order = np.argsort(key, kind="stable")
        skey = key[order]
        bounds = np.nonzero(np.diff(skey))[0] + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [skey.shape[0]]])
        ts = b.timestamp[rows][order]
        delta_ms = seg.delta[rows][order].astype(np.float64) * 1000.0
        seqs = rows[order] + seg.first
        for a, e in zip(starts.tolist(), ends.tolist(), strict=True):
            k = int(skey[a])
            st = self._stats.get(k)
            if st is None:
                d = delta_ms[a + 1 : e]
                self._stats[k] = _IdStats(
                    e - a,
                    float(ts[a]),
                    float(ts[e - 1]),
                    float(d.min()) if d.shape[0] else 0.0,
                    float(d.max()) if d.shape[0] else 0.0,
                    int(seqs[e - 1]),
                    int(seqs[e - 2]) if e - a > 1 else int(seqs[e - 1]),
                )
                continue
            d = delta_ms[a:e]
            st.min_ms = min(st.min_ms, float(d.min())) if st.count > 1 else float(d.min())
            st.max_ms = max(st.max_ms, float(d.max()))
            st.count += e - a
            st.last_ts = float(ts[e - 1])
            st.prev_seq = int(seqs[e - 2]) if e - a > 1 else st.last_seq
            st.last_seq = int(seqs[e - 1])
