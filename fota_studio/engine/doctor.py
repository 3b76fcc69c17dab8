"""Connection doctor: check one CAN adapter end to end and explain each problem in plain words.

`run_doctor(settings)` runs the checks in order and stops at the first one that makes the rest
meaningless: (1) the vendor driver library / Python package the interface needs (the exact file
names searched and where to get them), (2) opening the adapter (device not found, channel busy,
a serial adapter that is silent or refuses to open), (3) for serial (slcan) adapters, the device
answers its version and serial-number queries, (4) a short listening window for error frames
and the bus state (error frames or error-passive/bus-off point at a bitrate mismatch or wiring),
(5) where an ECU is configured, the ECU answers a harmless TesterPresent `3E 00`, (6) the ACK:
a probe frame and the interface's own evidence that another node acknowledged it, and (7) on
Windows the `time.sleep` granularity, which paces ISO-TP separation times.

A check says OK only on evidence the interface can give: `protocols.bus.interface_capabilities`
says per python-can interface whether it reports the bus state, error frames, a missing ACK and
hardware timestamps, and where it cannot (slcan: `send()` returning only means the bytes went
into the serial port) the check is UNCHECKED ("cannot be checked on this interface"), never OK,
unless an ECU's answer proves it. The report shows that table row. Every check gives a
`CheckResult`; the `DoctorReport` renders them as text or JSON. The checks block for about a
second, so call `run_doctor` from a worker or CLI thread, never the GUI thread; the functions
keep no shared state.

Why this size: the connection doctor is one sequence of checks (driver, open, bus state, ACK,
identity, peer) that builds one `DoctorReport`; each check is short and they share the report's
vocabulary, so one module reads as the checklist the user sees.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import importlib.util
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can
from can.interfaces.virtual import VirtualBus, channels_lock

from fota_studio.core.ea import EcuDefinition, IsoTpAddress
from fota_studio.core.errors import AdapterError, TransferError
from fota_studio.protocols.bus import (
    BusSettings,
    Capability,
    InterfaceCapabilities,
    TextFields,
    interface_capabilities,
    open_bus,
)
from fota_studio.protocols.isotp_link import AdapterSendError, IsoTpLink

#: How long the doctor listens for error frames and traffic before sending its probe.
LISTEN_S = 0.5
#: How long to wait for the probe frame to be sent (a missing ACK stalls the transmit queue).
SEND_TIMEOUT_S = 0.2
#: How long to watch the bus state after the probe (ACK errors raise the TX error counter).
AFTER_PROBE_S = 0.2
#: The probe frame: lowest priority 11-bit ID, no data, so no ECU acts on it.
PROBE_ARBITRATION_ID = 0x7FF
#: Windows' default timer tick is 15.6 ms; above this the ISO-TP pacing suffers.
TIMER_WARN_S = 0.004
TIMER_SAMPLES = 20
#: How long a serial adapter may take to answer its version / serial-number query.
IDENTITY_TIMEOUT_S = 0.5
#: The harmless request the peer check sends (TesterPresent, ISO 14229-1 §10.5).
PEER_REQUEST = b"\x3e\x00"
#: Software buses: no bitrate, no wiring, no controller to check.
SOFTWARE_BUSES = frozenset({"virtual", "udp_multicast", "fota_sim"})


class Status(enum.StrEnum):
    """Outcome of one check."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    SKIPPED = "skipped"
    #: The interface cannot give the evidence: not a failure, and not OK either.
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class CheckResult(TextFields):
    """One check: its name, outcome, a one-line summary and the advice in plain words."""

    name: str
    status: Status
    summary: str
    advice: str = ""


