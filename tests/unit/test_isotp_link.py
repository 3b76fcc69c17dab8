"""ISO-TP and UDS links (protocols/isotp_link.py, protocols/uds_link.py) on real python-can
`virtual` buses: the direct notifier hand-over takes only the frames addressed to its stack
(never our own echoed frames), and the TransferData fast path waits through responsePending
(0x78) with P2* instead of P2."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import can
import isotp
import pytest

from fota_studio.core.ea import AddressingMode, Connection, IsoTpAddress
from fota_studio.core.errors import UdsNegativeResponseError
from fota_studio.core.events import EcuBusy, EngineEvent, StepFinished
from fota_studio.engine.engine import notifier_fanout
from fota_studio.engine.flash_job import flash_ecu
from fota_studio.protocols.isotp_link import (
    DirectNotifierStack,
    IsoTpLink,
    build_address,
    build_params,
    rx_only,
)
from fota_studio.protocols.uds_link import SESSION_LOST_HINT, UdsLink, hint_for_nrc
from fota_studio.sim.faults import Fault, parse_fault
from tests.fakes import sim_rig

RX_ID = 0x7E8
TX_ID = 0x7E0


@pytest.fixture
def stack_on_bus(can_channel: str) -> Iterator[tuple[DirectNotifierStack, can.BusABC]]:
    """A started DirectNotifierStack on a bus that echoes its own frames (is_rx=False)."""
    bus = can.Bus(
        interface="virtual", channel=can_channel, receive_own_messages=True, ignore_config=True
    )
    notifier = can.Notifier(bus, [], timeout=0.05)
    address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=TX_ID, rxid=RX_ID)
    stack = DirectNotifierStack(bus, notifier, address=address, params={"blocking_send": True})
    stack.start()
    try:
        yield stack, bus
    finally:
        stack.stop()
        notifier.stop(timeout=0.1)
        bus.shutdown()


def test_direct_stack_ignores_other_ids_and_own_echoes(
    stack_on_bus: tuple[DirectNotifierStack, can.BusABC], can_channel: str
) -> None:
    stack, own_bus = stack_on_bus
    peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        # Other IDs on the shared bus, and a frame on OUR receive ID sent by our own bus (it
        # comes back as an echo, is_rx=False): none of them is for the stack.
        peer.send(can.Message(arbitration_id=0x7E9, data=b"\x02\x50\x01", is_extended_id=False))
        peer.send(can.Message(arbitration_id=0x123, data=b"\x02\x11\x22", is_extended_id=False))
        own_bus.send(can.Message(arbitration_id=RX_ID, data=b"\x02\x7f\x7f", is_extended_id=False))
        peer.send(can.Message(arbitration_id=RX_ID, data=b"\x02\x50\x02", is_extended_id=False))
        assert stack.recv(block=True, timeout=2.0) == bytearray(b"\x50\x02")
        assert not stack.available()
    finally:
        peer.shutdown()


@pytest.mark.parametrize(
    ("fd", "padding", "id_bits"),
    [(False, 0xAA, 11), (False, None, 11), (False, 0x55, 29), (True, 0xCC, 11), (True, None, 29)],
)
def test_tx_frames_match_the_library_for_every_length(
    can_channel: str, fd: bool, padding: int | None, id_bits: int
) -> None:
    """Our frame builder (one python-can Message per frame) pads and sizes every payload
    exactly as can-isotp's own `_make_tx_msg` does: guards the override against upgrades."""
    ids = IsoTpAddress(request_id=0x18DA10F1 if id_bits == 29 else TX_ID, response_id=RX_ID)
    conn = Connection(
        application=ids,
        bootloader=ids,
        addressing=AddressingMode.NORMAL,
        id_bits=id_bits,
        fd=fd,
        fd_frame_length=64 if fd else 8,
        padding_byte=padding,
    )
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    notifier = can.Notifier(bus, [], timeout=0.05)
    try:
        link = IsoTpLink(bus, notifier, conn, ids)
        plain = isotp.NotifierBasedCanStack(
            bus, notifier, address=build_address(conn, ids), params=build_params(conn)
        )
        # Every ISO-TP frame has a PCI byte and at least one data byte.
        for n in range(2, (64 if fd else 8) + 1):
            data = bytes(range(1, n + 1))
            ours = link.stack._make_tx_msg(0x123, data)
            ref = plain._make_tx_msg(0x123, data)
            assert isinstance(ours, can.Message) and not ours.is_rx
            # can-isotp's dlc is the DLC code, python-can's the byte count of the same frame.
            assert (bytes(ours.data), ours.is_extended_id, ours.is_fd) == (
                bytes(ref.data),
                ref.is_extended_id,
                ref.is_fd,
            ), n
            assert can.util.len2dlc(ours.dlc) == ref.dlc
            assert ours.bitrate_switch == ref.bitrate_switch
    finally:
        notifier.stop(timeout=0.1)
        bus.shutdown()


def test_multi_frame_payloads_arrive_intact(
    stack_on_bus: tuple[DirectNotifierStack, can.BusABC], can_channel: str
) -> None:
    """Payloads served in slices (not byte by byte) reach a plain can-isotp receiver whole,
    from a single frame up to a 4095-byte message."""
    sender, _ = stack_on_bus
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    notifier = can.Notifier(bus, [], timeout=0.05)
    address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=RX_ID, rxid=TX_ID)
    receiver = isotp.NotifierBasedCanStack(bus, notifier, address=address)
    receiver.start()
    try:
        for size in (1, 7, 8, 62, 1026, 4095):
            payload = bytes((i * 7 + size) & 0xFF for i in range(size))
            sender.send(bytearray(payload), send_timeout=5.0)
            assert receiver.recv(block=True, timeout=5.0) == payload, size
    finally:
        receiver.stop()
        notifier.stop(timeout=0.1)
        bus.shutdown()


