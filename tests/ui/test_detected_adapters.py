"""Detected adapters (issue 15): the Adapter settings dialog lists what python-can's
`detect_available_configs` finds, without software buses, and picking one fills the form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import can
from PySide6.QtCore import Qt

from fota_studio.infra.workspace import Workspace
from fota_studio.ui.dialogs.connections_dialog import ConnectionsDialog
from fota_studio.ui.widgets.detected_adapters import DetectedAdapters, adapter_configs

#: What python-can's detection returns on a machine with a PCAN-USB and a CANable plugged in.
FOUND = [
    {"interface": "pcan", "channel": "PCAN_USBBUS1", "supports_fd": True},
    {"interface": "slcan", "channel": "/dev/ttyACM0"},
    {"interface": "virtual", "channel": "channel-1"},
    {"interface": "pcan", "channel": "PCAN_USBBUS1"},
]


def test_software_buses_and_duplicates_are_not_adapters() -> None:
    assert adapter_configs(FOUND) == [("pcan", "PCAN_USBBUS1"), ("slcan", "/dev/ttyACM0")]
    real = can.detect_available_configs(interfaces=["virtual"])
    assert real and adapter_configs([dict(c) for c in real]) == []


def test_picking_a_detected_adapter_fills_the_form(qtbot, workspace_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace.open(workspace_dir)
    try:
        dlg = ConnectionsDialog(ws)
        qtbot.addWidget(dlg)
        assert dlg.detected.adapters() == []  # nothing detected until asked
        widget: DetectedAdapters = dlg.detected
        widget._detector = lambda: FOUND
        with qtbot.waitSignal(widget.detection_finished, timeout=5000) as done:
            widget.detect_button.click()
        assert done.args == [2]
        assert widget.adapters() == [("pcan", "PCAN_USBBUS1"), ("slcan", "/dev/ttyACM0")]
        assert "2 adapter channel(s) found" in widget.status.text()
        item = widget.list.item(1)
        qtbot.mouseClick(
            widget.list.viewport(),
            Qt.MouseButton.LeftButton,
            pos=widget.list.visualItemRect(item).center(),
        )
        conn = dlg.form_connection()
        assert (conn.interface, conn.channel) == ("slcan", "/dev/ttyACM0")
    finally:
        ws.close()


def test_nothing_found_says_what_to_do(qtbot) -> None:  # type: ignore[no-untyped-def]
    empty: list[dict[str, Any]] = []
    widget = DetectedAdapters(detector=lambda: empty)
    qtbot.addWidget(widget)
    qtbot.waitUntil(lambda: widget.detect_button.isEnabled(), timeout=5000)
    assert widget.adapters() == []
    assert "No adapter found" in widget.status.text()
