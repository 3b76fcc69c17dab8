"""A wheel guard: scrolling a form never edits the spin box or combo box under the mouse.

Qt hands a wheel event to whatever input widget is under the cursor, so scrolling down a long
form (the EA editor) silently changed block sizes and IDs under the pointer. `guard_wheel(root)`
puts one shared event filter on every QAbstractSpinBox and QComboBox below `root`: a wheel event
on an unfocused field is ignored by it and goes to the nearest scroll area instead; once the
user clicks or tabs into the field, the wheel edits it as usual. The main window guards itself
when shown, form dialogs when built.

Per field, not application-wide: an application event filter runs Python for every Qt event of
the GUI thread, and that steady stream of GIL acquisitions starved worker threads (a demo run's
thread stalled for minutes while the GUI thread sat in the filter). GUI thread only.
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

_GUARDED = "fotaWheelGuarded"


class WheelGuard(QObject):
    """Event filter of the guarded fields: an unfocused one passes wheel events to its scroll
    area."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Redirect a wheel event aimed at an unfocused editable field."""
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget):
            return False
        if watched.hasFocus():
            return False
        # The field ignores it; the nearest scroll area scrolls instead (Qt 6 does not
        # propagate a wheel event once a filter took it, so hand it to the scroll bar).
        area = watched.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None and isinstance(event, QWheelEvent):
            delta = event.angleDelta()
            horizontal = abs(delta.x()) > abs(delta.y())
            bar = area.horizontalScrollBar() if horizontal else area.verticalScrollBar()
            QApplication.sendEvent(bar, event)
        return True


_guard: WheelGuard | None = None


def guard_wheel(root: QWidget) -> int:
    """Guard every spin box and combo box below `root` (and `root` itself) not guarded yet;
    returns how many fields were added. Cheap to call again after a form grew."""
    global _guard
    if _guard is None:
        _guard = WheelGuard(QApplication.instance())
    fields: list[QWidget] = [*root.findChildren(QAbstractSpinBox), *root.findChildren(QComboBox)]
    if isinstance(root, QAbstractSpinBox | QComboBox):
        fields.append(root)
    added = 0
    for field in fields:
        if field.property(_GUARDED):
            continue
        field.setProperty(_GUARDED, True)
        strong_focus(field)
        field.installEventFilter(_guard)
        added += 1
    return added


def strong_focus(widget: QWidget) -> None:
    """Give a spin box / combo box focus by click or Tab only (Qt's default includes wheel)."""
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
