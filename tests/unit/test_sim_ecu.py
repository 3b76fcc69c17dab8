"""The simulated ECUs driven by a PLAIN udsoncan client over can-isotp: full reprogramming.

The tester and the rig are shared test doubles (tests/fakes/uds_tester.py); no engine of ours is
used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import can
import isotp
import pytest
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpConnection

from fota_studio.core.ea import AddressingMode
from fota_studio.demo import catalog as demo_catalog
from fota_studio.sim.paced_bus import wire_statistics
from fota_studio.sim.uds_ecu import SimEcuOptions
from tests.fakes.uds_tester import (
    FINGERPRINT,
    RawCodec,
    Rig,
    UdsTester,
    build_image,
    enter_bootloader,
    flash,
    nrc_of,
    unlock_programming,
    wait_for,
)


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
