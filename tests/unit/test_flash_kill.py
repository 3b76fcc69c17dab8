"""Nothing lost on a kill (issue 14): a real `fota-studio flash --simulate` process SIGKILLed at
~70 % leaves a flash record that the next workspace open marks "interrupted", with the partial
BLF bus log kept as a blob (it streamed into the workspace, not the temp folder), and `records
list` / `records show --flash` show it. Before: no record at all, a partial BLF in /tmp."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import can
import pytest

from fota_studio.cli import main
from fota_studio.engine.records import list_flash_records, load_buslog, load_flash_record
from fota_studio.infra.flash_journal import BUSLOG_DIR, RESULT_INTERRUPTED
from fota_studio.infra.workspace import Workspace
from tests.fakes.processes import child_env, sigkill_at_percent
from tests.helpers.cli import cli_command

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")


def _flash(workspace_dir: Path) -> list[str]:
    return ["--workspace", str(workspace_dir), "flash", "--machine", "Unit #1001", "--ecu", "VCU"]


def kill_flash_at(workspace_dir: Path, fraction_pct: float, *, version: str = "3.2.0") -> float:
    """Run `flash --simulate` in a child process and SIGKILL it once its progress bar passes
    `fraction_pct`; return the percentage it had reached."""
    with tempfile.TemporaryDirectory(prefix="fota-kill-tmp-") as tmp:
        env = child_env(TMPDIR=tmp)
        proc = subprocess.Popen(
            cli_command(*_flash(workspace_dir), "--version", version, "--simulate"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        reached = sigkill_at_percent(proc, fraction_pct)
        # Nothing of the job was left in the temp folder.
        assert not any(Path(tmp).iterdir()), list(Path(tmp).iterdir())
    return reached


def test_flash_killed_at_70_percent_leaves_an_interrupted_record_with_its_bus_log(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(workspace_dir) as ws:
        from fota_studio.demo.seed import ensure_demo

        ensure_demo(ws)
    reached = kill_flash_at(workspace_dir, 70.0)
    assert 70.0 <= reached < 100.0
    partial = list((workspace_dir / BUSLOG_DIR).glob("*.blf"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # it streamed into the workspace

    with Workspace.open(workspace_dir) as ws:  # the next open marks it
        rows = list_flash_records(ws)
        assert len(rows) == 1 and rows[0].result == RESULT_INTERRUPTED
        rec = load_flash_record(ws, rows[0].id)
        assert rec.result == RESULT_INTERRUPTED and "interrupted" in rec.error
        assert rec.ecu == "VCU" and rec.version == "3.2.0"
        blf = load_buslog(ws, rec)
        assert blf is not None and ws.blobs.verify(rec.buslog_sha256 or "")
        assert rec.buslog_frames > 1000  # the frames up to ~70 % are kept
        # The job logged its TransferData payload by reference (issue 21); its journal let the
        # recovery put the payload back, so the kept log is whole on its own.
        assert "payload was restored from the image" in rec.error, rec.error
        assert not rec.buslog_elided
    assert not any((workspace_dir / BUSLOG_DIR).iterdir())
    blob = workspace_dir / "blobs" / rec.buslog_sha256[:2] / rec.buslog_sha256[2:]  # type: ignore[index]
    with can.BLFReader(str(blob)) as reader:
        assert sum(1 for _ in reader) == rec.buslog_frames

    capsys.readouterr()
    assert main(["--workspace", str(workspace_dir), "records", "list"]) == 0
    out = capsys.readouterr().out
    assert "interrupted" in out and rec.buslog_sha256[:12] in out  # type: ignore[index]
    show = ["--workspace", str(workspace_dir), "records", "show", "--flash", str(rows[0].id)]
    assert main(show) == 0
    out = capsys.readouterr().out
    assert "result interrupted" in out and f"{rec.buslog_frames} frames" in out

    # The ECU is free again: the next flash runs and verifies.
    again = [*_flash(workspace_dir), "--version", "3.2.0", "--simulate", "--no-progress"]
    assert main(again) == 0


def test_request_run_killed_mid_flash_keeps_an_interrupted_flash_record(
    workspace_dir: Path, tmp_path: Path
) -> None:
    """A request run streams its flash's bus log into the workspace too (before: /tmp)."""
    from fota_studio.infra.requests_store import RequestsStore
    from tests.fakes.workflow import start_killable_run

    rid, child = start_killable_run(workspace_dir, tmp_path, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in (workspace_dir / BUSLOG_DIR).glob("*.blf")):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(10)
    with Workspace.open(workspace_dir) as ws:
        rows = list_flash_records(ws)
        assert [r.result for r in rows] == [RESULT_INTERRUPTED]
        assert rows[0].buslog_sha256 and ws.blobs.verify(rows[0].buslog_sha256)
        marked = RequestsStore(ws).recover_interrupted()
        assert [r.id for r in marked] == [rid]
