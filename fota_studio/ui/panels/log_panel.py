"""The log panel: the application's log, drained from `infra.logsetup.LOG_TAP` on a timer.

Records are appended to the tap by any thread; this panel drains the tap every ~200 ms on the
GUI thread and appends the whole batch in one call (never one signal per record), keeps a
bounded copy for re-filtering, filters by minimum level and by a search text, and scrolls to the
newest line only when the view was already at the bottom (reading old lines is not disturbed).
GUI thread only.
"""

from __future__ import annotations

import collections
import logging

from PySide6.QtCore import QSize
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fota_studio.infra.logsetup import LOG_TAP, LogTap
from fota_studio.ui.widgets.timers import periodic_timer

DRAIN_INTERVAL_MS = 200
DEFAULT_MAX_LINES = 20_000
PREFERRED_HEIGHT_PX = 160
LEVELS = (
    ("Debug", logging.DEBUG),
    ("Info", logging.INFO),
    ("Warning", logging.WARNING),
    ("Error", logging.ERROR),
)


class LogPanel(QWidget):
    """Read-only log view with a level filter, a search box and bottom-only autoscroll."""

    def __init__(
        self,
        tap: LogTap = LOG_TAP,
        parent: QWidget | None = None,
        *,
        max_lines: int = DEFAULT_MAX_LINES,
    ) -> None:
        super().__init__(parent)
        self._tap = tap
        self._max_lines = max_lines
        self._records: collections.deque[tuple[int, str]] = collections.deque(maxlen=max_lines)

        self.level_combo = QComboBox()
        for name, level in LEVELS:
            self.level_combo.addItem(name, level)
        self.level_combo.setCurrentIndex(1)  # Info
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search the log…")
        self.search_edit.setClearButtonEnabled(True)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Empty the log view (the log file on disk is kept)")
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(max_lines)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setUndoRedoEnabled(False)
        self.view.setMinimumHeight(40)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.view.setFont(font)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Level"))
        bar.addWidget(self.level_combo)
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)

        self.level_combo.currentIndexChanged.connect(self._rebuild)
        self.search_edit.textChanged.connect(self._rebuild)
        self.clear_button.clicked.connect(self.clear)

        # Start from what was logged before the panel existed; drain first so the timer does not
        # append those records a second time.
        self._tap.drain()
        self._records.extend(self._tap.history())
        self._rebuild()

        self.timer = periodic_timer(self, DRAIN_INTERVAL_MS, self.drain)

    def sizeHint(self) -> QSize:
        """A strip: docked at the bottom it should leave the height to the work panels."""
        return QSize(900, PREFERRED_HEIGHT_PX)

    # -- public --------------------------------------------------------------------------------

    def min_level(self) -> int:
        """The minimum level shown."""
        return int(self.level_combo.currentData())

    def set_min_level(self, level: int) -> None:
        """Show records at `level` and above."""
        idx = self.level_combo.findData(level)
        if idx >= 0:
            self.level_combo.setCurrentIndex(idx)

    def set_max_lines(self, max_lines: int) -> None:
        """Change how many records the panel keeps."""
        self._max_lines = max_lines
        self._records = collections.deque(self._records, maxlen=max_lines)
        self.view.setMaximumBlockCount(max_lines)

    def text(self) -> str:
        """The text currently shown (for tests and copy)."""
        return self.view.toPlainText()

    def clear(self) -> None:
        """Forget every record shown so far."""
        self._records.clear()
        self.view.clear()

    def drain(self) -> int:
        """Append the records logged since the last drain; returns how many were shown."""
        batch = self._tap.drain()
        if not batch:
            return 0
        self._records.extend(batch)
        shown = [text for level, text in batch if self._accepts(level, text)]
        if shown:
            self._append(shown)
        return len(shown)

    # -- internals -----------------------------------------------------------------------------

    def _accepts(self, level: int, text: str) -> bool:
        if level < self.min_level():
            return False
        needle = self.search_edit.text().strip().lower()
        return not needle or needle in text.lower()

    def _append(self, lines: list[str]) -> None:
        bar = self.view.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
        old_value = bar.value()
        # One append for the whole batch: one layout pass instead of one per record.
        if self.view.document().isEmpty():
            self.view.setPlainText("\n".join(lines))
        else:
            self.view.appendPlainText("\n".join(lines))
        if at_bottom:
            bar.setValue(bar.maximum())
        else:
            bar.setValue(old_value)

    def _rebuild(self) -> None:
        lines = [text for level, text in self._records if self._accepts(level, text)]
        self.view.setPlainText("\n".join(lines))
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())
