"""The OEM logic panel (Checkpoint 2) and the TCU bench (the TCU's CANopen interface on a bus).

`OemPanel` shows the Checkpoint 2 checks of the running request as they come in (software
version DID, active DTCs, heartbeat) with their verdict, and can act as a manual OEM node on the
bus: Healthy / Unhealthy write oem_verification over SDO (accepted by the TCU only while it waits
for verification, status 0x02).

`TcuBenchPanel` exposes a `TcuNode` on a chosen adapter (`protocols.bus.open_bus`) so an OEM's
real HMI or PLC can be tested step by step: offer an update, watch the operator decision, simulate
the flash (status 0x01 with progress), ask for verification (0x02), watch the verdict, and set a
final status.

GUI thread only; SDO transfers run on a `ClientWorker` thread, the TCU's decision listener (CAN
thread) only emits a queued signal.
"""

from __future__ import annotations

from typing import Any

import can
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import FotaError
from fota_studio.engine.workflow import Checkpoint2Result, WorkflowStep
from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.bus import BusSettings, open_bus
from fota_studio.protocols.fota_client import FotaClient
from fota_studio.protocols.tcu_node import TcuNode
from fota_studio.ui.panels.hmi_panel import ClientWorker
from fota_studio.ui.widgets.buttons import button_row, push_button
from fota_studio.ui.widgets.forms import form_box
from fota_studio.ui.widgets.timers import periodic_timer

SIM_FLASH_TICK_MS = 200
SIM_FLASH_STEP_PERCENT = 5


class OemPanel(QWidget):
    """Checkpoint 2 checks and verdict; a manual OEM node (Healthy / Unhealthy)."""

    verdict_sent = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client: FotaClient | None = None
        self._owns_client = False
        self.worker = ClientWorker("oem-panel", self)
        self.worker.done.connect(self._on_worker_done)
        self.worker.failed.connect(lambda tag, text: self.verdict_label.setText(f"{tag}: {text}"))
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Check", "Result", "Observed"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.verdict_label: QLabel = QLabel("Checkpoint 2 not started")

        def verdict_button(text: str, machine_is: str, verdict: int) -> QPushButton:
            tip = f"Answer the pending Checkpoint 2 verification: the machine is {machine_is}"
            return push_button(text, tip, lambda: self._send(verdict))

        self.healthy_button = verdict_button("Healthy", "healthy", fo.VERDICT_HEALTHY)
        self.unhealthy_button = verdict_button("Unhealthy", "not healthy", fo.VERDICT_UNHEALTHY)
        manual = QGroupBox("Manual OEM node (writes oem_verification over SDO)")
        self.manual_box = manual
        self._manual_allowed = True
        row = QHBoxLayout(manual)
        row.addWidget(self.healthy_button)
        row.addWidget(self.unhealthy_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.verdict_label)
        layout.addWidget(manual)
        self._set_manual_enabled()

    def attach_client(self, client: FotaClient, *, owned: bool = False) -> None:
        """Act as an OEM node through a started FotaClient."""
        self.detach()
        self.client = client
        self._owns_client = owned
        self._set_manual_enabled()

    def attach_bus(self, bus: can.BusABC, *, node_id: int = fo.DEFAULT_NODE_ID) -> None:
        """Open an own FotaClient on `bus`."""
        client = FotaClient(bus, node_id=node_id, poll_period_s=None)
        client.start()
        self.attach_client(client, owned=True)

    def detach(self) -> None:
        """Forget the client (stopping it when the panel created it)."""
        client, self.client = self.client, None
        if client is not None and self._owns_client:
            client.stop()
        self._set_manual_enabled()

    def shutdown(self) -> None:
        """Detach and stop the worker thread."""
        self.detach()
        self.worker.stop()

    def set_manual_allowed(self, allowed: bool) -> None:
        """Operator mode hides the manual OEM node: a verdict typed by hand is not a
        Checkpoint 2 an operator may give (`AccessControl` decides)."""
        self._manual_allowed = allowed
        self.manual_box.setVisible(allowed)
        self._set_manual_enabled()

    def _set_manual_enabled(self) -> None:
        on = self.client is not None and self._manual_allowed
        self.healthy_button.setEnabled(on)
        self.unhealthy_button.setEnabled(on)

    def on_event(self, event: object) -> None:
        """Show Checkpoint 2 progress from workflow events (GUI thread)."""
        if isinstance(event, WorkflowStep) and event.step == "checkpoint_2":
            if event.state == "started":
                self.table.setRowCount(0)
                self.verdict_label.setText("Checkpoint 2 running: waiting for checks / OEM verdict")
            else:
                self.verdict_label.setText(
                    ("Healthy: " if event.state == "ok" else "NOT healthy: ") + event.detail
                )
        elif isinstance(event, Checkpoint2Result):
            self.table.setRowCount(0)
            for c in event.checks:
                r = self.table.rowCount()
                self.table.insertRow(r)
                for col, text in enumerate((c.name, "ok" if c.ok else "FAILED", c.detail)):
                    self.table.setItem(r, col, QTableWidgetItem(text))

    def _send(self, verdict: int) -> None:
        client = self.client
        if client is None or not self._manual_allowed:
            return
        self.worker.submit_write("verdict", client.write_oem_verification, verdict)

    def _on_worker_done(self, tag: str, result: object) -> None:
        if tag == "verdict" and isinstance(result, int):
            word = "healthy" if result == fo.VERDICT_HEALTHY else "unhealthy"
            self.verdict_label.setText(f"OEM verdict {word} sent")
            self.verdict_sent.emit(result)


