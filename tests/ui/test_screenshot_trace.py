"""The manual's trace screenshot shows a log file as its own document beside the live capture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage

from tests.ui.doc_tools import load_doc_tool


def _screenshots_module() -> Any:
    return load_doc_tool("screenshots", "docs_tools_screenshots_trace")


def test_trace_shot_has_a_file_document_beside_the_live_capture(qapp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shots = _screenshots_module()
    seen: list[tuple[list[str], str, int]] = []
    take_trace = shots._SHOT_FUNCS["trace"]

    def observed(session: Any, out: Path) -> Path:
        path = take_trace(session, out)  # the real shot; then look at what it grabbed
        trace = session.bench.trace_panel
        doc = trace.current_document()
        seen.append(([d.name for d in trace.documents], doc.name, len(doc.store)))
        return path

    shots._SHOT_FUNCS["trace"] = observed
    paths = shots.take_screenshots(tmp_path, only=["trace"])
    assert paths == [tmp_path / "trace.png"]
    [(names, shown, frames)] = seen
    assert len(names) == 2 and names[0] == "Live"  # the live capture stays open
    assert shown == names[1] and "bus log" in shown  # the shot shows the file's tab
    assert frames > 100  # the demo flash's frames, read from the file
    assert QImage(str(paths[0])).height() > 300
