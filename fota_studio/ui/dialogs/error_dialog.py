"""The error dialog: what happened, what to do, and "Copy details" for a bug report.

A `FotaError` already carries both parts (`message` says what happened and where — file:line,
step, block — and `hint` says what to do); any other exception is shown as an unexpected error
with its traceback in the details. GUI thread only.
"""

from __future__ import annotations

import platform
import traceback

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from fota_studio import __version__
from fota_studio.core.errors import FotaError
from fota_studio.ui.dialogs.parts import close_buttons

GENERIC_ADVICE = (
    "This is unexpected. Copy the details and send them to the FOTA Studio engineers; "
    "the log panel may show more."
)


def describe_error(exc: BaseException | str, what_to_do: str | None = None) -> tuple[str, str]:
    """Split an error into (what happened, what to do) for display."""
    if isinstance(exc, FotaError):
        return (
            exc.message,
            what_to_do or exc.hint or "Correct the problem named above and try again.",
        )
    if isinstance(exc, str):
        return exc, what_to_do or ""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", what_to_do or "Check the path and its permissions."
    return f"{type(exc).__name__}: {exc}", what_to_do or GENERIC_ADVICE


class ErrorDialog(QDialog):
    """Modal error box with a read-only, copyable details area."""

    def __init__(
        self,
        title: str,
        error: BaseException | str,
        *,
        what_to_do: str | None = None,
        details: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.what_happened, self.what_to_do = describe_error(error, what_to_do)
        if details is None and isinstance(error, BaseException) and error.__traceback__:
            details = "".join(traceback.format_exception(error))
        self.details = self._details_text(title, details)

        icon = QLabel()
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical).pixmap(40, 40)
        )
        self.message_label = QLabel(f"<b>{_esc(self.what_happened)}</b>")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(
            self.message_label.textInteractionFlags().TextSelectableByMouse
        )
        self.advice_label = QLabel(f"<i>What to do:</i> {_esc(self.what_to_do)}")
        self.advice_label.setWordWrap(True)
        self.advice_label.setVisible(bool(self.what_to_do))
        top = QHBoxLayout()
        top.addWidget(icon, 0)
        text = QVBoxLayout()
        text.addWidget(self.message_label)
        text.addWidget(self.advice_label)
        top.addLayout(text, 1)

        self.details_view = QPlainTextEdit(self.details)
        self.details_view.setReadOnly(True)
        self.details_view.setVisible(False)
        self.details_view.setMinimumHeight(160)

        buttons, (self.copy_button, self.toggle_button) = close_buttons(
            self,
            (
                "Copy details",
                "Copy what happened, what to do and the technical details to the clipboard",
            ),
            ("Show details", "Show or hide the technical details"),
        )
        self.toggle_button.setCheckable(True)
        buttons.accepted.connect(self.accept)
        self.copy_button.clicked.connect(self.copy_details)
        self.toggle_button.toggled.connect(self._on_toggle_button_toggled)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.details_view, 1)
        layout.addWidget(buttons)
        self.setMinimumWidth(480)

    def _details_text(self, title: str, details: str | None) -> str:
        lines = [
            f"{title}",
            f"What happened: {self.what_happened}",
            f"What to do: {self.what_to_do}" if self.what_to_do else "",
            f"FOTA Studio {__version__}, Python {platform.python_version()}, {platform.platform()}",
        ]
        if details:
            lines += ["", details.rstrip()]
        return "\n".join(line for line in lines if line is not None)

    def copy_details(self) -> None:
        """Put the full details on the clipboard."""
        QGuiApplication.clipboard().setText(self.details)

    def _on_toggle_button_toggled(self, on: bool) -> None:
        self.details_view.setVisible(on)
        self.toggle_button.setText("Hide details" if on else "Show details")
        self.adjustSize()


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")
    )


def show_error(
    parent: QWidget | None,
    title: str,
    error: BaseException | str,
    *,
    what_to_do: str | None = None,
    details: str | None = None,
) -> None:
    """Show the error dialog modally (used by the panels' default error handlers)."""
    ErrorDialog(title, error, what_to_do=what_to_do, details=details, parent=parent).exec()
