"""An app killed mid-flash (SIGKILL) leaves its request Failed (interrupted) on reopen, with the
step it reached; re-running it (a new attempt, history kept) succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from fota_studio.core.update_request import RequestStatus
from fota_studio.engine.workflow import ApprovalRequested, RequestRun
from fota_studio.infra.requests_store import RequestsStore
from tests.fakes.workflow import Recorder, bench, demo_ws, options, start_killable_run


@pytest.mark.timeout(120)
def test_killed_mid_flash_then_rerun(workspace_dir: Path, tmp_path: Path) -> None:
    rid, child = start_killable_run(workspace_dir, tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "FLASHING"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    rec = Recorder()
    rec.hooks.append(
        lambda e: e.approval.approve("Alice") if isinstance(e, ApprovalRequested) else None
    )
    with demo_ws(workspace_dir) as ws:
        store = RequestsStore(ws)
        assert store.get(rid).status is RequestStatus.IN_PROGRESS  # as the crash left it
        store.recover_interrupted()
        req = store.get(rid)
        assert req.status is RequestStatus.FAILED and req.outcome == "interrupted"
        assert req.step == "flash" and "flash" in req.error
        store.rerun(rid)
        with bench(ws, rec) as b:
            final = RequestRun(ws, b.engine, rid, tcu=b.tcu, options=options()).run()
        assert final.status is RequestStatus.SUCCESSFUL, final.error
        assert final.attempt == 2
        assert {e.attempt for e in store.entries(rid)} == {1, 2}
        assert store.verify_chain() == []
