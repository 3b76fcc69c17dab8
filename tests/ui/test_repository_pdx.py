"""The Repository panel's PDX / ODX-F branch (issue 19 part 1) under pytest-qt: a dropped
container is imported with its own identity and blocks, its EA profile changes are offered in
the diff dialog and only the accepted ones are saved; a wrong checksum is refused naming the
block; a loose container is imported leniently only after the engineer agrees, with what was
ignored listed."""

from __future__ import annotations

from types import ModuleType

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from fota_studio.core.pdx import ProfileChange
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.ui.dialogs.ea_diff_dialog import EaDiffDialog
from fota_studio.ui.panels.repository_panel import IMAGE_FILE_FILTER
from tests.ui.doc_tools import load_doc_tool
from tests.ui.repository_fixtures import drop_file, repository_fixtures


def _builder() -> ModuleType:
    return load_doc_tool("pdx_example", "docs_tools_pdx_example", shared=True)


ws_fixture, panel_fixture = repository_fixtures()


def test_dropped_pdx_imports_and_offers_ea_changes(qtbot, panel, ws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert "*.pdx" in IMAGE_FILE_FILTER and "*.odx-f" in IMAGE_FILE_FILTER
    pdx = _builder()
    path = pdx.write_pdx(tmp_path / "hcu-1.7.0.pdx", "1.7.0")
    panel.ask_import = lambda req: pytest.fail("a container needs no form")
    offered: list[tuple[str, str, list[ProfileChange]]] = []

    def review(ea: str, ecu: str, changes: list[ProfileChange], name: str) -> list[ProfileChange]:
        offered.append((ea, ecu, changes))
        return [c for c in changes if c.key == "timing.ecu_max_block_length"]

    panel.review_profile_changes = review
    with qtbot.waitSignal(panel.ea_profile_changed, timeout=20_000) as changed:
        drop_file(panel, path)
    assert not panel.errors, panel.errors
    v = RepositoryStore(ws).get_version(pdx.BRAND, pdx.MODEL, "1.7.0")
    assert v.segments == tuple((a, len(d)) for a, d in pdx.example_blocks("1.7.0"))
    assert panel.selected_version().version == "1.7.0"
    (ea_name, ecu_name, changes) = offered[0]
    assert ecu_name == "HCU" and changes_keys(changes) >= {"timing.ecu_max_block_length"}
    assert changed.args == [ea_name]
    hcu = EaStore(ws).get(ea_name).ecu("HCU")
    assert hcu.uds.timing.ecu_max_block_length == 1026


def changes_keys(changes: list[ProfileChange]) -> set[str]:
    """The keys of a list of changes."""
    return {c.key for c in changes}


def test_wrong_checksum_refused_naming_the_block(qtbot, panel, ws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pdx = _builder()
    path = pdx.write_pdx(tmp_path / "bad.pdx", "1.8.0", wrong_checksum_block=0)
    with qtbot.waitSignal(panel.import_failed, timeout=20_000):
        panel.import_file(path)
    assert panel.errors and "data block DB_App" in str(panel.errors[0][1])
    assert not any(v.version == "1.8.0" for v in RepositoryStore(ws).all_versions())


def test_loose_pdx_asks_then_imports_leniently_with_report(qtbot, panel, ws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pdx = _builder()
    good = pdx.write_pdx(tmp_path / "ok.pdx", "1.9.0")
    loose = pdx.loosen(good, tmp_path / "loose.pdx")
    questions: list[str] = []
    panel.confirm = lambda title, text: questions.append(text) or True
    panel.review_profile_changes = lambda ea, ecu, changes, name: []
    with qtbot.waitSignal(panel.import_finished, timeout=20_000):
        panel.import_file(loose)
    assert questions and "RAW-BINARY" in questions[0] and "leniently" in questions[0]
    assert panel.warnings, "the ignored problems are listed"
    title, items = panel.warnings[-1]
    assert "leniently" in title
    assert any("DB_Cal" in line for line in items)
    assert RepositoryStore(ws).get_version(pdx.BRAND, pdx.MODEL, "1.9.0").segments == (
        (pdx.example_blocks("1.9.0")[0][0], len(pdx.example_blocks("1.9.0")[0][1])),
    )


def test_ea_diff_dialog_applies_only_checked_changes(qtbot) -> None:  # type: ignore[no-untyped-def]
    changes = [
        ProfileChange("data_format", "dataFormatIdentifier", "0x11", "0x00", "FLASHDATA FD", 0),
        ProfileChange("check.checksum", "check checksum", "crc16_ccitt", "crc32", "CS", "crc32"),
    ]
    dlg = EaDiffDialog("Excavator", "HCU", changes, container="x.pdx")
    qtbot.addWidget(dlg)
    assert dlg.table.rowCount() == 2 and dlg.table.item(0, 1).text() == "0x11"
    assert dlg.apply_button.text() == "Apply 2 checked changes"
    dlg.set_checked("data_format", False)
    assert dlg.apply_button.text() == "Apply 1 checked change"
    assert dlg.accepted_changes() == []  # nothing before the engineer applies
    qtbot.mouseClick(dlg.apply_button, Qt.MouseButton.LeftButton)
    assert dlg.result() == QDialog.DialogCode.Accepted
    assert [c.key for c in dlg.accepted_changes()] == ["check.checksum"]
    dlg.set_checked("check.checksum", False)
    assert not dlg.apply_button.isEnabled()
    keep = EaDiffDialog("Excavator", "HCU", changes)
    qtbot.addWidget(keep)
    qtbot.mouseClick(keep.keep_button, Qt.MouseButton.LeftButton)
    assert keep.accepted_changes() == []
