"""Thread scaffolding shared by the scripted machine-side CANopen nodes (HMI, OEM logic).

A scripted node runs one daemon thread `fota-<role>-<node>` over a `FotaClient`, records what it
did in a list guarded by a condition variable (so tests can wait for "n answers"), and stops
cooperatively. The thread runs one loop for every node: wait until the TCU is in the node's
state (`_due`), read the round (`_read_round`: its request id and what the node needs), skip a
round already answered, then `_answer` it (usually through `_write_recorded`). start()/stop()/
wait() may be called from any thread; the hooks run on the node's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from fota_studio.protocols.fota_client import FotaClient, FotaState, TcuAccessError
from fota_studio.sim.lifecycle import Startable

IDLE_WAIT_S = 0.2
RETRY_DELAY_S = 0.2
THREAD_JOIN_TIMEOUT_S = 3.0

T = TypeVar("T")
R = TypeVar("R")


class ScriptedNode(Startable, Generic[T, R]):
    """A background machine-side node answering the TCU by itself; records items of type T.

    R is what one round reads from the TCU (the offer, the request id)."""

    role = "node"
    #: What `_read_round` reads, named in the warning when it fails.
    reads = "the round"
    #: What the node writes, named when the TCU refuses it.
    answer_name = "answer"

    def __init__(self, client: FotaClient, *, delay_s: float, once: bool) -> None:
        self._client = client
        self.delay_s = delay_s
        self.once = once
        # The subclass's module logger: the messages keep their module's name.
        self._log = logging.getLogger(type(self).__module__)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Condition()
        self._items: list[T] = []

    def start(self) -> None:
        """Start the node's thread (the client must be started by its owner)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"fota-{self.role}-{self._client.node_id:02x}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the node's thread. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(THREAD_JOIN_TIMEOUT_S)
            self._thread = None

    def _recorded(self) -> list[T]:
        with self._lock:
            return list(self._items)

    def _wait_recorded(self, count: int, timeout_s: float) -> list[T]:
        with self._lock:
            self._lock.wait_for(lambda: len(self._items) >= count, timeout=timeout_s)
            return list(self._items)

    def _record(self, item: T) -> None:
        with self._lock:
            self._items.append(item)
            self._lock.notify_all()

    def _write_recorded(
        self, write: Callable[[int], None], value: int, item: Callable[[bool, str | None], T]
    ) -> None:
        """Write `value` to the TCU; record `item(accepted, error)` whether it took it or not."""
        try:
            write(value)
            self._record(item(True, None))
        except TcuAccessError as exc:  # round withdrawn meanwhile (0x08000022)
            self._log.info("%s: %s refused: %s", self.role.upper(), self.answer_name, exc)
            self._record(item(False, str(exc)))

    def _due(self, state: FotaState) -> bool:  # pragma: no cover - abstract
        """Whether the TCU waits for this node's answer in `state`."""
        raise NotImplementedError

    def _read_round(self) -> tuple[int, R]:  # pragma: no cover - abstract
        """(request id, what the answer needs) of the round the TCU waits on."""
        raise NotImplementedError

    def _answer(self, round_: R) -> bool:  # pragma: no cover - abstract
        """Answer one round; False when the node was stopped meanwhile."""
        raise NotImplementedError

    def _run(self) -> None:
        armed = True  # a new round is one seen after the TCU left the node's state
        last_request: int | None = None
        while not self._stop.is_set():
            state = self._client.wait_state(self._due, IDLE_WAIT_S, cancel=self._stop)
            if state is None:
                current = self._client.state
                if current is not None and not self._due(current):
                    armed = True
                continue
            try:
                request_id, round_ = self._read_round()
            except TcuAccessError as exc:
                self._log.warning("%s: cannot read %s: %s", self.role.upper(), self.reads, exc)
                self._stop.wait(RETRY_DELAY_S)
                continue
            if not armed and request_id == last_request:
                self._stop.wait(IDLE_WAIT_S)  # already answered this round
                continue
            armed = False
            last_request = request_id
            if not self._answer(round_) or self.once:
                return
