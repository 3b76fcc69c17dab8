"""Switch between operator mode and engineering mode; set the workspace's admin passphrase.

Operator mode: EA and repositories read-only, only approved actions. Engineering mode needs the
admin passphrase (checked against the salted scrypt hash in `infra/access.py`). A workspace
without a passphrase offers to set one. The main window listens to `AccessControl` to call
`set_read_only` on the EA and repository panels. GUI thread only (a scrypt check takes ~50 ms).
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import FotaError
from fota_studio.infra.access import AccessControl, Mode
from fota_studio.ui.dialogs.parts import password_edit


class ModeDialog(QDialog):
    """Shows the mode; switches it (engineering needs the passphrase); sets the passphrase."""

    def __init__(self, access: AccessControl, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.access = access
        self.setWindowTitle("Operator / engineering mode")
        self.mode_label = QLabel()
        self.passphrase_edit = password_edit("admin passphrase")
        self.engineering_button = QPushButton("Switch to engineering mode")
        self.operator_button = QPushButton("Switch to operator mode")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.new_edit = password_edit()
        self.repeat_edit = password_edit()
        self.set_button = QPushButton("Set passphrase")
        layout = QVBoxLayout(self)
        layout.addWidget(self.mode_label)
        layout.addWidget(self.passphrase_edit)
        row = QHBoxLayout()
        row.addWidget(self.engineering_button)
        row.addWidget(self.operator_button)
        layout.addLayout(row)
        form = QFormLayout()
        form.addRow("New passphrase:", self.new_edit)
        form.addRow("Repeat:", self.repeat_edit)
        form.addRow(self.set_button)
        layout.addLayout(form)
        layout.addWidget(self.message)
        self.engineering_button.clicked.connect(self._on_engineering_clicked)
        self.operator_button.clicked.connect(self._on_operator_clicked)
        self.set_button.clicked.connect(self._on_set_clicked)
        self._refresh()

    def _refresh(self) -> None:
        mode = self.access.mode
        text = (
            "Operator mode: architectures and repositories are read-only; raw CAN transmit "
            "and fault injection are hidden; state-changing commands need the passphrase."
            if mode is Mode.OPERATOR
            else "Engineering mode: everything can be edited."
        )
        if not self.access.has_passphrase():
            text += " No admin passphrase is set yet."
        self.mode_label.setText(text)
        self.engineering_button.setEnabled(mode is Mode.OPERATOR)
        self.operator_button.setEnabled(mode is Mode.ENGINEERING)
        # Changing the passphrase is an engineering action.
        self.set_button.setEnabled(mode is Mode.ENGINEERING)

    def _on_engineering_clicked(self) -> None:
        if self.access.enter_engineering(self.passphrase_edit.text()):
            self.message.setText("Engineering mode on.")
        else:
            self.message.setText("Wrong passphrase.")
        self.passphrase_edit.clear()
        self._refresh()

    def _on_operator_clicked(self) -> None:
        self.access.enter_operator()
        self.message.setText("Operator mode on.")
        self._refresh()

    def _on_set_clicked(self) -> None:
        new, repeat = self.new_edit.text(), self.repeat_edit.text()
        if new != repeat:
            self.message.setText("The two passphrases differ.")
            return
        try:
            current = self.passphrase_edit.text() or None
            self.access.set_passphrase(new, current=current)
        except FotaError as exc:
            self.message.setText(str(exc))
            return
        self.new_edit.clear()
        self.repeat_edit.clear()
        self.passphrase_edit.clear()
        self.message.setText("Admin passphrase set.")
        self._refresh()
