"""`fota-studio flash`: flash one ECU from the command line on the same engine as the GUI.

Two ways to say what to flash: from the workspace (`--machine M --ecu E --version V`: machine → its
EA → the ECU → the Software Repository of the ECU's Brand/Model → that version's image), or from
files (`--ea FILE --ecu E --firmware FILE`). The adapter comes from `--interface/--channel/
--bitrate/--data-bitrate/--fd` (default: the adapter saved for the ECU's logical channel in the
workspace connections, see `infra/connections.py`); `--simulate` runs the simulated machine in-
process on a private virtual bus (demo and tests). `--dry-run` prints the plan and touches no bus.
Progress (bar, rate, ETA) goes to stderr; `--json` prints the flash record on stdout. Every real
run stores its record and BLF bus log in the workspace. Exit codes (`EXIT_CODES`): 0 flashed and
verified (the version read equals the expected one), 4 flashed but NOT verified, 1 failed, 3
cancelled, 2 refused before anything was sent (an invalid `--ea` file, `--expect-version` with the
read_version step disabled). Runs on the main thread; the flash itself runs on the engine's
worker thread.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from fota_studio.cli.common import add_passphrase_option, authorise, guarded, open_workspace
from fota_studio.core.compression import stream_lengths
from fota_studio.core.ea import EcuDefinition, ElectronicArchitecture, StepKind
from fota_studio.core.errors import ConfigurationError
from fota_studio.core.events import (
    EcuBusy,
    EngineEvent,
    LogLine,
    Progress,
    StepFinished,
    StepStarted,
)
from fota_studio.core.firmware import FirmwareImage
from fota_studio.core.flash_outcome import FlashOutcome, flash_outcome, outcome_text
from fota_studio.engine.engine import Engine, refuse_if_busy
from fota_studio.engine.estimates import estimate_flash
from fota_studio.engine.flash_job import FlashResult
from fota_studio.engine.flash_plan_run import PlanEcuState
from fota_studio.engine.targets import resolve_file_target, resolve_flash_target
from fota_studio.infra.connections import bus_settings_for, load_connections
from fota_studio.infra.paths import sim_state_dir
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_CANCELLED = 3
EXIT_NOT_VERIFIED = 4
#: What each exit code means (`flash --help`, the manual).
EXIT_CODES = (
    (EXIT_OK, "flashed and verified: the version read after the reset equals the expected one"),
    (EXIT_FAILED, "failed (the error names the step, the NRC and what to do)"),
    (EXIT_REFUSED, "refused before anything was sent (invalid EA file, contradicting options)"),
    (EXIT_CANCELLED, "cancelled (Ctrl-C) at a safe point"),
    (
        EXIT_NOT_VERIFIED,
        "flashed, NOT verified: the version was not read or nothing was expected",
    ),
)
BAR_WIDTH = 30


def register(subparsers: Any) -> None:
    """Add the `flash` command."""
    p = subparsers.add_parser(
        "flash",
        help="flash one ECU (UDS over ISO-TP) and verify it",
        description="Flash a firmware version into one ECU and verify the running version.",
        epilog="exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("what to flash")
    src.add_argument("--machine", help="machine serial in the workspace (with --version)")
    src.add_argument(
        "--ecu",
        action="append",
        help="ECU name in the EA (repeat it to flash several ECUs of --machine in one run)",
    )
    src.add_argument(
        "--all",
        dest="all_ecus",
        action="store_true",
        help="flash every ECU of --machine (parallel per channel, in the EA's `after` order)",
    )
    src.add_argument(
        "--version",
        dest="fw_version_list",
        action="append",
        help="repository version to flash; with several ECUs ECU=VERSION each (default: the "
        "newest version of the ECU's repository)",
    )
    src.add_argument(
        "--stop-on-failure",
        action="store_true",
        help="with several ECUs: a failed ECU stops the plan (default: the others go on)",
    )
    src.add_argument("--ea", type=Path, help="EA file (YAML/JSON) instead of the workspace")
    src.add_argument("--firmware", type=Path, help="firmware file (HEX, S-record, BIN)")
    src.add_argument("--base-address", type=lambda v: int(v, 0), help="base address for BIN")
    src.add_argument(
        "--expect-version",
        help="version the ECU must report after the flash (needs the read_version step); "
        "default with --version: that version",
    )
    ad = p.add_argument_group("adapter")
    ad.add_argument("--interface", help="python-can interface (virtual, pcan, kvaser, ...)")
    ad.add_argument("--channel", help="adapter channel (e.g. PCAN_USBBUS1, can0)")
    ad.add_argument("--bitrate", type=int, help="nominal bitrate in bit/s (default from EA)")
    ad.add_argument("--data-bitrate", type=int, help="CAN FD data bitrate in bit/s")
    ad.add_argument("--fd", action="store_true", default=None, help="open the bus as CAN FD")
    ad.add_argument(
        "--simulate",
        action="store_true",
        help="run the simulated machine in-process on a private virtual bus",
    )
    ad.add_argument("--state-dir", type=Path, help="simulator state folder (with --simulate)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; touch no bus")
    p.add_argument("--json", action="store_true", help="print the flash record as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_passphrase_option(p)
    p.set_defaults(func=guarded(run))


def _resolve(
    args: argparse.Namespace, ws: Workspace
) -> tuple[ElectronicArchitecture, EcuDefinition, FirmwareImage, str, str | None, str]:
    """Return (EA, ECU, image, version label, expected version, machine)."""
    if args.ea is not None or args.firmware is not None:
        if args.ea is None or args.firmware is None:
            raise ConfigurationError("--ea and --firmware go together")
        from fota_studio.infra.access import Action

        authorise(args, ws, Action.FLASH_FILE)
        t = resolve_file_target(
            ws,
            args.ea,
            args.ecu,
            args.firmware,
            base_address=args.base_address,
            label=args.fw_version,
            expected_version=args.expect_version,
            machine=args.machine or "",
        )
        return t.ea, t.ecu, t.image, t.label, t.expected_version, t.machine
    if not args.machine or not args.fw_version:
        raise ConfigurationError(
            "say what to flash",
            hint="--machine M --ecu E --version V, or --ea FILE --ecu E --firmware FILE",
        )
    t = resolve_flash_target(
        ws, args.machine, args.ecu, args.fw_version, expected_version=args.expect_version
    )
    return t.ea, t.ecu, t.image, t.label, t.expected_version, t.machine


def _bus_settings(args: argparse.Namespace, ws: Workspace, ecu: EcuDefinition) -> BusSettings:
    """The adapter for the ECU's logical channel (workspace connections), then CLI overrides."""
    conn = ecu.connection
    base = bus_settings_for(ws, conn.channel)
    if conn.channel not in load_connections(ws):
        # No adapter saved for this channel: the bus parameters come from the EA.
        base = replace(
            base, bitrate_bps=conn.bitrate_bps, fd=conn.fd, data_bitrate_bps=conn.data_bitrate_bps
        )
    return replace(
        base,
        interface=args.interface or base.interface,
        channel=args.channel or base.channel,
        bitrate_bps=args.bitrate or base.bitrate_bps,
        fd=base.fd if args.fd is None else bool(args.fd),
        data_bitrate_bps=args.data_bitrate or base.data_bitrate_bps,
    )


