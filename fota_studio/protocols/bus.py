"""Bus factory: open any python-can interface from explicit settings, never from a config file.

`open_bus(BusSettings)` maps our settings (bitrate, CAN FD, data bitrate, listen-only) onto the
keyword arguments each python-can interface understands, always with `ignore_config=True` so a
stray `can.ini` or `CAN_*` environment variable never changes what is flashed, and turns every
way an adapter can fail to open (driver library missing, no device, wrong channel, unknown
interface) into an `AdapterError` that names the interface and says what to install or check.
`detect_configs()` lists the channels the installed drivers can see, bounded in time and never
raising.

What each interface can do lives here too: `interface_limits()` (the bitrates, CAN FD data rates
and open options python-can's wrapper accepts, so a wrong one is refused when it is typed, not
when the adapter opens), `interface_capabilities()` (what the interface can report: bus state,
error frames, a missing ACK, hardware timestamps; the doctor says OK only on evidence the
interface can give). slcan (Lawicel) adapters open through `CheckedSlcanBus`, which waits for the
adapter's answer to every command, so a silent port or an adapter that refuses to open is an
`AdapterError` at open, and which sleeps only `sleep_after_open` (0.1 s by default, not
python-can's 2 s). `describe_adapter_fault()` names a failure while in use (device vanished,
driver error, bus-off) with the interface's own cause and the right advice.

Any thread may call these functions; opening a hardware adapter can take a second, so the GUI
calls them from a worker.

Why this size: the bus factory is one table per interface (open options, bitrates, what it can
report) and the code that applies it; `CheckedSlcanBus` is the slcan entry of that table
(answers checked before use).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import can
from can.interfaces.slcan import slcanBus

from fota_studio.core.errors import AdapterError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = logging.getLogger(__name__)

DETECT_TIMEOUT_S = 3.0
"""Upper bound for `detect_configs()`; some drivers scan USB or the network slowly."""

# Interfaces whose driver is a vendor library: what the user must install when it is missing.
_DRIVER_HINTS: dict[str, str] = {
    "pcan": "install the PEAK PCAN-Basic driver (PCANBasic.dll on Windows, libpcanbasic.so "
    "on Linux) and plug in the PCAN adapter",
    "vector": "install the Vector XL Driver Library (vxlapi.dll / vxlapi64.dll) and assign the "
    "channel to the application in Vector Hardware Config",
    "kvaser": "install Kvaser CANlib (canlib32.dll on Windows, libcanlib.so on Linux) and plug "
    "in the Kvaser adapter",
    "ixxat": "install the IXXAT VCI driver (vcinpl.dll / vcinpl2.dll) and plug in the adapter",
    "gs_usb": "install pyusb and libusb-1.0 (on Windows a WinUSB driver via Zadig) and plug in "
    "the candleLight / gs_usb adapter",
    "slcan": "check the serial port name (COMx or /dev/ttyACMx), that pyserial is installed and "
    "that no other program holds the port",
    "socketcan": "check that the interface exists and is up (`ip link set can0 up type can "
    "bitrate 500000`); SocketCAN is Linux only",
    "udp_multicast": "install msgpack and check the multicast route on the network interface",
    "neovi": "install python-ics and the Intrepid neoVI driver",
    "systec": "install the SYS TEC USB-CANmodul driver (usbcan32.dll / usbcan64.dll)",
    "nican": "install NI-CAN (nican.dll)",
    "nixnet": "install NI-XNET and nixnet",
    "etas": "install the ETAS BOA driver",
    "usb2can": "install the 8devices USB2CAN driver (usb2can.dll)",
    "cantact": "install the cantact package and plug in the CANtact adapter",
    "fota_sim": "install FOTA Studio in the venv (`pip install -e .`) so the fota_sim entry point "
    "is registered",
}

# Interfaces that ignore bitrate entirely (software buses): we pass none so they do not warn.
_SOFTWARE_BUSES = frozenset({"virtual", "udp_multicast", "socketcand"})


@dataclass(frozen=True)
class BusSettings:
    """Everything needed to open one CAN channel; `extra` is passed through to python-can."""

    interface: str
    channel: str
    bitrate_bps: int = 500_000
    fd: bool = False
    data_bitrate_bps: int = 2_000_000
    listen_only: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short human label such as `pcan:PCAN_USBBUS1 500k FD 2M`."""
        text = f"{self.interface}:{self.channel}"
        if self.interface not in _SOFTWARE_BUSES:
            text += f" {self.bitrate_bps // 1000}k"
        if self.fd:
            text += f" FD {self.data_bitrate_bps / 1e6:g}M"
        if self.listen_only:
            text += " listen-only"
        return text


# -- what each interface can be set to -------------------------------------------------------

#: slcan: how long to wait after opening the serial port before the first command. python-can's
#: default is 2 s (for Arduino-style boards that reset on open); USB adapters (CANable, USBtin)
#: answer at once, and 2 s per connection made every slcan flash start 2 s late.
SLCAN_SLEEP_AFTER_OPEN_S = 0.1
#: slcan: the serial baud rate (USB CDC adapters ignore it; real UART adapters need it right).
SLCAN_TTY_BAUDRATE = 115_200
#: slcan: how long to wait for the adapter's answer (CR or BEL) to one command. USB CDC and
#: UART round trips take milliseconds; the original CANable firmware answers no command, so
#: the first unanswered one costs this long, once.
SLCAN_REPLY_TIMEOUT_S = 0.1
#: slcan: how long to wait for the answer to the version query `V` (every firmware answers it).
SLCAN_IDENTITY_TIMEOUT_S = 0.5

