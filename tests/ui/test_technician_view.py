"""The technician view (issue 15): machine → ECU → version → pre-flight read FROM the ECU →
confirm from → to → large progress in words → result with what to do next; a confirmed Cancel
mid-flash leaves the ECU in its bootloader and "Re-run the flash" brings it back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QScrollArea

from fota_studio.engine.engine import Engine
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.engine_bridge import EngineBridge
from fota_studio.ui.technician.technician_view import (
    STAGE_CHOOSE,
    STAGE_FLASHING,
    STAGE_RESULT,
    TechnicianView,
)
from tests.fakes.flash import fast_sim_options, sim_ecu
from tests.ui import flash_rig
from tests.ui.flash_rig import fast_demo_ecu

#: The demo workspace (a fixture, found by its name); `engine` is tests/ui/conftest.py's.
ws = flash_rig.ws


#: The workspace's VCU (or another ECU) with short timings, stored: the view flashes with them.
_fast_vcu = fast_demo_ecu


_KEEP: list[QScrollArea] = []


def _view(qtbot, engine: Engine, ws: Workspace) -> tuple[TechnicianView, list[str]]:  # type: ignore[no-untyped-def]
    view = TechnicianView(engine, EngineBridge(engine), ws)
    asked: list[str] = []
    view.confirm = lambda title, text: asked.append(f"{title}\n{text}") or True
    # As in the main window: inside a scroll area (a top-level widget whose minimum size follows
    # its wrapped labels makes the offscreen platform warn).
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(view)
    qtbot.addWidget(scroll)
    scroll.resize(1000, 640)
    scroll.show()
    view.ecu_combo.setCurrentIndex(view.ecu_combo.findData("VCU"))
    view.version_combo.setCurrentIndex(view.version_combo.findData("3.2.1"))
    _KEEP.append(scroll)  # the test owns the window until the end of the session
    return view, asked


def test_guided_update_from_the_version_the_ecu_reports(
    qtbot, engine: Engine, ws: Workspace, can_channel: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    vcu = _fast_vcu(ws)
    # The workspace recorded 3.1.0; the ECU actually runs 3.2.0.
    opts = fast_sim_options()
    with sim_ecu(vcu, can_channel, tmp_path, options=opts, initial_version="3.2.0"):
        view, asked = _view(qtbot, engine, ws)
        assert not view.start_button.isEnabled()  # nothing is started before the pre-flight
        view.check_button.click()
        qtbot.waitUntil(view.start_button.isEnabled, timeout=20_000)
        text = view.preflight_label.text()
        assert "ECU reports <b>3.2.0</b>" in text and "recorded 3.1.0" in text
        assert "Supply voltage" in text and "13.2 V" in text
        assert "estimated" in text
        with qtbot.waitSignal(view.flash_finished, timeout=120_000):
            view.start_button.click()
            assert view.stage() == STAGE_FLASHING
            assert "3.2.0 → 3.2.1" in view.flash_title.text()
    assert "3.2.0 → 3.2.1" in asked[0] and "upgrade" not in asked[0].lower().split("→")[0]
    assert view.stage() == STAGE_RESULT
    assert "updated: it runs 3.2.1" in view.result_title.text()
    assert view.progress.property("state") == "done"
    assert view.rerun_button.isHidden()
    assert "Switch the ignition off and on" in view.next_label.text()
    assert EaStore(ws).get_machine("Unit #1001").installed["VCU"] == "3.2.1"


def test_confirmed_cancel_leaves_the_bootloader_and_re_run_recovers(
    qtbot, engine: Engine, ws: Workspace, can_channel: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    vcu = _fast_vcu(ws)
    opts = fast_sim_options(programming_ms_per_kib=15.0)
    with sim_ecu(vcu, can_channel, tmp_path, options=opts, initial_version="3.1.0") as sim:
        view, asked = _view(qtbot, engine, ws)
        view.check_button.click()
        qtbot.waitUntil(view.start_button.isEnabled, timeout=20_000)
        view.start_button.click()
        qtbot.waitUntil(
            lambda: "Writing the new software" in view.step_label.text(), timeout=60_000
        )
        with qtbot.waitSignal(view.flash_finished, timeout=60_000):
            view.cancel_button.click()
        assert asked[-1].startswith("Cancel the update?")
        assert view.stage() == STAGE_RESULT
        assert "is in its bootloader" in view.result_title.text()
        assert view.progress.property("state") == "cancelled"
        assert "Re-run the flash" in view.next_label.text()
        assert not view.rerun_button.isHidden()
        assert sim.state().mode != "application"
        sim.options.programming_ms_per_kib = 0.0
        with qtbot.waitSignal(view.flash_finished, timeout=120_000):
            view.rerun_button.click()
        assert "bootloader (no application) → 3.2.1" in asked[-1]
    assert "updated: it runs 3.2.1" in view.result_title.text()
    view.again_button.click()
    assert view.stage() == STAGE_CHOOSE


def test_two_ecus_of_the_machine_flashed_in_one_run_both_verified(
    qtbot, engine: Engine, ws: Workspace, can_channel: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    vcu, hcu = _fast_vcu(ws, "VCU"), _fast_vcu(ws, "HCU")
    opts = fast_sim_options()
    with (
        sim_ecu(vcu, can_channel, tmp_path / "vcu", options=opts, initial_version="3.1.0"),
        sim_ecu(hcu, can_channel, tmp_path / "hcu", options=opts, initial_version="1.4.2"),
    ):
        view, asked = _view(qtbot, engine, ws)
        # The current ECU is ticked; the others are offered with their newest release.
        assert view.ecu_checks["VCU"].isChecked() and not view.ecu_checks["HCU"].isChecked()
        assert view.ecu_versions["HCU"].currentData() == "1.5.0"
        view.ecu_checks["HCU"].setChecked(True)
        view.check_button.click()
        qtbot.waitUntil(view.start_button.isEnabled, timeout=30_000)
        text = view.preflight_label.text()
        assert "ECU reports <b>3.1.0</b>" in text and "ECU reports <b>1.4.2</b>" in text
        view.start_button.click()
        assert view.stage() == STAGE_FLASHING
        assert "Updating 2 ECUs" in view.flash_title.text()
        qtbot.waitUntil(lambda: view.stage() == STAGE_RESULT, timeout=180_000)
    assert len(asked) == 1  # asked once, from → to per ECU
    assert "3.1.0 → 3.2.1" in asked[0] and "1.4.2 → 1.5.0" in asked[0]
    assert "2 ECUs updated and verified" in view.result_title.text()
    # One plan job flashed both (interleaved on CAN1), not one job after the other.
    assert view.plan is not None and view.plan.result(5).ok
    assert sorted(view.plan.ecus) == ["HCU", "VCU"]
    detail = view.result_detail.text()
    assert "VCU updated: it runs 3.2.1" in detail and "HCU updated: it runs 1.5.0" in detail
    assert view.rerun_button.isHidden()
    installed = EaStore(ws).get_machine("Unit #1001").installed
    assert installed["VCU"] == "3.2.1" and installed["HCU"] == "1.5.0"


def test_an_ecu_skipped_after_a_failure_is_called_skipped_not_cancelled(
    qtbot, engine: Engine, ws: Workspace, can_channel: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """HCU must follow VCU (`after`), VCU's erase fails: HCU is never started. Its block says
    it was skipped and why, and that nothing was sent to it; Re-run offers both again."""
    from fota_studio.sim.faults import Fault

    vcu = _fast_vcu(ws, "VCU")
    _fast_vcu(ws, "HCU")
    store = EaStore(ws)
    ea = store.get(store.names()[0])
    hcu = ea.ecu("HCU")
    hcu.after = ["VCU"]
    store.save(ea)
    opts = fast_sim_options()
    with (
        sim_ecu(vcu, can_channel, tmp_path / "vcu", options=opts, initial_version="3.1.0") as sv,
        sim_ecu(hcu, can_channel, tmp_path / "hcu", options=opts, initial_version="1.4.2"),
    ):
        sv.inject(Fault(step="erase", kind="fail"))
        view, _asked = _view(qtbot, engine, ws)
        view.ecu_checks["HCU"].setChecked(True)
        view.check_button.click()
        qtbot.waitUntil(view.start_button.isEnabled, timeout=30_000)
        view.start_button.click()
        qtbot.waitUntil(lambda: view.stage() == STAGE_RESULT, timeout=180_000)
    assert "2 of 2 ECUs not updated" in view.result_title.text()
    detail = view.result_detail.text()
    assert "Update of VCU failed" in detail
    assert "HCU not updated (skipped)" in detail and "HCU cancelled" not in detail
    assert "Nothing was sent to HCU" in detail and "must follow VCU" in detail
    assert not view.rerun_button.isHidden()


# -- the assembled app ---------------------------------------------------------------------


@pytest.fixture
def app_ws(workspace_dir: Path) -> Iterator[Workspace]:
    from tests.ui.app_fixtures import demo_workspace

    yield from demo_workspace(workspace_dir, "tech")


def _inside_viewport(widget, scroll) -> bool:  # type: ignore[no-untyped-def]
    """True when `widget` is shown whole in its dock's scroll viewport, without scrolling."""
    if widget.isHidden():
        return False
    top_left = widget.mapTo(scroll.viewport(), widget.rect().topLeft())
    rect = widget.rect().translated(top_left)
    return bool(scroll.viewport().rect().contains(rect))


