"""Qt table models over the columnar trace store: the live frame table and the "by ID" table.

`TraceModel` shows the frames of a `TraceStore` (all, or the sequence numbers a filter
selected). Frames enter only through `ingest(batch)`, called by the panel's ~50 ms timer: ONE
beginInsertRows/endInsertRows per batch, and one beginRemoveRows per dropped chunk of the
oldest frames. Paused, the store keeps growing but the model does not insert (the panel shows
"N new frames"). Decoded text is computed lazily for the rows the view asks for and cached by
sequence number. A free-text search over many frames runs on a worker thread (on a snapshot
of the matching frames, so the store keeps growing meanwhile); `search_finished` tells when
its result is shown. `ByIdModel` summarises the store per identifier, recomputed with numpy on
demand. GUI thread only (but for that worker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont

from fota_studio.engine.trace_store import (
    FLAG_BRS,
    FLAG_ERROR,
    FLAG_ESI,
    FLAG_EXTENDED,
    FLAG_FD,
    FLAG_REMOTE,
    FLAG_TX,
    FrameBatch,
    TraceFilter,
    TraceStore,
)
from fota_studio.protocols.decode import Decoder

COLUMNS = ("Time", "Chan", "Dir", "ID", "Type", "DLC", "Data", "Decoded")
COL_TIME, COL_CHAN, COL_DIR, COL_ID, COL_TYPE, COL_DLC, COL_DATA, COL_DECODED = range(8)
TIME_MODES = ("absolute", "relative", "delta")
DECODE_CACHE_ROWS = 20_000
ROW_CACHE_ROWS = 4_000
TEXT_SEARCH_MAX_ROWS = 200_000
"""Free-text search decodes each DISTINCT frame once; beyond this many distinct frames it
searches the newest frames only (the status line says how many rows are shown)."""
ASYNC_TEXT_SEARCH_FRAMES = 20_000
"""A free-text search over at least this many frames runs on a worker thread."""

log = logging.getLogger(__name__)

Describe = Callable[[int, bool, bytes], str]

_Index = QModelIndex | QPersistentModelIndex
_DISPLAY = Qt.ItemDataRole.DisplayRole
_FONT = Qt.ItemDataRole.FontRole
_BACKGROUND = Qt.ItemDataRole.BackgroundRole
_ALIGN = Qt.ItemDataRole.TextAlignmentRole
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def id_text(can_id: int, extended: bool) -> str:
    """`7E8` for 11-bit, `18DA11F1x` for 29-bit identifiers (the trailing x marks 29-bit)."""
    return f"{can_id:08X}x" if extended else f"{can_id:03X}"


def type_text(flags: int) -> str:
    """data / remote / error / FD, with BRS and ESI."""
    if flags & FLAG_ERROR:
        return "error"
    if flags & FLAG_REMOTE:
        return "remote"
    if flags & FLAG_FD:
        return "FD" + (" BRS" if flags & FLAG_BRS else "") + (" ESI" if flags & FLAG_ESI else "")
    return "data"


@dataclass
class ViewFilter:
    """What the table shows: the vectorised store filter plus protocol and text criteria."""

    frames: TraceFilter = field(default_factory=TraceFilter)
    protocols: frozenset[str] = frozenset()
    text: str = ""

    def is_empty(self) -> bool:
        """True when every frame is shown."""
        return self.frames.is_empty() and not self.protocols and not self.text


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


def describe_safely(describe: Describe, can_id: int, extended: bool, data: bytes) -> str:
    """`describe(...)`, or the decoder's error as text: a decoder bug never breaks the view."""
    try:
        return describe(can_id, extended, data)
    except Exception as exc:
        return f"(decode error: {exc})"


