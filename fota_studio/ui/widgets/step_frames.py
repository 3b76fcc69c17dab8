"""The steps of a finished flash with their bus-log frames: one row per step of the record (its
outcome, detail, duration and frame range), a TransferData step unfolds into its blocks. A click
on a step or block asks for exactly those frames in the trace (`frames_requested`, a
`FramesRequest`); `select_step` goes the other way (the trace's Messages tab names a step).

Block rows are made when their step is unfolded: a big image has tens of thousands of blocks.
GUI thread only.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from fota_studio.core.flash_record import FlashRecord, StepRecord

#: Item data roles: the step index and the block index (-1 = the step itself).
STEP_ROLE = int(Qt.ItemDataRole.UserRole)
BLOCK_ROLE = int(Qt.ItemDataRole.UserRole) + 1

COLUMNS = ("Step", "Result", "Time (ms)", "Frames", "Detail")


@dataclass(frozen=True)
class FramesRequest:
    """Open `record`'s bus log in the trace with frames first..last (inclusive) selected."""

    record: FlashRecord
    first: int
    last: int
    label: str
    step_index: int
    block: int | None = None


def step_label(record: FlashRecord, index: int, block: int | None = None) -> str:
    """'transfer_data #12 block 113' — how a step (and block) is named in the trace."""
    st = record.steps[index]
    text = f"{st.step} #{index + 1}"
    return text if block is None else f"{text} block {block + 1}"


def _frames_text(first: int | None, last: int | None) -> str:
    if first is None or last is None:
        return "—"
    return f"{first:,}–{last:,} ({last - first + 1:,})"


class StepFramesTree(QTreeWidget):
    """A record's steps; click one (or a TransferData block) to see its frames in the trace."""

    frames_requested = Signal(object)  # FramesRequest

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.record: FlashRecord | None = None
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setUniformRowHeights(True)
        self.setRootIsDecorated(True)
        self.setToolTip("Click a step or a TransferData block: its frames open in the trace")
        for col, width in enumerate((170, 50, 70, 140)):
            self.setColumnWidth(col, width)
        self.itemExpanded.connect(self._on_self_item_expanded)
        self.itemClicked.connect(self._on_self_item_clicked)

    def set_record(self, record: FlashRecord | None) -> None:
        """Show `record`'s steps (None: empty)."""
        self.clear()
        self.record = record
        if record is None:
            return
        red, green = QBrush(QColor("#c62828")), QBrush(QColor("#2e7d32"))
        for index, st in enumerate(record.steps):
            took = "" if st.finished_at is None else f"{(st.finished_at - st.started_at) * 1e3:.0f}"
            result = "ok" if st.ok else ("failed" if st.ok is False else "…")
            if st.nrc_name:
                result = f"NRC {st.nrc_name}"
            item = QTreeWidgetItem(
                [
                    step_label(record, index),
                    result,
                    took,
                    _frames_text(st.frame_first, st.frame_last),
                    st.detail,
                ]
            )
            item.setData(0, STEP_ROLE, index)
            item.setData(0, BLOCK_ROLE, -1)
            item.setForeground(1, green if st.ok else red)
            if st.block_frames:
                item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            self.addTopLevelItem(item)

    def _add_blocks(self, item: QTreeWidgetItem) -> None:
        if self.record is None or item.childCount():
            return
        st: StepRecord = self.record.steps[int(item.data(0, STEP_ROLE))]
        rows = []
        for block in range(len(st.block_frames)):
            rng = st.block_range(block)
            if rng is None:
                continue
            child = QTreeWidgetItem([f"block {block + 1}", "", "", _frames_text(*rng), ""])
            child.setData(0, STEP_ROLE, item.data(0, STEP_ROLE))
            child.setData(0, BLOCK_ROLE, block)
            rows.append(child)
        item.addChildren(rows)

    def _on_self_item_expanded(self, item: QTreeWidgetItem) -> None:
        self._add_blocks(item)

    def request_for(self, index: int, block: int | None = None) -> FramesRequest | None:
        """The frames of step `index` (or of its TransferData `block`); None without frames."""
        if self.record is None or not 0 <= index < len(self.record.steps):
            return None
        st = self.record.steps[index]
        rng = (st.frame_first, st.frame_last) if block is None else st.block_range(block)
        if rng is None or rng[0] is None or rng[1] is None:
            return None
        return FramesRequest(
            self.record, rng[0], rng[1], step_label(self.record, index, block), index, block
        )

    def _on_self_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        block = int(item.data(0, BLOCK_ROLE))
        req = self.request_for(int(item.data(0, STEP_ROLE)), None if block < 0 else block)
        if req is not None:
            self.frames_requested.emit(req)

    def item_for(self, index: int, block: int | None = None) -> QTreeWidgetItem | None:
        """The row of step `index` (or of its block), unfolding the step when needed."""
        if not 0 <= index < self.topLevelItemCount():
            return None
        item = self.topLevelItem(index)
        if block is None or item is None:
            return item
        self._add_blocks(item)
        item.setExpanded(True)
        return item.child(block) if 0 <= block < item.childCount() else None

    def select_step(self, index: int, block: int | None = None) -> bool:
        """Select and show step `index` (and block) — the link back from the trace."""
        item = self.item_for(index, block)
        if item is None:
            return False
        self.setCurrentItem(item)
        self.scrollToItem(item)
        return True
