"""engine/ecu_info: the pre-flight reads the version and the precondition values FROM the ECU
(simulated ECU on a private virtual bus, real ISO-TP/UDS), through the engine's worker."""

from __future__ import annotations

from pathlib import Path

from fota_studio.engine.ecu_info import EcuInfo, read_ecu_info, submit_read_ecu_info
from fota_studio.engine.engine import Engine
from fota_studio.protocols.bus import BusSettings
from tests.fakes.flash import fast_ecu, fast_sim_options, open_tester_bus, sim_ecu


def test_reads_version_dids_and_live_preconditions_through_the_engine(
    can_channel: str, tmp_path: Path
) -> None:
    ecu = fast_ecu("VCU")
    opts = fast_sim_options(supply_voltage_mv=12_345, vehicle_speed_kmh=0)
    with (
        sim_ecu(ecu, can_channel, tmp_path, options=opts, initial_version="3.1.0"),
        Engine() as engine,
    ):
        engine.open_channel("CAN1", BusSettings(interface="virtual", channel=can_channel))
        info = submit_read_ecu_info(engine, ecu).result(timeout=20)
    assert isinstance(info, EcuInfo)
    assert info.application_answers and not info.in_bootloader
    assert info.version == "3.1.0"
    assert info.dids["VIN"] == opts.vin
    values = {p.name: p for p in info.preconditions}
    assert values["Supply voltage"].value == "12.345 V"
    assert values["Supply voltage"].ok is True
    assert values["Machine stationary"].ok is True
    assert info.blocking == ()


def test_moving_machine_is_a_blocking_precondition(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu("VCU")
    opts = fast_sim_options(vehicle_speed_kmh=12)
    with (
        sim_ecu(ecu, can_channel, tmp_path, options=opts, initial_version="3.1.0"),
        open_tester_bus(can_channel) as (bus, notifier),
    ):
        info = read_ecu_info(bus, notifier, ecu)
    moving = next(p for p in info.preconditions if p.name == "Machine stationary")
    assert moving.ok is False and moving.value == "12 km/h"
    assert moving in info.blocking


def test_silent_application_blocks_unless_skippable(can_channel: str) -> None:
    ecu = fast_ecu("VCU")
    ecu.uds.preconditions[1].skippable = True
    ecu.uds.preconditions[1].skip_reason = "the bench supply is fixed at 13.2 V"
    with open_tester_bus(can_channel) as (bus, notifier):  # nobody answers on this bus
        info = read_ecu_info(bus, notifier, ecu)
    assert not info.application_answers and not info.in_bootloader
    assert info.version is None
    assert "does not answer" in info.problem
    assert [p.name for p in info.blocking] == ["Machine stationary"]
    assert [(p.name, p.skip_reason) for p in info.skipped] == [
        ("Supply voltage", "the bench supply is fixed at 13.2 V")
    ]


def test_ecu_without_application_is_reported_in_its_bootloader(
    can_channel: str, tmp_path: Path
) -> None:
    ecu = fast_ecu("VCU")
    with (
        sim_ecu(ecu, can_channel, tmp_path, options=fast_sim_options(), initial_version=None),
        open_tester_bus(can_channel) as (bus, notifier),
    ):
        info = read_ecu_info(bus, notifier, ecu)
    assert info.in_bootloader and info.version is None
    assert "bootloader" in info.problem
    assert info.blocking == ()  # a re-run checks the preconditions in the bootloader