def text_match_mask(
    batch: FrameBatch,
    needle: str,
    describe: Describe,
    cancel: threading.Event | None = None,
) -> np.ndarray | None:
    """Which frames of `batch` have decoded text containing `needle` (lower case); None when
    `cancel` was set meanwhile. Pure (no Qt, no store): safe on a worker thread.

    The per-frame text is context-free, so each distinct (ID, flags, length, 8 data bytes) is
    decoded ONCE (cyclic traffic repeats itself: 1M frames are typically a few thousand
    distinct ones); CAN FD frames longer than 8 bytes are checked one by one. Beyond
    `TEXT_SEARCH_MAX_ROWS` distinct frames (random data) only the newest frames are searched.
    """
    n = len(batch)
    if n == 0:
        return np.zeros(0, np.bool_)

    def text(i: int) -> str:
        flags = int(batch.flags[i])
        if flags & (FLAG_ERROR | FLAG_REMOTE):
            return ""
        data = batch.data[i, : min(8, int(batch.length[i]))].tobytes() + batch.ext.get(i, b"")
        return describe_safely(describe, int(batch.ids[i]), bool(flags & FLAG_EXTENDED), data)

    key = np.empty((n, 16), np.uint8)
    key[:, 0:4] = batch.ids.astype("<u4").view(np.uint8).reshape(n, 4)
    key[:, 4:6] = (
        (batch.flags & (FLAG_EXTENDED | FLAG_ERROR | FLAG_REMOTE))
        .astype("<u2")
        .view(np.uint8)
        .reshape(n, 2)
    )
    key[:, 6] = batch.length
    key[:, 7] = 0
    key[:, 8:16] = batch.data
    packed = key.view(np.dtype((np.void, 16))).reshape(n)
    uniq, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
    if uniq.shape[0] > TEXT_SEARCH_MAX_ROWS:  # pathological (random data): newest only
        keep_from = n - TEXT_SEARCH_MAX_ROWS
        out = np.zeros(n, np.bool_)
        mask = text_match_mask(batch.tail(keep_from), needle, describe, cancel)
        if mask is None:
            return None
        out[keep_from:] = mask
        return out
    hits = np.zeros(first.shape[0], np.bool_)
    for k, i in enumerate(first.tolist()):
        if cancel is not None and k % 1024 == 0 and cancel.is_set():
            return None
        hits[k] = needle in text(i).lower()
    out = hits[inverse.reshape(n)]
    for row in batch.ext:  # long FD frames: the tail is not part of the key
        out[row] = needle in text(row).lower()
    return out


