"""A PLAIN udsoncan/can-isotp tester for the simulated ECUs, and the rig the sim tests share.

`UdsTester` is a udsoncan client on its own python-can `virtual` bus instance (or the paced
bus); `make_rig` (a pytest fixture, registered for every test by tests/conftest.py) starts a
simulated machine with one demo ECU and a tester; `ask` sends one raw request; `enter_bootloader`,
`unlock_programming`, `download` and `flash` run the reprogramming sequence by hand. Nothing of
the flash engine is used. Used by tests/unit/test_sim_*.py and test_decode_sim_flash.py.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can
import isotp
import pytest
import udsoncan
from udsoncan import MemoryLocation
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpConnection

from fota_studio.core.ea import AddressingMode, EcuDefinition, IsoTpAddress
from fota_studio.core.seedkey import compute_key, demo_secret
from fota_studio.demo import catalog as demo_catalog
from fota_studio.sim.machine import SimMachine
from fota_studio.sim.paced_bus import PacedVirtualBus
from fota_studio.sim.uds_ecu import SimEcuOptions
from tests.helpers.waiting import poll_until


class RawCodec(udsoncan.DidCodec):  # type: ignore[misc]
    """Variable-length raw DID value."""

    def encode(self, value: Any) -> bytes:
        return bytes(value)

    def decode(self, payload: bytes) -> bytes:
        return bytes(payload)

    def __len__(self) -> int:
        raise udsoncan.DidCodec.ReadAllRemainingData


def client_address(ecu: EcuDefinition, addr: IsoTpAddress) -> isotp.Address:
    """The tester-side can-isotp address (tx = requests) of an EA address pair."""
    conn = ecu.connection
    if conn.addressing == AddressingMode.NORMAL_FIXED:
        return isotp.Address(
            isotp.AddressingMode.NormalFixed_29bits,
            target_address=addr.target_address,
            source_address=addr.source_address,
        )
    mode = (
        isotp.AddressingMode.Normal_29bits
        if conn.id_bits == 29
        else isotp.AddressingMode.Normal_11bits
    )
    return isotp.Address(mode, txid=addr.request_id, rxid=addr.response_id)


class UdsTester:
    """A plain udsoncan client on its own virtual Bus instance."""

    def __init__(
        self, ecu: EcuDefinition, channel: str, *, mode: str = "bootloader", paced: bool = False
    ) -> None:
        self.ecu = ecu
        conn = ecu.connection
        self.bus: can.BusABC = (
            PacedVirtualBus(channel=channel, bitrate=conn.bitrate_bps)
            if paced
            else can.Bus(interface="virtual", channel=channel, ignore_config=True)
        )
        self.notifier = can.Notifier(self.bus, [], timeout=0.05)
        addr = conn.bootloader if mode == "bootloader" else conn.application
        params = {
            "tx_padding": 0xCC,
            "tx_data_length": conn.fd_frame_length if conn.fd else 8,
            "can_fd": conn.fd,
            "bitrate_switch": conn.fd,
            "max_frame_size": 0x10000,
            "blocksize": 0,
            "stmin": 0,
        }
        self.stack = isotp.NotifierBasedCanStack(
            self.bus, self.notifier, address=client_address(ecu, addr), params=params
        )
        self.conn = PythonIsoTpConnection(self.stack)
        levels = {lvl.seed_subfunction: lvl for lvl in ecu.uds.security_levels}

        def algo(level: int, seed: bytes, params: Any) -> bytes:
            lvl = levels[level]
            return compute_key(lvl.algorithm, seed, lvl.params, demo_secret(lvl.secret_ref))

        cfg = dict(udsoncan.configs.default_client_config)
        cfg.update(
            {
                "security_algo": algo,
                "data_identifiers": {
                    "default": RawCodec,
                    0xF190: udsoncan.AsciiCodec(17),
                    0xF40D: "B",
                    0xF442: ">H",
                },
                "p2_timeout": 1.0,
                "p2_star_timeout": 6.0,
                "request_timeout": 20.0,
                "use_server_timing": False,
            }
        )
        self.client = Client(self.conn, config=cfg)
        self.client.open()

    def send_raw(self, can_id: int, data: bytes, *, extended: bool | None = None) -> None:
        """Send one raw classic frame."""
        ext = can_id > 0x7FF if extended is None else extended
        self.bus.send(can.Message(arbitration_id=can_id, is_extended_id=ext, data=data))

    def functional(self, payload: bytes) -> None:
        """Send a functional single-frame request to the EA's functional ID."""
        conn = self.ecu.connection
        frame = bytes([len(payload)]) + payload
        self.send_raw(conn.functional_id, frame.ljust(8, b"\xcc"))

    def close(self) -> None:
        self.client.close()
        self.notifier.stop(timeout=0.1)
        self.bus.shutdown()


def ask(tester: UdsTester, payload: bytes, timeout: float = 1.0) -> bytes | None:
    """Send one raw request, return the first answer that is not 0x78 (None: no answer)."""
    conn = tester.conn
    conn.empty_rxqueue()
    conn.send(payload)
    while True:
        frame = conn.wait_frame(timeout=timeout)
        if frame is None or bytes(frame[:1]) != b"\x7f" or bytes(frame[2:3]) != b"\x78":
            return None if frame is None else bytes(frame)


