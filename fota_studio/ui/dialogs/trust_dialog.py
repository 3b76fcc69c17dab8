"""Mode ▸ Signing keys…: the trusted package-signing keys by fingerprint, the trust log, and (in
engineering mode) trusting, revoking and the signed-packages policy.

Everything goes through `infra/trust.TrustStore` and the one access check
(`AccessControl.require`): in operator mode the buttons are disabled and a programmatic call is
refused. The operations are small SQLite reads/writes (no scrypt, no file parsing beyond one PEM),
so they run on the GUI thread. GUI thread only.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import FotaError
from fota_studio.infra.access import AccessControl, Action
from fota_studio.infra.trust import TrustedKey, TrustStore
from fota_studio.infra.workspace import Workspace

COLUMNS = ("Name", "Fingerprint (SHA-256 of the raw public key)", "Trusted since")


class TrustDialog(QDialog):
    """Trusted signing keys, the trust log and the signed-packages policy of one workspace."""

    def __init__(self, ws: Workspace, access: AccessControl, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.access = access
        self.setWindowTitle("Signing keys")
        self.resize(820, 480)
        self.keys_table = QTableWidget(0, len(COLUMNS))
        self.keys_table.setHorizontalHeaderLabels(list(COLUMNS))
        self.keys_table.verticalHeader().setVisible(False)
        self.keys_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.keys_table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        header = self.keys_table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.require_box = QCheckBox("Accept and flash only packages signed by a trusted key")
        self.trust_button = QPushButton("Trust a public key…")
        self.revoke_button = QPushButton("Revoke selected key…")
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.trust_button)
        buttons.addWidget(self.revoke_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "Trust is pinned to the key: replacing or revoking a key makes what it signed "
                "unflashable until it is re-signed."
            )
        )
        layout.addWidget(self.keys_table, 2)
        layout.addLayout(buttons)
        layout.addWidget(self.require_box)
        layout.addWidget(QLabel("Trust log"))
        layout.addWidget(self.log_view, 1)
        layout.addWidget(self.message)
        self.trust_button.clicked.connect(self._on_trust_button_clicked)
        self.revoke_button.clicked.connect(self._on_revoke_button_clicked)
        self.require_box.toggled.connect(self._on_require_box_toggled)
        self.refresh()

    # -- view ------------------------------------------------------------------------------

    def keys(self) -> list[TrustedKey]:
        """The trusted keys shown."""
        return TrustStore(self.ws).keys()

    def refresh(self) -> None:
        """Reload keys, policy and log; enable editing only where the access check allows."""
        trust = TrustStore(self.ws)
        keys = trust.keys()
        self.keys_table.setRowCount(len(keys))
        for row, key in enumerate(keys):
            for col, text in enumerate((key.name, key.fingerprint, key.added_at)):
                self.keys_table.setItem(row, col, QTableWidgetItem(text))
        self.require_box.blockSignals(True)
        self.require_box.setChecked(trust.require_signed_packages)
        self.require_box.blockSignals(False)
        lines = []
        for e in trust.events():
            fp = f" {e.fingerprint}" if e.fingerprint else ""
            why = f": {e.reason}" if e.reason else ""
            lines.append(f"{e.at}  {e.by}  {e.action} {e.name}{fp}{why}")
        self.log_view.setPlainText("\n".join(lines) or "(no changes of trust yet)")
        self.trust_button.setEnabled(self.access.allows(Action.REPO_TRUST))
        self.revoke_button.setEnabled(self.access.allows(Action.REPO_UNTRUST) and bool(keys))
        self.require_box.setEnabled(self.access.allows(Action.REPO_POLICY))
        if not self.access.allows(Action.REPO_TRUST):
            self.message.setText("Operator mode: switch to engineering mode to change trust.")

    # -- actions (also the test entry points) ----------------------------------------------

    def trust_key(self, name: str, public_key_file: Path) -> TrustedKey:
        """Trust the Ed25519 public key in `public_key_file` as signer `name`."""
        self.access.require(Action.REPO_TRUST)
        try:
            pem = public_key_file.read_bytes()
        except OSError as exc:
            raise FotaError(f"{public_key_file}: cannot read ({exc.strerror})") from None
        key = TrustStore(self.ws).add(name, pem)
        self.refresh()
        return key

    def revoke(self, name_or_fingerprint: str, reason: str) -> str:
        """Revoke a trusted key; what it signed becomes unflashable."""
        self.access.require(Action.REPO_UNTRUST)
        fp = TrustStore(self.ws).remove(name_or_fingerprint, reason=reason)
        self.refresh()
        return fp

    def set_require_signed(self, on: bool) -> None:
        """Switch the signed-packages policy."""
        self.access.require(Action.REPO_POLICY)
        TrustStore(self.ws).set_require_signed(on)
        self.refresh()

    # -- handlers --------------------------------------------------------------------------

    def _on_trust_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Public key of the signer", "", "PEM public key (*.pem);;All files (*)"
        )
        if not path:
            return
        name, ok = QInputDialog.getText(self, "Signer name", "Name of the signer:")
        if not ok or not name.strip():
            return
        try:
            key = self.trust_key(name, Path(path))
        except FotaError as exc:
            self.message.setText(str(exc))
            return
        self.message.setText(f"Trusted {key.name}: {key.fingerprint}")

    def _on_revoke_button_clicked(self) -> None:
        row = self.keys_table.currentRow()
        keys = self.keys()
        if not 0 <= row < len(keys):
            self.message.setText("Select the key to revoke first.")
            return
        reason, ok = QInputDialog.getText(
            self, "Revoke key", f"Why is {keys[row].name}'s key revoked? (kept in the log)"
        )
        if not ok:
            return
        try:
            fp = self.revoke(keys[row].fingerprint, reason)
        except FotaError as exc:
            self.message.setText(str(exc))
            return
        self.message.setText(f"Revoked {fp}: what it signed can no longer be flashed.")

    def _on_require_box_toggled(self, on: bool) -> None:
        try:
            self.set_require_signed(on)
        except FotaError as exc:
            self.message.setText(str(exc))
            self.refresh()
