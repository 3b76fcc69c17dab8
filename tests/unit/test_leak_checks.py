"""The leak checks every test runs (tests/helpers/leaks.py) fail a test that leaves a python-can
`virtual` bus open or a `fota-*` thread running, and pass one that cleans up."""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from tests.helpers.leaks import leaked_virtual_channels, open_virtual_channels

REPO = Path(__file__).resolve().parents[2]

INNER_TESTS = """
import threading
import can

KEEP = []  # a bus nobody references is shut down by its __del__; a leaked one is referenced

def test_leaves_a_bus_open():
    KEEP.append(can.Bus(interface="virtual", channel="leak-check-open", ignore_config=True))

def test_closes_its_bus():
    with can.Bus(interface="virtual", channel="leak-check-closed", ignore_config=True):
        pass

def test_leaves_a_thread_running():
    stop = threading.Event()
    threading.Thread(target=stop.wait, name="fota-leak-check", daemon=True).start()
"""


def test_the_checks_fail_leaking_tests_and_name_what_leaked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest('pytest_plugins = ["tests.helpers.leaks"]\n')
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    # A leak fails the teardown: the body passed, the test reports an error.
    result.assert_outcomes(passed=3, errors=2)
    out = result.stdout.str()
    assert "leak-check-open" in out and "bus.shutdown()" in out
    assert "fota-leak-check" in out
    assert "leak-check-closed" not in out


def test_leaked_channels_counts_buses_opened_since(can_channel: str) -> None:
    before = open_virtual_channels()
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        assert leaked_virtual_channels(before) == {can_channel: 1}
    finally:
        bus.shutdown()
    assert leaked_virtual_channels(before) == {}
