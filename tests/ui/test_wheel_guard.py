"""Scrolling a form with the mouse wheel never edits the unfocused field under the pointer.

The field report: scrolling the EA form changed block size 8 -> 2 and marked the EA modified.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QScrollArea,
    QSpinBox,
    QWidget,
)

from fota_studio.ui.widgets.wheel_guard import guard_wheel


def _wheel(widget: QWidget, steps: int = -3) -> None:
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        pos,
        QPointF(widget.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_wheel_scrolls_the_form_not_the_unfocused_spin_box(qtbot) -> None:  # type: ignore[no-untyped-def]
    form = QWidget()
    layout = QFormLayout(form)
    spins = []
    for i in range(40):
        s = QSpinBox()
        s.setRange(0, 255)
        s.setValue(8)
        layout.addRow(f"field {i}", s)
        spins.append(s)
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(form)
    area.resize(300, 200)
    assert guard_wheel(area) == 40 and guard_wheel(area) == 0  # each field once
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    target = spins[2]
    assert target.focusPolicy() == Qt.FocusPolicy.StrongFocus  # no focus by wheel
    bar = area.verticalScrollBar()
    assert bar.value() == 0
    _wheel(target)
    assert target.value() == 8  # unchanged
    assert not target.hasFocus()
    assert bar.value() > 0  # the form scrolled instead
    # Once the user clicks/tabs into the field, the wheel edits it as usual.
    target.setFocus()
    qtbot.waitUntil(target.hasFocus)
    _wheel(target, steps=1)
    assert target.value() == 9


def test_ea_form_wheel_changes_nothing(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fota_studio.demo.catalog import DEMO_EA_NAME
    from fota_studio.demo.seed import seed_demo_architecture
    from fota_studio.infra.workspace import Workspace
    from fota_studio.ui.panels.ea.panel import ArchitecturePanel

    ws = Workspace.open(tmp_path / "ws")
    try:
        seed_demo_architecture(ws)
        panel = ArchitecturePanel(ws)
        qtbot.addWidget(panel)
        panel.resize(1024, 700)
        panel.show()
        qtbot.waitExposed(panel)
        panel.select_architecture(DEMO_EA_NAME, ecu="VCU")
        guard_wheel(panel)  # what the main window does when shown
        wheeled = 0
        for index in range(panel.tabs.count()):  # every tab of the ECU form
            panel.tabs.setCurrentIndex(index)
            spins = [s for s in panel.findChildren(QSpinBox) if s.isVisible()]
            before = [s.value() for s in spins]
            for s in spins:
                _wheel(s)
            assert [s.value() for s in spins] == before
            wheeled += len(spins)
        assert wheeled >= 5  # block size, STmin, timings ...
        assert not panel.has_unsaved_changes()
    finally:
        ws.close()


def test_the_main_window_guards_its_panels_and_no_app_wide_filter_runs(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Shown, the main window has guarded every field of its panels (per field: an
    application-wide Python filter ran for every Qt event and starved worker threads)."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QAbstractSpinBox

    from fota_studio.demo.seed import ensure_demo
    from fota_studio.infra.workspace import Workspace
    from fota_studio.ui.main_window import MainWindow
    from fota_studio.ui.workbench import Workbench

    ws = Workspace.open(tmp_path / "ws")
    try:
        ensure_demo(ws)
        qs = QSettings(str(tmp_path / "l.ini"), QSettings.Format.IniFormat)
        w = MainWindow(ws, qsettings=qs, settings_path=tmp_path / "s.json")
        bench = Workbench(w, ws)
        w.shutdown_hooks.append(bench.shutdown)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        spins = w.findChildren(QAbstractSpinBox)
        assert len(spins) > 10
        assert all(s.property("fotaWheelGuarded") for s in spins)
        assert all(s.focusPolicy() == Qt.FocusPolicy.StrongFocus for s in spins)
        assert guard_wheel(w) == 0  # nothing new since the show
        w.confirm = lambda _t, _x: True
        w.close()
    finally:
        ws.close()
