"""Connection doctor: driver search, open failures, error frames / bus-off, no ACK, timer, CLI.

Driver presence is simulated by monkeypatching the library loader (the only way to have a
PCAN or Kvaser library "present" on a CI machine); everything on the bus uses real python-can
`virtual` buses.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import json
from pathlib import Path
from typing import Any

import can
import pytest
from can.interfaces.virtual import VirtualBus

from fota_studio.cli import main
from fota_studio.core.errors import AdapterError
from fota_studio.engine import doctor
from fota_studio.engine.doctor import (
    CheckResult,
    Status,
    check_driver,
    check_socketcan_link,
    check_timer,
    classify_open_error,
    measure_sleep_granularity_s,
    run_doctor,
)
from fota_studio.infra.connections import ChannelConnection, set_connection
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings


def _library_present(*names: str) -> bool:
    return any(doctor._load_library(n) for n in names)


@pytest.fixture
def no_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    """No vendor library can be loaded or found."""
    monkeypatch.setattr(doctor, "_load_library", lambda name: False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)


# -- driver libraries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interface", "file_name", "vendor_word"),
    [("pcan", "libpcanbasic.so", "peak-system"), ("kvaser", "libcanlib.so.1", "kvaser.com")],
)
def test_missing_linux_driver_library_is_named_with_where_to_get_it(
    interface: str, file_name: str, vendor_word: str
) -> None:
    if _library_present(file_name, file_name.split(".so")[0] + ".so"):
        pytest.skip(f"{file_name} is installed on this machine")
    report = run_doctor(BusSettings(interface, "PCAN_USBBUS1"), platform="linux")
    assert not report.ok
    err = report.first_error
    assert err is not None and err.name == "driver"
    assert "driver library missing" in err.summary and file_name in err.summary
    assert vendor_word in err.advice.lower() and file_name in err.advice
    assert [c.name for c in report.checks] == ["driver"]  # nothing opened after that


@pytest.mark.parametrize(
    ("interface", "expected_names"),
    [
        ("pcan", ["PCANBasic.dll"]),
        ("vector", ["vxlapi64.dll"]),
        ("kvaser", ["canlib32.dll"]),
        ("ixxat", ["vcinpl2.dll", "vcinpl64.dll"]),
    ],
)
def test_windows_driver_search_names_the_dll(
    no_libraries: None, interface: str, expected_names: list[str]
) -> None:
    result = check_driver(interface, platform="win32")
    assert result.status is Status.ERROR
    for name in expected_names:
        assert name in result.summary and name in result.advice
    assert "PATH" in result.advice


def test_driver_found_through_the_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "_load_library", lambda name: name == "libpcanbasic.so")
    result = check_driver("pcan", platform="linux")
    assert result.status is Status.OK and "libpcanbasic.so" in result.summary


def test_driver_found_through_find_library(monkeypatch: pytest.MonkeyPatch) -> None:
    path = "/usr/lib/libcanlib.so.1.99"
    monkeypatch.setattr(doctor, "_load_library", lambda name: name == path)
    monkeypatch.setattr(
        ctypes.util, "find_library", lambda name: path if name == "canlib" else None
    )
    result = check_driver("kvaser", platform="linux")
    assert result.status is Status.OK and path in result.summary


def test_windows_only_driver_on_linux_says_so() -> None:
    result = check_driver("vector", platform="linux")
    assert result.status is Status.ERROR
    assert "not available on this operating system" in result.summary
    assert "vxlapi" in result.advice.lower() or "XL Driver" in result.advice


def test_gs_usb_needs_pyusb_then_libusb(
    monkeypatch: pytest.MonkeyPatch, no_libraries: None
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "usb" else real_find_spec(n, *a)
    )
    missing_pkg = check_driver("gs_usb", platform="linux")
    assert missing_pkg.status is Status.ERROR and "pyusb" in missing_pkg.summary
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object())
    missing_lib = check_driver("gs_usb", platform="linux")
    assert missing_lib.status is Status.ERROR and "libusb-1.0.so.0" in missing_lib.summary
    assert "libusb-1.0.dll" in check_driver("gs_usb", platform="win32").summary


def test_software_buses_need_no_driver() -> None:
    for iface in ("virtual", "fota_sim"):
        assert check_driver(iface).status is Status.OK


# -- opening the adapter -----------------------------------------------------------------------


def test_missing_socketcan_interface_is_device_not_found() -> None:
    report = run_doctor(BusSettings("socketcan", "fotanope0"), platform="linux")
    err = report.first_error
    assert err is not None and err.name == "open"
    assert "device not found" in err.summary and "fotanope0" in err.summary


def test_socketcan_interface_down(tmp_path: Path) -> None:
    dev = tmp_path / "can7"
    dev.mkdir()
    (dev / "operstate").write_text("down\n")
    (dev / "flags").write_text("0x80\n")
    result = check_socketcan_link("can7", sysfs=tmp_path)
    assert result is not None and result.status is Status.ERROR
    assert "down" in result.summary and "ip link set can7 up" in result.advice
    (dev / "flags").write_text("0x1\n")
    assert check_socketcan_link("can7", sysfs=tmp_path) is None


@pytest.mark.parametrize(
    ("message", "summary_word"),
    [
        ("Cannot open pcan channel 'PCAN_USBBUS1': The channel is already in use", "busy"),
        ("Cannot open socketcan channel 'can0': [Errno 16] Device or resource busy", "busy"),
        ("Cannot open pcan channel 'PCAN_USBBUS3': Hardware not available", "not found"),
        ("Cannot open kvaser channel '4': No device found", "not found"),
        ("Cannot open pcan channel 'X': something else entirely", "cannot open"),
    ],
)
def test_open_failures_are_classified(
    monkeypatch: pytest.MonkeyPatch, message: str, summary_word: str
) -> None:
    monkeypatch.setattr(doctor, "_load_library", lambda name: True)  # the driver is "installed"

    def opener(settings: BusSettings) -> can.BusABC:
        raise AdapterError(message, hint="check the adapter")

    settings = BusSettings("pcan", "PCAN_USBBUS1")
    report = run_doctor(settings, opener=opener, platform="linux")
    err = report.first_error
    assert err is not None and err.name == "open" and summary_word in err.summary
    assert message in err.advice  # the raw driver text is kept for the expert
    assert classify_open_error(settings, AdapterError(message)).summary == err.summary


# -- on the bus --------------------------------------------------------------------------------


def test_nothing_else_on_the_bus_is_no_ack(can_channel: str) -> None:
    report = run_doctor(BusSettings("virtual", can_channel), listen_s=0.05)
    err = report.first_error
    assert err is not None and err.name == "ack" and "no ACK" in err.summary
    assert [c.name for c in report.checks][:3] == ["driver", "open", "bus"]
    assert "Verdict: PROBLEM: no ACK" in report.to_text()


def test_healthy_bus_with_a_peer(can_channel: str) -> None:
    peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        seen: list[CheckResult] = []
        report = run_doctor(
            BusSettings("virtual", can_channel), listen_s=0.05, on_check=seen.append
        )
        probe = peer.recv(timeout=1.0)
    finally:
        peer.shutdown()
    assert report.ok, report.to_text()
    assert [c.status for c in report.checks] == [Status.OK] * 4
    assert seen == list(report.checks)
    assert probe is not None and probe.arbitration_id == doctor.PROBE_ARBITRATION_ID
    data = report.to_dict()
    assert data["ok"] is True and json.dumps(data)


def test_listen_only_sends_nothing(can_channel: str) -> None:
    peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        report = run_doctor(BusSettings("virtual", can_channel, listen_only=True), listen_s=0.05)
        assert peer.recv(timeout=0.1) is None
    finally:
        peer.shutdown()
    assert report.ok and report.check("ack") is not None
    assert report.check("ack").status is Status.SKIPPED  # type: ignore[union-attr]


def test_error_frames_point_at_the_bitrate(can_channel: str) -> None:
    peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)

    def on_check(check: CheckResult) -> None:
        if check.name == "open":  # the doctor's bus exists now: disturb the bus
            peer.send(can.Message(is_error_frame=True))
            peer.send(can.Message(arbitration_id=0x123, data=b"\x01"))

    try:
        report = run_doctor(
            BusSettings("virtual", can_channel, bitrate_bps=250_000),
            listen_s=0.3,
            expected_bitrate_bps=500_000,
            on_check=on_check,
        )
    finally:
        peer.shutdown()
    err = report.first_error
    assert err is not None and err.name == "bus"
    assert "error frame" in err.summary and "bitrate mismatch" in err.summary
    assert "500000 bit/s" in err.advice and "250000 bit/s" in err.advice
    assert report.check("ack") is None  # a probe on a broken bus would only add errors


class _BusOffBus(VirtualBus):  # type: ignore[misc]
    """A virtual bus whose controller reports bus-off (what an adapter says after errors)."""

    @property
    def state(self) -> can.BusState:
        return can.BusState.ERROR


def test_bus_off_is_explained(can_channel: str) -> None:
    report = run_doctor(
        BusSettings("virtual", can_channel),
        listen_s=0.05,
        opener=lambda s: _BusOffBus(channel=s.channel),
    )
    err = report.first_error
    assert err is not None and "bus-off" in err.summary
    assert "termination" in err.advice and "bitrate" in err.advice


def test_bitrate_differs_from_the_ea_is_a_warning(can_channel: str) -> None:
    peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        report = run_doctor(
            BusSettings("virtual", can_channel), listen_s=0.05, expected_bitrate_bps=250_000
        )
    finally:
        peer.shutdown()
    bus_check = report.check("bus")
    assert report.ok and bus_check is not None and bus_check.status is Status.WARNING


# -- timer -------------------------------------------------------------------------------------


def test_windows_timer_tick_is_advised() -> None:
    coarse = check_timer(0.0156, platform="win32")
    assert coarse.status is Status.WARNING and "15.6 ms" in coarse.summary
    assert "High performance" in coarse.advice
    assert check_timer(0.0011, platform="win32").status is Status.OK
    assert measure_sleep_granularity_s(samples=3) >= 0.001


def test_timer_check_runs_on_windows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "measure_sleep_granularity_s", lambda samples=20: 0.0156)
    monkeypatch.setattr(doctor, "_load_library", lambda name: False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    win = run_doctor(BusSettings("pcan", "PCAN_USBBUS1"), platform="win32")
    assert [c.name for c in win.checks] == ["driver", "timer"]
    linux = run_doctor(BusSettings("pcan", "PCAN_USBBUS1"), platform="linux")
    assert linux.check("timer") is None


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_explicit_interface_missing_driver(
    capsys: pytest.CaptureFixture[str], no_libraries: None
) -> None:
    code = main(["--log-level", "ERROR", "doctor", "--interface", "pcan", "--channel", "X"])
    out = capsys.readouterr().out
    assert code == 1
    assert "driver library missing" in out and "libpcanbasic.so" in out


def test_cli_logical_channel_from_the_workspace(
    workspace_dir: Path, can_channel: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(workspace_dir) as ws:
        set_connection(ws, ChannelConnection("CAN1", "virtual", can_channel))
    args = ["--log-level", "ERROR", "--workspace", str(workspace_dir), "doctor", "--listen-s", "0"]
    assert main([*args, "--channel", "CAN1"]) == 1  # nobody else on the channel
    assert "no ACK" in capsys.readouterr().out
    peer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        # The demo EA's ECUs on CAN1 are not running here: without --no-peer they must answer.
        assert main([*args, "--json"]) == 1
        assert "does not answer TesterPresent" in capsys.readouterr().out
        assert main([*args, "--json", "--no-peer"]) == 0
    finally:
        peer.shutdown()
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["connection"].startswith("CAN1 → virtual:")
