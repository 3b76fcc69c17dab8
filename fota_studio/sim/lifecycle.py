"""`Startable`: the `with` statement over a component's own start()/stop().

The simulator's running parts (a simulated machine, the scripted HMI and OEM nodes) and the
demo bench all start threads in start() and join them in stop(); `with part:` starts the part
and stops it on leaving the block, even on an exception. Same thread rules as the subclass's
start()/stop().
"""

from __future__ import annotations

from typing import Any, Self


class Startable:
    """Mixin: `with obj:` calls `obj.start()` and, on leaving, `obj.stop()`."""

    def start(self) -> Any:
        """Start the component (subclasses implement it)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the component (subclasses implement it)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        """Start and return the component."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the component."""
        self.stop()
