"""pytest-qt end to end on the simulated machine: the one-click demo approved on the HMI panel
(CANopen SDO), approved in the local approval dialog, and rejected on the HMI panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.demo_runner import DemoRunner
from fota_studio.ui.dialogs.approval_dialog import ApprovalDialog
from fota_studio.ui.panels.hmi_panel import HmiPanel


@pytest.fixture
def ws(workspace_dir: Path):
    w = Workspace.open(workspace_dir)
    yield w
    w.close()


def _installed(ws: Workspace) -> str | None:
    return EaStore(ws).get_machine("Unit #1001").installed.get("VCU")


def _decision(ws: Workspace) -> dict[str, Any]:
    """The operator decision logged for the last request (its entry's data)."""
    req = RequestsStore(ws).list()[-1]
    return next(e for e in RequestsStore(ws).entries(req.id) if e.kind == "decision").data


def test_demo_approved_on_hmi_panel(qtbot, ws: Workspace) -> None:
    panel = HmiPanel()
    qtbot.addWidget(panel)
    runner = DemoRunner(ws, hmi_panel=panel)
    try:
        with qtbot.waitSignal(panel.offer_shown, timeout=20_000) as offer:
            runner.run()
        assert offer.args[0].offered_version == "3.2.1"
        assert panel.approve_button.isEnabled()
        assert "3.1.0 → 3.2.1" in panel.versions_label.text()
        with qtbot.waitSignal(runner.finished, timeout=60_000) as done:
            qtbot.mouseClick(panel.approve_button, Qt.MouseButton.LeftButton)
        assert done.args[0] == "Successful", done.args[1]
        qtbot.waitUntil(lambda: "successful" in panel.result_label.text().lower(), timeout=10_000)
        assert _installed(ws) == "3.2.1"
        assert _decision(ws)["source"] == "hmi"
    finally:
        runner.shutdown()
        panel.shutdown()


def test_demo_approved_in_dialog(qtbot, ws: Workspace) -> None:
    runner = DemoRunner(ws, local_dialog=True)
    dialogs: list[ApprovalDialog] = []

    def show(approval: object) -> None:
        d = ApprovalDialog(approval)  # type: ignore[arg-type]
        qtbot.addWidget(d)
        d.show()
        dialogs.append(d)

    runner.approval_requested.connect(show)
    try:
        runner.run()
        qtbot.waitUntil(lambda: bool(dialogs), timeout=20_000)
        dialogs[0].operator_edit.setText("Alice")
        with qtbot.waitSignal(runner.finished, timeout=60_000) as done:
            dialogs[0].approve_button.click()
        assert done.args[0] == "Successful", done.args[1]
        assert _installed(ws) == "3.2.1"
        assert _decision(ws)["by"] == "Alice"
    finally:
        runner.shutdown()


def test_demo_rejected_on_hmi_panel(qtbot, ws: Workspace) -> None:
    panel = HmiPanel()
    qtbot.addWidget(panel)
    runner = DemoRunner(ws, hmi_panel=panel)
    try:
        with qtbot.waitSignal(panel.offer_shown, timeout=20_000):
            runner.run()
        with qtbot.waitSignal(runner.finished, timeout=30_000) as done:
            panel.reject_button.click()
        assert done.args[0] == "Cancelled"
        assert _installed(ws) == "3.1.0"
        req = RequestsStore(ws).list()[-1]
        assert req.outcome == "rejected" and req.flash_record_id is None
    finally:
        runner.shutdown()
        panel.shutdown()
