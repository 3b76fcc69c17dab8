"""The Update Requests panel: create (warnings/blocks), filters, cancel, re-run, the step
timeline, starting a run whose Checkpoint 1 dialog is approved, and the PDF/HTML record."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.update_request import RequestStateError, RequestStatus
from fota_studio.engine.workflow import RequestService, WorkflowOptions
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.panels.requests_panel import CreateRequestDialog, RequestsPanel
from fota_studio.ui.report import export_request_report
from tests.ui.app_fixtures import seeded_ws_fixture

ws_fixture = seeded_ws_fixture()


def test_create_filter_cancel_rerun(qtbot, ws: Workspace) -> None:
    panel = RequestsPanel(ws)
    qtbot.addWidget(panel)
    req = panel.create("Unit #1001", "VCU", "3.2.0", confirm=False)
    with pytest.raises(RequestStateError, match="confirmation"):
        panel.create("Unit #1001", "VCU", "3.1.0", confirm=False)  # same as installed + pending
    second = panel.create("Unit #1002", "HCU", "1.5.0", confirm=False)
    assert panel.model.rowCount() == 2
    assert panel.selected().id == second.id
    panel.status_filter.setCurrentIndex(panel.status_filter.findData("Pending"))
    panel.machine_filter.setCurrentIndex(panel.machine_filter.findData("Unit #1001"))
    assert [r.id for r in panel.model.rows] == [req.id]
    panel.select(req.id)
    # The detail view is built off the GUI thread (issue 21): wait for it.
    qtbot.waitUntil(lambda: "created by" in panel.detail.toPlainText(), timeout=10_000)
    assert panel.cancel_button.isEnabled() and not panel.start_button.isEnabled()  # no service
    panel.cancel_selected()
    assert RequestsStore(ws).get(req.id).status is RequestStatus.CANCELLED
    panel.status_filter.setCurrentIndex(0)
    panel.select(req.id)
    assert panel.rerun_button.isEnabled()
    panel.rerun_button.click()
    assert RequestsStore(ws).get(req.id).attempt == 2


def test_create_dialog_blocks_and_warns(qtbot, ws: Workspace) -> None:
    dlg = CreateRequestDialog(ws)
    qtbot.addWidget(dlg)
    dlg.machine_combo.setCurrentIndex(dlg.machine_combo.findData("Unit #1001"))
    dlg.ecu_combo.setCurrentIndex(dlg.ecu_combo.findData("VCU"))
    dlg.version_combo.setCurrentIndex(dlg.version_combo.findData("3.1.0"))
    assert "already installed" in dlg.findings.text()
    assert "confirm" in dlg.buttons.button(dlg.buttons.StandardButton.Ok).text()
    assert dlg.selection() == ("Unit #1001", "VCU", "3.1.0")


def test_start_approve_in_dialog_and_report(qtbot, ws: Workspace, tmp_path: Path) -> None:
    from fota_studio.demo.bench import DemoBench

    panel = RequestsPanel(ws)
    qtbot.addWidget(panel)
    bench = DemoBench(ws, ecu="VCU")
    bench.start()
    try:
        assert bench.engine is not None
        from PySide6.QtCore import QObject, Qt, Signal

        class Relay(QObject):
            event = Signal(object)

        relay = Relay()
        relay.event.connect(panel.on_event, Qt.ConnectionType.QueuedConnection)
        service = RequestService(ws, bench.engine, tcu=bench.tcu, sink=relay.event.emit)
        panel.set_service(service)
        panel.options = WorkflowOptions(approval_hmi=False, approval_timeout_s=30.0)
        req = panel.create("Unit #1001", "VCU", "3.2.0", confirm=False)
        panel.select(req.id)
        assert panel.start_button.isEnabled()
        panel.start_button.click()
        qtbot.waitUntil(lambda: bool(panel.dialogs), timeout=10_000)
        panel.dialogs[0].operator_edit.setText("Carol")
        panel.dialogs[0].approve_button.click()
        qtbot.waitUntil(
            lambda: RequestsStore(ws).get(req.id).status is RequestStatus.SUCCESSFUL,
            timeout=60_000,
        )
        service.shutdown()
    finally:
        bench.stop()
    panel.refresh()
    panel.select(req.id)
    qtbot.waitUntil(lambda: not panel.detail_pending(), timeout=10_000)
    text = panel.detail.toPlainText()
    for part in ("Checkpoint 1 decision: approved by Carol", "Checkpoint 2", "final: Successful"):
        assert part in text
    assert "Status: Successful\n" in text  # not "Successful success"
    pdf = export_request_report(ws, req.id, tmp_path / "r.pdf", "pdf")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_run_options_box_round_trips_and_guards_sources(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Checkpoint sources are chosen per run in the panel; none at all is refused."""
    from fota_studio.engine.workflow import WorkflowOptions
    from fota_studio.infra.workspace import Workspace
    from fota_studio.ui.panels.requests_panel import RequestsPanel

    ws = Workspace.open(tmp_path / "ws")
    try:
        panel = RequestsPanel(ws)
        qtbot.addWidget(panel)
        panel.options = WorkflowOptions(
            approval_local=False,
            approval_hmi=True,
            approval_timeout_s=90,
            health_checks=False,
            oem_verification=True,
            verification_timeout_s=0,
            boot_wait_s=2.0,
        )
        opts = panel.options
        assert (opts.approval_local, opts.approval_hmi, opts.approval_timeout_s) == (
            False,
            True,
            90,
        )
        assert (opts.health_checks, opts.oem_verification) == (False, True)
        assert opts.verification_timeout_s is None  # 0 = the TCU's setting
        assert opts.boot_wait_s == 2.0
        panel.approval_hmi_check.setChecked(False)
        errors: list[str] = []
        panel._error = lambda exc: errors.append(str(exc))  # type: ignore[method-assign]
        panel.service = object()  # type: ignore[assignment]
        panel.selected = lambda: object()  # type: ignore[method-assign]
        panel.start_selected()
        assert errors and "Checkpoint 1" in errors[0]
        panel.shutdown()
    finally:
        ws.close()


def test_status_text_names_how_a_request_ended() -> None:
    from types import SimpleNamespace

    from fota_studio.core.update_request import Outcome
    from fota_studio.ui.report import status_text

    ok = SimpleNamespace(status=RequestStatus.SUCCESSFUL, outcome=Outcome.SUCCESS)
    failed = SimpleNamespace(status=RequestStatus.FAILED, outcome=Outcome.FLASH_FAILED)
    pending = SimpleNamespace(status=RequestStatus.PENDING, outcome=Outcome.NONE)
    assert status_text(ok) == "Successful"
    assert status_text(failed) == "Failed (flash failed)"
    assert status_text(pending) == RequestStatus.PENDING.value
