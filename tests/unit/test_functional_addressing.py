"""Functional requests in every ISO-TP addressing mode, two-sided with can-isotp (issue 13
point 4): the tester's functional single frame reaches a can-isotp stack configured — by hand,
from ISO 15765-2 — as the ECU's functional receiver; for extended and mixed addressing it
carries the functional address byte (`Connection.functional_target_address`), not the physical
one; the ECU-side address from `isotp_link.build_address` receives it and answers physically."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import isotp
import pytest

from fota_studio.core.ea import AddressingMode, Connection, IsoTpAddress, UdsProfile
from fota_studio.protocols.isotp_link import (
    IsoTpLink,
    build_address,
    functional_address_byte,
)
from fota_studio.protocols.uds_link import UdsLink
from tests.fakes import sim_rig

TA, SA, AE = 0x11, 0xF1, 0x55  # the ECU's physical address, the tester's, the physical AE
FTA = 0xDF  # the functional address byte (extended: target address, mixed: AE)
REQUEST = b"\x3e\x00"


@dataclass(frozen=True)
class Case:
    """One addressing mode: the EA connection and the ECU's functional receiver by hand."""

    name: str
    conn: Connection
    receiver: isotp.Address  # what an ECU configured from the standard listens on
    physical_byte_receiver: isotp.Address | None = None  # an ECU expecting the physical byte


def _conn(
    mode: AddressingMode, bits: int, req: int, resp: int, fid: int, fta: int | None = FTA
) -> Connection:
    ids = IsoTpAddress(req, resp, target_address=TA, source_address=SA, address_extension=AE)
    conn = Connection(application=ids, bootloader=ids, addressing=mode, id_bits=bits)
    return replace(conn, functional_id=fid, functional_target_address=fta, padding_byte=0xCC)


M = isotp.AddressingMode


def _extended_receivers(
    mode: isotp.AddressingMode, txid: int, rxid: int
) -> tuple[isotp.Address, isotp.Address]:
    """An extended-addressing ECU's receivers: by the functional byte FTA (the standard's),
    and by its physical TA only."""
    by_fta, by_ta = (
        isotp.Address(mode, txid=txid, rxid=rxid, target_address=SA, source_address=ta)
        for ta in (FTA, TA)
    )
    return by_fta, by_ta


CASES = [
    Case(
        "normal-11",
        _conn(AddressingMode.NORMAL, 11, 0x7E0, 0x7E8, 0x7DF),
        isotp.Address(M.Normal_11bits, txid=0x7E8, rxid=0x7DF),
    ),
    Case(
        "normal-29",
        _conn(AddressingMode.NORMAL, 29, 0x18DA11F1, 0x18DAF111, 0x18DB33F1),
        isotp.Address(M.Normal_29bits, txid=0x18DAF111, rxid=0x18DB33F1),
    ),
    Case(
        "normal_fixed-29",
        _conn(AddressingMode.NORMAL_FIXED, 29, 0x18DA11F1, 0x18DAF111, 0x18DB33F1),
        # ISO 15765-2 §10.3.3: functional N_TAtype = 0xDB, N_TA 0x33 from the tester 0xF1.
        isotp.Address(M.NormalFixed_29bits, target_address=SA, source_address=0x33),
    ),
    Case(
        "extended-11",
        _conn(AddressingMode.EXTENDED, 11, 0x6F1, 0x611, 0x6FF),
        *_extended_receivers(M.Extended_11bits, 0x611, 0x6FF),
    ),
    Case(
        "extended-29",
        _conn(AddressingMode.EXTENDED, 29, 0x1FF000F1, 0x1FF00011, 0x1FF000FF),
        *_extended_receivers(M.Extended_29bits, 0x1FF00011, 0x1FF000FF),
    ),
    Case(
        "mixed-11",
        _conn(AddressingMode.MIXED, 11, 0x7E0, 0x7E8, 0x7DF),
        isotp.Address(M.Mixed_11bits, txid=0x7E8, rxid=0x7DF, address_extension=FTA),
        isotp.Address(M.Mixed_11bits, txid=0x7E8, rxid=0x7DF, address_extension=AE),
    ),
    Case(
        "mixed-29",
        _conn(AddressingMode.MIXED, 29, 0x18CE11F1, 0x18CEF111, 0x18CD33F1),
        # ISO 15765-2 §10.3.5: functional N_TAtype = 0xCD, first data byte = the functional AE.
        isotp.Address(
            M.Mixed_29bits, target_address=SA, source_address=0x33, address_extension=FTA
        ),
        isotp.Address(M.Mixed_29bits, target_address=SA, source_address=0x33, address_extension=AE),
    ),
]


