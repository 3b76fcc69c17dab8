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
from fota_studio.protocols.bus import SLCAN_BITRATES_BPS, BusSettings
from fota_studio.ui.dialogs.connections_dialog import ConnectionsDialog
from fota_studio.ui.dialogs.doctor_dialog import DoctorDialog
from tests.ui.dialog_helpers import connection_dialog

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
        dlg.bitrate.setCurrentText("3000")
        assert "bitrate" in dlg.error.text()  # named as it is typed
        assert not dlg.ok_button.isEnabled()
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


def test_connections_dialog_offers_what_slcan_can_do(qtbot, workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        dlg = ConnectionsDialog(ws)
        qtbot.addWidget(dlg)
        dlg.interface.setCurrentText("slcan")
        offered = [int(dlg.bitrate.itemText(i)) for i in range(dlg.bitrate.count())]
        assert offered == list(SLCAN_BITRATES_BPS) and 83_300 in offered
        data = [int(dlg.data_bitrate.itemText(i)) for i in range(dlg.data_bitrate.count())]
        assert data == [2_000_000, 5_000_000]
        assert "sleep_after_open=0.1" in dlg.options.placeholderText()
        assert "ACK: no" in dlg.reports.text()
        dlg.adapter_channel.setText("/dev/ttyACM0")
        # Refused as typed, not at open time: the reason is named and OK is disabled.
        dlg.bitrate.setCurrentText("83333")
        assert "slcan cannot run 83,333 bit/s" in dlg.error.text()
        assert not dlg.ok_button.isEnabled()
        dlg.bitrate.setCurrentText("83300")
        assert dlg.error.text() == "" and dlg.ok_button.isEnabled()
        dlg.fd.setChecked(True)
        dlg.data_bitrate.setCurrentText("4000000")
        assert "CAN FD data bitrate of 4,000,000" in dlg.error.text()
        assert not dlg.ok_button.isEnabled()
        dlg.data_bitrate.setCurrentText("5000000")
        dlg.options.setText("sleep_after_open=9")
        assert "sleep_after_open 9.0 is above 5" in dlg.error.text()
        dlg.options.setText("sleep_after_open=0.2")
        assert dlg.ok_button.isEnabled(), dlg.error.text()
        dlg.accept()
        assert dlg.result() == dlg.DialogCode.Accepted
        saved = load_connections(ws)["CAN1"]
    assert (saved.interface, saved.bitrate_bps, saved.fd, saved.data_bitrate_bps) == (
        "slcan",
        83_300,
        True,
        5_000_000,
    )
    assert dict(saved.options) == {"sleep_after_open": 0.2}
    assert saved.bus_settings().extra["sleep_after_open"] == 0.2


def test_trace_connection_dialog_refuses_what_the_interface_cannot_do(qtbot) -> None:
    dialog = connection_dialog(qtbot, "slcan", "/dev/ttyACM0", "83333")
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted
    assert "slcan cannot run 83,333 bit/s" in dialog.error.text()
    dialog.bitrate.setCurrentText("500000")
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted


def test_doctor_dialog_says_not_proven_for_slcan_without_an_ecu(qtbot, can_channel: str) -> None:
    from tests.fakes.slcan_device import SlcanDevice

    with SlcanDevice(can_channel) as dev:
        dlg = DoctorDialog(BusSettings("slcan", dev.port), listen_s=0.05)
        qtbot.addWidget(dlg)
        _wait_done(qtbot, dlg)
    assert dlg.report.ok and not dlg.report.proven
    assert "Not proven" in dlg.verdict.text() and "works" not in dlg.verdict.text()
    current = dlg.checks.currentItem()
    assert current is not None and current.text(1) == "UNCHECKED"
    assert "cannot" in dlg.advice.toPlainText() or "reports neither" in dlg.advice.toPlainText()