MIN_BITRATE_BPS = 5_000
MAX_BITRATE_BPS = 1_000_000
MAX_DATA_BITRATE_BPS = 12_000_000


@dataclass(frozen=True)
class OptionSpec:
    """One interface-specific open option (a keyword of the python-can bus), with its range."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, value: Any) -> str:
        """'' when `value` is acceptable, else what is wrong in words."""
        if self.kind is bool:
            return "" if isinstance(value, bool) else f"{self.name} must be true or false"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{self.name} must be a number, not {value!r}"
        if self.kind is int and float(value) != int(value):
            return f"{self.name} must be a whole number, not {value!r}"
        if self.choices and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            return f"{self.name} {value} is not one of {allowed}"
        if self.minimum is not None and value < self.minimum:
            return f"{self.name} {value} is below {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{self.name} {value} is above {self.maximum:g}"
        return ""


_SERIAL_BAUDRATES = (9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600, 1_000_000)
_SLCAN_OPTIONS = (
    OptionSpec(
        "sleep_after_open",
        float,
        SLCAN_SLEEP_AFTER_OPEN_S,
        "seconds to wait after opening the serial port (python-can's own default is 2 s; raise it "
        "only for boards that reset when the port opens, e.g. Arduino-based adapters)",
        minimum=0.0,
        maximum=5.0,
    ),
    OptionSpec(
        "tty_baudrate",
        int,
        SLCAN_TTY_BAUDRATE,
        "serial baud rate of the adapter's UART (USB adapters ignore it)",
        choices=_SERIAL_BAUDRATES,
    ),
    OptionSpec("rtscts", bool, False, "RTS/CTS hardware handshake on the serial line"),
)


@dataclass(frozen=True)
class InterfaceLimits:
    """The settings python-can's wrapper of one interface accepts (python-can 4.6).

    `bitrates_bps` / `data_bitrates_bps` empty = any value in range (the driver computes the bit
    timing). `sets_bitrate=False`: the bitrate is not ours to set (SocketCAN: `ip link`; software
    buses ignore it). `source` says where the table comes from.
    """

    interface: str
    bitrates_bps: tuple[int, ...] = ()
    fd: bool = True
    data_bitrates_bps: tuple[int, ...] = ()
    listen_only: bool = True
    sets_bitrate: bool = True
    options: tuple[OptionSpec, ...] = ()
    source: str = ""

    def option(self, name: str) -> OptionSpec | None:
        """The spec of one open option, if the interface has it."""
        return next((o for o in self.options if o.name == name), None)

    def option_defaults(self) -> dict[str, Any]:
        """Every open option at its default."""
        return {o.name: o.default for o in self.options}


def _slcan_table(name: str, fallback: Mapping[int, str]) -> tuple[int, ...]:
    table = getattr(slcanBus, name, None) or fallback
    return tuple(sorted(int(rate) for rate in table if int(rate) > 0))


#: python-can 4.6 `can/interfaces/slcan.py`: `_BITRATES` (S0..S9; S9 is 83,300 bit/s) and
#: `_DATA_BITRATES` (Y2, Y5: the CANable 2.0 firmware's FD extension).
SLCAN_BITRATES_BPS = _slcan_table(
    "_BITRATES",
    {r: "" for r in (10_000, 20_000, 50_000, 83_300, 100_000, 125_000, 250_000, 500_000)},
)
SLCAN_DATA_BITRATES_BPS = _slcan_table("_DATA_BITRATES", {2_000_000: "Y2", 5_000_000: "Y5"})

#: The presets from 100 kbit/s up that both PCAN and IXXAT offer.
_PRESETS_FROM_100K_BPS = (100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000)

LIMITS: dict[str, InterfaceLimits] = {
    "slcan": InterfaceLimits(
        "slcan",
        bitrates_bps=SLCAN_BITRATES_BPS,
        data_bitrates_bps=SLCAN_DATA_BITRATES_BPS,
        options=_SLCAN_OPTIONS,
        source="python-can slcan.py: slcanBus._BITRATES / _DATA_BITRATES",
    ),
    "pcan": InterfaceLimits(
        "pcan",
        # Classic CAN: the PCAN_BAUD_* presets (python-can pcan/basic.py PCAN_BITRATES); CAN FD
        # goes through a bit timing at 80 MHz, so any rate that timing can reach.
        bitrates_bps=(
            5_000,
            10_000,
            20_000,
            33_000,
            47_000,
            50_000,
            83_000,
            95_000,
            *_PRESETS_FROM_100K_BPS,
        ),
        source="python-can pcan/basic.py: PCAN_BITRATES (classic); FD by bit timing, 80 MHz",
    ),
    "kvaser": InterfaceLimits(
        "kvaser",
        # canlib presets (python-can kvaser/canlib.py BITRATE_OBJS / BITRATE_FD); other rates
        # need tseg1/tseg2, which we do not set.
        bitrates_bps=(
            10_000,
            50_000,
            62_000,
            83_000,
            100_000,
            125_000,
            250_000,
            500_000,
            1_000_000,
        ),
        data_bitrates_bps=(500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000),
        source="python-can kvaser/canlib.py: BITRATE_OBJS, BITRATE_FD",
    ),
    "ixxat": InterfaceLimits(
        "ixxat",
        bitrates_bps=(
            10_000,
            20_000,
            50_000,
            *_PRESETS_FROM_100K_BPS,
        ),
        data_bitrates_bps=(
            500_000,
            833_333,
            1_000_000,
            1_538_461,
            2_000_000,
            4_000_000,
            5_000_000,
            6_666_666,
            8_000_000,
            10_000_000,
        ),
        source="python-can ixxat: CHANNEL_BITRATES, constants.CAN_DATABITRATE_PRESETS",
    ),
    "vector": InterfaceLimits("vector", source="python-can vector: the XL driver computes timing"),
    "gs_usb": InterfaceLimits(
        "gs_usb", fd=False, listen_only=False, source="python-can gs_usb.py: classic CAN only"
    ),
    "socketcan": InterfaceLimits(
        "socketcan",
        sets_bitrate=False,
        listen_only=False,
        source="python-can socketcan: the bitrate is set with `ip link`, not by the program",
    ),
    "virtual": InterfaceLimits("virtual", sets_bitrate=False, source="software bus"),
    "udp_multicast": InterfaceLimits("udp_multicast", sets_bitrate=False, source="software bus"),
    "socketcand": InterfaceLimits("socketcand", sets_bitrate=False, source="remote SocketCAN"),
    "fota_sim": InterfaceLimits("fota_sim", source="FOTA Studio's paced bus model"),
}


def interface_limits(interface: str) -> InterfaceLimits:
    """What `interface` can be set to (an unknown interface: any bitrate in range, no options)."""
    iface = interface.strip().lower()
    return LIMITS.get(iface, InterfaceLimits(iface, source="no table: any bitrate in range"))


def _rates(values: Iterable[int]) -> str:
    return ", ".join(f"{v:,}" for v in values)


def problems_of_settings(
    interface: str, settings: BusSettings, options: Mapping[str, Any] | None = None
) -> list[str]:
    """`settings_problems` of a BusSettings on `interface` (the adapter's interface name,
    which may differ from `settings.interface` by an alias); [] when all is acceptable."""
    return settings_problems(
        interface,
        settings.bitrate_bps,
        settings.fd,
        settings.data_bitrate_bps,
        settings.listen_only,
        options,
    )


def settings_problems(
    interface: str,
    bitrate_bps: int,
    fd: bool,
    data_bitrate_bps: int,
    listen_only: bool = False,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """What `interface` cannot do of these settings, in words ([] = all acceptable)."""
    lim = interface_limits(interface)
    iface = lim.interface
    problems: list[str] = []
    if lim.sets_bitrate and lim.bitrates_bps and bitrate_bps not in lim.bitrates_bps:
        problems.append(
            f"{iface} cannot run {bitrate_bps:,} bit/s; it offers {_rates(lim.bitrates_bps)}"
        )
    elif not MIN_BITRATE_BPS <= bitrate_bps <= MAX_BITRATE_BPS:
        problems.append(
            f"bitrate {bitrate_bps:,} bit/s is out of range "
            f"({MIN_BITRATE_BPS:,}..{MAX_BITRATE_BPS:,})"
        )
    if fd:
        if not lim.fd:
            problems.append(f"{iface} cannot do CAN FD")
        elif lim.sets_bitrate and lim.data_bitrates_bps:
            if data_bitrate_bps not in lim.data_bitrates_bps:
                problems.append(
                    f"{iface} cannot run a CAN FD data bitrate of {data_bitrate_bps:,} bit/s; "
                    f"it offers {_rates(lim.data_bitrates_bps)}"
                )
        elif lim.sets_bitrate and not bitrate_bps <= data_bitrate_bps <= MAX_DATA_BITRATE_BPS:
            problems.append(
                f"CAN FD data bitrate {data_bitrate_bps:,} bit/s is out of range "
                f"({bitrate_bps:,}..{MAX_DATA_BITRATE_BPS:,})"
            )
    if listen_only and not lim.listen_only:
        problems.append(f"{iface} has no listen-only mode in python-can")
    for name, value in (options or {}).items():
        spec = lim.option(name)
        if spec is None:
            known = ", ".join(o.name for o in lim.options) or "none"
            problems.append(f"{iface} has no option '{name}' (its options: {known})")
            continue
        problem = spec.check(value)
        if problem:
            problems.append(f"{iface}: {problem}")
    return problems


# -- what each interface can report ------------------------------------------------------------


class Capability(enum.StrEnum):
    """Whether an interface can report something: yes, only indirectly, or not at all."""

    YES = "yes"
    INDIRECT = "indirect"
    NO = "no"


class TextFields:
    """Mixin for a dataclass whose JSON form is each of its fields as text."""

    def to_dict(self: DataclassInstance) -> dict[str, str]:
        """JSON-encodable form: every field as text."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class InterfaceCapabilities(TextFields):
    """What python-can's wrapper of an interface reports (from its documentation and source).

    `bus_state`: `bus.state` gives error-active/passive/bus-off. `error_frames`: error frames
    arrive as `is_error_frame` messages. `ack`: whether a frame nobody acknowledged can be told
    from one that was (yes: the send or a Tx echo confirms it; indirect: through error frames or
    the bus state; no: `send()` returning only means the bytes left the computer).
    `hw_timestamps`: receive timestamps from the adapter, not the computer's clock.
    """

    interface: str
    bus_state: Capability
    error_frames: Capability
    ack: Capability
    hw_timestamps: Capability
    note: str = ""

    def summary(self) -> str:
        """One line: `bus state: no, error frames: no, ACK: no, hardware timestamps: no`."""
        return (
            f"bus state: {self.bus_state}, error frames: {self.error_frames}, ACK: {self.ack}, "
            f"hardware timestamps: {self.hw_timestamps}"
        )


