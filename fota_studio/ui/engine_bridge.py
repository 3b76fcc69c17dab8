"""EngineBridge: the engine's event sink, re-emitting events as typed Qt signals on the GUI thread.

The engine calls the bridge (its sink) from worker threads; the bridge forwards each frozen
event through one internal queued signal to the GUI thread, where `_dispatch` emits the typed
public signal for that event class. Widgets connect to the public signals only, so every slot runs
on the GUI thread. Progress events arrive already throttled at the source. Construct and connect
on the GUI thread; `__call__` may be called from any thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal, Slot

from fota_studio.core.events import (
    EcuBusy,
    EngineEvent,
    JobFailed,
    JobFinished,
    JobQueued,
    JobStarted,
    LogLine,
    Progress,
    StepFinished,
    StepStarted,
)
from fota_studio.engine.engine import Engine


class EngineBridge(QObject):
    """Qt face of the engine: one typed signal per event class, emitted on the GUI thread."""

    job_queued = Signal(object)  # JobQueued
    job_started = Signal(object)  # JobStarted
    step_started = Signal(object)  # StepStarted
    step_finished = Signal(object)  # StepFinished
    progress_changed = Signal(object)  # Progress
    ecu_busy = Signal(object)  # EcuBusy
    job_finished = Signal(object)  # JobFinished
    job_failed = Signal(object)  # JobFailed
    log_line = Signal(object)  # LogLine
    event_received = Signal(object)  # every event, after its typed signal

    _incoming = Signal(object)

    def __init__(self, engine: Engine | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._incoming.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self._routes = {
            JobQueued: self.job_queued,
            JobStarted: self.job_started,
            StepStarted: self.step_started,
            StepFinished: self.step_finished,
            Progress: self.progress_changed,
            EcuBusy: self.ecu_busy,
            JobFinished: self.job_finished,
            JobFailed: self.job_failed,
            LogLine: self.log_line,
        }
        if engine is not None:
            engine.set_sink(self)

    def __call__(self, event: EngineEvent) -> None:
        """The engine's sink (any thread): hand the event to the GUI thread."""
        self._incoming.emit(event)

    @Slot(object)
    def _dispatch(self, event: EngineEvent) -> None:
        signal = self._routes.get(type(event))
        if signal is not None:
            signal.emit(event)
        self.event_received.emit(event)
