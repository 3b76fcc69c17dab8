"""Hang a `canopen.Network` on a python-can bus without a second receive loop.

A bus must have exactly one `can.Notifier`. When the bus's owner already runs one (the engine,
a simulator), the network's listeners are added to it; otherwise this module starts one for the
network. `NetworkHookup.detach()` undoes either. Used by the TCU node and the machine-side FOTA
client; callable from any thread that owns the start/stop of those objects.
"""

from __future__ import annotations

import contextlib

import can
import canopen

from fota_studio.core.errors import AdapterError

NOTIFIER_RECV_TIMEOUT_S = 0.1
NOTIFIER_STOP_TIMEOUT_S = 0.5


class NetworkHookup:
    """The listeners of one `canopen.Network` on a bus: on a shared Notifier or an own one."""

    def __init__(
        self, network: canopen.Network, bus: can.BusABC, shared: can.Notifier | None, who: str
    ) -> None:
        self.network = network
        self._shared = shared
        self._own: can.Notifier | None = None
        try:
            if shared is not None:
                for listener in network.listeners:
                    shared.add_listener(listener)
                network.notifier = shared
            else:
                self._own = can.Notifier(bus, network.listeners, timeout=NOTIFIER_RECV_TIMEOUT_S)
                network.notifier = self._own
        except ValueError as exc:  # python-can: the bus already has a Notifier
            raise AdapterError(
                f"{who}: the bus already has a receive loop ({exc})",
                hint="pass that bus's can.Notifier as notifier=",
            ) from exc

    def detach(self) -> None:
        """Remove the listeners (shared Notifier) or stop the own Notifier. Idempotent."""
        if self._shared is not None:
            for listener in self.network.listeners:
                with contextlib.suppress(ValueError):
                    self._shared.remove_listener(listener)
            self._shared = None
        self.network.notifier = None
        if self._own is not None:
            self._own.stop(timeout=NOTIFIER_STOP_TIMEOUT_S)
            self._own = None
