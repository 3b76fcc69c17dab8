"""The assembled app for GUI tests: a demo workspace on a private virtual CAN1 and the main
window + Workbench built on it as `app.py` does (shared by the workbench, welcome and operator
tests), and a plain demo-seeded workspace fixture for the panel tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from fota_studio.app import open_workspace
from fota_studio.demo.seed import ensure_demo
from fota_studio.infra.connections import ChannelConnection, set_connection
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.main_window import MainWindow
from fota_studio.ui.workbench import Workbench


def demo_workspace(workspace_dir: Path, prefix: str) -> Iterator[Workspace]:
    """Open (seeding the demo) a workspace whose CAN1 is a private virtual channel, so
    parallel or leftover buses never mix; closed afterwards."""
    ws = open_workspace(workspace_dir)
    set_connection(
        ws,
        ChannelConnection(
            logical_channel="CAN1", interface="virtual", channel=f"{prefix}-{uuid.uuid4().hex[:8]}"
        ),
    )
    yield ws
    ws.close()


def app_window(qtbot, ws: Workspace, tmp_path: Path) -> Iterator[tuple[MainWindow, Workbench]]:  # type: ignore[no-untyped-def]
    """The shown main window with its Workbench (layout and settings files in `tmp_path`);
    closed afterwards, which stops every thread."""
    qsettings = QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)
    w = MainWindow(
        ws, qsettings=qsettings, settings_path=tmp_path / "s.json", open_workspace=open_workspace
    )
    bench = Workbench(w, ws)
    w.shutdown_hooks.append(bench.shutdown)
    qtbot.addWidget(w)
    w.show()
    yield w, bench
    # Quitting asks when a job still runs (its teardown must not wait on a modal): say Yes.
    w.confirm = lambda _title, _text: True
    w.close()


def seeded_ws_fixture() -> Any:
    """A test module's `ws` fixture: a workspace in `workspace_dir` with the demo seeded
    (`ws_fixture = seeded_ws_fixture()`), closed afterwards."""

    @pytest.fixture(name="ws")
    def ws_fixture(workspace_dir: Path) -> Iterator[Workspace]:
        ws = Workspace.open(workspace_dir)
        ensure_demo(ws)
        yield ws
        ws.close()

    return ws_fixture


def app_fixtures(prefix: str) -> tuple[Any, Any]:
    """The `ws` (`demo_workspace`, CAN1 channels named `prefix`-…) and `window` (`app_window`)
    fixtures of a GUI test module: `ws_fixture, window_fixture = app_fixtures("wb")`."""

    @pytest.fixture(name="ws")
    def ws_fixture(workspace_dir: Path) -> Iterator[Workspace]:
        yield from demo_workspace(workspace_dir, prefix)

    @pytest.fixture(name="window")
    def window_fixture(
        qtbot, ws: Workspace, tmp_path: Path
    ) -> Iterator[tuple[MainWindow, Workbench]]:  # type: ignore[no-untyped-def]
        yield from app_window(qtbot, ws, tmp_path)

    return ws_fixture, window_fixture