class _Printer:
    """Turns engine events into a progress bar + step lines on stderr (called from a worker).

    With several ECUs (a plan: `PlanEcuState` names each ECU's job id) each step line starts
    with its ECU and the bar line shows every running ECU's share."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self._lock = threading.Lock()
        self._bar = False
        self._names: dict[int, str] = {}
        self._progress_of: dict[int, Progress] = {}

    def __call__(self, event: EngineEvent) -> None:
        if not self.show:
            return
        with self._lock:
            if isinstance(event, PlanEcuState):
                self._names[event.job_id] = event.ecu
                return
            if isinstance(event, Progress):
                if self._names:
                    self._plan_progress(event)
                else:
                    self._progress(event)
                return
            text = self._line(event)
            if text:
                if event.job_id in self._names:
                    text = f"{self._names[event.job_id]}:{text}"
                if self._bar:
                    sys.stderr.write("\n")
                    self._bar = False
                sys.stderr.write(text + "\n")
                sys.stderr.flush()

    def _plan_progress(self, p: Progress) -> None:
        self._progress_of[p.job_id] = p
        parts = [
            f"{self._names.get(jid, jid)} {q.fraction * 100:5.1f} %"
            for jid, q in self._progress_of.items()
        ]
        sys.stderr.write("\r  " + " | ".join(parts))
        sys.stderr.flush()
        self._bar = True

    def _line(self, event: EngineEvent) -> str:
        if isinstance(event, StepStarted):
            return f"  … {event.step}" + (f" ({event.detail})" if event.detail else "")
        if isinstance(event, StepFinished):
            mark = "ok" if event.ok else "FAILED"
            nrc = f" [NRC 0x{event.nrc:02X} {event.nrc_name}]" if event.nrc is not None else ""
            detail = f": {event.detail}" if event.detail and event.ok else ""
            return f"  {mark:>6} {event.step}{nrc}{detail}"
        if isinstance(event, EcuBusy):
            return f"         ECU busy (response pending) during {event.step}…"
        if isinstance(event, LogLine) and event.level in ("warning", "error"):
            return f"  {event.level}: {event.text}"
        return ""

    def _progress(self, p: Progress) -> None:
        frac = p.fraction
        filled = int(frac * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        rate = f"{p.rate_bps / 1024:7.1f} KiB/s" if p.rate_bps else "    -- KiB/s"
        eta = f"ETA {p.eta_s:5.1f} s" if p.eta_s is not None else "ETA   -- s"
        sys.stderr.write(
            f"\r  [{bar}] {frac * 100:5.1f} % {p.bytes_done}/{p.bytes_total} B {rate} {eta}"
        )
        sys.stderr.flush()
        self._bar = True


def _simulated_secrets(ea: ElectronicArchitecture) -> dict[str, Any] | None:
    """Simulator options giving each simulated ECU the seed/key secrets its EA references
    (from the keyring / secrets file): the simulated ECU plays one that has them programmed."""
    from fota_studio.core.seedkey import demo_secret
    from fota_studio.infra import secrets as secret_store
    from fota_studio.sim.uds_ecu import SimEcuOptions

    known: dict[str, bytes] = {}
    for ecu in ea.ecus:
        for level in ecu.uds.security_levels:
            ref = level.secret_ref
            if ref and demo_secret(ref) is None and ref not in known:
                value = secret_store.get_secret(ref)
                if value is not None:
                    known[ref] = value
    if not known:
        return None
    return {ecu.name: SimEcuOptions(secrets=dict(known)) for ecu in ea.ecus}


@contextlib.contextmanager
def _simulated_machine(
    ea: ElectronicArchitecture, machine: str, channel: str, state_dir: Path
) -> Iterator[None]:
    import can

    from fota_studio.demo.bench import demo_installed_images
    from fota_studio.sim.machine import SimMachine

    bus = can.Bus(interface="virtual", channel=channel, ignore_config=True)
    sim = SimMachine(
        ea,
        bus,
        name=machine or "sim",
        state_dir=state_dir,
        initial_images=demo_installed_images(),
        options=_simulated_secrets(ea),
    )
    try:
        sim.start()
        yield
    finally:
        sim.stop()
        bus.shutdown()


def run(args: argparse.Namespace) -> int:
    """Run the `flash` command; returns the exit code."""
    ws = open_workspace(args)
    try:
        return _run(args, ws)
    finally:
        ws.close()


def _run(args: argparse.Namespace, ws: Workspace) -> int:
    from fota_studio.cli import _flash_plan

    if _flash_plan.is_plan(args):
        return _flash_plan.run_plan(args, ws)
    if not args.ecu:
        raise ConfigurationError("say which ECU to flash", hint="--ecu NAME (or --all)")
    versions = args.fw_version_list or []
    if len(versions) > 1:
        raise ConfigurationError("one --version for one ECU", hint="--ecu E --version V")
    args.ecu = args.ecu[0]
    args.fw_version = versions[0] if versions else None
    if args.ea is not None:
        problems = ea_file_problems(args.ea)
        if problems:
            for line in problems:
                sys.stderr.write(f"{line}\n")
            sys.stderr.write(
                f"error: {args.ea} is not a valid EA; nothing was sent (check it with "
                f"`fota-studio ea validate {args.ea}`)\n"
            )
            return EXIT_REFUSED
    ea, ecu, image, label, expected, machine = _resolve(args, ws)
    refusal = expect_version_problem(ecu, args.expect_version)
    if refusal:
        sys.stderr.write(f"error: {refusal}\n")
        return EXIT_REFUSED
    if args.dry_run:
        segments = [(s.address, len(s.data)) for s in image.segments]
        codec = ecu.uds.compression.codec if ecu.uds.compression is not None else None
        wire = stream_lengths(codec, [bytes(s.data) for s in image.segments])
        print(estimate_flash(ecu, segments, ws, wire_lengths=wire).to_text())
        return EXIT_OK
    # Refuse before the bus or the simulator opens: another process flashing this ECU, or an
    # open update request for it (submit_flash checks again, under the ECU's lock).
    refuse_if_busy(ws, machine, ecu.name)
    settings = _bus_settings(args, ws, ecu)
    stack = contextlib.ExitStack()
    with stack:
        if args.simulate:
            # The simulator logs every request at INFO; on the console that would slow the
            # demo flash several times over and bury the progress bar.
            if getattr(args, "log_level", "INFO") != "DEBUG":
                logging.getLogger("fota_studio.sim").setLevel(logging.WARNING)
            settings = BusSettings(
                interface="virtual",
                channel=f"fota-sim-{uuid.uuid4().hex[:8]}",
                fd=settings.fd,
                bitrate_bps=settings.bitrate_bps,
                data_bitrate_bps=settings.data_bitrate_bps,
            )
            state_dir = args.state_dir or sim_state_dir(ws.root)
            stack.enter_context(_simulated_machine(ea, machine, settings.channel, state_dir))
        printer = _Printer(show=not args.no_progress)
        engine = Engine(printer)
        stack.callback(engine.shutdown)
        engine.open_channel(ecu.connection.channel, settings)
        # The engine stores the record with its bus log in the workspace and, for a machine
        # of the workspace, the version its ECU now runs.
        handle = engine.submit_flash(
            ecu.connection.channel,
            ecu,
            image,
            machine=machine,
            version=label,
            expected_version=expected,
            workspace=ws,
            by="fota-studio flash",
        )
        previous = _install_sigint(lambda: engine.cancel(handle.job_id, "interrupted (Ctrl-C)"))
        try:
            while not handle.done():
                time.sleep(0.05)
        finally:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGINT, previous)
        result: FlashResult = handle.result()
        if not args.no_progress:
            sys.stderr.write("\n")
    if args.json:
        print(result.record.to_json(indent=2))
    return _report_outcome(result, label, quiet=args.json)


def _report_outcome(result: FlashResult, label: str, *, quiet: bool) -> int:
    """Print what happened (stdout for a completed flash, stderr for a failure); exit code."""
    outcome = flash_outcome(result.record)
    if outcome is FlashOutcome.VERIFIED:
        if not quiet:
            print(outcome_text(result.record, label))
        return EXIT_OK
    if outcome is FlashOutcome.NOT_VERIFIED:
        # Always said, even with --json: a script must not take this for a verified flash.
        sys.stderr.write(f"warning: {outcome_text(result.record, label)}\n")
        return EXIT_NOT_VERIFIED
    err = result.error
    sys.stderr.write(f"error: {err}\n" if err else f"error: {result.record.error}\n")
    return EXIT_CANCELLED if outcome is FlashOutcome.CANCELLED else EXIT_FAILED


def ea_file_problems(path: Path) -> list[str]:
    """Every error of an EA file as `file:line: error: path: message` (empty: valid).

    The same checks as `fota-studio ea validate`; warnings do not stop a flash.
    """
    from fota_studio.core.ea_format import EaFileError, load_ea_file
    from fota_studio.core.ea_validate import Severity, validate

    try:
        loaded = load_ea_file(path)
    except EaFileError as exc:
        return list(exc.problems)
    return [
        f"{loaded.where(p.path)}: error: {p.path}: {p.message}"
        for p in validate(loaded.ea)
        if p.severity is Severity.ERROR
    ]


def expect_version_problem(ecu: EcuDefinition, expect_version: str | None) -> str:
    """Why `--expect-version` cannot be honoured for this ECU ("" when it can).

    Without an enabled read_version step nothing reads the version after the flash, so the
    expectation could never be checked: refused before anything is sent.
    """
    if not expect_version or ecu.uds.step(StepKind.READ_VERSION) is not None:
        return ""
    seq = ecu.uds.sequence
    where = next(
        (f"sequence[{i}]" for i, s in enumerate(seq) if s.kind == StepKind.READ_VERSION),
        "the sequence",
    )
    return (
        f'--expect-version {expect_version}: the read_version step of ECU "{ecu.name}" is '
        f"disabled ({where}), so the version cannot be checked after the flash; enable "
        "read_version in the EA, or flash without --expect-version (the result will then be "
        "'flashed, not verified', exit code 4); nothing was sent"
    )


def _install_sigint(cancel: Any) -> Any:
    """Ctrl-C cancels the job at the next safe point instead of killing the process."""

    def handler(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        cancel()

    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (tests calling main() from a worker)
        return signal.getsignal(signal.SIGINT)
