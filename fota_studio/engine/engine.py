"""The engine facade: per-channel worker threads, a job queue, events to one sink.

`Engine` owns the CAN channels it opens (bus + the ONE `can.Notifier` per bus) and runs one
named worker thread per channel (`fota-bus-<channel>`) that executes that channel's jobs one at
a time, in submission order. Jobs are plain callables receiving a `JobContext` (bus, notifier,
cancel token, event sink); `submit_flash` wraps `flash_ecu`, `submit_plan` flashes several
ECUs as one job (`flash_plan_run.flash_machine`) that holds every channel it uses. Events
(frozen dataclasses from core/events.py) go to the sink callable from the worker threads; the
UI's EngineBridge moves them to the GUI thread. `shutdown()` cancels every job and stops, in
this fixed order: the worker threads (joined), then per channel the notifier (short timeout)
and the bus.

Tx contract: every listener on a channel's notifier (the trace, a flash job's BLF bus log) sees
every frame the engine's jobs send, marked `is_rx=False`. `open_channel` opens the bus with
`receive_own_messages=True` where python-can's interface echoes own frames
(`TX_ECHO_INTERFACES`); on other interfaces (and on attached buses that do not echo) the jobs'
ISO-TP links hand each sent frame to `JobContext.tx_fanout`, which calls the notifier's
listeners with it. Listeners that must not react to our own frames (ISO-TP stacks, simulated
nodes) ignore `is_rx=False` frames.

Public methods may be called from any thread (the GUI thread included: none of them blocks on
CAN I/O except `shutdown`, which joins the workers after cancelling them).

Why this size: `Engine` is the one owner of channels, workers, the job queue and the fixed
shutdown order; the small helpers here (Tx fan-out, adapter-fault listener, job context/handle,
refusal checks, a plan's channel holds and per-ECU handles) exist only for it. The jobs
themselves live elsewhere (`flash_job.py`, `flash_plan_run.py`, `health.py`, `preflight.py`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import can

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.errors import CancelledError, ConfigurationError, FotaError
from fota_studio.core.events import (
    EngineEvent,
    JobFailed,
    JobFinished,
    JobQueued,
    JobStarted,
    LogLine,
)
from fota_studio.core.flash_record import (
    NOT_FLASHED,
    PLAN_FAILED,
    PLAN_SKIPPED,
    RESULT_CANCELLED,
    RESULT_FAILED,
    FlashRecord,
    MachineFlashRecord,
)
from fota_studio.core.update_request import RequestStateError
from fota_studio.engine.cancel import CancelToken
from fota_studio.engine.flash_job import FlashResult, FlashSession, ImageLike, flash_ecu
from fota_studio.engine.flash_plan_run import (
    PLAN_RUNNING,
    PLAN_WAITING,
    SAME_BUS_MODES,
    MachineFlashResult,
    PlanEcuState,
    PlanTarget,
    flash_machine,
    order_ecus,
)
from fota_studio.engine.seedkey import SeedKeyRegistry
from fota_studio.infra.buslog_store import image_reference
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.flash_journal import begin_flash_record, finish_flash_record
from fota_studio.infra.locks import EcuLock
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings, FaultStreak, adapter_label, open_bus
from fota_studio.protocols.isotp_link import RX_ONLY_ATTR, wants_tx_frames

log = logging.getLogger(__name__)

NOTIFIER_STOP_TIMEOUT_S = 0.1
WORKER_JOIN_TIMEOUT_S = 10.0

#: python-can interfaces (4.6) whose bus takes `receive_own_messages` and then delivers every
#: frame it sent back to its own receive queue marked `is_rx=False`. Not listed on purpose:
#: ixxat and systec echo but mark the echo as received (is_rx=True), udp_multicast raises
#: NotImplementedError for the keyword, and slcan, gs_usb, usb2can, cantact, serial, ... ignore
#: it. For those the engine drops the keyword and fans its Tx frames out itself.
TX_ECHO_INTERFACES = frozenset(
    {"virtual", "fota_sim", "socketcan", "pcan", "kvaser", "vector", "etas", "nixnet", "neovi"}
)

Sink = Callable[[EngineEvent], None]
TxFanout = Callable[[can.Message], None]


def notifier_fanout(notifier: can.Notifier) -> TxFanout:
    """A Tx hook that hands each sent frame (`is_rx=False`) to the listeners of `notifier`
    that want Tx frames (the trace, the bus log; not the ISO-TP stacks, marked `rx_only`).

    For buses that do not echo own frames. Runs on the sending thread (an ISO-TP thread), so
    the listeners must be thread-safe (ours are: the capture and the bus log lock). A failing
    listener is logged and never breaks the send. The filtered list is cached and rebuilt
    only when the notifier's listeners change: a flash sends thousands of frames a second.
    """
    cache: list[Any] = [(), ()]  # [snapshot of notifier.listeners, the Tx-wanting ones]

    def fanout(msg: can.Message) -> None:
        current = tuple(notifier.listeners)
        if current != cache[0]:
            cache[:] = [current, tuple(x for x in current if wants_tx_frames(x))]
        targets = cache[1]
        if not targets:
            return
        msg.is_rx = False
        for listener in targets:
            try:
                listener(msg)
            except Exception:
                log.exception("Tx fan-out: listener %r failed", listener)

    return fanout


class AdapterFaultListener:
    """Notifier listener that turns receive errors into ONE adapter event, never a traceback.

    python-can's Notifier calls `on_error` when `bus.recv` raises (a vanished slcan device:
    pyserial's EIO / "device disconnected"); without a listener that handles it, the receive
    thread dies and prints a raw traceback on stderr. Here the first error of a streak becomes
    one `LogLine` naming the adapter, its own cause and the advice (`describe_adapter_fault`);
    the rest of the streak only waits one receive timeout each, so a gone device does not spin
    a core. A received frame ends the streak. Runs on the notifier's thread.
    """

    def __init__(self, channel: str, bus: can.BusABC, emit: Sink, wait_s: float = 0.05) -> None:
        setattr(self, RX_ONLY_ATTR, True)  # our own Tx frames need not reach it
        self.channel = channel
        self._emit = emit
        self.streak = FaultStreak(adapter_label(bus), wait_s)

    def __call__(self, msg: can.Message) -> None:
        if self.streak.errors:
            self.streak.frame()  # the adapter delivers frames again

    def on_error(self, exc: Exception) -> None:
        """Report the first receive error of a streak; pace the rest."""
        fault = self.streak.error(exc)
        if fault is None:
            return
        log.info("channel %s: %s", self.channel, fault.message())
        self._emit(LogLine(0, "error", f"{fault.message()} — {fault.advice}"))


@dataclass
class JobContext:
    """What a job function receives: its id, the channel's bus/notifier, cancel and sink."""

    job_id: int
    channel: str
    bus: can.BusABC
    notifier: can.Notifier
    cancel: CancelToken
    emit: Sink
    #: True when the bus echoes own frames to the notifier's listeners (receive_own_messages).
    tx_echo: bool = False
    #: When the bus does not echo: hand every frame the job sends to this hook (it reaches the
    #: notifier's listeners, see `notifier_fanout`). None when `tx_echo`.
    tx_fanout: TxFanout | None = None


