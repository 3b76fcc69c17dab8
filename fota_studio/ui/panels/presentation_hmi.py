"""The presentation HMI: the machine display in its own window, large and full-screen capable.

A salesperson shows a customer the operator's view of the machine on a second monitor or a
projector: the same `HmiScreen` the HMI panel shows (update available with versions and
downtime, the big Approve / Reject buttons, progress, the result and its reason), rendered by an
`HmiView` whose text grows with the window. The buttons act through the HMI panel (one CANopen
client, one decision). A slim control row runs the demo (F5), resets it (fresh simulated
machine, the demo's own versions) and toggles full screen (F11; Esc leaves full screen, a
second Esc closes). The window only mirrors the panel; closing it changes nothing on the bus.
GUI thread only.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from fota_studio.protocols import fota_objects as fo
from fota_studio.ui.panels.hmi_panel import HmiPanel, HmiView

#: The presentation's text is this much larger than the panel's at the same size.
PRESENTATION_SCALE = 1.25
DEFAULT_SIZE_PX = (1280, 800)


class PresentationHmi(QWidget):
    """Top-level window mirroring an `HmiPanel` for an audience."""

    run_demo_requested = Signal()
    reset_demo_requested = Signal()

    def __init__(self, panel: HmiPanel, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Machine display — FOTA Studio")
        self.setObjectName("presentation_hmi")
        self.setStyleSheet("QWidget#presentation_hmi { background: #0b1117; }")
        self.panel = panel
        self.view = HmiView(self, scale=PRESENTATION_SCALE)
        self.caption = QLabel("")
        self.caption.setStyleSheet("color: #8a8f99;")
        self.run_button = QPushButton("Run demo (F5)")
        self.run_button.setToolTip("Offer the demo update to this machine display")
        self.reset_button = QPushButton("Reset demo")
        self.reset_button.setToolTip(
            "A fresh simulated machine on the demo's own starting version (never a downgrade)"
        )
        self.full_button = QPushButton("Full screen (F11)")
        self.full_button.setToolTip("Fill the screen; Esc leaves full screen")
        self.full_button.setCheckable(True)
        controls = QHBoxLayout()
        controls.addWidget(self.caption, 1)
        for b in (self.run_button, self.reset_button, self.full_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Enter/space stay with the display
            controls.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 8)
        layout.addWidget(self.view, 1)
        layout.addLayout(controls)

        self.view.approve_clicked.connect(lambda: panel.decide(fo.DECISION_APPROVE))
        self.view.reject_clicked.connect(lambda: panel.decide(fo.DECISION_REJECT))
        panel.screen_changed.connect(self.view.display)
        self.view.display(panel.hmi_screen)
        self.run_button.clicked.connect(self.run_demo_requested)
        self.reset_button.clicked.connect(self.reset_demo_requested)
        self.full_button.toggled.connect(self.set_full_screen)
        QShortcut(QKeySequence("F11"), self, self.toggle_full_screen)
        QShortcut(QKeySequence("F5"), self, self.run_demo_requested.emit)
        QShortcut(QKeySequence("Esc"), self, self._on_escape)
        self.resize(*DEFAULT_SIZE_PX)

    def set_caption(self, text: str) -> None:
        """The small line under the display (which machine, what the demo does)."""
        self.caption.setText(text)

    def set_demo_busy(self, busy: bool) -> None:
        """Run and Reset are refused while a demo update runs."""
        self.run_button.setEnabled(not busy)
        self.reset_button.setEnabled(not busy)

    def set_full_screen(self, on: bool) -> None:
        """Full screen on/off (the window keeps its normal geometry for later)."""
        if on and not self.isFullScreen():
            self.showFullScreen()
        elif not on and self.isFullScreen():
            self.showNormal()
        if self.full_button.isChecked() != on:
            self.full_button.setChecked(on)

    def toggle_full_screen(self) -> None:
        """F11."""
        self.set_full_screen(not self.isFullScreen())

    def _on_escape(self) -> None:
        if self.isFullScreen():
            self.set_full_screen(False)
        else:
            self.close()

    def closeEvent(self, event: Any) -> None:
        """Stop mirroring the panel (Qt override)."""
        try:
            self.panel.screen_changed.disconnect(self.view.display)
        except (RuntimeError, TypeError):  # already disconnected
            pass
        super().closeEvent(event)
