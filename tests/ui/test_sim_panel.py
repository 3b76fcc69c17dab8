"""The simulator engineering panel: start, watch the ECU table, arm/clear faults, stop."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from fota_studio.ui.panels.sim_panel import COLUMNS, SimPanel


def test_start_inject_stop(qtbot: QtBot, can_channel: str, tmp_path: Path) -> None:
    panel = SimPanel(state_dir=tmp_path / "sim")
    qtbot.addWidget(panel)
    panel.channel_edit.setText(can_channel)
    assert not panel.stop_button.isEnabled()
    with qtbot.waitSignal(panel.running_changed, timeout=10_000) as blocker:
        panel.start_button.click()
    assert blocker.args == [True]
    assert panel.is_running()
    assert panel.table.rowCount() == 3
    names = [panel.table.item(r, 0).text() for r in range(3)]
    assert names == ["VCU", "HCU", "BCU"]
    assert panel.table.item(0, COLUMNS.index("Mode")).text() == "application"

    panel.fault_ecu.setCurrentText("HCU")
    panel.fault_step.setCurrentText("erase")
    panel.fault_kind.setCurrentText("nrc")
    panel.fault_arg.setText("0x22")
    panel.inject_button.click()
    machine = panel.machine
    assert machine is not None
    assert machine.ecu("HCU").state().armed_faults == ("erase:nrc:0x22",)
    qtbot.waitUntil(
        lambda: panel.table.item(1, COLUMNS.index("Armed faults")).text() == "erase:nrc:0x22"
    )
    panel.fault_kind.setCurrentText("late")
    panel.fault_arg.setText("")
    panel.inject_button.click()  # "late" needs an argument: refused with a message
    assert "not armed" in panel.status_label.text()
    panel.clear_button.click()
    assert machine.ecu("HCU").state().armed_faults == ()

    with qtbot.waitSignal(panel.running_changed, timeout=10_000) as blocker:
        panel.stop_button.click()
    assert blocker.args == [False]
    assert not panel.is_running() and panel.start_button.isEnabled()
    assert (tmp_path / "sim" / "Unit_1001" / "VCU.flash").exists()


def test_bad_interface_reports_error(qtbot: QtBot, tmp_path: Path) -> None:
    panel = SimPanel(state_dir=tmp_path / "sim")
    qtbot.addWidget(panel)
    panel.interface_edit.setText("no_such_interface")
    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        panel.start_button.click()
    assert "no_such_interface" in blocker.args[0]
    assert not panel.is_running() and panel.start_button.isEnabled()
    panel.shutdown()
