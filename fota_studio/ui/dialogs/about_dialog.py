"""The About dialog: FOTA Studio, Python, Qt/PySide6 and every protocol library's version.

Versions come from `importlib.metadata` (what is really installed, not what was pinned), so a
bug report pasted from here says exactly what ran. GUI thread only.
"""

from __future__ import annotations

import platform
from importlib import metadata

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio import __version__
from fota_studio.ui.dialogs.parts import close_buttons, read_only_table

#: (shown name, distribution name) of the libraries a bug report needs.
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("python-can", "python-can"),
    ("can-isotp", "can-isotp"),
    ("udsoncan", "udsoncan"),
    ("canopen", "canopen"),
    ("cantools", "cantools"),
    ("intelhex", "intelhex"),
    ("numpy", "numpy"),
    ("pyqtgraph", "pyqtgraph"),
    ("cryptography", "cryptography"),
)


def library_versions() -> list[tuple[str, str]]:
    """(name, version) of FOTA Studio, Python, Qt, PySide6 and every protocol library."""
    rows = [
        ("FOTA Studio", __version__),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("Qt", qVersion()),
        ("PySide6", pyside_version),
    ]
    for shown, dist in LIBRARIES:
        try:
            rows.append((shown, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            rows.append((shown, "not installed"))
    return rows


def versions_text() -> str:
    """The version table as plain text (for the clipboard)."""
    rows = library_versions()
    width = max(len(n) for n, _ in rows)
    return "\n".join(f"{n.ljust(width)}  {v}" for n, v in rows) + f"\n{platform.platform()}"


class AboutDialog(QDialog):
    """Shows the application and library versions with a "Copy" button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About FOTA Studio")
        title = QLabel(
            f"<h2>FOTA Studio {__version__}</h2>"
            "<p>Operator and engineering console for updating ECU firmware over CAN "
            "(UDS over ISO-TP, CANopen operator approval).</p>"
        )
        title.setWordWrap(True)
        rows = library_versions()
        self.table = read_only_table(len(rows), ["Component", "Version"])
        for r, (name, version) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(name))
            self.table.setItem(r, 1, QTableWidgetItem(version))
        row_px = self.fontMetrics().height() + 6
        self.table.verticalHeader().setDefaultSectionSize(row_px)
        # Tall enough for every row: the list is short and scrolling it hides the point.
        self.table.setMinimumHeight(row_px * (len(rows) + 1) + 4)
        buttons, (copy,) = close_buttons(self, ("Copy versions", ""))
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(versions_text()))
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)
        self.adjustSize()

    def rows(self) -> list[tuple[str, str]]:
        """The (component, version) rows shown in the table."""
        rows = []
        for r in range(self.table.rowCount()):
            name, version = self.table.item(r, 0), self.table.item(r, 1)
            rows.append((name.text() if name else "", version.text() if version else ""))
        return rows
