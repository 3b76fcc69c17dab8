"""A wheel guard: scrolling a form never edits the spin box or combo box under the mouse.

Qt hands a wheel event to whatever input widget is under the cursor, so scrolling down a long
form (the EA editor) silently changed block sizes and IDs under the pointer. `WheelGuard` is an
application-wide event filter: a wheel event on an unfocused QAbstractSpinBox or QComboBox is
ignored by that widget and goes to its parent instead (the scroll area scrolls); once the user
clicks or tabs into the field, the wheel edits it as usual. GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QWidget,
)


class WheelGuard(QObject):
    """Event filter: unfocused spin boxes and combo boxes pass wheel events to their parent."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Redirect a wheel event aimed at an unfocused editable field."""
        if event.type() == QEvent.Type.Polish and isinstance(watched, QAbstractSpinBox | QComboBox):
            # Qt gives WheelFocus fields focus on a wheel event before filters see it.
            strong_focus(watched)
            return False
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QAbstractSpinBox | QComboBox):
            widget: QWidget = watched
            if not widget.hasFocus():
                # The field ignores it; the nearest scroll area scrolls instead (Qt 6 does not
                # propagate a wheel event once a filter took it, so hand it to the scroll bar).
                area = widget.parentWidget()
                while area is not None and not isinstance(area, QAbstractScrollArea):
                    area = area.parentWidget()
                if area is not None and isinstance(event, QWheelEvent):
                    delta = event.angleDelta()
                    horizontal = abs(delta.x()) > abs(delta.y())
                    bar = area.horizontalScrollBar() if horizontal else area.verticalScrollBar()
                    QApplication.sendEvent(bar, event)
                return True
        return False


_guard: WheelGuard | None = None


def install_wheel_guard(app: QApplication) -> WheelGuard:
    """Install the guard on the application once (idempotent) and make the fields focus on
    click or Tab only (not on wheel)."""
    global _guard
    if _guard is None:
        _guard = WheelGuard(app)
        app.installEventFilter(_guard)
    return _guard


def strong_focus(widget: QWidget) -> None:
    """Give a spin box / combo box focus by click or Tab only (Qt's default includes wheel)."""
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
