"""Mode ▸ Signing keys…: lists keys by fingerprint and the trust log; trusting, revoking and the
signed-packages policy only in engineering mode, through the one access check."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.package import generate_signing_key, key_fingerprint
from fota_studio.infra.access import AccessControl, AccessDeniedError
from fota_studio.infra.trust import TrustStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.dialogs.trust_dialog import TrustDialog

PASSPHRASE = "correct horse battery"


def test_trust_dialog_lists_trusts_revokes_and_respects_operator_mode(
    qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, public = generate_signing_key()
    pem = tmp_path / "release.pem"
    pem.write_bytes(public)
    fp = key_fingerprint(public)
    with Workspace.open(tmp_path / "ws") as ws:
        access = AccessControl(ws)
        dialog = TrustDialog(ws, access)
        qtbot.addWidget(dialog)
        assert dialog.trust_button.isEnabled()  # no passphrase yet: engineering mode
        key = dialog.trust_key("release", pem)
        assert key.fingerprint == fp
        assert dialog.keys_table.rowCount() == 1
        assert dialog.keys_table.item(0, 1).text() == fp
        assert "trusted release" in dialog.log_view.toPlainText()
        dialog.set_require_signed(True)
        assert dialog.require_box.isChecked() and TrustStore(ws).require_signed_packages
        access.set_passphrase(PASSPHRASE)
        access.enter_operator()
        dialog.refresh()
        assert not dialog.trust_button.isEnabled()
        assert not dialog.revoke_button.isEnabled()
        assert not dialog.require_box.isEnabled()
        with pytest.raises(AccessDeniedError, match="operator mode: repo untrust"):
            dialog.revoke("release", "attempt")
        with pytest.raises(AccessDeniedError, match="operator mode: repo require-signed"):
            dialog.set_require_signed(False)
        assert TrustStore(ws).require_signed_packages and dialog.keys_table.rowCount() == 1
        assert access.enter_engineering(PASSPHRASE)
        dialog.refresh()
        assert dialog.revoke("release", "leaked") == fp
        assert dialog.keys_table.rowCount() == 0
        assert "revoked release" in dialog.log_view.toPlainText()
        assert "leaked" in dialog.log_view.toPlainText()
