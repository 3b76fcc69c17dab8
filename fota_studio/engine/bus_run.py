"""Run update requests headless on a real bus: the TCU node offers, the machine's HMI answers.

`BusRunner` opens one python-can bus on the engine (the request's ECU's logical channel mapped
to the interface/channel the caller gives), serves object 0x5FF3 with a `TcuNode` on it
(heartbeats, persistent state in the workspace's `tcu-state.json`), and runs requests through
`RequestRun`: Checkpoint 1 from the machine HMI over CANopen and/or a local decision callback,
Checkpoint 2 from the built-in health checks and/or an OEM node's verdict over CANopen. Nothing
here is simulated: the ECUs, the HMI and the OEM node are whatever is on that bus (a simulator in
another process, `fota-studio sim --no-tcu`, is one such peer).

`fota-studio request start ID --interface …` runs one request; `fota-studio tcu` keeps the TCU
running and runs each Pending request of its machine in creation order. Runs on the caller's
thread (the workflow has its own thread; jobs run on the engine's channel worker).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fota_studio.core.errors import ConfigurationError
from fota_studio.core.events import EngineEvent
from fota_studio.core.update_request import Outcome, RequestStatus, UpdateRequest
from fota_studio.engine.engine import Engine
from fota_studio.engine.workflow import ApprovalRequested, RequestRun, WorkflowOptions
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.fota_endpoint import EndpointOptions
from fota_studio.protocols.tcu_node import TcuNode

APPROVAL_SOURCES = ("hmi", "local", "both")
VERIFICATION_SOURCES = ("builtin", "oem", "both")

#: Exit codes of `request start` by outcome (documented in its --help and the manual).
EXIT_SUCCESSFUL = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_REJECTED = 3
EXIT_APPROVAL_TIMEOUT = 4
EXIT_VERIFICATION_FAILED = 5
EXIT_CANCELLED = 6

_EXIT_BY_OUTCOME = {
    Outcome.SUCCESS: EXIT_SUCCESSFUL,
    Outcome.REJECTED: EXIT_REJECTED,
    Outcome.APPROVAL_TIMEOUT: EXIT_APPROVAL_TIMEOUT,
    Outcome.VERIFICATION_FAILED: EXIT_VERIFICATION_FAILED,
    Outcome.VERIFICATION_TIMEOUT: EXIT_VERIFICATION_FAILED,
    Outcome.CANCELLED: EXIT_CANCELLED,
}

EXIT_CODES_TEXT = (
    f"{EXIT_SUCCESSFUL} Successful; {EXIT_FAILED} failed (package, flash, internal); "
    f"{EXIT_REFUSED} refused before anything was sent; {EXIT_REJECTED} rejected by the operator; "
    f"{EXIT_APPROVAL_TIMEOUT} approval timed out; {EXIT_VERIFICATION_FAILED} Checkpoint 2 "
    f"failed or timed out; {EXIT_CANCELLED} cancelled"
)


def exit_code_for(req: UpdateRequest) -> int:
    """The process exit code for a finished request (see EXIT_CODES_TEXT)."""
    if req.status is RequestStatus.SUCCESSFUL:
        return EXIT_SUCCESSFUL
    try:
        outcome = Outcome(req.outcome)
    except ValueError:
        return EXIT_FAILED
    return _EXIT_BY_OUTCOME.get(outcome, EXIT_FAILED)


@dataclass(frozen=True)
class BusRunOptions:
    """How a request runs on the bus: who approves, who verifies, the timeouts."""

    approval: str = "hmi"
    verification: str = "builtin"
    approval_timeout_s: float | None = None  # None: the TCU's approval_timeout_s object
    verification_timeout_s: float | None = None  # None: the TCU's verification_timeout_s
    node_id: int | None = None  # TCU node-ID; None: the EDS default (0x7A)

    def __post_init__(self) -> None:
        if self.approval not in APPROVAL_SOURCES:
            raise ConfigurationError(
                f"approval must be one of {', '.join(APPROVAL_SOURCES)}, not {self.approval!r}"
            )
        if self.verification not in VERIFICATION_SOURCES:
            raise ConfigurationError(
                f"verification must be one of {', '.join(VERIFICATION_SOURCES)}, "
                f"not {self.verification!r}"
            )

    def workflow_options(self) -> WorkflowOptions:
        """The RequestRun options these choices mean."""
        return WorkflowOptions(
            approval_local=self.approval in ("local", "both"),
            approval_hmi=self.approval in ("hmi", "both"),
            approval_timeout_s=self.approval_timeout_s,
            health_checks=self.verification in ("builtin", "both"),
            oem_verification=self.verification in ("oem", "both"),
            verification_timeout_s=self.verification_timeout_s,
        )


#: Called with each ApprovalRequested when local approval is on; must not block (start a
#: thread to ask) and resolves the request's future (approve/reject).
LocalApprover = Callable[[ApprovalRequested], None]


class BusRunner:
    """One bus, one TCU node, the engine: runs update requests of one machine on it."""

    def __init__(
        self,
        ws: Workspace,
        machine: str,
        settings: BusSettings,
        *,
        options: BusRunOptions | None = None,
        sink: Callable[[EngineEvent], None] | None = None,
        local_approver: LocalApprover | None = None,
        tcu_state_file: Path | None = None,
    ) -> None:
        self.ws = ws
        self.machine = machine
        self.settings = settings
        self.options = options or BusRunOptions()
        self._sink = sink
        self._local_approver = local_approver
        if self.options.approval in ("local", "both") and local_approver is None:
            raise ConfigurationError(
                "local approval needs a way to ask the operator",
                hint="use --approval hmi, or run from a terminal",
            )
        self._state_file = tcu_state_file or ws.root / "tcu-state.json"
        m = EaStore(ws).get_machine(machine)
        if m.ea_name is None:
            raise ConfigurationError(
                f'machine "{machine}" has no Electronic Architecture',
                hint=f'assign one: fota-studio ea assign "{machine}" EA_NAME',
            )
        self.ea = EaStore(ws).get(m.ea_name)
        self.engine: Engine | None = None
        self.tcu: TcuNode | None = None
        self._channels: set[str] = set()
        self._bus: Any = None
        self._notifier: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> BusRunner:
        """Open the bus on a fresh engine and start the TCU node (boot-up, heartbeats)."""
        self.engine = Engine(sink=self._on_event)
        try:
            first = self.ea.ecus[0].connection.channel if self.ea.ecus else "CAN1"
            self._bus, self._notifier = self.engine.open_channel(first, self.settings)
            self._channels.add(first)
            where: EndpointOptions = {"notifier": self._notifier}
            if self.options.node_id is not None:
                where["node_id"] = self.options.node_id
            self.tcu = TcuNode(self._bus, state_file=self._state_file, **where)
            self.tcu.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the TCU node, then the engine (workers, notifiers, bus). Idempotent."""
        tcu, self.tcu = self.tcu, None
        if tcu is not None:
            tcu.stop()
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.shutdown()

    def __enter__(self) -> BusRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- running ---------------------------------------------------------------------------

    def _ensure_channel(self, logical: str) -> None:
        """The request's ECU on another logical channel of the EA uses this same bus."""
        assert self.engine is not None
        if logical in self._channels:
            return
        first = next(iter(self._channels))
        self.engine.attach_channel(
            logical, self._bus, self._notifier, tx_echo=self.engine.echoes_tx(first)
        )
        self._channels.add(logical)

    def run(self, request_id: int, cancel: threading.Event | None = None) -> UpdateRequest:
        """Run one request of this machine to its end and return it (final status)."""
        if self.engine is None or self.tcu is None:
            raise ConfigurationError("BusRunner.run before start()")
        req = RequestsStore(self.ws).get(request_id)
        if req.machine != self.machine:
            raise ConfigurationError(
                f"request #{request_id} is for machine {req.machine}, not {self.machine}"
            )
        self._ensure_channel(self.ea.ecu(req.ecu).connection.channel)
        run = RequestRun(
            self.ws,
            self.engine,
            request_id,
            tcu=self.tcu,
            options=self.options.workflow_options(),
            sink=self._on_event,
        )
        future = run.start()
        asked = False
        while True:
            stop = False
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                stop = cancel is not None and cancel.is_set()
            except KeyboardInterrupt:
                stop = True
            if stop and not asked:
                # Cancelled at the workflow's next safe point; the result says where it stopped.
                run.cancel("stopped by the operator")
                asked = True

    def pending_requests(self) -> list[UpdateRequest]:
        """This machine's Pending requests, oldest first (what `fota-studio tcu` runs)."""
        reqs = RequestsStore(self.ws).list(machine=self.machine, status=RequestStatus.PENDING.value)
        return sorted(reqs, key=lambda r: r.id)

    def _on_event(self, event: EngineEvent) -> None:
        local = self.options.approval in ("local", "both")
        if isinstance(event, ApprovalRequested) and local and self._local_approver is not None:
            self._local_approver(event)
        if self._sink is not None:
            self._sink(event)


def settings_with(
    base: BusSettings | None,
    *,
    interface: str,
    channel: str,
    bitrate_bps: int | None,
    fd: bool,
    data_bitrate_bps: int | None,
) -> BusSettings:
    """BusSettings from command-line values (the EA's bitrates where not given)."""
    settings = base or BusSettings(interface=interface, channel=channel)
    settings = replace(settings, interface=interface, channel=channel, fd=fd or settings.fd)
    if bitrate_bps is not None:
        settings = replace(settings, bitrate_bps=bitrate_bps)
    if data_bitrate_bps is not None:
        settings = replace(settings, data_bitrate_bps=data_bitrate_bps)
    return settings
