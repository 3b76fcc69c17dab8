"""The demo scenario, written once: `run_demo(...)` is what `fota-studio demo --headless`, the
self-test and the GUI's Demo ▸ Run demo update all run.

One run: seed the demo workspace if new, recover requests a crash left In progress, cancel open
demo requests, reset the demo machine's ECU to the catalog's starting version (every run is a
fresh simulated machine, so a second run never offers a downgrade), create an update request
for the catalog's pinned demo version (importing another version never changes what the demo
offers), build a `DemoBench`, let the HMI (scripted, or a person on the HMI panel / the local
approval dialog) answer Checkpoint 1 over CANopen and a scripted OEM node answer Checkpoint 2
next to the built-in health checks, run the workflow to its final status and stop the bench.

Thread use: `run_demo` blocks for the whole run (seconds, or until a person decides): call it
from the main thread of a command or from a helper thread, never from the GUI thread. The
workflow, flash and CANopen parts run on their own threads; `sink` and `on_started` are called
from the calling thread and the workflow/engine threads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fota_studio.core.errors import ConfigurationError
from fota_studio.core.update_request import UpdateRequest
from fota_studio.demo import catalog
from fota_studio.demo.bench import DemoBench
from fota_studio.demo.seed import ensure_demo
from fota_studio.engine.targets import machine_ecu
from fota_studio.engine.workflow import RequestRun, Sink, WorkflowOptions, create_request
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.fota_objects import (
    DECISION_APPROVE,
    DECISION_REJECT,
    VERDICT_HEALTHY,
    VERDICT_UNHEALTHY,
)
from fota_studio.sim.hmi import ScriptedHmi
from fota_studio.sim.oem import ScriptedOemLogic

#: Checkpoint timeouts when scripted nodes answer (they answer within a second) ...
SCRIPTED_TIMEOUT_S = 30.0
#: ... and the approval timeout when a person decides on the HMI panel or in the dialog.
PERSON_APPROVAL_TIMEOUT_S = 120.0
#: How long the scripted HMI and OEM node "think" before answering.
HMI_DELAY_S = 0.3
OEM_DELAY_S = 0.2
#: The `source` written into the machine's version history by a demo reset.
RESET_SOURCE = "demo reset"
#: The `created_by` / `by` of the requests a demo run creates and cancels.
DEMO_USER = "demo"


@dataclass(frozen=True)
class DemoScript:
    """Who answers the two checkpoints of a demo run.

    `approve`: True/False = a scripted HMI approves/rejects over CANopen SDO; None = nobody
    scripted, a person decides (the GUI's HMI panel on `bench.client`, and/or the local approval
    dialog when `local_approval`). `healthy`: the scripted OEM node's Checkpoint 2 verdict (None:
    no OEM node, Checkpoint 2 is the built-in health checks alone).
    `linger_s`: keep the bench up this long after the final status, so an HMI panel can read
    the final TCU status and last_error before the bus goes away.
    """

    approve: bool | None = True
    healthy: bool | None = True
    local_approval: bool = False
    linger_s: float = 0.0
    #: How long a person has to decide (the GUI passes Settings ▸ operator approval timeout).
    person_approval_timeout_s: float = PERSON_APPROVAL_TIMEOUT_S

    @property
    def approval_timeout_s(self) -> float:
        """The Checkpoint 1 timeout: short when scripted, long enough for a person otherwise."""
        return SCRIPTED_TIMEOUT_S if self.approve is not None else self.person_approval_timeout_s


@dataclass(frozen=True)
class DemoOutcome:
    """A demo run's result: the final request and the ECU memory hash before/after."""

    request: UpdateRequest
    memory_before: str
    memory_after: str


@dataclass(frozen=True)
class DemoTarget:
    """What a demo run updates: machine, ECU and the catalog's from → to versions."""

    machine: str
    ecu: str
    from_version: str
    to_version: str


def demo_target(
    ws: Workspace, machine: str | None = None, ecu: str = catalog.DEMO_ECU
) -> DemoTarget:
    """The demo's own pinned versions for `ecu` of the demo `machine` (never "the newest").

    ConfigurationError when the machine/ECU is not a demo one or the workspace lacks the demo
    versions (they are seeded into a new workspace only).
    """
    serial = machine or catalog.DEMO_MACHINES[0]
    _ea, definition = machine_ecu(ws, serial, ecu)
    repo = catalog.demo_repository(definition.brand, definition.model)
    if repo is None:
        raise ConfigurationError(
            f'demo: ECU "{ecu}" of "{serial}" is {definition.brand} / {definition.model}, '
            "not a demo repository",
            hint="run the demo in a fresh workspace (`--workspace DIR` with a new folder)",
        )
    have = {v.version for v in RepositoryStore(ws).list_versions(repo.brand, repo.model)}
    missing = [v for v in (repo.installed_version, repo.demo_version) if v not in have]
    if missing:
        raise ConfigurationError(
            f"demo: version(s) {', '.join(missing)} of {repo.brand} / {repo.model} are not in "
            "the workspace",
            hint="run the demo in a fresh workspace (`--workspace DIR` with a new folder)",
        )
    return DemoTarget(serial, ecu, repo.installed_version, repo.demo_version)