def _scroll_of(window, key: str):  # type: ignore[no-untyped-def]
    scroll = window.dock(key).widget()
    assert isinstance(scroll, QScrollArea)
    return scroll


def test_operator_mode_opens_on_the_technician_view_readable_at_1024x700(
    qtbot, app_ws: Workspace, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from fota_studio.infra.access import AccessControl
    from tests.ui.app_fixtures import app_window

    AccessControl(app_ws).set_passphrase("engineer-only")  # opens in operator mode
    for w, bench in app_window(qtbot, app_ws, tmp_path):
        w.resize(1024, 700)
        qtbot.waitUntil(w.technician_view_on, timeout=5_000)
        view = bench.technician_view
        assert w.dock("technician").isVisible()
        assert not w.dock("flash").isVisible() and not w.dock("trace").isVisible()
        qtbot.wait(50)
        scroll = _scroll_of(w, "technician")
        for widget in (view.machine_combo, view.version_combo, view.check_button):
            assert _inside_viewport(widget, scroll), widget
        assert view.check_button.font().pointSizeF() >= 13
        # Keyboard-complete: every action has a mnemonic and every field is in the tab chain.
        for button in (view.check_button, view.start_button, view.cancel_button):
            assert "&" in button.text()
        for button in (view.rerun_button, view.again_button):
            assert "&" in button.text()
        chain, widget = [], view.machine_combo.nextInFocusChain()
        while widget is not view.machine_combo and len(chain) < 200:
            chain.append(widget)
            widget = widget.nextInFocusChain()
        for needed in (view.ecu_combo, view.version_combo, view.check_button, view.start_button):
            assert needed in chain
        assert view.check_button.isDefault()  # Enter checks the ECU
        # Real keys: focusing the view focuses its primary button, Enter runs the check (no ECU
        # on this bus: the page says why the update cannot start).
        view.setFocus()
        assert view.check_button.hasFocus() or QApplication.focusWidget() is None
        QTest.keyClick(view.check_button, Qt.Key.Key_Return)
        qtbot.waitUntil(
            lambda v=view: "does not answer" in v.problem_text(),  # type: ignore[misc]
            timeout=10_000,
        )
        w.technician_action.trigger()  # one click back to the workbench
        assert not w.technician_view_on() and w.dock("flash").isVisible()


def test_key_buttons_of_each_panel_are_visible_at_1024x700(
    qtbot, app_ws: Workspace, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    from fota_studio.app import open_workspace
    from fota_studio.ui.main_window import MainWindow
    from fota_studio.ui.workbench import Workbench

    qsettings = QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)
    w = MainWindow(
        app_ws,
        qsettings=qsettings,
        settings_path=tmp_path / "s.json",
        open_workspace=open_workspace,
    )
    bench = Workbench(w, app_ws)
    w.shutdown_hooks.append(bench.shutdown)
    qtbot.addWidget(w)
    w.resize(1024, 700)  # a small laptop screen, first start (default proportions)
    w.show()
    try:
        qtbot.waitExposed(w)
        qtbot.wait(100)
        repo = w.repository_panel
        key_buttons = {
            "repository": [repo.toolbar.widgetForAction(repo.import_action)],
            "requests": [
                bench.requests_panel.create_button,
                bench.requests_panel.start_button,
                bench.requests_panel.cancel_button,
                bench.requests_panel.rerun_button,
                bench.requests_panel.report_button,
                bench.requests_panel.buslog_button,
            ],
            "flash": [
                bench.flash_panel.check_button,
                bench.flash_panel.start_button,
                bench.flash_panel.cancel_button,
            ],
            "technician": [bench.technician_view.check_button, bench.technician_view.start_button],
            "hmi": [bench.hmi_panel.approve_button, bench.hmi_panel.reject_button],
            "trace": [bench.trace_panel.open_button, bench.trace_panel.pause_button],
        }

        def check() -> None:
            for key, buttons in key_buttons.items():
                w.focus_panel(key)
                qtbot.wait(20)
                for button in buttons:
                    assert _inside_viewport(button, _scroll_of(w, key)), (key, button.text())

        check()
        w.dock("requests").hide()
        w.reset_layout()  # Window ▸ Reset layout brings it back, same proportions
        qtbot.wait(100)
        assert w.dock("requests").isVisible()
        check()
    finally:
        w.close()


def test_quit_during_a_real_flash_asks_and_stops_it(
    qtbot, app_ws: Workspace, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from fota_studio.engine.records import list_flash_records
    from fota_studio.infra.connections import load_connections
    from tests.ui.app_fixtures import app_window

    vcu = _fast_vcu(app_ws)
    channel = load_connections(app_ws)["CAN1"].channel
    opts = fast_sim_options(programming_ms_per_kib=15.0)
    with sim_ecu(vcu, channel, tmp_path, options=opts, initial_version="3.1.0"):
        windows = app_window(qtbot, app_ws, tmp_path)
        w, bench = next(windows)
        view = bench.technician_view
        view.confirm = lambda title, text: True
        asked: list[str] = []
        answer = [False]
        w.confirm = lambda title, text: asked.append(text) or answer[0]
        w.set_technician_view(True)
        view.check_button.click()
        qtbot.waitUntil(view.start_button.isEnabled, timeout=20_000)
        view.start_button.click()
        qtbot.waitUntil(
            lambda: "Writing the new software" in view.step_label.text(), timeout=60_000
        )
        assert not w.close()  # "No": the flash goes on
        assert view.is_running() and "VCU 3.2.1 of Unit #1001" in asked[0]
        answer[0] = True
        assert w.close()
        next(windows, None)
    records = list_flash_records(app_ws)
    assert records and records[0].result == "cancelled"


def test_one_approval_timeout_and_imports_reach_the_version_lists(
    qtbot, app_ws: Workspace, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from fota_studio.core.firmware import FirmwareImage, Segment, to_hex
    from fota_studio.core.reference_ecu import APP_REGION_START, app_header
    from fota_studio.ui.panels.repository_panel import ImportRequest
    from tests.ui.app_fixtures import app_window

    for w, bench in app_window(qtbot, app_ws, tmp_path):
        # Settings ▸ operator approval timeout is what every request (and the demo) waits.
        s = w.settings
        assert bench.requests_panel.options.approval_timeout_s == s.approval.operator_timeout_s
        w.update_settings(replace(s, approval=replace(s.approval, operator_timeout_s=90.0)))
        assert bench.requests_panel.options.approval_timeout_s == 90.0
        assert bench.requests_panel.approval_timeout_spin.value() == 90
        # An import is offered at once by the Flash panel and the technician view.
        image = FirmwareImage((Segment(APP_REGION_START, app_header("3.9.0") + b"\x5a" * 1024),))
        path = tmp_path / "vcu_3.9.0.hex"
        path.write_bytes(to_hex(image))
        bench.flash_panel.ecu_combo.setCurrentIndex(bench.flash_panel.ecu_combo.findData("VCU"))
        tech = bench.technician_view
        tech.ecu_combo.setCurrentIndex(tech.ecu_combo.findData("VCU"))
        brand, model = tech.selected_ecu().brand, tech.selected_ecu().model
        with qtbot.waitSignal(w.repository_panel.import_finished, timeout=20_000):
            w.repository_panel.start_import(
                ImportRequest(path=path, brand=brand, model=model, version="3.9.0")
            )
        assert bench.flash_panel.version_combo.findData("3.9.0") >= 0
        assert tech.version_combo.findData("3.9.0") >= 0
