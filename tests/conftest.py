"""Shared test fixtures: offscreen Qt, isolated user folders, leak checks for threads and buses,
an in-process keyring, the exceptions of threads that died.

The leak checks (a `fota-*` thread or a python-can `virtual` bus left open fails the test) are
the plugin tests/helpers/leaks.py; the seeded demo workspace fixtures come from
tests/helpers/cli.py, the simulated-machine rig `make_rig` from tests/fakes/uds_tester.py.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401  (imported now: hypothesis's plugin would import it at session end)
import keyring
import pytest

from tests.fakes.memory_keyring import MemoryKeyring

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = [
    "tests.helpers.leaks",
    "tests.helpers.cli",
    # `make_rig`: a simulated machine with one demo ECU and a raw UDS tester.
    "tests.fakes.uds_tester",
    "pytester",
]


@pytest.fixture(autouse=True)
def _isolated_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the default workspace, config and log folders into a temp dir for every test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("FOTA_STUDIO_WORKSPACE", str(home / "workspace"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")


@pytest.fixture(autouse=True)
def _logger_levels_restored() -> Iterator[None]:
    """Give every logger back the level it had before the test: a CLI run in-process
    (`--log-level ERROR`, the simulator's logger set to WARNING) must not silence the log
    records a later test reads (seen: odxtools' warnings in the PDX import test)."""
    manager = logging.Logger.manager
    before = {
        name: lg.level for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)
    }
    root_level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(root_level)
    for name, lg in list(manager.loggerDict.items()):
        if isinstance(lg, logging.Logger):
            if name in before:
                lg.setLevel(before[name])
            elif name.startswith("fota_studio"):  # ours set no level at import, only at run
                lg.setLevel(logging.NOTSET)


@pytest.fixture(autouse=True)
def _automatic_gc_restored() -> Iterator[None]:
    """A main window collects cycles on the GUI thread with automatic GC off (ui/gui_gc) and
    turns it back on when closed; a test that leaves a window open must not leave the rest of
    the session without automatic collection."""
    yield
    if not gc.isenabled():
        gc.enable()


@pytest.fixture
def can_channel() -> str:
    """A unique python-can `virtual` channel name for this test."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    """An empty folder for a test workspace."""
    return tmp_path / "ws"


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """An in-process keyring installed as the keyring for this test (the previous one after)."""
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def thread_deaths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What threads of this test died of ("thread: exception"), collected through
    `threading.excepthook` instead of a raw traceback on stderr; a test asserts it stays empty."""
    died: list[str] = []
    monkeypatch.setattr(
        threading, "excepthook", lambda args: died.append(f"{args.thread}: {args.exc_value!r}")
    )
    return died
