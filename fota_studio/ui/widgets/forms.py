"""Form layouts the panels build the same way: a titled group box laid out as a form. GUI
thread only.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QGroupBox


def form_box(title: str) -> tuple[QGroupBox, QFormLayout]:
    """A group box titled `title` laid out as a form: the box (to place) and its form (to
    fill with rows)."""
    box = QGroupBox(title)
    return box, QFormLayout(box)
