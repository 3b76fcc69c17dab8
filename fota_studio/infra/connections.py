"""Adapter settings per logical CAN channel, saved in the workspace.

An Electronic Architecture names the bus an ECU sits on by a logical channel ("CAN1"); this
module maps each logical channel to the physical adapter that reaches it: python-can interface,
adapter channel, nominal bitrate, CAN FD data bitrate, sample points (where the interface takes a
bit timing), listen-only and the interface's own open options (slcan: `sleep_after_open`,
`tty_baudrate`, `rtscts`). Validation accepts only what the chosen python-can interface can do
(`protocols.bus.settings_problems`: slcan's fixed bitrate table and FD data rates of 2 or
5 Mbit/s, PCAN's and Kvaser's presets, ...), so a wrong value is refused when it is saved, not
when the adapter opens. The mapping is one versioned JSON document in the workspace settings
table (`ws.get_setting/set_setting`, key `connections`); an unmapped channel falls back to the
demo default (CAN1 → python-can `virtual` channel "fota-demo") or, for other names, to a
`virtual` bus named after the channel, with bitrate and FD taken from the EA's ECUs on it.
`ChannelConnection.bus_settings()` gives the `BusSettings` that `open_bus` takes. Call from the
thread that owns the workspace (GUI thread or a CLI command); the functions are quick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import can

from fota_studio.core.ea import ElectronicArchitecture
from fota_studio.core.errors import ConfigurationError
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings, interface_limits, settings_problems

#: Workspace setting holding the whole mapping (a JSON object, see `_to_document`).
CONNECTIONS_SETTING = "connections"
#: Format version of that document; bump it and add a migration in `_from_document`.
CONNECTIONS_FORMAT_VERSION = 1

DEMO_LOGICAL_CHANNEL = "CAN1"
DEMO_INTERFACE = "virtual"
DEMO_ADAPTER_CHANNEL = "fota-demo"

#: Controller clocks for the interfaces whose python-can wrapper takes a `timing` object, so a
#: sample point can be set: (classic CAN clock, CAN FD clock) in Hz.
SAMPLE_POINT_CLOCKS_HZ: dict[str, tuple[int, int]] = {
    "pcan": (8_000_000, 80_000_000),
    "kvaser": (8_000_000, 80_000_000),
    "vector": (16_000_000, 80_000_000),
}

MIN_BITRATE_BPS = 10_000
MAX_BITRATE_BPS = 1_000_000
MAX_DATA_BITRATE_BPS = 12_000_000
#: The `ChannelConnection` fields a `BusSettings` takes as they are.
_BUS_FIELDS = ("channel", "bitrate_bps", "fd", "data_bitrate_bps", "listen_only")


@dataclass(frozen=True)
class ChannelConnection:
    """The adapter settings of one logical channel (immutable; edit with `dataclasses.replace`)."""

    logical_channel: str
    interface: str
    channel: str
    bitrate_bps: int = 500_000
    fd: bool = False
    data_bitrate_bps: int = 2_000_000
    sample_point_pct: float | None = None
    data_sample_point_pct: float | None = None
    listen_only: bool = False
    #: Interface-specific open options (`protocols.bus.InterfaceLimits.options`), passed to
    #: python-can at open; unset ones take the interface's defaults.
    options: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ConfigurationError naming the field when a value is out of range."""
        where = f"connection {self.logical_channel!r}"
        if not self.logical_channel.strip():
            raise ConfigurationError("a connection needs a logical channel name (e.g. CAN1)")
        if not self.interface.strip():
            raise ConfigurationError(f"{where}: no interface", hint="e.g. pcan, socketcan")
        if not self.channel.strip():
            raise ConfigurationError(f"{where}: no adapter channel", hint="e.g. PCAN_USBBUS1")
        problems = settings_problems(
            self.interface,
            self.bitrate_bps,
            self.fd,
            self.data_bitrate_bps,
            self.listen_only,
            self.options,
        )
        if problems:
            raise ConfigurationError(
                f"{where}: " + "; ".join(problems),
                hint="choose a value the interface offers (Settings → Connections lists them)",
            )
        for name in ("sample_point_pct", "data_sample_point_pct"):
            value = getattr(self, name)
            if value is not None and not 50.0 <= value <= 95.0:
                raise ConfigurationError(
                    f"{where}: {name} {value} % is out of range", hint="use 50..95 % (often 80)"
                )

    @property
    def supports_sample_point(self) -> bool:
        """True if the interface takes a bit timing, so the sample points are applied."""
        return self.interface.strip().lower() in SAMPLE_POINT_CLOCKS_HZ

    def bus_settings(self) -> BusSettings:
        """The `BusSettings` for `open_bus`; sample points become a python-can `timing`."""
        extra: dict[str, Any] = {}
        extra.update(self.options)
        timing = self._timing()
        if timing is not None:
            extra["timing"] = timing
        return BusSettings(
            interface=self.interface.strip().lower(),
            extra=extra,
            **{name: getattr(self, name) for name in _BUS_FIELDS},
        )

    def _timing(self) -> can.BitTiming | can.BitTimingFd | None:
        """A bit timing at the chosen sample points, for interfaces that accept one."""
        if self.sample_point_pct is None and self.data_sample_point_pct is None:
            return None
        clocks = SAMPLE_POINT_CLOCKS_HZ.get(self.interface.strip().lower())
        if clocks is None:
            return None  # the interface sets its own timing from the bitrate
        nominal_sp = self.sample_point_pct or 80.0
        try:
            if self.fd:
                return can.BitTimingFd.from_sample_point(
                    f_clock=clocks[1],
                    nom_bitrate=self.bitrate_bps,
                    nom_sample_point=nominal_sp,
                    data_bitrate=self.data_bitrate_bps,
                    data_sample_point=self.data_sample_point_pct or 80.0,
                )
            return can.BitTiming.from_sample_point(
                f_clock=clocks[0], bitrate=self.bitrate_bps, sample_point=nominal_sp
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"connection {self.logical_channel!r}: no bit timing for "
                f"{self.bitrate_bps} bit/s at {nominal_sp} % on {self.interface}: {exc}",
                hint="choose a sample point nearer 80 % or leave it empty",
            ) from exc

    def describe(self) -> str:
        """A short label such as `CAN1 → pcan:PCAN_USBBUS1 500k`."""
        return f"{self.logical_channel} → {self.bus_settings().describe()}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-encodable dict (without the logical channel, which is the mapping key)."""
        data = asdict(self)
        del data["logical_channel"]
        data["options"] = dict(self.options)
        if not data["options"]:
            del data["options"]  # older files have none; keep them byte-identical
        return data

    @classmethod
    def from_dict(cls, logical_channel: str, data: Mapping[str, Any]) -> ChannelConnection:
        """Build and validate one connection from its stored dict."""
        known = {
            "interface",
            "channel",
            "bitrate_bps",
            "fd",
            "data_bitrate_bps",
            "sample_point_pct",
            "data_sample_point_pct",
            "listen_only",
            "options",
        }
        unknown = set(data) - known
        if unknown:
            raise ConfigurationError(
                f"connection {logical_channel!r}: unknown setting(s) {', '.join(sorted(unknown))}"
            )
        try:
            conn = cls(
                logical_channel=logical_channel,
                interface=str(data["interface"]),
                channel=str(data["channel"]),
                bitrate_bps=int(data.get("bitrate_bps", 500_000)),
                fd=bool(data.get("fd", False)),
                data_bitrate_bps=int(data.get("data_bitrate_bps", 2_000_000)),
                sample_point_pct=_opt_float(data.get("sample_point_pct")),
                data_sample_point_pct=_opt_float(data.get("data_sample_point_pct")),
                listen_only=bool(data.get("listen_only", False)),
                options=_options(logical_channel, data.get("options")),
            )
        except KeyError as exc:
            raise ConfigurationError(
                f"connection {logical_channel!r}: missing setting {exc.args[0]!r}"
            ) from None
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"connection {logical_channel!r}: {exc}") from None
        conn.validate()
        return conn


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _options(logical_channel: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"connection {logical_channel!r}: options must be a mapping of name to value"
        )
    return {str(k): v for k, v in value.items()}