_Y, _I, _N = Capability.YES, Capability.INDIRECT, Capability.NO
#: From python-can 4.6's interface documentation and sources (which wrappers implement
#: `BusABC.state`, deliver `is_error_frame` messages, confirm transmission, timestamp in
#: hardware).
CAPABILITIES: dict[str, InterfaceCapabilities] = {
    c.interface: c
    for c in (
        InterfaceCapabilities(
            "slcan",
            _N,
            _N,
            _N,
            _N,
            "the Lawicel ASCII protocol over a serial port: python-can reads no status flags, "
            "error frames or Tx confirmations, and timestamps frames with the computer's clock; "
            "only the device's answers to its commands (V, N, O) prove it is there",
        ),
        InterfaceCapabilities(
            "pcan",
            _Y,
            _Y,
            _I,
            _Y,
            "PCAN-Basic: `state` and PCAN_ERROR_* status; a missing ACK shows as error "
            "passive/bus-off",
        ),
        InterfaceCapabilities(
            "kvaser",
            _N,
            _Y,
            _Y,
            _Y,
            "CANlib: error frames; `send(timeout=…)` waits in canWriteSync until the frame "
            "was sent (acknowledged)",
        ),
        InterfaceCapabilities(
            "vector",
            _N,
            _Y,
            _Y,
            _Y,
            "XL driver: error frames; with receive_own_messages the driver echoes a frame only "
            "after it was sent successfully",
        ),
        InterfaceCapabilities(
            "ixxat", _Y, _Y, _I, _Y, "VCI: `state` from the controller status; error frames"
        ),
        InterfaceCapabilities(
            "socketcan",
            _N,
            _Y,
            _I,
            _I,
            "Linux kernel: error frames (ACK errors among them) when the adapter's driver "
            "reports them; timestamps by the kernel",
        ),
        InterfaceCapabilities("gs_usb", _N, _Y, _N, _Y, "candleLight/gs_usb: device timestamps"),
        InterfaceCapabilities("etas", _Y, _Y, _I, _Y, "ETAS BOA"),
        InterfaceCapabilities("systec", _Y, _N, _I, _Y, "SYS TEC USB-CANmodul"),
        InterfaceCapabilities("neovi", _N, _Y, _I, _Y, "Intrepid neoVI"),
        InterfaceCapabilities("nixnet", _N, _Y, _I, _Y, "NI-XNET"),
        InterfaceCapabilities("nican", _N, _Y, _I, _Y, "NI-CAN"),
        InterfaceCapabilities("usb2can", _N, _Y, _N, _Y, "8devices USB2CAN"),
        InterfaceCapabilities("cantact", _N, _N, _N, _Y, "CANtact"),
        InterfaceCapabilities(
            "serial", _N, _Y, _N, _N, "python-can's own serial framing (carries an error flag)"
        ),
        InterfaceCapabilities("socketcand", _N, _Y, _I, _I, "remote SocketCAN over TCP"),
        InterfaceCapabilities("udp_multicast", _N, _N, _N, _N, "software bus over UDP"),
        InterfaceCapabilities(
            "virtual",
            _N,
            _N,
            _I,
            _N,
            "in-process software bus: no controller; another bus instance on the same channel "
            "stands in for an acknowledging node",
        ),
        InterfaceCapabilities(
            "fota_sim", _N, _N, _I, _N, "FOTA Studio's paced bus model (a virtual bus)"
        ),
    )
}


