"""A machine-level flash: several ECUs in one job (`flash_machine(targets, report, cancel)`).

Each target is one ECU's `FlashSession` + image, run by the ordinary `flash_job.flash_ecu` on
its own thread (`fota-plan-<ecu>`), or by the target's own `run` (the engine's plan job:
`Engine.submit_plan` loads the image and keeps the workspace record there); a target's own
cancel token stops only that ECU. ECUs on different channels run in parallel; ECUs on the
same channel run interleaved on the shared bus (each has its own ISO-TP links, its own
TesterPresent keeper, so each ECU's S3 stays alive), or one after the other with
`same_bus="serial"`. `EcuDefinition.after` orders them: an ECU starts only once every ECU it
must follow (and that is in the plan) completed; if one of those failed it is skipped, with
the reason. One failed ECU does not stop the others unless `stop_on_failure`: then the running
ones are cancelled at their next safe point and the waiting ones skipped. The result holds a
`MachineFlashRecord` with every ECU's `FlashRecord`.

Events: every ECU's job events carry that ECU's `FlashSession.job_id` (give each target its
own), and `PlanEcuState` says when an ECU waits, runs, ends or is skipped — one progress row
per ECU for the Flash panel and the technician view. The sink is called from the ECU threads.
Why threads, not processes: a flash spends its time waiting on the bus (P2, STmin, flow
control), the GIL is free then; bench/flash.py `parallel_vs_longest` measures it.
Call from a worker thread (never the GUI thread): it blocks until every ECU ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.errors import ConfigurationError, FotaError
from fota_studio.core.events import EngineEvent
from fota_studio.core.flash_outcome import FlashOutcome
from fota_studio.core.flash_record import (
    NOT_FLASHED,
    PLAN_CANCELLED,
    PLAN_FAILED,
    PLAN_NOT_VERIFIED,
    PLAN_SKIPPED,
    PLAN_VERIFIED,
    MachineFlashRecord,
)
from fota_studio.engine.cancel import CancelToken
from fota_studio.engine.flash_job import (
    FlashResult,
    FlashSession,
    FunctionalGate,
    ImageLike,
    flash_ecu,
)

#: Values of `flash_machine(same_bus=...)`.
SAME_BUS_MODES = ("interleave", "serial")
#: PlanEcuState.state values besides the PLAN_* end states.
PLAN_WAITING = "waiting"
PLAN_RUNNING = "running"


@dataclass(frozen=True)
class PlanEcuState(EngineEvent):
    """One ECU of a machine-level flash changed state (waiting, running, or a PLAN_* end).

    `job_id` is the ECU's own job id (its FlashSession's), so its step and progress events
    and this one land on the same row.
    """

    ecu: str
    state: str
    detail: str = ""


#: How a target is flashed when not by `flash_ecu(session, image, report, cancel)` directly:
#: (target, report, cancel) -> its FlashResult (the engine's plan job loads the image there and
#: keeps the workspace record). Called on the ECU's own thread; must not raise.
RunTarget = Callable[["PlanTarget", Callable[[EngineEvent], None], CancelToken], FlashResult]


@dataclass
class PlanTarget:
    """One ECU of the plan: its session (its own job id, bus, notifier) and its image (or a
    `run` that flashes it), and optionally its own cancel token (cancels only this ECU)."""

    session: FlashSession
    image: ImageLike | None = None
    run: RunTarget | None = None
    cancel: CancelToken | None = None

    @property
    def name(self) -> str:
        """The ECU's name."""
        return self.session.ecu.name

    @property
    def channel(self) -> str:
        """The bus channel it is flashed on."""
        return self.session.channel or self.session.ecu.connection.channel


