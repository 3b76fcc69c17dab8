"""The assembled GUI: main window + Workbench on a real workspace, as `app.py` builds it.

Checks that every panel is there, the demo workspace's CAN1 opens on the engine with the TCU
node on it, the one-click demo runs to Successful with the approval clicked on the HMI panel
while the trace shows the demo bus, operator mode locks the editors, and closing the window
stops every thread (the conftest fixture fails the test otherwise).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from fota_studio.app import open_workspace
from fota_studio.infra.connections import ChannelConnection, set_connection
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.main_window import MainWindow
from fota_studio.ui.workbench import Workbench

PANELS = {"repository", "ea", "requests", "flash", "hmi", "oem", "tcu_bench", "sim", "trace", "log"}


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    ws = open_workspace(workspace_dir)
    # A private virtual channel per test so parallel or leftover buses never mix.
    set_connection(
        ws,
        ChannelConnection(
            logical_channel="CAN1", interface="virtual", channel=f"wb-{uuid.uuid4().hex[:8]}"
        ),
    )
    yield ws
    ws.close()


@pytest.fixture
def window(qtbot, ws: Workspace, tmp_path: Path) -> Iterator[tuple[MainWindow, Workbench]]:
    qsettings = QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)
    w = MainWindow(
        ws, qsettings=qsettings, settings_path=tmp_path / "s.json", open_workspace=open_workspace
    )
    bench = Workbench(w, ws)
    w.shutdown_hooks.append(bench.shutdown)
    qtbot.addWidget(w)
    w.show()
    yield w, bench
    w.close()


def test_every_panel_and_the_engine_channel_are_there(window) -> None:
    w, bench = window
    assert set(w.panel_keys()) >= PANELS
    assert bench.engine.channels() == ["CAN1"]
    assert bench.tcu is not None and bench.service is not None
    assert bench.requests_panel.service is bench.service
    assert w.engine is bench.engine


def test_one_click_demo_runs_to_successful(qtbot, window, ws: Workspace) -> None:
    _, bench = window
    with qtbot.waitSignal(bench.hmi_panel.offer_shown, timeout=30_000):
        bench.action_demo.trigger()
    assert bench.hmi_panel.approve_button.isEnabled()
    with qtbot.waitSignal(bench.demo.finished, timeout=90_000) as done:
        qtbot.mouseClick(bench.hmi_panel.approve_button, Qt.MouseButton.LeftButton)
    assert done.args[0] == "Successful", done.args[1]
    assert EaStore(ws).get_machine("Unit #1001").installed["VCU"] == "3.2.1"
    # The trace watched the demo's bus: UDS to the VCU's bootloader IDs went by.
    qtbot.waitUntil(lambda: bench.trace_panel.model.rowCount() > 100, timeout=10_000)


def test_operator_mode_locks_repositories_and_eas(window) -> None:
    w, bench = window
    bench.access.set_passphrase("correct horse battery")
    bench.access.enter_operator()
    assert not w.repository_panel.import_action.isEnabled()
    assert w.repository_panel.import_file("/nonexistent.hex") is None
    assert not bench.ea_panel.action_save.isEnabled()
    assert bench.access.enter_engineering("correct horse battery")
    assert w.repository_panel.import_action.isEnabled()
