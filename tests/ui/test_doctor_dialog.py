"""Connection doctor dialog and connections dialog on real virtual buses, offscreen."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import can
from PySide6.QtGui import QGuiApplication

from fota_studio.demo.catalog import demo_architecture
from fota_studio.engine import doctor
from fota_studio.engine.doctor import Status
from fota_studio.infra.connections import load_connections
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings
from fota_studio.ui.dialogs.connections_dialog import ConnectionsDialog
from fota_studio.ui.dialogs.doctor_dialog import DoctorDialog

WAIT_MS = 10_000


def _wait_done(qtbot, dlg: DoctorDialog) -> None:
    qtbot.waitUntil(lambda: dlg.report is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: dlg.task is not None and dlg.task.done, timeout=WAIT_MS)
    assert dlg.task.wait(5.0)


def test_healthy_connection_is_reported_and_copied(qtbot, can_channel: str) -> None:
    peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        dlg = DoctorDialog(BusSettings("virtual", can_channel), listen_s=0.05)
        qtbot.addWidget(dlg)
        _wait_done(qtbot, dlg)
    finally:
        peer.shutdown()
    assert dlg.report.ok
    assert dlg.checks.topLevelItemCount() == 4
    assert "works" in dlg.verdict.text()
    assert dlg.rerun_button.isEnabled() and dlg.copy_button.isEnabled()
    dlg.copy_report()
    assert "Verdict: OK" in QGuiApplication.clipboard().text()


def test_no_ack_is_selected_and_explained(qtbot, can_channel: str) -> None:
    dlg = DoctorDialog(BusSettings("virtual", can_channel), listen_s=0.05)
    qtbot.addWidget(dlg)
    _wait_done(qtbot, dlg)
    assert not dlg.report.ok
    current = dlg.checks.currentItem()
    assert current is not None and current.text(0) == "ack"
    assert "acknowledge" in dlg.advice.toPlainText()
    assert "no ACK" in dlg.verdict.text()
    # Run again repeats the checks from scratch.
    dlg.rerun_button.click()
    _wait_done(qtbot, dlg)
    assert dlg.checks.topLevelItemCount() == 4


def test_missing_driver_library_advice(qtbot, monkeypatch) -> None:
    monkeypatch.setattr(doctor, "_load_library", lambda name: False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    dlg = DoctorDialog(BusSettings("pcan", "PCAN_USBBUS1"))
    qtbot.addWidget(dlg)
    _wait_done(qtbot, dlg)
    assert dlg.report.first_error.name == "driver"
    assert dlg.report.first_error.status is Status.ERROR
    assert "libpcanbasic.so" in dlg.advice.toPlainText() or "PCANBasic.dll" in (
        dlg.advice.toPlainText()
    )


def test_connections_dialog_edits_and_saves(qtbot, workspace_dir: Path) -> None:
    ea = demo_architecture()
    with Workspace.open(workspace_dir) as ws:
        dlg = ConnectionsDialog(ws, ea=ea)
        qtbot.addWidget(dlg)
        assert dlg.channels.count() == 1 and dlg.channels.item(0).text() == "CAN1"
        assert dlg.adapter_channel.text() == "fota-demo" and dlg.fd.isChecked()
        assert not dlg.sample_point.isEnabled()  # virtual takes no bit timing
        dlg.interface.setCurrentText("pcan")
        dlg.adapter_channel.setText("PCAN_USBBUS2")
        assert dlg.sample_point.isEnabled() and dlg.data_sample_point.isEnabled()
        dlg.sample_point.setValue(87.5)
        dlg.bitrate.setCurrentText("250000")
        assert "Differs from the EA" in dlg.ea_note.text()
        dlg.bitrate.setCurrentText("500000")
        dlg.accept()
        assert dlg.result() == dlg.DialogCode.Accepted
        saved = load_connections(ws)["CAN1"]
    assert (saved.interface, saved.channel, saved.sample_point_pct) == (
        "pcan",
        "PCAN_USBBUS2",
        87.5,
    )
    assert saved.fd is True


def test_connections_dialog_refuses_invalid_values(qtbot, workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        dlg = ConnectionsDialog(ws)
        qtbot.addWidget(dlg)
        dlg.bitrate.setCurrentText("5000")
        dlg.accept()
        assert "bitrate" in dlg.error.text()
        assert dlg.result() != dlg.DialogCode.Accepted
        assert load_connections(ws) == {}
        dlg.use_default()
        assert dlg.bitrate.currentText() == "500000"


def test_connections_dialog_opens_the_doctor(qtbot, workspace_dir: Path, can_channel: str) -> None:
    with Workspace.open(workspace_dir) as ws:
        dlg = ConnectionsDialog(ws)
        qtbot.addWidget(dlg)
        dlg.adapter_channel.setText(can_channel)
        dlg.check_button.click()
        assert dlg.doctor is not None and dlg.doctor.settings.channel == can_channel
        _wait_done(qtbot, dlg.doctor)
        assert dlg.doctor.report.first_error.name == "ack"  # nobody else on that channel
