"""Adapter settings per logical channel: defaults, workspace persistence, validation, bit timing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import can
import pytest

from fota_studio.core.errors import ConfigurationError
from fota_studio.demo.catalog import demo_architecture
from fota_studio.infra.connections import (
    CONNECTIONS_SETTING,
    ChannelConnection,
    bus_settings_for,
    default_connection,
    ea_bitrate_mismatches,
    ea_channels,
    get_connection,
    load_connections,
    remove_connection,
    save_connections,
    set_connection,
)
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import open_bus


def test_demo_default_maps_can1_to_virtual_fota_demo(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        conn = get_connection(ws, "CAN1")
    assert (conn.interface, conn.channel) == ("virtual", "fota-demo")
    assert conn.logical_channel == "CAN1" and not conn.listen_only


def test_default_takes_bitrates_from_the_ea() -> None:
    ea = demo_architecture()
    assert ea_channels(ea) == ["CAN1"]
    conn = default_connection("CAN1", ea)
    # The demo BCU is CAN FD on CAN1, so the channel must be opened as FD.
    assert conn.fd is True
    assert conn.bitrate_bps == ea.ecus[0].connection.bitrate_bps
    other = default_connection("CAN2", ea)
    assert (other.interface, other.channel, other.fd) == ("virtual", "CAN2", False)


def test_saved_connection_survives_reopen(workspace_dir: Path) -> None:
    conn = ChannelConnection(
        "CAN1",
        "pcan",
        "PCAN_USBBUS1",
        bitrate_bps=250_000,
        fd=True,
        data_bitrate_bps=2_000_000,
        sample_point_pct=87.5,
        data_sample_point_pct=75.0,
        listen_only=True,
    )
    with Workspace.open(workspace_dir) as ws:
        set_connection(ws, conn)
        set_connection(ws, ChannelConnection("CAN2", "socketcan", "can1"))
    with Workspace.open(workspace_dir) as ws:
        conns = load_connections(ws)
        assert conns["CAN1"] == conn
        assert conns["CAN2"].interface == "socketcan"
        assert ws.get_setting(CONNECTIONS_SETTING)["format"] == 1
        assert remove_connection(ws, "CAN2") is True
        assert remove_connection(ws, "CAN2") is False
        assert get_connection(ws, "CAN2").interface == "virtual"  # back to the default


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"bitrate_bps": 83_333}, "cannot run 83,333 bit/s"),
        ({"bitrate_bps": 2_000_000}, "cannot run 2,000,000 bit/s"),
        ({"fd": True, "data_bitrate_bps": 20_000_000}, "data bitrate"),
        ({"sample_point_pct": 30.0}, "sample_point_pct"),
        ({"interface": " "}, "interface"),
        ({"channel": ""}, "channel"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(
    workspace_dir: Path, change: dict[str, object], word: str
) -> None:
    bad = replace(ChannelConnection("CAN1", "pcan", "PCAN_USBBUS1"), **change)  # type: ignore[arg-type]
    with Workspace.open(workspace_dir) as ws:
        with pytest.raises(ConfigurationError, match=word):
            set_connection(ws, bad)
        assert load_connections(ws) == {}


def test_unreadable_documents_raise_configuration_errors(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        ws.set_setting(CONNECTIONS_SETTING, {"format": 1, "channels": {"CAN1": {"bogus": 1}}})
        with pytest.raises(ConfigurationError, match="bogus"):
            load_connections(ws)
        ws.set_setting(CONNECTIONS_SETTING, {"format": 99, "channels": {}})
        with pytest.raises(ConfigurationError, match="format 99"):
            load_connections(ws)
        ws.set_setting(CONNECTIONS_SETTING, ["not", "a", "mapping"])
        with pytest.raises(ConfigurationError, match="not readable"):
            load_connections(ws)
        ws.set_setting(CONNECTIONS_SETTING, {"format": 1, "channels": {"CAN1": {"channel": "x"}}})
        with pytest.raises(ConfigurationError, match="missing setting 'interface'"):
            load_connections(ws)


def test_duplicate_logical_channels_are_refused(workspace_dir: Path) -> None:
    a = ChannelConnection("CAN1", "virtual", "a")
    with Workspace.open(workspace_dir) as ws, pytest.raises(ConfigurationError, match="same"):
        save_connections(ws, [a, replace(a, channel="b")])


def test_sample_points_become_a_bit_timing_where_supported() -> None:
    classic = ChannelConnection("CAN1", "pcan", "PCAN_USBBUS1", sample_point_pct=87.5)
    s = classic.bus_settings()
    timing = s.extra["timing"]
    assert isinstance(timing, can.BitTiming)
    assert timing.bitrate == 500_000 and timing.sample_point == pytest.approx(87.5, abs=1.0)
    fd = replace(classic, interface="kvaser", fd=True, data_sample_point_pct=70.0)
    timing_fd = fd.bus_settings().extra["timing"]
    assert isinstance(timing_fd, can.BitTimingFd)
    assert timing_fd.data_bitrate == 2_000_000
    assert timing_fd.data_sample_point == pytest.approx(70.0, abs=2.0)
    # Software buses and interfaces without a timing object ignore the sample point.
    soft = replace(classic, interface="virtual")
    assert not soft.supports_sample_point and "timing" not in soft.bus_settings().extra


def test_bus_settings_open_a_real_virtual_bus(workspace_dir: Path, can_channel: str) -> None:
    with Workspace.open(workspace_dir) as ws:
        set_connection(ws, ChannelConnection("CAN1", "virtual", can_channel, fd=True))
        settings = bus_settings_for(ws, "CAN1")
    assert settings.channel == can_channel and settings.fd
    bus = open_bus(settings)
    try:
        assert bus.protocol == can.CanProtocol.CAN_FD
    finally:
        bus.shutdown()


def test_ea_bitrate_mismatches_are_explained() -> None:
    ea = demo_architecture()
    good = default_connection("CAN1", ea)
    assert ea_bitrate_mismatches(good, ea) == []
    slow = replace(good, bitrate_bps=250_000, fd=False)
    problems = ea_bitrate_mismatches(slow, ea)
    assert any("expects" in p and "250000" in p for p in problems)
    assert any("CAN FD" in p for p in problems)
    assert "CAN1 → virtual:fota-demo" in good.describe()
