"""The FOTA workflow end to end on the simulated machine (no Qt): both checkpoints, every way a
request ends, the TCU objects as an HMI sees them, and the records it leaves."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fota_studio.core.update_request import RequestStateError, RequestStatus, UpdateRequest
from fota_studio.demo.bench import DemoBench
from fota_studio.engine.records import load_buslog, load_flash_record
from fota_studio.engine.workflow import (
    ApprovalRequested,
    ApprovalResolved,
    RequestRun,
    RequestService,
    WorkflowProgress,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols import fota_objects as fo
from fota_studio.sim.hmi import ScriptedHmi
from fota_studio.sim.oem import ScriptedOemLogic
from tests.fakes.flash import transfer_first_frames
from tests.fakes.workflow import ECU, MACHINE, Recorder, bench, demo_ws, new_request, options


def _approve_locally(rec: Recorder, who: str = "Alice") -> None:
    def hook(event: object) -> None:
        if isinstance(event, ApprovalRequested):
            event.approval.approve(who)

    rec.hooks.append(hook)


def test_local_approval_successful(workspace_dir: Path) -> None:
    rec = Recorder()
    _approve_locally(rec)
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        rid = new_request(ws)
        before = b.memory_sha256()
        final = RequestRun(ws, b.engine, rid, tcu=b.tcu, options=options()).run()
        assert final.status is RequestStatus.SUCCESSFUL, final.error
        assert b.sim.ecu(ECU).state().software_version == "3.2.0"
        assert b.memory_sha256() != before
        assert b.tcu.get(fo.UPDATE_STATUS) == fo.STATUS_SUCCESSFUL
        assert b.tcu.get(fo.UPDATE_AVAILABLE) == fo.UPDATE_NONE
        assert "checkpoint_2: ok" in bytes(b.tcu.get(fo.DIAGNOSTIC_LOG)).decode()
        assert EaStore(ws).get_machine(MACHINE).installed[ECU] == "3.2.0"
        store = RequestsStore(ws)
        kinds = [e.kind for e in store.entries(rid)]
        for kind in ("created", "decision", "flash_record", "checkpoint_2", "final"):
            assert kind in kinds
        decision = next(e for e in store.entries(rid) if e.kind == "decision")
        assert decision.data["by"] == "Alice" and decision.data["decision"] == "approved"
        assert final.flash_record_id is not None
        assert store.verify_chain() == []
        history = EaStore(ws).get_machine(MACHINE).history
        assert history[-1].source == f"update request {rid}"
        # The request's bus log has each frame the tester sent once (the demo bench's bus
        # echoes Tx frames: the flash must not also tap them into the log).
        flash_record = load_flash_record(ws, final.flash_record_id)
        blf = load_buslog(ws, flash_record)
        assert blf is not None
        first_frames = transfer_first_frames(blf, workspace_dir)
        # One exchange record may summarise a run of plain blocks (`blocks`, issue 21).
        blocks = sum(e.blocks for e in flash_record.exchanges if e.step == "transfer_data")
        assert len(first_frames) == blocks > 0
    assert rec.of(WorkflowProgress)


def _run_with_hmi_approval(ws: Workspace, b: DemoBench, rid: int) -> UpdateRequest:
    """Run request `rid` on the bench, approved (or not) only on the HMI; the final request."""
    options_hmi = options(approval_local=False, approval_hmi=True)
    return RequestRun(ws, b.engine, rid, tcu=b.tcu, options=options_hmi).run()


def test_hmi_approval_over_canopen(workspace_dir: Path) -> None:
    rec = Recorder()
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        rid = new_request(ws)
        with ScriptedHmi(b.client, delay_s=0.1, once=True) as hmi:
            final = _run_with_hmi_approval(ws, b, rid)
        assert final.status is RequestStatus.SUCCESSFUL, final.error
        offer = hmi.decisions[0].offer
        assert (offer.installed_version, offer.offered_version) == ("3.1.0", "3.2.0")
        assert offer.expected_downtime_s > 0 and offer.request_id == rid
        # 0x5FF3 installed_version follows a successful update (it kept 3.1.0 before).
        assert b.client.read(fo.INSTALLED_VERSION) == "3.2.0"
        resolved = rec.of(ApprovalResolved)[0]
        assert resolved.decision.source == "hmi" and "0x7A" in resolved.decision.by


def test_reject_never_touches_the_ecu(workspace_dir: Path) -> None:
    rec = Recorder()
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        rid = new_request(ws)
        before = b.memory_sha256()
        requests_before = b.sim.ecu(ECU).state().requests
        with ScriptedHmi(b.client, decision=fo.DECISION_REJECT, delay_s=0.1, once=True):
            final = _run_with_hmi_approval(ws, b, rid)
        assert final.status is RequestStatus.CANCELLED and final.outcome == "rejected"
        assert b.tcu.get(fo.UPDATE_STATUS) == fo.STATUS_REJECTED
        assert b.tcu.get(fo.LAST_ERROR) == fo.ERROR_REJECTED
        assert b.memory_sha256() == before
        assert b.sim.ecu(ECU).state().requests == requests_before  # not one UDS request
        assert final.flash_record_id is None


def test_approval_timeout_is_a_rejection(workspace_dir: Path) -> None:
    rec = Recorder()
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        rid = new_request(ws)
        final = RequestRun(
            ws, b.engine, rid, tcu=b.tcu, options=options(approval_timeout_s=0.3)
        ).run()
        assert final.status is RequestStatus.CANCELLED and final.outcome == "approval_timeout"
        assert b.tcu.get(fo.UPDATE_STATUS) == fo.STATUS_APPROVAL_TIMEOUT
        assert b.sim.ecu(ECU).state().software_version == "3.1.0"


def test_checkpoint2_unhealthy_fails(workspace_dir: Path) -> None:
    rec = Recorder()
    _approve_locally(rec)
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        rid = new_request(ws)
        with ScriptedOemLogic(b.client, verdict=fo.VERDICT_UNHEALTHY, delay_s=0.1, once=True):
            final = RequestRun(
                ws, b.engine, rid, tcu=b.tcu, options=options(oem_verification=True)
            ).run()
        assert final.status is RequestStatus.FAILED and final.outcome == "verification_failed"
        assert b.tcu.get(fo.UPDATE_STATUS) == fo.STATUS_FAILED
        assert b.tcu.get(fo.LAST_ERROR) == fo.ERROR_UNHEALTHY
        assert EaStore(ws).get_machine(MACHINE).installed[ECU] == "3.1.0"


def test_checkpoint2_timeout_fails(workspace_dir: Path) -> None:
    rec = Recorder()
    _approve_locally(rec)
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        rid = new_request(ws)
        final = RequestRun(
            ws,
            b.engine,
            rid,
            tcu=b.tcu,
            options=options(health_checks=False, oem_verification=True, verification_timeout_s=0.3),
        ).run()
        assert final.status is RequestStatus.FAILED and final.outcome == "verification_timeout"
        assert b.tcu.get(fo.UPDATE_STATUS) == fo.STATUS_VERIFICATION_TIMEOUT


def test_cancel_before_approval_and_refused_after(workspace_dir: Path) -> None:
    rec = Recorder()
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        service = RequestService(ws, b.engine, tcu=b.tcu, sink=rec)
        asked = threading.Event()
        rec.hooks.append(lambda e: asked.set() if isinstance(e, ApprovalRequested) else None)
        rid = new_request(ws)
        run = service.start(rid, options())
        assert asked.wait(10)
        service.cancel(rid, by="Bob")
        final = run.future.result(timeout=10)
        assert final.status is RequestStatus.CANCELLED and final.outcome == "cancelled"
        assert b.tcu.get(fo.UPDATE_STATUS) == fo.STATUS_CANCELLED
        assert b.sim.ecu(ECU).state().software_version == "3.1.0"

        # A second request: cancel is refused once the operator approved.
        refused: list[Exception] = []
        rid2 = new_request(ws, "3.2.1")

        def hook(event: object) -> None:
            if isinstance(event, ApprovalRequested):
                event.approval.approve("Alice")
            if isinstance(event, ApprovalResolved):
                try:
                    service.cancel(rid2)
                except RequestStateError as exc:
                    refused.append(exc)

        rec.hooks.append(hook)
        run2 = service.start(rid2, options())
        final2 = run2.future.result(timeout=60)
        service.shutdown()
        assert refused and "approved" in str(refused[0])
        assert final2.status is RequestStatus.SUCCESSFUL, final2.error


def test_requests_for_one_ecu_run_in_creation_order(workspace_dir: Path) -> None:
    rec = Recorder()
    with demo_ws(workspace_dir) as ws, bench(ws, rec) as b:
        first = new_request(ws)
        second = new_request(ws, "3.2.1")
        with pytest.raises(RequestStateError, match=f"#{first}"):
            RequestRun(ws, b.engine, second, tcu=b.tcu, options=options()).run()
        assert RequestsStore(ws).get(second).status is RequestStatus.PENDING
