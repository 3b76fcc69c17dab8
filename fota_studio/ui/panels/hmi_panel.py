"""The HMI demo panel: a touch-friendly mock of the machine display, a CANopen client of the TCU.

It behaves like the operator display on a real machine: a `FotaClient` on the bus (TPDO1 plus
polling, SDO reads and writes of object 0x5FF3) shows "update available" with the versions and
the expected downtime, offers big Approve / Reject buttons (written as operator_decision over
SDO), then the flashing status and progress, and the final result with last_error. It needs only
a bus, so it works against the simulated TCU and against a real TCU on a real adapter.

Threads: SDO transfers block (up to the SDO timeout), so they run on the panel's own worker
thread `fota-hmi-panel`; the client's state listener runs on the CAN/poll thread and only emits
a queued signal. Every widget is touched on the GUI thread only. `ClientWorker` is shared with
the OEM panel.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import can
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import FotaError
from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.fota_client import FotaClient, FotaState, UpdateOffer

PROGRESS_POLL_MS = 500
BUTTON_MIN_HEIGHT_PX = 72
FINAL_STATUSES = frozenset(
    {
        fo.STATUS_SUCCESSFUL,
        fo.STATUS_FAILED,
        fo.STATUS_REJECTED,
        fo.STATUS_APPROVAL_TIMEOUT,
        fo.STATUS_VERIFICATION_TIMEOUT,
        fo.STATUS_CANCELLED,
    }
)


class ClientWorker(QObject):
    """Runs blocking FotaClient calls on a thread `fota-<name>`; results come back as signals."""

    done = Signal(str, object)  # (tag, result)
    failed = Signal(str, str)  # (tag, error text)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._jobs: queue.Queue[tuple[str, Callable[[], Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"fota-{self._name}", daemon=True
            )
            self._thread.start()

    def submit(self, tag: str, fn: Callable[[], Any]) -> None:
        """Queue `fn()`; `done(tag, result)` or `failed(tag, text)` follows on the GUI thread."""
        self.start()
        self._jobs.put((tag, fn))

    def stop(self) -> None:
        """Stop the thread after the queued calls (joins it briefly)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(3.0)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            tag, fn = item
            try:
                result = fn()
            except FotaError as exc:
                self.failed.emit(tag, str(exc))
                continue
            except Exception as exc:  # shown to the user; the worker must survive it
                self.failed.emit(tag, f"{type(exc).__name__}: {exc}")
                continue
            self.done.emit(tag, result)


def _big(widget: QWidget, factor: float) -> None:
    font = QFont(widget.font())
    font.setPointSizeF(max(8.0, font.pointSizeF()) * factor)
    widget.setFont(font)


