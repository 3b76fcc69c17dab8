"""Shared pieces of the headless real-bus commands (`request start --interface`, `tcu`).

Bus options, a terminal approval prompt (on its own thread: the HMI may answer first), progress
lines on stderr and the `--json` record of a request. Runs on the main thread; the prompt thread
only resolves the approval future.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

from fota_studio.core.events import EngineEvent
from fota_studio.core.update_request import UpdateRequest
from fota_studio.engine.bus_run import (
    APPROVAL_SOURCES,
    VERIFICATION_SOURCES,
    BusRunner,
    BusRunOptions,
    settings_with,
)
from fota_studio.engine.workflow import (
    ApprovalRequested,
    WorkflowFinished,
    WorkflowProgress,
    WorkflowStep,
)
from fota_studio.infra.connections import bus_settings_for
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings


def add_bus_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    """--interface/--channel/--bitrate/--fd/--data-bitrate/--approval/--verification/timeouts."""
    p.add_argument(
        "--interface",
        required=required,
        metavar="I",
        help="python-can interface of the machine's bus (socketcan, pcan, udp_multicast, …)",
    )
    p.add_argument("--channel", metavar="C", help="python-can channel (can0, PCAN_USBBUS1, …)")
    p.add_argument("--bitrate", type=int, metavar="B", help="bit/s (default: the EA's)")
    p.add_argument("--fd", action="store_true", help="open the bus in CAN FD mode")
    p.add_argument("--data-bitrate", type=int, metavar="B", help="CAN FD data phase bit/s")
    p.add_argument(
        "--approval",
        choices=APPROVAL_SOURCES,
        default="hmi",
        help="Checkpoint 1: the machine HMI over 0x5FF3, a terminal prompt, or both",
    )
    p.add_argument(
        "--verification",
        choices=VERIFICATION_SOURCES,
        default="builtin",
        help="Checkpoint 2: built-in health checks, an OEM node's verdict over 0x5FF3, or both",
    )
    p.add_argument("--timeout-approval", type=float, metavar="S", help="Checkpoint 1 timeout")
    p.add_argument(
        "--timeout-verification", type=float, metavar="S", help="Checkpoint 2 timeout (OEM)"
    )
    p.add_argument("--tcu-node-id", type=lambda v: int(v, 0), metavar="N", help="default 0x7A")


def bus_settings(args: argparse.Namespace, ws: Workspace, machine: str, ecu: str) -> BusSettings:
    """The bus to open: the command line over the EA's channel settings (bitrates, FD)."""
    m = EaStore(ws).get_machine(machine)
    base: BusSettings | None = None
    if m.ea_name is not None:
        ea = EaStore(ws).get(m.ea_name)
        try:
            logical = ea.ecu(ecu).connection.channel
        except KeyError:
            logical = ea.ecus[0].connection.channel if ea.ecus else "CAN1"
        base = bus_settings_for(ws, logical, ea)
    return settings_with(
        base,
        interface=args.interface,
        channel=args.channel or (base.channel if base else "0"),
        bitrate_bps=args.bitrate,
        fd=args.fd,
        data_bitrate_bps=args.data_bitrate,
    )


def run_options(args: argparse.Namespace) -> BusRunOptions:
    """BusRunOptions from the command line."""
    return BusRunOptions(
        approval=args.approval,
        verification=args.verification,
        approval_timeout_s=args.timeout_approval,
        verification_timeout_s=args.timeout_verification,
        node_id=args.tcu_node_id,
    )


def open_runner(
    ws: Workspace, machine: str, settings: BusSettings, args: argparse.Namespace
) -> BusRunner:
    """The BusRunner of a headless command: options from the command line, progress lines on
    stderr, the terminal as a second approver (`--approval local|both`)."""
    return BusRunner(
        ws,
        machine,
        settings,
        options=run_options(args),
        sink=ProgressPrinter(),
        local_approver=terminal_approver,
    )


def final_line(req: UpdateRequest) -> str:
    """The one line that ends a request's run: its status, and its error when it has one."""
    return f"request #{req.id}: {req.status.value}" + (f": {req.error}" if req.error else "")


def terminal_approver(event: ApprovalRequested) -> None:
    """Ask on the terminal on a thread of its own; the first decision (HMI or here) wins."""
    approval = event.approval

    def ask() -> None:
        prompt = (
            f"\nUpdate request #{approval.request_id}: {approval.ecu} on {approval.machine} "
            f"{approval.installed_version or '?'} -> {approval.offered_version}, machine "
            f"unavailable for about {approval.expected_downtime_s} s, "
            f"{approval.remaining_s():.0f} s to decide.\nApprove? [y/N] "
        )
        print(prompt, end="", file=sys.stderr, flush=True)
        try:
            answer = sys.stdin.readline()
        except (OSError, ValueError):
            return
        if not answer:  # no terminal (EOF): leave the decision to the HMI or the timeout
            return
        if approval.done:
            return
        if answer.strip().lower() in ("y", "yes"):
            approval.approve()
        else:
            approval.reject()

    threading.Thread(target=ask, name="fota-cli-approval", daemon=True).start()


class ProgressPrinter:
    """Workflow steps and throttled flash progress as lines on stderr."""

    def __init__(self) -> None:
        self._last_pct = -1
        self._last_t = 0.0

    def __call__(self, event: EngineEvent) -> None:
        """Engine sink: print what a person at a terminal wants to follow."""
        if isinstance(event, WorkflowStep):
            detail = f": {event.detail}" if event.detail else ""
            print(
                f"request #{event.request_id} {event.step} {event.state}{detail}",
                file=sys.stderr,
            )
        elif isinstance(event, WorkflowProgress):
            now = time.monotonic()
            if event.percent in (0, 100) or (
                event.percent >= self._last_pct + 10 and now - self._last_t > 0.5
            ):
                self._last_pct, self._last_t = event.percent, now
                print(f"request #{event.request_id} flashing {event.percent} %", file=sys.stderr)
        elif isinstance(event, WorkflowFinished):
            print(
                f"request #{event.request_id} finished: {event.status}"
                + (f" ({event.outcome}: {event.error})" if event.error else ""),
                file=sys.stderr,
            )


def request_json(ws: Workspace, req: UpdateRequest) -> str:
    """The request, its record entries and its flash record as one JSON object."""
    from fota_studio.engine.records import load_flash_record

    store = RequestsStore(ws)
    doc: dict[str, Any] = {"request": asdict(req)}
    doc["request"]["status"] = req.status.value
    doc["entries"] = [
        {"attempt": e.attempt, "at": e.at, "kind": e.kind, "data": e.data, "hash": e.hash}
        for e in store.entries(req.id)
    ]
    doc["flash_record"] = (
        load_flash_record(ws, req.flash_record_id).to_dict()
        if req.flash_record_id is not None
        else None
    )
    return json.dumps(doc, default=str)
