"""One trace document: the live capture, or one opened log file, with its own tabs.

A `TraceDocument` owns a `TraceStore` (bounded for the live capture, unbounded for a file),
the `TimeFormat` every one of its tabs writes times with, and the views over that store:
Frames (`TraceModel` in a `TraceTableView`), Messages (ISO-TP/UDS), By ID and Plots, plus the
details pane. Whoever feeds the store calls `appended(Appended)` so the views hear
`rows_dropped` / `rows_appended`; the document never appends to a store itself. The panel's
filter goes to every tab through `apply_query`. Follow mode keeps the newest row in view until
the user scrolls away (a resize does not stop it). GUI thread only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QItemSelection, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSlider,
    QHeaderView,
    QPlainTextEdit,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.frames import FLAG_EXTENDED, FLAG_TX
from fota_studio.engine.trace_capture import Appended
from fota_studio.engine.trace_search import TraceQuery
from fota_studio.engine.trace_store import TraceFilter, TraceStore
from fota_studio.protocols.decode import Decoder, TpFrame
from fota_studio.ui.models.trace_model import (
    BYID_DATA_COLUMNS,
    BYID_FIRST_BYTE_COL,
    COLUMNS,
    ByIdModel,
    TimeFormat,
    TraceModel,
)
from fota_studio.ui.panels.trace_messages import MessagesModel
from fota_studio.ui.widgets.trace_view import TraceTableView

if TYPE_CHECKING:
    from fota_studio.ui.panels.trace_plots import TracePlots

log = logging.getLogger(__name__)

ROW_HEIGHT_PX = 20
DETAILS_WINDOW_FRAMES = 4_000
"""Frames either side of the selection searched for the ISO-TP message / SDO transfer."""


class TraceDocument(QWidget):
    """Store + views of one trace (see module docstring)."""

    def __init__(self, store: TraceStore, decoder: Decoder, *, name: str, live: bool) -> None:
        """`name`: the tab's title; `live`: the live capture (its plots scroll with new frames).
        The tab widget the document is added to becomes its parent."""
        super().__init__()
        self.store = store
        self.decoder = decoder
        self.name = name
        self.live = live
        self.times = TimeFormat()
        self.model = TraceModel(store, decoder, self, time_format=self.times)
        self.byid_model = ByIdModel(store, self)
        self.messages_model = MessagesModel(store, decoder, self, self.times)
        self.following = True
        """Follow: the newest row stays in view until the user scrolls up."""
        self._build()

    def _build(self) -> None:
        self.view = TraceTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        vh = self.view.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(ROW_HEIGHT_PX)
        vh.setVisible(False)
        self.view.setWordWrap(False)
        self.view.setAlternatingRowColors(True)
        hh = self.view.horizontalHeader()
        for col, width in enumerate((130, 60, 35, 90, 60, 40, 200, 400)[: len(COLUMNS)]):
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            self.view.setColumnWidth(col, width)
        hh.setStretchLastSection(True)
        self.view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.view.verticalScrollBar().actionTriggered.connect(self._on_scrollbar_action)

        self.byid_view = QTableView()
        self.byid_view.setModel(self.byid_model)
        self.byid_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.byid_view.verticalHeader().setDefaultSectionSize(ROW_HEIGHT_PX)
        self.byid_view.horizontalHeader().setStretchLastSection(True)
        for col in range(BYID_FIRST_BYTE_COL, BYID_FIRST_BYTE_COL + BYID_DATA_COLUMNS):
            self.byid_view.setColumnWidth(col, 34)

        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumBlockCount(2000)

        self.messages_view = QTableView()
        self.messages_view.setModel(self.messages_model)
        self.messages_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.messages_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.messages_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.messages_view.verticalHeader().setDefaultSectionSize(ROW_HEIGHT_PX)
        self.messages_view.verticalHeader().setVisible(False)
        self.messages_view.setWordWrap(False)
        for col, width in enumerate((130, 90, 60)):
            self.messages_view.setColumnWidth(col, width)
        self.messages_view.horizontalHeader().setStretchLastSection(True)
        self.messages_view.selectionModel().selectionChanged.connect(
            self._on_messages_selection_changed
        )

        self.tabs = QTabWidget()
        self.tabs.addTab(self.view, "Frames")
        self.tabs.addTab(self.messages_view, "Messages (ISO-TP/UDS)")
        self.tabs.addTab(self.byid_view, "By ID")
        # The Plots tab needs pyqtgraph (0.3 s to import): it is built when first opened (or
        # `plots` first used); until then its tab holds a placeholder (issue 21, GUI start).
        self._plots: TracePlots | None = None
        self._plots_state = "pending"  # building, built, unavailable
        self._plots_tab = QWidget()
        self._plot_frames: Any = None
        self.tabs.addTab(self._plots_tab, "Plots")
        self.tabs.currentChanged.connect(lambda _i: self.refresh_side_views(force=True))

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tabs)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    @property
    def plots_if_built(self) -> TracePlots | None:
        """The Plots tab if it was built (periodic work: never builds it)."""
        return self._plots

    @property
    def plots(self) -> TracePlots | None:
        """The Plots tab (bus load, per-ID rates, DBC signals), built on first use; None when
        plotting is unavailable (pyqtgraph missing): the trace works without it."""
        if self._plots_state == "pending":
            self._build_plots()
        return self._plots

    def _build_plots(self) -> None:
        if self._plots_state != "pending":
            return
        self._plots_state = "building"
        index = self.tabs.indexOf(self._plots_tab)
        was_current = self.tabs.currentIndex() == index
        try:
            from fota_studio.ui.panels.trace_plots import TracePlots

            plots = TracePlots(self.store, self.decoder, live=self.live)
        except Exception:  # plotting is optional; the trace must work without it
            log.warning("trace plots unavailable", exc_info=True)
            self._plots_state = "unavailable"
            self.tabs.removeTab(index)
            return
        self._plots = plots
        if self._plot_frames is not None:
            plots.set_frame_filter(self._plot_frames)
        self.tabs.blockSignals(True)
        try:
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, plots, "Plots")
            if was_current:
                self.tabs.setCurrentIndex(index)
        finally:
            self.tabs.blockSignals(False)
        self._plots_tab.deleteLater()
        self._plots_state = "built"
        if was_current:
            self.refresh_side_views(force=True)

    # -- fed by the owner of the store ---------------------------------------------------------
    def appended(self, change: Appended) -> None:
        """The store's owner appended (and maybe trimmed): tell the views."""
        self.model.rows_dropped(change.dropped)
        self.model.rows_appended(change.frames)

    def clear(self) -> None:
        """Forget every frame (counted as cleared, never as dropped)."""
        self.store.clear()
        self.model.store_cleared()
        self.messages_model.reset()
        self.byid_model.reset()
        if self._plots is not None:
            self._plots.cleared()

    def apply_query(self, query: TraceQuery) -> None:
        """Show only what passes `query`, in every tab."""
        self.model.set_filter(query)
        self.messages_model.set_query(query)
        self.byid_model.set_frame_filter(query.frames)
        self._plot_frames = query.frames
        if self._plots is not None:
            self._plots.set_frame_filter(query.frames)
        if self.tabs.currentWidget() is self.byid_view:
            self.byid_model.refresh()

    def set_time_mode(self, mode: str) -> None:
        """absolute / relative / delta, alike in every tab."""
        self.model.set_time_mode(mode)
        self.messages_model.times_changed()

    # -- follow --------------------------------------------------------------------------------
    def _on_scrollbar_action(self, action: int) -> None:
        """A user scroll (wheel, drag, arrows, page): follow again only at the bottom. A resize
        or an insert moves the bar without an action and never stops following."""
        if action == QAbstractSlider.SliderAction.SliderNoAction.value:
            return
        sb = self.view.verticalScrollBar()
        self.following = sb.sliderPosition() >= sb.maximum() - 1

    def follow(self) -> None:
        """Scroll to the newest row when following."""
        if self.following and not self.model.paused:
            self.view.scrollToBottom()

    # -- side views ------------------------------------------------------------------------
    def refresh_side_views(self, force: bool = False) -> None:
        """Refresh the visible side tab (By ID, Messages, Plots)."""
        current = self.tabs.currentWidget()
        if current is self.byid_view:
            self.byid_model.refresh()
        elif current is self.messages_view:
            self.messages_model.refresh()
        elif current is self._plots_tab:  # the placeholder is shown: build the plots now
            self._build_plots()
        elif self._plots is not None and (current is self._plots or force):
            self._plots.update_plots()

    def catch_up(self) -> None:
        """One chunk of a backlog of the visible side tab per timer tick."""
        current = self.tabs.currentWidget()
        if current is self.messages_view and self.messages_model.backlog:
            self.messages_model.refresh()
        elif current is self.byid_view and self.byid_model.backlog:
            self.byid_model.refresh()

    # -- details ----------------------------------------------------------------------------
    def _on_selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        seq = self.model.seq_at(indexes[0].row())
        self.details.setPlainText(self.details_text(seq))

    def _on_messages_selection_changed(
        self, selected: QItemSelection, _deselected: QItemSelection
    ) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        line = self.messages_model.line(indexes[0].row())
        seqs = [s for s in line.frame_seqs if s >= self.store.first_seq]
        text = [f"{line.text}", f"{len(line.frame_seqs)} frames"]
        if seqs:
            text.append("")
            text.append(self.details_text(seqs[0]))
        else:
            text.append("(its frames were dropped from the store)")
        self.details.setPlainText("\n".join(text))

    def show_frame(self, seq: int) -> bool:
        """Switch to the frames table and select frame `seq` (False when not shown)."""
        row = self.model.row_of_seq(seq)
        if row is None:
            return False
        self.tabs.setCurrentWidget(self.view)
        self.view.selectRow(row)
        self.view.scrollTo(self.model.index(row, 0))
        return True

    def details_text(self, seq: int) -> str:
        """Bytes, decoding and the ISO-TP message / SDO transfer a frame belongs to."""
        rec = self.store.record(seq)
        ext = bool(rec.flags & FLAG_EXTENDED)
        lines = [
            f"Frame #{seq}  t={self.times.text(rec.timestamp)}  "
            f"{'Tx' if rec.flags & FLAG_TX else 'Rx'}",
            f"ID 0x{rec.arbitration_id:X} ({'29' if ext else '11'}-bit)  len {rec.length}",
            "Bytes: " + rec.data.hex(" ").upper(),
            "Decoded: " + self.model.decoded(seq),
        ]
        lo = max(self.store.first_seq, seq - DETAILS_WINDOW_FRAMES)
        hi = min(self.store.end_seq, seq + DETAILS_WINDOW_FRAMES)
        protocol = self.decoder.protocol(rec.arbitration_id, ext, rec.data)
        if protocol in ("UDS", "ISO-TP"):
            peer_ids = {rec.arbitration_id, *self._peers(rec.arbitration_id, ext)}
            seqs = self.store.filter(TraceFilter(ids=tuple(peer_ids)), lo, hi)
            frames = [
                TpFrame(r.seq, r.timestamp, r.arbitration_id, r.data)
                for r in self.store.records(seqs)
            ]
            for msg in self.decoder.reassemble(frames):
                if seq in msg.frame_seqs:
                    lines.append(
                        f"ISO-TP message 0x{msg.can_id:X}, {len(msg.payload)} bytes, "
                        f"frames #{msg.first_seq}..#{msg.last_seq}"
                    )
                    lines.append("  " + self.decoder.describe_message(msg))
                    lines.append("  " + msg.payload[:256].hex(" ").upper())
                    break
        elif protocol == "SDO":
            node = rec.arbitration_id & 0x7F
            seqs = self.store.filter(TraceFilter(ids=(0x580 + node, 0x600 + node)), lo, seq + 1)
            frames = [
                TpFrame(r.seq, r.timestamp, r.arbitration_id, r.data)
                for r in self.store.records(seqs)
            ]
            sdo = self.decoder.sdo_lines(frames)
            if sdo:
                lines.append("SDO context: " + sdo[-1].text)
        return "\n".join(lines)

    def _peers(self, can_id: int, extended: bool) -> list[int]:
        peers = [b if a == can_id else a for a, b in self.decoder.isotp_pairs if can_id in (a, b)]
        if extended and (can_id >> 16) in (0x18DA, 0x18DB):
            peers.append(0x18DA0000 | ((can_id & 0xFF) << 8) | ((can_id >> 8) & 0xFF))
        elif 0x7E0 <= can_id <= 0x7E7:
            peers.append(can_id + 8)
        elif 0x7E8 <= can_id <= 0x7EF:
            peers.append(can_id - 8)
        return peers
