"""Real adapters as they behave (issue 20), held with an emulated slcan adapter on a pty.

`tests/fakes/slcan_device.SlcanDevice` speaks the Lawicel protocol byte-exact on a pseudo-terminal
and bridges to a python-can virtual bus with the simulated ECU behind it; python-can's real
slcan driver (through `protocols.bus.CheckedSlcanBus`) and pyserial talk to it like to a CANable.
Fault modes: silent, refuses open (BEL to `O`), unplugged mid-transfer (pty master closed).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import can
import pytest

from fota_studio.core.errors import (
    AdapterError,
    ConfigurationError,
    PreconditionError,
    TransferError,
)
from fota_studio.core.events import EngineEvent, JobFailed, LogLine
from fota_studio.engine.doctor import Status, run_doctor
from fota_studio.engine.engine import Engine
from fota_studio.engine.flash_job import FlashResult
from fota_studio.infra.connections import ChannelConnection, parse_option_text
from fota_studio.protocols.bus import (
    SLCAN_SLEEP_AFTER_OPEN_S,
    BusSettings,
    CheckedSlcanBus,
    bus_kwargs,
    open_bus,
)
from fota_studio.sim.uds_ecu import SimEcu
from tests.fakes import sim_rig
from tests.fakes.slcan_device import SlcanDevice
from tests.helpers.cli import cli

#: Upper bound for one flash here (the emulated flash takes about a second).
FLASH_BOUND_S = 60.0


@contextlib.contextmanager
def _vcu_behind_slcan(
    can_channel: str, tmp_path: Path, **device: Any
) -> Iterator[tuple[SimEcu, SlcanDevice]]:
    """The fast VCU simulated on `can_channel` and an slcan adapter (`device`: its options)
    on the same bus."""
    with (
        sim_rig.sim_ecu(sim_rig.fast_ecu(), can_channel, tmp_path / "sim") as sim,
        SlcanDevice(can_channel, **device) as dev,
    ):
        yield sim, dev


def _slcan(port: str, **kw: object) -> BusSettings:
    return BusSettings("slcan", port, **kw)  # type: ignore[arg-type]


# -- the doctor ------------------------------------------------------------------------------


def _doctor(port: str, *argv: str) -> int:
    """Exit code of `fota-studio doctor --interface slcan --channel <port> <argv>`."""
    return cli(None, "doctor", "--interface", "slcan", "--channel", port, *argv, log_level="ERROR")


def test_doctor_fails_for_a_silent_port(capsys: pytest.CaptureFixture[str]) -> None:
    with SlcanDevice("unused-silent", mode="silent") as dev:
        code = _doctor(dev.port)
    out = capsys.readouterr().out
    assert code == 1, out
    assert "adapter silent: nothing answers the slcan commands" in out
    assert "Verdict: PROBLEM" in out and "acknowledged" not in out


def test_doctor_fails_for_an_adapter_that_refuses_to_open(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with SlcanDevice("unused-refuse", mode="refuse_open") as dev:
        code = _doctor(dev.port)
        assert dev.commands[:4] == ["V", "C", "S6", "O"]
    out = capsys.readouterr().out
    assert code == 1, out
    assert "adapter refused to open" in out and "BEL" in out
    assert "Verdict: PROBLEM" in out


def test_doctor_without_an_ecu_cannot_prove_the_ack(
    can_channel: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Healthy adapter, another node on the bus, but no ECU configured: slcan cannot say
    # whether its frames were acknowledged, so the verdict is NOT PROVEN, never OK.
    peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        with SlcanDevice(can_channel) as dev:
            code = _doctor(dev.port, "--listen-s", "0.05")
            assert "V" in dev.commands and "N" in dev.commands
    finally:
        peer.shutdown()
    out = capsys.readouterr().out
    assert code == 3, out
    assert "slcan adapter answers: hardware version 10, software version 13" in out
    assert "serial number FS42" in out
    assert "ack: cannot be checked on this interface" in out
    assert "the probe frame was acknowledged" not in out
    assert "What slcan can report: bus state: no, error frames: no, ACK: no" in out
    assert "Verdict: NOT PROVEN" in out


def test_doctor_ok_for_a_healthy_adapter_with_an_ecu_behind_it(
    can_channel: str, tmp_path: Path
) -> None:
    with _vcu_behind_slcan(can_channel, tmp_path) as (sim, dev):
        ecu = sim.ecu
        report = run_doctor(_slcan(dev.port), listen_s=0.05, ecu=ecu)
    assert report.ok and report.proven, report.to_text()
    names = [c.name for c in report.checks]
    assert names == ["driver", "open", "adapter", "bus", "peer", "ack"]
    assert all(c.status is Status.OK for c in report.checks)
    peer = report.check("peer")
    assert peer is not None and "VCU answered TesterPresent" in peer.summary
    assert "Verdict: OK" in report.to_text()
    assert report.to_dict()["capabilities"]["ack"] == "no"


def test_doctor_names_a_silent_ecu_behind_a_healthy_adapter(can_channel: str) -> None:
    with SlcanDevice(can_channel) as dev:
        report = run_doctor(_slcan(dev.port), listen_s=0.05, ecu=sim_rig.fast_ecu())
    err = report.first_error
    assert err is not None and err.name == "peer"
    assert "VCU does not answer TesterPresent 3E 00" in err.summary


# -- settings each interface can do ----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"bitrate_bps": 83_333}, "slcan cannot run 83,333 bit/s"),
        ({"fd": True, "data_bitrate_bps": 4_000_000}, "2,000,000, 5,000,000"),
        ({"options": {"sleep_after_open": -1}}, "sleep_after_open -1 is below 0"),
        ({"options": {"tty_baudrate": 12_345}}, "tty_baudrate 12345 is not one of"),
        ({"options": {"warp": 1}}, "no option 'warp'"),
    ],
)
def test_slcan_settings_it_cannot_do_are_refused_when_saved(
    change: dict[str, object], words: str
) -> None:
    from dataclasses import replace

    conn = replace(ChannelConnection("CAN1", "slcan", "/dev/ttyACM0"), **change)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=words):
        conn.validate()


def test_slcan_settings_it_can_do_are_accepted() -> None:
    for bitrate in (83_300, 125_000, 500_000, 750_000, 1_000_000):
        ChannelConnection("CAN1", "slcan", "/dev/ttyACM0", bitrate_bps=bitrate).validate()
    for data in (2_000_000, 5_000_000):
        ChannelConnection("CAN1", "slcan", "x", fd=True, data_bitrate_bps=data).validate()
    assert parse_option_text("slcan", "sleep_after_open=0.25") == ("sleep_after_open", 0.25)
    with pytest.raises(ConfigurationError, match="no option"):
        parse_option_text("pcan", "sleep_after_open=1")


def test_open_refuses_a_bitrate_the_interface_cannot_do_before_opening() -> None:
    # Not "cannot open slcan channel" with serial-port advice: the real cause, first.
    with pytest.raises(AdapterError) as info:
        open_bus(_slcan("/dev/nonexistent-fota", bitrate_bps=83_333))
    text = str(info.value)
    assert "slcan cannot run 83,333 bit/s" in text and "83,300" in text
    assert "serial port" not in text


def test_sleep_after_open_is_passed_as_configured(can_channel: str) -> None:
    assert bus_kwargs(_slcan("x"))["sleep_after_open"] == SLCAN_SLEEP_AFTER_OPEN_S == 0.1
    with SlcanDevice(can_channel) as dev:
        bus = open_bus(_slcan(dev.port))
        try:
            assert isinstance(bus, CheckedSlcanBus)
            assert bus.sleep_after_open_s == SLCAN_SLEEP_AFTER_OPEN_S
        finally:
            bus.shutdown()
        conn = ChannelConnection("CAN1", "slcan", dev.port, options={"sleep_after_open": 0.3})
        conn.validate()
        bus = open_bus(conn.bus_settings())
        try:
            assert bus.sleep_after_open_s == 0.3
        finally:
            bus.shutdown()
    assert ChannelConnection.from_dict("CAN1", conn.to_dict()) == conn


# -- adapter faults named as adapter faults ------------------------------------------------------


def test_an_adapter_that_never_opened_is_not_an_ecu_problem(can_channel: str) -> None:
    engine = Engine()
    try:
        with (
            SlcanDevice(can_channel, mode="refuse_open") as dev,
            pytest.raises(AdapterError) as info,
        ):
            engine.open_channel("CAN1", _slcan(dev.port))
        text = str(info.value)
        assert f"slcan channel '{dev.port}'" in text and "refused to open" in text
        assert "the ECU was never touched" in text
    finally:
        engine.shutdown()


def test_an_unchecked_bus_that_never_opened_says_the_ecu_was_never_touched(
    can_channel: str, tmp_path: Path
) -> None:
    # A bus python-can "opened" without reading the answers (as it does on its own): the first
    # request meets silence. The flash must not say the ECU stays in its bootloader.
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    engine = Engine()
    with _vcu_behind_slcan(can_channel, tmp_path, mode="refuse_open") as (sim, dev):
        ecu = sim.ecu
        bus = can.Bus(
            interface="slcan",
            channel=dev.port,
            bitrate=500_000,
            sleep_after_open=0,
            ignore_config=True,
        )
        try:
            engine.attach_channel("CAN1", bus)
            result: FlashResult = engine.submit_flash(
                "CAN1", ecu, image, expected_version=sim_rig.TARGET_VERSION, boot_wait_s=1.5
            ).result(FLASH_BOUND_S)
        finally:
            engine.shutdown()
            bus.shutdown()
        assert sim.state().mode != "bootloader"
    assert not result.ok
    err = result.error
    assert isinstance(err, TransferError | PreconditionError)
    assert "VCU never answered, so the ECU was never touched" in str(err)
    assert "check the adapter first" in str(err)
    assert "stays in its bootloader" not in str(err)


def test_unplugged_mid_flash_is_one_adapter_message_and_a_rerun_succeeds(
    can_channel: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    thread_deaths: list[str],
) -> None:
    # A thread that dies on an exception (the Notifier's receive thread did) goes through
    # threading.excepthook, which prints the raw traceback on stderr: collect them here.
    ecu = sim_rig.fast_ecu()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    events: list[EngineEvent] = []
    with sim_rig.sim_ecu(ecu, can_channel, tmp_path / "sim") as sim:
        # Tester frame 60 falls into the TransferData of the first segment.
        with SlcanDevice(can_channel, unplug_after_tx_frames=60) as dev:
            engine = Engine(events.append)
            try:
                engine.open_channel("CAN1", _slcan(dev.port))
                result: FlashResult = engine.submit_flash(
                    "CAN1", ecu, image, expected_version=sim_rig.TARGET_VERSION, boot_wait_s=1.5
                ).result(FLASH_BOUND_S)
                # The notifier's receive thread meets the vanished port too.
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline and not any(
                    isinstance(e, LogLine) and e.job_id == 0 for e in events
                ):
                    time.sleep(0.02)
            finally:
                engine.shutdown()
            assert dev.unplugged.is_set()
        assert not result.ok
        text = str(result.error)
        assert f"adapter slcan:{dev.port} vanished (device disconnected)" in text
        assert "Input/output error" in text  # pyserial's own cause, kept
        assert "plug it in again" in text and "bus-off" not in text
        # Where the flash left the ECU: the step-level message says it.
        assert "VCU's memory was erased: it stays in its bootloader" in text
        failed = [e for e in events if isinstance(e, JobFailed)]
        assert len(failed) == 1 and failed[0].error == text
        adapter_events = [e for e in events if isinstance(e, LogLine) and e.job_id == 0]
        assert thread_deaths == []
        assert len(adapter_events) == 1, adapter_events  # one event, however long it is gone
        assert f"adapter slcan:{dev.port} vanished" in adapter_events[0].text
        err = capfd.readouterr().err
        assert "Traceback" not in err and "Exception in thread" not in err, err
        assert thread_deaths == []
        sim_rig.wait_until_settled(sim)

        # The same ECU through a healthy adapter: the flash runs again and succeeds.
        with SlcanDevice(can_channel) as healthy:
            engine = Engine()
            try:
                engine.open_channel("CAN1", _slcan(healthy.port))
                again: FlashResult = engine.submit_flash(
                    "CAN1", ecu, image, expected_version=sim_rig.TARGET_VERSION, boot_wait_s=1.5
                ).result(FLASH_BOUND_S)
            finally:
                engine.shutdown()
        assert again.ok, again.error
        assert sim_rig.memory_matches(sim, image)


def _fast_demo_ea_file(path: Path) -> None:
    """The demo EA with the VCU timed like `sim_rig.fast_ecu` (the simulated ECU boots fast)."""
    from fota_studio.core.ea_format import save_ea_file
    from fota_studio.demo.catalog import demo_architecture

    ea = demo_architecture()
    fast = sim_rig.fast_ecu()
    ea.ecus = [fast if e.name == fast.name else e for e in ea.ecus]
    save_ea_file(ea, path)


def test_cli_flash_through_slcan_unplugged_then_healthy(
    can_channel: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    thread_deaths: list[str],
) -> None:
    from fota_studio.core.firmware import to_hex

    ea_path = tmp_path / "ea.yaml"
    _fast_demo_ea_file(ea_path)
    fw = tmp_path / "vcu.hex"
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    fw.write_bytes(to_hex(image))

    def flash(port: str) -> int:
        files = ("--ea", str(ea_path), "--ecu", "VCU", "--firmware", str(fw))
        adapter = ("--interface", "slcan", "--channel", port)
        return cli(
            tmp_path / "ws",
            *("flash", *files, "--expect-version", sim_rig.TARGET_VERSION, *adapter),
            "--no-progress",
            log_level="ERROR",
        )

    with sim_rig.sim_ecu(sim_rig.fast_ecu(), can_channel, tmp_path / "sim") as sim:
        with SlcanDevice(can_channel, unplug_after_tx_frames=60) as dev:
            assert flash(dev.port) == 1
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err
        assert f"adapter slcan:{dev.port} vanished (device disconnected)" in errors[0]
        assert "Input/output error" in errors[0] and "plug it in again" in errors[0]
        assert err.rstrip().splitlines()[-1] == errors[0]  # it ends with that one message
        assert "Traceback" not in err and thread_deaths == []
        sim_rig.wait_until_settled(sim)
        with SlcanDevice(can_channel) as healthy:
            assert flash(healthy.port) == 0, capsys.readouterr().err
        assert sim_rig.memory_matches(sim, image)
    assert f"verified version {sim_rig.TARGET_VERSION}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("bitrate", "data", "codes"),
    [(500_000, 2_000_000, ["S6", "Y2"]), (83_300, 5_000_000, ["S9", "Y5"])],
)
def test_slcan_can_fd_opens_with_its_data_rate_and_carries_fd_frames(
    can_channel: str, bitrate: int, data: int, codes: list[str]
) -> None:
    with SlcanDevice(can_channel, fd=True) as dev:
        peer = can.Bus(interface="virtual", channel=can_channel, fd=True, ignore_config=True)
        bus = open_bus(_slcan(dev.port, bitrate_bps=bitrate, fd=True, data_bitrate_bps=data))
        try:
            assert (dev.bitrate_bps, dev.data_bitrate_bps) == (bitrate, data)
            assert dev.commands[:5] == ["V", "C", *codes, "O"]
            assert bus.protocol is can.CanProtocol.CAN_FD
            payload = bytes(range(64))
            bus.send(
                can.Message(
                    arbitration_id=0x7E0,
                    data=payload,
                    is_fd=True,
                    bitrate_switch=True,
                    is_extended_id=False,
                )
            )
            got = peer.recv(2.0)
            assert got is not None and got.is_fd and got.bitrate_switch and got.data == payload
            peer.send(
                can.Message(
                    arbitration_id=0x7E8, data=payload[:12], is_fd=True, is_extended_id=False
                )
            )
            back = bus.recv(2.0)
            assert back is not None and back.is_fd and back.data == payload[:12]
        finally:
            bus.shutdown()
            peer.shutdown()


def test_cli_doctor_on_a_saved_slcan_connection_asks_the_eas_ecu(
    can_channel: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The technician's path: CAN1 mapped to an slcan adapter in the workspace (the CLI seeds a
    # new workspace with the demo EA); `doctor` asks VCU there and proves the connection.
    from fota_studio.infra.connections import set_connection
    from fota_studio.infra.workspace import Workspace

    ws_dir = tmp_path / "ws"
    with _vcu_behind_slcan(can_channel, tmp_path, fd=True) as (_, dev):
        with Workspace.open(ws_dir) as ws:
            set_connection(
                ws,
                ChannelConnection(
                    "CAN1",
                    "slcan",
                    dev.port,
                    fd=True,
                    data_bitrate_bps=2_000_000,
                    options={"sleep_after_open": 0.05},
                ),
            )
        doctor = ("doctor", "--listen-s", "0.05", "--channel", "CAN1", "--ecu", "VCU")
        code = cli(ws_dir, *doctor, log_level="ERROR")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "CAN1 → slcan:" in out and "VCU answered TesterPresent" in out
    assert "Verdict: OK" in out


def test_cli_doctor_refuses_settings_and_options_before_opening(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _doctor("/dev/null", "--bitrate", "83333") == 1
    assert "slcan cannot run 83,333 bit/s" in capsys.readouterr().err
    assert _doctor("/dev/null", "--option", "warp=9") == 1
    assert "slcan has no option 'warp'" in capsys.readouterr().err


def test_firmware_that_acknowledges_nothing_still_opens_and_is_proven_by_the_ecu(
    can_channel: str, tmp_path: Path
) -> None:
    # The original CANable firmware answers V but acknowledges no command (no CR/BEL): it must
    # open (it is there), and the doctor says a refusal could not be seen; the ECU proves it.
    with _vcu_behind_slcan(can_channel, tmp_path, mode="quiet") as (sim, dev):
        ecu = sim.ecu
        bus = open_bus(_slcan(dev.port))
        try:
            assert isinstance(bus, CheckedSlcanBus)
            assert bus.identity == "fw-quiet 1.0" and bus.acknowledges is False
            deadline = time.monotonic() + 2.0  # nothing to wait for but the device's state
            while not dev.is_open and time.monotonic() < deadline:
                time.sleep(0.01)
            assert dev.is_open
        finally:
            bus.shutdown()
        report = run_doctor(_slcan(dev.port), listen_s=0.05, ecu=ecu)
    assert report.ok and report.proven, report.to_text()
    adapter = report.check("adapter")
    assert adapter is not None and "version 'fw-quiet 1.0'" in adapter.summary
    assert "acknowledges no command" in adapter.advice
