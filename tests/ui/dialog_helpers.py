"""Dialogs filled in as a user would, for the GUI tests (GUI thread)."""

from __future__ import annotations

from typing import Any

from fota_studio.ui.dialogs.connection_dialog import ConnectionDialog


def connection_dialog(qtbot: Any, interface: str, channel: str, bitrate: str) -> ConnectionDialog:
    """A Connect dialog (no adapter detection) with `interface`, `channel` and `bitrate` set."""
    dialog = ConnectionDialog(detect=False)
    qtbot.addWidget(dialog)
    dialog.interface.setCurrentText(interface)
    dialog.channel.setText(channel)
    dialog.bitrate.setCurrentText(bitrate)
    return dialog
