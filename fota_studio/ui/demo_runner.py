"""One-click "Run demo update": the whole FOTA flow on the simulated machine, in the GUI.

`DemoRunner.run()` builds the demo bench (simulated VCU + engine + TCU CANopen node + a
machine-side CANopen client on a private virtual bus) on a helper thread, attaches the HMI panel
to the bench's client (the operator approves there, over CANopen SDO, like on the machine), a
scripted OEM node answers Checkpoint 2 next to the built-in health checks, creates the update
request and runs its workflow. Optionally the local approval dialog is offered as well. The
workflow's events arrive on the GUI thread as `event_received`; `step_changed`, `finished` and
`failed` summarise them. Construct and call on the GUI thread; nothing here blocks it (bench
start/stop and the workflow run on threads named `fota-demo-*` / `fota-workflow-*`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from fota_studio.core.events import EngineEvent
from fota_studio.engine.workflow import (
    ApprovalRequested,
    DemoBench,
    RequestRun,
    WorkflowFinished,
    WorkflowOptions,
    WorkflowStep,
    create_request,
    pick_demo_version,
)
from fota_studio.infra.demo import ensure_demo
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.protocols.fota_objects import VERDICT_HEALTHY, VERDICT_UNHEALTHY
from fota_studio.sim.oem import ScriptedOemLogic

DEMO_ECU = "VCU"
DEMO_APPROVAL_TIMEOUT_S = 120.0
DEMO_VERIFICATION_TIMEOUT_S = 30.0
FINAL_READ_GRACE_S = 1.0


class DemoRunner(QObject):
    """Runs one demo update; shows Checkpoint 1 on the HMI panel (and the dialog if asked)."""

    started = Signal(int)  # request id
    step_changed = Signal(str, str, str)  # step, state, detail
    approval_requested = Signal(object)  # ApprovalRequest (local dialog)
    event_received = Signal(object)  # every workflow/engine event, on the GUI thread
    finished = Signal(str, str)  # final status, error
    failed = Signal(str)  # the demo could not run at all

    _incoming = Signal(object)
    _bench_ready = Signal(object, object)  # (bench, request id) or (None, error text)

    def __init__(
        self,
        ws: Any,
        *,
        hmi_panel: Any = None,
        local_dialog: bool = False,
        healthy: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        self.hmi_panel = hmi_panel
        self.local_dialog = local_dialog
        self.healthy = healthy
        self.bench: DemoBench | None = None
        self.run_: RequestRun | None = None
        self.request_id: int | None = None
        self._oem: ScriptedOemLogic | None = None
        self._busy = False
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
        threading.Thread(target=self._prepare, name="fota-demo-start", daemon=True).start()

    def _prepare(self) -> None:  # helper thread: workspace seeding and bench start take ~1 s
        try:
            ensure_demo(self.ws)
            RequestsStore(self.ws).recover_interrupted()
            bench = DemoBench(self.ws, ecu=DEMO_ECU, sink=self._incoming.emit)
            store = RequestsStore(self.ws)
            for old in store.open_for_ecu(bench.machine, DEMO_ECU):
                with contextlib.suppress(Exception):
                    store.cancel(old.id, by="demo", reason="superseded by a new demo run")
            version = pick_demo_version(self.ws, bench.machine, DEMO_ECU)
            req = create_request(
                self.ws, bench.machine, DEMO_ECU, version, confirm=True, created_by="demo"
            )
            bench.start()
        except Exception as exc:  # reported to the user through `failed`
            self._bench_ready.emit(None, f"{type(exc).__name__}: {exc}")
            return
        self._bench_ready.emit(bench, req.id)

    def _on_bench_ready(self, bench: DemoBench | None, info: object) -> None:
        if bench is None:
            self._busy = False
            self.failed.emit(str(info))
            return
        self.bench = bench
        self.request_id = int(info)  # type: ignore[call-overload]
        if self.hmi_panel is not None:
            self.hmi_panel.attach_client(bench.client)
        self._oem = ScriptedOemLogic(
            bench.client,
            verdict=VERDICT_HEALTHY if self.healthy else VERDICT_UNHEALTHY,
            delay_s=0.3,
            once=True,
        )
        self._oem.start()
        assert bench.engine is not None
        self.run_ = RequestRun(
            self.ws,
            bench.engine,
            self.request_id,
            tcu=bench.tcu,
            options=WorkflowOptions(
                approval_local=self.local_dialog or self.hmi_panel is None,
                approval_hmi=True,
                approval_timeout_s=DEMO_APPROVAL_TIMEOUT_S,
                health_checks=True,
                oem_verification=True,
                verification_timeout_s=DEMO_VERIFICATION_TIMEOUT_S,
            ),
            sink=self._incoming.emit,
        )
        self.run_.start()
        self.started.emit(self.request_id)

    def _dispatch(self, event: EngineEvent) -> None:
        self.event_received.emit(event)
        if isinstance(event, WorkflowStep):
            self.step_changed.emit(event.step, event.state, event.detail)
        elif isinstance(event, ApprovalRequested):
            self.approval_requested.emit(event.approval)
        elif isinstance(event, WorkflowFinished):
            self._teardown()
            self.finished.emit(event.status, event.error)

    def cancel(self) -> None:
        """Cancel the running demo request (refused after approval: it runs to an end)."""
        if self.run_ is not None:
            self.run_.cancel("demo cancelled")

    def _teardown(self) -> None:
        # The workflow thread sent its last event and is about to return: stop the bench on a
        # helper thread so the GUI never waits for thread joins.
        run, bench, oem = self.run_, self.bench, self._oem
        self.run_, self.bench, self._oem = None, None, None

        def stop() -> None:
            if run is not None:
                run.join(10.0)
            # Let the HMI panel read the final status and last_error before the bus goes away.
            time.sleep(FINAL_READ_GRACE_S)
            if oem is not None:
                oem.stop()
            if bench is not None:
                bench.stop()
            self._busy = False

        self._stopper = threading.Thread(target=stop, name="fota-demo-stop", daemon=True)
        self._stopper.start()

    def shutdown(self) -> None:
        """Cancel and stop everything now (application exit; blocks briefly)."""
        with contextlib.suppress(Exception):
            self.cancel()
        if self.run_ is not None:
            self.run_.join(10.0)
        if self._oem is not None:
            self._oem.stop()
        if self.bench is not None:
            self.bench.stop()
        stopper = getattr(self, "_stopper", None)
        if stopper is not None:
            stopper.join(10.0)
        self._busy = False