@dataclass(frozen=True)
class DoctorReport:
    """The result of `run_doctor`: the settings checked and every check in order."""

    settings: BusSettings
    checks: tuple[CheckResult, ...]
    label: str = ""
    capabilities: InterfaceCapabilities | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(c.status is not Status.ERROR for c in self.checks)

    @property
    def proven(self) -> bool:
        """True when no check failed AND none was left unchecked for lack of evidence."""
        return self.ok and all(c.status is not Status.UNCHECKED for c in self.checks)

    @property
    def unchecked(self) -> tuple[CheckResult, ...]:
        """The checks this interface could not give evidence for."""
        return tuple(c for c in self.checks if c.status is Status.UNCHECKED)

    def verdict(self) -> str:
        """`OK`, `NOT PROVEN: …` (nothing failed, something could not be checked) or
        `PROBLEM: …` (the first failed check)."""
        first = self.first_error
        if first is not None:
            return f"PROBLEM: {first.summary}"
        if not self.proven:
            names = ", ".join(c.name for c in self.unchecked)
            return (
                f"NOT PROVEN: nothing failed, but {names} cannot be checked on "
                f"{self.settings.interface}; configure an ECU on this channel so its answer "
                "proves the connection"
            )
        return "OK"

    def check(self, name: str) -> CheckResult | None:
        """The check with this name, if it ran."""
        return next((c for c in self.checks if c.name == name), None)

    @property
    def first_error(self) -> CheckResult | None:
        """The first failed check (the one to fix first)."""
        return next((c for c in self.checks if c.status is Status.ERROR), None)

    def to_text(self) -> str:
        """A human report, one line per check plus indented advice."""
        head = self.label or self.settings.describe()
        lines = [f"Connection doctor: {head}"]
        for c in self.checks:
            lines.append(f"  [{c.status.upper():>9}] {c.name}: {c.summary}")
            if c.advice:
                lines.extend(f"              {line}" for line in c.advice.splitlines())
        if self.capabilities is not None:
            caps = self.capabilities
            lines.append(f"What {caps.interface} can report: {caps.summary()}")
            if caps.note:
                lines.append(f"  ({caps.note})")
        lines.append(f"Verdict: {self.verdict()}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-encodable form."""
        return {
            "connection": self.label or self.settings.describe(),
            "interface": self.settings.interface,
            "channel": self.settings.channel,
            "ok": self.ok,
            "proven": self.proven,
            "verdict": self.verdict(),
            "checks": [c.to_dict() for c in self.checks],
            "capabilities": self.capabilities.to_dict() if self.capabilities else None,
        }


# -- 1. driver libraries ---------------------------------------------------------------------


@dataclass(frozen=True)
class DriverRequirement:
    """What one interface needs beyond python-can: native libraries and Python packages."""

    interface: str
    product: str
    libraries: dict[str, tuple[str, ...]] = field(default_factory=dict)  # platform → file names
    python_modules: tuple[tuple[str, str], ...] = ()  # (import name, pip package)
    where: str = ""
    platforms: tuple[str, ...] = ()  # the only platforms the vendor supports, if restricted


def _platform_key(platform: str) -> str:
    if platform.startswith("win"):
        return "win32"
    if platform == "darwin":
        return "darwin"
    return "linux"


DRIVERS: dict[str, DriverRequirement] = {
    "pcan": DriverRequirement(
        interface="pcan",
        product="PEAK PCAN-Basic",
        libraries={
            "win32": ("PCANBasic.dll",),
            "linux": ("libpcanbasic.so", "libpcanbasic.so.4"),
            "darwin": ("libPCBUSB.dylib",),
        },
        where="PEAK-System, https://www.peak-system.com → Support → Downloads: 'PCAN-Basic API' "
        "(Windows: the device driver setup installs PCANBasic.dll) or, on Linux, the "
        "'PCAN-Basic API for Linux' together with the PCAN Linux driver (libpcanbasic.so)",
    ),
    "kvaser": DriverRequirement(
        interface="kvaser",
        product="Kvaser CANlib",
        libraries={"win32": ("canlib32.dll",), "linux": ("libcanlib.so.1", "libcanlib.so")},
        where="Kvaser, https://www.kvaser.com/downloads: 'Kvaser Drivers for Windows' "
        "(canlib32.dll) or 'Kvaser LINUX Driver and SDK' (linuxcan: libcanlib.so.1)",
        platforms=("win32", "linux"),
    ),
    "vector": DriverRequirement(
        interface="vector",
        product="Vector XL Driver Library",
        libraries={"win32": ("vxlapi64.dll", "vxlapi.dll")},
        where="Vector, https://www.vector.com → Download Center: 'XL Driver Library' and the "
        "driver setup for the interface (vxlapi64.dll for 64-bit FOTA Studio); assign the "
        "channel to the application in Vector Hardware Config",
        platforms=("win32",),
    ),
    "ixxat": DriverRequirement(
        interface="ixxat",
        product="IXXAT VCI",
        libraries={"win32": ("vcinpl2.dll", "vcinpl64.dll", "vcinpl.dll")},
        where="HMS Networks, https://www.ixxat.com → Support → 'VCI V4 driver' for Windows "
        "(installs vcinpl2.dll / vcinpl64.dll)",
        platforms=("win32",),
    ),
    "gs_usb": DriverRequirement(
        interface="gs_usb",
        product="libusb-1.0 (candleLight / gs_usb)",
        libraries={
            "win32": ("libusb-1.0.dll",),
            "linux": ("libusb-1.0.so.0", "libusb-1.0.so"),
            "darwin": ("libusb-1.0.dylib", "libusb-1.0.0.dylib"),
        },
        python_modules=(("usb", "pyusb"), ("gs_usb", "gs_usb")),
        where="Linux: the libusb-1.0-0 package (`apt install libusb-1.0-0`); Windows: "
        "libusb-1.0.dll from https://libusb.info next to FOTA Studio plus a WinUSB driver for the "
        "adapter installed with Zadig (https://zadig.akeo.ie)",
    ),
    "slcan": DriverRequirement(
        interface="slcan",
        product="pyserial",
        python_modules=(("serial", "pyserial"),),
        where="the Python package pyserial (`pip install pyserial`)",
    ),
    "udp_multicast": DriverRequirement(
        interface="udp_multicast",
        product="msgpack",
        python_modules=(("msgpack", "msgpack"),),
        where="the Python package msgpack (`pip install msgpack`)",
    ),
    "socketcan": DriverRequirement(
        interface="socketcan",
        product="Linux SocketCAN",
        where="SocketCAN is part of the Linux kernel (modules can, can_raw and the adapter's "
        "driver); it does not exist on Windows or macOS",
        platforms=("linux",),
    ),
}


def _load_library(name: str) -> bool:
    """True if the dynamic loader can load `name` (searched like the vendor wrapper does)."""
    try:
        if sys.platform.startswith("win"):
            ctypes.WinDLL(name)  # type: ignore[attr-defined,unused-ignore]  # Windows-only API
        else:
            ctypes.CDLL(name)
    except OSError:
        return False
    return True


def _library_stem(file_name: str) -> str:
    """`libpcanbasic.so.4` → `pcanbasic`, `PCANBasic.dll` → `PCANBasic` (find_library's input)."""
    stem = file_name.split(".so")[0].split(".dll")[0].split(".dylib")[0]
    return stem[3:] if stem.startswith("lib") else stem


def find_driver_library(names: Sequence[str]) -> str | None:
    """The first of `names` the loader finds (a path or the name itself), else None."""
    for name in names:
        if _load_library(name):
            return name
        found = ctypes.util.find_library(_library_stem(name))
        if found and _load_library(found):
            return found
    return None


def check_driver(interface: str, platform: str | None = None) -> CheckResult:
    """Check the native library and Python packages the interface needs."""
    iface = interface.strip().lower()
    plat = _platform_key(platform or sys.platform)
    req = DRIVERS.get(iface)
    if req is None:
        return CheckResult("driver", Status.OK, f"'{iface}' needs no vendor driver library")
    if req.platforms and plat not in req.platforms:
        return CheckResult(
            "driver",
            Status.ERROR,
            f"{req.product} is not available on this operating system ({plat})",
            f"'{iface}' works only on {', '.join(req.platforms)}. Use an adapter with a driver "
            f"for this system, or run FOTA Studio there. Driver source: {req.where}.",
        )
    for module, package in req.python_modules:
        if importlib.util.find_spec(module) is None:
            return CheckResult(
                "driver",
                Status.ERROR,
                f"the Python package '{package}' needed by '{iface}' is not installed",
                f"Install it into FOTA Studio's Python (`pip install {package}`). {req.where}.",
            )
    names = req.libraries.get(plat, ())
    if not names:
        return CheckResult("driver", Status.OK, f"{req.product}: no vendor library needed")
    found = find_driver_library(names)
    if found is None:
        searched = " / ".join(names)
        return CheckResult(
            "driver",
            Status.ERROR,
            f"driver library missing: {req.product} ({searched}) not found",
            f"FOTA Studio searched for {searched} in the system library path"
            + (" and PATH" if plat == "win32" else " (ld.so cache, LD_LIBRARY_PATH)")
            + f" and did not find it. Get it from {req.where}; then start FOTA Studio again.",
        )
    return CheckResult("driver", Status.OK, f"{req.product} found ({found})")


# -- 2. opening the adapter ------------------------------------------------------------------

_BUSY_WORDS = ("busy", "in use", "already", "ebusy", "access is denied", "exclusive", "occupied")
_NOT_FOUND_WORDS = (
    "not found",
    "no such device",
    "enodev",
    "does not exist",
    "no device",
    "not connected",
    "no hardware",
    "hardware not",
    "illegal",
    "nodriver",
    "could not find",
    "address family not supported",
    "errno 19",
    "errno 2]",
)


def classify_open_error(settings: BusSettings, exc: AdapterError) -> CheckResult:
    """Turn an `open_bus` failure into device-not-found / channel-busy / other advice."""
    text = str(exc)
    low = text.lower()
    where = f"{settings.interface} channel '{settings.channel}'"
    if "refused to open" in low or "refused '" in low:
        return CheckResult(
            "open",
            Status.ERROR,
            f"adapter refused to open: {where} answered BEL (error) to the open command",
            "The adapter is there but will not go on the bus. Check that the bitrate is one it "
            "supports, unplug and replug it (another program may have left it open or in an "
            "error state), and check its firmware.\nDetail: " + text,
        )
    if "did not answer" in low:
        return CheckResult(
            "open",
            Status.ERROR,
            f"adapter silent: nothing answers the slcan commands on {where}",
            "Check that this is the adapter's serial port (not another device: `ls "
            "/dev/serial/by-id` on Linux, Device Manager on Windows), that the adapter runs "
            "slcan firmware (candleLight/gs_usb firmware speaks gs_usb, not slcan), the serial "
            "baud rate, and that it is plugged in.\nDetail: " + text,
        )
    if any(w in low for w in _BUSY_WORDS):
        return CheckResult(
            "open",
            Status.ERROR,
            f"channel busy: {where} is used by another program",
            "Close the other program that holds the adapter (CANoe, PCAN-View, Kvaser "
            "CanKing, a second FOTA Studio, a trace tool) and try again; on Linux, `fuser` or "
            "`lsof` on the device shows who holds it.\nDetail: " + text,
        )
    if any(w in low for w in _NOT_FOUND_WORDS):
        advice = (
            "Plug the adapter in, check the USB cable, and check the channel name"
            f" ('{settings.channel}'); `fota-studio doctor --list` shows what the installed "
            "drivers can see."
        )
        if settings.interface == "socketcan":
            advice = (
                f"The network interface '{settings.channel}' does not exist or the kernel has "
                "no SocketCAN support: load the modules (`sudo modprobe can can_raw` plus the "
                f"adapter's driver), plug the adapter in and check `ip link show "
                f"{settings.channel}`."
            )
        return CheckResult(
            "open", Status.ERROR, f"device not found: {where}", advice + "\nDetail: " + text
        )
    return CheckResult(
        "open",
        Status.ERROR,
        f"cannot open {where}",
        (exc.hint or "check the adapter, its driver and the channel name") + "\nDetail: " + text,
    )


def check_socketcan_link(channel: str, sysfs: Path = Path("/sys/class/net")) -> CheckResult | None:
    """On Linux, an early plain-words check that a SocketCAN interface exists and is up."""
    dev = sysfs / channel
    if not dev.exists():
        return CheckResult(
            "open",
            Status.ERROR,
            f"device not found: no network interface '{channel}'",
            "Plug the adapter in and load its driver; `ip link show` lists the CAN interfaces "
            "(can0, vcan0, ...). For a virtual test bus: `sudo modprobe vcan && sudo ip link add "
            f"dev {channel} type vcan && sudo ip link set up {channel}`.",
        )
    try:
        state = (dev / "operstate").read_text().strip()
        flags = int((dev / "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return None
    if not flags & 0x1:  # IFF_UP
        return CheckResult(
            "open",
            Status.ERROR,
            f"'{channel}' exists but is down (operstate {state})",
            f"Bring it up with the bus bitrate: `sudo ip link set {channel} up type can bitrate "
            "500000` (add `dbitrate 2000000 fd on` for CAN FD).",
        )
    return None


# -- 3./4. listening and the probe frame -----------------------------------------------------


def _bus_state(bus: can.BusABC) -> can.BusState | None:
    try:
        return bus.state
    except (NotImplementedError, can.CanError, OSError, AttributeError):
        return None


def _virtual_peers(bus: can.BusABC) -> int | None:
    """For python-can virtual buses, how many OTHER bus instances share the channel."""
    inner: Any = bus
    for attr in ("_inner", "inner", "_bus"):  # fota_sim wraps a VirtualBus
        candidate = getattr(bus, attr, None)
        if isinstance(candidate, VirtualBus):
            inner = candidate
    if not isinstance(inner, VirtualBus):
        return None
    with channels_lock:
        return max(0, len(inner.channel) - 1)


def listen(
    bus: can.BusABC, window_s: float, cancel: threading.Event | None = None
) -> tuple[int, int]:
    """Receive for `window_s`: (frames seen, error frames seen)."""
    frames = errors = 0
    deadline = time.monotonic() + window_s
    while (remaining := deadline - time.monotonic()) > 0:
        if cancel is not None and cancel.is_set():
            break
        msg = bus.recv(timeout=min(remaining, 0.05))
        if msg is None:
            continue
        frames += 1
        if msg.is_error_frame:
            errors += 1
    return frames, errors


def check_bus_state(
    settings: BusSettings,
    frames: int,
    error_frames: int,
    state: can.BusState | None,
    expected_bitrate_bps: int | None = None,
) -> CheckResult:
    """Judge the listening window: error frames / error-passive / bus-off mean trouble."""
    rate = f"{settings.bitrate_bps} bit/s" + (
        f" (data {settings.data_bitrate_bps} bit/s)" if settings.fd else ""
    )
    expect = (
        f" The EA expects {expected_bitrate_bps} bit/s on this channel."
        if expected_bitrate_bps and expected_bitrate_bps != settings.bitrate_bps
        else ""
    )
    if state is can.BusState.ERROR:
        return CheckResult(
            "bus",
            Status.ERROR,
            "bus-off: the adapter stopped sending after too many errors",
            f"Almost always a bitrate mismatch or a wiring fault. The adapter runs at {rate}."
            f"{expect} Check that the bitrate matches the machine, that the bus has 120 Ω "
            "termination at both ends (60 Ω between CAN_H and CAN_L with power off), and that "
            "CAN_H/CAN_L are not swapped; then reconnect.",
        )
    if error_frames:
        return CheckResult(
            "bus",
            Status.ERROR,
            f"{error_frames} error frame(s) in {frames} frame(s): bitrate mismatch or wiring fault",
            f"The adapter runs at {rate}.{expect} Set the bitrate the machine uses (Settings → "
            "Connections), check the 120 Ω termination and the CAN_H/CAN_L wiring.",
        )
    if state is can.BusState.PASSIVE and not settings.listen_only:
        return CheckResult(
            "bus",
            Status.WARNING,
            "the adapter is error-passive",
            f"It has seen many errors: check the bitrate ({rate}) and the wiring.{expect}",
        )
    if expect:
        return CheckResult(
            "bus",
            Status.WARNING,
            f"no errors seen, {frames} frame(s) received, but the bitrate differs from the EA",
            expect.strip() + f" The adapter is set to {rate}.",
        )
    traffic = f"{frames} frame(s) received" if frames else "the bus is quiet"
    caps = interface_capabilities(settings.interface)
    if settings.interface in SOFTWARE_BUSES:
        return CheckResult("bus", Status.OK, f"no error frames (software bus), {traffic}")
    if caps.error_frames is not Capability.NO or caps.bus_state is not Capability.NO:
        return CheckResult("bus", Status.OK, f"no error frames, {traffic}")
    if frames:
        return CheckResult(
            "bus",
            Status.OK,
            f"{frames} frame(s) received: the adapter hears the bus at {rate}",
            f"{settings.interface} reports no error frames or bus state; frames received "
            "intact are the evidence that bitrate and wiring match.",
        )
    return CheckResult(
        "bus",
        Status.UNCHECKED,
        "the bus is quiet and cannot be checked on this interface",
        f"{settings.interface} reports neither error frames nor the bus state, and nothing was "
        f"received in the listening window, so a wrong bitrate ({rate}) or wiring would look "
        "the same as a quiet bus. With the machine's ignition on, frames should arrive; an "
        "ECU configured on this channel proves it by answering.",
    )


def probe_ack(
    bus: can.BusABC,
    settings: BusSettings,
    cancel: threading.Event | None = None,
) -> CheckResult:
    """Send one probe frame and judge whether another node acknowledged it."""
    no_ack = CheckResult(
        "ack",
        Status.ERROR,
        "no ACK: nothing else on the bus acknowledges frames",
        "A CAN frame needs at least one other powered node to acknowledge it. Switch the "
        "machine's ignition on, check that the adapter is connected to the right connector "
        "and that the ECUs are powered; on a bench, add a second node or the ECU under test.",
    )
    caps = interface_capabilities(settings.interface)
    peers = _virtual_peers(bus)
    if peers is not None and peers == 0:
        return no_ack  # a software bus: nobody else has the channel open
    if peers is None and caps.ack is Capability.NO:
        return CheckResult(
            "ack",
            Status.UNCHECKED,
            "cannot be checked on this interface: it cannot report whether a frame was "
            "acknowledged",
            f"On {settings.interface}, send() returning only means the frame left the computer "
            "(for slcan: the bytes went into the serial port); python-can gets no ACK, error "
            "frame or bus state from it. An ECU configured on this channel proves the "
            "connection by answering; no probe frame was sent.",
        )
    msg = can.Message(
        arbitration_id=PROBE_ARBITRATION_ID,
        data=b"",
        is_extended_id=False,
        is_fd=False,
    )
    try:
        bus.send(msg, timeout=SEND_TIMEOUT_S)
    except can.CanOperationError as exc:
        return CheckResult(no_ack.name, no_ack.status, no_ack.summary, f"{no_ack.advice}\n{exc}")
    except can.CanError as exc:
        return CheckResult(
            "ack",
            Status.ERROR,
            f"the probe frame could not be sent: {exc}",
            "Check the adapter and the wiring; a transmit timeout usually means no ACK.",
        )
    _frames, errors = listen(bus, AFTER_PROBE_S, cancel)
    state = _bus_state(bus)
    if state in (can.BusState.PASSIVE, can.BusState.ERROR) or errors:
        return no_ack
    who = f" ({peers} other node(s) on the channel)" if peers else ""
    return CheckResult("ack", Status.OK, f"the probe frame was acknowledged{who}")


# -- serial adapters: who is there -------------------------------------------------------------


def _version_text(identity: str) -> str:
    """`V1013` → `hardware version 10, software version 13`; other firmware's text as it is."""
    if len(identity) >= 5 and identity[0] == "V" and identity[1:5].isdigit():
        return f"hardware version {int(identity[1:3])}, software version {int(identity[3:5])}"
    return f"version '{identity}'"


def check_identity(bus: can.BusABC, settings: BusSettings) -> CheckResult | None:
    """For slcan adapters: the device answers `V` (versions) and, if it can, `N` (serial).

    None for interfaces without such a query. `CheckedSlcanBus` asked `V` while opening (a
    silent port never opens); a plain python-can slcan bus is asked here. An adapter that does
    not answer its version query is not an adapter we can trust with a flash.
    """
    get_version = getattr(bus, "get_version", None)
    get_serial = getattr(bus, "get_serial_number", None)
    if settings.interface != "slcan" or get_version is None or get_serial is None:
        return None
    identity: str | None = getattr(bus, "identity", None)
    quiet = getattr(bus, "acknowledges", None) is False
    try:
        if identity is None:
            hw, sw = get_version(IDENTITY_TIMEOUT_S)
            identity = None if hw is None else f"V{hw:02d}{sw:02d}"
        serial_no = None if identity is None else get_serial(IDENTITY_TIMEOUT_S)
    except (can.CanError, OSError, ValueError, IndexError) as exc:
        return CheckResult(
            "adapter",
            Status.ERROR,
            f"the adapter on '{settings.channel}' failed its version query: {exc}",
            "Unplug and replug the adapter and run the doctor again; check that it runs slcan "
            "firmware.",
        )
    if identity is None:
        return CheckResult(
            "adapter",
            Status.ERROR,
            f"the adapter on '{settings.channel}' does not answer its version query 'V'",
            "It opened but does not answer: check that it runs slcan firmware and that no "
            "other program reads the port at the same time.",
        )
    serial_text = f", serial number {serial_no}" if serial_no else ", no serial number"
    advice = (
        "This firmware acknowledges no command (no CR/BEL), so an adapter that refused to go on "
        "the bus would look the same as one that did: only an ECU's answer proves it."
        if quiet
        else ""
    )
    return CheckResult(
        "adapter",
        Status.OK,
        f"slcan adapter answers: {_version_text(identity)}{serial_text}",
        advice,
    )


# -- the ECU answers ---------------------------------------------------------------------------


def _addresses(ecu: EcuDefinition) -> list[tuple[str, IsoTpAddress]]:
    conn = ecu.connection
    out = [("application", conn.application)]
    if conn.bootloader.request_id != conn.application.request_id:
        out.append(("bootloader", conn.bootloader))
    return out


def check_peer(
    bus: can.BusABC,
    settings: BusSettings,
    ecu: EcuDefinition,
    cancel: threading.Event | None = None,
) -> CheckResult:
    """Send TesterPresent `3E 00` to `ecu` (application, then bootloader address) and wait P2.

    Any answer (positive or negative) proves the whole chain: adapter open and on the bus at
    the right bitrate, frames acknowledged, the ECU powered and on these IDs. TesterPresent
    changes nothing in the ECU (ISO 14229-1 §10.5).
    """
    p2_s = max(ecu.uds.p2_timeout_ms / 1000.0, 0.05)
    notifier = can.Notifier(bus, [], timeout=0.05)
    tried: list[str] = []
    try:
        for mode, ids in _addresses(ecu):
            if cancel is not None and cancel.is_set():
                return CheckResult("peer", Status.SKIPPED, "cancelled")
            link = IsoTpLink(bus, notifier, ecu.connection, ids, name=f"doctor-{ecu.name}")
            link.start()
            try:
                link.send(PEER_REQUEST, timeout_s=1.0, what="TesterPresent 3E 00")
                answer = link.stack.recv(block=True, timeout=p2_s)
            except AdapterSendError as exc:
                return CheckResult(
                    "peer",
                    Status.ERROR,
                    f"the adapter failed while asking {ecu.name}: {exc.adapter_error}",
                    exc.hint or "check the adapter",
                )
            except TransferError:
                answer = None
            finally:
                link.stop()
            where = f"0x{ids.request_id:X}"
            tried.append(f"{mode} {where}")
            if answer:
                return CheckResult(
                    "peer",
                    Status.OK,
                    f"{ecu.name} answered TesterPresent on its {mode} address {where} "
                    f"({bytes(answer[:3]).hex(' ')})",
                )
    finally:
        notifier.stop(timeout=0.1)
    return CheckResult(
        "peer",
        Status.ERROR,
        f"{ecu.name} does not answer TesterPresent 3E 00 ({', '.join(tried)})",
        f"Nothing answered within P2 = {p2_s:.3f} s. Check that the machine's ignition is on, "
        f"that {ecu.name} is powered and connected to this bus, that the bitrate "
        f"({settings.bitrate_bps} bit/s) is the machine's, and the IDs in the EA.",
    )


def _ack_from_peer(peer: CheckResult) -> CheckResult:
    return CheckResult(
        "ack",
        Status.OK,
        "acknowledged: the ECU's answer proves frames reach the bus",
        peer.summary,
    )


# -- 5. timer resolution ---------------------------------------------------------------------


def measure_sleep_granularity_s(samples: int = TIMER_SAMPLES) -> float:
    """The median real duration of `time.sleep(0.001)`."""
    durations = []
    for _ in range(samples):
        start = time.perf_counter()
        time.sleep(0.001)
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def check_timer(granularity_s: float, platform: str | None = None) -> CheckResult:
    """Advise when `time.sleep(0.001)` is coarse (Windows' 15.6 ms default tick)."""
    plat = _platform_key(platform or sys.platform)
    ms = granularity_s * 1000
    if granularity_s <= TIMER_WARN_S:
        return CheckResult("timer", Status.OK, f"time.sleep(0.001) takes {ms:.2f} ms")
    advice = (
        "ISO-TP separation times (STmin) and tester-present timing get coarser, so a flash "
        "takes longer and a strict ECU may time out. "
    )
    if plat == "win32":
        advice += (
            "Windows is using its 15.6 ms default timer tick: switch the power plan to 'High "
            "performance', keep the laptop on mains power and close power-saving tools; "
            "run the doctor again to see the effect."
        )
    else:
        advice += "The system is heavily loaded or uses a coarse timer; close other programs."
    return CheckResult("timer", Status.WARNING, f"time.sleep(0.001) takes {ms:.1f} ms", advice)


# -- the whole run ---------------------------------------------------------------------------


def run_doctor(
    settings: BusSettings,
    *,
    label: str = "",
    listen_s: float = LISTEN_S,
    send_probe: bool = True,
    expected_bitrate_bps: int | None = None,
    cancel: threading.Event | None = None,
    on_check: Callable[[CheckResult], None] | None = None,
    opener: Callable[[BusSettings], can.BusABC] = open_bus,
    platform: str | None = None,
    timer_check: bool = True,
    ecu: EcuDefinition | None = None,
) -> DoctorReport:
    """Run every check for `settings` and return the report (never raises for adapter faults).

    `on_check` is called (from this thread) after each check, for live display. `opener` exists
    so tests can simulate an adapter that fails in a particular way. `send_probe=False` (or
    listen-only settings) skips the ACK probe, which puts one frame on the bus. With an `ecu`
    (and not listen-only) the ECU must answer TesterPresent; its answer also proves the ACK.
    """
    checks: list[CheckResult] = []
    plat = platform or sys.platform
    caps = interface_capabilities(settings.interface)

    def add(result: CheckResult) -> None:
        checks.append(result)
        if on_check is not None:
            on_check(result)

    def done() -> DoctorReport:
        if timer_check and _platform_key(plat) == "win32":
            add(check_timer(measure_sleep_granularity_s(), plat))
        return DoctorReport(settings, tuple(checks), label, caps)

    driver = check_driver(settings.interface, plat)
    add(driver)
    if driver.status is Status.ERROR:
        return done()
    if settings.interface == "socketcan" and _platform_key(plat) == "linux":
        link = check_socketcan_link(settings.channel)
        if link is not None:
            add(link)
            return done()
    try:
        bus = opener(settings)
    except AdapterError as exc:
        add(classify_open_error(settings, exc))
        return done()
    try:
        add(CheckResult("open", Status.OK, f"opened {settings.describe()}"))
        identity = check_identity(bus, settings)
        if identity is not None:
            add(identity)
            if identity.status is Status.ERROR:
                return done()
        frames, errors = listen(bus, listen_s, cancel)
        bus_check = check_bus_state(settings, frames, errors, _bus_state(bus), expected_bitrate_bps)
        peer: CheckResult | None = None
        if ecu is not None and not settings.listen_only and bus_check.status is not Status.ERROR:
            peer = check_peer(bus, settings, ecu, cancel)
            if bus_check.status is Status.UNCHECKED and peer.status is Status.OK:
                # The interface cannot report errors, but an intact answer is the evidence.
                bus_check = CheckResult(
                    "bus",
                    Status.OK,
                    f"the ECU's answer arrived intact: bitrate ({settings.bitrate_bps} bit/s) "
                    "and wiring match",
                    f"{settings.interface} reports no error frames or bus state; " + peer.summary,
                )
        add(bus_check)
        if bus_check.status is Status.ERROR:
            return done()
        if peer is not None:
            add(peer)
        if peer is not None and peer.status is Status.OK:
            add(_ack_from_peer(peer))
        elif settings.listen_only or not send_probe:
            add(
                CheckResult(
                    "ack",
                    Status.SKIPPED,
                    "no probe frame sent (listen-only)"
                    if settings.listen_only
                    else "no probe frame sent",
                )
            )
        elif cancel is not None and cancel.is_set():
            add(CheckResult("ack", Status.SKIPPED, "cancelled"))
        else:
            add(probe_ack(bus, settings, cancel))
    finally:
        bus.shutdown()
    return done()


def environment_summary() -> str:
    """One line about the process, for bug reports (frozen or not, platform)."""
    frozen = "frozen" if getattr(sys, "frozen", False) else "source"
    return f"{sys.platform} python {sys.version.split()[0]} ({frozen}, pid {os.getpid()})"