class TraceModel(QAbstractTableModel):
    """The live trace table (see module docstring)."""

    #: A background free-text search ended and its result is shown (rows now shown).
    search_finished = Signal(int)
    #: Worker -> GUI thread: (search generation, candidate seqs, match mask).
    _search_done = Signal(int, object, object)

    def __init__(self, store: TraceStore, decoder: Decoder | None = None, parent=None) -> None:
        super().__init__(parent)
        self._search_gen = 0
        self._search_cancel: threading.Event | None = None
        self._search_done.connect(self._on_search_done)
        self.store = store
        self.decoder = decoder or Decoder()
        self.time_mode = "absolute"
        self._paused = False
        self._shown_end = store.end_seq  # frames [first_seq, _shown_end) are visible (no filter)
        self._view: np.ndarray | None = None  # seqs shown when filtered
        self._filter = ViewFilter()
        self._decoded: OrderedDict[int, str] = OrderedDict()
        self._rows: OrderedDict[int, tuple] = OrderedDict()
        self._t0: float | None = None
        self._mono = QFont("monospace")
        self._mono.setStyleHint(QFont.StyleHint.Monospace)
        self._tx_brush = QColor(230, 240, 255)
        self._err_brush = QColor(255, 225, 225)

    # -- Qt model API ---------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        if self._view is not None:
            return int(self._view.shape[0])
        return max(0, self._shown_end - self.store.first_seq)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        """One Python call per cell instead of two: the C++ default asks `rowCount` AND
        `columnCount` (each a GIL acquisition that waits behind the Notifier threads while the
        view paints; bench/trace.py measured that as the live stall)."""
        if parent.isValid() or row < 0 or column < 0 or column >= len(COLUMNS):
            return QModelIndex()
        if row >= self.rowCount():
            return QModelIndex()
        return self.createIndex(row, column)

    def seq_at(self, row: int) -> int:
        """Store sequence number of a table row."""
        if self._view is not None:
            return int(self._view[row])
        return self.store.first_seq + row

    def row_of_seq(self, seq: int) -> int | None:
        """Table row showing `seq`, or None when filtered out / not shown."""
        if self._view is not None:
            i = int(np.searchsorted(self._view, seq))
            return i if i < self._view.shape[0] and int(self._view[i]) == seq else None
        row = seq - self.store.first_seq
        return row if 0 <= row < self.rowCount() else None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
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
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def multiData(self, index: _Index, span) -> None:
        """All roles of one cell in ONE Python call (Qt 6's item delegates ask for ~8 roles per
        cell; per-role `data()` calls each re-acquire the GIL, which stalls painting while the
        Notifier threads run)."""
        if not index.isValid():
            return
        row, col = index.row(), index.column()
        if row >= self.rowCount():
            return
        cells = self._row(self.seq_at(row))
        for role_data in span:
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

    def row_cells(self, row: int) -> tuple:
        """Display strings of every column of a table row, plus the flags last (cached; the
        view's single-call paint uses this instead of per-cell `data()`)."""
        return self._row(self.seq_at(row))

    def _row(self, seq: int) -> tuple:
        """All display strings of one frame (+ flags), cached: one store lookup per row."""
        row = self._rows.get(seq)
        if row is not None:
            return row
        rec = self.store.record(seq)
        if self.time_mode == "delta":
            time_text = f"{self.store.delta(seq) * 1000:.3f} ms"
        elif self.time_mode == "relative":
            t0 = self._t0 if self._t0 is not None else rec.timestamp
            time_text = f"{rec.timestamp - t0:.6f}"
        else:
            time_text = absolute_time_text(rec.timestamp)
        names = self.store.channel_names
        row = (
            time_text,
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
            if rec.flags & (FLAG_ERROR | FLAG_REMOTE):
                text = ""
            else:  # a decoder bug must never break painting
                text = describe_safely(
                    self.decoder.describe_frame,
                    rec.arbitration_id,
                    bool(rec.flags & FLAG_EXTENDED),
                    rec.data,
                )
            self._decoded[seq] = text
            if len(self._decoded) > DECODE_CACHE_ROWS:
                self._decoded.popitem(last=False)
        return text

    # -- live updates -----------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        """True while the view is frozen (capture continues into the store)."""
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

    def ingest(self, batch: FrameBatch, *, show: bool = True) -> None:
        """Append a drained batch: trim the oldest chunks if needed, then one insert. With
        `show=False` the frames only go to the store; `show_new()` inserts them later (the
        panel inserts at most every 100 ms: each insert relayouts and repaints the view)."""
        n = len(batch)
        if n == 0:
            return
        drop = self.store.frames_to_drop(n)
        if drop:
            self._drop_oldest(drop)
        if self._t0 is None:
            self._t0 = float(batch.timestamp[0])
        self.store.append_batch(batch)
        if show and not self._paused:
            self._show_new(self.store.end_seq)

    def show_new(self) -> None:
        """Insert the stored frames not shown yet (no-op while paused)."""
        if not self._paused:
            self._show_new(self.store.end_seq)

    def _drop_oldest(self, frames: int) -> None:
        first = self.store.first_seq
        cut = first + frames
        if self._view is not None:
            k = int(np.searchsorted(self._view, cut))
            if k:
                self.beginRemoveRows(QModelIndex(), 0, k - 1)
                self._view = self._view[k:]
                self.store.drop_oldest(frames)
                self.endRemoveRows()
            else:
                self.store.drop_oldest(frames)
        else:
            k = max(0, min(cut, self._shown_end) - first)
            if k:
                self.beginRemoveRows(QModelIndex(), 0, k - 1)
                self.store.drop_oldest(frames)
                self.endRemoveRows()
            else:
                self.store.drop_oldest(frames)
            self._shown_end = max(self._shown_end, self.store.first_seq)
        for cache in (self._decoded, self._rows):
            for seq in [s for s in cache if s < cut]:
                del cache[seq]

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
        new = self._select(start, end)
        self._shown_end = end
        if new.shape[0]:
            rows = self.rowCount()
            self.beginInsertRows(QModelIndex(), rows, rows + int(new.shape[0]) - 1)
            self._view = np.concatenate([self._view, new])
            self.endInsertRows()

    # -- filtering --------------------------------------------------------------------------
    @property
    def view_filter(self) -> ViewFilter:
        """The active filter."""
        return self._filter

    @property
    def searching(self) -> bool:
        """True while a background free-text search runs (the view shows new frames only)."""
        return self._search_cancel is not None

    def set_filter(self, flt: ViewFilter) -> None:
        """Apply a filter to the whole store (one model reset). A free-text search over many
        frames continues on a worker thread: the view starts with the matching frames that
        arrive from now on, and `search_finished` follows when the earlier ones are in."""
        self.cancel_search()
        self.beginResetModel()
        self._filter = flt
        if flt.is_empty():
            self._view = None
        else:
            start, end = self.store.first_seq, self._shown_end
            seqs = self._select_columns(start, end)
            if flt.text and seqs.shape[0] >= ASYNC_TEXT_SEARCH_FRAMES:
                self._view = np.empty(0, np.int64)
                self._start_search(seqs, flt.text.lower())
            else:
                self._view = self._select_text(seqs)
        self.endResetModel()

    def cancel_search(self) -> None:
        """Stop a running background search; its result is never shown."""
        if self._search_cancel is not None:
            self._search_cancel.set()
            self._search_cancel = None
        self._search_gen += 1

    def _start_search(self, seqs: np.ndarray, needle: str) -> None:
        batch = self.store.batch(seqs)  # a snapshot: the store may drop chunks meanwhile
        cancel = threading.Event()
        self._search_cancel = cancel
        gen = self._search_gen
        describe = self.decoder.describe_frame

        def work() -> None:
            try:
                mask = text_match_mask(batch, needle, describe, cancel)
            except Exception:  # never a silent half result: log and show nothing
                log.exception("trace text search failed")
                mask = np.zeros(len(batch), np.bool_)
            if mask is None or cancel.is_set():
                return
            try:
                self._search_done.emit(gen, seqs, mask)
            except RuntimeError:  # the model was deleted meanwhile (panel closed)
                pass

        threading.Thread(target=work, name="fota-trace-search", daemon=True).start()

    def _on_search_done(self, gen: int, seqs: np.ndarray, mask: np.ndarray) -> None:
        # GUI thread. A stale result (filter changed, cleared, decoder changed) is dropped.
        if gen != self._search_gen or self._search_cancel is None or self._view is None:
            return
        self._search_cancel = None
        found = seqs[mask]
        found = found[found >= self.store.first_seq]  # dropped from the store meanwhile
        self.beginResetModel()
        self._view = np.concatenate([found.astype(np.int64), self._view])
        self.endResetModel()
        self.search_finished.emit(int(self._view.shape[0]))

    def _select(self, start: int, end: int) -> np.ndarray:
        """Seqs in [start, end) passing the filter: columns first (numpy), then text."""
        return self._select_text(self._select_columns(start, end))

    def _select_columns(self, start: int, end: int) -> np.ndarray:
        """Seqs in [start, end) passing the ID/direction/type and protocol criteria."""
        flt = self._filter
        seqs = self.store.filter(flt.frames, start, end)
        if flt.protocols and seqs.shape[0]:
            start = max(start, self.store.first_seq)
            ids = self.store.column("ids", start, end)
            flags = self.store.column("flags", start, end)
            local = seqs - start
            others = flt.protocols - {"UDS"}
            mask = self.decoder.protocol_mask(ids[local], flags[local], others)
            if "UDS" in flt.protocols and "ISO-TP" not in flt.protocols:
                # UDS vs plain ISO-TP needs the first payload byte: vectorised over the data
                data = self.store.column("data", start, end)[local]
                mask |= self.decoder.uds_mask(ids[local], flags[local], data)
            elif "UDS" in flt.protocols:
                mask |= self.decoder.protocol_mask(ids[local], flags[local], ("ISO-TP",))
            seqs = seqs[mask]
        return seqs.astype(np.int64)

    def _select_text(self, seqs: np.ndarray) -> np.ndarray:
        """The seqs whose decoded text contains the filter's text (all when it has none)."""
        needle = self._filter.text.lower()
        if not needle or not seqs.shape[0]:
            return seqs.astype(np.int64)
        mask = text_match_mask(self.store.batch(seqs), needle, self.decoder.describe_frame)
        assert mask is not None  # no cancel event: always a result
        return seqs[mask].astype(np.int64)

    # -- misc -------------------------------------------------------------------------------
    def invalidate_decoding(self) -> None:
        """Forget cached decoded text (after loading an EDS/DBC or adding ISO-TP pairs); a
        running text search starts again with the new decoding."""
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
        self.time_mode = mode
        self._rows.clear()
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, COL_TIME), self.index(self.rowCount() - 1, COL_TIME)
            )

    def clear(self) -> None:
        """Forget every frame (store included)."""
        self.cancel_search()
        self.beginResetModel()
        self.store.clear()
        self._shown_end = self.store.end_seq
        self._view = None if self._filter.is_empty() else np.empty(0, np.int64)
        self._decoded.clear()
        self._rows.clear()
        self._t0 = None
        self.endResetModel()

    def visible_seqs(self) -> np.ndarray:
        """Sequence numbers of every row (for "save filtered selection")."""
        if self._view is not None:
            return self._view.copy()
        return np.arange(self.store.first_seq, self._shown_end, dtype=np.int64)


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