JobFn = Callable[[JobContext], Any]


@dataclass
class JobHandle:
    """A submitted job: its id, cancel token and a future with the job's return value."""

    job_id: int
    channel: str
    description: str
    cancel: CancelToken
    future: Future[Any] = field(default_factory=Future)
    #: What the future yields when the job is cancelled before it starts (reason -> value);
    #: None yields None. A flash yields a cancelled FlashResult, as its callers expect.
    not_started: Callable[[str], Any] | None = None

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job's return value (re-raises a crash of the job function)."""
        return self.future.result(timeout)

    def done(self) -> bool:
        """True when the job ended (any outcome)."""
        return self.future.done()


@dataclass
class _Channel:
    name: str
    bus: can.BusABC
    notifier: can.Notifier
    owns_bus: bool
    owns_notifier: bool
    settings: BusSettings | None
    tx_echo: bool
    faults: AdapterFaultListener | None = None
    jobs: queue.Queue[tuple[JobHandle, JobFn] | None] = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None


def refuse_if_request_open(workspace: Workspace, machine: str, ecu: str) -> None:
    """RequestStateError naming the open (Pending / In progress) update request of this ECU:
    a direct flash would race it or make its Checkpoint 1 approval meaningless."""
    if not machine:
        return
    open_requests = RequestsStore(workspace).open_for_ecu(machine, ecu)
    if open_requests:
        req = open_requests[0]
        raise RequestStateError(
            f'ECU {ecu} on machine "{machine}" has open update request #{req.id} '
            f"({req.version}, {req.status.value}); a direct flash would bypass it",
            hint=f"run or cancel request #{req.id} first (`fota-studio request cancel {req.id}`)",
        )


def refuse_if_busy(workspace: Workspace, machine: str, ecu: str) -> None:
    """The checks `submit_flash` makes, for callers that want them before opening a bus or a
    simulator: EcuLockedError naming who flashes (machine, ECU) now, RequestStateError naming
    its open update request."""
    refuse_if_request_open(workspace, machine, ecu)
    lock = EcuLock(workspace.root, machine, ecu)
    holder = lock.peek()
    if holder is not None:
        raise lock.busy_error(holder)


