"""Creating update requests (`check_new_request`, `create_request`: the one validation of CLI
and panel) and running several (`RequestService`: one `fota-workflow-<id>` thread per run).
Any thread."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.update_request import (
    OPEN_STATUSES,
    RequestIssue,
    RequestStateError,
    RequestStatus,
    UpdateRequest,
    has_blocks,
    validate_new_request,
)
from fota_studio.engine.engine import Engine
from fota_studio.engine.targets import (
    machine_ecu,
)
from fota_studio.engine.workflow.events import Sink
from fota_studio.engine.workflow.run import RequestRun, WorkflowOptions
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.requests_store import (
    RequestsStore,
)
from fota_studio.protocols.tcu_node import TcuNode


@dataclass(frozen=True)
class NewRequestCheck:
    """What `check_new_request` found: the findings and the resolved targets."""

    issues: tuple[RequestIssue, ...]
    ecu: EcuDefinition
    brand: str
    model: str
    installed_version: str | None

    @property
    def blocked(self) -> bool:
        """True when a finding forbids the request."""
        return has_blocks(self.issues)

    @property
    def warnings(self) -> tuple[RequestIssue, ...]:
        """Findings that need a confirmation."""
        return tuple(i for i in self.issues if not i.block)


def check_new_request(
    ws: Any,
    machine: str,
    ecu_name: str,
    version: str,
    *,
    brand: str | None = None,
    model: str | None = None,
) -> NewRequestCheck:
    """Validate a request of `version` for `ecu_name` on `machine` (repository = the ECU's
    Brand/Model unless `brand`/`model` are given)."""
    _ea, ecu = machine_ecu(ws, machine, ecu_name)
    b, mo = brand or ecu.brand, model or ecu.model
    v = RepositoryStore(ws).get_version(b, mo, version)
    installed = EaStore(ws).get_machine(machine).installed.get(ecu_name)
    issues = validate_new_request(
        ecu,
        version=version,
        brand=b,
        model=mo,
        segments=list(v.segments),
        installed_version=installed,
        open_requests=RequestsStore(ws).open_for_ecu(machine, ecu_name),
        retired=v.retired,
    )
    return NewRequestCheck(tuple(issues), ecu, b, mo, installed)


def create_request(
    ws: Any,
    machine: str,
    ecu_name: str,
    version: str,
    *,
    confirm: bool = False,
    created_by: str | None = None,
    brand: str | None = None,
    model: str | None = None,
) -> UpdateRequest:
    """Create a Pending request; blocks always refuse, warnings refuse unless `confirm`."""
    chk = check_new_request(ws, machine, ecu_name, version, brand=brand, model=model)
    if chk.blocked:
        raise RequestStateError(
            "update request refused: " + "; ".join(i.message for i in chk.issues if i.block)
        )
    if chk.warnings and not confirm:
        raise RequestStateError(
            "update request needs confirmation: " + "; ".join(i.message for i in chk.warnings),
            hint="confirm the warnings (--yes on the command line)",
        )
    return RequestsStore(ws).create(
        machine=machine,
        ecu=ecu_name,
        brand=chk.brand,
        model=chk.model,
        version=version,
        installed_before=chk.installed_version,
        created_by=created_by,
        warnings=[i.message for i in chk.warnings],
    )


class RequestService:
    """Starts request runs on a workspace + engine, routes cancels, keeps the running ones."""

    def __init__(
        self, ws: Any, engine: Engine, *, tcu: TcuNode | None = None, sink: Sink | None = None
    ) -> None:
        self.ws = ws
        self.engine = engine
        self.tcu = tcu
        self._sink = sink
        self.store = RequestsStore(ws)
        self._runs: dict[int, RequestRun] = {}
        self._lock = threading.Lock()

    def start(self, request_id: int, options: WorkflowOptions | None = None) -> RequestRun:
        """Start a run of a Pending request on its own thread; returns it at once."""
        req = self.store.get(request_id)
        if req.status != RequestStatus.PENDING:
            raise RequestStateError(
                f"update request #{request_id} is {req.status.value}; only Pending requests start",
                hint="re-run a Failed or Cancelled request",
            )
        with self._lock:
            if request_id in self._runs and not self._runs[request_id].future.done():
                raise RequestStateError(f"update request #{request_id} is already running")
            run = RequestRun(
                self.ws, self.engine, request_id, tcu=self.tcu, options=options, sink=self._sink
            )
            self._runs[request_id] = run
        run.start()
        return run

    def running(self, request_id: int) -> RequestRun | None:
        """The run of this request while it has not ended."""
        with self._lock:
            run = self._runs.get(request_id)
        return run if run is not None and not run.future.done() else None

    def cancel(self, request_id: int, reason: str = "cancelled by the user", by: str = "") -> None:
        """Cancel a request (running or not); RequestStateError after Checkpoint 1 approval."""
        run = self.running(request_id)
        if run is not None:
            run.cancel(reason, by)
            return
        req = self.store.get(request_id)
        if req.status not in OPEN_STATUSES:
            raise RequestStateError(f"update request #{request_id} is {req.status.value}")
        self.store.cancel(request_id, by=by, reason=reason)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Cancel runs still before approval and wait for every run thread."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            with contextlib.suppress(RequestStateError):
                if not run.future.done():
                    run.cancel("the application is shutting down")
        for run in runs:
            run.join(timeout_s)