def interface_capabilities(interface: str) -> InterfaceCapabilities:
    """What `interface` can report (unknown interfaces: nothing is assumed)."""
    iface = interface.strip().lower()
    return CAPABILITIES.get(
        iface,
        InterfaceCapabilities(iface, _N, _N, _N, _N, "not in FOTA Studio's table: assume nothing"),
    )


# -- adapter faults while in use ---------------------------------------------------------------


class FaultKind(enum.StrEnum):
    """What kind of adapter failure an exception is."""

    VANISHED = "vanished"  # the device is gone (unplugged, USB reset, power)
    BUS_OFF = "bus_off"  # the controller left the bus after too many errors
    DRIVER = "driver"  # any other error the driver reported


#: errno values a vanished device gives (EIO on a gone tty/USB serial port, ENODEV, ENXIO, …).
_VANISHED_ERRNOS = frozenset(
    {errno.EIO, errno.ENODEV, errno.ENXIO, errno.ENOENT, errno.EBADF, errno.ENETDOWN}
)
_VANISHED_WORDS = (
    "device disconnected",
    "returned no data",
    "no such device",
    "input/output error",
    "device not configured",
    "device has been disconnected",
    "hardware not available",
    "handle is invalid",
    "device not found",
)
_BUS_OFF_WORDS = ("bus-off", "bus off", "busoff", "error passive", "error-passive")


