"""The trace's "Messages" view: one row per reassembled ISO-TP message (UDS request/response).

`MessagesModel` lists the lines of a `MessageTracker` (protocols.decode): each UDS request or
response with its decoded text, a TransferData burst collapsed to ONE summary row (block
counter range and bytes) instead of hundreds of CF/FC frames. The panel feeds the tracker the
diagnostic frames that arrived since the last refresh (incremental, so a long capture is not
re-decoded) and calls `refresh()`. Times are written by the document's `TimeFormat` (as in
the Frames tab) and the view's filter applies here too (`set_query`: the ID criteria on the
message's identifier, the protocol filter and the free text on the line's text). GUI thread
only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt

from fota_studio.core.frames import FLAG_ERROR, FLAG_REMOTE
from fota_studio.engine.trace_search import TraceQuery
from fota_studio.engine.trace_store import Segment, TraceStore, filter_segments
from fota_studio.protocols.decode import DecodedLine, Decoder, MessageTracker, TpFrame
from fota_studio.ui.models.trace_model import TimeFormat
from fota_studio.ui.widgets.column_model import ColumnTableModel

MESSAGE_COLUMNS = ("Time", "ID", "Frames", "Message")
FEED_MAX_FRAMES = 200_000
"""Diagnostic frames of a backlog decoded at most (a huge backlog is taken newest first; the
older ones are counted in `skipped` and shown in the status line)."""
FEED_CHUNK_FRAMES = 5_000
"""Diagnostic frames fed per refresh (≈ 40 ms of Python): a backlog spreads over ticks."""

_Index = QModelIndex | QPersistentModelIndex


class MessagesModel(ColumnTableModel):
    """Reassembled ISO-TP / UDS messages of the trace (see module docstring)."""

    columns = MESSAGE_COLUMNS

    def __init__(
        self, store: TraceStore, decoder: Decoder, parent: QObject, times: TimeFormat
    ) -> None:
        """`times`: the document's time format (the Frames tab writes times with it too)."""
        super().__init__(parent)
        self.store = store
        self.decoder = decoder
        self.times = times
        self.tracker = MessageTracker(decoder)
        self._next_seq = store.first_seq
        self._all: list[DecodedLine] = []
        self._lines: list[DecodedLine] = []
        self._query = TraceQuery()
        self.skipped = 0
        """Diagnostic frames not decoded because the backlog was larger than FEED_MAX_FRAMES."""

    def row_count(self) -> int:
        """The lines shown (after the filter)."""
        return len(self._lines)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        line = self._lines[index.row()]
        col = index.column()
        if col == 0:
            return self.times.text(line.timestamp)
        if col == 1:
            return f"{line.can_id:X}"
        if col == 2:
            return str(len(line.frame_seqs))
        return line.text

    def line(self, row: int) -> DecodedLine:
        """The line shown in `row`."""
        return self._lines[row]

    def reset(self) -> None:
        """Forget everything (the trace was cleared or a file is being opened)."""
        self.beginResetModel()
        self.tracker.clear()
        self._all = []
        self._lines = []
        self._next_seq = self.store.end_seq
        self.skipped = 0
        self.endResetModel()

    def rebuild(self) -> None:
        """Decode the whole store again (after ISO-TP pairs or DID names changed)."""
        self.tracker = MessageTracker(self.decoder)
        self._next_seq = self.store.first_seq
        self.skipped = 0
        self.refresh()

    @property
    def backlog(self) -> bool:
        """True when stored frames wait to be fed (the panel refreshes again next tick)."""
        return self._next_seq < self.store.end_seq

    def refresh(self, max_frames: int = FEED_CHUNK_FRAMES) -> None:
        """Feed up to `max_frames` diagnostic frames that arrived since the last call (a large
        backlog is fed over several timer ticks, so a tick stays short); update the rows."""
        start = max(self._next_seq, self.store.first_seq)
        end = self.store.end_seq
        self._next_seq = end
        if end > start:
            decoder = self.decoder

            def diagnostic(seg: Segment) -> npt.NDArray[np.bool_]:
                b = seg.batch
                mask = decoder.protocol_mask(b.ids, b.flags, ("ISO-TP",))
                out: npt.NDArray[np.bool_] = mask & ((b.flags & (FLAG_ERROR | FLAG_REMOTE)) == 0)
                return out

            seqs = filter_segments(self.store.segments(start, end), diagnostic)
            if seqs.shape[0] > FEED_MAX_FRAMES:
                self.skipped += int(seqs.shape[0]) - FEED_MAX_FRAMES
                seqs = seqs[-FEED_MAX_FRAMES:]
            if seqs.shape[0] > max_frames:
                self._next_seq = int(seqs[max_frames])  # the rest on the next call
                seqs = seqs[:max_frames]
            frames = [
                TpFrame(r.seq, r.timestamp, r.arbitration_id, r.data)
                for r in self.store.records(seqs)
            ]
            if not self.tracker.feed(frames) and self._all:
                return
        lines = self.tracker.lines()
        if len(lines) == len(self._all) and lines == self._all:
            return
        self._all = lines
        self._apply_query()

    def set_query(self, query: TraceQuery) -> None:
        """Show only the lines passing the view's filter."""
        self._query = query
        self._apply_query()

    def times_changed(self) -> None:
        """The time mode changed: repaint the time column."""
        if self._lines:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._lines) - 1, 0))

    def _passes(self, line: DecodedLine) -> bool:
        q = self._query
        if not q.frames.id_passes(line.can_id):
            return False
        if q.protocols and not q.protocols & {"UDS", "ISO-TP"}:
            return False
        return not q.text or q.text.lower() in line.text.lower()

    def _apply_query(self) -> None:
        q = self._query
        has_filter = not q.frames.is_empty() or bool(q.protocols) or bool(q.text)
        lines = [ln for ln in self._all if self._passes(ln)] if has_filter else list(self._all)
        self.beginResetModel()
        self._lines = lines
        self.endResetModel()
