"""Bus timing model: a python-can `virtual` bus that takes as long as a real CAN wire.

`PacedVirtualBus` (python-can interface name `fota_sim`) gives each sent frame a slot on a
process-wide wire per channel, as long as the frame's real duration
(`core.can_timing.wire_time_s`: worst-case stuffing, FD data phase with bit rate switch, 3-bit
interframe space), back to back after the frames already queued: all senders of a channel are
SERIALISED, so a simulated flash takes as long as on a real bus and the bus load is true. Like a
real adapter, `send` only queues the frame in a small transmit FIFO (it blocks while the bus
instance already has `TX_FIFO_FRAMES` frames waiting); a wire thread `fota-sim-wire-<channel>`
delivers each frame at the end of its slot through an inner python-can `VirtualBus` on the
same channel, so plain `virtual` buses on that channel see the frames too. The schedule is
absolute, so a late wake-up of a thread delays a delivery but never stretches the bus time.
Arbitration is first-come-first-served, not by CAN ID. The wire thread sleeps to a
perf_counter deadline, ending with a short GIL-releasing spin (≤ 60 µs, the sleep
overshoot). Any thread may call `send`/`recv`.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import can
from can.interfaces.virtual import VirtualBus

from fota_studio.core.can_timing import wire_time_s

#: How much `time.sleep` overshoots on Linux (timer slack 50 µs; measured 54-60 µs): the wire
#: thread sleeps that much less and covers the rest with a GIL-releasing spin.
SLEEP_OVERSHOOT_S = 0.00006
#: Frames one bus instance may have queued before `send` blocks (an adapter's transmit FIFO).
TX_FIFO_FRAMES = 64
#: How long `shutdown` waits for the own queued frames to leave the wire.
FLUSH_TIMEOUT_S = 1.0


def sleep_until(deadline: float) -> None:
    """Sleep until `deadline` (time.perf_counter), waking within a few µs of it.

    Sleeps to `SLEEP_OVERSHOOT_S` before the deadline, then spins with `time.sleep(0)` (which
    releases the GIL, so the spin does not stall the simulator or the tester): at most ~60 µs
    of spinning per frame instead of a ~55 µs late delivery of every frame.
    """
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return
        if remaining > SLEEP_OVERSHOOT_S:
            time.sleep(remaining - SLEEP_OVERSHOOT_S)
        else:
            time.sleep(0)


@dataclass
class _Wire:
    """One simulated channel: its schedule, the wire thread, and statistics."""

    name: str
    cond: threading.Condition = field(default_factory=threading.Condition)
    queue: collections.deque[tuple[float, can.Message, PacedVirtualBus]] = field(
        default_factory=collections.deque
    )
    free_at: float = 0.0
    busy_s: float = 0.0
    frames: int = 0
    users: int = 0
    closed: bool = False
    thread: threading.Thread | None = None

    def run(self) -> None:
        """Wire thread: deliver each frame at the end of its slot until the last user leaves."""
        while True:
            with self.cond:
                while not self.queue and self.users > 0:
                    self.cond.wait(0.5)
                if not self.queue:
                    self.closed = True  # a later bus on this channel starts a new wire
                    return
                end, msg, sender = self.queue[0]
            sleep_until(end)
            with self.cond:
                self.queue.popleft()
                sender.pending -= 1
                self.cond.notify_all()
            sender.deliver(msg)


_wires: dict[str, _Wire] = {}
_wires_lock = threading.Lock()
_counter = itertools.count(1)


def _join(channel: str) -> _Wire:
    """Join the channel's wire, starting a wire thread when it has none running."""
    with _wires_lock:
        old = _wires.get(channel)
        if old is not None:
            with old.cond:
                if not old.closed:
                    old.users += 1
                    return old
        wire = _Wire(name=channel, users=1)
        if old is not None:
            wire.busy_s, wire.frames = old.busy_s, old.frames
        wire.thread = threading.Thread(
            target=wire.run, name=f"fota-sim-wire-{channel}-{next(_counter)}", daemon=True
        )
        _wires[channel] = wire
        wire.thread.start()
        return wire


def wire_statistics(channel: str) -> tuple[int, float]:
    """Return (frames sent, seconds the wire was busy) of a paced channel in this process."""
    with _wires_lock:
        wire = _wires.get(channel)
    if wire is None:
        return 0, 0.0
    with wire.cond:
        return wire.frames, wire.busy_s


class PacedVirtualBus(can.BusABC):
    """A `virtual` bus paced to the wire time of the configured bitrate (interface `fota_sim`)."""

    def __init__(
        self,
        channel: Any = "fota_sim",
        bitrate: int = 500_000,
        data_bitrate: int | None = 2_000_000,
        fd: bool = False,
        receive_own_messages: bool = False,
        **kwargs: Any,
    ) -> None:
        """Join `channel` at `bitrate` (and `data_bitrate` for FD frames with bit rate switch)."""
        self._channel_name = str(channel)
        self.bitrate_bps = int(bitrate)
        self.data_bitrate_bps = int(data_bitrate) if data_bitrate else None
        self.fd = bool(fd)
        self.pending = 0  # frames of this bus queued on the wire (guarded by the wire's cond)
        self._inner = VirtualBus(
            channel=self._channel_name, receive_own_messages=receive_own_messages
        )
        self.channel_info = f"paced virtual channel {self._channel_name} @ {self.bitrate_bps} bit/s"
        kwargs.pop("ignore_config", None)
        super().__init__(channel=self._channel_name, **kwargs)
        self._is_shutdown = False
        self._wire = _join(self._channel_name)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Queue the frame for the next free slot on the wire (blocks while the FIFO is full)."""
        if self._is_shutdown:
            raise can.CanOperationError("PacedVirtualBus is shut down")
        duration = wire_time_s(msg, self.bitrate_bps, self.data_bitrate_bps)
        wire = self._wire
        deadline = None if timeout is None else time.monotonic() + timeout
        with wire.cond:
            while self.pending >= TX_FIFO_FRAMES:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise can.CanOperationError("transmit FIFO full (bus overloaded)")
                wire.cond.wait(left)
            start = max(time.perf_counter(), wire.free_at)
            wire.free_at = start + duration
            wire.busy_s += duration
            wire.frames += 1
            self.pending += 1
            wire.queue.append((wire.free_at, msg, self))
            wire.cond.notify_all()

    def deliver(self, msg: can.Message) -> None:
        """Wire thread: hand a frame whose slot ended to the other buses of the channel."""
        try:
            self._inner.send(msg)
        except can.CanError:
            pass  # this bus was shut down meanwhile: the frame is lost like on a real adapter

    def flush_tx_buffer(self) -> None:
        """Wait until this bus's queued frames have left the wire."""
        wire = self._wire
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        with wire.cond:
            while self.pending > 0 and time.monotonic() < deadline:
                wire.cond.wait(0.05)

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        """Receive from the inner virtual bus (software filtering by BusABC)."""
        return self._inner.recv(timeout), False

    @staticmethod
    def _detect_available_configs() -> list[Any]:
        """No hardware to detect: any channel name works."""
        return []

    def shutdown(self) -> None:
        """Let queued frames leave, then leave the channel (idempotent)."""
        if self._is_shutdown:
            return
        self.flush_tx_buffer()
        super().shutdown()
        wire = self._wire
        with wire.cond:
            wire.users -= 1
            wire.cond.notify_all()
        if wire.users <= 0 and wire.thread is not None:
            wire.thread.join(FLUSH_TIMEOUT_S)
        self._inner.shutdown()
