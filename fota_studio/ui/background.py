"""Run a blocking callable off the GUI thread and hear about it on the GUI thread.

`run_in_background(fn, ...)` starts a short-lived worker thread named `fota-ui-io` that calls
`fn(progress)`; progress fractions, the result and any exception come back as Qt signals of a
`BackgroundTask` that lives on the GUI thread, so slots run there (queued connections) and the
GUI never waits. Progress is throttled at the source (first, last, and every ~0.5 % or 100 ms),
because one queued signal per block of a big import would flood the event loop. Call
`run_in_background` and connect to the task from the GUI thread only; `fn` runs on the worker
and must not touch widgets.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

from fota_studio.core.errors import CancelledError

_log = logging.getLogger(__name__)

THREAD_NAME = "fota-ui-io"
PROGRESS_MIN_STEP = 0.005
PROGRESS_MIN_INTERVAL_S = 0.1

#: Tasks still running; holding them here keeps their QObject alive until the worker is done
#: even when the caller dropped its reference (a deleted sender would lose the result).
_running: set[BackgroundTask] = set()


class BackgroundTask(QObject):
    """Signals of one background call; created by `run_in_background` on the GUI thread."""

    progress_changed = Signal(float)  # fraction 0.0 … 1.0
    succeeded = Signal(object)  # the callable's return value
    failed = Signal(object, str)  # the exception, its formatted traceback
    finished = Signal()  # after succeeded/failed, always

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.worker_thread: threading.Thread | None = None
        self.done = False
        self._cancel = threading.Event()
        self._last_fraction = -1.0
        self._last_emit_s = 0.0
        self.finished.connect(self._on_finished)

    def cancel(self) -> None:
        """Ask the callable to stop: its next progress report below 100 % raises CancelledError.

        Progress reports are the callable's safe points (an import reports before it commits,
        so a cancelled import stores nothing); a report of 1.0 never raises.
        """
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancel.is_set()

    def report(self, fraction: float) -> None:
        """Progress callback handed to the callable (worker thread); throttled.

        Raises CancelledError at this safe point when a cancel was requested (below 100 %).
        """
        fraction = min(1.0, max(0.0, float(fraction)))
        if self._cancel.is_set() and fraction < 1.0:
            raise CancelledError(f"{self.name}: cancelled by the user")
        now = time.monotonic()
        first_or_last = self._last_fraction < 0 or fraction >= 1.0
        if (
            first_or_last
            or fraction - self._last_fraction >= PROGRESS_MIN_STEP
            or now - self._last_emit_s >= PROGRESS_MIN_INTERVAL_S
        ) and fraction != self._last_fraction:
            self._last_fraction = fraction
            self._last_emit_s = now
            if not _emit(self.progress_changed, fraction):
                raise CancelledError(f"{self.name}: the window that started it was closed")

    def wait(self, timeout_s: float | None = None) -> bool:
        """Join the worker thread (for shutdown and tests); True when it has ended."""
        if self.worker_thread is None:
            return True
        self.worker_thread.join(timeout_s)
        return not self.worker_thread.is_alive()

    def _on_finished(self) -> None:
        self.done = True
        _running.discard(self)


def _emit(signal: SignalInstance, *args: Any) -> bool:
    """Emit from the worker thread; False when the task's Qt object has been deleted (its
    parent widget was closed), so there is no one to deliver to."""
    try:
        signal.emit(*args)
    except RuntimeError:  # "Signal source has been deleted"
        return False
    return True


def run_in_background(
    fn: Callable[[Callable[[float], None]], Any],
    *,
    name: str = "task",
    on_success: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException, str], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    parent: QObject | None = None,
) -> BackgroundTask:
    """Start `fn(progress)` on a `fota-ui-io` thread; callbacks run later on the GUI thread.

    Pass every callback here: they are connected before the thread starts. A slot connected to
    the returned task afterwards can miss a signal of a callable that finished at once.
    """
    task = BackgroundTask(name, parent)
    if on_progress is not None:
        task.progress_changed.connect(on_progress)
    if on_success is not None:
        task.succeeded.connect(on_success)
    if on_error is not None:
        task.failed.connect(on_error)
    if on_finished is not None:
        task.finished.connect(on_finished)
    _running.add(task)

    def body() -> None:
        try:
            result = fn(task.report)
        except BaseException as exc:  # everything goes back to the GUI, nothing dies silently
            _log.debug("background task %s failed: %s", name, exc)
            delivered = _emit(task.failed, exc, traceback.format_exc())
        else:
            delivered = _emit(task.succeeded, result)
        if delivered and _emit(task.finished):
            return
        # The task's parent (a closed window) took the task's Qt object with it: nobody is left
        # to hear the result, and `_on_finished` will never run.
        _log.debug("background task %s ended after its window was closed", name)
        _running.discard(task)

    task.worker_thread = threading.Thread(target=body, name=THREAD_NAME, daemon=True)
    task.worker_thread.start()
    return task


def running_tasks() -> list[BackgroundTask]:
    """Tasks whose `finished` signal has not been delivered yet (GUI thread)."""
    return list(_running)
