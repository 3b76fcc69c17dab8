"""Push buttons built the one way the panels want them: a caption, a tooltip that says what
the button does, and (optionally) the slot a click runs; and a row of them side by side. GUI
thread only.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget


def push_button(text: str, tip: str, clicked: Callable[[], object] | None = None) -> QPushButton:
    """A button captioned `text` with the tooltip `tip`; `clicked`, when given, runs on a click."""
    button = QPushButton(text)
    button.setToolTip(tip)
    if clicked is not None:
        button.clicked.connect(clicked)
    return button


def button_row(*widgets: QWidget) -> QHBoxLayout:
    """`widgets` side by side, left to right (a form's row of buttons)."""
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row
