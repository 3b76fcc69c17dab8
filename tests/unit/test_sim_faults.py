"""Every fault kind of the simulated ECU, seen from a plain udsoncan client."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import udsoncan
from udsoncan import MemoryLocation

from fota_studio.core.errors import ConfigurationError
from fota_studio.demo import catalog as demo_catalog
from fota_studio.sim.faults import Fault, parse_fault
from fota_studio.sim.uds_ecu import SimEcuOptions
from tests.fakes.uds_tester import Rig, enter_bootloader, nrc_of, unlock_programming, wait_for

APP = demo_catalog.APP_REGION_START


def test_parse_fault_forms() -> None:
    assert parse_fault("erase:nrc:0x22") == Fault("erase", "nrc", 0x22)
    assert parse_fault("transfer_data:power_loss:4096") == Fault(
        "transfer_data", "power_loss", 4096
    )
    assert parse_fault("bootloader_entry:refuse") == Fault("bootloader_entry", "refuse")
    assert parse_fault("erase:fail::3") == Fault("erase", "fail", None, 3)
    assert str(Fault("erase", "nrc", 0x22)) == "erase:nrc:0x22"
    for bad in ("erase", "nowhere:nrc:1", "erase:explode", "erase:nrc", "erase:nrc:zz"):
        with pytest.raises(ConfigurationError):
            parse_fault(bad)


def test_nrc_fault_fires_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    enter_bootloader(rig)
    rig.sim.inject(Fault("extended_session", "nrc", 0x22))
    c = rig.tester.client
    assert nrc_of(lambda: c.change_session(3)) == 0x22
    c.change_session(3)
    assert rig.sim.state().session == 3


@pytest.mark.parametrize(
    ("kind", "arg"), [("late", 400), ("no_answer", None), ("drop", 1)], ids=str
)
def test_silent_faults_time_out(make_rig: Callable[..., Rig], kind: str, arg: int | None) -> None:
    rig = make_rig("VCU")
    enter_bootloader(rig)
    c = rig.tester.client
    c.config["p2_timeout"] = 0.2
    rig.sim.inject(Fault("extended_session", kind, arg))
    with pytest.raises(udsoncan.exceptions.TimeoutException):
        c.change_session(3)
    c.config["p2_timeout"] = 1.0
    c.change_session(3)  # the fault fired once; the ECU answers again
    assert rig.sim.state().armed_faults == ()


def test_corrupt_fault_gives_an_invalid_response(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    enter_bootloader(rig)
    rig.sim.inject(Fault("extended_session", "corrupt", 1))
    with pytest.raises(
        (
            udsoncan.exceptions.UnexpectedResponseException,
            udsoncan.exceptions.InvalidResponseException,
        )
    ):
        rig.tester.client.change_session(3)


def test_refused_bootloader_entry(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    rig.sim.inject(Fault("bootloader_entry", "refuse"))
    entry = demo_catalog.demo_architecture().ecu("VCU").connection.bootloader_entry
    assert entry is not None
    rig.tester.send_raw(entry.can_id, entry.data)
    wait_for(lambda: rig.sim.faults_fired == [Fault("bootloader_entry", "refuse")])
    assert rig.sim.state().mode == "application"
    enter_bootloader(rig)  # the second entry frame works
    assert rig.sim.state().boots == 1


def test_wrong_key_algorithm(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    enter_bootloader(rig)
    rig.sim.inject(Fault("security_level_2", "wrong_key_algorithm"))
    c = rig.tester.client
    c.change_session(3)
    c.unlock_security_access(1)  # level 1 is not affected
    c.change_session(2)
    assert nrc_of(lambda: c.unlock_security_access(3)) == 0x35
    c.unlock_security_access(3)


def test_erase_fail(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", options=SimEcuOptions(erase_min_ms=150, pending_interval_ms=50))
    enter_bootloader(rig)
    unlock_programming(rig)
    rig.sim.inject(Fault("erase", "fail"))
    record = bytes([0x44]) + APP.to_bytes(4, "big") + (0x1000).to_bytes(4, "big")
    c = rig.tester.client
    assert nrc_of(lambda: c.start_routine(0xFF00, record)) == 0x72
    assert not rig.sim.state().app_valid


def test_power_loss_fault_mid_transfer(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", options=SimEcuOptions(max_block_length=0x102))
    enter_bootloader(rig)
    unlock_programming(rig)
    rig.sim.inject(Fault("transfer_data", "power_loss", 0x180))
    c = rig.tester.client
    c.config["p2_timeout"] = 0.3
    c.start_routine(0xFF00, bytes([0x44]) + APP.to_bytes(4, "big") + (0x400).to_bytes(4, "big"))
    c.request_download(MemoryLocation(APP, 0x400, 32, 32))
    c.transfer_data(1, b"\x01" * 0x100)
    with pytest.raises(udsoncan.exceptions.TimeoutException):
        c.transfer_data(2, b"\x02" * 0x100)
    wait_for(lambda: rig.sim.state().boots == 2)
    assert rig.sim.memory.read(APP, 0x180) == b"\x01" * 0x100 + b"\x02" * 0x80
    assert rig.sim.memory.is_erased(APP + 0x180, 0x80)
    state = rig.sim.state()
    assert state.mode == "bootloader" and not state.app_valid
