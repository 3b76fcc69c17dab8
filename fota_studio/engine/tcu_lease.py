"""The application's TCU node, on the bus only while someone asked for it ("quiet by default").

PCAN-View and vFlash never transmit unasked; an application that sent a CANopen boot-up and a
heartbeat every second as soon as a channel opened would disturb a real machine's bus (and its
error counters, if nothing acknowledges). So the TCU node of the app's first channel is started
on demand: `TcuOnDemand.acquire(reason)` starts it (boot-up, heartbeat, SDO server) for the first
holder, and it stops when the last holder releases it. Holders are an update request while it
runs (`QuietRequestService` holds it from `start` until the run's future is done) and the user's
explicit "TCU on the bus" switch. The demo's private bus and the simulator's channel have their
own nodes and are not concerned.

Thread use: acquire/release may be called from any thread (the GUI thread, a workflow thread);
one lock guards the holders and the node's start/stop.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can

from fota_studio.core.errors import ConfigurationError
from fota_studio.engine.engine import Engine
from fota_studio.engine.workflow import RequestRun, RequestService, Sink, WorkflowOptions
from fota_studio.protocols.tcu_node import TcuNode

_log = logging.getLogger(__name__)

#: Returns the (bus, notifier) the TCU should sit on now, or None when no channel is open.
BusProvider = Callable[[], tuple[can.BusABC, can.Notifier] | None]

#: The holder name of an update request's run.
REQUEST_REASON = "update request"
#: After a run ends the node stays this long, so a machine HMI can still read the final
#: status and last_error over SDO (it learns the status from TPDO1, then reads the rest).
FINAL_READ_GRACE_S = 3.0


class TcuOnDemand:
    """A TcuNode that exists and transmits only while at least one holder wants it."""

    def __init__(self, bus_provider: BusProvider, *, state_file: Path | None = None) -> None:
        self._bus_provider = bus_provider
        self._state_file = state_file
        self._lock = threading.RLock()
        self._holders: Counter[str] = Counter()
        self._node: TcuNode | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self._timers: list[threading.Timer] = []

    @property
    def node(self) -> TcuNode | None:
        """The running node, or None while the TCU is quiet."""
        with self._lock:
            return self._node

    @property
    def running(self) -> bool:
        """True while the node is on the bus."""
        return self.node is not None

    def holders(self) -> dict[str, int]:
        """Who holds the node now (reason → count)."""
        with self._lock:
            return dict(+self._holders)

    def held_by(self, reason: str) -> bool:
        """True while `reason` holds the node."""
        with self._lock:
            return self._holders[reason] > 0

    def add_listener(self, callback: Callable[[bool], None]) -> None:
        """`callback(running)` after the node starts or stops (on the caller's thread)."""
        self._listeners.append(callback)

    def acquire(self, reason: str) -> TcuNode:
        """Hold the node for `reason`, starting it when it is the first holder.

        ConfigurationError when no CAN channel is open (nothing to put the TCU on); AdapterError
        when the adapter refuses to send (the node is not started, nothing is held).
        """
        with self._lock:
            started = False
            if self._node is None:
                where = self._bus_provider()
                if where is None:
                    raise ConfigurationError(
                        "no CAN channel is open for the TCU node",
                        hint="connect the adapters (CAN ▸ Connect adapters) first",
                    )
                bus, notifier = where
                node = TcuNode(bus, notifier=notifier, state_file=self._state_file)
                node.start()
                self._node = node
                started = True
            self._holders[reason] += 1
            node = self._node
        _log.info("TCU node held by %s (%s)", reason, dict(+self._holders))
        if started:
            self._notify(True)
        return node

    def release_later(self, reason: str, delay_s: float) -> None:
        """`release(reason)` after `delay_s` on a timer thread `fota-tcu-release` (`stop`
        cancels pending ones)."""
        timer = threading.Timer(delay_s, self._timed_release, args=(reason,))
        timer.name = "fota-tcu-release"
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def _timed_release(self, reason: str) -> None:
        with self._lock:
            self._timers = [t for t in self._timers if t is not threading.current_thread()]
        self.release(reason)

    def release(self, reason: str) -> None:
        """Give up one hold of `reason`; the last release stops the node (idempotent per hold)."""
        with self._lock:
            if self._holders[reason] <= 0:
                return
            self._holders[reason] -= 1
            if +self._holders or self._node is None:
                return
            node, self._node = self._node, None
            node.stop()
        _log.info("TCU node stopped: nobody holds it (quiet by default)")
        self._notify(False)

    def stop(self) -> None:
        """Stop the node and forget every holder (channel closing, application exit)."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join(1.0)
        with self._lock:
            self._holders.clear()
            node, self._node = self._node, None
            if node is not None:
                node.stop()
        if node is not None:
            self._notify(False)

    def _notify(self, running: bool) -> None:
        for callback in list(self._listeners):
            try:
                callback(running)
            except Exception:  # a listener must not break the lease
                _log.exception("TCU listener failed")


class QuietRequestService(RequestService):
    """A RequestService whose runs hold the on-demand TCU node from start to their end."""

    def __init__(
        self, ws: Any, engine: Engine, *, tcu: TcuOnDemand, sink: Sink | None = None
    ) -> None:
        super().__init__(ws, engine, tcu=None, sink=sink)
        self.tcu_on_demand = tcu

    def start(self, request_id: int, options: WorkflowOptions | None = None) -> RequestRun:
        """Start the TCU node (if quiet), then the run; the node is released when it ends."""
        node = self.tcu_on_demand.acquire(REQUEST_REASON)
        self.tcu = node
        try:
            run = super().start(request_id, options)
        except BaseException:
            self.tcu_on_demand.release(REQUEST_REASON)
            raise
        run.future.add_done_callback(
            lambda _f: self.tcu_on_demand.release_later(REQUEST_REASON, FINAL_READ_GRACE_S)
        )
        return run
