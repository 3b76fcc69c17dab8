"""Bus factory: explicit settings per interface, AdapterError for adapters that cannot open."""

from __future__ import annotations

import can
import pytest

from fota_studio.core.errors import AdapterError
from fota_studio.protocols.bus import (
    CAPABILITIES,
    BusSettings,
    Capability,
    FaultKind,
    bus_kwargs,
    describe_adapter_fault,
    detect_configs,
    interface_limits,
    open_bus,
    settings_problems,
)


def test_virtual_bus_opens_and_passes_frames(can_channel: str) -> None:
    a = open_bus(BusSettings("virtual", can_channel))
    b = open_bus(BusSettings("virtual", can_channel))
    try:
        a.send(can.Message(arbitration_id=0x123, data=b"\x01\x02", is_extended_id=False))
        msg = b.recv(1.0)
        assert msg is not None and msg.arbitration_id == 0x123 and msg.data == b"\x01\x02"
    finally:
        a.shutdown()
        b.shutdown()


def test_virtual_fd_sets_protocol(can_channel: str) -> None:
    bus = open_bus(BusSettings("virtual", can_channel, fd=True))
    try:
        assert bus.protocol == can.CanProtocol.CAN_FD
    finally:
        bus.shutdown()


def test_kwargs_always_ignore_config() -> None:
    kw = bus_kwargs(BusSettings("pcan", "PCAN_USBBUS1", extra={"ignore_config": False}))
    assert kw["ignore_config"] is True
    assert kw["bitrate"] == 500_000


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (BusSettings("vector", "0", fd=True, listen_only=True), {"fd": True, "listen_only": True}),
        (BusSettings("kvaser", "0", listen_only=True), {"driver_mode": False}),
        (BusSettings("pcan", "PCAN_USBBUS1", listen_only=True), {"state": can.BusState.PASSIVE}),
        (
            BusSettings("ixxat", "0", fd=True, data_bitrate_bps=4_000_000),
            {"data_bitrate": 4_000_000},
        ),
        (BusSettings("socketcan", "can0", fd=True), {"fd": True}),
    ],
)
def test_kwargs_per_interface(settings: BusSettings, expected: dict[str, object]) -> None:
    kw = bus_kwargs(settings)
    for key, value in expected.items():
        assert kw[key] == value
    assert "bitrate" not in kw or settings.interface != "socketcan"


def test_pcan_fd_uses_bit_timing() -> None:
    kw = bus_kwargs(BusSettings("pcan", "PCAN_USBBUS1", fd=True, data_bitrate_bps=2_000_000))
    timing = kw["timing"]
    assert isinstance(timing, can.BitTimingFd)
    assert timing.nom_bitrate == 500_000 and timing.data_bitrate == 2_000_000


def test_unknown_interface_names_it() -> None:
    with pytest.raises(AdapterError, match="nosuchcan"):
        open_bus(BusSettings("nosuchcan", "0"))


@pytest.mark.parametrize("iface", ["pcan", "kvaser", "vector", "ixxat", "gs_usb", "socketcan"])
def test_missing_driver_is_adapter_error(iface: str) -> None:
    # None of these drivers/devices exist on the CI machine: each must fail as AdapterError
    # naming the interface, never as a raw python-can/OS exception.
    with pytest.raises(AdapterError) as info:
        open_bus(BusSettings(iface, "0"))
    assert iface in str(info.value)
    assert info.value.hint


def test_detect_configs_never_raises() -> None:
    configs = detect_configs(["virtual", "nosuchcan"], timeout_s=2.0)
    assert isinstance(configs, list)
    for cfg in configs:
        assert "interface" in cfg and "channel" in cfg


