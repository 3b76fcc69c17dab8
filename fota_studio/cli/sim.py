"""`fota-studio sim`: run a machine's simulated ECUs and its TCU node on a CAN bus until stopped.

The machine's EA comes from the workspace (`infra.ea_store`); a demo machine falls back to the
built-in demo EA (`--demo` forces that and touches no workspace). Each ECU starts with the
firmware installed on the machine (from the Software Repository when the workspace has it,
otherwise a synthetic image carrying the installed version) the first time; after that its flash
and state persist in `--state-dir`. The bus is opened through `protocols.bus.open_bus` (any
python-can interface; `--timing` uses the paced virtual bus `fota_sim` instead of `virtual`);
this command owns the bus and its one notifier. Faults (`--fault STEP:KIND[:ARG[:COUNT]]` with
an optional `ECU=` prefix) are armed at start. Runs on the main thread until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import can

from fota_studio.cli.common import Command, add_command, arg
from fota_studio.core.ea import ElectronicArchitecture
from fota_studio.core.errors import ArchitectureError, ConfigurationError
from fota_studio.demo import catalog as demo_catalog
from fota_studio.demo.bench import demo_installed_images
from fota_studio.sim.faults import Fault, parse_fault
from fota_studio.sim.machine import SimMachine
from fota_studio.sim.uds_ecu import SimEcuOptions

log = logging.getLogger(__name__)

#: Notifier stop timeout (library-notes: the default waits up to 1 s).
NOTIFIER_STOP_TIMEOUT_S = 0.1
#: ISO-TP block size the simulated ECUs offer on udp_multicast (block size 0 loses frames).
UDP_MULTICAST_BLOCK_SIZE = 8


def register(subparsers: Any) -> None:
    """Add the `sim` command to the top-level parser."""
    options = (
        arg("--machine", default=demo_catalog.DEMO_MACHINES[0], metavar="SERIAL"),
        arg("--interface", default="virtual", metavar="I", help="python-can interface"),
        arg("--channel", default=demo_catalog.DEMO_CHANNEL, metavar="C"),
        arg("--bitrate", type=int, default=500_000, metavar="B", help="bit/s"),
        arg("--data-bitrate", type=int, default=2_000_000, metavar="B", help="FD bit/s"),
        arg("--fd", action="store_true", help="open the bus in CAN FD mode"),
        arg(
            "--timing",
            action="store_true",
            help="model the wire time (interface fota_sim instead of virtual)",
        ),
        arg(
            "--fault",
            action="append",
            default=[],
            metavar="[ECU=]STEP:KIND[:ARG[:COUNT]]",
            help="inject a fault (repeatable), e.g. erase:nrc:0x22 or "
            "VCU=transfer_data:power_loss:4096",
        ),
        arg("--state-dir", type=Path, metavar="DIR", help="flash/state files folder"),
        arg("--ecu", action="append", metavar="NAME", help="simulate only these ECUs"),
        arg("--demo", action="store_true", help="use the built-in demo EA, no workspace"),
        arg("--no-tcu", action="store_true", help="do not start the TCU CANopen node on the bus"),
        arg("--erase-ms-per-kib", type=float, default=None, help="simulated erase speed (ms/KiB)"),
    )
    add_command(
        subparsers,
        Command(
            "sim",
            run,
            "run a machine's simulated ECUs (strict UDS bootloaders) and TCU node on a bus",
            "Simulate every ECU of a machine (application + strict UDS bootloader with "
            "persistent flash) and the TCU CANopen node on a CAN bus until Ctrl-C/SIGTERM.",
            args=options,
        ),
    )


def parse_faults(specs: Sequence[str], ecu_names: Sequence[str]) -> list[tuple[str, Fault]]:
    """Parse `[ECU=]STEP:KIND[:ARG[:COUNT]]` specs; without ECU a fault goes to every ECU."""
    out: list[tuple[str, Fault]] = []
    for spec in specs:
        target, _, rest = spec.rpartition("=")
        fault = parse_fault(rest)
        if target and target not in ecu_names:
            raise ConfigurationError(
                f'fault "{spec}" names ECU "{target}"', hint=f"known: {', '.join(ecu_names)}"
            )
        for name in [target] if target else ecu_names:
            out.append((name, fault))
    return out


def _load_machine(
    args: argparse.Namespace,
) -> tuple[ElectronicArchitecture, dict[str, list[tuple[int, bytes]]], Path | None]:
    """The machine's EA, the installed images per ECU, and the workspace root (if used)."""
    is_demo = args.machine in demo_catalog.DEMO_MACHINES
    if args.demo:
        if not is_demo:
            raise ArchitectureError(
                f'"{args.machine}" is not a demo machine',
                hint=f"--demo works with {', '.join(demo_catalog.DEMO_MACHINES)}",
            )
        return demo_catalog.demo_architecture(), demo_installed_images(), None
    try:
        from fota_studio.cli.common import open_workspace
        from fota_studio.infra.ea_store import EaStore
        from fota_studio.infra.repository import RepositoryStore
    except ImportError as exc:  # another helper's module missing: demo machines still run
        log.warning("workspace access unavailable (%s); using the built-in demo EA", exc)
        if not is_demo:
            raise ArchitectureError(f'cannot look up machine "{args.machine}": {exc}') from exc
        return demo_catalog.demo_architecture(), demo_installed_images(), None
    ws = open_workspace(args)
    try:
        eas = EaStore(ws)
        machine = eas.find_machine(args.machine)
        if machine is None or machine.ea_name is None:
            if not is_demo:
                eas.get_machine(args.machine)  # raises with the known machines
                raise ArchitectureError(f'machine "{args.machine}" is not assigned to an EA')
            ea = demo_catalog.demo_architecture()
            return ea, demo_installed_images(), ws.root
        ea = eas.get(machine.ea_name)
        images: dict[str, list[tuple[int, bytes]]] = {}
        repo = RepositoryStore(ws)
        for ecu in ea.ecus:
            version = machine.installed.get(ecu.name)
            if not version:
                continue
            try:
                image = repo.load_image(repo.get_version(ecu.brand, ecu.model, version))
            except Exception as exc:  # a missing version leaves the ECU in its bootloader
                log.warning("%s: installed version %s not loadable: %s", ecu.name, version, exc)
                continue
            images[ecu.name] = [(s.address, bytes(s.data)) for s in image.segments]
        return ea, images, ws.root
    finally:
        ws.close()


