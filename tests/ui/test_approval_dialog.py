"""The Checkpoint 1 approval dialog (non-modal, countdown, decisions from it or from elsewhere)
and the operator/engineering mode dialog."""

from __future__ import annotations

import time
from pathlib import Path

from fota_studio.engine.workflow import ApprovalRequest, Decision
from fota_studio.infra.access import AccessControl, Mode
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.dialogs.approval_dialog import ApprovalDialog, format_duration
from fota_studio.ui.dialogs.mode_dialog import ModeDialog


def _approval(timeout_s: float = 60.0) -> ApprovalRequest:
    return ApprovalRequest(
        request_id=7,
        machine="Unit #1001",
        ecu="VCU",
        installed_version="3.1.0",
        offered_version="3.2.0",
        expected_downtime_s=95,
        preconditions=("Machine stationary: 0..0 km/h", "Supply voltage: 11.5..14.5 V"),
        timeout_s=timeout_s,
        deadline=time.monotonic() + timeout_s,
    )


def test_shows_what_and_approves(qtbot) -> None:
    approval = _approval()
    dlg = ApprovalDialog(approval)
    qtbot.addWidget(dlg)
    dlg.show()
    assert not dlg.isModal()
    text = " ".join(w.text() for w in dlg.findChildren(type(dlg.countdown_label)))
    for part in ("Unit #1001", "VCU", "3.1.0 → 3.2.0", "1 min 35 s", "Supply voltage"):
        assert part in text
    assert "times out in" in dlg.countdown_label.text()
    dlg.operator_edit.setText("Alice")
    with qtbot.waitSignal(dlg.decided) as sig:
        dlg.approve_button.click()
    assert approval.future.result(0) == Decision(True, "Alice", "local")
    assert sig.args[0].approved and not dlg.approve_button.isEnabled()


def test_reject_and_close_rejects(qtbot) -> None:
    approval = _approval()
    dlg = ApprovalDialog(approval)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.reject()  # Esc / closing the window never approves
    assert approval.future.result(0).approved is False


def test_decision_made_elsewhere_closes_the_dialog(qtbot) -> None:
    approval = _approval(timeout_s=0.3)
    dlg = ApprovalDialog(approval)
    qtbot.addWidget(dlg)
    dlg.show()
    approval.resolve(Decision(False, "approval timeout", "timeout"))
    qtbot.waitUntil(lambda: "timed out" in dlg.countdown_label.text(), timeout=2000)
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=5000)


def test_format_duration() -> None:
    assert format_duration(42) == "42 s"
    assert format_duration(3700) == "1 h 01 min"


def test_mode_dialog(qtbot, workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        access = AccessControl(ws)
        dlg = ModeDialog(access)
        qtbot.addWidget(dlg)
        dlg.new_edit.setText("s3cret-pass")
        dlg.repeat_edit.setText("s3cret-pass")
        dlg.set_button.click()
        assert access.has_passphrase()
        dlg.operator_button.click()
        assert access.mode is Mode.OPERATOR and not dlg.set_button.isEnabled()
        dlg.passphrase_edit.setText("wrong")
        dlg.engineering_button.click()
        assert access.mode is Mode.OPERATOR and "Wrong" in dlg.message.text()
        dlg.passphrase_edit.setText("s3cret-pass")
        dlg.engineering_button.click()
        assert access.mode is Mode.ENGINEERING
