"""The Software Repository panel on a seeded demo workspace, for the repository GUI tests: the
`ws` and `panel` fixtures, and a file dropped on the panel as a file manager drags it (GUI
thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from fota_studio.infra.workspace import Workspace
from fota_studio.ui.panels.repository_panel import RepositoryPanel
from tests.ui.app_fixtures import seeded_ws_fixture


def repository_fixtures() -> tuple[Any, Any]:
    """The `ws` (a demo workspace) and `panel` fixtures of a test module:
    `ws_fixture, panel_fixture = repository_fixtures()`. The panel is shown and records its
    error boxes in `panel.errors` as (title, error, details) and its warning lists in
    `panel.warnings` as (title, items) instead of showing them."""

    ws_fixture = seeded_ws_fixture()

    @pytest.fixture(name="panel")
    def panel_fixture(qtbot, ws: Workspace) -> RepositoryPanel:  # type: ignore[no-untyped-def]
        p = RepositoryPanel(ws)
        qtbot.addWidget(p)
        p.resize(1000, 600)
        errors: list[tuple[str, object, str | None]] = []
        warnings: list[tuple[str, list[str]]] = []
        p.show_error = lambda title, err, details: errors.append((title, err, details))
        p.show_warnings = lambda title, items: warnings.append((title, items))
        p.errors = errors  # type: ignore[attr-defined]
        p.warnings = warnings  # type: ignore[attr-defined]
        p.show()
        return p

    return ws_fixture, panel_fixture


def drop_file(panel: RepositoryPanel, path: Path) -> None:
    """Drag `path` onto the panel and drop it there."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    # Qt delivers a drop only after an accepted drag-enter, like a real drag does.
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(panel, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(panel, drop)
