"""The Trace panel's status line names an adapter fault of a live channel (issue 20)."""

from __future__ import annotations

import threading

import can
import pytest

from fota_studio.protocols.bus import BusSettings
from fota_studio.ui.panels.trace_panel import TracePanel
from tests.fakes.unplugged_adapter import UNPLUGGED_CAUSE, unplug_while_set


def test_status_line_names_the_adapter_fault_until_a_good_frame(
    qtbot, can_channel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = TracePanel(capacity_frames=1_000)
    qtbot.addWidget(panel)
    gone = threading.Event()
    try:
        name = panel.open_capture(BusSettings("virtual", can_channel), "CAN1")
        unplug_while_set(panel.capture.bus(name), gone, monkeypatch)
        gone.set()
        qtbot.waitUntil(lambda: "ADAPTER FAULT" in panel.status.text(), timeout=5000)
        text = panel.status.text()
        assert f"CAN1: adapter virtual:{can_channel} vanished" in text
        assert UNPLUGGED_CAUSE in text
        assert "plug it in again" in panel.status.toolTip()
        assert text.count("ADAPTER FAULT") == 1
        gone.clear()
        peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
        try:
            peer.send(can.Message(arbitration_id=0x100, data=b"\x01", is_extended_id=False))
        finally:
            peer.shutdown()
        qtbot.waitUntil(lambda: "ADAPTER FAULT" not in panel.status.text(), timeout=5000)
    finally:
        gone.clear()
        panel.close_all()
