"""Shared test fixtures: offscreen Qt, isolated user folders, leak checks for threads and buses.

The leak checks (a `fota-*` thread or a python-can `virtual` bus left open fails the test) are
the plugin tests/helpers/leaks.py.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import hypothesis  # noqa: F401  (imported now: hypothesis's plugin would import it at session end)
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = ["tests.helpers.leaks", "pytester"]


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


@pytest.fixture
def can_channel() -> str:
    """A unique python-can `virtual` channel name for this test."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    """An empty folder for a test workspace."""
    return tmp_path / "ws"