class HmiPanel(QWidget):
    """Mock machine display speaking CANopen SDO to the TCU's FOTA objects."""

    offer_shown = Signal(object)  # UpdateOffer
    decision_sent = Signal(int)  # DECISION_APPROVE / DECISION_REJECT, accepted by the TCU
    status_changed = Signal(int)  # update_status
    final_shown = Signal(int)  # a final update_status

    _state_received = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client: FotaClient | None = None
        self._owns_client = False
        self.offer: UpdateOffer | None = None
        self.last_status: int | None = None
        self.worker = ClientWorker("hmi-panel", self)
        self.worker.done.connect(self._on_worker_done)
        self.worker.failed.connect(self._on_worker_failed)
        self._state_received.connect(self._on_state, Qt.ConnectionType.QueuedConnection)

        frame = QFrame()
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        frame.setStyleSheet("QFrame { background: #101820; color: #e8eef2; border-radius: 12px; }")
        inner = QVBoxLayout(frame)
        self.headline = QLabel("No update")
        _big(self.headline, 2.0)
        self.headline.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.versions_label = QLabel("")
        _big(self.versions_label, 1.5)
        self.versions_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.downtime_label = QLabel("")
        _big(self.downtime_label, 1.2)
        self.downtime_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMinimumHeight(36)
        self.progress.hide()
        self.result_label = QLabel("")
        _big(self.result_label, 1.2)
        self.result_label.setWordWrap(True)
        self.result_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        buttons = QHBoxLayout()
        self.reject_button = QPushButton("Reject")
        self.reject_button.setToolTip(
            "Decline the offered update on the machine (sent to the TCU over CANopen)"
        )
        self.approve_button = QPushButton("Approve")
        self.approve_button.setToolTip(
            "Accept the offered update: the machine must be stationary; flashing starts"
        )
        for b, color in ((self.reject_button, "#b3261e"), (self.approve_button, "#1e7b34")):
            b.setMinimumHeight(BUTTON_MIN_HEIGHT_PX)
            _big(b, 1.6)
            b.setStyleSheet(
                f"QPushButton {{ background: {color}; color: white; }}"
                "QPushButton:disabled { background: #3a3f4b; color: #8a8f99; }"
            )
            b.setEnabled(False)
        buttons.addWidget(self.reject_button)
        buttons.addWidget(self.approve_button)
        inner.addWidget(self.headline)
        inner.addWidget(self.versions_label)
        inner.addWidget(self.downtime_label)
        inner.addWidget(self.progress)
        inner.addWidget(self.result_label)
        inner.addLayout(buttons)
        self.connection_label = QLabel("not connected")
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(500)
        self.log_view.setMaximumHeight(120)
        layout = QVBoxLayout(self)
        layout.addWidget(frame, 1)
        layout.addWidget(self.connection_label)
        layout.addWidget(self.log_view)
        self.approve_button.clicked.connect(lambda: self._decide(fo.DECISION_APPROVE))
        self.reject_button.clicked.connect(lambda: self._decide(fo.DECISION_REJECT))
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(PROGRESS_POLL_MS)
        self._progress_timer.timeout.connect(self._poll_progress)

    # -- connection ----------------------------------------------------------------------------

    def attach_client(self, client: FotaClient, *, owned: bool = False) -> None:
        """Use a started FotaClient (e.g. the demo bench's); `owned` stops it on detach."""
        self.detach()
        self.client = client
        self._owns_client = owned
        client.add_state_listener(self._state_received.emit)
        self.connection_label.setText(f"CANopen client of TCU node 0x{client.node_id:02X}")
        self._log(f"connected to TCU node 0x{client.node_id:02X}")
        self.worker.submit("poll", client.poll_once)

    def attach_bus(self, bus: can.BusABC, *, node_id: int = fo.DEFAULT_NODE_ID) -> None:
        """Open a FotaClient of node `node_id` on `bus` (a real adapter or a virtual bus)."""
        client = FotaClient(bus, node_id=node_id)
        client.start()
        self.attach_client(client, owned=True)

    def detach(self) -> None:
        """Stop listening (and stop the client when the panel created it)."""
        self._progress_timer.stop()
        client, self.client = self.client, None
        if client is not None:
            client.remove_state_listener(self._state_received.emit)
            if self._owns_client:
                client.stop()
        self.connection_label.setText("not connected")

    def shutdown(self) -> None:
        """Detach and stop the worker thread (call before the bus closes)."""
        self.detach()
        self.worker.stop()

    def closeEvent(self, event: Any) -> None:
        """Stop threads with the widget."""
        self.shutdown()
        super().closeEvent(event)

    # -- state -----------------------------------------------------------------------------

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _on_state(self, state: FotaState) -> None:
        if self.client is None:
            return
        self._log(f"state: {state.describe()} ({state.source})")
        if state.update_status != self.last_status:
            self.last_status = state.update_status
            self.status_changed.emit(state.update_status)
        client = self.client
        if state.update_available == fo.UPDATE_WAITING_APPROVAL:
            self.worker.submit("offer", client.read_offer)
            return
        self.approve_button.setEnabled(False)
        self.reject_button.setEnabled(False)
        status = state.update_status
        if status == fo.STATUS_FLASHING:
            self.headline.setText("Updating… do not switch off")
            self.progress.show()
            self._progress_timer.start()
        elif status == fo.STATUS_WAITING_VERIFICATION:
            self._progress_timer.stop()
            self.progress.setValue(100)
            self.headline.setText("Checking the new software…")
        elif status in FINAL_STATUSES:
            self._progress_timer.stop()
            self.headline.setText(fo.describe_status(status).capitalize())
            self.worker.submit("final", lambda: (status, client.read_last_error()))

    def _poll_progress(self) -> None:
        if self.client is not None:
            self.worker.submit("progress", self.client.read_progress_percent)

    def _decide(self, decision: int) -> None:
        if self.client is None:
            return
        self.approve_button.setEnabled(False)
        self.reject_button.setEnabled(False)
        client = self.client

        def write() -> int:
            client.write_operator_decision(decision)
            return decision

        self.worker.submit("decision", write)

    def _on_worker_done(self, tag: str, result: object) -> None:
        if tag == "offer" and isinstance(result, UpdateOffer):
            self.offer = result
            self.headline.setText("Update available")
            self.versions_label.setText(
                f"{result.target_ecu}: {result.installed_version or '?'} → {result.offered_version}"
            )
            self.downtime_label.setText(
                f"Machine unavailable for about {downtime_text(result.expected_downtime_s)}"
            )
            self.result_label.setText("")
            self.progress.hide()
            self.progress.setValue(0)
            self.approve_button.setEnabled(True)
            self.reject_button.setEnabled(True)
            self.offer_shown.emit(result)
        elif tag == "decision" and isinstance(result, int):
            word = "Approved" if result == fo.DECISION_APPROVE else "Rejected"
            self.result_label.setText(f"{word}. Waiting for the TCU…")
            self._log(f"operator_decision = {result} accepted")
            self.decision_sent.emit(result)
        elif tag == "progress" and isinstance(result, int):
            self.progress.setValue(result)
        elif tag == "final" and isinstance(result, tuple):
            status, code = result
            text = fo.describe_status(int(status)).capitalize()
            if code:
                text += f" — {fo.describe_error(int(code))}"
            self.result_label.setText(text)
            self._log(f"final: {text}")
            self.final_shown.emit(int(status))

    def _on_worker_failed(self, tag: str, text: str) -> None:
        self._log(f"{tag}: {text}")
        if tag == "decision":
            self.result_label.setText(f"Decision not accepted: {text}")


def downtime_text(seconds: int) -> str:
    """How long the machine is unavailable, as an operator reads it: "40 s", "3 min",
    "1 h 20 min" (minutes rounded up: better to promise a little more than too little)."""
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = -(-seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"
