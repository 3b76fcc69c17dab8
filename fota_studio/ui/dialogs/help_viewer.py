"""Help ▸ User manual (F1): the bundled manual rendered inside the app.

The manual is `docs/USER_MANUAL.md` in a checkout and `fota_studio/resources/manual/` in an
installed package (`core/resources.manual_path`, the one place that knows); its images sit in
`images/` beside it. A `QTextBrowser` renders the Markdown (Qt's own CommonMark/GitHub
reader), resolves the images relative to the file, opens web links in the system browser, and
a find box (Ctrl+F, Enter = next, Shift+Enter = previous) searches the text. Non-modal; GUI
thread only.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QKeySequence, QShortcut, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

DEFAULT_SIZE = (900, 680)


class HelpViewer(QDialog):
    """The user manual in a text browser with a find box."""

    def __init__(self, manual: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("FOTA Studio — User manual")
        self.setObjectName("help_viewer")
        self.manual = manual
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setSearchPaths([str(manual.parent)])
        self.find_edit = QLineEdit()
        self.find_edit.setPlaceholderText("Find in the manual (Enter: next, Shift+Enter: previous)")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.returnPressed.connect(lambda: self.find_next(backward=False))
        self.find_status = QLabel("")
        back = QShortcut(QKeySequence("Shift+Return"), self.find_edit)
        back.activated.connect(lambda: self.find_next(backward=True))
        find = QShortcut(QKeySequence.StandardKey.Find, self)
        find.activated.connect(self._focus_find)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        row = QHBoxLayout()
        find_label = QLabel("&Find:")
        find_label.setBuddy(self.find_edit)
        row.addWidget(find_label)
        row.addWidget(self.find_edit, 1)
        row.addWidget(self.find_status)
        v = QVBoxLayout(self)
        v.addLayout(row)
        v.addWidget(self.browser, 1)
        v.addWidget(buttons)
        self.resize(*DEFAULT_SIZE)
        self.browser.setSource(
            QUrl.fromLocalFile(str(manual)), QTextDocument.ResourceType.MarkdownResource
        )
        self.browser.setFocus(Qt.FocusReason.OtherFocusReason)

    def _focus_find(self) -> None:
        self.find_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.find_edit.selectAll()

    def text(self) -> str:
        """The manual as shown (plain text)."""
        return self.browser.toPlainText()

    def find_next(self, *, backward: bool) -> bool:
        """Select the next (previous) match of the find box, wrapping once at the end."""
        needle = self.find_edit.text()
        if not needle:
            return False
        flags = QTextDocument.FindFlag.FindBackward if backward else QTextDocument.FindFlag(0)
        found = self.browser.find(needle, flags)
        if not found:  # wrap around
            cursor = self.browser.textCursor()
            cursor.movePosition(
                cursor.MoveOperation.End if backward else cursor.MoveOperation.Start
            )
            self.browser.setTextCursor(cursor)
            found = self.browser.find(needle, flags)
        self.find_status.setText("" if found else "not found")
        return bool(found)
