"""`fota-studio doctor`: check a CAN adapter end to end and say in plain words what is wrong.

Two ways to name the adapter: a logical channel of the workspace (`--channel CAN1`, the default:
its saved connection settings, else the demo default), or an explicit adapter (`--interface pcan
--channel PCAN_USBBUS1 [--bitrate ...]`). `--list` shows the channels the installed drivers can
see. `--ecu NAME` (default: the first ECU of the EA on a logical channel) makes the ECU answer a
harmless TesterPresent, which proves what an interface like slcan cannot report itself (ACK,
bitrate). `--interfaces` prints what each python-can interface can report. The checks live in
`fota_studio.engine.doctor`. Exit codes: 0 every check OK, 1 a check failed, 3 nothing failed
but something could not be checked on this interface (NOT PROVEN). Runs on the main thread.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fota_studio.cli.common import Command, add_command, arg, open_workspace, print_table, succeed
from fota_studio.core.ea import EcuDefinition, ElectronicArchitecture
from fota_studio.core.errors import ConfigurationError
from fota_studio.engine.doctor import LISTEN_S, CheckResult, Status, run_doctor
from fota_studio.infra.connections import (
    DEMO_LOGICAL_CHANNEL,
    get_connection,
    parse_option_text,
)
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import (
    CAPABILITIES,
    BusSettings,
    detect_configs,
    problems_of_settings,
)

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_NOT_PROVEN = 3


def register(subparsers: Any) -> None:
    """Add the `doctor` command."""
    add_command(
        subparsers,
        Command(
            "doctor",
            run,
            "check a CAN adapter end to end (driver, device, bitrate, ACK, timer)",
            "Check the adapter of a logical channel (default CAN1) or of an explicit "
            "--interface/--channel, and explain each problem in plain words.",
            args=(
                arg(
                    "--channel",
                    help="logical channel of the workspace (e.g. CAN1); with --interface: the "
                    "adapter channel (e.g. PCAN_USBBUS1, can0)",
                ),
                arg("--interface", help="python-can interface (pcan, kvaser, socketcan, ...)"),
                arg("--bitrate", type=int, help="nominal bitrate in bit/s (with --interface)"),
                arg("--fd", action="store_true", help="CAN FD (with --interface)"),
                arg("--data-bitrate", type=int, help="CAN FD data bitrate in bit/s"),
                arg("--listen-only", action="store_true", help="never send (no ACK probe)"),
                arg("--no-probe", action="store_true", help="do not send the probe frame"),
                arg(
                    "--listen-s",
                    type=float,
                    default=LISTEN_S,
                    help=f"listening window (default {LISTEN_S})",
                ),
                arg(
                    "--option",
                    action="append",
                    default=[],
                    metavar="NAME=VALUE",
                    help="interface open option with --interface (slcan: sleep_after_open=0.1, "
                    "tty_baudrate=115200)",
                ),
                arg("--ea", help="EA whose bitrate the channel must match (default: any using it)"),
                arg(
                    "--ecu",
                    help="ECU that must answer TesterPresent 3E 00 (default: the EA's first ECU "
                    "on the logical channel)",
                ),
                arg("--no-peer", action="store_true", help="do not ask any ECU"),
                arg("--list", action="store_true", help="list the adapters the drivers can see"),
                arg(
                    "--interfaces",
                    action="store_true",
                    help="print what each python-can interface can report (bus state, error "
                    "frames, ACK, hardware timestamps)",
                ),
                arg("--json", action="store_true", help="print the report as JSON"),
            ),
        ),
    )


def _find_ea(ws: Workspace, logical: str, name: str | None) -> ElectronicArchitecture | None:
    from fota_studio.infra.ea_store import EaStore

    store = EaStore(ws)
    if name:
        return store.get(name)
    for ea_name in store.names():
        ea = store.get(ea_name)
        if any(e.connection.channel == logical for e in ea.ecus):
            return ea
    return None


def _explicit_settings(args: argparse.Namespace) -> BusSettings:
    iface = args.interface.strip().lower()
    options = dict(parse_option_text(iface, text) for text in args.option)
    settings = BusSettings(
        interface=iface,
        channel=args.channel or "0",
        bitrate_bps=args.bitrate or 500_000,
        fd=bool(args.fd),
        data_bitrate_bps=args.data_bitrate or 2_000_000,
        listen_only=bool(args.listen_only),
        extra=options,
    )
    problems = problems_of_settings(iface, settings, options)
    if problems:
        raise ConfigurationError(
            "; ".join(problems), hint="choose values this interface offers; nothing was opened"
        )
    return settings


def _find_ecu(
    ws: Workspace, ea: ElectronicArchitecture | None, logical: str | None, name: str | None
) -> EcuDefinition | None:
    """The ECU the peer check asks: `--ecu` (in `ea`, else any EA), else the EA's first ECU on
    the logical channel."""
    from fota_studio.infra.ea_store import EaStore

    if name:
        candidates = [ea] if ea is not None else [EaStore(ws).get(n) for n in EaStore(ws).names()]
        for cand in candidates:
            if cand is None:
                continue
            found = next((e for e in cand.ecus if e.name == name), None)
            if found is not None:
                return found
        raise ConfigurationError(
            f"no ECU named {name!r} in the workspace's EAs", hint="`fota-studio ea list` shows them"
        )
    if ea is None or logical is None:
        return None
    return next((e for e in ea.ecus if e.connection.channel == logical), None)


def _resolve(
    args: argparse.Namespace,
) -> tuple[BusSettings, str, int | None, EcuDefinition | None]:
    """(settings, label, bitrate the EA expects, ECU to ask) from the arguments."""
    if args.interface:
        settings = _explicit_settings(args)
        ecu = None
        if args.ecu and not args.no_peer:
            ws = open_workspace(args)
            try:
                ea = _find_ea(ws, "", args.ea) if args.ea else None
                ecu = _find_ecu(ws, ea, None, args.ecu)
            finally:
                ws.close()
        return settings, settings.describe(), None, ecu
    logical = args.channel or DEMO_LOGICAL_CHANNEL
    ws = open_workspace(args)
    try:
        ea = _find_ea(ws, logical, args.ea)
        conn = get_connection(ws, logical, ea)
        ecu = None if args.no_peer else _find_ecu(ws, ea, logical, args.ecu)
    finally:
        ws.close()
    settings = conn.bus_settings()
    if args.listen_only:
        settings = BusSettings(**{**settings.__dict__, "listen_only": True})
    expected = None
    if ea is not None:
        rates = [e.connection.bitrate_bps for e in ea.ecus if e.connection.channel == logical]
        expected = rates[0] if rates else None
    return settings, conn.describe(), expected, ecu


def _interfaces() -> int:
    rows = [
        [c.interface, c.bus_state, c.error_frames, c.ack, c.hw_timestamps]
        for c in sorted(CAPABILITIES.values(), key=lambda c: c.interface)
    ]
    print_table(["interface", "bus state", "error frames", "ACK", "hw timestamps"], rows)
    return EXIT_OK


def _list() -> int:
    configs = detect_configs()
    if not configs:
        return succeed("no CAN adapters found by the installed drivers")
    print_table(
        ["interface", "channel"], [[str(c["interface"]), str(c["channel"])] for c in configs]
    )
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run the `doctor` command; returns the exit code."""
    if args.list:
        return _list()
    if args.interfaces:
        return _interfaces()
    settings, label, expected, ecu = _resolve(args)

    def live(check: CheckResult) -> None:
        if not args.json:
            mark = "ok" if check.status is Status.OK else str(check.status)
            print(f"  … {check.name}: {mark}", flush=True)

    report = run_doctor(
        settings,
        label=label,
        listen_s=args.listen_s,
        send_probe=not args.no_probe,
        expected_bitrate_bps=expected,
        on_check=live,
        ecu=ecu,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.to_text())
    if not report.ok:
        return EXIT_PROBLEM
    return EXIT_OK if report.proven else EXIT_NOT_PROVEN
