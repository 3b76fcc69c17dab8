"""ArchitecturePanel with real widgets (offscreen): edit, inline problems, undo, save, import."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLineEdit, QTableWidget

from fota_studio.core.ea import StepKind
from fota_studio.core.ea_format import dump_ea_yaml, load_ea_file
from fota_studio.core.ea_validate import Severity
from fota_studio.demo.catalog import DEMO_EA_NAME
from fota_studio.demo.seed import seed_demo_architecture
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.panels.ea.panel import PROBLEM_SEVERITY_ROLE, ArchitecturePanel
from fota_studio.ui.widgets.hex_edit import HexLineEdit

CLASH = (
    'ecus[2].bootloader.request_id: 0x7E0 is also ecus[0].application.request_id on channel "CAN1"'
)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace.open(tmp_path / "ws")
    seed_demo_architecture(w)
    yield w
    w.close()


@pytest.fixture
def panel(qtbot, ws: Workspace) -> ArchitecturePanel:  # type: ignore[no-untyped-def]
    p = ArchitecturePanel(ws)
    messages: list[tuple[str, str]] = []
    p.show_message = lambda title, text: messages.append((title, text))  # type: ignore[method-assign]
    p.messages = messages  # type: ignore[attr-defined]
    qtbot.addWidget(p)
    p.resize(1100, 800)
    p.show()
    qtbot.waitExposed(p)
    p.select_architecture(DEMO_EA_NAME)
    return p


def _errors(panel: ArchitecturePanel) -> list[str]:
    """The error-level problems (the test workspace has no repositories: those are warnings)."""
    return [str(p) for p in panel.problems() if p.severity is Severity.ERROR]


def _type_hex(qtbot, w: HexLineEdit, text: str) -> None:  # type: ignore[no-untyped-def]
    w.setFocus()
    w.selectAll()
    qtbot.keyClicks(w, text)
    qtbot.keyClick(w, Qt.Key.Key_Return)


def test_clash_shows_at_field_undo_restores(qtbot, panel: ArchitecturePanel) -> None:  # type: ignore[no-untyped-def]
    assert _errors(panel) == []
    w = panel.field_widget("ecus[2].bootloader.request_id")
    assert isinstance(w, HexLineEdit)
    assert w.text() == "0x7E3"
    _type_hex(qtbot, w, "7E0")
    # the field itself carries the problem: red border and the message as tooltip
    assert w.property("has_problem") is True
    assert "is also ecus[0].application.request_id" in w.toolTip()
    assert "border" in w.styleSheet()
    assert _errors(panel) == [CLASH]
    assert panel.problem_list.count() == 4  # + 3 repository warnings
    assert panel.has_unsaved_changes()
    assert panel.undo_stack.count() == 1

    # clicking the problem selects the ECU/tab and focuses the field
    panel.field_widget("ecus[0].name")  # go elsewhere first
    panel.select_architecture(DEMO_EA_NAME, "VCU")
    row = next(
        i
        for i in range(panel.problem_list.count())
        if "is also" in panel.problem_list.item(i).text()
    )
    item = panel.problem_list.item(row)
    rect = panel.problem_list.visualItemRect(item)
    qtbot.mouseClick(panel.problem_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    target = panel.field_widget("ecus[2].bootloader.request_id")
    assert panel.tabs.currentWidget().isAncestorOf(target)
    qtbot.waitUntil(target.hasFocus)

    panel.undo_stack.undo()
    w = panel.field_widget("ecus[2].bootloader.request_id")
    assert w.text() == "0x7E3"
    assert w.property("has_problem") is False
    assert w.toolTip() == ""
    assert _errors(panel) == []
    assert not panel.has_unsaved_changes()
    panel.undo_stack.redo()
    assert _errors(panel) == [CLASH]


def test_save_is_refused_with_errors_and_persists_when_valid(
    qtbot,
    panel: ArchitecturePanel,
    ws: Workspace,  # type: ignore[no-untyped-def]
) -> None:
    w = panel.field_widget("ecus[2].bootloader.request_id")
    _type_hex(qtbot, w, "7E0")
    assert panel.save() is False
    assert "is also" in panel.messages[-1][1]  # type: ignore[attr-defined]
    _type_hex(qtbot, w, "0x7E5")
    name = panel.field_widget("ecus[0].notes")
    assert isinstance(name, QLineEdit)
    name.setFocus()
    qtbot.keyClicks(name, "checked by QA")
    qtbot.keyClick(name, Qt.Key.Key_Return)
    with qtbot.waitSignal(panel.architecture_saved) as sig:
        assert panel.save() is True
    assert sig.args == [DEMO_EA_NAME]
    assert not panel.has_unsaved_changes()
    # a new Workspace object on the same folder, and a new panel on it, see the saved EA
    with Workspace.open(ws.root) as again:
        ea = EaStore(again).get(DEMO_EA_NAME)
        assert ea.ecus[2].connection.bootloader.request_id == 0x7E5
        assert ea.ecus[0].notes == "checked by QA"
        reopened = ArchitecturePanel(again)
        qtbot.addWidget(reopened)
        reopened.select_architecture(DEMO_EA_NAME)
        assert reopened.field_widget("ecus[2].bootloader.request_id").text() == "0x7E5"
        assert not reopened.has_unsaved_changes()
        reopened.close()


def test_sequence_reorder_and_enable_are_undoable(qtbot, panel: ArchitecturePanel) -> None:  # type: ignore[no-untyped-def]
    panel.select_architecture(DEMO_EA_NAME, "VCU")
    table = panel.sequence_table.table
    assert isinstance(table, QTableWidget)
    table.setCurrentCell(7, 1)  # erase
    panel.sequence_table._on_move_clicked(+1)  # after request_download
    ea = panel.current_architecture()
    assert ea is not None
    assert ea.ecus[0].uds.sequence[8].kind == StepKind.ERASE
    assert any('"erase" must come before request_download' in p.message for p in panel.problems())
    table.item(1, 0).setCheckState(Qt.CheckState.Unchecked)  # dtc_off
    assert panel.current_architecture().ecus[0].uds.sequence[1].enabled is False
    panel.undo_stack.undo()
    panel.undo_stack.undo()
    assert _errors(panel) == []
    assert not panel.has_unsaved_changes()


def test_region_table_edit_marks_the_cell(qtbot, panel: ArchitecturePanel) -> None:  # type: ignore[no-untyped-def]
    panel.select_architecture(DEMO_EA_NAME, "HCU")
    panel.region_table._on_add_clicked()
    table = panel.region_table.table
    assert table.rowCount() == 2
    table.item(1, 1).setText("0x20000")  # start inside "application"
    paths = [p.path for p in panel.problems()]
    assert "ecus[1].uds.memory_regions[1].start" in paths
    assert "overlaps" in table.item(1, 1).toolTip()


def test_duplicate_ecu_new_ea_import_export(
    qtbot,
    panel: ArchitecturePanel,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    panel.select_architecture(DEMO_EA_NAME, "BCU")
    panel.duplicate_ecu()
    ea = panel.current_architecture()
    assert [e.name for e in ea.ecus] == ["VCU", "HCU", "BCU", "BCU copy"]
    # the copy has the same IDs: clash problems point at the copy
    assert any(p.path.startswith("ecus[3].application") for p in panel.problems())
    panel.undo_stack.undo()
    assert [e.name for e in panel.current_architecture().ecus] == ["VCU", "HCU", "BCU"]

    panel.ask_text = lambda *a: "Loader-L5"  # type: ignore[method-assign]
    panel.new_architecture()
    assert panel.current_architecture().name == "Loader-L5"
    assert [e.name for e in panel.current_architecture().ecus] == ["ECU1"]
    out = tmp_path / "l5.yaml"
    panel.save_file_dialog = lambda name: str(out)  # type: ignore[method-assign]
    assert panel.export_file() is True
    assert load_ea_file(out).ea.name == "Loader-L5"

    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: X\nbogus: 1\n", encoding="utf-8")
    panel.open_file_dialog = lambda: str(bad)  # type: ignore[method-assign]
    assert panel.import_file() is False
    assert "bad.yaml:3: bogus: unknown key" in panel.messages[-1][1]  # type: ignore[attr-defined]

    text = dump_ea_yaml(panel.current_architecture()).replace("Loader-L5", "Loader-L6")
    good = tmp_path / "l6.yaml"
    good.write_text(text, encoding="utf-8")
    panel.open_file_dialog = lambda: str(good)  # type: ignore[method-assign]
    assert panel.import_file() is True
    assert panel.current_architecture().name == "Loader-L6"

    answers = iter(["cancel", "discard"])
    panel.ask_save_discard_cancel = lambda: next(answers)  # type: ignore[method-assign]
    assert panel.maybe_close() is False
    assert panel.maybe_close() is True


def test_read_only_blocks_edits(qtbot, panel: ArchitecturePanel) -> None:  # type: ignore[no-untyped-def]
    panel.set_read_only(True)
    w = panel.field_widget("ecus[0].application.request_id")
    assert isinstance(w, HexLineEdit) and w.isReadOnly()
    assert not panel.action_save.isEnabled()
    assert panel.action_export.isEnabled()
    panel.duplicate_ecu()
    assert panel.undo_stack.count() == 0
    panel.set_read_only(False)
    assert not w.isReadOnly()


def test_machines_are_listed(qtbot, panel: ArchitecturePanel, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    root = panel.tree.topLevelItem(1)
    assert root.text(0) == "Machines"
    assert [root.child(i).text(0) for i in range(root.childCount())] == [
        f"Unit #1001 ({DEMO_EA_NAME})",
        f"Unit #1002 ({DEMO_EA_NAME})",
    ]
    panel.tree.setCurrentItem(root.child(0))
    assert panel.stack.currentWidget() is panel.machine_page
    assert panel.installed_table.rowCount() == 3
    assert panel.current_architecture() is None
    # A flash or an update request elsewhere changed what runs on the VCU: the page follows.
    EaStore(ws).set_installed("Unit #1001", "VCU", "9.9.9", "flash job 7")
    panel.installed_changed()
    rows = {
        panel.installed_table.item(r, 0).text(): panel.installed_table.item(r, 1).text()
        for r in range(panel.installed_table.rowCount())
    }
    assert rows["VCU"] == "9.9.9"
    assert panel.history_table.item(0, 3).text() == "flash job 7"


def test_hex_line_edit_parses_normalises_and_commits_once(qtbot) -> None:  # type: ignore[no-untyped-def]
    w = HexLineEdit(digits=3, allow_empty=True)
    qtbot.addWidget(w)
    committed: list[object] = []
    w.value_committed.connect(committed.append)
    w.setValue(0x7E0)
    assert w.text() == "0x7E0" and committed == []
    assert HexLineEdit.parse("0x18da11f1") == 0x18DA11F1
    assert HexLineEdit.parse("zz") is None
    w.selectAll()
    qtbot.keyClicks(w, "7e8")
    qtbot.keyClick(w, Qt.Key.Key_Return)
    assert w.text() == "0x7E8" and committed == [0x7E8]
    qtbot.keyClick(w, Qt.Key.Key_Return)  # unchanged: no second commit
    assert committed == [0x7E8]
    w.selectAll()
    qtbot.keyClicks(w, "g")  # the validator refuses non-hex
    assert w.text() == "0x7E8"
    w.clear()
    qtbot.keyClick(w, Qt.Key.Key_Return)
    assert committed == [0x7E8, None]


def test_rename_ea_and_save(qtbot, panel: ArchitecturePanel, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    w = panel.field_widget("name")
    assert isinstance(w, QLineEdit)
    w.setFocus()
    w.selectAll()
    qtbot.keyClicks(w, "Excavator-X210")
    qtbot.keyClick(w, Qt.Key.Key_Return)
    assert panel.tree.topLevelItem(0).child(0).text(0) == "Excavator-X210*"
    assert panel.save() is True
    store = EaStore(ws)
    assert store.names() == ["Excavator-X210"]
    assert store.get_machine("Unit #1001").ea_name == "Excavator-X210"
    assert panel.tree.topLevelItem(0).child(0).text(0) == "Excavator-X210"


def test_read_only_ignores_table_toggles(qtbot, panel: ArchitecturePanel) -> None:  # type: ignore[no-untyped-def]
    panel.select_architecture(DEMO_EA_NAME, "VCU")
    panel.set_read_only(True)
    panel.sequence_table.table.item(1, 0).setCheckState(Qt.CheckState.Unchecked)
    assert panel.undo_stack.count() == 0
    assert panel.current_architecture().ecus[0].uds.sequence[1].enabled is True
    assert panel.sequence_table.table.item(1, 0).checkState() == Qt.CheckState.Checked


def _ecu_item(panel: ArchitecturePanel, ecu_name: str):  # type: ignore[no-untyped-def]
    root = panel.tree.topLevelItem(0)
    ea_item = next(
        root.child(j) for j in range(root.childCount()) if DEMO_EA_NAME in root.child(j).text(0)
    )
    return next(
        ea_item.child(i)
        for i in range(ea_item.childCount())
        if ea_item.child(i).text(0).startswith(ecu_name + " ")
    )


def test_tree_marks_an_invalid_ecu_and_clears_when_fixed(qtbot, panel: ArchitecturePanel) -> None:  # type: ignore[no-untyped-def]
    names = [e.name for e in panel.current_architecture().ecus]  # type: ignore[union-attr]
    bad = names[2]
    assert _ecu_item(panel, bad).data(0, PROBLEM_SEVERITY_ROLE) != "error"
    w = panel.field_widget("ecus[2].bootloader.request_id")
    _type_hex(qtbot, w, "7E0")
    item = _ecu_item(panel, bad)
    assert item.data(0, PROBLEM_SEVERITY_ROLE) == "error"
    assert item.foreground(0).color() == QColor("#b71c1c")
    assert not item.icon(0).isNull()
    # the tooltip lists the problems by ECU name, not by list index
    assert f"{bad}: bootloader.request_id: 0x7E0 is also {names[0]}." in item.toolTip(0)
    assert "ecus[" not in item.toolTip(0)
    assert _ecu_item(panel, names[1]).data(0, PROBLEM_SEVERITY_ROLE) != "error"

    _type_hex(qtbot, panel.field_widget("ecus[2].bootloader.request_id"), "0x7E3")
    item = _ecu_item(panel, bad)
    assert item.data(0, PROBLEM_SEVERITY_ROLE) != "error"
    assert "is also" not in item.toolTip(0)
