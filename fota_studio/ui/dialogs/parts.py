"""Pieces the dialogs share: their button rows, a read-only table, the CAN bitrate lists.

Each function builds or fills plain Qt widgets for one dialog, so every dialog wires its OK /
Cancel or Close row, lists rows nobody edits, and offers an interface's bitrates the same way.
GUI thread only.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QWidget,
)

from fota_studio.protocols.bus import InterfaceLimits, interface_limits

#: Bitrates offered when the interface does not restrict them (any value may be typed).
BITRATES_BPS = (125_000, 250_000, 500_000, 1_000_000)
DATA_BITRATES_BPS = (1_000_000, 2_000_000, 4_000_000, 5_000_000, 8_000_000)


def ok_cancel_buttons(dialog: QDialog) -> QDialogButtonBox:
    """OK and Cancel, wired to the dialog's accept() and reject()."""
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
    )
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


def close_buttons(
    dialog: QDialog, *actions: tuple[str, str]
) -> tuple[QDialogButtonBox, list[QPushButton]]:
    """Close (the dialog's reject()) and one action button per (text, tool tip), in order."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    made = []
    for text, tip in actions:
        button = QPushButton(text)
        button.setToolTip(tip)
        buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        made.append(button)
    buttons.rejected.connect(dialog.reject)
    return buttons, made


def password_edit(placeholder: str = "") -> QLineEdit:
    """A line edit that shows dots instead of what is typed."""
    edit = QLineEdit()
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    edit.setPlaceholderText(placeholder)
    return edit


def read_only_table(rows: int, headers: Sequence[str]) -> QTableWidget:
    """A table nobody edits: `rows` empty rows under `headers`, no row numbers, the first
    column as wide as its contents and the last one taking the rest."""
    table = QTableWidget(rows, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def bitrate_combos(
    bitrate_bps: int | None = None, data_bitrate_bps: int | None = None
) -> tuple[QComboBox, QComboBox]:
    """The editable bitrate and data bitrate lists (any value may be typed) with the default
    rates, showing the given values."""
    combos = []
    for rates, current in ((BITRATES_BPS, bitrate_bps), (DATA_BITRATES_BPS, data_bitrate_bps)):
        combo = QComboBox()
        combo.setEditable(True)
        combo.addItems([str(b) for b in rates])
        if current is not None:
            combo.setCurrentText(str(current))
        combos.append(combo)
    return combos[0], combos[1]


def add_bitrate_rows(
    form: QFormLayout, bitrate: QComboBox, fd: QWidget, data_bitrate: QComboBox
) -> None:
    """The rows both connection dialogs show: bitrate, the CAN FD box, data bitrate."""
    form.addRow("Bitrate (bit/s)", bitrate)
    form.addRow("", fd)
    form.addRow("Data bitrate (bit/s)", data_bitrate)


def offer_rates(bitrate: QComboBox, data_bitrate: QComboBox, interface: str) -> InterfaceLimits:
    """Fill the bitrate and data bitrate lists with what `interface` can do, keeping the typed
    values (validated elsewhere); no change signal is sent. Returns the interface's limits."""
    lim = interface_limits(interface)
    nominal = lim.bitrates_bps if lim.sets_bitrate else ()
    data = lim.data_bitrates_bps if lim.sets_bitrate else ()
    for combo, table, fallback in (
        (bitrate, nominal, BITRATES_BPS),
        (data_bitrate, data, DATA_BITRATES_BPS),
    ):
        current = combo.currentText()
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItems([str(b) for b in (table or fallback)])
            combo.setCurrentText(current)
        finally:
            combo.blockSignals(False)
    return lim
