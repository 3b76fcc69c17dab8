"""The bus timing model: frame wire times and a paced virtual bus that takes that long."""

from __future__ import annotations

import threading
import time
import uuid

import can
import pytest

from fota_studio.core.can_timing import fd_payload_length, frame_bits, wire_time_s
from fota_studio.sim.paced_bus import PacedVirtualBus, wire_statistics


def _msg(n: int, *, ext: bool = False, fd: bool = False, brs: bool = False) -> can.Message:
    return can.Message(
        arbitration_id=0x18DA11F1 if ext else 0x7E0,
        is_extended_id=ext,
        is_fd=fd,
        bitrate_switch=brs,
        data=bytes(n),
    )


def test_classic_frame_bits() -> None:
    # 8-byte base frame: 98 stuffable bits, 24 worst-case stuff bits, 10 tail bits + 3 IFS.
    assert frame_bits(8, extended_id=False) == (135, 0)
    assert wire_time_s(_msg(8), 500_000) == pytest.approx(135 / 500_000)
    assert wire_time_s(_msg(8, ext=True), 500_000) > wire_time_s(_msg(8), 500_000)
    assert wire_time_s(_msg(0), 250_000) == pytest.approx(
        frame_bits(0, extended_id=False)[0] / 250e3
    )


def test_fd_frame_uses_the_data_bitrate() -> None:
    assert fd_payload_length(9) == 12 and fd_payload_length(64) == 64
    with pytest.raises(ValueError):
        fd_payload_length(65)
    nominal, data = frame_bits(64, extended_id=False, fd=True)
    assert wire_time_s(_msg(64, fd=True, brs=True), 500_000, 2_000_000) == pytest.approx(
        nominal / 500_000 + data / 2_000_000
    )
    assert wire_time_s(_msg(64, fd=True), 500_000, 2_000_000) == pytest.approx(
        (nominal + data) / 500_000
    )
    # A 64-byte FD frame at 500k/2M takes ~0.4 ms: far less than 8 classic frames (~2.2 ms).
    assert wire_time_s(_msg(64, fd=True, brs=True), 500_000, 2_000_000) < 0.00045


def test_1000_classic_frames_take_their_wire_time() -> None:
    channel = f"paced-{uuid.uuid4().hex[:8]}"
    tx = PacedVirtualBus(channel=channel, bitrate=500_000)
    rx = can.Bus(interface="virtual", channel=channel, ignore_config=True)
    try:
        msg = _msg(8)
        expected = 1000 * wire_time_s(msg, 500_000)
        received = 0
        t0 = time.perf_counter()
        for _ in range(1000):
            tx.send(msg)
            while rx.recv(0) is not None:
                received += 1
        while received < 1000 and rx.recv(1.0) is not None:
            received += 1
        elapsed = time.perf_counter() - t0
        assert received == 1000
        # Never faster than the wire (the behaviour under test); the upper bound only catches
        # a pacing that sleeps far too long (a loaded machine adds delay, never removes it).
        assert 0.95 * expected <= elapsed < 3 * expected, (elapsed, expected)
        assert wire_statistics(channel)[0] == 1000
    finally:
        tx.shutdown()
        rx.shutdown()


def test_senders_share_one_wire() -> None:
    channel = f"paced-{uuid.uuid4().hex[:8]}"
    buses = [PacedVirtualBus(channel=channel, bitrate=500_000) for _ in range(2)]
    msg = _msg(8)
    try:
        rx = can.Bus(interface="virtual", channel=channel, ignore_config=True)
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=lambda b=b: [b.send(msg) for _ in range(200)]) for b in buses
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = 0
        while got < 400 and rx.recv(1.0) is not None:
            got += 1
        elapsed = time.perf_counter() - t0
        rx.shutdown()
        assert got == 400
        assert elapsed >= 0.95 * 400 * wire_time_s(msg, 500_000)
        frames, busy = wire_statistics(channel)
        assert frames == 400 and busy == pytest.approx(400 * wire_time_s(msg, 500_000))
    finally:
        for b in buses:
            b.shutdown()


def test_receives_and_filters() -> None:
    channel = f"paced-{uuid.uuid4().hex[:8]}"
    a = PacedVirtualBus(channel=channel, bitrate=1_000_000)
    b = PacedVirtualBus(
        channel=channel, bitrate=1_000_000, can_filters=[{"can_id": 0x7E0, "can_mask": 0x7FF}]
    )
    try:
        a.send(_msg(2))
        a.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01"))
        got = b.recv(0.5)
        assert got is not None and got.arbitration_id == 0x7E0
        assert b.recv(0.05) is None
    finally:
        a.shutdown()
        b.shutdown()
        b.shutdown()  # idempotent
    with pytest.raises(can.CanOperationError):
        a.send(_msg(1))


def test_python_can_interface_name() -> None:
    if "fota_sim" not in can.interfaces.BACKENDS:
        pytest.skip("entry point fota_sim not registered: run `pip install -e .`")
    bus = can.Bus(interface="fota_sim", channel=f"paced-{uuid.uuid4().hex[:8]}", bitrate=500_000)
    try:
        assert isinstance(bus, PacedVirtualBus)
    finally:
        bus.shutdown()
