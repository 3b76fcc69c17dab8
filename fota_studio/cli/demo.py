"""`fota-studio demo --headless`: the whole FOTA workflow on the simulated machine, no window.

Runs `demo.run.run_demo` (the one demo scenario, also run by the GUI and the self-test): a fresh
simulated VCU on a private virtual bus, an update request from the catalog's starting version to
its demo version, a scripted HMI answering Checkpoint 1 over CANopen SDO (approve, or reject with
`--reject`) and a scripted OEM node answering Checkpoint 2 (healthy, or unhealthy with
`--fail-verification`) next to the built-in health checks; prints every step and the final
status. Exit code 0 only for Successful. `run_headless_demo` is the reusable entry (the
self-test calls it). Runs on the main thread; the workflow, flash and CANopen parts run on their
own threads.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fota_studio.cli.common import Command, add_command, arg, authorised_workspace
from fota_studio.core.events import EngineEvent, StepFinished
from fota_studio.core.update_request import RequestStatus, UpdateRequest
from fota_studio.demo.run import DemoOutcome, DemoScript, DemoTarget, run_demo
from fota_studio.engine.workflow import (
    ApprovalResolved,
    Checkpoint2Result,
    WorkflowFinished,
    WorkflowStep,
)
from fota_studio.infra.access import Action
from fota_studio.infra.workspace import Workspace

Out = Callable[[str], Any]


def register(subparsers: Any) -> None:
    """Add the `demo` command."""
    add_command(
        subparsers,
        Command(
            "demo",
            run,
            "run a demo update on the simulated machine",
            "Run the whole FOTA workflow (Checkpoints 1 and 2 over CANopen) on the "
            "simulated demo machine. Every run starts from a fresh simulated machine (the demo "
            "VCU back on its starting version) and offers the demo's own version, so repeated "
            "runs show the same upgrade.",
            args=(
                arg("--headless", action="store_true", help="run without a window (required)"),
                _add_outcome_options,
                # SUPPRESS: only override the global --workspace when given after `demo`.
                arg("--workspace", metavar="DIR", default=argparse.SUPPRESS, help="workspace"),
            ),
            changes_state=True,
        ),
    )


def _add_outcome_options(p: argparse.ArgumentParser) -> None:
    """--reject / --fail-verification: which scripted answer spoils the run (one at most)."""
    what = p.add_mutually_exclusive_group()
    what.add_argument("--reject", action="store_true", help="the HMI rejects the update")
    what.add_argument(
        "--fail-verification", action="store_true", help="the OEM node reports unhealthy"
    )


def run(args: argparse.Namespace) -> int:
    """Run the `demo` command."""
    if not args.headless:
        print("the interactive demo is in the GUI: start `fota-studio` and use Run demo update;")
        print("for the terminal run `fota-studio demo --headless`")
        return 2
    # The demo writes a request and the machine's installed version: in operator mode it
    # needs the passphrase like `request start` (it once bypassed the access check).
    with authorised_workspace(args, Action.REQUEST_START) as ws:
        return run_headless_demo(
            ws, reject=args.reject, fail_verification=args.fail_verification, out=print
        )


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


def _announcer(out: Out, script: DemoScript) -> Callable[[UpdateRequest, DemoTarget], None]:
    def announce(req: UpdateRequest, target: DemoTarget) -> None:
        out(
            f"demo: request #{req.id}: {target.ecu} {target.from_version} -> {target.to_version} "
            f"on {target.machine} (HMI will {'approve' if script.approve else 'reject'}, OEM "
            f"logic will report {'healthy' if script.healthy else 'unhealthy'})"
        )

    return announce


def demo_outcome(
    ws: Workspace, *, reject: bool = False, fail_verification: bool = False, out: Out = print
) -> DemoOutcome:
    """Run the scripted demo once, printing its steps through `out`."""
    script = DemoScript(approve=not reject, healthy=not fail_verification)
    return run_demo(ws, script=script, sink=_printer(out), on_request=_announcer(out, script))


def run_headless_demo(
    ws: Workspace, *, reject: bool = False, fail_verification: bool = False, out: Out = print
) -> int:
    """The headless demo; returns the exit code (0 only when the request is Successful)."""
    outcome = demo_outcome(ws, reject=reject, fail_verification=fail_verification, out=out)
    req = outcome.request
    out(f"demo: request #{req.id} {req.status.value}" + (f": {req.error}" if req.error else ""))
    return 0 if req.status == RequestStatus.SUCCESSFUL else 1
