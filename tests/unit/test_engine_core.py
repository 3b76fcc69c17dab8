"""Engine core: per-channel workers, job queue, events, cancel at safe points, clean shutdown."""

from __future__ import annotations

import threading
from pathlib import Path

import can
import pytest

from fota_studio.core.errors import CancelledError
from fota_studio.core.events import (
    EngineEvent,
    JobFailed,
    JobFinished,
    JobQueued,
    JobStarted,
    Progress,
    StepStarted,
)
from fota_studio.engine.cancel import CancelToken
from fota_studio.engine.engine import Engine, JobContext
from fota_studio.engine.flash_job import FlashResult
from fota_studio.engine.progress import ProgressReporter
from fota_studio.engine.records import list_flash_records
from fota_studio.infra.workspace import Workspace
from tests.fakes.flash import fast_ecu, fast_sim, make_image, memory_matches, transfer_first_frames


class _Events:
    def __init__(self) -> None:
        self.items: list[EngineEvent] = []
        self.cond = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        with self.cond:
            self.items.append(event)
            self.cond.notify_all()

    def wait_for(self, pred: object, timeout: float = 20.0) -> EngineEvent:
        assert callable(pred)
        with self.cond:
            found: list[EngineEvent] = []

            def check() -> bool:
                found[:] = [e for e in self.items if pred(e)]
                return bool(found)

            assert self.cond.wait_for(check, timeout), "event not seen"
            return found[0]


def _virtual_engine(events: _Events, channel: str) -> Engine:
    engine = Engine(events)
    from fota_studio.protocols.bus import BusSettings

    engine.open_channel("CAN1", BusSettings(interface="virtual", channel=channel))
    return engine


def test_progress_is_throttled() -> None:
    out: list[Progress] = []
    t = [0.0]
    rep = ProgressReporter(1, 100_000, out.append, clock=lambda: t[0])
    for done in range(0, 100_001, 100):
        t[0] += 0.001
        rep.update(done)
    assert out[0].bytes_done == 0 and out[-1].bytes_done == 100_000
    assert 100 <= len(out) <= 210  # every 0.5 % or 100 ms, not every call (1001 calls)
    assert out[-1].rate_bps > 0


def test_jobs_run_in_order_on_a_named_worker(can_channel: str) -> None:
    events = _Events()
    engine = _virtual_engine(events, can_channel)
    names: list[str] = []

    def job(ctx: JobContext) -> int:
        names.append(threading.current_thread().name)
        return ctx.job_id

    try:
        handles = [engine.submit("CAN1", f"job {i}", job) for i in range(3)]
        assert [h.result(5) for h in handles] == [h.job_id for h in handles]
    finally:
        engine.shutdown()
    assert names == ["fota-bus-CAN1"] * 3
    kinds = [type(e) for e in events.items]
    assert kinds.count(JobQueued) == 3 and kinds.count(JobStarted) == 3
    assert kinds.count(JobFinished) == 3


def test_failing_job_reports_job_failed(can_channel: str) -> None:
    events = _Events()
    engine = _virtual_engine(events, can_channel)

    def job(ctx: JobContext) -> None:
        ctx.cancel.cancel("test")
        ctx.cancel.check("somewhere")

    try:
        h = engine.submit("CAN1", "bad", job)
        with pytest.raises(CancelledError):
            h.result(5)
    finally:
        engine.shutdown()
    failed = [e for e in events.items if isinstance(e, JobFailed)]
    assert failed and "somewhere" in failed[0].error


def test_cancel_token() -> None:
    tok = CancelToken()
    tok.check("x")
    tok.cancel("because")
    tok.cancel("second reason ignored")
    assert tok.cancelled and tok.reason == "because"
    with pytest.raises(CancelledError, match="x: job cancelled"):
        tok.check("x")


