"""EA panel (issue 13): step parameters typed by the one step schema (hex fingerprint data stays
text), the schema as tooltip, and form fields for the timing facts, erase policy, functional
address byte, protected ranges and routine preconditions — each validated like `ea validate`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from fota_studio.core.ea import StepKind
from fota_studio.core.ea_validate import Severity
from fota_studio.demo.catalog import DEMO_EA_NAME
from fota_studio.demo.seed import seed_demo_architecture
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.panels.ea.codecs import parse_step_params
from fota_studio.ui.panels.ea.panel import ArchitecturePanel


@pytest.fixture
def panel(qtbot, tmp_path: Path) -> Iterator[ArchitecturePanel]:  # type: ignore[no-untyped-def]
    ws = Workspace.open(tmp_path / "ws")
    seed_demo_architecture(ws)
    p = ArchitecturePanel(ws)
    qtbot.addWidget(p)
    p.resize(1100, 800)
    p.show()
    p.select_architecture(DEMO_EA_NAME, "VCU")
    yield p
    ws.close()


def _errors(panel: ArchitecturePanel) -> list[str]:
    return [str(p) for p in panel.problems() if p.severity is Severity.ERROR]


def test_step_params_are_typed_by_the_step_schema() -> None:
    params = parse_step_params(
        StepKind.FINGERPRINT, "did=0xF15A, format=raw, length=9, data=0102 0304"
    )
    assert params == {"did": 0xF15A, "format": "raw", "length": 9, "data": "0102 0304"}
    with pytest.raises(ValueError, match="length"):
        parse_step_params(StepKind.FINGERPRINT, "length=nine")


def test_fingerprint_data_edit_is_accepted_and_tooltip_shows_the_schema(
    qtbot,  # type: ignore[no-untyped-def]
    panel: ArchitecturePanel,
) -> None:
    table = panel.sequence_table.table
    row = next(r for r in range(table.rowCount()) if table.item(r, 1).text() == "fingerprint")
    cell = table.item(row, 2)
    assert "length (1..4093" in cell.toolTip() and "date_tester | ascii | raw" in cell.toolTip()
    cell.setText("did=0xF15A, format=raw, length=9, data=0102")
    ea = panel.current_architecture()
    assert ea is not None
    assert ea.ecus[0].uds.sequence[row].params["data"] == "0102"
    assert _errors(panel) == []


def test_new_settings_have_fields_validated_like_ea_validate(
    qtbot,  # type: ignore[no-untyped-def]
    panel: ArchitecturePanel,
) -> None:
    reset = panel.field_widget("ecus[0].uds.timing.reset_time_ms")
    assert isinstance(reset, QSpinBox)
    reset.setValue(1200)
    assert panel.current_architecture().ecus[0].uds.timing.reset_time_ms == 1200
    erase = panel.field_widget("ecus[0].uds.timing.erase_ms_per_sector")
    assert isinstance(erase, QDoubleSpinBox)
    erase.setValue(250.0)
    assert panel.current_architecture().ecus[0].uds.timing.erase_ms_per_sector == 250.0
    stmin = panel.field_widget("ecus[0].uds.timing.ecu_stmin_ms")
    assert isinstance(stmin, QLineEdit)
    stmin.setText("300")
    stmin.editingFinished.emit()
    assert "ecus[0].uds.timing.ecu_stmin_ms" in [p.path for p in panel.problems()]
    stmin.setText("")
    stmin.editingFinished.emit()
    assert panel.current_architecture().ecus[0].uds.timing.ecu_stmin_ms is None
    policy = panel.field_widget("ecus[0].uds.erase_policy")
    assert isinstance(policy, QComboBox)
    policy.activated.emit(policy.findData("whole_region"))
    assert panel.current_architecture().ecus[0].uds.erase_policy == "whole_region"
    assert panel.field_widget("ecus[0].functional_target_address") is not None
    assert _errors(panel) == []
    # a protected range inside the region under whole_region: the same error as ea validate
    panel.protected_table._on_add_clicked()
    ptable = panel.protected_table.table
    region = panel.current_architecture().ecus[0].uds.memory_regions[0]
    ptable.item(0, 1).setText(f"0x{region.start:X}")
    assert any(
        p.path == "ecus[0].uds.erase_policy" and "would erase protected range" in p.message
        for p in panel.problems()
    )
    # a skippable routine precondition needs its reason
    panel.routine_precondition_table._on_add_clicked()
    rtable = panel.routine_precondition_table.table
    rtable.item(0, 4).setCheckState(Qt.CheckState.Checked)
    assert "ecus[0].uds.routine_preconditions[0].skip_reason" in [p.path for p in panel.problems()]
    rtable.item(0, 5).setText("the bootloader checks it again")
    assert not any("routine_preconditions" in e for e in _errors(panel))
