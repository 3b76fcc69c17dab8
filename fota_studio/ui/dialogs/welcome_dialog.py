"""The first-run welcome: three ways in (run the demo update, connect an adapter, open a log).

Shown by the Workbench on the first start (until the user ticks "Don't show again", stored as
`UiSettings.welcome_shown`) and any time from Help ▸ Welcome. The dialog does no work itself: each
big button emits a signal and closes the dialog, and the Workbench connects the signals to its
own actions, so the welcome always does exactly what the menus do. GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, SignalInstance
from PySide6.QtWidgets import (
    QCheckBox,
    QCommandLinkButton,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

INTRO_HTML = (
    "<h2>Welcome to FOTA Studio</h2>"
    "<p>FOTA Studio flashes ECU firmware over CAN: it keeps firmware in Software Repositories, "
    "describes each machine type in an Electronic Architecture, and runs update requests with "
    "operator approval and health checks. Pick a way in; everything here is also in the "
    "menus.</p>"
)


class WelcomeDialog(QDialog):
    """Three big buttons and a "Don't show again" box; the caller wires the signals."""

    demo_requested = Signal()
    connect_requested = Signal()
    open_log_requested = Signal()

    def __init__(self, parent: QWidget | None = None, *, dont_show_again: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to FOTA Studio")
        self.setMinimumWidth(560)
        intro = QLabel(INTRO_HTML)
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)

        self.demo_button = QCommandLinkButton(
            "Run the demo update",
            "A simulated machine with a VCU on a virtual CAN bus: offer an update, approve it on "
            "the machine HMI, watch the flash and the health checks. Nothing physical needed. (F5)",
        )
        self.demo_button.setToolTip("Demo ▸ Run demo update (F5)")
        # Enter runs the demo: the safe first step, nothing physical is touched.
        self.demo_button.setDefault(True)
        self.connect_button = QCommandLinkButton(
            "Connect an adapter",
            "Choose the CAN interface (PCAN, Vector, Kvaser, SocketCAN, slcan, gs_usb…) for each "
            "logical channel, check it with the connection doctor, then connect.",
        )
        self.connect_button.setToolTip("CAN ▸ Adapter settings…")
        self.open_log_button = QCommandLinkButton(
            "Open a log file",
            "Look at a recorded bus log (BLF, ASC, TRC, MF4, CSV, candump) in the CAN trace with "
            "ISO-TP/UDS and CANopen decoding. (Ctrl+L)",
        )
        self.open_log_button.setToolTip("File ▸ Open log file… (Ctrl+L)")
        self.demo_button.clicked.connect(lambda: self._choose(self.demo_requested))
        self.connect_button.clicked.connect(lambda: self._choose(self.connect_requested))
        self.open_log_button.clicked.connect(lambda: self._choose(self.open_log_requested))

        self.dont_show_check = QCheckBox("Don't show this again (Help ▸ Welcome brings it back)")
        self.dont_show_check.setChecked(dont_show_again)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        for button in (self.demo_button, self.connect_button, self.open_log_button):
            layout.addWidget(button)
        layout.addSpacing(8)
        layout.addWidget(self.dont_show_check)
        layout.addWidget(buttons)

    def dont_show_again(self) -> bool:
        """True when the user does not want the welcome on the next start."""
        return self.dont_show_check.isChecked()

    def _choose(self, signal: SignalInstance) -> None:
        # Close first: the chosen action may open its own modal dialog.
        self.accept()
        signal.emit()
