"""TCU test pieces: two python-can `virtual` bus instances on one channel (the TCU's and its
peer's), a started `TcuNode`, and the update offers the tests make. Main thread of a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import can

from fota_studio.protocols.tcu_node import TcuNode


@contextlib.contextmanager
def bus_pair(channel: str) -> Iterator[tuple[can.BusABC, can.BusABC]]:
    """(the TCU's bus, its peer's bus): two instances on `channel`, shut down on exit."""
    tcu_bus = can.Bus(interface="virtual", channel=channel, ignore_config=True)
    peer_bus = can.Bus(interface="virtual", channel=channel, ignore_config=True)
    try:
        yield tcu_bus, peer_bus
    finally:
        peer_bus.shutdown()
        tcu_bus.shutdown()


@contextlib.contextmanager
def started_tcu(
    bus: can.BusABC, state_file: Path | None, heartbeat_period_ms: int
) -> Iterator[TcuNode]:
    """A started `TcuNode` on `bus` (stopped on exit)."""
    node = TcuNode(bus, heartbeat_period_ms=heartbeat_period_ms, state_file=state_file)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@dataclass(frozen=True)
class TcuOffer:
    """An update offer: `TcuNode.offer_update`'s fields but the request ID."""

    target_ecu: str
    installed_version: str
    offered_version: str
    expected_downtime_s: int

    def make(self, tcu: TcuNode, request_id: int) -> None:
        """Offer it on `tcu` as request `request_id`."""
        tcu.offer_update(request_id=request_id, **asdict(self))
