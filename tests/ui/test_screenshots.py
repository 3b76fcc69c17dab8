"""The manual's screenshot script renders the real app offscreen: one shot, small, a real PNG."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from PySide6.QtGui import QImage

from tests.ui.doc_tools import load_doc_tool


def _screenshots_module() -> ModuleType:
    return load_doc_tool("screenshots", "docs_tools_screenshots")


def test_one_grab_of_the_real_main_window(qapp, tmp_path: Path) -> None:
    shots = _screenshots_module()
    paths = shots.take_screenshots(tmp_path, only=["main_window"])
    assert paths == [tmp_path / "main_window.png"]
    image = QImage(str(paths[0]))
    assert (image.width(), image.height()) == shots.WINDOW_SIZE
    assert paths[0].stat().st_size <= 150 * 1024
    # Not a blank grab: a real window has many colours (menus, panels, text).
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, 200, 7)}
    assert len(colours) > 8


def test_unknown_shot_is_refused(qapp, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown shot"):
        _screenshots_module().take_screenshots(tmp_path, only=["nope"])
