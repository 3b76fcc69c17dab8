"""The HMI demo panel: a touch-friendly mock of the machine display, a CANopen client of the TCU.

It behaves like the operator display on a real machine: a `FotaClient` on the bus (TPDO1 plus
polling, SDO reads and writes of object 0x5FF3) shows "update available" with the versions and
the expected downtime, offers big Approve / Reject buttons (written as operator_decision over
SDO), then the flashing status and progress, and the final result with last_error. It needs only
a bus, so it works against the simulated TCU and against a real TCU on a real adapter.

What the display shows is one `HmiScreen` value (`hmi_screen`), shown by an `HmiView` (the
panel's own, and the presentation window's, `ui/panels/presentation_hmi.py`); the text follows
the TCU's real status (flashing, checking, final) and a failure shows the reason the TCU logged,
not only the coarse last_error code. The view's text grows with its size, so the display never
shrinks when the window grows.

Threads: SDO transfers block (up to the SDO timeout), so they run on the panel's own worker
thread `fota-hmi-panel`; the client's state listener runs on the CAN/poll thread and only emits
a queued signal. Every widget is touched on the GUI thread only. `ClientWorker` is shared with
the OEM panel.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import can
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import FotaError
from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.fota_client import FotaClient, FotaState, UpdateOffer
from fota_studio.ui.widgets.buttons import push_button
from fota_studio.ui.widgets.timers import periodic_timer

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

    def submit_write(self, tag: str, write: Callable[[int], object], value: int) -> None:
        """Queue `write(value)`; `done(tag, value)` (the value written) or `failed(tag, text)`
        follows on the GUI thread."""

        def call() -> int:
            write(value)
            return value

        self.submit(tag, call)

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


#: Font sizes of the HMI screen relative to its size: a line of the headline is about 1/11 of
#: the screen's height and 1/22 of its width (whichever is smaller), so the screen fills the
#: space it gets — a bigger window or the presentation window in full screen means bigger text,
#: never smaller.
HEADLINE_PX_PER_HEIGHT = 1 / 11
HEADLINE_PX_PER_WIDTH = 1 / 22
MIN_HEADLINE_PX = 20
MAX_HEADLINE_PX = 120
#: Relative sizes of the other texts (headline = 1).
TEXT_SCALE = {"versions": 0.7, "downtime": 0.55, "result": 0.55, "buttons": 0.75}

TONE_COLORS = {
    "idle": "#e8eef2",
    "offer": "#ffd166",
    "busy": "#8ecae6",
    "ok": "#7bd389",
    "error": "#ff8a80",
}


@dataclass(frozen=True)
class HmiScreen:
    """What the machine display shows right now (rendered by every `HmiView`)."""

    headline: str = "No update"
    versions: str = ""
    downtime: str = ""
    progress: int | None = None  # None: no progress bar
    result: str = ""
    tone: str = "idle"  # idle / offer / busy / ok / error: the headline's colour
    can_decide: bool = False


def final_reason(diagnostic_log: str) -> str:
    """The reason the TCU logged with the final status ("flash failed at verify: …"), or "".

    The TCU's diagnostic_log ends with `HH:MM:SS final: Failed (flash_failed: <reason>)`;
    an HMI shows that reason rather than the coarse last_error code (which says "no response
    from the ECU" for every failure without a negative response, a version mismatch too).
    """
    for line in reversed(diagnostic_log.splitlines()):
        _, sep, rest = line.partition("final: ")
        if not sep:
            continue
        _status, paren, detail = rest.partition(" (")
        if not paren:
            return ""
        detail = detail[:-1] if detail.endswith(")") else detail
        _outcome, colon, reason = detail.partition(": ")
        return (reason if colon else detail).strip()
    return ""


def final_text(status: int, code: int, reason: str, offer: UpdateOffer | None) -> str:
    """The result line of a final status as the operator reads it: what happened and why."""
    if status == fo.STATUS_SUCCESSFUL:
        if offer is not None and offer.offered_version:
            target = offer.target_ecu or "the ECU"
            return f"Update successful: {target} now runs {offer.offered_version}."
        return "Update successful: the new software runs."
    if status == fo.STATUS_REJECTED:
        return "You rejected the update; nothing was changed on the machine."
    if status == fo.STATUS_CANCELLED:
        return "The update was cancelled before it started; nothing was changed."
    if status == fo.STATUS_APPROVAL_TIMEOUT:
        return "Nobody approved the update in time; nothing was changed."
    why = reason or (fo.describe_error(code) if code else "")
    head = fo.describe_status(status).capitalize()
    return f"{head}: {why}" if why else head


class HmiView(QFrame):
    """The machine display itself: headline, versions, downtime, progress, result and the two
    big buttons; its text grows with its size. The HMI panel and the presentation window each
    show one; `HmiPanel.show_screen` feeds them the same `HmiScreen`."""

    approve_clicked = Signal()
    reject_clicked = Signal()

    def __init__(self, parent: QWidget | None = None, *, scale: float = 1.0) -> None:
        super().__init__(parent)
        self._scale = scale
        self._tone = "idle"
        self.setObjectName("hmi_view")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "QFrame#hmi_view { background: #101820; border-radius: 12px; }"
            "QFrame#hmi_view QLabel { color: #e8eef2; background: transparent; }"
        )
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        inner = QVBoxLayout(self)
        self.headline = QLabel("No update")
        self.versions_label = QLabel("")
        self.downtime_label = QLabel("")
        self.result_label = QLabel("")
        for label in (self.headline, self.versions_label, self.downtime_label, self.result_label):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMinimumHeight(36)
        self.progress.hide()
        buttons = QHBoxLayout()
        self.reject_button = push_button(
            "Reject", "Decline the offered update on the machine (sent to the TCU over CANopen)"
        )
        self.approve_button = push_button(
            "Approve", "Accept the offered update: the machine must be stationary; flashing starts"
        )
        for b, color in ((self.reject_button, "#b3261e"), (self.approve_button, "#1e7b34")):
            b.setMinimumHeight(BUTTON_MIN_HEIGHT_PX)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
            b.setStyleSheet(
                f"QPushButton {{ background: {color}; color: white; border-radius: 8px; }}"
                "QPushButton:disabled { background: #3a3f4b; color: #8a8f99; }"
            )
            b.setEnabled(False)
        buttons.addWidget(self.reject_button)
        buttons.addWidget(self.approve_button)
        inner.addStretch(1)
        inner.addWidget(self.headline)
        inner.addWidget(self.versions_label)
        inner.addWidget(self.downtime_label)
        inner.addWidget(self.progress)
        inner.addWidget(self.result_label)
        inner.addStretch(1)
        inner.addLayout(buttons)
        self.approve_button.clicked.connect(self.approve_clicked)
        self.reject_button.clicked.connect(self.reject_clicked)
        self._apply_fonts()

    def display(self, screen: HmiScreen) -> None:
        """Show `screen`."""
        self.headline.setText(screen.headline)
        self.versions_label.setText(screen.versions)
        self.downtime_label.setText(screen.downtime)
        self.result_label.setText(screen.result)
        self.progress.setVisible(screen.progress is not None)
        if screen.progress is not None:
            self.progress.setValue(screen.progress)
        self.approve_button.setEnabled(screen.can_decide)
        self.reject_button.setEnabled(screen.can_decide)
        if screen.tone != self._tone:
            self._tone = screen.tone
            color = TONE_COLORS.get(screen.tone, TONE_COLORS["idle"])
            self.headline.setStyleSheet(f"color: {color}; background: transparent;")

    def headline_px(self) -> int:
        """The headline's pixel size for the current size of the view."""
        px = min(self.height() * HEADLINE_PX_PER_HEIGHT, self.width() * HEADLINE_PX_PER_WIDTH)
        return int(max(MIN_HEADLINE_PX, min(MAX_HEADLINE_PX, px * self._scale)))

    def _apply_fonts(self) -> None:
        base = self.headline_px()
        sizes = {
            self.headline: base,
            self.versions_label: base * TEXT_SCALE["versions"],
            self.downtime_label: base * TEXT_SCALE["downtime"],
            self.result_label: base * TEXT_SCALE["result"],
            self.approve_button: base * TEXT_SCALE["buttons"],
            self.reject_button: base * TEXT_SCALE["buttons"],
        }
        for widget, px in sizes.items():
            font = QFont(widget.font())
            if font.pixelSize() != int(px):
                font.setPixelSize(max(10, int(px)))
                font.setBold(widget is self.headline)
                widget.setFont(font)
        self.progress.setMinimumHeight(max(24, base // 2))
        for b in (self.approve_button, self.reject_button):
            b.setMinimumHeight(max(BUTTON_MIN_HEIGHT_PX, int(base * 1.6)))

    def resizeEvent(self, event: Any) -> None:
        """Text follows the size of the screen (Qt override)."""
        super().resizeEvent(event)
        self._apply_fonts()


class HmiPanel(QWidget):
    """Mock machine display speaking CANopen SDO to the TCU's FOTA objects."""

    offer_shown = Signal(object)  # UpdateOffer
    decision_sent = Signal(int)  # DECISION_APPROVE / DECISION_REJECT, accepted by the TCU
    status_changed = Signal(int)  # update_status
    final_shown = Signal(int)  # a final update_status
    screen_changed = Signal(object)  # HmiScreen, after every change (presentation window)
    presentation_requested = Signal()

    _state_received = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client: FotaClient | None = None
        self._owns_client = False
        self.offer: UpdateOffer | None = None
        self.last_status: int | None = None
        self._state_seen = False
        self.hmi_screen = HmiScreen()
        self.worker = ClientWorker("hmi-panel", self)
        self.worker.done.connect(self._on_worker_done)
        self.worker.failed.connect(self._on_worker_failed)
        self._state_received.connect(self._on_state, Qt.ConnectionType.QueuedConnection)

        self.view = HmiView(self)
        # The panel's widgets are the view's (tests and the Workbench click them).
        self.headline = self.view.headline
        self.versions_label = self.view.versions_label
        self.downtime_label = self.view.downtime_label
        self.progress = self.view.progress
        self.result_label = self.view.result_label
        self.approve_button = self.view.approve_button
        self.reject_button = self.view.reject_button
        self.connection_label = QLabel("not connected")
        self.present_button = QPushButton("Presentation…")
        self.present_button.setToolTip(
            "Show this display in its own window, full screen on a second monitor (F11)"
        )
        self.present_button.clicked.connect(self.presentation_requested)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(500)
        self.log_view.setMaximumHeight(90)
        self.log_view.setToolTip("What the HMI saw on the bus (TPDO1, SDO answers)")
        # The display gets the panel's height; the bus log is one click away.
        self.log_view.hide()
        self.log_button = QPushButton("Bus log")
        self.log_button.setCheckable(True)
        self.log_button.setToolTip("Show what the HMI saw on the bus (TPDO1, SDO answers)")
        self.log_button.toggled.connect(self.log_view.setVisible)
        footer = QHBoxLayout()
        footer.addWidget(self.connection_label, 1)
        footer.addWidget(self.log_button)
        footer.addWidget(self.present_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addLayout(footer)
        layout.addWidget(self.log_view)
        self.view.approve_clicked.connect(lambda: self._decide(fo.DECISION_APPROVE))
        self.view.reject_clicked.connect(lambda: self._decide(fo.DECISION_REJECT))
        self._progress_timer = periodic_timer(
            self, PROGRESS_POLL_MS, self._poll_progress, start=False
        )

    # -- the screen ----------------------------------------------------------------------------

    def show_screen(self, **changes: Any) -> None:
        """Change what the display shows (fields of `HmiScreen`) and render it everywhere."""
        self.hmi_screen = replace(self.hmi_screen, **changes)
        self.view.display(self.hmi_screen)
        self.screen_changed.emit(self.hmi_screen)

    def reset_screen(self) -> None:
        """Back to "No update" (a new demo machine, another TCU)."""
        self.offer = None
        self.last_status = None
        self._state_seen = False
        self._progress_timer.stop()
        self.hmi_screen = HmiScreen()
        self.show_screen()

    def decide(self, decision: int) -> None:
        """Approve/Reject from another view of this display (the presentation window)."""
        if self.hmi_screen.can_decide:
            self._decide(decision)

    # -- connection ----------------------------------------------------------------------------

    def attach_client(self, client: FotaClient, *, owned: bool = False) -> None:
        """Use a started FotaClient (e.g. the demo bench's); `owned` stops it on detach."""
        self.detach()
        self.client = client
        self._owns_client = owned
        self.reset_screen()
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

    def _target(self) -> str:
        return self.offer.target_ecu if self.offer is not None and self.offer.target_ecu else ""

    def _on_state(self, state: FotaState) -> None:
        if self.client is None:
            return
        self._state_seen = True
        self._log(f"state: {state.describe()} ({state.source})")
        if state.update_status != self.last_status:
            self.last_status = state.update_status
            self.status_changed.emit(state.update_status)
        client = self.client
        if state.update_available == fo.UPDATE_WAITING_APPROVAL:
            self.worker.submit("offer", client.read_offer)
            return
        status = state.update_status
        # The text follows the TCU's real status: "Approved. Waiting for the TCU…" ends here.
        if status == fo.STATUS_FLASHING:
            target = self._target() or "the ECU"
            self.show_screen(
                headline="Updating… do not switch off",
                result=f"Writing the new software into {target}.",
                progress=self.hmi_screen.progress or 0,
                tone="busy",
                can_decide=False,
            )
            self._progress_timer.start()
        elif status == fo.STATUS_WAITING_VERIFICATION:
            self._progress_timer.stop()
            self.show_screen(
                headline="Checking the new software…",
                result="The new software is written; the machine checks that it runs.",
                progress=100,
                tone="busy",
                can_decide=False,
            )
        elif status in FINAL_STATUSES:
            self._progress_timer.stop()
            ok = status == fo.STATUS_SUCCESSFUL
            self.show_screen(
                headline=fo.describe_status(status).capitalize(),
                progress=100 if ok else None,
                tone="ok" if ok else "error",
                can_decide=False,
            )
            self.worker.submit("final", lambda: _read_final(client, status))
        else:
            self.show_screen(can_decide=False)

    def _poll_progress(self) -> None:
        if self.client is not None:
            self.worker.submit("progress", self.client.read_progress_percent)

    def _decide(self, decision: int) -> None:
        client = self.client
        if client is None:
            return
        self.show_screen(can_decide=False)
        self.worker.submit_write("decision", client.write_operator_decision, decision)

    def _on_worker_done(self, tag: str, result: object) -> None:
        if tag == "poll" and isinstance(result, FotaState):
            # The client may have learnt the state (a TPDO) before this panel listened; the
            # listener only hears changes, so the first poll's answer counts as one.
            if not self._state_seen:
                self._on_state(result)
        elif tag == "offer" and isinstance(result, UpdateOffer):
            self.offer = result
            self.show_screen(
                headline="Update available",
                versions=(
                    f"{result.target_ecu}: {result.installed_version or '?'} → "
                    f"{result.offered_version}"
                ),
                downtime=(
                    f"Machine unavailable for about {downtime_text(result.expected_downtime_s)}"
                ),
                result="",
                progress=None,
                tone="offer",
                can_decide=True,
            )
            self.offer_shown.emit(result)
        elif tag == "decision" and isinstance(result, int):
            self._log(f"operator_decision = {result} accepted")
            # Only while the TCU has not moved on yet (its TPDO may arrive before this answer).
            if self.last_status in (None, fo.STATUS_IDLE):
                word = "Approved" if result == fo.DECISION_APPROVE else "Rejected"
                self.show_screen(result=f"{word}. Waiting for the TCU…")
            self.decision_sent.emit(result)
        elif tag == "progress" and isinstance(result, int):
            if self.last_status == fo.STATUS_FLASHING:
                self.show_screen(progress=result)
        elif tag == "final" and isinstance(result, tuple):
            status, code, reason = result
            text = final_text(int(status), int(code), str(reason), self.offer)
            self.show_screen(result=text)
            self._log(f"final: {text}")
            self.final_shown.emit(int(status))

    def _on_worker_failed(self, tag: str, text: str) -> None:
        self._log(f"{tag}: {text}")
        if tag == "decision":
            self.show_screen(
                result=f"Decision not accepted: {text}", can_decide=self.offer is not None
            )


def _read_final(client: FotaClient, status: int) -> tuple[int, int, str]:
    """(status, last_error, logged reason) read from the TCU (worker thread). The log is
    optional: a TCU that stops answering still leaves the code."""
    code = client.read_last_error()
    reason = ""
    if status != fo.STATUS_SUCCESSFUL:
        try:
            reason = final_reason(client.read_diagnostic_log())
        except FotaError:
            reason = ""
    return status, code, reason


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
