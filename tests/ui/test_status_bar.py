"""The status bar: channel state and adapter, bus load and frames/s of live traffic, the mode."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import can
import pytest
from PySide6.QtCore import QSettings

from fota_studio.app import open_workspace
from fota_studio.engine.trace_store import TraceStore
from fota_studio.infra.connections import ChannelConnection, set_connection
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.main_window import MainWindow
from fota_studio.ui.widgets.status_bar import (
    STATE_CLOSED,
    STATE_ERROR,
    STATE_OPEN,
    BusStatusWidget,
    ChannelStatus,
    measure_load,
)
from fota_studio.ui.workbench import Workbench


def _frames(n: int, ts: float, length: int = 8) -> list[can.Message]:
    return [
        can.Message(arbitration_id=0x100, data=bytes(length), timestamp=ts, is_extended_id=False)
        for _ in range(n)
    ]


def test_measure_load_counts_live_frames_only() -> None:
    store = TraceStore(10_000)
    now = time.time()
    store.append_messages(_frames(100, now - 100_000.0), store.channel_index("CAN1"))  # a log file
    since = store.end_seq - 100
    store.append_messages(_frames(50, now), store.channel_index("CAN1"))
    end, loads = measure_load(store, since, 1.0, {"CAN1": 500_000}, now_s=now)
    assert end == store.end_seq
    assert loads["CAN1"].frames_per_s == pytest.approx(50.0)
    # 50 standard frames of 8 bytes: (47 + 64) bits x 1.2 stuffing = 6,660 bit/s of 500 kbit/s.
    assert loads["CAN1"].load_percent == pytest.approx(100 * 50 * 111 * 1.2 / 500_000)
    assert measure_load(store, end, 1.0, {}, now_s=now) == (end, {})


def test_widget_texts_for_each_state(qtbot) -> None:
    channels = [
        ChannelStatus(
            "CAN1", STATE_OPEN, "pcan", 250_000, "pcan:PCAN_USBBUS1 250k", "PCAN_USBBUS1"
        ),
        ChannelStatus("CAN2", STATE_CLOSED, "vector"),
        ChannelStatus("CAN3", STATE_ERROR, "kvaser", detail="driver not found"),
    ]
    w = BusStatusWidget(lambda: channels, None, lambda: "operator")
    qtbot.addWidget(w)
    assert "CAN1 ● open (pcan:PCAN_USBBUS1)" in w.bus_label.text()
    assert "CAN2 ○ closed" in w.bus_label.text()
    assert "CAN3 ⚠ error (kvaser): driver not found" in w.bus_label.text()
    assert "driver not found" in w.bus_label.toolTip()
    assert "250 kbit/s" in w.bus_label.toolTip()
    assert w.load_label.text() == "Load: CAN1 0 % · 0 fr/s"  # only open channels
    assert w.mode_label.text() == "Mode: operator"
    assert w.load_label.toolTip() and w.mode_label.toolTip()
    empty = BusStatusWidget(lambda: [], None)
    qtbot.addWidget(empty)
    assert empty.bus_label.text() == "No CAN channel" and empty.mode_label.isHidden()


@pytest.fixture
def window(
    qtbot, workspace_dir: Path, tmp_path: Path
) -> Iterator[tuple[MainWindow, Workbench, str]]:
    channel = f"sb-{uuid.uuid4().hex[:8]}"
    ws: Workspace = open_workspace(workspace_dir)
    set_connection(
        ws, ChannelConnection(logical_channel="CAN1", interface="virtual", channel=channel)
    )
    qsettings = QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)
    w = MainWindow(ws, qsettings=qsettings, settings_path=tmp_path / "s.json")
    bench = Workbench(w, ws)
    w.shutdown_hooks.append(bench.shutdown)
    qtbot.addWidget(w)
    w.show()
    yield w, bench, channel
    w.close()
    ws.close()


def test_workbench_status_shows_channel_mode_and_live_load(qtbot, window) -> None:
    w, bench, channel = window
    status = bench.status_widget
    assert status.parent() is w.statusBar() or status in w.statusBar().findChildren(BusStatusWidget)
    assert f"CAN1 ● open (virtual:{channel})" in status.bus_label.text()
    assert status.mode_label.text() == "Mode: engineering"
    bench.access.set_passphrase("correct horse battery")
    bench.access.enter_operator()
    status.refresh()
    assert status.mode_label.text() == "Mode: operator"

    peer = can.Bus(interface="virtual", channel=channel, ignore_config=True)
    try:
        for _ in range(200):
            peer.send(can.Message(arbitration_id=0x321, data=bytes(8), is_extended_id=False))

        def measured() -> bool:
            status.refresh()
            return status.loads.get("CAN1") is not None

        qtbot.waitUntil(measured, timeout=5_000)
    finally:
        peer.shutdown()
    assert status.loads["CAN1"].frames_per_s > 0
    assert status.loads["CAN1"].load_percent > 0
    assert "CAN1" in status.load_text(bench.channel_statuses())


def test_failed_channel_shows_as_error(qtbot, window) -> None:
    _, bench, _ = window
    bench.channel_errors["CAN9"] = "no driver for 'pcan'"
    statuses = {c.name: c for c in bench.channel_statuses()}
    assert statuses["CAN9"].state == STATE_ERROR
    assert statuses["CAN1"].state == STATE_OPEN


def test_remap_to_a_missing_adapter_shows_it_and_its_error(qtbot, window) -> None:
    """Issue 15 point 1: after CAN1 is remapped to socketcan:can-… the status bar names that
    adapter and its error, never "CAN1 ● open (virtual)"; a flash names the adapter."""
    _, bench, channel = window
    ws = bench.ws
    set_connection(
        ws, ChannelConnection(logical_channel="CAN1", interface="socketcan", channel="fotanope0")
    )
    lines = bench.apply_connections()
    assert any(line.startswith("CAN1: NOT opened") and "fotanope0" in line for line in lines)
    bench.status_widget.refresh()
    text = bench.status_widget.bus_label.text()
    assert "CAN1 ⚠ error (socketcan:fotanope0)" in text, text
    assert "virtual" not in text
    assert "fotanope0" in bench.status_widget.bus_label.toolTip()
    assert bench.engine.channels() == []
    assert "fotanope0" in (bench.engine.open_error("CAN1") or "")
    # Back to a virtual bus: reopened at once, the status follows.
    set_connection(
        ws, ChannelConnection(logical_channel="CAN1", interface="virtual", channel=channel)
    )
    lines = bench.apply_connections()
    assert lines == [f"CAN1: now on virtual:{channel}"]
    bench.status_widget.refresh()
    assert f"CAN1 ● open (virtual:{channel})" in bench.status_widget.bus_label.text()