def nrc_of(call: Callable[[], Any]) -> int:
    """Run a client call that must be answered negatively; return the NRC."""
    with pytest.raises(udsoncan.exceptions.NegativeResponseException) as info:
        call()
    return int(info.value.response.code)


def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until `cond()` holds (polling), fail the test otherwise."""
    if not poll_until(cond, timeout_s):
        pytest.fail("condition not reached in time")


#: A date_tester fingerprint of the EA's default length (19 bytes: 3 BCD date + 16 name).
FINGERPRINT = b"\x26\x11\x21" + b"TESTER01".ljust(16)


def build_image() -> list[tuple[int, bytes]]:
    """A test image: header segment, a gap, a second segment with an odd size."""
    start = demo_catalog.APP_REGION_START
    seg1 = demo_catalog.app_header("9.9.9-test") + bytes((i * 7) & 0xFF for i in range(3000))
    seg2 = bytes((i * 13 + 5) & 0xFF for i in range(2345))
    return [(start, seg1), (start + 0x8000, seg2)]


@dataclass
class Rig:
    machine: SimMachine
    ecu_def: EcuDefinition
    tester: UdsTester
    channel: str

    @property
    def sim(self) -> Any:
        return self.machine.ecu(self.ecu_def.name)


@pytest.fixture
def make_rig(can_channel: str, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """Factory: a simulated machine with one demo ECU and a tester, stopped at teardown."""
    made: list[tuple[SimMachine, UdsTester, can.BusABC]] = []

    def make(
        name: str = "VCU",
        *,
        options: SimEcuOptions | None = None,
        mode: str = "bootloader",
        image: bool | list[tuple[int, bytes]] = True,
        paced: bool = False,
        configure: Callable[[EcuDefinition], None] | None = None,
    ) -> Rig:
        ea = demo_catalog.demo_architecture()
        ecu_def = ea.ecu(name)
        if configure is not None:
            configure(ecu_def)  # change the EA of this ECU before the simulator reads it
        sim_bus: can.BusABC = (
            PacedVirtualBus(
                channel=can_channel,
                bitrate=ecu_def.connection.bitrate_bps,
                data_bitrate=ecu_def.connection.data_bitrate_bps,
            )
            if paced
            else can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
        )
        opts = options or SimEcuOptions(erase_ms_per_kib=0.5, erase_min_ms=20)
        default = [(demo_catalog.APP_REGION_START, demo_catalog.app_header("1.0.0") + b"\x11" * 64)]
        images = {name: image if isinstance(image, list) else default}
        machine = SimMachine(
            ea,
            sim_bus,
            name="Unit #T",
            state_dir=tmp_path / "sim",
            options={name: opts},
            initial_images=images if image else None,
            ecus=[name],
        )
        machine.start()
        tester = UdsTester(ecu_def, can_channel, mode=mode, paced=paced)
        made.append((machine, tester, sim_bus))
        return Rig(machine, ecu_def, tester, can_channel)

    yield make
    for machine, tester, bus in made:
        tester.close()
        machine.stop()
        bus.shutdown()


def enter_bootloader(rig: Rig) -> None:
    """Send the bootloader entry frame and wait until the ECU runs its bootloader."""
    entry = rig.ecu_def.connection.bootloader_entry
    assert entry is not None
    rig.tester.send_raw(entry.can_id, entry.data, extended=entry.extended_id)
    wait_for(lambda: rig.sim.state().mode == "bootloader")


def unlock_programming(rig: Rig) -> None:
    """Extended session, DTC off, comm off (functional), level 1, programming, level 2."""
    c = rig.tester.client
    c.change_session(3)
    c.control_dtc_setting(2)
    rig.tester.functional(bytes([0x28, 0x03, 0x01]))
    assert bytes(rig.tester.conn.wait_frame(timeout=2)) == bytes([0x68, 0x03])
    c.unlock_security_access(1)
    c.change_session(2)
    c.unlock_security_access(3)


def download(rig: Rig, address: int, data: bytes) -> None:
    """Erase the range, request download, transfer the blocks, exit."""
    c = rig.tester.client
    record = bytes([0x44]) + address.to_bytes(4, "big") + len(data).to_bytes(4, "big")
    resp = c.start_routine(0xFF00, record)
    assert resp.service_data.routine_status_record[:1] == b"\x00"
    resp = c.request_download(MemoryLocation(address, len(data), 32, 32))
    block = resp.service_data.max_length - 2
    counter = 1
    for offset in range(0, len(data), block):
        c.transfer_data(counter, data[offset : offset + block])
        counter = (counter + 1) & 0xFF
    c.request_transfer_exit()


def flash(rig: Rig, image: list[tuple[int, bytes]]) -> None:
    """The whole reprogramming sequence up to the reset."""
    enter_bootloader(rig)
    unlock_programming(rig)
    rig.tester.client.write_data_by_identifier(0xF15A, FINGERPRINT)
    for address, data in image:
        download(rig, address, data)
    crc = zlib.crc32(b"".join(d for _, d in sorted(image))).to_bytes(4, "big")
    resp = rig.tester.client.start_routine(0xFF01, crc)
    assert resp.service_data.routine_status_record == b"\x00"
    rig.tester.client.ecu_reset(1)
