"""Each strictness rule of the simulated bootloader, proven with a plain udsoncan client."""

from __future__ import annotations

from collections.abc import Callable

from udsoncan import MemoryLocation

from fota_studio.demo import catalog as demo_catalog
from fota_studio.sim.flash_memory import BOOTLOADER_FILL
from fota_studio.sim.uds_ecu import SimEcuOptions
from tests.fakes.uds_tester import (
    Rig,
    download,
    enter_bootloader,
    nrc_of,
    unlock_programming,
    wait_for,
)

APP = demo_catalog.APP_REGION_START


def _record(address: int, length: int) -> bytes:
    return bytes([0x44]) + address.to_bytes(4, "big") + length.to_bytes(4, "big")


def test_wrong_order_is_rejected(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    enter_bootloader(rig)
    c = rig.tester.client
    assert nrc_of(lambda: c.change_session(2)) == 0x22  # programming only from extended
    assert nrc_of(lambda: c.request_seed(1)) == 0x7F  # no security in the default session
    c.change_session(3)
    assert nrc_of(lambda: c.send_key(2, b"\x00\x00\x00\x00")) == 0x24  # key without a seed
    assert nrc_of(lambda: c.change_session(2)) == 0x33  # level 1 first (EA sequence order)
    c.unlock_security_access(1)
    assert nrc_of(lambda: c.start_routine(0xFF00, _record(APP, 0x1000))) == 0x7E
    c.change_session(2)
    assert rig.sim.state().security_level == 0  # the session change locked security
    assert nrc_of(lambda: c.start_routine(0xFF00, _record(APP, 0x1000))) == 0x33
    assert nrc_of(lambda: c.request_download(MemoryLocation(APP, 16, 32, 32))) == 0x33
    c.unlock_security_access(3)
    assert nrc_of(lambda: c.transfer_data(1, b"\x00")) == 0x24  # no download active
    assert nrc_of(lambda: c.request_transfer_exit()) == 0x24
    assert nrc_of(lambda: c.start_routine(0xFF01, b"\x00" * 4)) == 0x24  # nothing downloaded
    c.start_routine(0xFF00, _record(APP, 0x1000))
    c.request_download(MemoryLocation(APP, 0x100, 32, 32))
    assert nrc_of(lambda: c.request_download(MemoryLocation(APP, 16, 32, 32))) == 0x70
    c.transfer_data(1, b"\x01" * 0x80)
    assert nrc_of(lambda: c.request_transfer_exit()) == 0x24  # incomplete
    assert nrc_of(lambda: c.change_session(3)) == 0x22  # no way back to extended


def test_bad_key_attempts_and_lockout(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", options=SimEcuOptions(lockout_s=0.5, seed_length=2))
    enter_bootloader(rig)
    c = rig.tester.client
    c.change_session(3)
    seed = c.request_seed(1).service_data.seed
    assert len(seed) == 2
    assert nrc_of(lambda: c.send_key(2, b"\x00\x00")) == 0x35
    c.request_seed(1)
    assert nrc_of(lambda: c.send_key(2, b"\x00\x00")) == 0x35
    c.request_seed(1)
    assert nrc_of(lambda: c.send_key(2, b"\x00\x00")) == 0x36
    assert nrc_of(lambda: c.request_seed(1)) == 0x37
    wait_for(lambda: rig.sim.state().last_nrc == 0x37)
    import time

    time.sleep(0.6)  # the lockout delay of this ECU (an ECU rule, not a test timing)
    c.unlock_security_access(1)
    assert c.request_seed(1).service_data.seed == b"\x00\x00"  # already unlocked


def test_block_counter_rules(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", options=SimEcuOptions(max_block_length=0x82))
    enter_bootloader(rig)
    unlock_programming(rig)
    c = rig.tester.client
    c.start_routine(0xFF00, _record(APP, 0x1000))
    resp = c.request_download(MemoryLocation(APP, 0x200, 32, 32))
    assert resp.service_data.max_length == 0x82
    assert nrc_of(lambda: c.transfer_data(2, b"\x00" * 16)) == 0x73  # must start at 1
    assert nrc_of(lambda: c.transfer_data(1, b"\x00" * 0x81)) == 0x13  # > maxNumberOfBlockLength
    c.transfer_data(1, b"\x01" * 0x80)
    c.transfer_data(1, b"\x01" * 0x80)  # repeated previous block: accepted, not re-written
    assert rig.sim.state().bytes_written == 0x80
    assert nrc_of(lambda: c.transfer_data(3, b"\x02" * 0x80)) == 0x73
    c.transfer_data(2, b"\x02" * 0x80)
    c.transfer_data(3, b"\x03" * 0x80)
    assert nrc_of(lambda: c.transfer_data(4, b"\x04" * 0x80 + b"\x05")) == 0x13
    c.transfer_data(4, b"\x04" * 0x7F)
    assert nrc_of(lambda: c.transfer_data(5, b"\x05" * 2)) == 0x71  # beyond the requested size
    c.transfer_data(5, b"\x05")
    c.request_transfer_exit()
    expected = b"\x01" * 0x80 + b"\x02" * 0x80 + b"\x03" * 0x80 + b"\x04" * 0x7F + b"\x05"
    assert rig.sim.memory.read(APP, 0x200) == expected


def test_counter_wraps_ff_to_00(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", options=SimEcuOptions(max_block_length=0x12))
    enter_bootloader(rig)
    unlock_programming(rig)
    data = bytes(i & 0xFF for i in range(0x10 * 300))  # 300 blocks: counter 1..FF, 00, 01..
    download(rig, APP, data)
    assert rig.sim.memory.read(APP, len(data)) == data


def test_protected_region_and_ranges(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    enter_bootloader(rig)
    unlock_programming(rig)
    c = rig.tester.client
    boot = demo_catalog.BOOTLOADER_START
    assert nrc_of(lambda: c.start_routine(0xFF00, _record(boot, 0x1000))) == 0x31
    assert nrc_of(lambda: c.start_routine(0xFF00, _record(APP - 0x1000, 0x2000))) == 0x31
    assert nrc_of(lambda: c.request_download(MemoryLocation(boot + 0x100, 16, 32, 32))) == 0x70
    end = APP + demo_catalog.APP_REGION_LENGTH
    assert nrc_of(lambda: c.request_download(MemoryLocation(end - 8, 16, 32, 32))) == 0x31
    assert nrc_of(lambda: c.start_routine(0xFF00, _record(end, 0x10))) == 0x31
    length = demo_catalog.BOOTLOADER_LENGTH
    fill = (BOOTLOADER_FILL * (length // len(BOOTLOADER_FILL)))[:length]
    assert rig.sim.memory.read(boot, length) == fill


def test_programming_needs_erased_memory(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")  # the initial image occupies APP..APP+96
    enter_bootloader(rig)
    unlock_programming(rig)
    c = rig.tester.client
    c.request_download(MemoryLocation(APP, 0x40, 32, 32))
    assert nrc_of(lambda: c.transfer_data(1, b"\x00" * 0x40)) == 0x72


def test_s3_expiry_mid_erase_drops_session(make_rig: Callable[..., Rig]) -> None:
    image = [(APP, bytes([0x5A]) * 0x8000)]
    opts = SimEcuOptions(erase_ms_per_kib=40, s3_ms=300, pending_interval_ms=100)
    rig = make_rig("VCU", options=opts, image=image)
    enter_bootloader(rig)
    unlock_programming(rig)
    # Send the erase without waiting for its answer and without TesterPresent.
    rig.tester.conn.send(bytes([0x31, 0x01, 0xFF, 0x00]) + _record(APP, 0x8000))
    wait_for(lambda: rig.sim.state().erase_in_progress)
    wait_for(lambda: rig.sim.state().session == 1)
    state = rig.sim.state()
    assert not state.erase_in_progress and state.security_level == 0 and not state.app_valid
    assert rig.sim.memory.is_erased(APP, 0x1000)  # the first sector went
    assert rig.sim.memory.read(APP + 0x7000, 0x1000) == bytes([0x5A]) * 0x1000  # the last did not


def test_busy_during_erase_and_functional_tester_present(make_rig: Callable[..., Rig]) -> None:
    opts = SimEcuOptions(erase_ms_per_kib=20, pending_interval_ms=100)
    rig = make_rig("VCU", options=opts)
    enter_bootloader(rig)
    unlock_programming(rig)
    rig.tester.conn.send(bytes([0x31, 0x01, 0xFF, 0x00]) + _record(APP, 0x8000))
    assert bytes(rig.tester.conn.wait_frame(timeout=1)) == bytes([0x7F, 0x31, 0x78])
    rig.tester.conn.send(bytes([0x22, 0xF1, 0x95]))
    frames = [bytes(rig.tester.conn.wait_frame(timeout=1)) for _ in range(2)]
    assert bytes([0x7F, 0x22, 0x21]) in frames
    rig.tester.functional(bytes([0x3E, 0x00]))
    wait_for(lambda: rig.sim.state().requests >= 8)
    final = b""
    while final[:1] != b"\x71":
        final = bytes(rig.tester.conn.wait_frame(timeout=2))
        assert final[:1] in (b"\x71", b"\x7f", b"\x7e")
    assert final == bytes([0x71, 0x01, 0xFF, 0x00, 0x00])


def test_power_loss_keeps_bootloader_and_invalidates_app(make_rig: Callable[..., Rig]) -> None:
    from fota_studio.sim.faults import Fault

    rig = make_rig("VCU")
    enter_bootloader(rig)
    unlock_programming(rig)
    rig.sim.inject(Fault("transfer_data", "power_loss", 1000))
    c = rig.tester.client
    c.start_routine(0xFF00, _record(APP, 0x1000))
    c.request_download(MemoryLocation(APP, 0x800, 32, 32))
    data = bytes((i * 3) & 0xFF for i in range(0x800))
    c.transfer_data(1, data[:0x200])
    boots = rig.sim.state().boots
    rig.tester.conn.send(bytes([0x36, 0x02]) + data[0x200:0x400])
    wait_for(lambda: rig.sim.state().boots == boots + 1)
    state = rig.sim.state()
    assert state.mode == "bootloader" and state.session == 1 and not state.app_valid
    assert rig.sim.memory.read(APP, 1000) == data[:1000]
    assert rig.sim.memory.is_erased(APP + 1000, 0x1000 - 1000)
    length = demo_catalog.BOOTLOADER_LENGTH
    assert rig.sim.memory.read(0, 8) == BOOTLOADER_FILL and length > 0
    # A reset keeps it in the bootloader, and a restart of the simulator too.
    rig.machine.stop()
    rig.machine.start()
    assert rig.machine.ecu("VCU").state().mode == "bootloader"


def test_reset_after_failed_check_stays_in_bootloader(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    enter_bootloader(rig)
    unlock_programming(rig)
    download(rig, APP, demo_catalog.app_header("2.0.0") + b"\x42" * 100)
    resp = rig.tester.client.start_routine(0xFF01, b"\xde\xad\xbe\xef")
    assert resp.service_data.routine_status_record == b"\x01"
    boots = rig.sim.state().boots
    rig.tester.client.ecu_reset(1)
    wait_for(lambda: rig.sim.state().boots == boots + 1)
    state = rig.sim.state()
    assert state.session == 1 and not state.app_valid
