"""One-click "Run demo update": the one demo scenario (`demo.run.run_demo`) in the GUI.

`DemoRunner.run()` runs `run_demo` through `ui/background.run_in_background` (a `fota-ui-io`
worker thread): a fresh simulated VCU,
the engine, a TCU CANopen node and a machine-side CANopen client on a private virtual bus. The
HMI panel is attached to that client (the operator approves there, over CANopen SDO, like on the
machine); optionally the local approval dialog is offered as well; a scripted OEM node answers
Checkpoint 2 next to the built-in health checks. The workflow's events arrive on the GUI thread
as `event_received`; `step_changed`, `finished` and `failed` summarise them. Construct and call
on the GUI thread; nothing here blocks it (the run and the bench start/stop run on the
background worker, the workflow on `fota-workflow-*`).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from fota_studio.core.events import EngineEvent
from fota_studio.core.update_request import UpdateRequest
from fota_studio.demo.bench import DemoBench
from fota_studio.demo.run import DemoScript, DemoTarget, run_demo
from fota_studio.engine.workflow import (
    ApprovalRequested,
    RequestRun,
    WorkflowFinished,
    WorkflowStep,
)
from fota_studio.ui.background import BackgroundTask, run_in_background

#: Keep the bench up after the final status so the HMI panel reads status and last_error.
FINAL_READ_GRACE_S = 1.0
#: How long `shutdown` waits for the run thread at application exit.
SHUTDOWN_JOIN_S = 10.0


class DemoRunner(QObject):
    """Runs one demo update; shows Checkpoint 1 on the HMI panel (and the dialog if asked)."""

    started = Signal(int)  # request id
    step_changed = Signal(str, str, str)  # step, state, detail
    approval_requested = Signal(object)  # ApprovalRequest (local dialog)
    event_received = Signal(object)  # every workflow/engine event, on the GUI thread
    finished = Signal(str, str)  # final status, error
    failed = Signal(str)  # the demo could not run at all

    _incoming = Signal(object)
    _bench_ready = Signal(object, object)  # (bench, run) from the run thread

    def __init__(
        self,
        ws: Any,
        *,
        hmi_panel: Any = None,
        local_dialog: bool = False,
        healthy: bool = True,
        approval_timeout_s: float | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        #: How long the person has to decide; None = the demo's default. The Workbench passes
        #: Settings ▸ operator approval timeout (the one source of truth).
        self.approval_timeout_s = approval_timeout_s
        self.hmi_panel = hmi_panel
        self.local_dialog = local_dialog
        self.healthy = healthy
        self.bench: DemoBench | None = None
        self.run_: RequestRun | None = None
        self.request_id: int | None = None
        self.target: DemoTarget | None = None
        self._task: BackgroundTask | None = None
        self._busy = False
        self._cancel_asked = False
        self._lock = threading.Lock()
        self._incoming.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self._bench_ready.connect(self._on_bench_ready, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        """True from run() until the demo finished and its bench stopped."""
        return self._busy

    def run(self) -> None:
        """Start the demo (ignored while one runs)."""
        if self._busy:
            return
        self._busy = True
        self._cancel_asked = False
        script = DemoScript(
            approve=None,  # a person decides: on the HMI panel and/or in the dialog
            healthy=self.healthy,
            local_approval=self.local_dialog or self.hmi_panel is None,
            linger_s=FINAL_READ_GRACE_S if self.hmi_panel is not None else 0.0,
        )
        if self.approval_timeout_s is not None:
            script = replace(script, person_approval_timeout_s=self.approval_timeout_s)
        self._task = run_in_background(
            lambda _progress: run_demo(
                self.ws,
                script=script,
                sink=self._incoming.emit,
                on_request=self._on_request,
                on_started=self._on_started,
            ),
            name="demo update",
            on_error=self._on_run_failed,
            on_finished=self._on_run_ended,
            parent=self,
        )

    # -- the run thread ---------------------------------------------------------------------

    def _on_request(self, req: UpdateRequest, target: DemoTarget) -> None:  # run thread
        self.request_id = req.id
        self.target = target

    def _on_started(self, bench: DemoBench, run: RequestRun) -> None:  # run thread
        with self._lock:
            self.bench, self.run_ = bench, run
            cancel = self._cancel_asked
        if cancel:
            run.cancel("demo cancelled")
        self._bench_ready.emit(bench, run)

    # -- GUI thread -------------------------------------------------------------------------

    def _on_bench_ready(self, bench: DemoBench, run: RequestRun) -> None:
        if self.hmi_panel is not None and bench.client is not None:
            self.hmi_panel.attach_client(bench.client)
        self.started.emit(run.request_id)

    def _on_run_failed(self, exc: BaseException, _trace: str) -> None:
        self.failed.emit(f"{type(exc).__name__}: {exc}")  # the demo could not run

    def _on_run_ended(self) -> None:
        with self._lock:
            self.bench, self.run_ = None, None
        self._busy = False

    def _dispatch(self, event: EngineEvent) -> None:
        self.event_received.emit(event)
        if isinstance(event, WorkflowStep):
            self.step_changed.emit(event.step, event.state, event.detail)
        elif isinstance(event, ApprovalRequested):
            self.approval_requested.emit(event.approval)
        elif isinstance(event, WorkflowFinished):
            self.finished.emit(event.status, event.error)

    def cancel(self) -> None:
        """Cancel the running demo request (refused after approval: it runs to an end)."""
        with self._lock:
            self._cancel_asked = True
            run = self.run_
        if run is not None:
            run.cancel("demo cancelled")

    def shutdown(self) -> None:
        """Cancel and stop everything now (application exit; blocks briefly)."""
        with contextlib.suppress(Exception):
            self.cancel()
        if self._task is not None:
            self._task.wait(SHUTDOWN_JOIN_S)
        self._busy = False
