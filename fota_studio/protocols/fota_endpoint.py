"""What both ends of the FOTA object share: the TCU node (server) and the FOTA client.

`FotaEndpoint` holds the bus, the node-ID, the object layout read from the EDS and the
`canopen.Network` hung on the bus (`NetworkHookup`: on the owner's Notifier or an own one), and
makes the subclass a context manager around its `start()` / `stop()`. `Listeners` keeps the
callbacks each end offers (state changes, operator decisions). Called from the thread
that owns the start/stop of the endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, ParamSpec, Self, TypedDict, Unpack

import can
import canopen

from fota_studio.protocols.canopen_net import NetworkHookup
from fota_studio.protocols.fota_objects import DEFAULT_NODE_ID, FotaLayout

_P = ParamSpec("_P")


class Listeners(Generic[_P]):
    """Callbacks of one kind: added and removed from any thread; the owner calls a `snapshot()`
    outside its own lock (a callback may call back into it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[_P, None]] = []

    def add(self, callback: Callable[_P, None]) -> None:
        """Call `callback` from now on."""
        with self._lock:
            self._callbacks.append(callback)

    def remove(self, callback: Callable[_P, None]) -> None:
        """Undo `add` (no error if it was not added)."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def snapshot(self) -> list[Callable[_P, None]]:
        """The callbacks as they are now (to call without holding any lock)."""
        with self._lock:
            return list(self._callbacks)


class EndpointOptions(TypedDict, total=False):
    """Where an endpoint sits (keyword arguments of `TcuNode` and `FotaClient`)."""

    node_id: int  # default DEFAULT_NODE_ID
    eds_path: Path | None  # None: the EDS shipped with the package
    notifier: can.Notifier | None  # the bus owner's Notifier; None: the network runs its own


class FotaEndpoint:
    """Base of `TcuNode` and `FotaClient`: bus, node-ID, layout and the network on the bus."""

    def __init__(self, bus: can.BusABC, **where: Unpack[EndpointOptions]) -> None:
        self._bus = bus
        self.node_id = where.get("node_id", DEFAULT_NODE_ID)
        self.layout = FotaLayout.load(where.get("eds_path"), self.node_id)
        self._shared_notifier = where.get("notifier")
        self._network: canopen.Network | None = None
        self._hookup: NetworkHookup | None = None

    def start(self) -> None:
        """Attach to the bus (the subclass says how)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Detach from the bus (the subclass says how); idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _hook_up(self, network: canopen.Network, who: str) -> None:
        """Hang `network` on the bus (one Notifier a bus, never `Network.connect()`), keep it."""
        self._hookup = NetworkHookup(network, self._bus, self._shared_notifier, who)
        self._network = network

    def _unhook(self) -> canopen.Network | None:
        """Take the network off the bus (the bus stays open); returns it (None when there was
        none) for the subclass to remove its node from."""
        network, self._network = self._network, None
        hookup, self._hookup = self._hookup, None
        if hookup is not None:
            hookup.detach()
        return network