def _open_bus(args: argparse.Namespace) -> can.BusABC:
    interface = "fota_sim" if args.timing and args.interface == "virtual" else args.interface
    if interface == "fota_sim":
        from fota_studio.sim.paced_bus import PacedVirtualBus

        return PacedVirtualBus(
            channel=args.channel, bitrate=args.bitrate, data_bitrate=args.data_bitrate, fd=args.fd
        )
    try:
        from fota_studio.protocols.bus import BusSettings, open_bus
    except ImportError:
        log.warning("protocols.bus missing; opening python-can directly")
        return can.Bus(
            interface=interface,
            channel=args.channel,
            bitrate=args.bitrate,
            fd=args.fd,
            data_bitrate=args.data_bitrate,
            ignore_config=True,
        )
    return open_bus(
        BusSettings(
            interface=interface,
            channel=args.channel,
            bitrate_bps=args.bitrate,
            fd=args.fd,
            data_bitrate_bps=args.data_bitrate,
        )
    )


def _start_tcu(bus: can.BusABC, notifier: can.Notifier, state_dir: Path) -> Any:
    try:
        from fota_studio.protocols.tcu_node import TcuNode
    except ImportError as exc:
        log.warning("TCU node not available (%s): simulating the ECUs only", exc)
        return None
    tcu = TcuNode(
        bus,
        node_id=demo_catalog.TCU_NODE_ID,
        state_file=state_dir / "tcu.json",
        notifier=notifier,
    )
    tcu.start()
    log.info("TCU CANopen node 0x%02X running", demo_catalog.TCU_NODE_ID)
    return tcu


def run(args: argparse.Namespace) -> int:
    """Run the simulated machine until Ctrl-C / SIGTERM; returns the exit code."""
    if getattr(args, "log_level", "INFO") == "INFO":
        # The global console handler shows warnings only; the simulator's requests and NRCs
        # are what a user of this command wants to watch.
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        for name in ("fota_studio.sim", __name__):
            logging.getLogger(name).addHandler(console)
            logging.getLogger(name).setLevel(logging.INFO)
    ea, images, ws_root = _load_machine(args)
    names = [e.name for e in ea.ecus if not args.ecu or e.name in args.ecu]
    faults = parse_faults(args.fault, names)
    if args.state_dir is not None:
        state_dir = Path(args.state_dir)
    else:
        from fota_studio.infra.paths import sim_state_dir

        state_dir = sim_state_dir(ws_root)
    options: dict[str, SimEcuOptions] = {}
    for name in names:
        opts = SimEcuOptions()
        if args.interface == "udp_multicast":
            opts.block_size = UDP_MULTICAST_BLOCK_SIZE
        if args.erase_ms_per_kib is not None:
            opts.erase_ms_per_kib = args.erase_ms_per_kib
        options[name] = opts

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("signal %d: stopping", signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    bus = _open_bus(args)
    notifier = can.Notifier(bus, [], timeout=0.05)
    machine = SimMachine(
        ea,
        bus,
        name=args.machine,
        state_dir=state_dir,
        notifier=notifier,
        options=options,
        initial_images=images,
        ecus=names,
    )
    tcu = None
    try:
        machine.start()
        for ecu_name, fault in faults:
            machine.inject(ecu_name, fault)
        if not args.no_tcu:
            tcu = _start_tcu(bus, notifier, machine.state_dir)
        print(
            f'simulating "{args.machine}" ({ea.name}): {", ".join(names)} on '
            f"{args.interface}:{args.channel}; state in {machine.state_dir}; Ctrl-C stops",
            flush=True,
        )
        while not stop.wait(0.2):
            pass
    finally:
        if tcu is not None:
            tcu.stop()
        machine.stop()
        notifier.stop(timeout=NOTIFIER_STOP_TIMEOUT_S)
        bus.shutdown()
        for sig, previous_handler in previous.items():
            signal.signal(sig, previous_handler)
    print("simulator stopped", flush=True)
    return 0
