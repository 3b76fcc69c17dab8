"""Composition root of the GUI: logging, settings, workspace, QApplication, MainWindow.

Runs on the main thread (which becomes the Qt GUI thread). The CLI imports this module lazily,
so headless commands never load Qt. This is the one place that decides how things are wired:
which settings file, which workspace (seeded with demo data when new), which panels the main
window gets, what the window does when the user opens another workspace, and the first-run
welcome.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from fota_studio import __version__
from fota_studio.core.errors import FotaError
from fota_studio.demo import seed as demo
from fota_studio.infra.logsetup import setup_logging
from fota_studio.infra.mf4_support import warm_up_in_background
from fota_studio.infra.paths import resolve_workspace_dir
from fota_studio.infra.settings import load_settings, save_settings
from fota_studio.infra.workspace import Workspace

_log = logging.getLogger(__name__)


def open_workspace(root: Path) -> Workspace:
    """Open (creating if needed) a workspace and seed the demo data when it is brand new."""
    ws = Workspace.open(root)
    try:
        demo.ensure_demo(ws)
    except BaseException:
        ws.close()
        raise
    return ws


#: Cyclic-GC thresholds while the window is built (gen-0 allocations, gen-1, gen-2 counts).
_START_GC_THRESHOLDS = (100_000, 50, 100)


def run_gui(args: argparse.Namespace) -> int:
    """Open the workspace (seeding demo data when new), show the main window, run Qt."""
    # Start-up makes a few hundred thousand long-lived objects (modules, Qt wrappers, the
    # Repository panel's rows); with the default thresholds the cyclic collector ran ~400 times
    # walking all of them, over half of a big workspace's start-up CPU (issue 21). Freeze what
    # exists and collect rarely until the window is built; configure_gc_for_live_capture then
    # collects once, freezes and sets the thresholds the running app keeps.
    gc.freeze()
    gc.set_threshold(*_START_GC_THRESHOLDS)
    from fota_studio.ui.dialogs.error_dialog import show_error
    from fota_studio.ui.main_window import MainWindow, apply_theme, resource_icon
    from fota_studio.ui.panels.trace_panel import configure_gc_for_live_capture

    # cli.main already configured logging; this is a no-op then, and a safety net otherwise.
    setup_logging(getattr(args, "log_level", "INFO") or "INFO")
    existing = QApplication.instance()
    if existing is None:
        # Fractional scale factors (125 %, 150 %) as they are: the SVG icons stay sharp and
        # the layout does not jump to 200 %. Must be set before the QApplication exists.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("FOTA Studio")
    app.setOrganizationName("FOTA Studio")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(resource_icon("app"))

    settings = load_settings()
    apply_theme(app, settings.ui.theme)
    root = resolve_workspace_dir(getattr(args, "workspace", None))
    try:
        ws = open_workspace(root)
    except FotaError as exc:
        _log.error("cannot open workspace %s: %s", root, exc)
        show_error(None, "Cannot open the workspace", exc)
        return 1
    settings = settings.with_recent_workspace(str(ws.root))
    try:
        save_settings(settings)
    except OSError as exc:
        _log.warning("cannot save settings: %s", exc)

    window = MainWindow(ws, settings=settings, open_workspace=open_workspace)
    from fota_studio.ui.workbench import Workbench

    workbench = Workbench(window, ws)
    window.shutdown_hooks.append(workbench.shutdown)
    # Python Message objects at 20k frames/s make the cyclic GC stall the GUI; see trace_panel.
    configure_gc_for_live_capture()
    window.show()
    # After the first show so the welcome opens centred over the laid-out window.
    QTimer.singleShot(0, workbench.maybe_show_welcome)
    # MF4 support (asammdf, pandas) was left out of the start; load it while the user looks.
    QTimer.singleShot(3000, warm_up_in_background)
    _log.info("FOTA Studio %s started on workspace %s", __version__, ws.root)
    try:
        return int(app.exec())
    finally:
        window.ws.close()
