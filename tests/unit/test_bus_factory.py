"""Bus factory: explicit settings per interface, AdapterError for adapters that cannot open."""

from __future__ import annotations

import can
import pytest

from fota_studio.core.errors import AdapterError
from fota_studio.protocols.bus import BusSettings, bus_kwargs, detect_configs, open_bus


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