def test_tx_fanout_skips_rx_only_listeners(can_channel: str) -> None:
    """The engine's Tx fan-out reaches the trace-like listeners, not the ISO-TP stacks, and
    follows listeners added and removed while it is in use."""
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    notifier = can.Notifier(bus, [], timeout=0.05)
    seen: list[str] = []

    @rx_only
    def stack_like(msg: can.Message) -> None:
        seen.append("stack")

    def trace_like(msg: can.Message) -> None:
        assert not msg.is_rx
        seen.append("trace")

    try:
        fanout = notifier_fanout(notifier)
        notifier.add_listener(stack_like)
        fanout(can.Message(arbitration_id=1, data=b"\x01"))
        assert seen == []
        notifier.add_listener(trace_like)
        fanout(can.Message(arbitration_id=1, data=b"\x01"))
        assert seen == ["trace"]
        notifier.remove_listener(trace_like)
        fanout(can.Message(arbitration_id=1, data=b"\x01"))
        assert seen == ["trace"]
    finally:
        notifier.stop(timeout=0.1)
        bus.shutdown()


def test_pending_fault_parses() -> None:
    fault = parse_fault("transfer_data:pending:3")
    assert fault == Fault("transfer_data", "pending", 3)
    assert str(fault) == "transfer_data:pending:3"


def test_transfer_data_waits_through_response_pending(can_channel: str, tmp_path: Path) -> None:
    ecu = sim_rig.fast_ecu()
    # The answer comes 250 ms after the last 0x78: later than P2 (100 ms), within P2* (1 s),
    # so the flash only succeeds when each 0x78 switches the wait to P2*.
    ecu.uds.p2_timeout_ms = 100
    image = sim_rig.make_image(sim_rig.TARGET_VERSION, (0x900,))
    busy: list[str] = []
    steps: list[StepFinished] = []

    def report(event: EngineEvent) -> None:
        if isinstance(event, StepFinished):
            steps.append(event)
        elif isinstance(event, EcuBusy):
            busy.append(event.step)

    opts = sim_rig.fast_options(pending_interval_ms=250)
    with (
        sim_rig.sim_ecu(ecu, can_channel, tmp_path / "sim", options=opts) as sim,
        sim_rig.flash_session(ecu, can_channel, expected_version=sim_rig.TARGET_VERSION) as session,
    ):
        sim.inject(Fault("transfer_data", "pending", 3))
        result = flash_ecu(session, image, report)
        assert sim.faults_fired, "the pending fault never fired"
    assert result.ok, result.error
    assert busy.count("transfer_data") == 3
    assert result.record.block_retries == 0
    exchanges = [e for e in result.record.exchanges if e.step == "transfer_data"]
    assert [e.pending_count for e in exchanges].count(3) == 1


def test_transfer_data_fast_path_raises_the_nrc_after_pending(
    can_channel: str, tmp_path: Path
) -> None:
    """A raw responder: 0x78 twice, then NRC 0x7F — the step, NRC and session hint survive."""
    ecu = sim_rig.fast_ecu()
    conn = ecu.connection
    with sim_rig.tester_bus(can_channel) as (bus, notifier):
        responder_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
        responder_notifier = can.Notifier(responder_bus, [], timeout=0.05)
        address = isotp.Address(
            isotp.AddressingMode.Normal_11bits,
            txid=conn.bootloader.response_id,
            rxid=conn.bootloader.request_id,
        )
        responder = DirectNotifierStack(
            responder_bus, responder_notifier, address=address, params={"tx_padding": 0xAA}
        )
        responder.start()
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                req = responder.recv(block=True, timeout=0.05)
                if req is not None and req[0] == 0x36:
                    for answer in (b"\x7f\x36\x78", b"\x7f\x36\x78", b"\x7f\x36\x7f"):
                        responder.send(answer)

        thread = threading.Thread(target=serve, name="test-responder", daemon=True)
        thread.start()
        pending: list[str] = []
        link = UdsLink(
            IsoTpLink(bus, notifier, conn, conn.bootloader), ecu.uds, on_busy=pending.append
        )
        link.open()
        try:
            with pytest.raises(UdsNegativeResponseError) as info:
                link.transfer_data("transfer_data", 1, bytes(100))
        finally:
            link.close()
            stop.set()
            thread.join(2.0)
            responder.stop()
            responder_notifier.stop(timeout=0.1)
            responder_bus.shutdown()
    assert info.value.nrc == 0x7F and info.value.step == "transfer_data"
    assert info.value.hint == SESSION_LOST_HINT
    assert pending == ["transfer_data", "transfer_data"]


def test_session_lost_hint_only_for_programming_steps() -> None:
    assert hint_for_nrc(0x7F, "transfer_data") == SESSION_LOST_HINT
    assert hint_for_nrc(0x7F, "erase") == SESSION_LOST_HINT
    assert hint_for_nrc(0x7F, "extended_session") != SESSION_LOST_HINT
    assert hint_for_nrc(0x22, "transfer_data") != SESSION_LOST_HINT
