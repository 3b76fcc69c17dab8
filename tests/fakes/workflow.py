"""Shared helpers for the workflow tests: a demo workspace, the demo bench, a recording sink.

Used by tests/unit/test_workflow*.py, test_flash_kill.py and tests/ui/test_workflow_verification.py.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fota_studio.core.events import EngineEvent
from fota_studio.demo.bench import DemoBench
from fota_studio.demo.seed import ensure_demo
from fota_studio.engine.workflow import WorkflowOptions, create_request
from fota_studio.infra.workspace import Workspace
from tests.fakes.processes import child_env

MACHINE = "Unit #1001"
ECU = "VCU"

#: A script for a child process (argv: workspace folder, request id) that runs the request with
#: a ~20 s erase, prints FLASHING when the flash starts and FINISHED at the end: the process
#: the SIGKILL tests kill mid-flash.
KILLABLE_RUN_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fota_studio.engine.workflow import ApprovalRequested, RequestRun, WorkflowOptions
    from fota_studio.demo.bench import DemoBench
    from fota_studio.engine.workflow import WorkflowStep
    from fota_studio.infra.workspace import Workspace
    from fota_studio.sim.uds_ecu import SimEcuOptions

    def sink(event):
        if isinstance(event, ApprovalRequested):
            event.approval.approve("Alice")
        if isinstance(event, WorkflowStep) and event.step == "flash" and event.state == "started":
            print("FLASHING", flush=True)

    ws = Workspace.open(Path(sys.argv[1]))
    slow = SimEcuOptions(erase_ms_per_kib=200.0, pending_interval_ms=200)  # ~20 s erase
    bench = DemoBench(ws, machine="Unit #1001", ecu="VCU", sink=sink, sim_options=slow).start()
    RequestRun(ws, bench.engine, int(sys.argv[2]), tcu=bench.tcu,
               options=WorkflowOptions(approval_hmi=False)).run()
    print("FINISHED", flush=True)
    """
)


class Recorder:
    """A sink that keeps every event and can run a hook on each (workflow thread)."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self.hooks: list[object] = []
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        with self._lock:
            self.events.append(event)
        for hook in list(self.hooks):
            hook(event)  # type: ignore[operator]

    def of(self, cls: type) -> list[EngineEvent]:
        with self._lock:
            return [e for e in self.events if isinstance(e, cls)]


@contextlib.contextmanager
def demo_ws(root: Path) -> Iterator[Workspace]:
    ws = Workspace.open(root)
    ensure_demo(ws)
    try:
        yield ws
    finally:
        ws.close()


@contextlib.contextmanager
def bench(ws: Workspace, sink: Recorder, **kw: object) -> Iterator[DemoBench]:
    kw.setdefault("client_poll_period_s", 0.2)
    b = DemoBench(ws, machine=MACHINE, ecu=ECU, sink=sink, **kw)  # type: ignore[arg-type]
    b.start()
    try:
        yield b
    finally:
        b.stop()


def new_request(ws: Workspace, version: str = "3.2.0") -> int:
    return create_request(ws, MACHINE, ECU, version, confirm=True, created_by="tester").id


def start_killable_run(
    workspace_dir: Path, folder: Path, **output: Any
) -> tuple[int, subprocess.Popen[str]]:
    """A new request in a demo workspace at `workspace_dir`, and a child process running it
    (KILLABLE_RUN_SCRIPT, written into `folder`); `output`: Popen's stdout/text arguments.
    Returns (request id, the child)."""
    with demo_ws(workspace_dir) as ws:
        rid = new_request(ws)
    script = folder / "child.py"
    script.write_text(KILLABLE_RUN_SCRIPT)
    child = subprocess.Popen(
        [sys.executable, str(script), str(workspace_dir), str(rid)],
        env=child_env(),
        **output,
    )
    return rid, child


def options(**kw: object) -> WorkflowOptions:
    """Local-approval options with short timeouts and no OEM node."""
    base: dict[str, object] = {
        "approval_local": True,
        "approval_hmi": False,
        "approval_timeout_s": 20.0,
        "health_checks": True,
        "oem_verification": False,
        "verification_timeout_s": 10.0,
    }
    base.update(kw)
    return WorkflowOptions(**base)  # type: ignore[arg-type]
