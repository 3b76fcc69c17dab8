"""ISO-TP / UDS links: configuration from the EA connection (every addressing mode, CAN FD),
functional requests, TesterPresent kept alive through a long erase (0x78) and stopped cleanly."""

from __future__ import annotations

import threading
from pathlib import Path

import can
import isotp
import pytest

from fota_studio.core.ea import AddressingMode, Connection, IsoTpAddress
from fota_studio.core.errors import ConfigurationError
from fota_studio.core.events import EcuBusy, EngineEvent
from fota_studio.engine.flash_job import FlashSession, flash_ecu
from fota_studio.protocols.isotp_link import IsoTpLink, build_address, build_params
from tests.fakes.flash import fast_ecu, fast_sim_options, make_image, memory_matches, sim_ecu


def _conn(mode: AddressingMode, bits: int = 11, **kw: object) -> Connection:
    ids = IsoTpAddress(
        0x7E0, 0x7E8, target_address=0x11, source_address=0xF1, address_extension=0x55
    )
    return Connection(application=ids, bootloader=ids, addressing=mode, id_bits=bits, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "bits", "expected"),
    [
        (AddressingMode.NORMAL, 11, isotp.AddressingMode.Normal_11bits),
        (AddressingMode.NORMAL, 29, isotp.AddressingMode.Normal_29bits),
        (AddressingMode.NORMAL_FIXED, 29, isotp.AddressingMode.NormalFixed_29bits),
        (AddressingMode.EXTENDED, 11, isotp.AddressingMode.Extended_11bits),
        (AddressingMode.MIXED, 11, isotp.AddressingMode.Mixed_11bits),
        (AddressingMode.MIXED, 29, isotp.AddressingMode.Mixed_29bits),
    ],
)
def test_address_for_every_mode(mode: AddressingMode, bits: int, expected: object) -> None:
    conn = _conn(mode, bits)
    addr = build_address(conn, conn.application)
    assert addr._addressing_mode == expected
    if mode == AddressingMode.NORMAL_FIXED:
        assert addr.get_tx_arbitration_id() == 0x18DA11F1
        assert addr.get_rx_arbitration_id() == 0x18DAF111


def test_params_from_connection() -> None:
    conn = _conn(
        AddressingMode.NORMAL,
        fd=True,
        fd_frame_length=64,
        padding_byte=0xCC,
        block_size=16,
        stmin_ms=2,
    )
    p = build_params(conn)
    assert p["can_fd"] and p["bitrate_switch"] and p["tx_data_length"] == 64
    assert p["tx_padding"] == 0xCC and p["blocksize"] == 16 and p["stmin"] == 2
    assert p["blocking_send"] is True and callable(p["wait_func"])
    with pytest.raises(ConfigurationError):
        build_params(_conn(AddressingMode.NORMAL, fd=True, fd_frame_length=40))


def test_functional_single_frame_and_padding(can_channel: str) -> None:
    conn = _conn(AddressingMode.NORMAL, functional_id=0x7DF, padding_byte=0xAA)
    tx = can.Bus(interface="virtual", channel=can_channel)
    rx = can.Bus(interface="virtual", channel=can_channel)
    notifier = can.Notifier(tx, [], timeout=0.05)
    tapped: list[can.Message] = []
    try:
        link = IsoTpLink(tx, notifier, conn, conn.application, tx_tap=tapped.append)
        link.send_functional_single_frame(b"\x3e\x80")
        msg = rx.recv(1.0)
        assert msg is not None and msg.arbitration_id == 0x7DF
        assert bytes(msg.data) == bytes.fromhex("023E80AAAAAAAAAA")
        assert len(tapped) == 1 and not tapped[0].is_rx
    finally:
        notifier.stop(timeout=0.1)
        tx.shutdown()
        rx.shutdown()


def test_tester_present_keeps_session_through_long_erase(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu("VCU")
    # S3 of 0.5 s and an erase of 1.5 s: without TesterPresent during the 0x78 phase the ECU
    # would drop to the default session and abort the erase.
    opts = fast_sim_options(s3_ms=500, erase_min_ms=1500, pending_interval_ms=100)
    image = make_image("3.3.3", (0x800,))
    events: list[EngineEvent] = []
    with sim_ecu(ecu, can_channel, tmp_path, options=opts) as sim:
        bus = can.Bus(interface="virtual", channel=can_channel)
        notifier = can.Notifier(bus, [], timeout=0.05)
        try:
            session = FlashSession(
                ecu=ecu, bus=bus, notifier=notifier, expected_version="3.3.3", boot_wait_s=1.5
            )
            result = flash_ecu(session, image, events.append)
        finally:
            notifier.stop(timeout=0.1)
            bus.shutdown()
        assert result.ok, result.error
        assert memory_matches(sim, image)
    assert sum(isinstance(e, EcuBusy) for e in events) >= 5
    assert not [t for t in threading.enumerate() if t.name.startswith("fota-tp-")]
