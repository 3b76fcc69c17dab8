"""Cyclic garbage collection on the GUI thread only, while the main window is open.

Python's cyclic collector runs on whichever thread happens to allocate when a threshold is
crossed. When a garbage cycle holds PySide objects, their C++ destructors then run on that
thread: a CI run deadlocked exactly so — a demo worker thread collected a cycle of Qt widgets
(holding a QObject mutex, waiting for the GIL inside Shiboken) while the GUI thread, holding
the GIL, waited for that mutex in Shiboken's deferred main-thread deletions. The cure is the
one pyqtgraph ships (`pyqtgraph.util.garbage_collector.GarbageCollector`, a well-known PyQt
recipe): automatic collection off, a GUI-thread timer collects by the same thresholds. It is
written out here (a dozen lines) because importing pyqtgraph costs 0.3 s of every GUI start,
and the window is built before any plot needs it.

`GuiThreadGc.stop()` gives the process back the automatic collector (the window closed; tests
open and close many windows in one process). GUI thread only.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QTimer

#: How often the GUI thread checks the allocation counts (a cheap `gc.get_count()`).
CHECK_INTERVAL_S = 0.1


class GuiThreadGc:
    """Automatic GC off, collected by a timer on the GUI thread, until `stop()`."""

    def __init__(self, interval_s: float = CHECK_INTERVAL_S) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer()
        self.timer.timeout.connect(self.check)
        self.timer.start(int(interval_s * 1000))

    @property
    def active(self) -> bool:
        """True while the timer collects (automatic collection is off)."""
        return bool(self.timer.isActive())

    def check(self) -> None:
        """Collect now the generations whose thresholds are crossed (what the timer does; the
        thresholds are read each time: the app may retune them, e.g. the trace capture)."""
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if c0 > t0:
            gc.collect(0)
            if c1 > t1:
                gc.collect(1)
                if c2 > t2:
                    gc.collect(2)

    def stop(self) -> None:
        """Stop the timer and turn automatic collection back on (if it was on before)."""
        self.timer.stop()
        if self._was_enabled:
            gc.enable()
