"""Issue 21: the Repository panel reads a fixed number of queries per screen, whatever the number
of repositories, and asks (naming the size) before a binary export much larger than the data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fota_studio.core import firmware
from fota_studio.core.firmware import FirmwareImage
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.panels.repository_panel import RepositoryPanel


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    w = Workspace.open(workspace_dir)
    yield w
    w.close()


def _grow(store: RepositoryStore, start: int, stop: int) -> None:
    items = []
    for i in range(start, stop):
        text = firmware.to_hex(FirmwareImage.from_segments([(0x2000 + i, bytes([i & 0xFF]) * 8)]))
        for version in ("1.0.0", "2.0.0"):
            items.append(
                store.prepare_import(
                    "Acme",
                    f"M{i:03d}",
                    version,
                    text,
                    source_name=f"{i}.hex",
                    create_repository=True,
                )
            )
    store.commit_imports(items)


def _selects(ws: Workspace, action: Any) -> int:
    seen: list[str] = []
    ws._conn.set_trace_callback(seen.append)  # SQLite's own statement trace
    try:
        action()
    finally:
        ws._conn.set_trace_callback(None)
    return len([s for s in seen if s.lstrip().upper().startswith("SELECT")])


def test_panel_reload_and_clicks_cost_fixed_queries(qtbot: Any, ws: Workspace) -> None:
    store = RepositoryStore(ws)
    panel = RepositoryPanel(ws)
    qtbot.addWidget(panel)
    counts = []
    for start, stop in ((0, 5), (5, 40)):
        _grow(store, start, stop)
        counts.append(_selects(ws, panel.refresh))
        assert panel.model.rowCount() == stop
    assert counts[0] == counts[1] <= 3
    # Clicking a repository shows its versions from the loaded model: no query at all.
    assert _selects(ws, lambda: panel.select("Acme", "M017")) == 0
    text = panel.details_text()
    assert "Acme / M017" in text and "2 (0 retired)" in text and "2.0.0" in text


def test_binary_export_much_larger_than_the_data_is_asked_with_its_size(
    qtbot: Any, ws: Workspace, tmp_path: Path
) -> None:
    store = RepositoryStore(ws)
    store.create_repository("Acme", "Sparse")
    image = FirmwareImage.from_segments([(0x0800_0000, b"\x01" * 2048), (0x0A00_0000, b"\x02")])
    store.import_bytes("Acme", "Sparse", "1.0.0", firmware.to_hex(image), source_name="s.hex")
    panel = RepositoryPanel(ws)
    qtbot.addWidget(panel)
    asked: list[str] = []
    answer = {"yes": False}

    def confirm(title: str, text: str) -> bool:
        asked.append(text)
        return answer["yes"]

    panel.confirm = confirm
    v = store.get_version("Acme", "Sparse", "1.0.0")
    target = tmp_path / "sparse.bin"
    assert panel.start_export(v, "bin", target) is None
    assert len(asked) == 1 and "32.00 MiB" in asked[0] and "33,554,433 bytes" in asked[0]
    assert not target.exists()
    answer["yes"] = True
    task = panel.start_export(v, "bin", target)
    assert task is not None
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=30_000)
    assert target.stat().st_size == image.span
    # HEX keeps the gaps out: no question.
    assert panel.start_export(v, "hex", tmp_path / "s.hex") is not None
    assert len(asked) == 2
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=30_000)
    assert (tmp_path / "s.hex").is_file()


def test_big_workspace_starts_collapsed_with_the_selection_open(qtbot: Any, ws: Workspace) -> None:
    """Above EXPAND_ALL_MAX_REPOSITORIES the tree opens collapsed (expanding 4,000 repositories
    cost half a second of each start), and a version selected or searched still shows."""
    from fota_studio.ui.panels.repository_panel import EXPAND_ALL_MAX_REPOSITORIES

    store = RepositoryStore(ws)
    _grow(store, 0, 3)
    small = RepositoryPanel(ws)
    qtbot.addWidget(small)
    tops = [small.proxy.index(r, 0) for r in range(small.proxy.rowCount())]
    assert tops and all(small.tree.isExpanded(i) for i in tops)  # a small workspace: all open

    _grow(store, 3, EXPAND_ALL_MAX_REPOSITORIES + 5)
    panel = RepositoryPanel(ws)
    qtbot.addWidget(panel)
    assert panel.proxy.rowCount() == EXPAND_ALL_MAX_REPOSITORIES + 5
    assert panel.select("Acme", "M150", "2.0.0")
    expanded = [
        panel.proxy.index(r, 0).data()
        for r in range(panel.proxy.rowCount())
        if panel.tree.isExpanded(panel.proxy.index(r, 0))
    ]
    assert "M150" in " ".join(str(e) for e in expanded)
    assert len(expanded) <= 2  # the first repository's default selection, and M150
    current = panel.tree.currentIndex()
    assert current.isValid() and current.parent().isValid()