def test_paced_bus_gets_its_bitrates() -> None:
    """The bus timing model must pace at the configured rates, not its defaults."""
    from fota_studio.protocols.bus import BusSettings, bus_kwargs, open_bus

    settings = BusSettings(
        interface="fota_sim",
        channel="paced-kw",
        bitrate_bps=250_000,
        fd=True,
        data_bitrate_bps=4_000_000,
    )
    kw = bus_kwargs(settings)
    assert (kw["bitrate"], kw["data_bitrate"], kw["fd"]) == (250_000, 4_000_000, True)
    bus = open_bus(settings)
    try:
        assert bus.bitrate_bps == 250_000
    finally:
        bus.shutdown()


def _python_can_source(interface: str) -> str:
    """The source text of python-can's wrapper of `interface` (package: every module)."""
    import importlib.util
    from pathlib import Path

    module = can.interfaces.BACKENDS[interface][0]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    origin = Path(spec.origin)
    files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


@pytest.mark.parametrize("interface", sorted(CAPABILITIES))
def test_capability_table_matches_python_can(interface: str) -> None:
    """What the table says an interface reports is what python-can's wrapper implements: a
    `state` property (bus state) and `is_error_frame` messages (error frames)."""
    import re

    caps = CAPABILITIES[interface]
    source = _python_can_source(interface)
    implements_state = re.search(r"def state\b", source) is not None
    delivers_error_frames = re.search(r"is_error_frame\s*=(?!=)", source) is not None
    assert implements_state == (caps.bus_state is Capability.YES)
    assert delivers_error_frames == (caps.error_frames is Capability.YES)
    if caps.bus_state is Capability.NO and caps.error_frames is Capability.NO:
        # Nothing to see a missing ACK with, except a peer on a software bus.
        assert caps.ack is not Capability.YES


def test_slcan_limits_are_python_cans_tables() -> None:
    from can.interfaces.slcan import slcanBus

    lim = interface_limits("slcan")
    assert lim.bitrates_bps == tuple(sorted(slcanBus._BITRATES))
    assert lim.data_bitrates_bps == (2_000_000, 5_000_000)
    assert 83_300 in lim.bitrates_bps and 83_333 not in lim.bitrates_bps
    assert settings_problems("slcan", 500_000, True, 4_000_000) == [
        "slcan cannot run a CAN FD data bitrate of 4,000,000 bit/s; it offers 2,000,000, 5,000,000"
    ]
    assert settings_problems("virtual", 500_000, True, 4_000_000) == []
    assert settings_problems("gs_usb", 500_000, True, 2_000_000) == ["gs_usb cannot do CAN FD"]


def test_doctor_lists_what_each_interface_can_report(capsys: pytest.CaptureFixture[str]) -> None:
    from fota_studio.cli import main

    assert main(["--log-level", "ERROR", "doctor", "--interfaces"]) == 0
    out = capsys.readouterr().out
    slcan_row = next(line for line in out.splitlines() if line.startswith("slcan "))
    assert slcan_row.split() == ["slcan", "no", "no", "no", "no"]
    assert any(line.split()[:3] == ["pcan", "yes", "yes"] for line in out.splitlines())


def test_describe_adapter_fault_keeps_the_cause() -> None:
    import errno

    try:
        try:
            raise OSError(errno.EIO, "Input/output error")
        except OSError as inner:
            raise can.CanOperationError("Could not read from serial device") from inner
    except can.CanOperationError as exc:
        fault = describe_adapter_fault(exc, "slcan:/dev/ttyACM0")
    assert fault.kind is FaultKind.VANISHED
    assert fault.message() == (
        "adapter slcan:/dev/ttyACM0 vanished (device disconnected): Could not read from serial "
        "device: [Errno 5] Input/output error"
    )
    assert "plug it in again" in fault.advice
    assert describe_adapter_fault(can.CanOperationError("bus-off")).kind is FaultKind.BUS_OFF
    other = describe_adapter_fault(can.CanOperationError("PCAN_ERROR_QXMTFULL"))
    assert other.kind is FaultKind.DRIVER and "driver" in other.advice