class ByIdModel(QAbstractTableModel):
    """One row per (ID, channel): count, period statistics and the last data, one column per
    byte; bytes that changed since the previous frame of the ID get a coloured background.
    Call `refresh()` from a timer while visible; it is vectorised over the store."""

    def __init__(self, store: TraceStore, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self._rows: list[ByIdRow] = []
        self._mono = QFont("monospace")
        self._mono.setStyleHint(QFont.StyleHint.Monospace)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(BYID_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return BYID_COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
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

    def refresh(self) -> None:
        """Recompute the per-ID table from the store (numpy group-by)."""
        store = self.store
        ids = store.column("ids").astype(np.uint64)
        flags = store.column("flags")
        chans = store.column("channel").astype(np.uint64)
        ts = store.column("ts")
        key = ids | ((flags & FLAG_EXTENDED).astype(np.uint64) << 32) | (chans << 40)
        rows: list[ByIdRow] = []
        if key.shape[0]:
            order = np.argsort(key, kind="stable")
            skey = key[order]
            bounds = np.nonzero(np.diff(skey))[0] + 1
            starts = np.concatenate([[0], bounds])
            ends = np.concatenate([bounds, [skey.shape[0]]])
            sts = ts[order]
            names = store.channel_names
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                k = int(skey[a])
                count = b - a
                periods = np.diff(sts[a:b]) * 1000.0
                mean = float(periods.mean()) if count > 1 else 0.0
                pmin = float(periods.min()) if count > 1 else 0.0
                pmax = float(periods.max()) if count > 1 else 0.0
                last = store.record(store.first_seq + int(order[b - 1]))
                prev = store.record(store.first_seq + int(order[b - 2])) if count > 1 else last
                changed = tuple(
                    i >= len(prev.data) or prev.data[i] != x for i, x in enumerate(last.data)
                )
                chan = (k >> 40) & 0xFF
                rows.append(
                    ByIdRow(
                        k & 0xFFFFFFFF,
                        bool((k >> 32) & 1),
                        names[chan] if chan < len(names) else str(chan),
                        count,
                        mean,
                        pmin,
                        pmax,
                        last.data,
                        changed if count > 1 else tuple(False for _ in last.data),
                    )
                )
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()
