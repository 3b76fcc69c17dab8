"""`fota-studio demo --headless`: the whole FOTA workflow on the simulated machine, no window.

Builds the demo bench (simulated VCU, engine, TCU CANopen node, machine-side client on a private
virtual bus), creates an update request for the demo machine, lets a scripted HMI answer
Checkpoint 1 over CANopen SDO (approve, or reject with `--reject`) and a scripted OEM node answer
Checkpoint 2 (healthy, or unhealthy with `--fail-verification`) next to the built-in health
checks, prints every step and the final status. Exit code 0 only for Successful.
`run_headless_demo` is the reusable entry (the self-test calls it). Runs on the main thread; the
workflow, flash and CANopen parts run on their own threads.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fota_studio.core.demo_catalog import DEMO_MACHINES
from fota_studio.core.events import EngineEvent, StepFinished
from fota_studio.core.update_request import RequestStatus, UpdateRequest
from fota_studio.engine.workflow import (
    ApprovalResolved,
    Checkpoint2Result,
    DemoBench,
    RequestRun,
    WorkflowFinished,
    WorkflowOptions,
    WorkflowStep,
    create_request,
    pick_demo_version,
)
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.fota_objects import (
    DECISION_APPROVE,
    DECISION_REJECT,
    VERDICT_HEALTHY,
    VERDICT_UNHEALTHY,
)

DEMO_ECU = "VCU"
#: Short demo timeouts: the scripted nodes answer within a second.
DEMO_APPROVAL_TIMEOUT_S = 30.0
DEMO_VERIFICATION_TIMEOUT_S = 30.0
DEMO_HMI_DELAY_S = 0.3
DEMO_OEM_DELAY_S = 0.2

Out = Callable[[str], Any]


@dataclass(frozen=True)
class DemoOutcome:
    """The demo's result: the final request and the ECU memory hash before/after."""

    request: UpdateRequest
    memory_before: str
    memory_after: str


def register(subparsers: Any) -> None:
    """Add the `demo` command."""
    p = subparsers.add_parser(
        "demo",
        help="run a demo update on the simulated machine",
        description="Run the whole FOTA workflow (Checkpoints 1 and 2 over CANopen) on the "
        "simulated demo machine.",
    )
    p.add_argument("--headless", action="store_true", help="run without a window (required)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--reject", action="store_true", help="the HMI rejects the update")
    what.add_argument(
        "--fail-verification", action="store_true", help="the OEM node reports unhealthy"
    )
    # SUPPRESS: only override the global --workspace when given after `demo`.
    p.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS, help="workspace")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the `demo` command."""
    if not args.headless:
        print("the interactive demo is in the GUI: start `fota-studio` and use Run demo update;")
        print("for the terminal run `fota-studio demo --headless`")
        return 2
    from fota_studio.cli.common import open_workspace

    ws = open_workspace(args)
    try:
        return run_headless_demo(
            ws, reject=args.reject, fail_verification=args.fail_verification, out=print
        )
    finally:
        ws.close()


def _printer(out: Out) -> Callable[[EngineEvent], None]:
    def sink(event: EngineEvent) -> None:
        if isinstance(event, WorkflowStep):
            mark = {"started": "…", "ok": "ok", "failed": "FAILED"}.get(event.state, event.state)
            out(f"  [{mark:>6}] {event.step}" + (f": {event.detail}" if event.detail else ""))
        elif isinstance(event, ApprovalResolved):
            d = event.decision
            word = "approve" if d.approved else d.source
            if not d.approved and d.source in ("local", "hmi"):
                word = "reject"
            out(f"           decision: {word} by {d.by}")
        elif isinstance(event, Checkpoint2Result):
            for c in event.checks:
                out(f"           check {c.name}: {'ok' if c.ok else 'FAILED'} ({c.detail})")
        elif isinstance(event, StepFinished) and not event.ok:
            out(f"           flash step {event.step} failed: {event.detail}")
        elif isinstance(event, WorkflowFinished):
            out(f"  final status: {event.status}" + (f" ({event.error})" if event.error else ""))

    return sink


def run_demo(
    ws: Workspace,
    *,
    reject: bool = False,
    fail_verification: bool = False,
    out: Out = print,
    machine: str | None = None,
    ecu: str = DEMO_ECU,
) -> DemoOutcome:
    """Run one demo update end to end and return the final request (any status)."""
    from fota_studio.infra.demo import ensure_demo
    from fota_studio.sim.hmi import ScriptedHmi
    from fota_studio.sim.oem import ScriptedOemLogic

    ensure_demo(ws)
    store = RequestsStore(ws)
    store.recover_interrupted()
    serial = machine or DEMO_MACHINES[0]
    version = pick_demo_version(ws, serial, ecu)
    for open_req in store.open_for_ecu(serial, ecu):
        store.cancel(open_req.id, by="demo", reason="superseded by a new demo run")
    req = create_request(ws, serial, ecu, version, confirm=True, created_by="demo")
    out(
        f"demo: request #{req.id}: {ecu} {req.installed_before or '?'} -> {version} on {serial} "
        f"(HMI will {'reject' if reject else 'approve'}, OEM logic will report "
        f"{'unhealthy' if fail_verification else 'healthy'})"
    )
    with DemoBench(ws, machine=serial, ecu=ecu, sink=_printer(out)) as bench:
        before = bench.memory_sha256()
        hmi = ScriptedHmi(
            bench.client,
            decision=DECISION_REJECT if reject else DECISION_APPROVE,
            delay_s=DEMO_HMI_DELAY_S,
            once=True,
        )
        oem = ScriptedOemLogic(
            bench.client,
            verdict=VERDICT_UNHEALTHY if fail_verification else VERDICT_HEALTHY,
            delay_s=DEMO_OEM_DELAY_S,
            once=True,
        )
        assert bench.engine is not None
        with hmi, oem:
            final = RequestRun(
                ws,
                bench.engine,
                req.id,
                tcu=bench.tcu,
                options=WorkflowOptions(
                    approval_local=False,
                    approval_hmi=True,
                    approval_timeout_s=DEMO_APPROVAL_TIMEOUT_S,
                    health_checks=True,
                    oem_verification=True,
                    verification_timeout_s=DEMO_VERIFICATION_TIMEOUT_S,
                ),
            ).run()
        after = bench.memory_sha256()
    return DemoOutcome(final, before, after)


def run_headless_demo(
    ws: Workspace, *, reject: bool = False, fail_verification: bool = False, out: Out = print
) -> int:
    """The headless demo; returns the exit code (0 only when the request is Successful)."""
    outcome = run_demo(ws, reject=reject, fail_verification=fail_verification, out=out)
    req = outcome.request
    out(f"demo: request #{req.id} {req.status.value}" + (f": {req.error}" if req.error else ""))
    return 0 if req.status == RequestStatus.SUCCESSFUL else 1