def parse_option_text(interface: str, text: str) -> tuple[str, Any]:
    """`sleep_after_open=0.1` → (`sleep_after_open`, 0.1), typed by the interface's option spec.

    Raises ConfigurationError naming the option and the interface's options when the name is
    unknown or the value does not parse/fit.
    """
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    lim = interface_limits(interface)
    spec = lim.option(name)
    known = ", ".join(o.name for o in lim.options) or "none"
    if not sep or spec is None:
        raise ConfigurationError(
            f"option {text!r}: {lim.interface} has no option {name!r}",
            hint=f"write NAME=VALUE; {lim.interface} options: {known}",
        )
    value: Any
    try:
        if spec.kind is bool:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            value = raw.lower() in ("1", "true", "yes", "on")
        elif spec.kind is int:
            value = int(raw)
        else:
            value = float(raw)
    except ValueError:
        raise ConfigurationError(
            f"option {name}: {raw!r} is not a {spec.kind.__name__}", hint=spec.help
        ) from None
    problem = spec.check(value)
    if problem:
        raise ConfigurationError(f"option {problem}", hint=spec.help)
    return name, value


def default_connection(
    logical_channel: str, ea: ElectronicArchitecture | None = None
) -> ChannelConnection:
    """The connection used when none is saved: the demo default, bitrates from the EA."""
    adapter_channel = (
        DEMO_ADAPTER_CHANNEL if logical_channel == DEMO_LOGICAL_CHANNEL else logical_channel
    )
    conn = ChannelConnection(
        logical_channel=logical_channel, interface=DEMO_INTERFACE, channel=adapter_channel
    )
    if ea is not None:
        conn = with_ea_bitrates(conn, ea)
    return conn


