"""Quiet by default (issue 15): the app's TCU node transmits only while someone holds it —
no boot-up or heartbeat when a channel opens, boot-up and heartbeat while held, silence again
after the last holder let go."""

from __future__ import annotations

import threading
import time

import can
import pytest

from fota_studio.core.errors import ConfigurationError
from fota_studio.engine.engine import Engine
from fota_studio.engine.tcu_lease import TcuOnDemand
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.fota_objects import DEFAULT_NODE_ID

NMT_EC = 0x700 + DEFAULT_NODE_ID
HEARTBEAT_S = 1.0


def _frames_from_tcu(rx: can.BusABC, seconds: float) -> list[can.Message]:
    out, end = [], time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        msg = rx.recv(left)
        if msg is not None and msg.arbitration_id in (NMT_EC, 0x180 + DEFAULT_NODE_ID):
            out.append(msg)
    return out


def test_the_tcu_sends_nothing_until_held_and_stops_after_release(can_channel: str) -> None:
    engine = Engine()
    rx = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        engine.open_channel("CAN1", BusSettings(interface="virtual", channel=can_channel))
        lease = TcuOnDemand(lambda: engine.bus_of("CAN1"))
        seen: list[bool] = []
        lease.add_listener(seen.append)
        assert _frames_from_tcu(rx, HEARTBEAT_S * 1.3) == []  # a channel alone is silent
        node = lease.acquire("bench")
        assert lease.running and lease.node is node and lease.held_by("bench")
        frames = _frames_from_tcu(rx, HEARTBEAT_S * 1.3)
        assert any(m.arbitration_id == NMT_EC and bytes(m.data) == b"\x00" for m in frames)
        assert any(m.arbitration_id == NMT_EC and bytes(m.data) == b"\x05" for m in frames)
        assert lease.acquire("update request") is node  # a second holder shares the node
        lease.release("bench")
        assert lease.running  # still held by the request
        lease.release("update request")
        assert not lease.running and lease.holders() == {}
        assert _frames_from_tcu(rx, HEARTBEAT_S * 1.3) == []
        assert seen == [True, False]
        lease.release("update request")  # one release too many: ignored
    finally:
        rx.shutdown()
        engine.shutdown()


def test_release_later_and_stop(can_channel: str) -> None:
    engine = Engine()
    try:
        engine.open_channel("CAN1", BusSettings(interface="virtual", channel=can_channel))
        lease = TcuOnDemand(lambda: engine.bus_of("CAN1"))
        lease.acquire("update request")
        done = threading.Event()
        lease.add_listener(lambda running: done.set() if not running else None)
        lease.release_later("update request", 0.1)
        assert lease.running  # the HMI may still read the final status
        assert done.wait(5)
        assert not lease.running
        lease.acquire("bench")
        lease.release_later("bench", 60)
        lease.stop()  # cancels the pending release, stops the node
        assert not lease.running
    finally:
        engine.shutdown()


def test_no_channel_no_tcu() -> None:
    lease = TcuOnDemand(lambda: None)
    with pytest.raises(ConfigurationError, match="no CAN channel is open"):
        lease.acquire("bench")
    assert lease.holders() == {}
