"""Polling a condition with a bound, for tests that wait on another thread's effect (the test's
own thread; the condition is read from it)."""

from __future__ import annotations

import time
from collections.abc import Callable


def poll_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll `condition` every 10 ms until it holds or `timeout_s` passed; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
