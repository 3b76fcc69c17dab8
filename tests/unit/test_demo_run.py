"""The one demo scenario (`demo.run.run_demo`): the demo's own pinned versions, a fresh
simulated machine per run (a second run is again an upgrade, never a downgrade), and the
layering that keeps the simulator out of the engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fota_studio.core import firmware
from fota_studio.core.errors import ConfigurationError
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.core.update_request import RequestStatus
from fota_studio.demo.catalog import (
    APP_REGION_START,
    DEMO_MACHINES,
    DEMO_REPOSITORIES,
    app_header,
)
from fota_studio.demo.run import DemoScript, demo_target, reset_demo_machine, run_demo
from fota_studio.demo.seed import ensure_demo
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace

VCU = DEMO_REPOSITORIES[0]


def _installed(ws: Workspace) -> str | None:
    return EaStore(ws).get_machine(DEMO_MACHINES[0]).installed.get("VCU")


def test_second_run_is_again_an_upgrade(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        first = run_demo(ws)
        assert first.request.status is RequestStatus.SUCCESSFUL, first.request.error
        assert _installed(ws) == VCU.demo_version
        second = run_demo(ws)
        req = second.request
        assert req.status is RequestStatus.SUCCESSFUL, req.error
        # Before the fix the second run offered 3.2.1 -> 3.2.0 (a downgrade).
        assert (req.installed_before, req.version) == (VCU.installed_version, VCU.demo_version)
        assert second.memory_before == first.memory_before  # a fresh machine, same start image
        assert second.memory_after == first.memory_after
        history = EaStore(ws).get_machine(DEMO_MACHINES[0]).history
        assert any(h.source == "demo reset" and h.version == VCU.installed_version for h in history)


def test_demo_offers_its_pinned_version_after_an_import(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
        # A test import of a newer VCU version (before the fix the demo offered it).
        body = app_header("9.9.9") + bytes(range(256)) * 4
        image = FirmwareImage((Segment(APP_REGION_START, body),))
        RepositoryStore(ws).import_bytes(
            VCU.brand, VCU.model, "9.9.9", firmware.to_hex(image), source_name="test.hex"
        )
        target = demo_target(ws)
        assert (target.from_version, target.to_version) == (VCU.installed_version, "3.2.1")
        outcome = run_demo(ws, script=DemoScript(approve=False))
        assert outcome.request.version == VCU.demo_version
        assert outcome.request.status is RequestStatus.CANCELLED
        assert outcome.memory_after == outcome.memory_before


def test_reset_puts_the_catalog_version_back(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
        target = demo_target(ws)
        EaStore(ws).set_installed(target.machine, target.ecu, "3.2.0", "test")
        assert reset_demo_machine(ws, target) is True
        assert _installed(ws) == VCU.installed_version
        assert reset_demo_machine(ws, target) is False


def test_demo_needs_its_versions(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
        with ws.transaction() as cur:
            cur.execute("DELETE FROM versions WHERE version = ?", (VCU.demo_version,))
        with pytest.raises(ConfigurationError, match=r"3\.2\.1 of TTControl"):
            demo_target(ws)
        assert RequestsStore(ws).list() == []


def test_engine_never_imports_the_simulator() -> None:
    code = (
        "import sys, importlib, pkgutil, fota_studio.engine as e\n"
        "for m in pkgutil.walk_packages(e.__path__, 'fota_studio.engine.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.startswith(('fota_studio.sim', "
        "'fota_studio.demo')))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_request_start_without_interface_runs_on_the_demo_bench(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fota_studio.cli import main
    from fota_studio.engine.workflow import create_request

    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
        ok = create_request(ws, DEMO_MACHINES[0], "VCU", "3.2.0", confirm=True).id
    assert main(["--workspace", str(workspace_dir), "request", "start", str(ok)]) == 0
    assert f"request #{ok}: Successful" in capsys.readouterr().out
    with Workspace.open(workspace_dir) as ws:
        assert _installed(ws) == "3.2.0"
        checks = [e for e in RequestsStore(ws).entries(ok) if e.kind == "checkpoint_2"]
        assert checks and checks[-1].data["oem_verdict"] == "not asked"  # built-in checks only
        rejected = create_request(ws, DEMO_MACHINES[0], "VCU", "3.2.1", confirm=True).id
    args = ["--workspace", str(workspace_dir), "request", "start", str(rejected), "--reject"]
    assert main(args) == 1
    with Workspace.open(workspace_dir) as ws:
        assert RequestsStore(ws).get(rejected).status is RequestStatus.CANCELLED
        assert _installed(ws) == "3.2.0"
