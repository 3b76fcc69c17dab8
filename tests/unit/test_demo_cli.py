"""`fota-studio demo --headless`: exit 0 on a fresh workspace; `--reject` exits non-zero and
leaves the ECU memory unchanged; `--fail-verification` ends Failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.cli import main
from fota_studio.cli.demo import demo_outcome
from fota_studio.core.update_request import RequestStatus
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace


def test_headless_demo_fresh_workspace(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--headless", "--workspace", str(workspace_dir)]) == 0
    out = capsys.readouterr().out
    for step in ("verify_package", "checkpoint_1", "flash", "checkpoint_2", "Successful"):
        assert step in out
    with Workspace.open(workspace_dir) as ws:
        assert RequestsStore(ws).list()[-1].status is RequestStatus.SUCCESSFUL


def test_headless_demo_reject(workspace_dir: Path) -> None:
    assert main(["--workspace", str(workspace_dir), "demo", "--headless", "--reject"]) == 1
    with Workspace.open(workspace_dir) as ws:
        outcome = demo_outcome(ws, reject=True, out=lambda _s: None)
    assert outcome.request.status is RequestStatus.CANCELLED
    assert outcome.memory_after == outcome.memory_before


def test_headless_demo_fail_verification(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        outcome = demo_outcome(ws, fail_verification=True, out=lambda _s: None)
    assert outcome.request.status is RequestStatus.FAILED
    assert outcome.request.outcome == "verification_failed"