def with_ea_bitrates(conn: ChannelConnection, ea: ElectronicArchitecture) -> ChannelConnection:
    """`conn` with bitrate/FD of the EA's ECUs on its logical channel (FD if any ECU uses it)."""
    ecus = [e for e in ea.ecus if e.connection.channel == conn.logical_channel]
    if not ecus:
        return conn
    fd = any(e.connection.fd for e in ecus)
    data_bitrate = max(
        (e.connection.data_bitrate_bps for e in ecus if e.connection.fd),
        default=conn.data_bitrate_bps,
    )
    return replace(
        conn, bitrate_bps=ecus[0].connection.bitrate_bps, fd=fd, data_bitrate_bps=data_bitrate
    )


def ea_channels(ea: ElectronicArchitecture) -> list[str]:
    """The logical channels the EA's ECUs use, in first-use order."""
    seen: list[str] = []
    for ecu in ea.ecus:
        if ecu.connection.channel not in seen:
            seen.append(ecu.connection.channel)
    return seen


def ea_bitrate_mismatches(conn: ChannelConnection, ea: ElectronicArchitecture) -> list[str]:
    """Plain-words differences between the saved settings and what the EA's ECUs expect."""
    problems: list[str] = []
    for ecu in ea.ecus:
        c = ecu.connection
        if c.channel != conn.logical_channel:
            continue
        if c.bitrate_bps != conn.bitrate_bps:
            problems.append(
                f"{ecu.name} expects {c.bitrate_bps} bit/s, the adapter is set to "
                f"{conn.bitrate_bps} bit/s"
            )
        if c.fd and not conn.fd:
            problems.append(f"{ecu.name} uses CAN FD, the adapter is set to classic CAN")
        elif c.fd and c.data_bitrate_bps != conn.data_bitrate_bps:
            problems.append(
                f"{ecu.name} expects an FD data bitrate of {c.data_bitrate_bps} bit/s, the "
                f"adapter is set to {conn.data_bitrate_bps} bit/s"
            )
    return problems


def _to_document(conns: Iterable[ChannelConnection]) -> dict[str, Any]:
    return {
        "format": CONNECTIONS_FORMAT_VERSION,
        "channels": {c.logical_channel: c.to_dict() for c in conns},
    }


def _from_document(doc: Any) -> dict[str, ChannelConnection]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or not isinstance(doc.get("channels"), Mapping):
        raise ConfigurationError(
            "the workspace's connection settings are not readable",
            hint="re-enter them in Settings → Connections, or `fota-studio doctor` per channel",
        )
    fmt = doc.get("format", 1)
    if fmt != CONNECTIONS_FORMAT_VERSION:
        raise ConfigurationError(
            f"the workspace's connection settings have format {fmt}, this FOTA Studio reads "
            f"format {CONNECTIONS_FORMAT_VERSION}",
            hint="use the FOTA Studio version that wrote them",
        )
    return {
        str(name): ChannelConnection.from_dict(str(name), data)
        for name, data in doc["channels"].items()
    }


def load_connections(ws: Workspace) -> dict[str, ChannelConnection]:
    """Every saved connection by logical channel (empty when none is saved)."""
    return _from_document(ws.get_setting(CONNECTIONS_SETTING))


def save_connections(ws: Workspace, conns: Iterable[ChannelConnection]) -> None:
    """Replace the saved mapping with `conns` (each validated first)."""
    items = list(conns)
    names = [c.logical_channel for c in items]
    if len(set(names)) != len(names):
        raise ConfigurationError("two connections for the same logical channel")
    for conn in items:
        conn.validate()
        conn.bus_settings()  # the sample points must give a valid bit timing
    ws.set_setting(CONNECTIONS_SETTING, _to_document(items))


def set_connection(ws: Workspace, conn: ChannelConnection) -> None:
    """Save (add or replace) the connection of one logical channel."""
    conns = load_connections(ws)
    conns[conn.logical_channel] = conn
    save_connections(ws, conns.values())


def remove_connection(ws: Workspace, logical_channel: str) -> bool:
    """Forget a saved connection (the default applies again); True if one was removed."""
    conns = load_connections(ws)
    if conns.pop(logical_channel, None) is None:
        return False
    save_connections(ws, conns.values())
    return True


def get_connection(
    ws: Workspace, logical_channel: str, ea: ElectronicArchitecture | None = None
) -> ChannelConnection:
    """The saved connection of a logical channel, else `default_connection`."""
    saved = load_connections(ws).get(logical_channel)
    return saved if saved is not None else default_connection(logical_channel, ea)


def bus_settings_for(
    ws: Workspace, logical_channel: str, ea: ElectronicArchitecture | None = None
) -> BusSettings:
    """The `BusSettings` to open for an EA's logical channel."""
    return get_connection(ws, logical_channel, ea).bus_settings()
