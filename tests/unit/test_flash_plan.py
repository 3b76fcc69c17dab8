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
from reliability import harness


def _conn(name: str) -> Connection:
    return harness.fast_ecu(name).connection


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
    assert make_plan(harness.fast_ecu(), [(0, 0x800)], ecu_block_size=0).wire_time_s < (
        make_plan(harness.fast_ecu(), [(0, 0x800)]).wire_time_s
    )


def test_frame_wire_time_matches_can_timing() -> None:
    conn = _conn("VCU")
    nominal, data = frame_bits(8, extended_id=False)
    assert frame_wire_s(8, conn) == pytest.approx((nominal + data) / conn.bitrate_bps)


@pytest.mark.parametrize("ecu_name", ["VCU", "BCU"])
def test_plan_wire_time_matches_the_paced_bus(
    ecu_name: str, can_channel: str, tmp_path: Path
) -> None:
    ecu = harness.fast_ecu(ecu_name)
    conn = ecu.connection
    # Three blocks on classic CAN (0x400, 0x400, a short last one), one or two on FD.
    image = harness.make_image(harness.TARGET_VERSION, (0x9A3,))
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

    initial = [(s.address, s.data) for s in harness.make_image("0.9.0", (0x800,)).segments]
    try:
        sim = SimEcu(
            ecu,
            ecu_bus,
            ecu_notifier,
            state_dir=tmp_path / "sim",
            options=harness.fast_options(),
            initial_image=initial,
        )
        sim.start()
        try:
            session = FlashSession(
                ecu=ecu,
                bus=tester_bus,
                notifier=tester_notifier,
                expected_version=harness.TARGET_VERSION,
                boot_wait_s=harness.BOOT_WAIT_S,
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
