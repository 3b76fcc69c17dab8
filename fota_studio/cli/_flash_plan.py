"""`fota-studio flash --machine M --ecu A --ecu B …` / `--all`: several ECUs in one run.

Each ECU is resolved as a single flash is (`engine.targets.resolve_flash_target`: its version
from `--version ECU=V`, a bare `--version V` for every ECU, else the newest version of its
repository); all of them are flashed by ONE engine job, `Engine.submit_plan` (per ECU its lock,
its record and bus log in the workspace): ECUs on different channels in parallel, ECUs on the
same channel interleaved on it (functional 28/85 once per bus, each ECU's own S3 kept alive).
`EcuDefinition.after` orders them: an ECU starts once every ECU it must follow completed, and
is skipped (with the reason) when one of them did not. One failed ECU does not stop the others
unless `--stop-on-failure`. Output: one line per ECU; `--json` prints the MachineFlashRecord
(every ECU's record). Exit code: 0 all verified, 4 all flashed but one or more NOT verified, 3
cancelled, 1 otherwise. Main thread."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
import uuid

from fota_studio.core.compression import stream_lengths
from fota_studio.core.errors import ConfigurationError
from fota_studio.core.events import EngineEvent
from fota_studio.core.flash_outcome import FlashOutcome, flash_outcome, outcome_text
from fota_studio.core.flash_record import PLAN_NOT_VERIFIED, PLAN_SKIPPED, PLAN_VERIFIED
from fota_studio.engine.engine import Engine, PlanItem, refuse_if_busy
from fota_studio.engine.estimates import estimate_flash
from fota_studio.engine.flash_job import FlashResult
from fota_studio.engine.flash_plan_run import MachineFlashResult, PlanEcuState, order_ecus
from fota_studio.engine.targets import FlashTarget, resolve_flash_target
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.paths import sim_state_dir
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_NOT_VERIFIED = 0, 1, 3, 4


def is_plan(args: argparse.Namespace) -> bool:
    """True when the command line names several ECUs (or --all)."""
    return bool(getattr(args, "all_ecus", False)) or len(args.ecu or []) > 1


def _versions(args: argparse.Namespace) -> tuple[dict[str, str], str | None]:
    """(`--version ECU=V` per ECU, the bare `--version V` for all)."""
    per: dict[str, str] = {}
    every: str | None = None
    for item in args.fw_version_list or []:
        if "=" in item:
            name, _, version = item.partition("=")
            per[name.strip()] = version.strip()
        elif every is None:
            every = item
        else:
            raise ConfigurationError(
                f"--version {item}: more than one version for every ECU",
                hint="use --version ECU=VERSION per ECU, or one --version for all",
            )
    return per, every


def _targets(args: argparse.Namespace, ws: Workspace) -> list[FlashTarget]:
    if not args.machine or args.ea is not None or args.firmware is not None:
        raise ConfigurationError(
            "several ECUs are flashed from the workspace only",
            hint="--machine M --ecu A --ecu B [--version A=1.2.0], or --machine M --all",
        )
    store = EaStore(ws)
    ea_name = store.get_machine(args.machine).ea_name
    if not ea_name:
        hint = "assign one in the EA panel or with `fota-studio ea assign`"
        raise ConfigurationError(
            f"machine {args.machine} has no Electronic Architecture", hint=hint
        )
    ea = store.get(ea_name)
    names = [e.name for e in ea.ecus] if args.all_ecus else list(args.ecu or [])
    unknown = [n for n in names if n not in {e.name for e in ea.ecus}]
    if unknown:
        raise ConfigurationError(
            f"{', '.join(unknown)}: not an ECU of {ea.name}",
            hint=f"the ECUs are {', '.join(e.name for e in ea.ecus)}",
        )
    per, every = _versions(args)
    repos = RepositoryStore(ws)
    out: list[FlashTarget] = []
    for name in order_ecus([ea.ecu(n) for n in names]):
        ecu = ea.ecu(name)
        version = per.get(name) or every
        if version is None:
            latest = repos.latest_version(ecu.brand, ecu.model)
            if latest is None:
                raise ConfigurationError(
                    f"{name}: no version in the {ecu.brand} / {ecu.model} repository",
                    hint="import one first, or leave the ECU out of the plan",
                )
            version = latest.version
        out.append(resolve_flash_target(ws, args.machine, name, version))
    return out


def run_plan(args: argparse.Namespace, ws: Workspace) -> int:
    """The multi-ECU `flash`; returns the exit code."""
    from fota_studio.cli.flash import _install_sigint, _Printer

    targets = _targets(args, ws)
    if args.dry_run:
        for t in targets:
            comp = t.ecu.uds.compression
            wire = stream_lengths(comp.codec if comp else None, [s.data for s in t.image.segments])
            segs = [(s.address, len(s.data)) for s in t.image.segments]
            after = f" (after {', '.join(t.ecu.after)})" if t.ecu.after else ""
            print(f"{t.ecu.name} {t.label} on {t.ecu.connection.channel}{after}:")
            print(estimate_flash(t.ecu, segs, ws, wire_lengths=wire).to_text())
        return EXIT_OK
    for t in targets:
        refuse_if_busy(ws, t.machine, t.ecu.name)
    printer = _Printer(show=not args.no_progress)
    #: ECU -> its last PlanEcuState state (the sink runs on the engine's threads).
    states: dict[str, str] = {}

    def sink(event: EngineEvent) -> None:
        if isinstance(event, PlanEcuState):
            states[event.ecu] = event.state
        printer(event)

    interrupted: list[str] = []
    with contextlib.ExitStack() as stack:
        engine = Engine(sink)
        _open_channels(args, ws, targets, engine, stack)
        plan = engine.submit_plan(
            [
                PlanItem(t.ecu, t.image, version=t.label, expected_version=t.expected_version)
                for t in targets
            ],
            machine=args.machine,
            workspace=ws,
            by="fota-studio flash (plan)",
            stop_on_failure=bool(args.stop_on_failure),
        )

        def cancel_all() -> None:
            interrupted.append("interrupted (Ctrl-C)")
            engine.cancel(plan.job_id, "interrupted (Ctrl-C)")

        previous = _install_sigint(cancel_all)
        said: set[str] = set()
        labels = {t.ecu.name: t.label for t in targets}
        try:
            while len(said) < len(plan.ecus):
                for name, h in plan.ecus.items():
                    if name not in said and h.done():
                        said.add(name)
                        skipped = states.get(name) == PLAN_SKIPPED
                        _say(name, h.result(), labels[name], skipped=skipped)
                time.sleep(0.05)
            result: MachineFlashResult = plan.result()
        finally:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGINT, previous)
    rec = result.record
    if not args.no_progress:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(rec.to_dict(), indent=2))
    states_in_order = [rec.states.get(n, PLAN_SKIPPED) for n in rec.order]
    summary = ", ".join(f"{n} {st}" for n, st in zip(rec.order, states_in_order, strict=True))
    (sys.stdout if rec.succeeded and not args.json else sys.stderr).write(f"plan: {summary}\n")
    if all(st == PLAN_VERIFIED for st in states_in_order):
        return EXIT_OK
    if all(st in (PLAN_VERIFIED, PLAN_NOT_VERIFIED) for st in states_in_order):
        return EXIT_NOT_VERIFIED
    if interrupted:
        return EXIT_CANCELLED
    return EXIT_FAILED


def _open_channels(
    args: argparse.Namespace,
    ws: Workspace,
    targets: list[FlashTarget],
    engine: Engine,
    stack: contextlib.ExitStack,
) -> None:
    """Open every channel the plan uses on `engine` (its adapter; with --simulate one private
    virtual bus for all, the simulated machine on it); `stack` closes them."""
    from fota_studio.cli.flash import _bus_settings, _simulated_machine

    settings: dict[str, BusSettings] = {}
    sim_channel = f"fota-sim-{uuid.uuid4().hex[:8]}"
    for t in targets:
        ch = t.ecu.connection.channel
        if ch in settings:
            continue
        s = _bus_settings(args, ws, t.ecu)
        if args.simulate:
            s = BusSettings(
                interface="virtual",
                channel=sim_channel,
                fd=True,
                bitrate_bps=s.bitrate_bps,
                data_bitrate_bps=s.data_bitrate_bps,
            )
        settings[ch] = s
    if args.simulate:
        if getattr(args, "log_level", "INFO") != "DEBUG":
            logging.getLogger("fota_studio.sim").setLevel(logging.WARNING)
        state_dir = args.state_dir or sim_state_dir(ws.root)
        stack.enter_context(_simulated_machine(targets[0].ea, args.machine, sim_channel, state_dir))
    stack.callback(engine.shutdown)
    for ch, s in settings.items():
        engine.open_channel(ch, s)


def _say(name: str, result: FlashResult, label: str, *, skipped: bool) -> None:
    """The one line of an ECU that ended (stderr); a skipped one says why."""
    if skipped:
        sys.stderr.write(f"{name}: {result.record.error}\n")
        return
    outcome = flash_outcome(result.record)
    if outcome in (FlashOutcome.VERIFIED, FlashOutcome.NOT_VERIFIED):
        sys.stderr.write(f"{name}: {outcome_text(result.record, label)}\n")
    elif outcome is FlashOutcome.CANCELLED:
        sys.stderr.write(f"{name}: cancelled: {result.error or result.record.error}\n")
    else:
        sys.stderr.write(f"{name}: error: {result.error or result.record.error}\n")
