"""The update-request record says whether the flash was verified (issue 13): the signed
flash_record entry carries `verification`, and the report describes it — never "verified"
when the version was not checked."""

from __future__ import annotations

from pathlib import Path

from fota_studio.core.update_request import RequestStatus
from fota_studio.engine.workflow import ApprovalRequested, RequestRun
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.ui.report import describe_entry
from tests.fakes.workflow import Recorder, bench, demo_ws, new_request, options


def test_flash_entry_records_the_verification(workspace_dir: Path) -> None:
    rec = Recorder()

    def approve(event: object) -> None:
        if isinstance(event, ApprovalRequested):
            event.approval.approve("Alice")

    rec.hooks.append(approve)
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        rid = new_request(ws)
        final = RequestRun(ws, b.engine, rid, tcu=b.tcu, options=options()).run()
        assert final.status is RequestStatus.SUCCESSFUL, final.error
        entry = next(e for e in RequestsStore(ws).entries(rid) if e.kind == "flash_record")
    assert entry.data["verification"] == "verified"
    assert "version verified" in describe_entry(entry)
    entry.data["verification"] = "not_verified"
    text = describe_entry(entry)
    assert "NOT verified" in text and "version verified" not in text
