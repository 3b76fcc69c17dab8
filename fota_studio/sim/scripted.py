"""Thread scaffolding shared by the scripted machine-side CANopen nodes (HMI, OEM logic).

A scripted node runs one daemon thread `fota-<role>-<node>` over a `FotaClient`, records what it
did in a list guarded by a condition variable (so tests can wait for "n answers"), and stops
cooperatively. Subclasses implement `_run()` and call `_record()`. start()/stop()/wait() may be
called from any thread.
"""

from __future__ import annotations

import threading
from typing import Generic, Self, TypeVar

from fota_studio.protocols.fota_client import FotaClient

IDLE_WAIT_S = 0.2
RETRY_DELAY_S = 0.2
THREAD_JOIN_TIMEOUT_S = 3.0

T = TypeVar("T")


class ScriptedNode(Generic[T]):
    """A background machine-side node answering the TCU by itself; records items of type T."""

    role = "node"

    def __init__(self, client: FotaClient) -> None:
        self._client = client
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
