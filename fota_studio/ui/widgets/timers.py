"""The panels' repeating timers (drains, refreshes, polls): one way to build them. GUI thread
only.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer


def periodic_timer(
    parent: QObject, interval_ms: int, on_timeout: Callable[[], object], *, start: bool = True
) -> QTimer:
    """A repeating timer owned by `parent` calling `on_timeout` every `interval_ms`; running
    at once unless `start` is False (the caller starts it when there is work)."""
    timer = QTimer(parent)
    timer.setInterval(interval_ms)
    timer.timeout.connect(on_timeout)
    if start:
        timer.start()
    return timer