@dataclass
class MachineFlashResult:
    """The outcome of a machine-level flash: per ECU the FlashResult of those that ran."""

    record: MachineFlashRecord
    results: dict[str, FlashResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every ECU of the plan completed."""
        return self.record.succeeded

    @property
    def failed(self) -> list[str]:
        """ECUs that failed, were cancelled or skipped, in plan order."""
        done = (PLAN_VERIFIED, PLAN_NOT_VERIFIED)
        return [n for n in self.record.order if self.record.states.get(n) not in done]


def plan_order(targets: Sequence[PlanTarget]) -> list[str]:
    """The ECU names in a start order that respects `after` (stable otherwise).

    Raises ConfigurationError for a duplicate ECU or a cycle of `after` lists (nothing sent).
    """
    return order_ecus([t.session.ecu for t in targets])


def order_ecus(ecus: Sequence[EcuDefinition]) -> list[str]:
    """`plan_order` over EA ECUs: `after` of an ECU outside the list is ignored."""
    names = [e.name for e in ecus]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigurationError(
            f"the plan names {', '.join(dup)} more than once",
            hint="give each ECU once (--ecu A --ecu B, or --all)",
        )
    deps = {e.name: [d for d in e.after if d in names] for e in ecus}
    order: list[str] = []
    left = list(names)
    while left:
        ready = [n for n in left if all(d in order for d in deps[n])]
        if not ready:
            raise ConfigurationError(
                f"the ECUs {', '.join(left)} wait for each other (their `after` lists form a "
                "cycle): none could start",
                hint="fix the `after` lists in the EA (`fota-studio ea validate` shows it); "
                "nothing was sent",
            )
        order.append(ready[0])
        left.remove(ready[0])
    return order


def _state_of(result: FlashResult) -> str:
    outcome = result.outcome
    if outcome is FlashOutcome.VERIFIED:
        return PLAN_VERIFIED
    if outcome is FlashOutcome.NOT_VERIFIED:
        return PLAN_NOT_VERIFIED
    if outcome is FlashOutcome.CANCELLED:
        return PLAN_CANCELLED
    return PLAN_FAILED


def flash_machine(
    targets: Sequence[PlanTarget],
    report: Callable[[EngineEvent], None] | None = None,
    cancel: CancelToken | None = None,
    *,
    machine: str = "",
    stop_on_failure: bool = False,
    same_bus: str = "interleave",
) -> MachineFlashResult:
    """Flash every target (see the module docstring); never raises for an ECU's failure."""
    if same_bus not in SAME_BUS_MODES:
        raise ConfigurationError(
            f'unknown same-bus mode "{same_bus}"', hint=f"use one of {', '.join(SAME_BUS_MODES)}"
        )
    sink = report or (lambda _e: None)
    token = cancel or CancelToken()
    order = plan_order(targets)
    by_name = {t.name: t for t in targets}
    rec = MachineFlashRecord(machine=machine, order=order, started_at=time.time())
    rec.stop_on_failure = stop_on_failure
    for name in order:
        rec.channels.setdefault(by_name[name].channel, []).append(name)
    gates: dict[str, FunctionalGate] = {}
    if same_bus == "interleave":
        for channel, names in rec.channels.items():
            if len(names) > 1:
                gates[channel] = FunctionalGate()
                for n in names:
                    if by_name[n].session.functional_gate is None:
                        by_name[n].session.functional_gate = gates[channel]
    result = MachineFlashResult(record=rec)
    lock = threading.Condition()
    tokens = {name: by_name[name].cancel or CancelToken() for name in order}
    running: dict[str, threading.Thread] = {}
    started: list[threading.Thread] = []
    busy_channels: set[str] = set()
    stopping = ""

    def emit(name: str, state: str, detail: str = "") -> None:
        sink(PlanEcuState(by_name[name].session.job_id, name, state, detail))

    def run_one(name: str) -> None:
        target = by_name[name]
        try:
            if target.run is not None:
                res = target.run(target, sink, tokens[name])
            elif target.image is None:
                raise ConfigurationError(f"{name}: the plan gives neither an image nor a run")
            else:
                res = flash_ecu(target.session, target.image, sink, tokens[name])
        except Exception as exc:  # flash_ecu never raises for job failures; be safe anyway
            # (a thread that died here would leave the plan waiting for it forever)
            res = None
            err = str(exc) if isinstance(exc, FotaError) else f"internal error: {exc!r}"
        gate = gates.get(target.channel)
        if gate is not None:
            gate.leave(name)
        with lock:
            if res is not None:
                result.results[name] = res
                rec.ecus.append(res.record)
                rec.states[name] = _state_of(res)
                detail = res.outcome.value if res.error is None else str(res.error)
            else:
                rec.states[name] = PLAN_FAILED
                detail = err
            running.pop(name, None)
            busy_channels.discard(target.channel)
            lock.notify_all()
        emit(name, rec.states[name], detail)

    def skip(name: str, why: str) -> None:
        rec.states[name] = PLAN_SKIPPED
        rec.skipped[name] = why
        emit(name, PLAN_SKIPPED, why)

    for name in order:
        emit(name, PLAN_WAITING, ", ".join(by_name[name].session.ecu.after))
    pending = list(order)
    with lock:
        while pending or running:
            if token.cancelled and not stopping:
                stopping = token.reason or "the plan was cancelled"
                for t in tokens.values():
                    t.cancel(stopping)
            if not stopping and stop_on_failure:
                bad = [n for n, s in rec.states.items() if s in (PLAN_FAILED, PLAN_CANCELLED)]
                if bad:
                    stopping = f"{bad[0]} failed and the plan stops on a failure"
                    for n in running:
                        tokens[n].cancel(stopping)
            for name in list(pending):
                target = by_name[name]
                if stopping:
                    pending.remove(name)
                    skip(name, f"{NOT_FLASHED}{stopping}")
                    continue
                deps = [d for d in target.session.ecu.after if d in by_name]
                ended = (PLAN_FAILED, PLAN_CANCELLED, PLAN_SKIPPED)
                failed = [d for d in deps if rec.states.get(d) in ended]
                if failed:
                    pending.remove(name)
                    skip(name, f"{NOT_FLASHED}it must follow {failed[0]}, which did not complete")
                    continue
                if any(rec.states.get(d) not in (PLAN_VERIFIED, PLAN_NOT_VERIFIED) for d in deps):
                    continue
                if same_bus == "serial" and target.channel in busy_channels:
                    continue
                pending.remove(name)
                busy_channels.add(target.channel)
                gate = gates.get(target.channel)
                if gate is not None:
                    gate.join(name)
                thread = threading.Thread(
                    target=run_one, args=(name,), name=f"fota-plan-{name}", daemon=True
                )
                running[name] = thread
                started.append(thread)
                emit(name, PLAN_RUNNING)
                thread.start()
            if pending or running:
                lock.wait(0.1)
    for thread in started:  # each has reported; let none outlive the plan
        thread.join()
    rec.finished_at = time.time()
    return result
