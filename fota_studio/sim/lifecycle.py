"""`Startable`: the `with` statement over a component's own start()/stop().

The simulator's running parts (a simulated machine, the scripted HMI and OEM nodes) and the
demo bench all start threads in start() and join them in stop(); `with part:` starts the part
and stops it on leaving the block, even on an exception. Same thread rules as the subclass's
start()/stop().
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar


class _StartStop(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> None: ...


_P = TypeVar("_P", bound=_StartStop)


class Startable:
    """Mixin for a class with start() and stop(): `with obj:` starts it and, on leaving, stops
    it (the type checker holds the class to having both)."""

    def __enter__(self: _P) -> _P:
        """Start and return the component."""
        self.start()
        return self

    def __exit__(self: _StartStop, *exc: object) -> None:
        """Stop the component."""
        self.stop()