def test_flash_through_engine_and_shutdown_leaves_nothing(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu("VCU")
    image = make_image("5.0.0")
    events = _Events()
    with fast_sim(ecu, can_channel, tmp_path) as sim:
        engine = _virtual_engine(events, can_channel)
        bus, _ = engine.bus_of("CAN1")
        try:
            with Workspace.open(tmp_path / "ws") as ws:
                h = engine.submit_flash(
                    "CAN1", ecu, image, expected_version="5.0.0", boot_wait_s=1.5, workspace=ws
                )
                result = h.result(60)
                assert isinstance(result, FlashResult) and result.ok, result
                assert memory_matches(sim, image)
                rows = list_flash_records(ws)
                assert rows[0].result == "success" and rows[0].buslog_sha256
                assert ws.blobs.exists(rows[0].buslog_sha256)
        finally:
            engine.shutdown()
        engine.shutdown()  # idempotent
    assert any(isinstance(e, JobFinished) for e in events.items)
    assert not [t for t in threading.enumerate() if t.name.startswith(("fota-bus", "fota-tp"))]
    with pytest.raises(can.CanOperationError):
        bus.send(can.Message(arbitration_id=1))


SAFE_POINTS = [
    ("step", "security_level_1"),
    ("step", "erase"),
    ("block", 3),
    ("step", "check"),
]


@pytest.mark.parametrize(("kind", "where"), SAFE_POINTS)
def test_cancel_at_safe_points_then_rerun(
    kind: str, where: object, can_channel: str, tmp_path: Path
) -> None:
    ecu = fast_ecu("VCU")
    image = make_image("6.0.0", (0x1000, 0x800))
    events = _Events()
    with fast_sim(ecu, can_channel, tmp_path) as sim:
        engine = _virtual_engine(events, can_channel)
        try:
            holder: dict[str, int] = {}

            def sink(e: EngineEvent) -> None:
                events(e)
                jid = holder.get("id")
                if jid is None:
                    return
                if (kind == "step" and isinstance(e, StepStarted) and e.step == where) or (
                    kind == "block"
                    and isinstance(e, Progress)
                    and e.bytes_done >= 1000 * int(str(where))
                ):
                    engine.cancel(jid)

            engine.set_sink(sink)
            h = engine.submit_flash("CAN1", ecu, image, expected_version="6.0.0", boot_wait_s=1.5)
            holder["id"] = h.job_id
            result = h.result(60)
            assert isinstance(result, FlashResult)
            assert not result.ok and result.cancelled, result.error
            assert result.record.result == "cancelled"
            assert sim.state().mode == "bootloader"
            engine.set_sink(events)
            again = engine.submit_flash(
                "CAN1", ecu, image, expected_version="6.0.0", boot_wait_s=1.5
            ).result(60)
            assert again.ok, again.error
            assert memory_matches(sim, image)
        finally:
            engine.shutdown()
    failed = [e for e in events.items if isinstance(e, JobFailed)]
    assert failed and failed[0].cancelled


@pytest.mark.parametrize("echo", [True, False], ids=["bus-echo", "engine-fanout"])
def test_flash_records_installed_version_and_each_tx_frame_once(
    echo: bool, can_channel: str, tmp_path: Path
) -> None:
    """A verified flash for a machine of the workspace records the version its ECU now runs
    (a failed one does not); the session's bus log has every frame the tester sent once,
    whether the bus echoes them or the engine fans them out."""
    from fota_studio.demo.catalog import DEMO_EA_NAME, demo_architecture
    from fota_studio.engine.records import load_buslog, load_flash_record
    from fota_studio.infra.ea_store import EaStore
    from fota_studio.protocols.bus import BusSettings
    from fota_studio.sim.faults import Fault

    ecu = fast_ecu("VCU")
    image = make_image("5.1.0", (0x1000, 0x800))
    events = _Events()
    engine = Engine(events)
    if echo:
        engine.open_channel("CAN1", BusSettings(interface="virtual", channel=can_channel))
    else:
        own = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
        engine.attach_channel("CAN1", own)
    assert engine.echoes_tx("CAN1") is echo
    try:
        with (
            fast_sim(ecu, can_channel, tmp_path) as sim,
            Workspace.open(tmp_path / "ws") as ws,
        ):
            store = EaStore(ws)
            store.save(demo_architecture())
            store.assign("M1", DEMO_EA_NAME)
            store.set_installed("M1", "VCU", "5.0.0", "manual")
            sim.inject(Fault(step="request_download", kind="nrc", arg=0x70))
            failed = engine.submit_flash(
                "CAN1", ecu, image, machine="M1", version="5.1.0", workspace=ws, boot_wait_s=1.5
            ).result(60)
            assert not failed.ok
            assert store.get_machine("M1").installed["VCU"] == "5.0.0"
            # Flashed but not verified (no expected version): what runs is not known, so the
            # machine's installed version is not changed (it once recorded the requested one).
            unverified = engine.submit_flash(
                "CAN1", ecu, image, machine="M1", version="5.1.0", workspace=ws, boot_wait_s=1.5
            ).result(60)
            assert unverified.ok and not unverified.verified, unverified.error
            assert store.get_machine("M1").installed["VCU"] == "5.0.0"
            handle = engine.submit_flash(
                "CAN1",
                ecu,
                None,
                loader=lambda: image,  # loaded on the worker
                machine="M1",
                version="5.1.0",
                expected_version="5.1.0",
                workspace=ws,
                boot_wait_s=1.5,
            )
            result = handle.result(60)
            assert result.ok, result.error
            machine = store.get_machine("M1")
            assert machine.installed["VCU"] == "5.1.0"
            assert machine.history[-1].source == f"flash job {handle.job_id}"
            row = next(r for r in list_flash_records(ws) if r.result == "success")
            blf = load_buslog(ws, load_flash_record(ws, row.id))
            assert blf is not None
            first_frames = transfer_first_frames(blf, tmp_path)
            blocks = -(-0x1000 // 0x400) + -(-0x800 // 0x400)  # demo VCU: 1 KiB blocks
            assert len(first_frames) == blocks, first_frames
    finally:
        bus, _ = engine.bus_of("CAN1")
        engine.shutdown()
        if not echo:
            bus.shutdown()


def test_submit_flash_needs_an_image_or_a_loader() -> None:
    engine = Engine()
    try:
        with pytest.raises(ValueError, match="exactly one"):
            engine.submit_flash("CAN1", fast_ecu("VCU"), None)
    finally:
        engine.shutdown()