def reset_demo_machine(ws: Workspace, target: DemoTarget) -> bool:
    """Put the demo machine's ECU back on the catalog's starting version ("Reset demo");
    True when it changed. The next bench starts its simulated ECU from that version."""
    eas = EaStore(ws)
    if eas.get_machine(target.machine).installed.get(target.ecu) == target.from_version:
        return False
    eas.set_installed(target.machine, target.ecu, target.from_version, RESET_SOURCE)
    return True


def reset_demo(
    ws: Workspace,
    target: DemoTarget | None = None,
    *,
    reason: str = "superseded by a new demo run",
) -> list[str]:
    """ "Reset demo": cancel the demo ECU's open requests and put the machine back on the
    catalog's starting version, so the next run is a fresh machine offered the demo's own
    pinned version (never a downgrade). Returns what was done, one line each (empty when the
    demo was already fresh). Quick (a few SQLite writes): fine on the GUI thread."""
    ensure_demo(ws)
    target = target or demo_target(ws)
    done: list[str] = []
    store = RequestsStore(ws)
    store.recover_interrupted()
    for open_req in store.open_for_ecu(target.machine, target.ecu):
        store.cancel(open_req.id, by=DEMO_USER, reason=reason)
        done.append(f"update request #{open_req.id} cancelled")
    if reset_demo_machine(ws, target):
        done.append(f"{target.machine} {target.ecu} back on {target.from_version}")
    return done


def prepare_demo(ws: Workspace, target: DemoTarget) -> UpdateRequest:
    """Cancel open demo requests of the ECU, reset the machine, create the demo request."""
    reset_demo(ws, target)
    return create_request(
        ws, target.machine, target.ecu, target.to_version, confirm=True, created_by=DEMO_USER
    )


@contextlib.contextmanager
def _scripted_nodes(bench: DemoBench, script: DemoScript) -> Iterator[None]:
    """The scripted HMI (when the script decides) and OEM node, running for the block."""
    with contextlib.ExitStack() as stack:
        if script.approve is not None:
            stack.enter_context(
                ScriptedHmi(
                    bench.client,
                    decision=DECISION_APPROVE if script.approve else DECISION_REJECT,
                    delay_s=HMI_DELAY_S,
                    once=True,
                )
            )
        if script.healthy is not None:
            stack.enter_context(
                ScriptedOemLogic(
                    bench.client,
                    verdict=VERDICT_HEALTHY if script.healthy else VERDICT_UNHEALTHY,
                    delay_s=OEM_DELAY_S,
                    once=True,
                )
            )
        yield


def run_on_bench(
    ws: Workspace,
    request_id: int,
    *,
    script: DemoScript | None = None,
    sink: Sink | None = None,
    on_started: Callable[[DemoBench, RequestRun], None] | None = None,
) -> DemoOutcome:
    """Run the Pending update request `request_id` on a fresh `DemoBench` of its machine and
    ECU, with the checkpoints answered as `script` says; returns the final request.

    `on_started` is called once the bench runs and the workflow is about to start (attach an
    HMI panel to `bench.client`, keep the run to cancel it).
    """
    script = script or DemoScript()
    req = RequestsStore(ws).get(request_id)
    with DemoBench(ws, machine=req.machine, ecu=req.ecu, sink=sink) as bench:
        before = bench.memory_sha256()
        assert bench.engine is not None
        run = RequestRun(
            ws,
            bench.engine,
            req.id,
            tcu=bench.tcu,
            options=WorkflowOptions(
                approval_local=script.local_approval,
                approval_hmi=True,
                approval_timeout_s=script.approval_timeout_s,
                health_checks=True,
                oem_verification=script.healthy is not None,
                verification_timeout_s=SCRIPTED_TIMEOUT_S,
            ),
            sink=sink,
        )
        with _scripted_nodes(bench, script):
            if on_started is not None:
                on_started(bench, run)
            final = run.run()
            if script.linger_s > 0:
                time.sleep(script.linger_s)
        after = bench.memory_sha256()
    return DemoOutcome(final, before, after)


def run_demo(
    ws: Workspace,
    *,
    script: DemoScript | None = None,
    machine: str | None = None,
    ecu: str = catalog.DEMO_ECU,
    sink: Sink | None = None,
    on_request: Callable[[UpdateRequest, DemoTarget], None] | None = None,
    on_started: Callable[[DemoBench, RequestRun], None] | None = None,
) -> DemoOutcome:
    """Run one demo update end to end; returns the final request (any status).

    `on_request` is called once the request exists (before the bench starts), `on_started`
    as in `run_on_bench`.
    """
    ensure_demo(ws)
    target = demo_target(ws, machine, ecu)
    req = prepare_demo(ws, target)
    if on_request is not None:
        on_request(req, target)
    return run_on_bench(ws, req.id, script=script, sink=sink, on_started=on_started)
