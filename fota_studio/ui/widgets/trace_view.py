"""The live frame table view: a QTableView whose viewport is painted in ONE Python call.

Why: a stock QTableView paints each visible cell through the model's Python overrides (`index`
and `multiData`, ~460 calls for a 40-row viewport). Every call from C++ into Python acquires the
GIL, and while Notifier threads receive 20,000 frames/s each acquisition can wait for one of
them (the interpreter's switch interval), so a paint took 10-90 ms under load and was the
remaining live stall in bench/trace.py. Here `paintEvent` asks the `TraceModel` for the cached
row strings of the visible rows and draws them with one QPainter, holding the GIL once. The
view keeps everything else from QTableView (selection model, header, scrolling, keyboard).
GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QTableView, QWidget

from fota_studio.engine.trace_store import FLAG_ERROR, FLAG_TX
from fota_studio.ui.models.trace_model import COL_DATA, COL_DLC, COL_ID, COL_TIME, TraceModel

TEXT_MARGIN_PX = 4


class TraceTableView(QTableView):
    """QTableView over a `TraceModel` with a single-call viewport paint (see module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._mono = QFont("monospace")
        self._mono.setStyleHint(QFont.StyleHint.Monospace)
        self._tx_color = QColor(230, 240, 255)
        self._err_color = QColor(255, 225, 225)

    def paintEvent(self, event: QPaintEvent) -> None:
        model = self.model()
        if not isinstance(model, TraceModel):
            super().paintEvent(event)
            return
        viewport = self.viewport()
        painter = QPainter(viewport)
        palette = self.palette()
        base = palette.color(QPalette.ColorRole.Base)
        alternate = palette.color(QPalette.ColorRole.AlternateBase)
        highlight = palette.color(QPalette.ColorRole.Highlight)
        text_color = palette.color(QPalette.ColorRole.Text)
        highlighted_text = palette.color(QPalette.ColorRole.HighlightedText)
        width = viewport.width()
        height = viewport.height()
        painter.fillRect(QRect(0, 0, width, height), base)
        rows = model.rowCount()
        if rows:
            first = self.rowAt(0)
            last = self.rowAt(height - 1)
            if first < 0:
                first = 0
            if last < 0:
                last = rows - 1
            header = self.horizontalHeader()
            columns = []
            for col in range(header.count()):
                if header.isSectionHidden(col):
                    continue
                x = self.columnViewportPosition(col)
                w = self.columnWidth(col)
                if x + w < 0 or x > width:
                    continue
                columns.append((col, x, w))
            selection = self.selectionModel()
            grid = QPen(palette.color(QPalette.ColorRole.Mid))
            font = painter.font()
            left = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            alternating = self.alternatingRowColors()
            for row in range(first, last + 1):
                y = self.rowViewportPosition(row)
                h = self.rowHeight(row)
                cells = model.row_cells(row)
                flags = cells[-1]
                selected = selection is not None and selection.isRowSelected(row)
                if selected:
                    background = highlight
                elif flags & FLAG_ERROR:
                    background = self._err_color
                elif flags & FLAG_TX:
                    background = self._tx_color
                elif alternating and row % 2:
                    background = alternate
                else:
                    background = None
                if background is not None:
                    painter.fillRect(QRect(0, y, width, h), background)
                painter.setPen(highlighted_text if selected else text_color)
                for col, x, w in columns:
                    painter.setFont(self._mono if col in (COL_ID, COL_DATA) else font)
                    painter.drawText(
                        QRect(x + TEXT_MARGIN_PX, y, w - 2 * TEXT_MARGIN_PX, h),
                        right if col in (COL_TIME, COL_DLC) else left,
                        str(cells[col]),
                    )
            if self.showGrid():
                painter.setPen(grid)
                bottom = self.rowViewportPosition(last) + self.rowHeight(last) - 1
                for _col, x, w in columns:
                    painter.drawLine(x + w - 1, 0, x + w - 1, bottom)
        painter.end()