class TcuBenchPanel(QWidget):
    """The TCU's CANopen FOTA interface on a real (or virtual) bus, driven by hand."""

    decision_seen = Signal(str, int)  # (object name, value) written by the machine side

    _decision = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bus: can.BusABC | None = None
        self.tcu: TcuNode | None = None
        self._decision.connect(self._on_decision, Qt.ConnectionType.QueuedConnection)
        self.interface_edit = QComboBox()
        self.interface_edit.setEditable(True)
        self.interface_edit.addItems(
            ["virtual", "pcan", "kvaser", "vector", "ixxat", "slcan", "gs_usb", "socketcan"]
        )
        self.channel_edit = QLineEdit("tcu-bench")
        self.bitrate_spin = QSpinBox()
        self.bitrate_spin.setRange(10_000, 1_000_000)
        self.bitrate_spin.setSingleStep(125_000)
        self.bitrate_spin.setValue(500_000)
        self.node_spin = QSpinBox()
        self.node_spin.setRange(1, 0x7F)
        self.node_spin.setValue(fo.DEFAULT_NODE_ID)
        self.node_spin.setDisplayIntegerBase(16)
        self.start_button = push_button(
            "Start TCU",
            "Start a TCU CANopen node on the chosen bus for bench tests",
            self._on_start_clicked,
        )
        self.stop_button = push_button("Stop TCU", "Stop the bench TCU node", self.stop)
        conn, cf = form_box("Adapter")
        cf.addRow("Interface:", self.interface_edit)
        cf.addRow("Channel:", self.channel_edit)
        cf.addRow("Bitrate (bit/s):", self.bitrate_spin)
        cf.addRow("Node-ID (hex):", self.node_spin)
        cf.addRow(button_row(self.start_button, self.stop_button))
        self.ecu_edit = QLineEdit("VCU")
        self.installed_edit = QLineEdit("3.1.0")
        self.offered_edit = QLineEdit("3.2.0")
        self.downtime_spin = QSpinBox()
        self.downtime_spin.setRange(0, 0xFFFF)
        self.downtime_spin.setValue(120)
        self.offer_button = push_button(
            "1. Offer update", "Publish an update offer to the machine HMI", self.offer
        )
        self.flash_button = push_button(
            "2. Simulate flash",
            "Pretend to flash: step the update status through flashing",
            self.simulate_flash,
        )
        self.verify_button = push_button(
            "3. Ask for verification",
            "Ask the OEM node for its Checkpoint 2 verdict",
            lambda: self._set_status(fo.STATUS_WAITING_VERIFICATION),
        )
        self.success_button = push_button(
            "Successful",
            "End the bench update as successful",
            lambda: self._set_status(fo.STATUS_SUCCESSFUL),
        )
        self.fail_button = push_button(
            "Failed", "End the bench update as failed", lambda: self._set_status(fo.STATUS_FAILED)
        )
        steps, sf = form_box("Step by step")
        sf.addRow("Target ECU:", self.ecu_edit)
        sf.addRow("Installed:", self.installed_edit)
        sf.addRow("Offered:", self.offered_edit)
        sf.addRow("Downtime (s):", self.downtime_spin)
        for b in (self.offer_button, self.flash_button, self.verify_button):
            sf.addRow(b)
        sf.addRow(button_row(self.success_button, self.fail_button))
        self.status_label = QLabel("TCU stopped")
        self._allowed = True
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(1000)
        layout = QVBoxLayout(self)
        layout.addWidget(conn)
        layout.addWidget(steps)
        layout.addWidget(self.status_label)
        layout.addWidget(self.log, 1)
        self._flash_timer = periodic_timer(self, SIM_FLASH_TICK_MS, self._flash_tick, start=False)
        self._progress = 0
        self._update_enabled()

    def set_allowed(self, allowed: bool) -> None:
        """Operator mode locks the bench (it transmits CANopen by hand): a running bench TCU
        is stopped and Start is disabled with the reason (`AccessControl` decides)."""
        self._allowed = allowed
        if not allowed:
            self.stop()
            self.status_label.setText(
                "Operator mode: the TCU bench needs engineering mode (Mode menu)"
            )
        elif self.tcu is None:
            self.status_label.setText("TCU stopped")
        self._update_enabled()

    def _update_enabled(self) -> None:
        on = self.tcu is not None
        self.start_button.setEnabled(not on and self._allowed)
        self.stop_button.setEnabled(on)
        for b in (
            self.offer_button,
            self.flash_button,
            self.verify_button,
            self.success_button,
            self.fail_button,
        ):
            b.setEnabled(on)

    def _on_start_clicked(self) -> None:
        settings = BusSettings(
            interface=self.interface_edit.currentText().strip(),
            channel=self.channel_edit.text().strip(),
            bitrate_bps=self.bitrate_spin.value(),
        )
        try:
            self.start(settings, node_id=self.node_spin.value())
        except FotaError as exc:
            self.status_label.setText(str(exc))

    def start(self, settings: BusSettings, *, node_id: int = fo.DEFAULT_NODE_ID) -> TcuNode:
        """Open the adapter and start the TCU node on it (AccessDeniedError in operator mode)."""
        if not self._allowed:
            from fota_studio.infra.access import AccessDeniedError, Action

            raise AccessDeniedError(Action.RAW_TRANSMIT)
        self.stop()
        bus = open_bus(settings)
        tcu = TcuNode(bus, node_id=node_id)
        try:
            tcu.start()
        except Exception:
            bus.shutdown()
            raise
        tcu.add_decision_listener(self._decision.emit)
        self.bus, self.tcu = bus, tcu
        self.status_label.setText(
            f"TCU node 0x{node_id:02X} on {settings.interface} {settings.channel}"
        )
        self.log.appendPlainText(f"started on {settings.interface}:{settings.channel}")
        self._update_enabled()
        return tcu

    def stop(self) -> None:
        """Stop the TCU and close the adapter (idempotent)."""
        self._flash_timer.stop()
        tcu, bus = self.tcu, self.bus
        self.tcu, self.bus = None, None
        if tcu is not None:
            tcu.stop()
        if bus is not None:
            bus.shutdown()
        self.status_label.setText("TCU stopped")
        self._update_enabled()

    def closeEvent(self, event: Any) -> None:
        """Release the adapter with the widget."""
        self.stop()
        super().closeEvent(event)

    def offer(self) -> None:
        """Step 1: update_available = 1 with the versions and downtime."""
        if self.tcu is None:
            return
        self.tcu.offer_update(
            request_id=1,
            target_ecu=self.ecu_edit.text(),
            installed_version=self.installed_edit.text(),
            offered_version=self.offered_edit.text(),
            expected_downtime_s=self.downtime_spin.value(),
        )
        self.log.appendPlainText("offered: update_available = 1, waiting for operator_decision")

    def simulate_flash(self) -> None:
        """Step 2: status 0x01 with progress 0..100 (no ECU involved)."""
        if self.tcu is None:
            return
        self.tcu.clear_offer()
        self.tcu.set_status(fo.STATUS_FLASHING)
        self._progress = 0
        self._flash_timer.start()
        self.log.appendPlainText("flashing (simulated)")

    def _flash_tick(self) -> None:
        if self.tcu is None:
            self._flash_timer.stop()
            return
        self._progress = min(100, self._progress + SIM_FLASH_STEP_PERCENT)
        self.tcu.set_progress(self._progress)
        if self._progress >= 100:
            self._flash_timer.stop()
            self.log.appendPlainText("flash done (simulated)")

    def _set_status(self, code: int) -> None:
        if self.tcu is None:
            return
        self.tcu.set_status(code)
        self.log.appendPlainText(f"update_status = 0x{code:02X} ({fo.describe_status(code)})")

    def _on_decision(self, name: str, value: int) -> None:
        self.log.appendPlainText(f"machine wrote {name} = {value}")
        self.decision_seen.emit(name, value)