@contextmanager
def _receivers(
    channel: str, addresses: list[isotp.Address | isotp.AsymmetricAddress]
) -> Iterator[list[isotp.NotifierBasedCanStack]]:
    """Plain can-isotp stacks (the library's own, not ours) on a second bus instance."""
    with sim_rig.tester_bus(channel) as (bus, notifier):
        stacks = [isotp.NotifierBasedCanStack(bus, notifier, address=a) for a in addresses]
        for stack in stacks:
            stack.start()
        try:
            yield stacks
        finally:
            for stack in stacks:
                stack.stop()


@contextmanager
def _tester_uds(channel: str, conn: Connection) -> Iterator[UdsLink]:
    """Our tester's opened UDS link on the bootloader IDs, on its own bus instance."""
    with sim_rig.tester_bus(channel) as (bus, notifier):
        uds = UdsLink(IsoTpLink(bus, notifier, conn, conn.bootloader), UdsProfile())
        uds.open()
        try:
            yield uds
        finally:
            uds.close()


@contextmanager
def _ecu_answering(
    stack: isotp.NotifierBasedCanStack, answer: Callable[[bytes], bytes], name: str
) -> Iterator[None]:
    """A thread answers every request `stack` receives with `answer(request)`, until exit."""
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            req = stack.recv(block=True, timeout=0.05)
            if req is not None:
                stack.send(answer(bytes(req)))

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2.0)


def _send_functional(channel: str, conn: Connection) -> None:
    """Our tester sends REQUEST functionally (suppressed: no answer awaited)."""
    with _tester_uds(channel, conn) as uds:
        assert uds.functional_request("test", REQUEST, suppress_response=True) is None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_functional_request_reaches_the_ecus_functional_receiver(
    case: Case, can_channel: str
) -> None:
    conn = case.conn
    ours = build_address(conn, conn.bootloader, ecu_side=True, functional=True)
    wanted = [case.receiver, ours]
    if case.physical_byte_receiver is not None:
        wanted.append(case.physical_byte_receiver)
    with _receivers(can_channel, wanted) as stacks:
        _send_functional(can_channel, conn)
        assert stacks[0].recv(block=True, timeout=2.0) == bytearray(
            REQUEST
        )  # the standard's receiver
        assert stacks[1].recv(block=True, timeout=2.0) == bytearray(REQUEST)  # the simulator's
        if case.physical_byte_receiver is not None:
            # An ECU taking only its physical byte does not see the functional request.
            assert stacks[2].recv(block=True, timeout=0.2) is None


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.physical_byte_receiver is not None], ids=lambda c: c.name
)
def test_without_a_functional_byte_the_physical_one_is_used(case: Case, can_channel: str) -> None:
    """`functional_target_address` unset: the frame carries the physical byte, as before."""
    conn = case.conn
    conn = Connection(**{**conn.__dict__, "functional_target_address": None})
    assert functional_address_byte(conn, conn.bootloader) in (TA, AE)
    assert case.physical_byte_receiver is not None
    with _receivers(can_channel, [case.physical_byte_receiver]) as stacks:
        _send_functional(can_channel, conn)
        assert stacks[0].recv(block=True, timeout=2.0) == bytearray(REQUEST)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ecu_answers_a_functional_request_physically(case: Case, can_channel: str) -> None:
    """Round trip: the ECU's functional receiver (build_address, ECU side) answers on its
    physical response address, and the tester's `functional_request` returns that answer."""
    conn = case.conn
    ecu_address = build_address(conn, conn.bootloader, ecu_side=True, functional=True)
    with (
        _receivers(can_channel, [ecu_address]) as (ecu,),
        _ecu_answering(ecu, lambda req: b"\x7e" + req[1:2], "test-functional-ecu"),
        _tester_uds(can_channel, conn) as uds,
    ):
        assert uds.functional_request("test", REQUEST) == b"\x7e\x00"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_physical_round_trip_with_the_ecu_side_address(case: Case, can_channel: str) -> None:
    """The ECU side of `build_address` (TA/SA swapped, IDs swapped) is the peer of the tester
    side in every mode: a multi-frame request and response both arrive whole."""
    conn = case.conn
    ecu_address = build_address(conn, conn.bootloader, ecu_side=True)
    answer = b"\x6e\xf1\x90" + bytes(range(40))  # long, to be multi-frame both ways
    got: list[bytes] = []

    def reply(req: bytes) -> bytes:
        got.append(req)
        return answer

    with (
        _receivers(can_channel, [ecu_address]) as (ecu,),
        _ecu_answering(ecu, reply, "test-physical-ecu"),
        _tester_uds(can_channel, conn) as uds,
    ):
        assert uds.request("test", 0x2E, b"\xf1\x90" + bytes(20)) == answer
    assert got == [b"\x2e\xf1\x90" + bytes(20)]
