"""Connection dialog of the trace: detected adapters plus manual interface/channel/bitrate entry.

Detection (`detect_configs`, up to a few seconds) runs on a plain worker thread and is polled by
a QTimer so the dialog never blocks. The bitrate lists offer what the chosen interface can do
(`protocols.bus.interface_limits`) and OK refuses settings the interface cannot run, naming
them (`problems()`), before anything is opened. `settings()` returns the `BusSettings` to open.
GUI thread.
"""

from __future__ import annotations

import threading
from typing import Any

import can
from PySide6.QtCore import QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.protocols.bus import BusSettings, detect_configs, settings_problems
from fota_studio.ui.dialogs.parts import (
    add_bitrate_rows,
    bitrate_combos,
    offer_rates,
    ok_cancel_buttons,
)
from fota_studio.ui.widgets.wheel_guard import guard_wheel


def _detect_into(found: list[dict[str, Any]], done: threading.Event) -> None:
    found.extend(detect_configs())
    done.set()


class ConnectionDialog(QDialog):
    """Pick an adapter (detected or typed in) and its bus settings."""

    def showEvent(self, event: QShowEvent) -> None:
        """Guard the form's fields against the scroll wheel (widgets/wheel_guard)."""
        guard_wheel(self)
        super().showEvent(event)

    def __init__(self, parent: QWidget | None = None, *, detect: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect CAN channel")
        self._found: list[dict[str, Any]] = []
        self._done = threading.Event()

        self.detected = QListWidget()
        self.detected.currentItemChanged.connect(self._on_detected_current_item_changed)
        self.status = QLabel("Detecting adapters…" if detect else "")
        self.interface = QComboBox()
        self.interface.setEditable(True)
        self.interface.addItems(sorted(can.interfaces.VALID_INTERFACES))
        self.interface.setCurrentText("virtual")
        self.channel = QLineEdit("CAN1")
        self.name = QLineEdit("")
        self.name.setPlaceholderText("display name (default interface:channel)")
        self.bitrate, self.data_bitrate = bitrate_combos(500_000, 2_000_000)
        self.fd = QCheckBox("CAN FD")
        self.data_bitrate.setEnabled(False)
        self.fd.toggled.connect(self.data_bitrate.setEnabled)
        self.listen_only = QCheckBox("Listen only (no ACK, no Tx)")
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828")
        self.interface.currentTextChanged.connect(self._on_interface_current_text_changed)
        self._on_interface_current_text_changed(self.interface.currentText())

        form = QFormLayout()
        form.addRow("Interface", self.interface)
        form.addRow("Channel", self.channel)
        form.addRow("Name", self.name)
        add_bitrate_rows(form, self.bitrate, self.fd, self.data_bitrate)
        form.addRow("", self.listen_only)
        buttons = ok_cancel_buttons(self)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Detected adapters"))
        layout.addWidget(self.detected)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

        self._poll = QTimer(self)
        self._poll.setInterval(100)
        self._poll.timeout.connect(self._on_poll_timeout)
        if detect:
            # A daemon thread: detection cannot be cancelled, and must not keep the app alive.
            # It only touches plain Python objects (the dialog may be gone when it finishes).
            found, done = self._found, self._done
            threading.Thread(
                target=_detect_into, args=(found, done), name="can-detect-ui", daemon=True
            ).start()
            self._poll.start()

    def _on_poll_timeout(self) -> None:
        if not self._done.is_set():
            return
        self._poll.stop()
        for cfg in self._found:
            item = QListWidgetItem(f"{cfg['interface']}: {cfg['channel']}")
            item.setData(256, cfg)
            self.detected.addItem(item)
        self.status.setText(f"{len(self._found)} adapter channel(s) found")

    def _on_detected_current_item_changed(
        self, item: QListWidgetItem | None, _prev: QListWidgetItem | None = None
    ) -> None:
        if item is None:
            return
        cfg = item.data(256)
        self.interface.setCurrentText(str(cfg["interface"]))
        self.channel.setText(str(cfg["channel"]))

    def _on_interface_current_text_changed(self, interface: str) -> None:
        lim = offer_rates(self.bitrate, self.data_bitrate, interface)
        self.fd.setEnabled(lim.fd)
        if not lim.fd:
            self.fd.setChecked(False)
        self.listen_only.setEnabled(lim.listen_only)
        if not lim.listen_only:
            self.listen_only.setChecked(False)

    def problems(self) -> list[str]:
        """What the chosen interface cannot do of the settings as typed ([] = fine)."""
        s = self.settings()
        return settings_problems(
            s.interface, s.bitrate_bps, s.fd, s.data_bitrate_bps, s.listen_only
        )

    def accept(self) -> None:
        """Refuse settings the interface cannot run (named in red); otherwise accept."""
        problems = self.problems()
        if problems:
            self.error.setText("; ".join(problems))
            return
        super().accept()

    def display_name(self) -> str:
        """The name the channel gets in the trace."""
        return self.name.text().strip() or f"{self.interface.currentText()}:{self.channel.text()}"

    def settings(self) -> BusSettings:
        """The chosen settings (bitrates that do not parse fall back to the defaults)."""

        def num(text: str, default: int) -> int:
            try:
                return int(float(text.replace("k", "e3").replace("M", "e6")))
            except ValueError:
                return default

        return BusSettings(
            interface=self.interface.currentText().strip(),
            channel=self.channel.text().strip(),
            bitrate_bps=num(self.bitrate.currentText(), 500_000),
            fd=self.fd.isChecked(),
            data_bitrate_bps=num(self.data_bitrate.currentText(), 2_000_000),
            listen_only=self.listen_only.isChecked(),
        )
