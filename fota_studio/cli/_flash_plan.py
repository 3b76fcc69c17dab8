"""`fota-studio flash --machine M --ecu A --ecu B …` / `--all`: several ECUs in one run.

Each ECU is resolved as a single flash is (`engine.targets.resolve_flash_target`: its version
from `--version ECU=V`, a bare `--version V` for every ECU, else the newest version of its
repository) and flashed by `Engine.submit_flash` (its lock, its record and bus log in the
workspace). ECUs on different channels run in parallel on their channel workers; ECUs on the
same channel follow one another on its worker. `EcuDefinition.after` orders them: an ECU is
submitted once every ECU it must follow completed, and skipped (with the reason) when one of
them did not. One failed ECU does not stop the others unless `--stop-on-failure`. Output: one
line per ECU; `--json` prints the MachineFlashRecord (every ECU's record). Exit code: 0 all
verified, 4 all flashed but one or more NOT verified, 3 cancelled, 1 otherwise. Main thread.
"""

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
from fota_studio.core.flash_record import (
    PLAN_CANCELLED,
    PLAN_FAILED,
    PLAN_NOT_VERIFIED,
    PLAN_SKIPPED,
    PLAN_VERIFIED,
    MachineFlashRecord,
)
from fota_studio.engine.engine import Engine, JobHandle, refuse_if_busy
from fota_studio.engine.estimates import estimate_flash
from fota_studio.engine.flash_job import FlashResult
from fota_studio.engine.flash_plan_run import order_ecus
from fota_studio.engine.targets import FlashTarget, resolve_flash_target
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.paths import sim_state_dir
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_NOT_VERIFIED = 0, 1, 3, 4
_STATES = {
    FlashOutcome.VERIFIED: PLAN_VERIFIED,
    FlashOutcome.NOT_VERIFIED: PLAN_NOT_VERIFIED,
    FlashOutcome.FAILED: PLAN_FAILED,
    FlashOutcome.CANCELLED: PLAN_CANCELLED,
}


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
    machine = store.get_machine(args.machine)
    if not machine.ea_name:
        raise ConfigurationError(
            f"machine {args.machine} has no Electronic Architecture",
            hint="assign one in the EA panel or with `fota-studio ea assign`",
        )
    ea = store.get(machine.ea_name)
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
    from fota_studio.cli.flash import _bus_settings, _install_sigint, _Printer, _simulated_machine

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
    rec = MachineFlashRecord(machine=args.machine, order=[t.ecu.name for t in targets])
    rec.stop_on_failure = bool(args.stop_on_failure)
    rec.started_at = time.time()
    for t in targets:
        rec.channels.setdefault(t.ecu.connection.channel, []).append(t.ecu.name)
    printer = _Printer(show=not args.no_progress)

    def sink(event: EngineEvent) -> None:
        printer(event)

    with contextlib.ExitStack() as stack:
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
            stack.enter_context(
                _simulated_machine(targets[0].ea, args.machine, sim_channel, state_dir)
            )
        engine = Engine(sink)
        stack.callback(engine.shutdown)
        for ch, s in settings.items():
            engine.open_channel(ch, s)
        handles: dict[str, JobHandle] = {}
        results: dict[str, FlashResult] = {}
        pending = list(targets)
        stopping = ""
        interrupted: list[str] = []

        def cancel_all() -> None:
            interrupted.append("interrupted (Ctrl-C)")
            for h in handles.values():
                engine.cancel(h.job_id, "interrupted (Ctrl-C)")

        previous = _install_sigint(cancel_all)
        try:
            while pending or any(n not in results for n in handles):
                for name, h in handles.items():
                    if name not in results and h.done():
                        results[name] = h.result()
                        rec.ecus.append(results[name].record)
                        rec.states[name] = _STATES[flash_outcome(results[name].record)]
                        _say(name, results[name], results[name].record.version)
                if interrupted and not stopping:
                    stopping = interrupted[0]
                if not stopping and args.stop_on_failure:
                    bad = [n for n, st in rec.states.items() if st in (PLAN_FAILED, PLAN_CANCELLED)]
                    if bad:
                        stopping = f"{bad[0]} failed and --stop-on-failure was given"
                for t in list(pending):
                    name = t.ecu.name
                    if stopping:
                        pending.remove(t)
                        _skip(rec, name, f"not flashed: {stopping}")
                        continue
                    deps = [d for d in t.ecu.after if d in rec.order]
                    ended = [
                        d
                        for d in deps
                        if rec.states.get(d) in (PLAN_FAILED, PLAN_CANCELLED, PLAN_SKIPPED)
                    ]
                    if ended:
                        pending.remove(t)
                        _skip(
                            rec,
                            name,
                            f"not flashed: it must follow {ended[0]}, which did not complete",
                        )
                        continue
                    if any(
                        rec.states.get(d) not in (PLAN_VERIFIED, PLAN_NOT_VERIFIED) for d in deps
                    ):
                        continue
                    pending.remove(t)
                    handles[name] = engine.submit_flash(
                        t.ecu.connection.channel,
                        t.ecu,
                        t.image,
                        machine=t.machine,
                        version=t.label,
                        expected_version=t.expected_version,
                        workspace=ws,
                        by="fota-studio flash (plan)",
                    )
                time.sleep(0.05)
        finally:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGINT, previous)
    rec.finished_at = time.time()
    if not args.no_progress:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(rec.to_dict(), indent=2))
    states = [rec.states.get(n, PLAN_SKIPPED) for n in rec.order]
    summary = ", ".join(f"{n} {st}" for n, st in zip(rec.order, states, strict=True))
    (sys.stdout if rec.succeeded and not args.json else sys.stderr).write(f"plan: {summary}\n")
    if all(st == PLAN_VERIFIED for st in states):
        return EXIT_OK
    if all(st in (PLAN_VERIFIED, PLAN_NOT_VERIFIED) for st in states):
        return EXIT_NOT_VERIFIED
    if interrupted:
        return EXIT_CANCELLED
    return EXIT_FAILED


def _skip(rec: MachineFlashRecord, name: str, why: str) -> None:
    rec.states[name] = PLAN_SKIPPED
    rec.skipped[name] = why
    sys.stderr.write(f"{name}: {why}\n")


def _say(name: str, result: FlashResult, label: str) -> None:
    outcome = flash_outcome(result.record)
    if outcome in (FlashOutcome.VERIFIED, FlashOutcome.NOT_VERIFIED):
        sys.stderr.write(f"{name}: {outcome_text(result.record, label)}\n")
    else:
        sys.stderr.write(f"{name}: error: {result.error or result.record.error}\n")