@dataclass(frozen=True)
class AdapterFault:
    """One adapter failure in words: which adapter, what kind, its own cause, what to do."""

    adapter: str
    kind: FaultKind
    cause: str
    advice: str

    def message(self) -> str:
        """`adapter slcan:/dev/ttyACM0 vanished: <the driver's words>`."""
        what = {
            FaultKind.VANISHED: "vanished (device disconnected)",
            FaultKind.BUS_OFF: "went bus-off",
            FaultKind.DRIVER: "reported a driver error",
        }[self.kind]
        return f"adapter {self.adapter} {what}: {self.cause}"


def exception_chain_text(exc: BaseException) -> str:
    """The exception's message followed by each distinct cause (`a: b: c`), never empty.

    python-can wraps driver errors (`CanOperationError("Could not read from serial device")`
    from pyserial's `SerialException`); the cause is where the driver says what happened.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).strip() or type(current).__name__
        if not any(text in p for p in parts):
            parts.append(text)
        current = current.__cause__ or current.__context__
    return ": ".join(parts)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def fault_kind(exc: BaseException) -> FaultKind:
    """Classify an adapter exception (its whole cause chain) as vanished / bus-off / driver."""
    chain = _chain(exc)
    text = exception_chain_text(exc).lower()
    if any(w in text for w in _BUS_OFF_WORDS):
        return FaultKind.BUS_OFF
    for item in chain:
        if isinstance(item, OSError) and item.errno in _VANISHED_ERRNOS:
            return FaultKind.VANISHED
    if any(w in text for w in _VANISHED_WORDS):
        return FaultKind.VANISHED
    return FaultKind.DRIVER


def fault_advice(kind: FaultKind, adapter: str = "the adapter") -> str:
    """What to do after a fault of this kind (the ECU part is said by the caller)."""
    if kind is FaultKind.VANISHED:
        return (
            f"{adapter} is gone: check its USB cable and power, plug it in again, reconnect the "
            "channel (or restart the command) and run `fota-studio doctor` before trying again"
        )
    if kind is FaultKind.BUS_OFF:
        return "check the bus (bus-off?), the bitrate, cabling and termination"
    return (
        f"{adapter}'s driver reported an error: unplug and replug the adapter, check that no "
        "other program uses it and that its driver is up to date; run `fota-studio doctor`"
    )


def describe_adapter_fault(exc: BaseException, adapter: str = "") -> AdapterFault:
    """An `AdapterFault` for an exception raised by a python-can bus (send or receive)."""
    kind = fault_kind(exc)
    name = adapter or "the adapter"
    return AdapterFault(name, kind, exception_chain_text(exc), fault_advice(kind, name))


def adapter_label(bus: can.BusABC) -> str:
    """`slcan:/dev/ttyACM0` for a bus opened by `open_bus`, else python-can's channel info."""
    label = getattr(bus, "fota_adapter", "") or getattr(bus, "channel_info", "")
    return str(label) if label and label != "unknown" else "the adapter"


class FaultStreak:
    """The receive errors of one adapter, as a Notifier listener sees them: the first error of a
    streak becomes an `AdapterFault` (the driver's cause, the advice); the later ones only wait
    `wait_s` each — a vanished device fails every receive at once, and without the wait the
    Notifier thread would spin a core; a good frame ends the streak. Used by the engine's and
    the trace capture's listeners, on the Notifier thread."""

    def __init__(self, adapter: str, wait_s: float) -> None:
        self.adapter = adapter
        self.wait_s = wait_s
        #: Receive errors of the current streak (0 after a good frame).
        self.errors = 0
        #: The fault of the current streak (None when the adapter delivers frames).
        self.fault: AdapterFault | None = None

    def error(self, exc: BaseException) -> AdapterFault | None:
        """Count one receive error: the new fault when it starts a streak, else None (after
        waiting `wait_s`)."""
        self.errors += 1
        if self.errors > 1:
            time.sleep(self.wait_s)
            return None
        self.fault = describe_adapter_fault(exc, self.adapter)
        return self.fault

    def frame(self) -> bool:
        """A frame arrived: True when it ended a streak."""
        ended = self.errors > 0
        self.errors, self.fault = 0, None
        return ended


# -- slcan with answers checked --------------------------------------------------------------

#: First characters of the slcan lines that carry a received frame.
_SLCAN_FRAME_STARTS = frozenset("tTxrRdDbB")