def _unflashed(item: PlanItem, machine: str, text: str, error: FotaError) -> FlashResult:
    """The FlashResult of a flash of `item` that sent nothing (cancelled before it started,
    skipped, its image not loaded): its record's error says `text`; cancelled when `error` is a
    CancelledError, else failed."""
    record = FlashRecord(
        ecu=item.ecu.name,
        machine=machine,
        version=item.version,
        expected_version=item.expected_version or "",
        started_at=time.time(),
        result=RESULT_CANCELLED if isinstance(error, CancelledError) else RESULT_FAILED,
        error=text,
    )
    return FlashResult(False, record, error)


def _end_event(job_id: int, result: Any) -> EngineEvent:
    """The event ending a job that returned `result`: JobFailed for a flash that did not
    complete (its error, step, hint; cancelled or not), else JobFinished."""
    if isinstance(result, FlashResult) and not result.ok:
        err = result.error
        return JobFailed(
            job_id,
            str(err) if err else result.record.error,
            result.record.failed_step,
            cancelled=result.cancelled,
            hint=(err.hint or "") if err else "",
        )
    return JobFinished(job_id, result)


@dataclass
class PlanItem:
    """One ECU of `Engine.submit_plan`, with what `submit_flash` takes for it: its image (or a
    `loader` called on the plan's thread for this ECU), version label, expected version."""

    ecu: EcuDefinition
    image: ImageLike | None = None
    loader: Callable[[], ImageLike] | None = None
    version: str = ""
    expected_version: str | None = None
    boot_wait_s: float | None = None
    buslog_path: Path | None = None

    def load(self) -> ImageLike:
        """The image: given, or loaded now by `loader` (on the engine's thread)."""
        if self.image is not None:
            return self.image
        assert self.loader is not None  # one of the two is set (checked on submit)
        return self.loader()

    @property
    def what(self) -> str:
        """ "flash ECU version" (job descriptions, lock holders)."""
        return f"flash {self.ecu.name}" + (f" {self.version}" if self.version else "")


@dataclass
class PlanHandle(JobHandle):
    """A submitted machine-level flash (`Engine.submit_plan`): the plan's future yields the
    MachineFlashResult; `ecus` holds one handle per ECU, with its own job id (its events
    carry it) and a future yielding that ECU's FlashResult."""

    ecus: dict[str, JobHandle] = field(default_factory=dict)


class _HoldHandle(JobHandle):
    """A plan's hold of one more channel: its worker waits (silently) while the plan runs."""


