"""Themes: light, dark, and "system" following the OS colour scheme (and its changes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from fota_studio.ui.main_window import apply_theme, current_look, effective_theme


def _window_lightness(app: QApplication) -> int:
    return app.palette().color(QPalette.ColorRole.Window).lightness()


@pytest.fixture
def app(qapp: QApplication) -> Iterator[QApplication]:
    yield qapp
    apply_theme(qapp, "system", Qt.ColorScheme.Light)  # leave the platform look for others


def test_light_and_dark(app) -> None:
    assert apply_theme(app, "dark") == "dark"
    assert _window_lightness(app) < 128 and app.style().name().lower() == "fusion"
    assert apply_theme(app, "light") == "light"
    assert _window_lightness(app) >= 128


def test_system_follows_the_os_scheme(app) -> None:
    default_style = app.style().name()
    assert apply_theme(app, "system", Qt.ColorScheme.Dark) == "dark"
    assert _window_lightness(app) < 128
    assert apply_theme(app, "system", Qt.ColorScheme.Light) == "light"
    assert _window_lightness(app) >= 128
    assert app.style().name() == default_style  # the platform's own style when light
    assert effective_theme(app, "dark", Qt.ColorScheme.Light) == "dark"  # explicit wins


def test_system_tracks_color_scheme_changes(app) -> None:
    apply_theme(app, "system", Qt.ColorScheme.Light)
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # what Qt sends on a switch
    assert current_look(app) == "dark" and _window_lightness(app) < 128
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert current_look(app) == "light"
    # An explicit choice is kept when the OS switches.
    apply_theme(app, "light")
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert current_look(app) == "light"


def test_main_window_applies_a_changed_theme(qtbot, app, workspace_dir, tmp_path) -> None:
    from dataclasses import replace

    from PySide6.QtCore import QSettings

    from fota_studio.infra.workspace import Workspace
    from fota_studio.ui.main_window import MainWindow

    ws = Workspace.open(workspace_dir)
    try:
        qsettings = QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)
        w = MainWindow(ws, qsettings=qsettings, settings_path=tmp_path / "s.json")
        qtbot.addWidget(w)
        w.update_settings(replace(w.settings, ui=replace(w.settings.ui, theme="dark")))
        assert current_look(app) == "dark"
        w.close()
    finally:
        ws.close()


def test_plots_follow_the_theme(qtbot, app) -> None:
    """Plots take the palette's colours (no black plot in the light theme) and re-colour when
    the theme changes at run time."""
    from fota_studio.ui.widgets.plots import ThemedPlotWidget

    apply_theme(app, "light")
    plot = ThemedPlotWidget(title="bus load %")
    plot.setLabel("left", "Throughput", units="B/s")
    plot.addLegend()
    plot.apply_palette()
    qtbot.addWidget(plot)

    def background_lightness() -> int:
        return plot.backgroundBrush().color().lightness()

    def axis_lightness() -> int:
        return plot.getPlotItem().getAxis("left").textPen().color().lightness()

    assert background_lightness() >= 200 and axis_lightness() < 100
    apply_theme(app, "dark")  # Qt posts the palette change to every widget
    qtbot.waitUntil(lambda: background_lightness() < 80, timeout=2000)
    assert axis_lightness() > 150
    assert "bus load %" in plot.getPlotItem().titleLabel.text