class CheckedSlcanBus(slcanBus):
    """python-can's slcan bus, but the adapter must answer before it counts as open.

    python-can writes `C`, `S6`, `O` and never reads the answers, so a port with nothing behind
    it, a device that is not an slcan adapter, and an adapter that refuses to open (answers
    BEL to `O`) all "open" fine and the first sign is an ECU that never answers. Here, before
    any other command, the version query `V` must be answered within `identity_timeout_s`
    (every slcan firmware answers it; the text is kept in `identity`), else
    `CanInitializationError` "did not answer". Each command then waits up to `reply_timeout_s`
    for CR (done) or BEL (refused): BEL to `O`/`L` raises "refused to open"; a second `O`
    answered with BEL after an accepted one is "already open" (python-can opens twice). Some
    firmware (the original CANable's) acknowledges no command at all: when the first command
    gets no answer from a device that did answer `V`, `acknowledges` becomes False and no
    answer is awaited any more (a refusal cannot be seen there; the doctor's ECU check can).
    Frames that arrive while waiting are kept for `recv`. `sleep_after_open_s` records the
    pause that was used. Any thread that owns the bus may call it (python-can's own contract).
    """

    def __init__(
        self,
        channel: str,
        *,
        reply_timeout_s: float = SLCAN_REPLY_TIMEOUT_S,
        identity_timeout_s: float = SLCAN_IDENTITY_TIMEOUT_S,
        sleep_after_open: float = SLCAN_SLEEP_AFTER_OPEN_S,
        data_bitrate: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._reply_timeout_s = reply_timeout_s
        self._identity_timeout_s = identity_timeout_s
        #: The adapter's answer to `V` (None until asked).
        self.identity: str | None = None
        #: Whether the firmware answers commands with CR/BEL (None until the first command).
        self.acknowledges: bool | None = None
        self._data_bitrate = data_bitrate
        self._channel_open = False
        self._shutting_down = False
        self.sleep_after_open_s = float(sleep_after_open)
        self.port = str(channel)
        try:
            super().__init__(channel, sleep_after_open=sleep_after_open, **kwargs)
            if data_bitrate:
                self._can_protocol = can.CanProtocol.CAN_FD
        except BaseException:
            port = getattr(self, "serialPortOrig", None)
            if port is not None:
                with contextlib.suppress(Exception):
                    port.close()
            raise

    def _identify(self) -> None:
        """Ask `V` once, before any other command; no answer at all = nothing is there."""
        if self.identity is not None:
            return
        self._write("V")
        deadline = time.monotonic() + self._identity_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            line = self._read(left)
            if line:
                self.identity = line.strip("\r\a") or "(no version text)"
                return
        raise can.CanInitializationError(
            f"the adapter on {self.port} did not answer the version query 'V' within "
            f"{self._identity_timeout_s:g} s: nothing that speaks slcan answers on this port"
        )

    def _command(self, cmd: str) -> str | None:
        """Send one command; its answer ('' = CR, '\\a' = BEL), None = none (from firmware that
        acknowledges commands)."""
        self._identify()
        self._write(cmd)
        if self.acknowledges is False:
            return ""
        deadline = time.monotonic() + self._reply_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            line = self._read(left)
            if not line:
                continue
            if line in ("\a", "\r"):
                self.acknowledges = True
                return "" if line == "\r" else "\a"
            if line[0] in _SLCAN_FRAME_STARTS:
                self._queue.put_nowait(line)  # a frame from the bus: recv() gets it later
        if self.acknowledges is None:
            # It answered V but not this: firmware that acknowledges nothing (CANable 1.x).
            self.acknowledges = False
            log.info("slcan %s: the adapter does not acknowledge commands", self.port)
            return ""
        return None

    def _expect_ok(self, cmd: str, what: str) -> None:
        reply = self._command(cmd)
        if reply is None:
            raise can.CanInitializationError(
                f"the adapter on {self.port} did not answer '{cmd}' ({what}) within "
                f"{self._reply_timeout_s:g} s: nothing that speaks slcan answers on this port"
            )
        if reply == "\a":
            raise can.CanInitializationError(
                f"the adapter on {self.port} refused '{cmd}' ({what}): it answered BEL (error)"
            )

    def set_bitrate(self, bitrate: int, data_bitrate: int | None = None) -> None:
        """Set the nominal (and FD data) bitrate from python-can's tables, each answer checked.

        Without `data_bitrate`, the FD data rate given at construction is used."""
        if data_bitrate is None:
            data_bitrate = self._data_bitrate
        if bitrate not in self._BITRATES:
            raise ValueError(f"Invalid bitrate, choose one of {_rates(SLCAN_BITRATES_BPS)}.")
        code = self._DATA_BITRATES.get(data_bitrate or 0)
        if code is None:
            raise ValueError(
                f"Invalid data bitrate, choose one of {_rates(SLCAN_DATA_BITRATES_BPS)}."
            )
        self.close()
        self._expect_ok(self._BITRATES[bitrate], f"set {bitrate:,} bit/s")
        if code:
            self._expect_ok(code, f"set CAN FD data rate {data_bitrate:,} bit/s")
        self.open()

    def set_bitrate_reg(self, btr: str) -> None:
        """Set the BTR registers (answer checked)."""
        self.close()
        self._expect_ok("s" + btr, "set bit timing registers")
        self.open()

    def open(self) -> None:
        """Open the CAN channel (`O`, or `L` listen-only); raises when refused or silent."""
        cmd = "L" if self._listen_only else "O"
        reply = self._command(cmd)
        if reply is None:
            raise self._no_answer(cmd, "open")
        if reply == "\a":
            if self._channel_open:
                return  # already open: python-can sends O twice
            raise can.CanInitializationError(
                f"the adapter on {self.port} refused to open the CAN channel: it answered BEL "
                f"(error) to '{cmd}'"
            )
        self._channel_open = True

    def close(self) -> None:
        """Close the CAN channel (`C`); BEL means it was closed already."""
        if self._shutting_down:
            self._write("C")  # no answer awaited: the port may be gone
            return
        reply = self._command("C")
        if reply is None:
            raise self._no_answer("C", "close")
        self._channel_open = False

    def _no_answer(self, cmd: str, what: str) -> can.CanInitializationError:
        """The error for a command the adapter left unanswered."""
        return can.CanInitializationError(
            f"the adapter on {self.port} did not answer '{cmd}' ({what}) within "
            f"{self._reply_timeout_s:g} s: nothing that speaks slcan answers on this port"
        )

    def shutdown(self) -> None:
        """Close the channel and the port; a vanished device does not make this raise."""
        if self._is_shutdown:
            return
        self._shutting_down = True
        try:
            super().shutdown()
        except Exception as exc:  # the device is gone: the port must still be closed
            log.debug("slcan %s: closing after a fault: %s", self.port, exc)
            with contextlib.suppress(Exception):
                self.serialPortOrig.close()


def _fd_timing(settings: BusSettings, f_clock_hz: int) -> can.BitTimingFd:
    """A CAN FD bit timing at 80 % sample point for a controller clocked at `f_clock_hz`."""
    return can.BitTimingFd.from_sample_point(
        f_clock=f_clock_hz,
        nom_bitrate=settings.bitrate_bps,
        nom_sample_point=80.0,
        data_bitrate=settings.data_bitrate_bps,
        data_sample_point=80.0,
    )


def bus_kwargs(settings: BusSettings) -> dict[str, Any]:
    """The keyword arguments for `can.Bus` for these settings (pure; used by `open_bus`).

    Mapping per interface, where python-can supports it:
    bitrate → `bitrate` (not for software buses / SocketCAN, whose bitrate is set by `ip link`);
    FD → `fd=True` + `data_bitrate` (vector, kvaser, ixxat), a `BitTimingFd` (pcan, 80 MHz clock;
    slcan via `timing`), `protocol=CAN_FD` (virtual); listen-only → `listen_only` (vector, slcan),
    `state=PASSIVE` (pcan), `driver_mode=False` (kvaser, silent).
    """
    iface = settings.interface.strip().lower()
    kw: dict[str, Any] = {"interface": iface, "channel": settings.channel, "ignore_config": True}
    if iface == "virtual":
        if settings.fd:
            kw["protocol"] = can.CanProtocol.CAN_FD
    elif iface == "fota_sim":
        # The bus timing model paces frames at these bitrates (sim/paced_bus.py).
        kw["bitrate"] = settings.bitrate_bps
        kw["data_bitrate"] = settings.data_bitrate_bps
        kw["fd"] = settings.fd
    elif iface == "udp_multicast" or iface == "socketcan":
        kw["fd"] = settings.fd
    elif iface == "pcan":
        if settings.fd:
            kw["timing"] = _fd_timing(settings, 80_000_000)
        else:
            kw["bitrate"] = settings.bitrate_bps
        if settings.listen_only:
            kw["state"] = can.BusState.PASSIVE
    elif iface == "kvaser":
        kw["bitrate"] = settings.bitrate_bps
        if settings.fd:
            kw["fd"] = True
            kw["data_bitrate"] = settings.data_bitrate_bps
        if settings.listen_only:
            kw["driver_mode"] = False  # python-can: False = canDRIVER_SILENT
    elif iface in ("vector", "ixxat"):
        kw["bitrate"] = settings.bitrate_bps
        if settings.fd:
            kw["fd"] = True
            kw["data_bitrate"] = settings.data_bitrate_bps
        if settings.listen_only and iface == "vector":
            kw["listen_only"] = True
    elif iface == "slcan":
        # CheckedSlcanBus takes the FD data rate directly (python-can's own slcanBus only
        # through a BitTimingFd, whose clock means nothing to an slcan adapter and which
        # cannot express 83,300 bit/s): S and Y commands from python-can's tables.
        kw["bitrate"] = settings.bitrate_bps
        if settings.fd:
            kw["data_bitrate"] = settings.data_bitrate_bps
        kw["listen_only"] = settings.listen_only
        kw.update(LIMITS["slcan"].option_defaults())  # sleep_after_open 0.1 s, not 2 s
    else:
        kw["bitrate"] = settings.bitrate_bps
        if settings.fd:
            kw["fd"] = True
            kw["data_bitrate"] = settings.data_bitrate_bps
    kw.update(settings.extra)
    kw["ignore_config"] = True  # never let `extra` re-enable config files
    return kw


def _hint_for(iface: str) -> str:
    """What to install or check for an interface that failed to open."""
    return _DRIVER_HINTS.get(
        iface,
        "check the interface name, the channel, the driver and that the adapter is plugged in",
    )


#: Said with every failure to open: no frame left the computer through this adapter.
NEVER_OPENED = "the adapter never opened, so the ECU was never touched"


def _slcan_open_hint(text: str) -> str:
    low = text.lower()
    if "refused" in low:
        return (
            "the adapter answers but refused to go on the bus: check that the bitrate is one it "
            "supports, unplug and replug it (another program may have left it open or in an "
            "error state) and run `fota-studio doctor`"
        )
    if "did not answer" in low:
        return (
            "nothing answers the slcan commands on this port: check that it is the adapter's "
            "port (not another serial device), that the adapter runs slcan firmware (a "
            "candleLight/gs_usb firmware does not speak slcan), the serial baud rate, and that "
            "it is plugged in"
        )
    return _hint_for("slcan") + "; check the channel name and that no other program uses it"


def open_bus(settings: BusSettings) -> can.BusABC:
    """Open the bus described by `settings` with `ignore_config=True`.

    Settings the interface cannot do (a bitrate not in its table, an FD data rate it does not
    offer, an unknown option) are refused before anything is opened, naming what it offers.
    slcan adapters open through `CheckedSlcanBus` (a silent or refusing adapter fails here).
    Raises `AdapterError` naming the interface and what to install or check when the interface
    is unknown, its driver library is missing, or the device/channel cannot be opened. The bus
    gets `fota_adapter` (`slcan:/dev/ttyACM0`), the name fault messages use.
    """
    iface = settings.interface.strip().lower()
    if not iface:
        raise AdapterError("No CAN interface selected", hint="choose an interface, e.g. pcan")
    known = set(can.interfaces.VALID_INTERFACES)
    if iface not in known:
        raise AdapterError(
            f"Unknown CAN interface '{settings.interface}'",
            hint="valid interfaces: " + ", ".join(sorted(known)),
        )
    where = f"{iface} channel '{settings.channel}'"
    lim = interface_limits(iface)
    options = {k: v for k, v in settings.extra.items() if lim.option(k) is not None}
    problems = problems_of_settings(iface, settings, options)
    if problems:
        raise AdapterError(
            f"Cannot open {where} with {settings.describe()}: " + "; ".join(problems),
            hint="change the adapter settings (Settings → Connections) to values this "
            f"interface offers; {NEVER_OPENED}",
        )
    kwargs = bus_kwargs(settings)
    try:
        if iface == "slcan":
            del kwargs["interface"], kwargs["ignore_config"]  # no config file is read here
            bus: can.BusABC = CheckedSlcanBus(**kwargs)
        else:
            bus = can.Bus(**kwargs)
    except can.CanInterfaceNotImplementedError as exc:
        raise AdapterError(
            f"CAN interface '{iface}' is not available on this computer: {exc}",
            hint=_hint_for(iface) + f"; {NEVER_OPENED}",
        ) from exc
    except can.CanInitializationError as exc:
        text = exception_chain_text(exc)
        hint = (
            _slcan_open_hint(text)
            if iface == "slcan"
            else _hint_for(iface) + "; check the channel name and that no other program uses it"
        )
        raise AdapterError(f"Cannot open {where}: {text}", hint=f"{hint}; {NEVER_OPENED}") from exc
    except ImportError as exc:
        raise AdapterError(
            f"CAN interface '{iface}' needs a Python package that is not installed: {exc}",
            hint=_hint_for(iface) + f"; {NEVER_OPENED}",
        ) from exc
    except OSError as exc:
        raise AdapterError(
            f"Cannot open {where}: driver or device error: {exc}",
            hint=_hint_for(iface) + f"; {NEVER_OPENED}",
        ) from exc
    except (
        can.CanError,
        ValueError,
        TypeError,
        AttributeError,
        NameError,
        NotImplementedError,
    ) as exc:
        # python-can reports a bad bitrate or unsupported option as ValueError/TypeError (or
        # NotImplementedError, e.g. udp_multicast with receive_own_messages), and
        # some wrappers (kvaser) fail with NameError/AttributeError when their DLL is absent.
        raise AdapterError(
            f"Cannot open {where} with {settings.describe()}: {exception_chain_text(exc)}",
            hint=_hint_for(iface) + f"; check bitrate / FD settings for this adapter; "
            f"{NEVER_OPENED}",
        ) from exc
    with contextlib.suppress(AttributeError):
        bus.fota_adapter = f"{iface}:{settings.channel}"  # type: ignore[attr-defined]  # our tag
    return bus


def detect_configs(
    interfaces: Iterable[str] | None = None, timeout_s: float = DETECT_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Channels the installed drivers can see, as dicts with `interface` and `channel` keys.

    Runs `can.detect_available_configs` in a daemon thread and returns what it found within
    `timeout_s` (an empty list on timeout or any driver error); never raises.
    """
    wanted: list[str] | None = list(interfaces) if interfaces is not None else None
    result: list[dict[str, Any]] = []
    done = threading.Event()

    def work() -> None:
        try:
            found = can.detect_available_configs(interfaces=wanted, timeout=timeout_s)
            result.extend(dict(cfg) for cfg in found)
        except Exception:  # a broken driver must never break the connection dialog
            log.warning("CAN adapter detection failed", exc_info=True)
        finally:
            done.set()

    worker = threading.Thread(target=work, name="can-detect", daemon=True)
    worker.start()
    if not done.wait(timeout_s + 0.5):
        log.warning("CAN adapter detection did not finish within %.1f s", timeout_s)
        return []
    return [cfg for cfg in result if "interface" in cfg and "channel" in cfg]


def settings_from_config(config: Mapping[str, Any]) -> BusSettings:
    """BusSettings for one `detect_configs()` entry (bitrate and FD stay at their defaults)."""
    return BusSettings(interface=str(config["interface"]), channel=str(config["channel"]))
