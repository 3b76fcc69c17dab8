"""Bus factory: open any python-can interface from explicit settings, never from a config file.

`open_bus(BusSettings)` maps our settings (bitrate, CAN FD, data bitrate, listen-only) onto the
keyword arguments each python-can interface understands, always with `ignore_config=True` so a
stray `can.ini` or `CAN_*` environment variable never changes what is flashed, and turns every
way an adapter can fail to open (driver library missing, no device, wrong channel, unknown
interface) into an `AdapterError` that names the interface and says what to install or check.
`detect_configs()` lists the channels the installed drivers can see, bounded in time and never
raising. Any thread may call these functions; opening a hardware adapter can take a second, so
the GUI calls them from a worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import can

from fota_studio.core.errors import AdapterError

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
        if settings.fd:
            kw["timing"] = _fd_timing(settings, 80_000_000)
        else:
            kw["bitrate"] = settings.bitrate_bps
        kw["listen_only"] = settings.listen_only
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


def open_bus(settings: BusSettings) -> can.BusABC:
    """Open the bus described by `settings` with `ignore_config=True`.

    Raises `AdapterError` naming the interface and what to install or check when the interface
    is unknown, its driver library is missing, or the device/channel cannot be opened.
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
    kwargs = bus_kwargs(settings)
    where = f"{iface} channel '{settings.channel}'"
    try:
        return can.Bus(**kwargs)
    except can.CanInterfaceNotImplementedError as exc:
        raise AdapterError(
            f"CAN interface '{iface}' is not available on this computer: {exc}",
            hint=_hint_for(iface),
        ) from exc
    except can.CanInitializationError as exc:
        raise AdapterError(
            f"Cannot open {where}: {exc}",
            hint=_hint_for(iface) + "; check the channel name and that no other program uses it",
        ) from exc
    except ImportError as exc:
        raise AdapterError(
            f"CAN interface '{iface}' needs a Python package that is not installed: {exc}",
            hint=_hint_for(iface),
        ) from exc
    except OSError as exc:
        raise AdapterError(
            f"Cannot open {where}: driver or device error: {exc}", hint=_hint_for(iface)
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
            f"Cannot open {where} with {settings.describe()}: {exc}",
            hint=_hint_for(iface) + "; check bitrate / FD settings for this adapter",
        ) from exc


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
