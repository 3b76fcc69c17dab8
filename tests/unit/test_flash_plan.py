"""The flash plan's wire-time estimate (core/flash_plan.py), frame by frame: short last
consecutive frames, 3-byte CAN FD flow controls, the TransferData response as one single frame,
the flow-control count from the block size the ECU offers — and the whole estimate against the
busy time the paced bus (sim/paced_bus.py) measures for a real simulated transfer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import can
import pytest

from fota_studio.core.can_timing import frame_bits
from fota_studio.core.ea import Connection
from fota_studio.core.events import EngineEvent, StepFinished, StepStarted
from fota_studio.core.flash_plan import (
    FlashPlan,
    MeasuredFlash,
    ecu_frame_bytes,
    frame_wire_s,
    isotp_frames,
    make_plan,
    message_frame_bytes,
    message_wire_s,
    response_wire_s,
)
from fota_studio.engine.flash_job import FlashSession, flash_ecu
from fota_studio.sim.paced_bus import PacedVirtualBus, wire_statistics
from fota_studio.sim.uds_ecu import SimEcu
from tests.fakes import sim_rig


def _conn(name: str) -> Connection:
    return sim_rig.fast_ecu(name).connection


def test_last_consecutive_frame_is_short_without_padding() -> None:
    conn = replace(_conn("VCU"), padding_byte=None)
    # 20 bytes: FF carries 6, CF1 7, CF2 the last 7 -> 8 + 8 + 8; 17 bytes: last CF 1+4 = 5.
    assert message_frame_bytes(20, conn) == [8, 8, 8]
    assert message_frame_bytes(17, conn) == [8, 8, 5]
    assert message_frame_bytes(7, conn) == [8]


def test_classic_single_frame_response_padded_to_eight() -> None:
    conn = _conn("VCU")
    assert conn.padding_byte is not None
    frames, seconds = response_wire_s(2, conn)
    assert frames == 1
    assert seconds == pytest.approx(frame_wire_s(8, conn))


def test_fd_flow_control_and_response_are_three_bytes() -> None:
    conn = _conn("BCU")
    assert conn.fd
    assert ecu_frame_bytes(3, conn) == 3
    frames, seconds = response_wire_s(2, conn)
    assert frames == 1 and seconds == pytest.approx(frame_wire_s(3, conn))
    # 200 bytes: FF carries 62, two CFs 63 each, the last CF 12 + PCI = 13 -> padded to 16.
    sizes = message_frame_bytes(200, conn)
    assert sizes == [64, 64, 64, 13]
    n, wire = message_wire_s(200, conn, block_size=0)
    expected = 3 * frame_wire_s(64, conn) + frame_wire_s(16, conn) + frame_wire_s(3, conn)
    assert n == 5
    assert wire == pytest.approx(expected)


def test_flow_control_count_follows_the_ecus_block_size() -> None:
    conn = _conn("VCU")
    # 1026 bytes -> 146 CFs: BS 8 -> 19 flow controls, BS 0 -> 1, BS 32 -> 5.
    assert isotp_frames(1026, conn) == (147, 19)
    assert isotp_frames(1026, conn, block_size=0) == (147, 1)
    assert isotp_frames(1026, conn, block_size=32) == (147, 5)
    assert make_plan(sim_rig.fast_ecu(), [(0, 0x800)], ecu_block_size=0).wire_time_s < (
        make_plan(sim_rig.fast_ecu(), [(0, 0x800)]).wire_time_s
    )


def test_frame_wire_time_matches_can_timing() -> None:
    conn = _conn("VCU")
    nominal, data = frame_bits(8, extended_id=False)
    assert frame_wire_s(8, conn) == pytest.approx((nominal + data) / conn.bitrate_bps)


@pytest.mark.parametrize("ecu_name", ["VCU", "BCU"])
def test_plan_wire_time_matches_the_paced_bus(
    ecu_name: str, can_channel: str, tmp_path: Path
) -> None:
    ecu = sim_rig.fast_ecu(ecu_name)
    conn = ecu.connection
    # Three blocks on classic CAN (0x400, 0x400, a short last one), one or two on FD.
    image = sim_rig.make_image(sim_rig.TARGET_VERSION, (0x9A3,))
    kw = {"bitrate": conn.bitrate_bps, "data_bitrate": conn.data_bitrate_bps, "fd": conn.fd}
    ecu_bus = PacedVirtualBus(can_channel, **kw)
    tester_bus = PacedVirtualBus(can_channel, **kw)
    ecu_notifier = can.Notifier(ecu_bus, [], timeout=0.05)
    tester_notifier = can.Notifier(tester_bus, [], timeout=0.05)
    busy: dict[str, float] = {}

    def report(event: EngineEvent) -> None:
        # Runs on the job's thread, synchronously: the wire counters at the step's edges.
        if isinstance(event, StepStarted | StepFinished) and event.step == "transfer_data":
            busy[type(event).__name__] = wire_statistics(can_channel)[1]

    initial = [(s.address, s.data) for s in sim_rig.make_image("0.9.0", (0x800,)).segments]
    try:
        sim = SimEcu(
            ecu,
            ecu_bus,
            ecu_notifier,
            state_dir=tmp_path / "sim",
            options=sim_rig.fast_options(),
            initial_image=initial,
        )
        sim.start()
        try:
            session = FlashSession(
                ecu=ecu,
                bus=tester_bus,
                notifier=tester_notifier,
                expected_version=sim_rig.TARGET_VERSION,
                boot_wait_s=sim_rig.BOOT_WAIT_S,
            )
            result = flash_ecu(session, image, report)
        finally:
            sim.close()
    finally:
        tester_notifier.stop(timeout=0.1)
        ecu_notifier.stop(timeout=0.1)
        tester_bus.shutdown()
        ecu_bus.shutdown()
    assert result.ok, result.error
    measured = busy["StepFinished"] - busy["StepStarted"]
    seg = result.record.segments[0]
    plan = make_plan(ecu, [(seg.address, seg.length)], max_block_length=seg.max_block_length)
    assert plan.segments[0].blocks == seg.blocks
    estimate = plan.segments[0].wire_s
    assert estimate == pytest.approx(measured, rel=0.03), (estimate, measured)


# -- issue 13: estimates from the EA's timing facts and from measured flashes ---------------


def _steps(plan: FlashPlan, name: str) -> list[float]:
    return [s.estimated_s for s in plan.steps if s.step == name]


def test_erase_estimate_uses_timing_facts_and_the_erase_ranges() -> None:
    ecu = sim_rig.fast_ecu("VCU")
    region = ecu.uds.memory_regions[0]
    sector = region.erase_sector_bytes
    ecu.uds.timing.erase_ms_per_kib = 0.0
    ecu.uds.timing.erase_ms_per_sector = 1000.0
    segs = [(region.start, 0x100), (region.start + 4 * sector, 0x100)]
    # per segment (no erase plan given): two erases of one sector each
    plan = make_plan(ecu, segs)
    assert plan.erase_count == 2
    assert sum(_steps(plan, "erase")) == pytest.approx(2.0, abs=0.05)
    # the erase policy's plan: one erase of 5 sectors before the first segment
    plan = make_plan(ecu, segs, erase_ranges=[[(region.start, 5 * sector)], []])
    assert plan.erase_count == 1 and plan.erase_bytes == 5 * sector
    assert sum(_steps(plan, "erase")) == pytest.approx(5.0, abs=0.05)
    assert "1 erase(s) covering" in plan.to_text()


def test_transfer_estimate_adds_programming_time_and_stmin() -> None:
    ecu = sim_rig.fast_ecu("VCU")
    base = sum(_steps(make_plan(ecu, [(0x1_0000, 0x4000)]), "transfer_data"))
    ecu.uds.timing.programming_ms_per_kib = 10.0
    slower = sum(_steps(make_plan(ecu, [(0x1_0000, 0x4000)]), "transfer_data"))
    assert slower - base == pytest.approx(16 * 0.010, rel=0.01)
    ecu.uds.timing.ecu_max_block_length = 258  # 256 data bytes per block
    ecu.uds.timing.ecu_stmin_ms = 5
    plan = make_plan(ecu, [(0x1_0000, 0x4000)])
    assert plan.block_payload_bytes == 256 and plan.segments[0].blocks == 64
    # 256 + 2 bytes: FF + 36 CFs, BS 8 -> 5 flow controls: 31 paced gaps of ~5 ms per block
    assert sum(_steps(plan, "transfer_data")) > 64 * 31 * 0.0045


def test_reset_time_and_entry_delay_are_in_the_estimate() -> None:
    ecu = sim_rig.fast_ecu("VCU")
    ecu.uds.timing.reset_time_ms = 3000
    plan = make_plan(ecu, [(0x1_0000, 0x100)])
    (start,) = _steps(plan, "application_start")
    assert start == pytest.approx(3.0, abs=0.05)
    assert ecu.connection.bootloader_entry is not None
    ecu.connection.bootloader_entry_delay_ms = 700
    (entry,) = _steps(make_plan(ecu, [(0x1_0000, 0x100)]), "bootloader_entry")
    assert entry == pytest.approx(0.7)


def test_measured_flashes_replace_the_ea_estimate() -> None:
    ecu = sim_rig.fast_ecu("VCU")
    measured = [
        MeasuredFlash(
            bytes_total=0x8000,
            step_s={"transfer_data": (8.0, 2), "erase": (3.0, 1), "check": (0.7, 1)},
            erase_bytes=0x8000,
        ),
        MeasuredFlash(
            bytes_total=0x4000,
            step_s={"transfer_data": (4.4, 1), "erase": (1.6, 1), "check": (0.9, 1)},
            erase_bytes=0x4000,
        ),
    ]
    plan = make_plan(
        ecu, [(0x1_0000, 0x10000)], erase_ranges=[[(0x1_0000, 0x10000)]], measured=measured
    )
    # median of the per-byte rates (8.0 / 32 KiB, 4.4 / 16 KiB) times 64 KiB
    assert sum(_steps(plan, "transfer_data")) == pytest.approx((0.25 + 0.275) / 2 * 64)
    assert sum(_steps(plan, "erase")) == pytest.approx((3.0 / 32 + 1.6 / 16) / 2 * 64)
    assert _steps(plan, "check") == [pytest.approx(0.8)]
    assert plan.measured_flashes == 2 and "measured step times of 2" in plan.to_text()
