"""The Checkpoint 1 approval dialog: what will be updated, the countdown, Approve / Reject.

Shows the machine, the ECU, installed → offered version, the expected downtime and the
preconditions the flash job will check, with a countdown to the approval timeout. Approve /
Reject resolve the workflow's `ApprovalRequest` future (the engine thread waits on it; the dialog
never blocks the GUI: it is shown non-modally). When the decision comes from elsewhere (an HMI
over CANopen, a cancel, the timeout) the dialog notices on its 250 ms timer, says so and closes.
GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fota_studio.engine.workflow import ApprovalRequest, Decision
from fota_studio.infra.user import current_user

TICK_MS = 250
CLOSE_AFTER_DECISION_MS = 1500


def format_duration(seconds: float) -> str:
    """ "1 h 02 min", "3 min 05 s", "42 s"."""
    s = max(0, int(seconds + 0.5))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {sec:02d} s"
    return f"{sec} s"


class ApprovalDialog(QDialog):
    """Non-modal Checkpoint 1 dialog resolving `approval`."""

    decided = Signal(object)  # Decision, whoever made it

    def __init__(self, approval: ApprovalRequest, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.approval = approval
        self._reported = False
        self.setWindowTitle(f"Approve update request #{approval.request_id}?")
        self.setModal(False)
        layout = QVBoxLayout(self)
        title = QLabel(
            f"Update <b>{approval.ecu}</b> on <b>{approval.machine}</b> from "
            f"<b>{approval.installed_version or '?'}</b> to <b>{approval.offered_version}</b>?"
        )
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        title.setFont(font)
        title.setWordWrap(True)
        layout.addWidget(title)
        form = QFormLayout()
        form.addRow("Machine:", QLabel(approval.machine))
        form.addRow("ECU:", QLabel(approval.ecu))
        form.addRow(
            "Version:",
            QLabel(f"{approval.installed_version or '?'} → {approval.offered_version}"),
        )
        form.addRow("Expected downtime:", QLabel(format_duration(approval.expected_downtime_s)))
        pre = "\n".join(approval.preconditions) or "none configured"
        self.preconditions_label = QLabel(pre)
        form.addRow("Preconditions (checked before erasing):", self.preconditions_label)
        self.operator_edit = QLineEdit(current_user())
        form.addRow("Operator:", self.operator_edit)
        layout.addLayout(form)
        note = QLabel(
            "Approving starts the bootloader transition and flashing. The machine must be "
            "stationary and able to enter a programming session."
        )
        note.setWordWrap(True)
        layout.addWidget(note)
        self.countdown_label = QLabel()
        self.countdown_bar = QProgressBar()
        self.countdown_bar.setRange(0, max(1, int(approval.timeout_s)))
        self.countdown_bar.setTextVisible(False)
        layout.addWidget(self.countdown_label)
        layout.addWidget(self.countdown_bar)
        buttons = QHBoxLayout()
        self.reject_button = QPushButton("&Reject")
        self.reject_button.setToolTip(
            "Refuse the update (Alt+R); closing the dialog or a timeout also rejects"
        )
        self.approve_button = QPushButton("&Approve")
        self.approve_button.setToolTip(
            "Approve: the ECU enters its bootloader and flashing starts (Alt+A)"
        )
        self.approve_button.setDefault(False)
        self.approve_button.setAutoDefault(False)
        self.reject_button.setAutoDefault(False)
        buttons.addStretch(1)
        buttons.addWidget(self.reject_button)
        buttons.addWidget(self.approve_button)
        layout.addLayout(buttons)
        self.approve_button.clicked.connect(self._on_approve_clicked)
        self.reject_button.clicked.connect(self._on_reject_clicked)
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._on_tick)
        self._timer.start()
        self._on_tick()

    @property
    def operator(self) -> str:
        """Who decides (recorded with the decision)."""
        return self.operator_edit.text().strip() or current_user()

    def _on_approve_clicked(self) -> None:
        self.approval.approve(self.operator)
        self._on_tick()

    def _on_reject_clicked(self) -> None:
        self.approval.reject(self.operator)
        self._on_tick()

    def _on_tick(self) -> None:
        if self.approval.done:
            self._show_decision(self.approval.future.result())
            return
        remaining = self.approval.remaining_s()
        self.countdown_label.setText(
            f"Approval times out in {format_duration(remaining)} (a timeout is a rejection)"
        )
        self.countdown_bar.setValue(int(remaining))

    def _show_decision(self, decision: Decision) -> None:
        if self._reported:
            return
        self._reported = True
        self._timer.stop()
        self.approve_button.setEnabled(False)
        self.reject_button.setEnabled(False)
        self.operator_edit.setEnabled(False)
        what = (
            "Approved"
            if decision.approved
            else {
                "timeout": "Approval timed out",
                "cancel": "Cancelled",
            }.get(decision.source, "Rejected")
        )
        self.countdown_label.setText(f"{what} by {decision.by}")
        self.decided.emit(decision)
        QTimer.singleShot(CLOSE_AFTER_DECISION_MS, self.accept)

    def reject(self) -> None:
        """Esc / window close: closing without a decision rejects (never a silent approval)."""
        if not self.approval.done:
            self.approval.reject(self.operator)
            self._on_tick()
        super().reject()
