"""Live capture for the trace: cheap listeners on shared python-can Notifiers, drained in batches.

`TraceCapture` owns two preallocated staging buffers guarded by a lock. Each watched bus gets a
`CaptureListener` added to that bus's one Notifier (the engine's, via `attach`, or one the
capture creates for a bus it opened itself, via `open`). `on_message_received` runs on the
Notifier thread and writes the frame's fields straight into preallocated numpy staging columns
(no signal, no Python object kept per frame); `drain()` — called by the GUI timer every ~50 ms,
or by a bench loop — swaps the double buffer under the lock and copies the filled part into
one columnar `FrameBatch` for the `TraceStore`.

Tx direction: python-can marks frames a bus echoes back with `is_rx=False`
(`receive_own_messages=True`); those are stored as Tx. Frames the trace itself sends on its own
buses (transmit panel, replay) are recorded through `send()` / `record_tx()` so they show as Tx
on every interface, including ones that cannot echo. The engine can call `record_tx()` as its
Tx hook for buses it owns when it does not open them with `receive_own_messages=True`.

Adapter faults: when a watched bus's receive raises (a vanished slcan device, a driver error),
the Notifier calls the listener's `on_error`. The first error of a streak becomes ONE
`CaptureFault` (the channel, the adapter `interface:channel` and the driver's own cause, via
`describe_adapter_fault`) that the owning thread takes with `take_faults()` and sees in
`active_faults()` until the next good frame ends the streak; the rest of the streak only waits
a receive timeout each (a gone device must not spin a core), and nothing is raised, so the
Notifier thread never dies with a traceback.

Threads: `on_message_received` / `on_error` on Notifier threads; everything else on the owning
thread (GUI).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import can
import numpy as np

from fota_studio.core.frames import FLAG_REMOTE, FrameBatch
from fota_studio.engine.trace_store import TraceStore
from fota_studio.infra.tracefile import read_log
from fota_studio.protocols.bus import (
    AdapterFault,
    BusSettings,
    FaultStreak,
    adapter_label,
    open_bus,
)
from fota_studio.protocols.decode.frames import copy_message, message_flags

log = logging.getLogger(__name__)

STAGING_FRAMES = 16_384
"""Initial staging capacity per buffer (≈ 0.8 s at 20k frames/s; grows when needed)."""

MAX_STAGED_FRAMES = 2_000_000
"""Frames held between drains before new ones are dropped (the GUI stalled for seconds)."""

NOTIFIER_STOP_TIMEOUT_S = 0.1

FAULT_RETRY_WAIT_S = 0.05
"""Pause after each further receive error of a streak (about one Notifier receive timeout)."""


@dataclass(frozen=True)
class CaptureFault:
    """One adapter fault streak on a watched channel: `channel` (the trace's name for it),
    `fault` (adapter `interface:channel`, kind, the driver's cause, advice), `at` (wall time of
    the first error of the streak)."""

    channel: str
    fault: AdapterFault
    at: float

    def text(self) -> str:
        """`CAN1: adapter slcan:/dev/ttyACM0 vanished (device disconnected): <cause>`."""
        return f"{self.channel}: {self.fault.message()}"


class CaptureListener(can.Listener):
    """Stages received frames of one channel into the capture's columns (Notifier thread) and
    turns its receive errors into one `CaptureFault` per streak."""

    def __init__(
        self,
        capture: TraceCapture,
        channel_index: int,
        name: str = "",
        adapter: str = "the adapter",
    ) -> None:
        self._capture = capture
        self.channel_index = channel_index
        self.name = name or f"channel {channel_index}"
        self.enabled = True
        self.streak = FaultStreak(adapter, FAULT_RETRY_WAIT_S)

    @property
    def errors(self) -> int:
        """Receive errors of the current streak (0 after a good frame)."""
        return self.streak.errors

    def on_message_received(self, msg: can.Message) -> None:
        """Stage one frame; cheap (a lock and a list append). A frame ends a fault streak."""
        if self.streak.errors and self.streak.frame():
            self._capture._end_fault(self.name)
        if self.enabled:
            self._capture._stage(msg, self.channel_index)

    def on_error(self, exc: Exception) -> None:
        """Name the first receive error of a streak as an adapter fault with its cause (one
        event, the Notifier keeps running); a vanished device fails every receive at once, so
        the rest of the streak only waits a receive timeout each instead of spinning a core."""
        fault = self.streak.error(exc)
        if fault is None:
            return
        log.warning("trace capture, %s: %s — %s", self.name, fault.message(), fault.advice)
        if self.enabled:
            self._capture._add_fault(CaptureFault(self.name, fault, time.time()))


class _Staging:
    """Preallocated staging columns filled on Notifier threads (under the capture's lock)."""

    __slots__ = ("channel", "ext", "fill", "flags", "ids", "length", "raw", "size", "ts")

    def __init__(self, size: int) -> None:
        self.size = size
        self.fill = 0
        self.ts = np.zeros(size, np.float64)
        self.ids = np.zeros(size, np.uint32)
        self.flags = np.zeros(size, np.uint16)
        self.length = np.zeros(size, np.uint8)
        self.channel = np.zeros(size, np.uint8)
        self.raw = bytearray(8 * size)
        self.ext: dict[int, bytes] = {}

    def grow(self, limit: int) -> bool:
        """Double the capacity (the GUI has not drained for a while); False at `limit`."""
        if self.size >= limit:
            return False
        size = min(limit, 2 * self.size)
        for name in ("ts", "ids", "flags", "length", "channel"):
            old = getattr(self, name)
            new = np.zeros(size, old.dtype)
            new[: self.size] = old
            setattr(self, name, new)
        self.raw += bytearray(8 * (size - self.size))
        self.size = size
        return True


@dataclass
class _Watched:
    name: str
    bus: can.BusABC
    notifier: can.Notifier
    listener: CaptureListener
    owned: bool
    tx_echo: bool = False


class TraceCapture:
    """Watches one or more buses and hands their frames to a `TraceStore` in batches."""

    def __init__(self, store: TraceStore, max_staged_frames: int = MAX_STAGED_FRAMES) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._max_staged = max_staged_frames
        self._staging = _Staging(min(STAGING_FRAMES, max_staged_frames))
        self._spare = _Staging(min(STAGING_FRAMES, max_staged_frames))
        self._watched: dict[str, _Watched] = {}
        self._recorders: list[can.Listener] = []
        self.staging_dropped = 0
        """Frames lost because nobody drained for too long (shown with the store's drops)."""
        self.received = 0
        self._new_faults: list[CaptureFault] = []
        self._active_faults: dict[str, CaptureFault] = {}

    # -- adapter faults (set on Notifier threads, read on the owning thread) ------------------
    def _add_fault(self, fault: CaptureFault) -> None:
        with self._lock:
            self._new_faults.append(fault)
            self._active_faults[fault.channel] = fault

    def _end_fault(self, channel: str) -> None:
        with self._lock:
            self._active_faults.pop(channel, None)

    def take_faults(self) -> list[CaptureFault]:
        """Fault streaks that began since the last call (one event each), oldest first."""
        with self._lock:
            faults, self._new_faults = self._new_faults, []
        return faults

    def active_faults(self) -> list[CaptureFault]:
        """Channels whose adapter still fails (no good frame since the streak began)."""
        with self._lock:
            return list(self._active_faults.values())

    # -- Notifier thread --------------------------------------------------------------------
    def _stage(self, msg: can.Message, channel_index: int) -> None:
        """Convert one Message straight into the staging columns (Notifier thread): the
        Message is garbage as soon as this returns, so no Python object per frame waits for
        the GUI drain (less GC work) and the drain itself is a few array copies."""
        flags = message_flags(msg)
        data = msg.data
        with self._lock:
            st = self._staging
            i = st.fill
            if i == st.size and not st.grow(self._max_staged):
                self.staging_dropped += 1
                return
            st.ts[i] = msg.timestamp
            st.ids[i] = msg.arbitration_id
            st.flags[i] = flags
            st.channel[i] = channel_index
            if flags & FLAG_REMOTE:
                st.length[i] = msg.dlc
            else:
                n = len(data) if data else 0
                st.length[i] = n
                if n:
                    o = 8 * i
                    if n <= 8:
                        st.raw[o : o + n] = data
                    else:
                        st.raw[o : o + 8] = data[:8]
                        st.ext[i] = bytes(data[8:])
            st.fill = i + 1

    # -- owning thread ----------------------------------------------------------------------
    @property
    def channels(self) -> list[str]:
        """Names of the watched channels."""
        return list(self._watched)

    def bus(self, name: str) -> can.BusABC:
        """The bus watched under `name`."""
        return self._watched[name].bus

    def attach(
        self, name: str, bus: can.BusABC, notifier: can.Notifier, *, tx_echo: bool = False
    ) -> CaptureListener:
        """Watch a bus owned by someone else by adding a listener to its existing Notifier.

        `tx_echo`: the owner opened the bus so that it echoes sent frames to its listeners
        (`Engine.echoes_tx`); frames this capture sends are then not recorded a second time.
        """
        if name in self._watched:
            self.detach(name)
        listener = CaptureListener(self, self.store.channel_index(name), name, adapter_label(bus))
        notifier.add_listener(listener)
        for recorder in self._recorders:
            notifier.add_listener(recorder)
        self._watched[name] = _Watched(name, bus, notifier, listener, owned=False, tx_echo=tx_echo)
        return listener

    def open(self, settings: BusSettings, name: str | None = None) -> str:
        """Open a bus for the trace itself (raises AdapterError) and watch it; returns its name."""
        name = name or f"{settings.interface}:{settings.channel}"
        if name in self._watched:
            self.detach(name)
        bus = open_bus(settings)
        try:
            listener = CaptureListener(
                self, self.store.channel_index(name), name, adapter_label(bus)
            )
            notifier = can.Notifier(bus, [listener, *self._recorders], timeout=0.05)
        except Exception:
            bus.shutdown()
            raise
        self._watched[name] = _Watched(name, bus, notifier, listener, owned=True)
        return name

    def detach(self, name: str) -> None:
        """Stop watching `name`; a bus the capture opened is closed, others are left running."""
        watched = self._watched.pop(name, None)
        if watched is None:
            return
        watched.listener.enabled = False
        self._end_fault(name)
        if watched.owned:
            watched.notifier.stop(timeout=NOTIFIER_STOP_TIMEOUT_S)
            watched.bus.shutdown()
        else:
            for listener in (watched.listener, *self._recorders):
                try:
                    watched.notifier.remove_listener(listener)
                except ValueError:
                    pass  # the owner already stopped its Notifier and dropped the listeners

    def close_all(self) -> None:
        """Detach every channel (closing the buses the capture opened)."""
        for name in list(self._watched):
            self.detach(name)

    def start_recording(self, recorder: can.Listener) -> None:
        """Add a recording listener (e.g. infra.tracefile.RotatingRecorder) to every watched
        bus and to buses watched later; Tx frames recorded through `record_tx` go to it too."""
        self._recorders.append(recorder)
        for watched in self._watched.values():
            watched.notifier.add_listener(recorder)

    def stop_recording(self) -> None:
        """Remove and stop every recording listener."""
        recorders, self._recorders = self._recorders, []
        for recorder in recorders:
            for watched in self._watched.values():
                try:
                    watched.notifier.remove_listener(recorder)
                except ValueError:
                    pass
            recorder.stop()

    @property
    def recording(self) -> bool:
        """True while a recorder is active."""
        return bool(self._recorders)

    def record_tx(self, name: str, msg: can.Message) -> None:
        """Record a frame sent on channel `name` as Tx (any thread)."""
        watched = self._watched.get(name)
        index = watched.listener.channel_index if watched else self.store.channel_index(name)
        tx = copy_message(msg, is_rx=False, as_data_frame=True)
        self._stage(tx, index)
        for recorder in self._recorders:
            recorder.on_message_received(tx)

    def send(self, name: str, msg: can.Message) -> None:
        """Send a frame on a watched bus and record it as Tx (raises can.CanError)."""
        watched = self._watched[name]
        watched.bus.send(msg)
        if watched.tx_echo or (
            watched.owned and getattr(watched.bus, "receive_own_messages", False)
        ):
            return  # the echo will arrive through the listener
        self.record_tx(name, msg)

    def pending(self) -> int:
        """Frames staged and not drained yet."""
        with self._lock:
            return self._staging.fill

    def drain(self) -> FrameBatch:
        """Take every staged frame as one columnar batch (does not touch the store): swap the
        double buffer under the lock, then copy the filled part outside it."""
        spare = self._spare
        spare.fill = 0
        spare.ext = {}
        with self._lock:
            full, self._staging = self._staging, spare
        self._spare = full
        n = full.fill
        self.received += n
        data = np.frombuffer(full.raw, np.uint8, 8 * n).reshape(n, 8).copy()
        if n:  # bytes past the frame length must read as 0 (buffers are reused)
            data[np.arange(8)[None, :] >= full.length[:n, None]] = 0
        return FrameBatch(
            full.ts[:n].copy(),
            full.ids[:n].copy(),
            full.flags[:n].copy(),
            full.length[:n].copy(),
            full.channel[:n].copy(),
            data,
            full.ext,
        )

    def feed_store(self) -> Appended:
        """Drain and append to the store in one step (the owning thread feeds the store; views
        are told what changed): returns the frames appended and the oldest frames dropped."""
        batch = self.drain()
        dropped = self.store.append_batch(batch)
        return Appended(len(batch), dropped)

    def drain_into_store(self) -> int:
        """`feed_store()` for loops that only count: returns the number of frames appended."""
        return self.feed_store().frames


@dataclass(frozen=True)
class Appended:
    """What one feed did to a store: `frames` appended, `dropped` oldest frames trimmed (the
    view removes its first `dropped` rows, then inserts `frames` at the end)."""

    frames: int
    dropped: int


LOAD_BATCH_FRAMES = 50_000
"""Frames per batch while loading a log (one progress report each)."""


def load_log(
    path: str | Path,
    store: TraceStore,
    progress: Callable[[float], None] | None = None,
    batch_frames: int = LOAD_BATCH_FRAMES,
) -> int:
    """Read a whole log file (any FORMATS suffix) into `store` (a fresh, unbounded store that
    no other thread reads yet); returns the frames read. `progress(fraction)` after each batch
    is the cancel point (a background task raises CancelledError there). Raises
    TraceFileError naming the file for an unreadable or malformed log."""
    total = 0

    def report(_frames: int, fraction: float) -> None:
        if progress is not None:
            progress(min(fraction, 0.999))

    for batch in read_log(
        path, channel_names=store.channel_names, progress=report, batch_frames=batch_frames
    ):
        store.append_batch(batch)
        total += len(batch)
    if progress is not None:
        progress(1.0)
    return total


class TraceReplay:
    """Replays frames onto a bus with their original spacing (scaled by `speed`), optionally
    looping, on a `fota-trace-replay` thread. `send` is called for each frame (e.g.
    `TraceCapture.send` bound to a channel name, so replayed frames show as Tx).

    Threads: start/stop from the owning thread; `send` runs on the replay thread.
    """

    def __init__(
        self,
        messages: list[can.Message],
        send: Callable[[can.Message], None],
        *,
        speed: float = 1.0,
        loop: bool = False,
    ) -> None:
        if speed <= 0:
            raise ValueError("replay speed must be > 0")
        self._messages = messages
        self._send = send
        self.speed = speed
        self.loop = loop
        self.sent = 0
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start replaying (no-op when already running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fota-trace-replay", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop and wait for the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        """True while frames are being sent."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        if not self._messages:
            return
        try:
            while not self._stop.is_set():
                t_first = self._messages[0].timestamp
                start = time.perf_counter()
                for msg in self._messages:
                    due = start + (msg.timestamp - t_first) / self.speed
                    delay = due - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    if self._stop.is_set():
                        return
                    self._send(msg)
                    self.sent += 1
                if not self.loop:
                    return
        except Exception as exc:  # reported to the panel through `error`
            self.error = exc
            log.warning("trace replay stopped: %s", exc)
