"""The assembled GUI: main window + Workbench on a real workspace, as `app.py` builds it.

Checks that every panel is there, the demo workspace's CAN1 opens on the engine with the TCU
node on it, the one-click demo runs to Successful with the approval clicked on the HMI panel
while the trace shows the demo bus, operator mode locks the editors, and closing the window
stops every thread (the conftest fixture fails the test otherwise).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace
from tests.ui.app_fixtures import app_fixtures

PANELS = {"repository", "ea", "requests", "flash", "hmi", "oem", "tcu_bench", "sim", "trace", "log"}


ws_fixture, window_fixture = app_fixtures("wb")


def test_every_panel_and_the_engine_channel_are_there(window, ws: Workspace) -> None:
    w, bench = window
    assert set(w.panel_keys()) >= PANELS
    assert bench.engine.channels() == ["CAN1"]
    # Quiet by default (issue 15): requests can run, the TCU node starts only with one.
    assert bench.tcu is None and bench.service is not None
    assert bench.requests_panel.service is bench.service
    # The Simulator keeps its machine in this workspace (as `sim` / `flash --simulate` do).
    assert bench.sim_panel.default_state_dir() == ws.root / "sim"
    assert str(ws.root / "sim") in bench.sim_panel.state_dir_edit.placeholderText()
    assert w.engine is bench.engine


def test_one_click_demo_runs_to_successful(qtbot, window, ws: Workspace) -> None:
    _, bench = window
    flash = bench.flash_panel
    assert flash.machine_combo.currentData() == "Unit #1001"
    assert flash.machine_combo.currentText().startswith("Unit #1001 — ")  # serial, then name
    assert flash._selected_ecu().name == "VCU"
    flash.version_combo.setCurrentIndex(flash.version_combo.findData("3.2.1"))
    assert "3.1.0 → <b>3.2.1</b><br>" in flash.summary.text()
    with qtbot.waitSignal(bench.hmi_panel.offer_shown, timeout=30_000):
        bench.action_demo.trigger()
    assert bench.hmi_panel.approve_button.isEnabled()
    with qtbot.waitSignal(bench.demo.finished, timeout=90_000) as done:
        qtbot.mouseClick(bench.hmi_panel.approve_button, Qt.MouseButton.LeftButton)
    assert done.args[0] == "Successful", done.args[1]
    assert EaStore(ws).get_machine("Unit #1001").installed["VCU"] == "3.2.1"
    # The Flash panel's pre-flight summary follows what is installed now (nothing clicked).
    assert "3.2.1 → <b>3.2.1</b>" in flash.summary.text()
    assert "recorded 3.2.1" in flash.summary.text()
    # The trace watched the demo's bus: UDS to the VCU's bootloader IDs went by.
    qtbot.waitUntil(lambda: bench.trace_panel.model.rowCount() > 100, timeout=10_000)


def test_operator_mode_locks_repositories_and_eas(window) -> None:
    w, bench = window
    bench.access.set_passphrase("correct horse battery")
    bench.access.enter_operator()
    assert not w.repository_panel.import_action.isEnabled()
    assert w.repository_panel.import_file("/nonexistent.hex") is None
    assert not bench.ea_panel.action_save.isEnabled()
    assert bench.access.enter_engineering("correct horse battery")
    assert w.repository_panel.import_action.isEnabled()


def test_request_flashes_the_simulator_through_the_app_engine(qtbot, window, ws: Workspace) -> None:
    """The non-demo path: Simulator panel on CAN1, a request created and started in the Update
    Requests panel, approved in the local dialog, flashed by the app's engine, verified."""
    from fota_studio.core.update_request import RequestStatus
    from fota_studio.engine.workflow import WorkflowOptions
    from fota_studio.infra.requests_store import RequestsStore

    _, bench = window
    with qtbot.waitSignal(bench.sim_panel.running_changed, timeout=20_000) as running:
        bench.sim_panel.start()
    assert running.args == [True]
    panel = bench.requests_panel
    req = panel.create("Unit #1001", "VCU", "3.2.1", confirm=True)
    panel.select(req.id)
    panel.options = WorkflowOptions(
        approval_hmi=False, oem_verification=False, approval_timeout_s=60, verification_timeout_s=30
    )
    panel.start_selected()
    qtbot.waitUntil(lambda: any(d.isVisible() for d in panel.dialogs), timeout=20_000)
    dialog = next(d for d in panel.dialogs if d.isVisible())
    qtbot.mouseClick(dialog.approve_button, Qt.MouseButton.LeftButton)
    store = RequestsStore(ws)
    qtbot.waitUntil(
        lambda: store.get(req.id).status in (RequestStatus.SUCCESSFUL, RequestStatus.FAILED),
        timeout=90_000,
    )
    final = store.get(req.id)
    assert final.status is RequestStatus.SUCCESSFUL, final
    assert bench.sim_panel.machine.ecu("VCU").state().software_version == "3.2.1"
    # The TCU node ran for the request only; it leaves the bus shortly after (issue 15).
    qtbot.waitUntil(lambda: bench.tcu is None, timeout=15_000)
    # The flash's session bus log opens in the trace from the request.
    panel.refresh()
    panel.select(req.id)
    assert panel.buslog_button.isEnabled()
    with qtbot.waitSignal(bench.trace_panel.file_loaded, timeout=30_000) as loaded:
        qtbot.mouseClick(panel.buslog_button, Qt.MouseButton.LeftButton)
    assert loaded.args[1] > 100


def test_switching_workspace_repoints_requests_and_flash(qtbot, window, tmp_path: Path) -> None:
    """File ▸ Open workspace…: panels holding the workspace follow it (no closed-DB errors)."""
    w, bench = window
    assert w.open_workspace(tmp_path / "other-ws")
    assert bench.requests_panel.ws is w.ws
    assert bench.flash_panel.ws is w.ws
    bench.requests_panel.refresh()  # would raise on the closed old workspace
    assert bench.flash_panel.machine_combo.count() == 2  # the new (demo) workspace's machines
