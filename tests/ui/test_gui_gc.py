"""Cyclic garbage is collected on the GUI thread only while a main window is open (ui/gui_gc):
a worker thread that collected a cycle of Qt widgets deadlocked a CI run against the GUI
thread's own deferred deletions."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QWidget

from fota_studio.ui.gui_gc import GuiThreadGc


class _Cycle:
    def __init__(self) -> None:
        self.me = self
        self.widget_like = [self]


def test_worker_garbage_waits_for_the_gui_thread_timer(qtbot) -> None:  # type: ignore[no-untyped-def]
    collector = GuiThreadGc(interval_s=0.02)
    try:
        assert not gc.isenabled() and collector.active
        threshold = gc.get_threshold()[0]
        counts: list[int] = []

        def worker() -> None:  # allocate well past the gen-0 threshold on another thread
            for _ in range(threshold * 3):
                _Cycle()
            counts.append(gc.get_count()[0])

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert counts[0] >= threshold  # nothing was collected on the worker thread
        qtbot.waitUntil(lambda: gc.get_count()[0] < threshold, timeout=5_000)  # the GUI did
    finally:
        collector.stop()
    assert gc.isenabled() and not collector.active


def test_the_main_window_turns_automatic_gc_off_while_open(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fota_studio.infra.workspace import Workspace
    from fota_studio.ui.main_window import MainWindow

    ws = Workspace.open(tmp_path / "ws")
    try:
        w = MainWindow(
            ws,
            qsettings=QSettings(str(tmp_path / "l.ini"), QSettings.Format.IniFormat),
            settings_path=tmp_path / "s.json",
        )
        qtbot.addWidget(w)
        w.show()
        assert not gc.isenabled()
        w.confirm = lambda _t, _x: True
        w.close()
        assert gc.isenabled()
        assert isinstance(w, QWidget)
    finally:
        ws.close()
