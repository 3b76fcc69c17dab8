"""The simulated ECUs driven by a PLAIN udsoncan client over can-isotp: full reprogramming.

Also holds the tester helpers the other `test_sim_*` files import (no engine of ours is used).
"""

from __future__ import annotations

import threading
import time
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
from fota_studio.sim.paced_bus import PacedVirtualBus, wire_statistics
from fota_studio.sim.uds_ecu import SimEcuOptions


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
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.01)


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


@pytest.mark.parametrize("name", ["VCU", "HCU", "BCU"])
def test_full_reprogramming_sequence(make_rig: Callable[..., Rig], name: str) -> None:
    rig = make_rig(name)
    image = build_image()
    flash(rig, image)
    wait_for(lambda: rig.sim.state().mode == "application")
    state = rig.sim.state()
    assert state.app_valid
    assert state.software_version == "9.9.9-test"
    for address, data in image:
        assert rig.sim.memory.read(address, len(data)) == data
    # The application answers on its own IDs with the flashed version.
    app = UdsTester(rig.ecu_def, rig.channel, mode="application")
    try:
        resp = app.client.read_data_by_identifier(0xF195)
        assert resp.service_data.values[0xF195] == b"9.9.9-test"
        assert app.client.read_data_by_identifier(0xF15A).service_data.values[0xF15A] == (
            FINGERPRINT
        )
    finally:
        app.close()


def test_state_survives_restart(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    image = build_image()
    flash(rig, image)
    wait_for(lambda: rig.sim.state().mode == "application")
    rig.machine.stop()
    rig.machine.start()
    state = rig.machine.ecu("VCU").state()
    assert state.mode == "application" and state.app_valid
    assert state.software_version == "9.9.9-test"
    assert rig.machine.ecu("VCU").memory.read(image[1][0], len(image[1][1])) == image[1][1]


def test_application_services(make_rig: Callable[..., Rig]) -> None:
    opts = SimEcuOptions(dtcs=[(0x123456, 0x09), (0xABCDEF, 0x00)], vehicle_speed_kmh=3)
    rig = make_rig("VCU", options=opts, mode="application")
    c = rig.tester.client
    values = c.read_data_by_identifier([0xF190, 0xF40D, 0xF442]).service_data.values
    assert values[0xF190] == opts.vin
    assert values[0xF40D] == (3,)
    assert values[0xF442] == (13_200,)
    assert c.read_data_by_identifier(0xF195).service_data.values[0xF195] == b"1.0.0"
    resp = c.get_dtc_by_status_mask(0x09)
    assert [d.id for d in resp.service_data.dtcs] == [0x123456]
    assert c.get_number_of_dtc_by_status_mask(0xFF).service_data.dtc_count == 1
    c.tester_present()
    c.change_session(3)
    c.unlock_security_access(1)
    # Heartbeat on 0x100 stops after CommunicationControl.
    reader = can.BufferedReader()
    rig.tester.notifier.add_listener(reader)
    assert reader.get_message(1.0) is not None
    c.communication_control(3, 1)
    time.sleep(0.05)
    while reader.get_message(0) is not None:
        pass
    hb = reader.get_message(0.4)
    assert hb is None or hb.arbitration_id != 0x100
    rig.tester.notifier.remove_listener(reader)


def test_programming_session_from_application_jumps(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", mode="application")
    c = rig.tester.client
    assert nrc_of(lambda: c.change_session(2)) == 0x22
    c.change_session(3)
    c.change_session(2)
    wait_for(lambda: rig.sim.state().mode == "bootloader")
    state = rig.sim.state()
    assert state.session == 2 and state.security_level == 0


def test_tester_present_keeps_long_erase_alive(make_rig: Callable[..., Rig]) -> None:
    opts = SimEcuOptions(erase_ms_per_kib=40, erase_min_ms=20, s3_ms=400, pending_interval_ms=150)
    rig = make_rig("VCU", options=opts)
    enter_bootloader(rig)
    unlock_programming(rig)
    stop = threading.Event()

    def keep_alive() -> None:
        while not stop.wait(0.1):
            rig.tester.functional(bytes([0x3E, 0x80]))

    thread = threading.Thread(target=keep_alive, name="test-tp")
    thread.start()
    try:
        start = demo_catalog.APP_REGION_START
        record = bytes([0x44]) + start.to_bytes(4, "big") + (0x8000).to_bytes(4, "big")
        t0 = time.monotonic()
        resp = rig.tester.client.start_routine(0xFF00, record)  # 32 KiB * 40 ms = 1.28 s
        assert time.monotonic() - t0 > 0.4  # longer than S3: only TesterPresent kept it
        assert resp.service_data.routine_status_record[:1] == b"\x00"
    finally:
        stop.set()
        thread.join()
    assert rig.sim.state().session == 2
    assert rig.sim.memory.is_erased(demo_catalog.APP_REGION_START, 0x8000)


@pytest.mark.parametrize("name", ["VCU", "BCU"])
def test_flash_over_the_paced_bus(make_rig: Callable[..., Rig], name: str) -> None:
    rig = make_rig(name, paced=True)
    image = build_image()
    flash(rig, image)
    wait_for(lambda: rig.sim.state().mode == "application")
    for address, data in image:
        assert rig.sim.memory.read(address, len(data)) == data
    frames, busy_s = wire_statistics(rig.channel)
    payload = sum(len(d) for _, d in image)
    per_frame = 62 if name == "BCU" else 7  # ISO-TP consecutive frame payload
    assert frames > payload // per_frame and busy_s > 0


@pytest.mark.parametrize("mode", ["extended", "mixed"])
def test_extended_and_mixed_addressing(can_channel: str, tmp_path: Path, mode: str) -> None:
    import copy

    from fota_studio.sim.uds_ecu import SimEcu

    ecu = copy.deepcopy(demo_catalog.demo_architecture().ecu("VCU"))
    ecu.connection.addressing = AddressingMode(mode)
    for addr in (ecu.connection.application, ecu.connection.bootloader):
        addr.target_address, addr.source_address, addr.address_extension = 0x10, 0xF1, 0x42
    if mode == "extended":
        tester_addr = isotp.Address(
            isotp.AddressingMode.Extended_11bits,
            txid=0x7E0,
            rxid=0x7E8,
            target_address=0x10,
            source_address=0xF1,
        )
    else:
        tester_addr = isotp.Address(
            isotp.AddressingMode.Mixed_11bits, txid=0x7E0, rxid=0x7E8, address_extension=0x42
        )
    sim_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    notifier = can.Notifier(sim_bus, [], timeout=0.05)
    sim = SimEcu(ecu, sim_bus, notifier, state_dir=tmp_path, initial_image=build_image())
    sim.start()
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    tester_notifier = can.Notifier(bus, [], timeout=0.05)
    stack = isotp.NotifierBasedCanStack(
        bus, tester_notifier, address=tester_addr, params={"tx_padding": 0xAA}
    )
    try:
        with Client(
            PythonIsoTpConnection(stack), config={"data_identifiers": {"default": RawCodec}}
        ) as c:
            c.change_session(3)
            long_did = c.read_data_by_identifier(0xF190).service_data.values[0xF190]
            assert long_did == SimEcuOptions().vin.encode()  # multi-frame response
    finally:
        tester_notifier.stop(timeout=0.1)
        bus.shutdown()
        sim.close()
        notifier.stop(timeout=0.1)
        sim_bus.shutdown()
