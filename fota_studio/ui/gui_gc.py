"""Cyclic garbage collection on the GUI thread only, while the main window is open.

Python's cyclic collector runs on whichever thread happens to allocate when a threshold is
crossed. When a garbage cycle holds PySide objects, their C++ destructors then run on that
thread: a CI run deadlocked exactly so — a demo worker thread collected a cycle of Qt widgets
(holding a QObject mutex, waiting for the GIL inside Shiboken) while the GUI thread, holding
the GIL, waited for that mutex in Shiboken's deferred main-thread deletions. The cure is the
one pyqtgraph ships (`pyqtgraph.util.garbage_collector.GarbageCollector`, a well-known PyQt
recipe): automatic collection off, a GUI-thread timer collects by the same thresholds.

`GuiThreadGc.stop()` gives the process back the automatic collector (the window closed; tests
open and close many windows in one process). GUI thread only.
"""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

#: How often the GUI thread checks the allocation counts (a cheap `gc.get_count()`).
CHECK_INTERVAL_S = 0.1


class GuiThreadGc:
    """Automatic GC off, collected by a timer on the GUI thread, until `stop()`."""

    def __init__(self, interval_s: float = CHECK_INTERVAL_S) -> None:
        self._was_enabled = gc.isenabled()
        self._collector = GarbageCollector(interval=interval_s)  # disables automatic GC
        self._collector.timer.timeout.disconnect()
        self._collector.timer.timeout.connect(self.check)

    @property
    def active(self) -> bool:
        """True while the timer collects (automatic collection is off)."""
        return bool(self._collector.timer.isActive())

    def check(self) -> None:
        """Collect now if the thresholds are crossed (what the timer does)."""
        self._collector.threshold = gc.get_threshold()  # the app may retune them (trace capture)
        self._collector.check()

    def stop(self) -> None:
        """Stop the timer and turn automatic collection back on (if it was on before)."""
        self._collector.timer.stop()
        if self._was_enabled:
            gc.enable()
