"""Leak checks every test runs (a pytest plugin loaded by tests/conftest.py).

A test that leaves a `fota-*` thread running or a python-can `virtual` channel open fails, naming
what it left behind: the next test on a reused channel name would otherwise receive its frames,
and a thread left behind keeps a bus or a file open until the process ends. Both are read after
a short grace period, because a closed bus or a joined worker may finish a moment after the test
body returns.

The channel check reads `can.interfaces.virtual.channels` (channel name → receive queues of the
buses open on it); tests/unit/test_python_can_internals.py names that internal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from can.interfaces import virtual

#: How long a finishing thread or closing bus may take after the test body (50 ms polls).
GRACE_S = 2.5
_POLL_S = 0.05


def fota_threads() -> set[str]:
    """Names of the live `fota-*` threads (engine workers, simulators, UI I/O)."""
    return {t.name for t in threading.enumerate() if t.name.startswith("fota-") and t.is_alive()}


def open_virtual_channels() -> dict[str, int]:
    """Each open python-can `virtual` channel and how many buses are open on it."""
    with virtual.channels_lock:
        return {str(name): len(queues) for name, queues in virtual.channels.items()}


def leaked_virtual_channels(before: dict[str, int]) -> dict[str, int]:
    """Channels with more open buses now than in `before` (name → buses left open)."""
    now = open_virtual_channels()
    return {
        name: count - before.get(name, 0)
        for name, count in now.items()
        if count > before.get(name, 0)
    }


def _settle(leaks: Callable[[], object]) -> object:
    """Poll `leaks()` until it is empty or the grace period ends; return the last value."""
    waiter = threading.Event()
    found = leaks()
    for _ in range(int(GRACE_S / _POLL_S)):
        if not found:
            break
        waiter.wait(_POLL_S)
        found = leaks()
    return found


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a `fota-*` thread running (engine workers, simulators)."""
    before = fota_threads()
    yield
    leaked = _settle(lambda: sorted(fota_threads() - before))
    if leaked:
        pytest.fail(f"test leaked threads: {leaked}: stop/join them (Engine.shutdown, sim.stop)")


@pytest.fixture(autouse=True)
def _no_leaked_virtual_channels() -> Iterator[None]:
    """Fail a test that leaves a python-can `virtual` bus open (shutdown() every bus it opens)."""
    before = open_virtual_channels()
    yield
    leaked = _settle(lambda: leaked_virtual_channels(before))
    if leaked:
        pytest.fail(
            f"test left python-can virtual buses open (channel: buses): {leaked}; "
            "call bus.shutdown() (or use the bus as a context manager)"
        )
