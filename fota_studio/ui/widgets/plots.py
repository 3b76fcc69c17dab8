"""pyqtgraph plots that follow the application's light/dark palette.

pyqtgraph draws black plots with grey axes whatever the Qt palette says, which looks broken in
the light theme. `ThemedPlotWidget` takes its background from the palette's Base colour and its
axes, labels and title from Text, and follows a theme change (palette change event) at run
time.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtGui import QPalette

_AXES = ("left", "bottom", "right", "top")


class ThemedPlotWidget(pg.PlotWidget):  # type: ignore[misc]  # pyqtgraph is untyped (Any)
    """A `pg.PlotWidget` in the colours of the current palette (see module docstring)."""

    _ready = False  # palette events arrive during pg.PlotWidget's own __init__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._title_text = str(kwargs.get("title") or "")
        self._ready = True
        self.apply_palette()

    def apply_palette(self) -> None:
        """Re-colour background, axes, labels and title from the widget's palette."""
        pal = self.palette()
        base = pal.color(QPalette.ColorRole.Base)
        text = pal.color(QPalette.ColorRole.Text)
        self.setBackground(base)
        item = self.getPlotItem()
        for name in _AXES:
            axis = item.getAxis(name)
            axis.setPen(text)
            axis.setTextPen(text)
            label = axis.label.toPlainText() if axis.label is not None else ""
            if label:
                axis.setLabel(axis.labelText, units=axis.labelUnits, color=text.name())
        if self._title_text:
            item.setTitle(self._title_text, color=text.name())
        legend = item.legend
        if legend is not None:
            legend.setLabelTextColor(text)

    def setTitle(self, title: str | None = None, **kwargs: Any) -> None:
        """Remember the title so a theme change can re-colour it."""
        self._title_text = title or ""
        self.getPlotItem().setTitle(
            title, **{"color": self.palette().color(QPalette.ColorRole.Text).name(), **kwargs}
        )

    def changeEvent(self, event: QEvent) -> None:
        """Follow the application's theme (Qt sends PaletteChange to every widget)."""
        super().changeEvent(event)
        if self._ready and event.type() in (
            QEvent.Type.PaletteChange,
            QEvent.Type.ApplicationPaletteChange,
        ):
            self.apply_palette()
