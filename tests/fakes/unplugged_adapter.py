"""An adapter unplugged while a python-can bus is in use: receives fail as pyserial's do.

`unplug_while_set(bus, gone, monkeypatch)` makes a real bus (e.g. a `virtual` one opened by
`open_bus`) receive like an unplugged slcan adapter while `gone` is set — python-can's
`CanOperationError("Could not read from serial device")` raised from pyserial's `OSError` 5 —
and like itself again once `gone` is cleared. Any thread may set or clear `gone`.
"""

from __future__ import annotations

import threading

import can
import pytest

#: The cause text `describe_adapter_fault` keeps from the driver for this fault.
UNPLUGGED_CAUSE = "Could not read from serial device: [Errno 5] Input/output error"


def unplug_while_set(
    bus: can.BusABC, gone: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Make `bus` fail every receive like an unplugged serial adapter while `gone` is set."""
    real = bus._recv_internal

    def recv(timeout: float | None) -> tuple[can.Message | None, bool]:
        if gone.is_set():
            try:
                raise OSError(5, "Input/output error")
            except OSError as exc:
                raise can.CanOperationError("Could not read from serial device") from exc
        return real(timeout)

    monkeypatch.setattr(bus, "_recv_internal", recv)
