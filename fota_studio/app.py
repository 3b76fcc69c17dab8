"""Composition root of the GUI: logging, settings, workspace, Engine, QApplication, MainWindow.

Runs on the main thread (which becomes the Qt GUI thread). The CLI imports this module lazily,
so headless commands never load Qt.
"""

from __future__ import annotations

import argparse
import sys

from PySide6.QtWidgets import QApplication

from fota_studio import __version__
from fota_studio.infra import demo
from fota_studio.infra.paths import resolve_workspace_dir
from fota_studio.infra.workspace import Workspace


def run_gui(args: argparse.Namespace) -> int:
    """Open the workspace (seeding demo data when new), show the main window, run Qt."""
    from fota_studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("FOTA Studio")
    app.setOrganizationName("FOTA Studio")
    app.setApplicationVersion(__version__)
    ws = Workspace.open(resolve_workspace_dir(getattr(args, "workspace", None)))
    demo.ensure_demo(ws)
    window = MainWindow(ws)
    window.show()
    try:
        return int(app.exec())
    finally:
        ws.close()
