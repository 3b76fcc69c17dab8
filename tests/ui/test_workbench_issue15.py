"""Issue 15 in the assembled app: adapters live (a remap reopens the channel at once, the
status bar and "Connect adapters" say what happened, a flash goes out on the new bus), quiet by
default (the TCU node only while asked), operator mode as a lockdown, and the demo for a
customer (presentation HMI, Reset demo, a second run offers no downgrade)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import can
import pytest
from PySide6.QtCore import Qt

from fota_studio.infra.access import AccessDeniedError
from fota_studio.infra.connections import ChannelConnection, set_connection
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.fota_objects import DEFAULT_NODE_ID
from fota_studio.ui.workbench import Workbench
from tests.ui.app_fixtures import app_fixtures

TCU_IDS = {0x700 + DEFAULT_NODE_ID, 0x180 + DEFAULT_NODE_ID}
HEARTBEAT_S = 1.0


ws_fixture, window_fixture = app_fixtures("i15")


def _can1(bench: Workbench) -> str:
    return bench.channel_settings["CAN1"].channel


def _tcu_frames(qtbot, peer: can.BusABC, seconds: float) -> list[can.Message]:  # type: ignore[no-untyped-def]
    """Frames of the TCU node seen by `peer` within `seconds` (the GUI keeps running)."""
    out: list[can.Message] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qtbot.wait(50)
        while (msg := peer.recv(0)) is not None:
            if msg.arbitration_id in TCU_IDS:
                out.append(msg)
    return out


def test_quiet_by_default_the_tcu_transmits_only_when_asked(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    _, bench = window
    peer = can.Bus(interface="virtual", channel=_can1(bench), ignore_config=True)
    try:
        assert bench.engine.channels() == ["CAN1"] and bench.service is not None
        assert bench.tcu is None
        assert _tcu_frames(qtbot, peer, HEARTBEAT_S * 1.3) == []  # no boot-up, no heartbeat
        bench.action_tcu_on.trigger()
        assert bench.tcu is not None
        frames = _tcu_frames(qtbot, peer, HEARTBEAT_S * 1.3)
        assert any(bytes(m.data) == b"\x00" for m in frames)  # boot-up
        bench.status_widget.refresh()
        assert "TCU node on the bus" in bench.status_widget.bus_label.toolTip()
        bench.action_tcu_on.trigger()
        assert bench.tcu is None
        peer.recv(0.05)
        while peer.recv(0) is not None:
            pass
        assert _tcu_frames(qtbot, peer, HEARTBEAT_S * 1.3) == []
    finally:
        peer.shutdown()


def test_adapter_remap_reopens_at_once_and_the_flash_uses_the_new_bus(
    qtbot,
    window,
    ws: Workspace,  # type: ignore[no-untyped-def]
) -> None:
    from fota_studio.engine.targets import resolve_flash_target

    _, bench = window
    old = _can1(bench)
    new = f"i15b-{uuid.uuid4().hex[:8]}"
    bench.open_connections()
    dlg = bench.connections_dialog
    assert dlg is not None and dlg.isVisible()
    dlg.channels.setCurrentItem(dlg.channels.findItems("CAN1", Qt.MatchFlag.MatchExactly)[0])
    assert dlg.form_connection().logical_channel == "CAN1"
    dlg.adapter_channel.setText(new)
    dlg.accept()  # saves, then the Workbench applies at once
    assert bench.channel_settings["CAN1"].channel == new
    assert bench.engine.channels() == ["CAN1"]
    assert f"CAN1: now on virtual:{new}" in bench.last_report.text()
    bench.status_widget.refresh()
    assert f"CAN1 ● open (virtual:{new})" in bench.status_widget.bus_label.text()
    # The simulator follows CAN1 (the demo channel) and a flash goes out on the new bus only.
    assert bench.sim_panel.channel_edit.text() == new
    old_peer = can.Bus(interface="virtual", channel=old, ignore_config=True)
    try:
        with qtbot.waitSignal(bench.sim_panel.running_changed, timeout=20_000):
            bench.sim_panel.start()
        target = resolve_flash_target(ws, "Unit #1001", "VCU", "3.2.1")
        with qtbot.waitSignal(bench.flash_panel.flash_finished, timeout=90_000):
            bench.flash_panel.start_flash(
                target.ecu, target.image, version="3.2.1", expected_version="3.2.1"
            )
        assert bench.sim_panel.machine.ecu("VCU").state().software_version == "3.2.1"
        assert old_peer.recv(0) is None  # nothing went out on the old channel
    finally:
        old_peer.shutdown()


def test_a_remap_to_a_missing_adapter_fails_naming_it(qtbot, window, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    _, bench = window
    set_connection(
        ws, ChannelConnection(logical_channel="CAN1", interface="socketcan", channel="fotacan9")
    )
    lines = bench.apply_connections()
    assert len(lines) == 1 and lines[0].startswith("CAN1: NOT opened") and "fotacan9" in lines[0]
    assert bench.last_report.isVisible() and "fotacan9" in bench.last_report.text()
    assert bench.engine.channels() == []
    with pytest.raises(Exception, match="fotacan9"):  # a flash names the adapter, not the ECU
        bench.engine.submit("CAN1", "flash VCU", lambda ctx: None)
    # ... and so do the Flash panel and the technician view, before any frame is sent.
    bench.flash_panel.version_combo.setCurrentIndex(
        bench.flash_panel.version_combo.findData("3.2.1")
    )
    bench.flash_panel.start_button.click()
    assert "fotacan9" in bench.flash_panel.problem_text()
    from fota_studio.ui.technician.technician_view import TechnicianView

    view = TechnicianView(bench.engine, bench.bridge, ws)
    qtbot.addWidget(view)
    view.check_ecu()
    assert "fotacan9" in view.problem_text()
    # "Connect adapters" reports what it did (here: the same failure, named).
    lines = bench.connect_all()
    assert lines[0].startswith("CAN1: NOT opened") and "fotacan9" in lines[0]
    assert "could not be opened" in bench.last_report.windowTitle()


def test_connect_adapters_reports_what_it_did(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    _, bench = window
    lines = bench.connect_all()
    assert lines == [f"CAN1: already open on virtual:{_can1(bench)}"]
    assert bench.last_report.isVisible()
    assert bench.last_report.windowTitle() == "CAN adapters connected"


def test_a_remap_waits_while_a_job_runs_and_says_why(qtbot, window, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    _, bench = window
    old = _can1(bench)
    release = threading.Event()
    handle = bench.engine.submit("CAN1", "long job", lambda ctx: release.wait(10))
    try:
        set_connection(
            ws, ChannelConnection(logical_channel="CAN1", interface="virtual", channel="other")
        )
        lines = bench.apply_connections()
        assert lines == [
            f"CAN1: NOT changed — a flash or another job is running on it; still on virtual:{old}"
        ]
        assert bench.engine.channels() == ["CAN1"] and _can1(bench) == old
    finally:
        release.set()
        handle.result(10)
    qtbot.waitUntil(lambda: not bench.engine.channel_busy("CAN1"), timeout=5000)
    assert bench.apply_connections() == ["CAN1: now on virtual:other"]


def test_a_tcu_switched_on_follows_its_channel_to_the_new_adapter(
    qtbot, window, ws: Workspace
) -> None:  # type: ignore[no-untyped-def]
    _, bench = window
    bench.action_tcu_on.trigger()
    assert bench.tcu is not None
    new = f"i15c-{uuid.uuid4().hex[:8]}"
    peer = can.Bus(interface="virtual", channel=new, ignore_config=True)
    try:
        set_connection(
            ws, ChannelConnection(logical_channel="CAN1", interface="virtual", channel=new)
        )
        lines = bench.apply_connections()
        assert lines == [f"CAN1: now on virtual:{new}", "TCU node back on the bus on CAN1"]
        assert bench.tcu is not None and bench.action_tcu_on.isChecked()
        frames = _tcu_frames(qtbot, peer, 0.5)
        assert any(bytes(m.data) == b"\x00" for m in frames)  # boot-up on the new bus
    finally:
        peer.shutdown()


def test_operator_mode_is_a_lockdown(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    w, bench = window
    bench.action_tcu_on.trigger()
    assert bench.tcu is not None
    bench.access.set_passphrase("correct horse battery")
    bench.access.enter_operator()
    tabs = bench.trace_panel.tabs
    assert not tabs.isTabVisible(tabs.indexOf(bench.trace_panel.transmit_tab))
    assert bench.sim_panel.fault_box.isHidden()
    assert bench.oem_panel.manual_box.isHidden()
    assert not bench.tcu_bench_panel.start_button.isEnabled()
    assert "engineering mode" in bench.tcu_bench_panel.status_label.text()
    with pytest.raises(AccessDeniedError):
        bench.tcu_bench_panel.start(BusSettings(interface="virtual", channel="x"))
    for action in (bench.action_tcu_on, bench.action_hmi_bus, bench.action_connections):
        assert not action.isEnabled(), action.text()
    assert bench.tcu is None  # the user's TCU switch is released
    assert not bench.ea_panel.action_save.isEnabled()
    assert not w.repository_panel.import_action.isEnabled()
    assert bench.action_demo.isEnabled() and bench.action_connect.isEnabled()
    # The simulator stays off real adapters (it would impersonate the machine's ECUs).
    bench.sim_panel.interface_edit.setText("socketcan")
    bench.sim_panel.start()
    assert not bench.sim_panel.is_running()
    assert "virtual buses only" in bench.sim_panel.status_label.text()
    assert bench.access.enter_engineering("correct horse battery")
    assert bench.tcu_bench_panel.start_button.isEnabled()
    assert not bench.oem_panel.manual_box.isHidden()
    assert bench.action_connections.isEnabled()


def test_demo_for_a_customer(qtbot, window, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    """Presentation HMI mirrors the panel and approves; Reset demo puts the machine back;
    a second run offers the demo's pinned upgrade again, never a downgrade."""
    _, bench = window
    hmi = bench.hmi_panel
    pres = bench.open_presentation()
    assert pres.isVisible() and pres.view.headline.text() == hmi.headline.text()
    pres.toggle_full_screen()
    assert pres.isFullScreen() and pres.full_button.isChecked()
    pres._on_escape()
    assert not pres.isFullScreen()
    with qtbot.waitSignal(hmi.offer_shown, timeout=30_000) as offer:
        pres.run_button.click()
    assert (offer.args[0].installed_version, offer.args[0].offered_version) == ("3.1.0", "3.2.1")
    assert pres.view.headline.text() == "Update available"
    assert "3.1.0 → 3.2.1" in pres.view.versions_label.text()
    assert not pres.run_button.isEnabled()
    with qtbot.waitSignal(bench.demo.finished, timeout=90_000) as done:
        qtbot.mouseClick(pres.view.approve_button, Qt.MouseButton.LeftButton)
    assert done.args[0] == "Successful", done.args[1]
    qtbot.waitUntil(lambda: "successful" in pres.view.result_label.text().lower(), timeout=10_000)
    assert EaStore(ws).get_machine("Unit #1001").installed["VCU"] == "3.2.1"
    qtbot.waitUntil(lambda: not bench.demo.busy, timeout=20_000)
    assert pres.run_button.isEnabled()
    # Reset demo: a fresh machine on the demo's starting version.
    assert bench.reset_demo() == ["Unit #1001 VCU back on 3.1.0"]
    assert EaStore(ws).get_machine("Unit #1001").installed["VCU"] == "3.1.0"
    assert hmi.headline.text() == "No update" and pres.view.headline.text() == "No update"
    assert bench.reset_demo() == []  # already fresh
    # A second run (reset or not) offers 3.1.0 → 3.2.1 again: no downgrade.
    EaStore(ws).set_installed("Unit #1001", "VCU", "3.2.1", "test")
    with qtbot.waitSignal(hmi.offer_shown, timeout=30_000) as offer:
        bench.action_demo.trigger()
    assert (offer.args[0].installed_version, offer.args[0].offered_version) == ("3.1.0", "3.2.1")
    with qtbot.waitSignal(bench.demo.finished, timeout=30_000):
        hmi.reject_button.click()
    pres.close()


def test_the_hmi_does_not_shrink_as_the_window_grows(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    w, bench = window
    w.focus_panel("hmi")
    seen: list[tuple[int, int, int]] = []
    for size in ((1024, 700), (1400, 860), (1920, 1080)):
        w.resize(*size)
        qtbot.wait(200)
        view = bench.hmi_panel.view
        seen.append((view.width(), view.height(), bench.hmi_panel.headline.font().pixelSize()))
    for (w0, h0, px0), (w1, h1, px1) in itertools.pairwise(seen):
        assert w1 >= w0 and h1 >= h0 and px1 >= px0, seen
    assert seen[-1][2] > seen[0][2], seen  # and its text grows with the space it gets
