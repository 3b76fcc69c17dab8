"""The main window: docks and View menu, layout restore, workspace switch, log panel, closing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel

from fota_studio.app import open_workspace
from fota_studio.demo.catalog import DEMO_REPOSITORIES
from fota_studio.infra.logsetup import LOG_TAP, LogTap
from fota_studio.infra.settings import load_settings
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.dialogs.about_dialog import AboutDialog
from fota_studio.ui.main_window import MainWindow
from fota_studio.ui.panels.log_panel import LogPanel


@pytest.fixture(autouse=True)
def _log_tap_attached() -> Iterator[None]:
    root = logging.getLogger()
    added = LOG_TAP not in root.handlers
    if added:
        root.addHandler(LOG_TAP)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(old_level)
    if added:
        root.removeHandler(LOG_TAP)


@pytest.fixture
def qsettings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    ws = open_workspace(workspace_dir)
    yield ws
    ws.close()


def _window(qtbot, ws, qsettings, tmp_path, **kw) -> MainWindow:
    w = MainWindow(
        ws,
        qsettings=qsettings,
        settings_path=tmp_path / "settings.json",
        open_workspace=open_workspace,
        **kw,
    )
    qtbot.addWidget(w)
    return w


class _Panel(QLabel):
    def __init__(self, answer: bool) -> None:
        super().__init__("panel")
        self.answer = answer
        self.asked = 0

    def maybe_close(self) -> bool:
        self.asked += 1
        return self.answer


class _Engine:
    def __init__(self) -> None:
        self.shut_down = 0

    def shutdown(self) -> None:
        self.shut_down += 1


def test_title_status_and_view_menu(qtbot, ws, qsettings, tmp_path) -> None:
    w = _window(qtbot, ws, qsettings, tmp_path)
    assert w.windowTitle() == f"FOTA Studio — {ws.root}"
    assert str(ws.root) in w.workspace_label.text()
    assert f"schema v{ws.schema_version}" == w.schema_label.text()
    dock = w.add_panel("extra", "Extra", QLabel("x"), tabify_with="repository")
    assert dock.objectName() == "dock_extra"
    titles = [a.text() for a in w.view_menu.actions() if not a.isSeparator()]
    assert titles == ["&Technician view", "Software Repositories", "Log", "Extra"]
    with pytest.raises(ValueError):
        w.add_panel("extra", "Again", QLabel("y"))
    menus = [a.text() for a in w.menuBar().actions()]
    assert menus == ["&File", "&View", "&Tools", "&Help"]
    repo_model = w.repository_panel.model
    labels = [repo_model.index(r, 0).data() for r in range(repo_model.rowCount())]
    assert f"{DEMO_REPOSITORIES[0].brand} / {DEMO_REPOSITORIES[0].model}" in labels


def test_layout_is_restored_by_a_second_window(qtbot, ws, qsettings, tmp_path) -> None:
    w1 = _window(qtbot, ws, qsettings, tmp_path)
    w1.add_panel("extra", "Extra", QLabel("x"))
    w1.show()
    qtbot.waitExposed(w1)
    w1.resize(701, 503)  # the offscreen screen is 800x600; restore clamps to it
    w1.move(40, 30)
    w1.dock("log").setFloating(True)
    w1.dock("extra").hide()
    w1.removeDockWidget(w1.dock("repository"))
    w1.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, w1.dock("repository"))
    w1.dock("repository").show()
    w1.close()
    assert qsettings.value("main_window/state") is not None

    w2 = _window(qtbot, ws, qsettings, tmp_path)
    w2.add_panel("extra", "Extra", QLabel("x"))
    w2.show()
    qtbot.waitExposed(w2)
    assert (w2.width(), w2.height()) == (701, 503)
    assert w2.dock("log").isFloating()
    assert not w2.dock("extra").isVisible()
    assert w2.dockWidgetArea(w2.dock("repository")) == Qt.DockWidgetArea.RightDockWidgetArea
    w2.close()


def test_panel_added_after_show_gets_its_saved_place(qtbot, ws, qsettings, tmp_path) -> None:
    w1 = _window(qtbot, ws, qsettings, tmp_path)
    w1.show()
    qtbot.waitExposed(w1)
    w1.add_panel("late", "Late", QLabel("late"))
    w1.dock("late").setFloating(True)
    w1.close()
    w2 = _window(qtbot, ws, qsettings, tmp_path)
    w2.show()
    qtbot.waitExposed(w2)
    w2.add_panel("late", "Late", QLabel("late"))
    assert w2.dock("late").isFloating()
    w2.close()


def test_close_asks_panels_and_shuts_the_engine_down(qtbot, ws, qsettings, tmp_path) -> None:
    w = _window(qtbot, ws, qsettings, tmp_path)
    refusing = _Panel(False)
    w.add_panel("ea", "EA", refusing)
    w.engine = _Engine()
    w.show()
    assert not w.close()
    assert refusing.asked == 1 and w.engine.shut_down == 0
    refusing.answer = True
    assert w.close()
    assert w.engine.shut_down == 1


def test_log_panel_shows_a_record_from_a_worker_thread(qtbot, ws, qsettings, tmp_path) -> None:
    w = _window(qtbot, ws, qsettings, tmp_path)
    w.show()
    marker = "hello from the worker thread 7f3a"
    t = threading.Thread(
        target=lambda: logging.getLogger("fota_studio.test").warning(marker), name="worker"
    )
    t.start()
    t.join()
    qtbot.waitUntil(lambda: marker in w.log_panel.text(), timeout=5000)
    w.log_panel.set_min_level(logging.ERROR)
    assert marker not in w.log_panel.text()
    w.log_panel.set_min_level(logging.INFO)
    w.log_panel.search_edit.setText("7f3a")
    assert w.log_panel.text().strip().endswith(marker)
    w.log_panel.search_edit.setText("no such text anywhere")
    assert w.log_panel.text() == ""


def test_log_panel_autoscrolls_only_at_the_bottom(qtbot) -> None:
    tap = LogTap()
    panel = LogPanel(tap)
    qtbot.addWidget(panel)
    panel.resize(600, 200)
    panel.show()
    logger = logging.getLogger("fota_studio.test.autoscroll")
    logger.addHandler(tap)
    try:
        for i in range(300):
            logger.warning("line %d", i)
        panel.drain()
        bar = panel.view.verticalScrollBar()
        assert bar.maximum() > 0 and bar.value() == bar.maximum()
        bar.setValue(0)  # the user reads old lines
        logger.warning("one more")
        panel.drain()
        assert bar.value() == 0
        bar.setValue(bar.maximum())
        logger.warning("and another")
        panel.drain()
        assert bar.value() == bar.maximum()
        assert panel.text().endswith("and another")
    finally:
        logger.removeHandler(tap)


def test_open_another_workspace_reopens_panels(qtbot, ws, qsettings, tmp_path) -> None:
    w = _window(qtbot, ws, qsettings, tmp_path)
    other = tmp_path / "other-ws"
    w.ask_workspace_dir = lambda: other
    seen: list[Workspace] = []
    w.workspace_changed.connect(seen.append)
    w.open_workspace_action.trigger()
    assert len(seen) == 1 and w.ws is seen[0]
    assert w.ws.root == other
    assert w.windowTitle() == f"FOTA Studio — {other}"
    assert w.repository_panel.store.ws is w.ws
    assert w.repository_panel.model.rowCount() == len(DEMO_REPOSITORIES)
    assert load_settings(tmp_path / "settings.json").ui.recent_workspaces[0] == str(other)
    recent = [a.text() for a in w.recent_menu.actions()]
    assert str(other) not in recent  # the current one is not offered
    w.ws.close()


def test_settings_and_about_dialogs(qtbot, ws, qsettings, tmp_path) -> None:
    w = _window(qtbot, ws, qsettings, tmp_path)
    dlg = w.open_settings()
    dlg.operator_timeout.setValue(90)
    dlg.accept()
    assert load_settings(tmp_path / "settings.json").approval.operator_timeout_s == 90.0
    about = w.show_about()
    assert isinstance(about, AboutDialog)
    assert any(name == "udsoncan" for name, _ in about.rows())
    about.close()


class _FlashingPanel(QLabel):
    """A panel that says it flashes an ECU until told to stop (the window's contract)."""

    def __init__(self, flashing: str) -> None:
        super().__init__("flashing")
        self.flashing = flashing
        self.stops: list[str] = []

    def running_flash(self) -> str:
        return self.flashing

    def stop_flash(self, reason: str = "") -> None:
        self.stops.append(reason)


def _flashing_window(  # type: ignore[no-untyped-def]
    qtbot, ws, qsettings, tmp_path, flashing: str = "VCU 3.2.1 of Unit #1001"
) -> tuple[MainWindow, _FlashingPanel]:
    """The window with a Flash panel that says it flashes `flashing` ("": nothing)."""
    w = _window(qtbot, ws, qsettings, tmp_path)
    panel = _FlashingPanel(flashing)
    w.add_panel("flash", "Flash", panel)
    return w, panel


def test_quit_during_a_flash_asks_and_stops_it_at_a_safe_point(
    qtbot, ws, qsettings, tmp_path
) -> None:
    w, panel = _flashing_window(qtbot, ws, qsettings, tmp_path)
    w.engine = _Engine()
    asked: list[str] = []
    answer = [False]
    w.confirm = lambda title, text: asked.append(f"{title}: {text}") or answer[0]
    w.show()
    quit_action = next(a for a in w.file_menu.actions() if a.text() == "&Quit")
    assert quit_action.shortcut().toString() == "Ctrl+Q"
    quit_action.trigger()  # "No": the window stays, the flash goes on
    assert w.isVisible() and panel.stops == [] and w.engine.shut_down == 0
    assert "VCU 3.2.1 of Unit #1001 is being flashed. Quit anyway?" in asked[0]
    assert "bootloader" in asked[0]
    answer[0] = True
    assert w.close()
    assert panel.stops == ["stopped by the user to quit"] and w.engine.shut_down == 1


def test_no_question_when_nothing_is_flashed(qtbot, ws, qsettings, tmp_path) -> None:
    w, _panel = _flashing_window(qtbot, ws, qsettings, tmp_path, flashing="")
    w.confirm = lambda title, text: pytest.fail("asked although nothing is flashed")
    w.show()
    assert w.close()


def test_workspace_switch_during_a_flash_asks_then_waits_for_the_stop(
    qtbot, ws, qsettings, tmp_path
) -> None:
    w, panel = _flashing_window(qtbot, ws, qsettings, tmp_path)
    asked: list[str] = []
    w.confirm = lambda title, text: asked.append(text) or True
    w.show()
    other = tmp_path / "other-ws"
    assert not w.open_workspace(other)  # asked, stopping: not switched yet
    assert asked and panel.stops == [f"stopped by the user to open the workspace {other}"]
    assert w.ws is ws
    panel.flashing = ""  # the flash reached its safe point and ended
    qtbot.waitUntil(lambda: w.ws is not ws, timeout=5_000)
    assert Path(w.ws.root) == other.resolve() or Path(w.ws.root) == other
    w.ws.close()


def test_f1_opens_the_bundled_manual_inside_the_app(qtbot, ws, qsettings, tmp_path) -> None:
    from PySide6.QtGui import QKeySequence

    from fota_studio.core.resources import manual_path

    w = _window(qtbot, ws, qsettings, tmp_path)
    w.show()
    manual = next(a for a in w.help_menu.actions() if a.text() == "User &manual")
    assert manual.shortcut() == QKeySequence(QKeySequence.StandardKey.HelpContents)
    manual.trigger()
    viewer = w.help_viewer
    assert viewer is not None and viewer.isVisible()
    first_heading = next(
        line.lstrip("# ").strip()
        for line in manual_path().read_text(encoding="utf-8").splitlines()
        if line.startswith("# ")
    )
    assert first_heading in viewer.text()
    viewer.find_edit.setText("workspace")
    assert viewer.find_next(backward=False)
    viewer.close()


def test_reset_layout_puts_every_dock_back(qtbot, ws, qsettings, tmp_path) -> None:
    w = _window(qtbot, ws, qsettings, tmp_path)
    w.add_panel("extra", "Extra", QLabel("x"), area=Qt.DockWidgetArea.RightDockWidgetArea)
    w.show()
    qtbot.waitExposed(w)
    w.dock("log").hide()
    w.dock("extra").hide()
    w.removeDockWidget(w.dock("repository"))
    w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, w.dock("repository"))
    w.dock("repository").show()
    assert w.goto_menu is None  # no Window menu without panel shortcuts: reset from the View
    w.set_panel_shortcuts(["repository", "log"])
    reset = next(a for a in w.goto_menu.actions() if a.text() == "&Reset layout")
    reset.trigger()
    assert w.dock("log").isVisible()
    assert w.dock("extra").isVisible()
    assert w.dockWidgetArea(w.dock("repository")) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert w.dockWidgetArea(w.dock("extra")) == Qt.DockWidgetArea.RightDockWidgetArea