class Engine:
    """Runs jobs on per-channel worker threads and reports their events to `sink`."""

    def __init__(self, sink: Sink | None = None) -> None:
        self._sink: Sink = sink or (lambda _e: None)
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._jobs: dict[int, JobHandle] = {}
        # Why the last open of a channel failed (kept until it opens): a job on it names it.
        self._open_errors: dict[str, str] = {}
        self._closed = False
        self.seedkey = SeedKeyRegistry()

    # -- events -----------------------------------------------------------------------------

    def set_sink(self, sink: Sink) -> None:
        """Replace the event sink (the EngineBridge installs itself)."""
        self._sink = sink

    def emit(self, event: EngineEvent) -> None:
        """Deliver an event to the sink; a failing sink never kills a worker."""
        try:
            self._sink(event)
        except Exception:
            log.exception("engine event sink failed on %s", type(event).__name__)

    # -- channels ---------------------------------------------------------------------------

    def open_channel(self, name: str, settings: BusSettings) -> tuple[can.BusABC, can.Notifier]:
        """Open a bus from settings (owned by the engine) and start its worker.

        The bus is opened with `receive_own_messages=True` when its interface echoes with the
        right direction (unless `settings.extra` says False), so the notifier's listeners see
        Tx frames; on other interfaces the keyword is dropped and the jobs fan Tx out.
        """
        iface = settings.interface.strip().lower()
        extra = dict(settings.extra)
        if iface in TX_ECHO_INTERFACES:
            extra.setdefault("receive_own_messages", True)
            tx_echo = bool(extra["receive_own_messages"])
        else:
            extra.pop("receive_own_messages", None)
            tx_echo = False
        settings = replace(settings, extra=extra)
        try:
            bus = open_bus(settings)
        except FotaError as exc:
            with self._lock:
                self._open_errors[name] = f"{settings.describe()}: {exc}"
            raise
        with self._lock:
            self._open_errors.pop(name, None)
        faults = AdapterFaultListener(name, bus, self.emit)
        try:
            notifier = can.Notifier(bus, [faults], timeout=0.05)
        except Exception:
            bus.shutdown()
            raise
        self._add_channel(_Channel(name, bus, notifier, True, True, settings, tx_echo, faults))
        return bus, notifier

    def attach_channel(
        self,
        name: str,
        bus: can.BusABC,
        notifier: can.Notifier | None = None,
        *,
        tx_echo: bool = False,
    ) -> can.Notifier:
        """Use an existing bus (not owned: shutdown leaves it open); creates a notifier if none.

        `tx_echo`: the bus was opened with `receive_own_messages=True` on an interface that
        echoes; otherwise the engine fans its Tx frames out to the notifier's listeners.
        """
        owns_notifier = notifier is None
        faults: AdapterFaultListener | None = None
        if notifier is None:
            faults = AdapterFaultListener(name, bus, self.emit)
            notifier = can.Notifier(bus, [faults], timeout=0.05)
        self._add_channel(
            _Channel(name, bus, notifier, False, owns_notifier, None, tx_echo, faults)
        )
        return notifier

    def echoes_tx(self, name: str) -> bool:
        """True when channel `name`'s bus echoes own frames (else the engine fans them out)."""
        return self._channel(name).tx_echo

    def _add_channel(self, ch: _Channel) -> None:
        with self._lock:
            if self._closed:
                raise ConfigurationError("the engine is shut down")
            if ch.name in self._channels:
                raise ConfigurationError(f'channel "{ch.name}" is already open')
            self._channels[ch.name] = ch
        ch.thread = threading.Thread(
            target=self._worker, args=(ch,), name=f"fota-bus-{ch.name}", daemon=True
        )
        ch.thread.start()

    def channels(self) -> list[str]:
        """Names of the open channels."""
        with self._lock:
            return list(self._channels)

    def bus_of(self, name: str) -> tuple[can.BusABC, can.Notifier]:
        """The bus and notifier of an open channel (e.g. for the trace panel)."""
        ch = self._channel(name)
        return ch.bus, ch.notifier

    def open_error(self, name: str) -> str | None:
        """Why the last `open_channel(name)` failed (adapter and cause), None once it opened."""
        with self._lock:
            return self._open_errors.get(name)

    def adapter_fault(self, name: str) -> str | None:
        """The adapter fault channel `name`'s receive loop reports now (one line with the
        advice), None while the adapter delivers frames or the channel is not open."""
        with self._lock:
            ch = self._channels.get(name)
        fault = ch.faults.streak.fault if ch is not None and ch.faults is not None else None
        return f"{fault.message()} — {fault.advice}" if fault is not None else None

    def channel_busy(self, name: str) -> bool:
        """True while a job of channel `name` is queued or running (it must not close now)."""
        with self._lock:
            return any(h.channel == name for h in self._jobs.values())

    def close_channel(self, name: str, timeout_s: float = WORKER_JOIN_TIMEOUT_S) -> None:
        """Stop channel `name`'s worker, then its notifier and bus (those the engine owns), so
        it can be reopened on other settings. Refused (ConfigurationError) while a job of the
        channel is queued or running: cancel it first. Unknown names are ignored."""
        with self._lock:
            ch = self._channels.get(name)
            if ch is None:
                return
            if any(h.channel == name for h in self._jobs.values()):
                raise ConfigurationError(
                    f'CAN channel "{name}" cannot close while a job runs on it',
                    hint="wait for the flash or request to end (or cancel it), then apply again",
                )
            del self._channels[name]
        ch.jobs.put(None)
        if ch.thread is not None:
            ch.thread.join(timeout_s)
        if ch.owns_notifier:
            with contextlib.suppress(Exception):
                ch.notifier.stop(timeout=NOTIFIER_STOP_TIMEOUT_S)
        if ch.owns_bus:
            with contextlib.suppress(Exception):
                ch.bus.shutdown()

    def _channel(self, name: str) -> _Channel:
        with self._lock:
            ch = self._channels.get(name)
            why = self._open_errors.get(name)
        if ch is None:
            raise ConfigurationError(
                f'CAN channel "{name}" is not open' + (f" ({why})" if why else ""),
                hint="open the channel (adapter settings) before starting a job on it",
            )
        return ch

    # -- jobs -------------------------------------------------------------------------------

    def submit(
        self,
        channel: str,
        description: str,
        fn: JobFn,
        *,
        not_started: Callable[[str], Any] | None = None,
    ) -> JobHandle:
        """Queue `fn(ctx)` on the channel's worker; returns at once with a handle.
        `not_started(reason)` makes the value the handle yields when the job is cancelled
        before it starts (default None)."""
        ch = self._channel(channel)
        handle = JobHandle(
            next(self._ids), channel, description, CancelToken(), not_started=not_started
        )
        with self._lock:
            self._jobs[handle.job_id] = handle
        ch.jobs.put((handle, fn))
        self.emit(JobQueued(handle.job_id, channel, description))
        return handle

    def flash_session(self, ctx: JobContext, ecu: EcuDefinition, **kwargs: Any) -> FlashSession:
        """A FlashSession for a job running on `ctx`'s channel: its bus, notifier, job id and
        channel, how its Tx frames reach the listeners (the bus's echo or the engine's
        fan-out, so the trace and the bus log see each frame once) and the engine's seed/key
        providers. `kwargs` are the other FlashSession fields (machine, version, …)."""
        settings = self._channel(ctx.channel).settings
        kwargs.setdefault("interface", settings.interface if settings is not None else "")
        kwargs.setdefault("seedkey", self.seedkey)
        kwargs.update(channel=ctx.channel, tx_echo=ctx.tx_echo, tx_fanout=ctx.tx_fanout)
        return FlashSession(ecu, ctx.bus, ctx.notifier, ctx.job_id, **kwargs)

    def _item_session(self, ctx: JobContext, item: PlanItem, machine: str) -> FlashSession:
        """The FlashSession of `item`'s flash on `ctx` (`flash_session` with the item's fields)."""
        return self.flash_session(
            ctx,
            item.ecu,
            machine=machine,
            version=item.version,
            expected_version=item.expected_version,
            buslog_path=item.buslog_path,
            boot_wait_s=item.boot_wait_s,
        )

    def submit_flash(
        self,
        channel: str,
        ecu: EcuDefinition,
        image: ImageLike | None,
        *,
        machine: str = "",
        version: str = "",
        expected_version: str | None = None,
        buslog_path: Path | None = None,
        boot_wait_s: float | None = None,
        on_result: Callable[[FlashResult], None] | None = None,
        workspace: Workspace | None = None,
        loader: Callable[[], ImageLike] | None = None,
        by: str = "",
    ) -> JobHandle:
        """Queue a flash of `image` (or of `loader()`, called on the worker: reading and
        verifying a firmware file never blocks the caller) into `ecu`; the future yields the
        FlashResult.

        With a `workspace`: the flash is refused at once (EcuLockedError / RequestStateError,
        naming the holder) while another process or job flashes the same (machine, ECU) or an
        update request for it is open; otherwise the ECU's lock is held until the record is
        stored. Before the first frame a "started" record is committed and the BLF bus log
        streams into the workspace (`infra/flash_journal.py`), so a killed process leaves an
        "interrupted" record with its partial bus log; when the job ends (any outcome) the
        final record replaces it and `result.record.buslog_sha256` names the bus-log blob.
        With a workspace AND a `machine` serial, a verified flash also records the version now
        installed on that machine's ECU (its history names the flash job). `by` says who
        flashes (shown to whoever is refused: "fota-studio flash", "GUI Flash panel").
        """
        if (image is None) == (loader is None):
            raise ValueError("submit_flash needs exactly one of image and loader")
        item = PlanItem(ecu, image, loader, version, expected_version, boot_wait_s, buslog_path)
        what = item.what
        lock: EcuLock | None = None
        if workspace is not None:
            refuse_if_request_open(workspace, machine, ecu.name)
            lock = EcuLock(workspace.root, machine, ecu.name)
            lock.acquire(f"{what} ({by})" if by else what)

        def job(ctx: JobContext) -> FlashResult:
            try:
                return run(ctx)
            finally:
                if lock is not None:
                    lock.release()

        def run(ctx: JobContext) -> FlashResult:
            img = item.load()
            session = self._item_session(ctx, item, machine)
            result = self._flash_recorded(session, img, ctx.emit, ctx.cancel, workspace)
            if on_result is not None:
                on_result(result)
            return result

        def not_started(reason: str) -> FlashResult:
            # Cancelled while queued: nothing was sent, and the caller still gets a result.
            # The ECU is free again before anyone waiting on the handle wakes up.
            if lock is not None:
                lock.release()
            text = f"cancelled before it started ({reason}); nothing was sent to {ecu.name}"
            result = _unflashed(item, machine, text, CancelledError(f"flash of {ecu.name} {text}"))
            if on_result is not None:
                on_result(result)
            return result

        try:
            handle = self.submit(channel, what, job, not_started=not_started)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return handle

    def submit_plan(
        self,
        items: Sequence[PlanItem],
        *,
        machine: str = "",
        workspace: Workspace | None = None,
        by: str = "",
        stop_on_failure: bool = False,
        same_bus: str = "interleave",
    ) -> PlanHandle:
        """Queue ONE job that flashes several ECUs (`flash_plan_run.flash_machine`): ECUs on
        different channels in parallel, ECUs on one channel interleaved on it (functional
        28/85 once per bus, each ECU its own S3), in the EA's `after` order; one failed ECU
        stops the others only with `stop_on_failure`. The future yields MachineFlashResult.

        Per ECU what `submit_flash` gives a single flash: refused at once (EcuLockedError /
        RequestStateError; nothing queued, no lock kept) while another job or process flashes
        it or an update request for it is open, else its lock is held until its record is
        stored; its "started" record and streaming bus log, its final record and, for a
        verified flash of a workspace machine, its installed version; its `loader` runs on
        the plan's thread for it. Each ECU has its own job id (`PlanHandle.ecus`, whose
        futures yield each FlashResult): JobQueued, JobStarted, step, progress and JobFinished
        / JobFailed events with it, and `PlanEcuState` when it waits, runs, ends or is
        skipped — one row per ECU. `cancel(plan id)` stops every ECU at its next safe point,
        `cancel(an ECU's id)` only that ECU.

        Channels: the plan runs on the worker of its first ECU's channel and holds the worker
        of every other channel it uses (a silent job queued with it, atomically, so two plans
        always queue in the same order on the channels they share and never wait for each
        other): no other job runs on them meanwhile and `channel_busy` says so. Refused at
        once (ConfigurationError) for a channel that is not open, an ECU given twice or a
        cycle of `after` lists.
        """
        if not items:
            raise ConfigurationError("the plan names no ECU", hint="give at least one ECU")
        if any((it.image is None) == (it.loader is None) for it in items):
            raise ValueError("each PlanItem needs exactly one of image and loader")
        if same_bus not in SAME_BUS_MODES:
            raise ConfigurationError(
                f'unknown same-bus mode "{same_bus}"',
                hint=f"use one of {', '.join(SAME_BUS_MODES)}",
            )
        order = order_ecus([it.ecu for it in items])
        by_name = {it.ecu.name: it for it in items}
        planned = [by_name[n] for n in order]
        channels = {c: self._channel(c) for c in (it.ecu.connection.channel for it in planned)}
        locks: dict[str, EcuLock] = {}
        if workspace is not None:
            try:
                for it in planned:
                    refuse_if_request_open(workspace, machine, it.ecu.name)
                    lock = EcuLock(workspace.root, machine, it.ecu.name)
                    lock.acquire(f"{it.what} ({by})" if by else it.what)
                    locks[it.ecu.name] = lock
            except BaseException:
                for lock in locks.values():
                    lock.release()
                raise
        home, *others = channels
        what = f"flash {', '.join(order)}" + (f" of {machine}" if machine else "")
        run = _PlanRun(self, planned, machine, workspace, locks, stop_on_failure, same_bus)
        handle = PlanHandle(next(self._ids), home, what, CancelToken(), not_started=run.not_started)
        for it in planned:
            handle.ecus[it.ecu.name] = JobHandle(
                next(self._ids),
                it.ecu.connection.channel,
                f"{it.what} (plan job {handle.job_id})",
                CancelToken(),
            )
        holds: dict[str, JobHandle] = {
            ch: _HoldHandle(next(self._ids), ch, f"{what}: holds {ch}", CancelToken())
            for ch in others
        }
        run.start(handle, holds)
        self.emit(JobQueued(handle.job_id, home, what))
        for h in handle.ecus.values():
            self.emit(JobQueued(h.job_id, h.channel, h.description))
        with self._lock:
            for h in (handle, *handle.ecus.values(), *holds.values()):
                self._jobs[h.job_id] = h
            channels[home].jobs.put((handle, run.run))
            for ch, hold in holds.items():
                channels[ch].jobs.put((hold, run.hold(ch)))
        return handle

    def _flash_recorded(
        self,
        session: FlashSession,
        image: ImageLike,
        emit: Sink,
        cancel: CancelToken,
        workspace: Workspace | None,
    ) -> FlashResult:
        """`flash_ecu` with the workspace's account of it (with a `workspace`): a "started"
        record and the streaming bus log before the first frame, the final record after (any
        outcome) and, for a machine's verified flash, the version its ECU now runs. Runs on
        the thread that flashes (a channel worker, a plan's ECU thread)."""
        record_id: int | None = None
        if workspace is not None:
            started = FlashRecord(
                ecu=session.ecu.name,
                machine=session.machine,
                version=session.version,
                expected_version=session.expected_version or "",
                started_at=time.time(),
            )
            record_id, journal_path = begin_flash_record(workspace, started)
            session.buslog_path = session.buslog_path or journal_path
            # A stored image: its TransferData payload is logged by reference.
            session.buslog_image = image_reference(workspace, image)
        result = flash_ecu(session, image, emit, cancel)
        if workspace is None or record_id is None:
            return result
        jid, machine, name = session.job_id, session.machine, session.ecu.name
        try:
            finish_flash_record(workspace, record_id, result.record, session.buslog_path)
        except FotaError as exc:
            emit(LogLine(jid, "error", f"flash record not stored: {exc}"))
        if machine and result.verified and result.version_after:
            try:
                EaStore(workspace).set_installed(
                    machine, name, result.version_after, source=f"flash job {jid}"
                )
            except FotaError as exc:
                emit(LogLine(jid, "warning", f"installed version not recorded: {exc}"))
        elif machine and result.ok and not result.verified:
            # Flashed but the version was not read back: what runs is not known.
            emit(
                LogLine(
                    jid,
                    "warning",
                    f"installed version of {name} not recorded: the flash was not "
                    "verified (read_version disabled or no expected version)",
                )
            )
        return result

    def cancel(self, job_id: int, reason: str = "cancelled by the user") -> bool:
        """Request cancellation of a queued or running job; False when unknown/finished."""
        with self._lock:
            handle = self._jobs.get(job_id)
        if handle is None or handle.done():
            return False
        handle.cancel.cancel(reason)
        return True

    def _worker(self, ch: _Channel) -> None:
        while True:
            item = ch.jobs.get()
            if item is None:
                return
            handle, fn = item
            if isinstance(handle, _HoldHandle):
                self._hold(ch, handle, fn)
            else:
                self._run(ch, handle, fn)

    def _context(self, ch: _Channel, handle: JobHandle) -> JobContext:
        """The JobContext of `handle`'s job on channel `ch` (its id and cancel token)."""
        return JobContext(
            handle.job_id,
            ch.name,
            ch.bus,
            ch.notifier,
            handle.cancel,
            self.emit,
            tx_echo=ch.tx_echo,
            tx_fanout=None if ch.tx_echo else notifier_fanout(ch.notifier),
        )

    def _hold(self, ch: _Channel, handle: JobHandle, fn: JobFn) -> None:
        """Run a plan's channel hold: no events (the plan's own job and ECU jobs say it all)."""
        try:
            fn(self._context(ch, handle))
        except BaseException:
            log.exception("channel hold %d failed", handle.job_id)
        finally:
            self._forget(handle.job_id)
            handle.future.set_result(None)

    def _forget(self, job_id: int) -> None:
        """The job ended: it no longer keeps its channel busy nor answers `cancel`."""
        with self._lock:
            self._jobs.pop(job_id, None)

    def _run(self, ch: _Channel, handle: JobHandle, fn: JobFn) -> None:
        jid = handle.job_id
        try:
            if handle.cancel.cancelled:
                self.emit(
                    JobFailed(
                        jid, f"cancelled before start ({handle.cancel.reason})", cancelled=True
                    )
                )
                reason = handle.cancel.reason
                handle.future.set_result(
                    handle.not_started(reason) if handle.not_started is not None else None
                )
                return
            self.emit(JobStarted(jid, ch.name, handle.description))
            ctx = self._context(ch, handle)
            try:
                result = fn(ctx)
            except FotaError as exc:
                self.emit(
                    JobFailed(jid, str(exc), getattr(exc, "step", "") or "", hint=exc.hint or "")
                )
                handle.future.set_exception(exc)
                return
            except BaseException as exc:
                log.exception("job %d crashed", jid)
                self.emit(JobFailed(jid, f"internal error: {type(exc).__name__}: {exc}"))
                handle.future.set_exception(exc)
                return
            self.emit(_end_event(jid, result))
            handle.future.set_result(result)
        finally:
            self._forget(jid)

    # -- shutdown ---------------------------------------------------------------------------

    def shutdown(self, timeout_s: float = WORKER_JOIN_TIMEOUT_S) -> None:
        """Cancel all jobs, then stop workers, notifiers and buses in that order (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handles = list(self._jobs.values())
            channels = list(self._channels.values())
            self._channels.clear()
        for h in handles:
            h.cancel.cancel("the application is shutting down")
        for ch in channels:
            ch.jobs.put(None)
        for ch in channels:
            if ch.thread is not None:
                ch.thread.join(timeout_s)
                if ch.thread.is_alive():
                    log.error("worker %s did not stop within %.1f s", ch.thread.name, timeout_s)
        for ch in channels:
            if ch.owns_notifier:
                with contextlib.suppress(Exception):
                    ch.notifier.stop(timeout=NOTIFIER_STOP_TIMEOUT_S)
        for ch in channels:
            if ch.owns_bus:
                with contextlib.suppress(Exception):
                    ch.bus.shutdown()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class _PlanRun:
    """One submitted plan (`Engine.submit_plan`): runs `flash_machine` on its first channel's
    worker once the workers of its other channels hold, and settles each ECU's handle once
    (its lock released, its JobFinished / JobFailed, its future). Its methods run on the
    engine's threads (the channel workers, the plan's ECU threads)."""

    def __init__(
        self,
        engine: Engine,
        items: list[PlanItem],
        machine: str,
        workspace: Workspace | None,
        locks: dict[str, EcuLock],
        stop_on_failure: bool,
        same_bus: str,
    ) -> None:
        self.engine = engine
        self.items = {it.ecu.name: it for it in items}
        self.machine = machine
        self.workspace = workspace
        self.locks = locks
        self.stop_on_failure = stop_on_failure
        self.same_bus = same_bus
        self.handle = PlanHandle(0, "", "", CancelToken())
        self.holds: dict[str, JobHandle] = {}
        self.held: dict[str, threading.Event] = {}
        self.done = threading.Event()
        self._results: dict[str, FlashResult] = {}
        self._settling = threading.Lock()

    def start(self, handle: PlanHandle, holds: dict[str, JobHandle]) -> None:
        """Set the plan's handle and the holds of its other channels (before it is queued)."""
        self.handle = handle
        self.holds = holds
        self.held = {ch: threading.Event() for ch in holds}

    def hold(self, channel: str) -> JobFn:
        """The job holding `channel`'s worker until the plan ended."""

        def fn(_ctx: JobContext) -> None:
            self.held[channel].set()
            while not self.done.wait(0.05):
                pass

        return fn

    def run(self, ctx: JobContext) -> MachineFlashResult:
        """The plan's job: wait for the held channels (or a cancel: then every ECU is
        skipped and nothing is sent), then flash every ECU."""
        try:
            waiting = list(self.held.values())
            while waiting and not ctx.cancel.cancelled:
                if waiting[0].wait(0.05):
                    waiting.pop(0)
            targets = [self._target(it) for it in self.items.values()]
            return flash_machine(
                targets,
                self._sink,
                ctx.cancel,
                machine=self.machine,
                stop_on_failure=self.stop_on_failure,
                same_bus=self.same_bus,
            )
        finally:
            self._end()
            self._settle_rest(PLAN_FAILED, "the plan job ended before this ECU did")

    def _end(self) -> None:
        """The plan ended: its channel holds return; those already running are waited for,
        so the channels are free before the plan's future says it ended."""
        self.done.set()
        for channel, held in self.held.items():
            if held.is_set():
                with contextlib.suppress(TimeoutError):
                    self.holds[channel].future.result(WORKER_JOIN_TIMEOUT_S)

    def not_started(self, reason: str) -> MachineFlashResult:
        """The plan was cancelled while queued: every ECU skipped, nothing sent."""
        self._end()
        now = time.time()
        rec = MachineFlashRecord(self.machine, list(self.items), now, now)
        rec.stop_on_failure = self.stop_on_failure
        for name, it in self.items.items():
            rec.channels.setdefault(it.ecu.connection.channel, []).append(name)
            rec.states[name] = PLAN_SKIPPED
            rec.skipped[name] = f"{NOT_FLASHED}cancelled before it started ({reason})"
        self._settle_rest(PLAN_SKIPPED, f"{NOT_FLASHED}cancelled before it started ({reason})")
        return MachineFlashResult(rec)

    def _target(self, item: PlanItem) -> PlanTarget:
        engine, h = self.engine, self.handle.ecus[item.ecu.name]
        ctx = engine._context(engine._channel(item.ecu.connection.channel), h)
        session = engine._item_session(ctx, item, self.machine)
        return PlanTarget(session, item.image, run=self._flash, cancel=h.cancel)

    def _flash(self, target: PlanTarget, report: Sink, cancel: CancelToken) -> FlashResult:
        """One ECU, on its plan thread: load its image, flash it with its workspace record."""
        item = self.items[target.name]
        try:
            image = item.load()
        except FotaError as exc:
            result = _unflashed(item, self.machine, str(exc), exc)
        else:
            result = self.engine._flash_recorded(
                target.session, image, report, cancel, self.workspace
            )
        self._results[target.name] = result
        return result

    def _sink(self, event: EngineEvent) -> None:
        """flash_machine's events, plus each ECU's own job start / end."""
        self.engine.emit(event)
        if not isinstance(event, PlanEcuState):
            return
        name, h = event.ecu, self.handle.ecus[event.ecu]
        if event.state == PLAN_RUNNING:
            self.engine.emit(JobStarted(h.job_id, h.channel, h.description))
        elif event.state == PLAN_SKIPPED:
            error = CancelledError(f"{name} {event.detail}")
            self._settle(name, _unflashed(self.items[name], self.machine, event.detail, error))
        elif event.state != PLAN_WAITING:
            failed = _unflashed(
                self.items[name], self.machine, event.detail, FotaError(event.detail)
            )
            self._settle(name, self._results.get(name) or failed)

    def _settle(self, name: str, result: FlashResult) -> None:
        with self._settling:
            h = self.handle.ecus[name]
            if h.done():
                return
            lock = self.locks.pop(name, None)
            if lock is not None:
                lock.release()
            self.engine.emit(_end_event(h.job_id, result))
            h.future.set_result(result)
            self.engine._forget(h.job_id)

    def _settle_rest(self, state: str, detail: str) -> None:
        for name, h in self.handle.ecus.items():
            if not h.done():
                self._sink(PlanEcuState(h.job_id, name, state, detail))
