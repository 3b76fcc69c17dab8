"""The main window: dockable panels, menus, status bar, and the saved window layout.

Panels are `QDockWidget`s with stable object names (`dock_<key>`) so `QSettings` can restore the
layout; `add_panel()` is the one call other features use to plug a panel in (the View menu lists
every dock). The layout is restored on the first show (after the composition root has added all
panels) and saved on close. `closeEvent` asks every panel with `maybe_close()` first and then
shuts the engine down when one is attached (`window.engine`). File ▸ Open workspace… swaps the
workspace: every panel with `set_workspace(ws)` is re-pointed and `workspace_changed` is
emitted. Each dock wraps its panel in a scroll area so the window fits small screens.
File ▸ Open log file / Recent log files emit `log_file_requested(path)` (the Workbench opens it
in the trace); `set_panel_shortcuts` builds the Window menu (Ctrl+1…9); `apply_theme` sets light,
dark, or "system", which follows the OS colour scheme and its changes.

Safety: quitting (Ctrl+Q), closing the window or switching the workspace while a panel flashes
an ECU (a panel with `running_flash() -> str`) asks first (`confirm(title, text) -> bool`,
replaceable for tests); when confirmed, the flashes stop at the next safe point
(`stop_flash()`), a workspace switch waits for them to end. Window ▸ Reset layout puts every
dock back where the composition root placed it, with the default proportions (the work panels
get the height, the log a strip). The technician view (`set_technician_view`, View ▸
Technician view, Ctrl+T) shows only the panel `technician` over the whole window and gives the
workbench layout back when left. Help ▸ User manual (F1) renders the bundled manual inside the
app (`dialogs/help_viewer.py`). GUI thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QIcon,
    QKeySequence,
    QPalette,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QWidget,
)

from fota_studio.core.errors import FotaError
from fota_studio.core.resources import manual_path, resource_path
from fota_studio.infra.settings import Settings, load_settings, save_settings
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.dialogs.about_dialog import AboutDialog
from fota_studio.ui.dialogs.error_dialog import show_error
from fota_studio.ui.dialogs.help_viewer import HelpViewer
from fota_studio.ui.dialogs.settings_dialog import SettingsDialog
from fota_studio.ui.gui_gc import GuiThreadGc
from fota_studio.ui.panels.log_panel import LogPanel
from fota_studio.ui.panels.repository_panel import RepositoryPanel
from fota_studio.ui.widgets.wheel_guard import guard_wheel

_log = logging.getLogger(__name__)

ICON_DIR = resource_path("icons")
LAYOUT_VERSION = 1  # bump when dock object names change, so an old state is not half-applied
GEOMETRY_KEY = "main_window/geometry"
STATE_KEY = "main_window/state"
DEFAULT_SIZE = (1500, 940)
DEFAULT_LOG_HEIGHT_PX = 170
#: Share of the dock height the bottom area (trace, log) gets by default.
BOTTOM_SHARE = 0.34
#: The panel the technician view shows alone (added by the Workbench).
TECHNICIAN_KEY = "technician"
#: A workspace switch waits this often for stopped flashes to end (GUI timer, never a sleep).
SWITCH_POLL_MS = 100
MANUAL_PATH = manual_path()


def resource_icon(name: str) -> QIcon:
    """An SVG icon from resources/icons (an empty icon when missing)."""
    path = ICON_DIR / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def _dark_palette() -> QPalette:
    pal = QPalette()
    base, window, text = QColor(30, 30, 30), QColor(45, 45, 48), QColor(220, 220, 220)
    pal.setColor(QPalette.ColorRole.Window, window)
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, base)
    pal.setColor(QPalette.ColorRole.AlternateBase, window)
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, window)
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.ToolTipBase, window)
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorRole.Link, QColor(110, 170, 240))
    pal.setColor(QPalette.ColorRole.Highlight, QColor(38, 110, 180))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor(140, 140, 140))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 120))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 120, 120))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(120, 120, 120))
    return pal


def system_prefers_dark(app: QApplication, scheme: Qt.ColorScheme | None = None) -> bool:
    """True when the OS asks for a dark look: Qt's colour-scheme hint (Qt ≥ 6.5), or, when the
    platform does not say (Unknown), a dark default window palette."""
    if scheme is None:
        scheme = app.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    default = getattr(app, "_fota_default_palette", None) or app.palette()
    return bool(default.color(QPalette.ColorRole.Window).lightness() < 128)


def effective_theme(app: QApplication, theme: str, scheme: Qt.ColorScheme | None = None) -> str:
    """The theme actually shown for a setting: "light" or "dark" ("system" asks the OS)."""
    if theme in ("light", "dark"):
        return theme
    return "dark" if system_prefers_dark(app, scheme) else "light"


def apply_theme(app: QApplication, theme: str, scheme: Qt.ColorScheme | None = None) -> str:
    """Apply "system", "light" or "dark"; returns the look applied ("light"/"dark").

    "system" follows the OS: dark (Fusion + dark palette) when Qt's colour-scheme hint says
    dark, otherwise the platform's own style and palette; it keeps following when the OS
    switches (`colorSchemeChanged`) until another theme is chosen. `scheme` overrides the
    hint (the change handler passes the new one; tests use it)."""
    # The theme state rides on the one QApplication (attributes PySide's stubs do not know).
    if not hasattr(app, "_fota_default_palette"):
        app._fota_default_palette = QPalette(app.palette())  # type: ignore[attr-defined]
        app._fota_default_style = app.style().name()  # type: ignore[attr-defined]
        # Connected once per application; the handler reads the current setting each time.
        app.styleHints().colorSchemeChanged.connect(
            lambda new_scheme: _on_color_scheme_changed(app, new_scheme)
        )
    app._fota_theme = theme  # type: ignore[attr-defined]
    look = effective_theme(app, theme, scheme)
    if theme == "system" and look == "light":
        app.setStyle(app._fota_default_style)  # type: ignore[attr-defined]
        app.setPalette(app._fota_default_palette)  # type: ignore[attr-defined]
    else:
        app.setStyle("Fusion")
        app.setPalette(_dark_palette() if look == "dark" else QPalette())
    app._fota_look = look  # type: ignore[attr-defined]
    return look


def current_look(app: QApplication) -> str:
    """The look last applied by `apply_theme` ("light" before any call)."""
    return str(getattr(app, "_fota_look", "light"))


def _on_color_scheme_changed(app: QApplication, scheme: Qt.ColorScheme) -> None:
    if getattr(app, "_fota_theme", "system") == "system":
        apply_theme(app, "system", scheme)


def _fit_to_screen(size: tuple[int, int]) -> tuple[int, int]:
    """The default window size, shrunk to 95 % of the primary screen when that is smaller."""
    screen = QApplication.primaryScreen()
    if screen is None:
        return size
    avail = screen.availableGeometry()
    return min(size[0], int(avail.width() * 0.95)), min(size[1], int(avail.height() * 0.95))


class MainWindow(QMainWindow):
    """FOTA Studio's main window; `add_panel` plugs feature panels in as docks."""

    workspace_changed = Signal(object)  # the new Workspace
    log_file_requested = Signal(str)  # File ▸ Open log file / Recent: the Workbench opens it
    settings_changed = Signal(object)  # the new Settings, after they were saved and applied

    def __init__(
        self,
        ws: Workspace,
        *,
        settings: Settings | None = None,
        settings_path: Path | None = None,
        qsettings: QSettings | None = None,
        open_workspace: Callable[[Path], Workspace] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        # Cyclic GC on this (the GUI) thread only while the window is open (see ui/gui_gc).
        self._gui_gc = GuiThreadGc()
        self.ws = ws
        self.engine = None  # set by the composition root once the engine exists
        # Called on close after the panels' own shutdown and before the engine stops.
        self.shutdown_hooks: list[Callable[[], None]] = []
        self._settings_path = settings_path
        self.settings = settings if settings is not None else load_settings(settings_path)
        self._qsettings = qsettings if qsettings is not None else QSettings()
        self._open_workspace_fn = open_workspace or Workspace.open
        self._docks: dict[str, QDockWidget] = {}
        self._panels: dict[str, QWidget] = {}  # the panel widgets (each dock wraps a scroll area)
        self._layout_restored = False
        self._closing_done = False
        #: The dock layout as the composition root built it (Window ▸ Reset layout).
        self._default_state = QByteArray()
        #: The workbench layout while the technician view is shown.
        self._workbench_state = QByteArray()
        self._technician_on = False
        self._technician_pending = False
        self._pending_switch: Path | None = None
        self.help_viewer: HelpViewer | None = None
        #: Replaceable for tests: ask (title, text) -> True to go on (default: Yes/No box).
        self.confirm: Callable[[str, str], bool] = self._confirm_dialog
        # Replaceable for tests: return a folder / a log file, or None.
        self.ask_workspace_dir: Callable[[], Path | None] = self._ask_workspace_dir_dialog
        self.ask_log_file: Callable[[], Path | None] = self._ask_log_file_dialog

        self.setWindowIcon(resource_icon("app"))
        self.setDockNestingEnabled(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
            | QMainWindow.DockOption.AllowNestedDocks
        )
        self.resize(*_fit_to_screen(DEFAULT_SIZE))
        self._build_menus()
        self._build_status_bar()

        self.repository_panel = RepositoryPanel(ws)
        self.add_panel(
            "repository",
            "Software Repositories",
            self.repository_panel,
            Qt.DockWidgetArea.LeftDockWidgetArea,
        )
        self.log_panel = LogPanel(max_lines=self.settings.ui.log_panel_max_lines)
        self.add_panel("log", "Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._update_title()

    # -- panels ---------------------------------------------------------------------------------

    def add_panel(
        self,
        key: str,
        title: str,
        widget: QWidget,
        area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea,
        tabify_with: str | None = None,
    ) -> QDockWidget:
        """Add `widget` as a dock (object name `dock_<key>`), listed in the View menu."""
        if key in self._docks:
            raise ValueError(f"a panel with key {key!r} already exists")
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{key}")
        # A scroll area lets a dock shrink below its panel's minimum size (scroll bars appear
        # instead): without it the panels' minimum sizes add up to a window larger than a
        # 1366x768 or even a 1920x1080 laptop screen.
        scroll = QScrollArea()
        scroll.setObjectName(f"scroll_{key}")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(widget)
        dock.setWidget(scroll)
        self._panels[key] = widget
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        # A panel added after the layout was restored still gets its saved place (Qt kept a
        # placeholder for the unknown dock name during restoreState); else the given area.
        if not (self._layout_restored and self.restoreDockWidget(dock)):
            self.addDockWidget(area, dock)
            if tabify_with is not None and tabify_with in self._docks:
                self.tabifyDockWidget(self._docks[tabify_with], dock)
        self._docks[key] = dock
        if key == TECHNICIAN_KEY:
            self.technician_action.setEnabled(True)
        toggle = dock.toggleViewAction()
        toggle.setText(title)
        self.view_menu.addAction(toggle)
        return dock

    def dock(self, key: str) -> QDockWidget:
        """The dock of panel `key` (KeyError when unknown)."""
        return self._docks[key]

    def panel(self, key: str) -> QWidget:
        """The widget of panel `key` (KeyError when unknown)."""
        return self._panels[key]

    def panel_keys(self) -> list[str]:
        """Keys of every panel, in the order they were added."""
        return list(self._docks)

    # -- menus ----------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_workspace_action = QAction(resource_icon("open"), "&Open workspace…", self)
        self.open_workspace_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_workspace_action.triggered.connect(self._on_open_workspace_triggered)
        file_menu.addAction(self.open_workspace_action)
        self.recent_menu = file_menu.addMenu("Recent &workspaces")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file_menu.addSeparator()
        self.open_log_action = QAction(resource_icon("open"), "Open &log file…", self)
        self.open_log_action.setShortcut(QKeySequence("Ctrl+L"))
        self.open_log_action.setToolTip("Open a CAN log (BLF, ASC, TRC, MF4…) in the trace")
        self.open_log_action.triggered.connect(self._on_open_log_triggered)
        file_menu.addAction(self.open_log_action)
        self.recent_logs_menu = file_menu.addMenu("Recent lo&g files")
        self.recent_logs_menu.aboutToShow.connect(self._fill_recent_logs_menu)
        self._fill_recent_logs_menu()
        self.file_menu = file_menu
        self._file_quit_separator = file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        # Ctrl+Q everywhere (Cmd+Q on macOS): some platforms have no standard Quit key.
        quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        self.view_menu = bar.addMenu("&View")
        self.technician_action = QAction("&Technician view", self)
        self.technician_action.setCheckable(True)
        self.technician_action.setShortcut(QKeySequence("Ctrl+T"))
        self.technician_action.setToolTip(
            "One guided page to update an ECU, in large type (Ctrl+T); again for the workbench"
        )
        self.technician_action.setEnabled(False)  # until the technician panel is added
        self.technician_action.toggled.connect(self.set_technician_view)
        self.view_menu.addAction(self.technician_action)
        self.view_menu.addSeparator()
        self.reset_layout_action = QAction("&Reset layout", self)
        self.reset_layout_action.setToolTip("Put every panel back in its default place and size")
        self.reset_layout_action.triggered.connect(self.reset_layout)
        # The Window menu (panels on Ctrl+1…9) appears with `set_panel_shortcuts`; the View
        # menu lists only the dock toggles.
        self.goto_menu: QMenu | None = None
        self._goto_actions: list[QAction] = []

        tools_menu = bar.addMenu("&Tools")
        self.tools_menu = tools_menu
        self.settings_action = QAction(resource_icon("settings"), "&Settings…", self)
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.settings_action.triggered.connect(self.open_settings)
        tools_menu.addAction(self.settings_action)

        help_menu = bar.addMenu("&Help")
        self.help_menu = help_menu
        manual = QAction("User &manual", self)
        manual.setShortcut(QKeySequence.StandardKey.HelpContents)
        manual.triggered.connect(self.show_manual)
        help_menu.addAction(manual)
        about = QAction("&About FOTA Studio…", self)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        current = str(self.ws.root)
        entries = [p for p in self.settings.ui.recent_workspaces if p != current]
        for path in entries:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _checked=False, p=path: self.open_workspace(Path(p)))
        self.recent_menu.setEnabled(bool(entries))

    def _fill_recent_logs_menu(self) -> None:
        self.recent_logs_menu.clear()
        entries = list(self.settings.ui.recent_log_files)
        for path in entries:
            act = self.recent_logs_menu.addAction(path)
            act.setEnabled(Path(path).is_file())
            act.triggered.connect(lambda _checked=False, p=path: self.log_file_requested.emit(p))
        self.recent_logs_menu.setEnabled(bool(entries))

    def _ask_log_file_dialog(self) -> Path | None:
        from fota_studio.infra.tracefile import FORMATS

        recent = self.settings.ui.recent_log_files
        folder = str(Path(recent[0]).parent) if recent else ""
        pattern = "CAN logs (" + " ".join(f"*{s}" for s in FORMATS) + ")"
        path, _ = QFileDialog.getOpenFileName(self, "Open CAN log", folder, pattern)
        return Path(path) if path else None

    def _on_open_log_triggered(self) -> None:
        path = self.ask_log_file()
        if path is not None:
            self.log_file_requested.emit(str(path))

    def remember_log_file(self, path: str | Path) -> None:
        """Put `path` first in File ▸ Recent log files (persisted)."""
        self.update_settings(self.settings.with_recent_log_file(str(Path(path).resolve())))

    def set_panel_shortcuts(self, keys: list[str]) -> None:
        """Window menu: Ctrl+1…Ctrl+9 show and raise the panels `keys`, in that order."""
        if self.goto_menu is None:
            self.goto_menu = QMenu("&Window", self)
            self.menuBar().insertMenu(self.tools_menu.menuAction(), self.goto_menu)
            self.goto_menu.addAction(self.reset_layout_action)
            self.goto_menu.addSeparator()
        for action in self._goto_actions:
            self.removeAction(action)
            self.goto_menu.removeAction(action)
        self._goto_actions = []
        for n, key in enumerate([k for k in keys if k in self._docks][:9], start=1):
            dock = self._docks[key]
            action = QAction(dock.windowTitle(), self)
            action.setShortcut(QKeySequence(f"Ctrl+{n}"))
            action.triggered.connect(lambda _checked=False, k=key: self.focus_panel(k))
            self.goto_menu.addAction(action)
            self.addAction(action)  # shortcuts work while the menu is closed
            self._goto_actions.append(action)

    def focus_panel(self, key: str) -> QDockWidget:
        """Show panel `key`, bring its tab to the front and give it the keyboard focus."""
        dock = self._docks[key]
        dock.show()
        dock.raise_()
        self._panels[key].setFocus(Qt.FocusReason.ShortcutFocusReason)
        return dock

    def _build_status_bar(self) -> None:
        self.workspace_label = QLabel()
        self.workspace_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.schema_label = QLabel()
        self.statusBar().addWidget(self.workspace_label, 1)
        self.statusBar().addPermanentWidget(self.schema_label)

    def _update_title(self) -> None:
        self.setWindowTitle(f"FOTA Studio — {self.ws.root}")
        self.workspace_label.setText(f"Workspace: {self.ws.root}")
        self.schema_label.setText(f"schema v{self.ws.schema_version}")

    # -- workspace ------------------------------------------------------------------------------

    def _ask_workspace_dir_dialog(self) -> Path | None:
        path = QFileDialog.getExistingDirectory(
            self, "Open workspace folder", str(self.ws.root.parent)
        )
        return Path(path) if path else None

    def _on_open_workspace_triggered(self) -> None:
        path = self.ask_workspace_dir()
        if path is not None:
            self.open_workspace(path)

    def open_workspace(self, path: Path) -> bool:
        """Switch to the workspace in `path`: panels are re-pointed, the old one is closed."""
        if Path(path).resolve() == Path(self.ws.root).resolve():
            return True
        if not self.running_flashes() and self._engine_busy():
            show_error(
                self,
                "Cannot switch workspace",
                f"A job is running on {', '.join(self._busy_channels())} (an update request).",
                what_to_do="Wait for it to end, or cancel the request, then switch.",
            )
            return False
        if not self.guard_running_flash(f"open the workspace {path}"):
            return False
        if self.running_flashes() or self._engine_busy():
            # Confirmed: the flashes stop at their next safe point; switch once they ended.
            self._pending_switch = Path(path)
            QTimer.singleShot(SWITCH_POLL_MS, self._switch_when_idle)
            self.statusBar().showMessage("Stopping the flash before switching workspace…")
            return False
        if not self._ask_panels_to_close():
            return False
        try:
            new_ws = self._open_workspace_fn(Path(path))
        except FotaError as exc:
            show_error(self, "Cannot open the workspace", exc)
            return False
        old, self.ws = self.ws, new_ws
        for panel in self._panels.values():
            setter = getattr(panel, "set_workspace", None)
            if callable(setter):
                setter(new_ws)
        self.workspace_changed.emit(new_ws)
        old.close()
        self._remember_workspace(new_ws.root)
        self._update_title()
        _log.info("opened workspace %s", new_ws.root)
        return True

    def _switch_when_idle(self) -> None:
        path = self._pending_switch
        if path is None:
            return
        if self.running_flashes() or self._engine_busy():
            QTimer.singleShot(SWITCH_POLL_MS, self._switch_when_idle)
            return
        self._pending_switch = None
        self.open_workspace(path)

    def _remember_workspace(self, root: Path) -> None:
        self.update_settings(self.settings.with_recent_workspace(str(root)))

    # -- settings, about ------------------------------------------------------------------------

    def update_settings(self, settings: Settings) -> None:
        """Store new settings, persist them and apply what changed."""
        old, self.settings = self.settings, settings
        try:
            save_settings(settings, self._settings_path)
        except OSError as exc:
            _log.warning("cannot save settings: %s", exc)
        if old.ui.theme != settings.ui.theme:
            app = QApplication.instance()
            if isinstance(app, QApplication):
                apply_theme(app, settings.ui.theme)
        if old.ui.log_panel_max_lines != settings.ui.log_panel_max_lines:
            self.log_panel.set_max_lines(settings.ui.log_panel_max_lines)
        self._fill_recent_menu()
        self._fill_recent_logs_menu()
        self.settings_changed.emit(settings)

    def open_settings(self) -> SettingsDialog:
        """Open the Settings dialog (non-blocking); OK persists and applies."""
        dlg = SettingsDialog(self.settings, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: self.update_settings(dlg.value()))
        dlg.open()
        return dlg

    def show_about(self) -> AboutDialog:
        """Open the About dialog (non-blocking)."""
        dlg = AboutDialog(self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        return dlg

    def show_manual(self) -> bool:
        """Help ▸ User manual (F1): the bundled manual inside the app (non-modal)."""
        path = MANUAL_PATH
        if not path.is_file():
            show_error(
                self,
                "The user manual is missing",
                f"{path} does not exist.",
                what_to_do="Reinstall FOTA Studio or read docs/USER_MANUAL.md in the sources.",
            )
            return False
        if self.help_viewer is None:
            self.help_viewer = HelpViewer(path, self)
        if self.help_viewer.isVisible():
            self.help_viewer.raise_()  # F1 again brings it to the front
            self.help_viewer.activateWindow()
        self.help_viewer.show()
        return True

    # -- safety guards --------------------------------------------------------------------------

    def _confirm_dialog(self, title: str, text: str) -> bool:
        answer = QMessageBox.warning(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def running_flashes(self) -> list[str]:
        """What the panels are flashing now ("VCU 3.2.1 of Unit #1001"), empty when idle."""
        out: list[str] = []
        for panel in self._panels.values():
            running = getattr(panel, "running_flash", None)
            if callable(running):
                what = running()
                if what:
                    out.append(str(what))
        return out

    def _busy_channels(self) -> list[str]:
        busy = getattr(self.engine, "channel_busy", None)
        channels = getattr(self.engine, "channels", None)
        if not callable(busy) or not callable(channels):
            return []
        return [str(name) for name in channels() if busy(name)]

    def _engine_busy(self) -> bool:
        return bool(self._busy_channels())

    def guard_running_flash(self, action: str) -> bool:
        """Before `action` ("quit", "open the workspace …"): True when no flash runs or the user
        confirmed; then every running flash is asked to stop at its next safe point."""
        flashes = self.running_flashes()
        if not flashes:
            busy = self._busy_channels()
            if not busy or action != "quit":
                return True
            # A job no panel owns (an update request's flash): quitting stops it at its next
            # safe point (Engine.shutdown), so it asks as well.
            return self.confirm(
                "A job is running",
                f"A job is running on {', '.join(busy)} (an update request's flash or an ECU "
                "check). Quit anyway?\n\nIt stops at the next safe point; an ECU that was being "
                "flashed stays in its bootloader until the flash is run again.",
            )
        what = ", ".join(flashes)
        if not self.confirm(
            "A flash is running",
            f"{what} is being flashed. {action[0].upper() + action[1:]} anyway?\n\n"
            "The flash stops at the next safe point (between blocks). If the old software is "
            "already erased, the ECU stays in its bootloader and the machine cannot be used "
            "until the flash is run again.",
        ):
            return False
        for panel in self._panels.values():
            stop = getattr(panel, "stop_flash", None)
            running = getattr(panel, "running_flash", None)
            if callable(stop) and callable(running) and running():
                stop(f"stopped by the user to {action}")
        return True

    # -- layout ---------------------------------------------------------------------------------

    def _saved_state(self) -> QByteArray:
        value = self._qsettings.value(STATE_KEY)
        return value if isinstance(value, QByteArray) else QByteArray()

    def restore_layout(self) -> bool:
        """Restore geometry and dock layout from QSettings; True when a saved layout existed."""
        self._layout_restored = True
        self._default_state = self.saveState(LAYOUT_VERSION)
        geometry = self._qsettings.value(GEOMETRY_KEY)
        ok = False
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            ok = self.restoreGeometry(geometry)
        state = self._saved_state()
        if not state.isEmpty():
            ok = self.restoreState(state, LAYOUT_VERSION) and ok
        else:
            # First start: the log is a strip at the bottom, the work panels get the height.
            # (after the first layout pass: before it, the docks have no size to trade).
            QTimer.singleShot(0, self._default_dock_sizes)
        return ok

    def _default_dock_sizes(self) -> None:
        """The default proportions: the work panels get most of the height, the bottom area
        (trace / log) about a third (at least DEFAULT_LOG_HEIGHT_PX), left 46 % / right 54 %."""
        # With no central widget Qt hands the spare height to the bottom area; resizing the
        # bottom dock alone is ignored, so size one side dock and the bottom one together.
        bottom = next(
            (
                d
                for d in self._docks.values()
                if self._visible_in(d, Qt.DockWidgetArea.BottomDockWidgetArea)
            ),
            None,
        )
        side = next(
            (
                d
                for d in self._docks.values()
                if self._shown(d)
                and self.dockWidgetArea(d)
                in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)
            ),
            None,
        )
        if side is not None and bottom is not None:
            total = bottom.y() + bottom.height() - side.y()
            bottom_px = max(DEFAULT_LOG_HEIGHT_PX, int(total * BOTTOM_SHARE))
            self.resizeDocks(
                [side, bottom], [max(100, total - bottom_px), bottom_px], Qt.Orientation.Vertical
            )
        left = [
            d
            for d in self._docks.values()
            if self._visible_in(d, Qt.DockWidgetArea.LeftDockWidgetArea)
        ]
        right = [
            d
            for d in self._docks.values()
            if self._visible_in(d, Qt.DockWidgetArea.RightDockWidgetArea)
        ]
        if left and right:
            width = self.width()
            self.resizeDocks(
                [left[0], right[0]],
                [int(width * 0.46), int(width * 0.54)],
                Qt.Orientation.Horizontal,
            )

    def reset_layout(self) -> None:
        """Window ▸ Reset layout: every dock back in its default place, shown, docked, with the
        default proportions (leaves the technician view first)."""
        if self._technician_on:
            self.technician_action.setChecked(False)
        if self._default_state.isEmpty():
            return
        for dock in self._docks.values():
            dock.setFloating(False)
        self.restoreState(self._default_state, LAYOUT_VERSION)
        for dock in self._docks.values():
            dock.show()
        for key in ("trace", "repository", "flash"):
            if key in self._docks:
                self._docks[key].raise_()
        QTimer.singleShot(0, self._default_dock_sizes)

    def set_technician_view(self, on: bool) -> None:
        """Show the technician panel alone over the window (on), or the workbench (off)."""
        dock = self._docks.get(TECHNICIAN_KEY)
        if not self._layout_restored:
            # Before the first show the saved layout is not restored yet: apply it then.
            self._technician_pending = on
            self.technician_action.setChecked(on)
            return
        if dock is None or on == self._technician_on:
            self.technician_action.setChecked(self._technician_on)
            return
        self._technician_on = on
        if on:
            self._workbench_state = self.saveState(LAYOUT_VERSION)
            for other in self._docks.values():
                if other is not dock:
                    other.hide()
            dock.setFloating(False)
            dock.setTitleBarWidget(QWidget())  # no dock title: it is the whole page
            dock.show()
            dock.raise_()
            self._panels[TECHNICIAN_KEY].setFocus(Qt.FocusReason.OtherFocusReason)
        else:
            dock.setTitleBarWidget(None)  # type: ignore[arg-type]  # None = Qt's own title bar
            if not self._workbench_state.isEmpty():
                self.restoreState(self._workbench_state, LAYOUT_VERSION)
            else:
                for other in self._docks.values():
                    other.show()
        self.technician_action.setChecked(on)

    def technician_view_on(self) -> bool:
        """True while the technician view is shown."""
        return self._technician_on

    def _visible_in(self, dock: QDockWidget, area: Qt.DockWidgetArea) -> bool:
        return self._shown(dock) and self.dockWidgetArea(dock) == area

    @staticmethod
    def _shown(dock: QDockWidget) -> bool:
        """Docked and on screen: a tab behind another one is "visible" to Qt but not shown."""
        return dock.isVisible() and not dock.isFloating() and not dock.visibleRegion().isEmpty()

    def save_layout(self) -> None:
        """Write geometry and dock layout to QSettings (the workbench layout, also while the
        technician view is shown)."""
        self._qsettings.setValue(GEOMETRY_KEY, self.saveGeometry())
        state = self._workbench_state if self._technician_on else self.saveState(LAYOUT_VERSION)
        self._qsettings.setValue(STATE_KEY, state)
        self._qsettings.sync()

    def showEvent(self, event: QShowEvent) -> None:
        """Restore the saved layout on the first show (all panels are added by then) and guard
        every form field against the scroll wheel (see widgets/wheel_guard)."""
        guard_wheel(self)
        if not self._layout_restored:
            self.restore_layout()
            if self._technician_pending:
                # After the default proportions (queued first by restore_layout).
                QTimer.singleShot(0, lambda: self.set_technician_view(True))
        super().showEvent(event)

    # -- closing --------------------------------------------------------------------------------

    def _ask_panels_to_close(self) -> bool:
        for panel in self._panels.values():
            ask = getattr(panel, "maybe_close", None)
            if callable(ask) and not ask():
                return False
        return True

    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask panels with unsaved changes, stop the engine, save the layout."""
        if self._closing_done:
            event.accept()
            return
        if not self.guard_running_flash("quit"):
            event.ignore()
            return
        if not self._ask_panels_to_close():
            event.ignore()
            return
        self.save_layout()
        # Panels that own buses or threads (simulator, trace captures) stop before the engine.
        for panel in self._panels.values():
            for hook in ("shutdown", "close_all"):
                stop = getattr(panel, hook, None)
                if callable(stop):
                    try:
                        stop()
                    except Exception:  # closing must finish even if a panel misbehaves
                        _log.exception("%s.%s failed", type(panel).__name__, hook)
        for stop_hook in self.shutdown_hooks:
            try:
                stop_hook()
            except Exception:  # closing must finish even if a hook misbehaves
                _log.exception("shutdown hook failed")
        if self.engine is not None:
            try:
                self.engine.shutdown()
            except Exception:  # closing must finish even if the engine misbehaves
                _log.exception("engine shutdown failed")
        task = self.repository_panel.background_task()
        if task is not None:
            # An import writes blob then DB row atomically; waiting keeps the workspace tidy.
            task.wait(5.0)
        self.log_panel.timer.stop()
        self._gui_gc.stop()
        self._closing_done = True
        event.accept()