def test_technician_view_shows_one_panel_and_gives_the_workbench_back(
    qtbot, ws, qsettings, tmp_path
) -> None:
    w = _window(qtbot, ws, qsettings, tmp_path)
    assert not w.technician_action.isEnabled()
    w.add_panel("technician", "Technician", QLabel("guided"))
    w.show()
    qtbot.waitExposed(w)
    assert w.technician_action.isEnabled()
    w.technician_action.trigger()
    assert w.technician_view_on()
    assert w.dock("technician").isVisible()
    assert not w.dock("repository").isVisible() and not w.dock("log").isVisible()
    w.close()  # the saved layout is the workbench's, not the technician page
    w2 = _window(qtbot, ws, qsettings, tmp_path)
    w2.add_panel("technician", "Technician", QLabel("guided"))
    w2.show()
    qtbot.waitExposed(w2)
    assert w2.dock("repository").isVisible() and not w2.technician_view_on()
    w2.set_technician_view(True)
    w2.set_technician_view(False)
    assert w2.dock("repository").isVisible() and w2.dock("log").isVisible()


class _BusyEngine(_Engine):
    """An engine whose CAN1 worker runs a job no panel owns (an update request's flash)."""

    def channels(self) -> list[str]:
        return ["CAN1"]

    def channel_busy(self, name: str) -> bool:
        return name == "CAN1"


def test_quit_while_a_request_job_runs_asks_too(qtbot, ws, qsettings, tmp_path) -> None:
    w = _window(qtbot, ws, qsettings, tmp_path)
    w.engine = _BusyEngine()
    asked: list[str] = []
    answer = [False]
    w.confirm = lambda title, text: asked.append(text) or answer[0]
    w.show()
    assert not w.close() and "A job is running on CAN1" in asked[0]
    answer[0] = True
    assert w.close() and w.engine.shut_down == 1
