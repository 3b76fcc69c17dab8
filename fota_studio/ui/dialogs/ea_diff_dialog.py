"""The flash parameters a PDX / ODX-F container states, offered as changes to one ECU's EA
profile (issue 19): a diff table (parameter, the EA's value, the container's value, where the
container states it) with a check box per change. Nothing is applied until the engineer presses
"Apply checked changes"; "Keep the EA as it is" applies nothing. `accepted()` returns the
checked changes after the dialog was accepted; the caller saves them
(`infra/pdx_import.accept_changes`, validated like every EA save).

GUI thread only.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.pdx import ProfileChange
from fota_studio.ui.dialogs.parts import read_only_table

HEADERS = ("Parameter", "In the EA", "In the container", "Stated by")


class EaDiffDialog(QDialog):
    """Review and accept (some of) a container's changes to ECU `ecu_name` of EA `ea_name`."""

    def __init__(
        self,
        ea_name: str,
        ecu_name: str,
        changes: Sequence[ProfileChange],
        *,
        container: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.changes = list(changes)
        self.setWindowTitle(f"EA profile changes for {ecu_name}")
        where = f" ({container})" if container else ""
        intro = QLabel(
            f"The flash container{where} states flash parameters that differ from ECU "
            f"<b>{ecu_name}</b> in the Electronic Architecture <b>{ea_name}</b>. Check the "
            "ones to take over; nothing changes until you apply them."
        )
        intro.setWordWrap(True)
        self.table = read_only_table(len(self.changes), HEADERS)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        for row, ch in enumerate(self.changes):
            name = QTableWidgetItem(ch.label)
            name.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            name.setCheckState(Qt.CheckState.Checked)
            name.setToolTip(ch.key)
            self.table.setItem(row, 0, name)
            old = QTableWidgetItem(ch.current)
            old.setForeground(Qt.GlobalColor.darkRed)
            self.table.setItem(row, 1, old)
            new = QTableWidgetItem(ch.proposed)
            new.setForeground(Qt.GlobalColor.darkGreen)
            self.table.setItem(row, 2, new)
            self.table.setItem(row, 3, QTableWidgetItem(ch.source))
        self.table.itemChanged.connect(self._on_table_item_changed)
        buttons = QDialogButtonBox()
        self.apply_button = QPushButton("Apply checked changes")
        self.keep_button = QPushButton("Keep the EA as it is")
        buttons.addButton(self.apply_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.keep_button, QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(760, 120 + 28 * max(3, len(self.changes)))
        self._on_table_item_changed(None)

    def set_checked(self, key: str, checked: bool) -> None:
        """Check or uncheck the change `key` (what a click on its box does)."""
        state = Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
        for row, ch in enumerate(self.changes):
            item = self.table.item(row, 0)
            if ch.key == key and item is not None:
                item.setCheckState(state)

    def checked(self) -> list[ProfileChange]:
        """The changes whose box is checked."""
        out = []
        for row, ch in enumerate(self.changes):
            item = self.table.item(row, 0)
            if item is not None and item.checkState() == Qt.CheckState.Checked:
                out.append(ch)
        return out

    def accepted_changes(self) -> list[ProfileChange]:
        """The checked changes if the engineer applied them, else none."""
        return self.checked() if self.result() == QDialog.DialogCode.Accepted else []

    def _on_table_item_changed(self, _item: QTableWidgetItem | None) -> None:
        count = len(self.checked())
        self.apply_button.setEnabled(count > 0)
        self.apply_button.setText(f"Apply {count} checked change{'s' if count != 1 else ''}")
