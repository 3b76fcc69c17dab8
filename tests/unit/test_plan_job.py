"""`Engine.submit_plan` (issue 18 §4): several ECUs in ONE engine job — on one channel
interleaved, on several channels in parallel while the plan holds every channel it uses — with
what `submit_flash` gives each ECU (refusal when locked or a request is open, its lock, its
workspace record and bus log), its own job id and events, and cancel that ends every ECU."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fota_studio.core import events as ev
from fota_studio.core.ea import EcuDefinition
from fota_studio.core.flash_record import PLAN_CANCELLED, PLAN_SKIPPED, PLAN_VERIFIED
from fota_studio.core.update_request import RequestStateError
from fota_studio.engine.engine import Engine, JobContext, PlanHandle, PlanItem
from fota_studio.engine.flash_job import FlashResult
from fota_studio.engine.flash_plan_run import PLAN_RUNNING, MachineFlashResult, PlanEcuState
from fota_studio.engine.records import list_flash_records
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.locks import EcuLock, EcuLockedError
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings
from fota_studio.sim.uds_ecu import SimEcu
from tests.fakes.flash import fast_ecu, fast_sim_options, make_image, memory_matches, sim_ecu
from tests.fakes.sim_rig import new_channel
from tests.helpers.waiting import poll_until

VERSION = "8.0.0"
MACHINE = "X200-7"
IMAGE = make_image(VERSION, (0x1800, 0x900))


def of(events: list[ev.EngineEvent], job_id: int) -> list[ev.EngineEvent]:
    """The events of one job (the sink is `events.append`, called from the engine's threads)."""
    return [e for e in list(events) if e.job_id == job_id]


@dataclass
class Rig:
    """A workspace, an engine with its events, and the simulated ECUs on its channels."""

    ws: Workspace
    engine: Engine
    events: list[ev.EngineEvent]
    sims: dict[str, SimEcu]
    ecus: dict[str, EcuDefinition]


@contextlib.contextmanager
def rig(tmp: Path, channels: dict[str, str]) -> Iterator[Rig]:
    """The demo VCU and HCU (fast timings), each simulated on the virtual bus of its engine
    channel (`channels`: ECU -> channel name; the same name = one shared bus), and a
    workspace with the machine."""
    events: list[ev.EngineEvent] = []
    buses = {ch: new_channel() for ch in set(channels.values())}
    with contextlib.ExitStack() as stack:
        ws = stack.enter_context(Workspace.open(tmp / "ws"))
        EaStore(ws).assign(MACHINE, None)
        ecus: dict[str, EcuDefinition] = {}
        sims: dict[str, SimEcu] = {}
        for name, ch in channels.items():
            ecu = fast_ecu(name)
            ecu.connection.channel = ch
            ecus[name] = ecu
            sims[name] = stack.enter_context(
                sim_ecu(ecu, buses[ch], tmp / name, options=fast_sim_options())
            )
        engine = Engine(events.append)
        stack.callback(engine.shutdown)
        for ch, bus in buses.items():
            engine.open_channel(ch, BusSettings(interface="virtual", channel=bus))
        yield Rig(ws, engine, events, sims, ecus)


def items(ecus: dict[str, EcuDefinition]) -> list[PlanItem]:
    """One plan item per ECU: the first with its image, the others through a loader."""
    return [
        PlanItem(
            ecu,
            None if n else IMAGE,
            loader=(lambda: IMAGE) if n else None,
            version=VERSION,
            expected_version=VERSION,
            boot_wait_s=1.5,
        )
        for n, ecu in enumerate(ecus.values())
    ]


def test_one_job_flashes_two_ecus_of_one_channel_interleaved(tmp_path: Path) -> None:
    with rig(tmp_path, {"VCU": "CAN1", "HCU": "CAN1"}) as r:
        ws, engine, events, sims, ecus = r.ws, r.engine, r.events, r.sims, r.ecus
        plan = engine.submit_plan(items(ecus), machine=MACHINE, workspace=ws, by="test")
        result = plan.result(120)
        assert isinstance(result, MachineFlashResult)
        assert result.ok, {n: str(r.error) for n, r in result.results.items()}
        for name, sim in sims.items():
            assert memory_matches(sim, IMAGE), name
            assert not sim.violations, [str(v) for v in sim.violations]
        rec = result.record
        assert rec.states == {"VCU": PLAN_VERIFIED, "HCU": PLAN_VERIFIED}
        assert rec.channels == {"CAN1": ["VCU", "HCU"]}
        # Interleaved on the one bus: each started before the other ended.
        spans = [(r.started_at, r.finished_at or 0.0) for r in rec.ecus]
        assert max(s for s, _ in spans) < min(e for _, e in spans)
        # Each ECU: its own job id, its queued / started / progress / finished events, its
        # handle's FlashResult, its record with its bus log in the workspace, its installed
        # version on the machine, and its lock free again.
        stored = {r.ecu: r for r in list_flash_records(ws, limit=10)}
        assert set(stored) == {"VCU", "HCU"}
        for name, h in plan.ecus.items():
            assert h.job_id not in (plan.job_id,) and h.channel == "CAN1"
            mine = of(events, h.job_id)
            kinds = {type(e) for e in mine}
            assert {
                ev.JobQueued,
                ev.JobStarted,
                ev.Progress,
                ev.JobFinished,
                PlanEcuState,
            } <= kinds, name
            assert ev.JobFailed not in kinds
            own = h.result(1)
            assert isinstance(own, FlashResult) and own.verified
            assert own.record is result.record.record_of(name)
            assert stored[name].buslog_sha256, name
            assert not EcuLock(ws.root, MACHINE, name).peek()
        installed = EaStore(ws).get_machine(MACHINE).installed
        assert installed.get("VCU") == installed.get("HCU") == VERSION
        assert isinstance(of(events, plan.job_id)[-1], ev.JobFinished)
        assert not engine.channel_busy("CAN1")


def test_refused_at_once_when_an_ecu_is_locked_or_has_an_open_request(tmp_path: Path) -> None:
    with rig(tmp_path, {"VCU": "CAN1", "HCU": "CAN1"}) as r:
        ws, engine, events, _sims, ecus = r.ws, r.engine, r.events, r.sims, r.ecus
        other = EcuLock(ws.root, MACHINE, "HCU")
        other.acquire("flash HCU 9.9 (another job)")
        try:
            with pytest.raises(EcuLockedError, match="another job"):
                engine.submit_plan(items(ecus), machine=MACHINE, workspace=ws)
        finally:
            other.release()
        # Nothing queued, and the VCU lock taken before the refusal was given back.
        assert not [e for e in events if isinstance(e, ev.JobQueued)]
        assert EcuLock(ws.root, MACHINE, "VCU").peek() is None
        req = RequestsStore(ws).create(
            machine=MACHINE, ecu="VCU", brand="b", model="m", version="9.0"
        )
        with pytest.raises(RequestStateError, match=f"#{req.id}"):
            engine.submit_plan(items(ecus), machine=MACHINE, workspace=ws)
        assert not [e for e in events if isinstance(e, ev.JobQueued)]
        assert EcuLock(ws.root, MACHINE, "HCU").peek() is None


def test_cancel_ends_every_ecu(tmp_path: Path) -> None:
    with rig(tmp_path, {"VCU": "CAN1", "HCU": "CAN2"}) as r:
        ws, engine, events, _sims, ecus = r.ws, r.engine, r.events, r.sims, r.ecus
        plan = engine.submit_plan(items(ecus), machine=MACHINE, workspace=ws)
        ids = {h.job_id for h in plan.ecus.values()}
        assert poll_until(
            lambda: any(
                isinstance(e, ev.Progress) and e.job_id in ids and e.bytes_done for e in events
            ),
            30,
        )
        assert engine.cancel(plan.job_id, "stop the test plan")
        result = plan.result(60)
        assert set(result.record.states.values()) <= {PLAN_CANCELLED, PLAN_SKIPPED}
        assert not result.ok and sorted(result.failed) == ["HCU", "VCU"]
        for h in plan.ecus.values():
            own = h.result(1)
            assert isinstance(own, FlashResult) and own.cancelled
            failed = [e for e in of(events, h.job_id) if isinstance(e, ev.JobFailed)]
            assert len(failed) == 1 and failed[0].cancelled
            assert EcuLock(ws.root, MACHINE, h.description.split()[1]).peek() is None
        assert not engine.channel_busy("CAN1") and not engine.channel_busy("CAN2")


def test_the_plan_holds_every_channel_it_uses_and_a_queued_plan_cancels_cleanly(
    tmp_path: Path,
) -> None:
    with rig(tmp_path, {"VCU": "CAN1", "HCU": "CAN2"}) as r:
        ws, engine, events, _sims, ecus = r.ws, r.engine, r.events, r.sims, r.ecus
        # A job already running on CAN2: the plan (first channel CAN1) waits for it.
        gate = threading.Event()
        blocker = engine.submit("CAN2", "blocker", lambda ctx: gate.wait(30))
        plan = engine.submit_plan(items(ecus), machine=MACHINE, workspace=ws)
        ran_at: list[float] = []

        def later(ctx: JobContext) -> None:
            import time

            ran_at.append(time.time())

        after = engine.submit("CAN2", "after the plan", later)
        assert engine.channel_busy("CAN1") and engine.channel_busy("CAN2")
        gate.set()
        blocker.result(10)
        result = plan.result(120)
        after.result(10)
        assert result.ok, {n: str(r.error) for n, r in result.results.items()}
        # Nothing else ran on CAN2 while the plan flashed there.
        assert ran_at[0] >= max(r.finished_at or 0.0 for r in result.record.ecus)
        # A plan cancelled while it waits in the queue: every ECU skipped, nothing sent.
        gate.clear()
        blocker = engine.submit("CAN1", "blocker", lambda ctx: gate.wait(30))
        queued: PlanHandle = engine.submit_plan(items(ecus), machine=MACHINE, workspace=ws)
        engine.cancel(queued.job_id, "not now")
        gate.set()
        result = queued.result(30)
        assert set(result.record.states.values()) == {PLAN_SKIPPED}
        assert "not now" in result.record.skipped["HCU"]
        for h in queued.ecus.values():
            assert h.result(1).cancelled
        assert not [
            e
            for e in events
            if isinstance(e, PlanEcuState)
            and e.job_id in {h.job_id for h in queued.ecus.values()}
            and e.state == PLAN_RUNNING
        ]
        assert EcuLock(ws.root, MACHINE, "VCU").peek() is None
        assert not engine.channel_busy("CAN2")
