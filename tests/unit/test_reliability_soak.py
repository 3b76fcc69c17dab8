"""CI-sized soak (reliability/soak.py): consecutive updates through the Engine with random
faults while the trace captures — no growth of threads, descriptors or buses, every record
consistent, the workspace intact — and two machines on two channels updated in parallel
without disturbing each other."""

from __future__ import annotations

from pathlib import Path

from fota_studio.core.events import EngineEvent
from fota_studio.engine.engine import Engine
from fota_studio.engine.trace_capture import TraceCapture
from fota_studio.engine.trace_store import FLAG_TX, TraceStore
from fota_studio.protocols.bus import BusSettings
from fota_studio.sim.faults import Fault
from reliability.soak import parallel, soak
from tests.fakes import sim_rig


def test_short_soak_has_no_leaks_and_consistent_records() -> None:
    rep = soak(10, fault_share=0.3, warmup=3, seed=9)
    assert rep.updates == 10
    assert rep.faulted > 0 and rep.failed > 0 and rep.succeeded > 0
    assert rep.inconsistent == []
    assert rep.leaks == []
    assert rep.integrity == "ok"
    assert rep.repo_problems == [] and rep.chain_problems == []
    assert rep.trace_frames > 0 and rep.trace_dropped == 0


def test_two_machines_in_parallel_stay_independent() -> None:
    rep = parallel(Fault("transfer_data", "power_loss", 0x500))
    assert rep.overlapped
    assert rep.workers == {"fota-bus-A", "fota-bus-B"}
    assert not rep.faulty_ok
    assert rep.healthy_ok
    assert rep.healthy_retries == 0


def test_live_trace_shows_the_engines_tx_frames(tmp_path: Path) -> None:
    ecu = sim_rig.fast_ecu()
    channel = sim_rig.new_channel()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    events: list[EngineEvent] = []
    engine = Engine(events.append)
    store = TraceStore(capacity_frames=100_000)
    capture = TraceCapture(store)
    try:
        with sim_rig.sim_ecu(ecu, channel, tmp_path / "sim"):  # type: ignore[operator]
            bus = engine.open_channel("CAN1", BusSettings(interface="virtual", channel=channel))
            sim_rig.traced_flash(engine, capture, bus, ecu, image)
    finally:
        engine.shutdown()
    flags = store.column("flags")
    tx = int(((flags & FLAG_TX) != 0).sum())
    # A flash sends more frames than it receives (TransferData consecutive frames).
    assert tx > len(flags) // 2, f"{tx} Tx frames of {len(flags)} traced"
