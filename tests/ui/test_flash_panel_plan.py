"""Flash panel, several ECUs at once (issue 18 §4): tick two ECUs of the machine, each with its
version, flash them as ONE plan job (`Engine.submit_plan`) and watch one row per ECU reach its
result; one failing ECU shows its reason on its own row while the other is verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.flash_record import PLAN_FAILED, PLAN_VERIFIED
from fota_studio.engine.engine import Engine
from fota_studio.engine.flash_plan_run import MachineFlashResult
from fota_studio.infra.workspace import Workspace
from fota_studio.sim.faults import Fault
from fota_studio.ui.engine_bridge import EngineBridge
from fota_studio.ui.panels.flash_panel import FlashPanel
from tests.fakes.flash import fast_sim_options, sim_ecu
from tests.ui import flash_rig
from tests.ui.flash_rig import fast_demo_ecu

VERSIONS = {"VCU": "3.2.1", "HCU": "1.5.0"}


#: The demo workspace (a fixture, found by its name); `engine` is tests/ui/conftest.py's.
ws = flash_rig.ws


@pytest.mark.parametrize("fail_hcu", [False, True], ids=["both-verified", "hcu-fails"])
def test_two_ecus_as_one_plan_show_one_row_each_until_their_result(
    qtbot, engine: Engine, ws: Workspace, can_channel: str, tmp_path: Path, fail_hcu: bool
) -> None:  # type: ignore[no-untyped-def]
    vcu, hcu = fast_demo_ecu(ws, "VCU"), fast_demo_ecu(ws, "HCU")
    opts = fast_sim_options()
    with (
        sim_ecu(vcu, can_channel, tmp_path / "vcu", options=opts, initial_version="3.1.0"),
        sim_ecu(hcu, can_channel, tmp_path / "hcu", options=opts, initial_version="1.4.2") as h,
    ):
        if fail_hcu:
            h.inject(Fault(step="erase", kind="fail"))
        panel = FlashPanel(engine, EngineBridge(engine), ws)
        qtbot.addWidget(panel)
        asked: list[str] = []
        panel.confirm = lambda title, text: asked.append(f"{title}\n{text}") or True
        picker = panel.plan_picker
        assert set(picker.checks) == {"VCU", "HCU", "BCU"}
        for name, version in VERSIONS.items():
            picker.checks[name].setChecked(True)
            combo = picker.versions[name]
            combo.setCurrentIndex(combo.findData(version))
        with qtbot.waitSignal(panel.plan_finished, timeout=180_000) as ended:
            panel.plan_button.click()
            assert panel.is_running() and not panel.start_button.isEnabled()
            assert panel.plan_rows.ecus() == ["VCU", "HCU"]
            assert panel.plan_rows.text_of("HCU") == "waiting"
    result = ended.args[0]
    assert isinstance(result, MachineFlashResult)
    assert len(asked) == 1 and "3.1.0 → 3.2.1" in asked[0] and "1.4.2 → 1.5.0" in asked[0]
    rows = panel.plan_rows
    assert rows.state_of("VCU") == PLAN_VERIFIED
    assert rows.text_of("VCU") == "verified: runs 3.2.1"
    vcu_bar = rows.bar_of("VCU")
    assert vcu_bar is not None and vcu_bar.value() == vcu_bar.maximum()
    if fail_hcu:
        assert rows.state_of("HCU") == PLAN_FAILED
        assert "erase" in rows.text_of("HCU") and "0x72" in rows.text_of("HCU")
        assert result.record.states == {"VCU": PLAN_VERIFIED, "HCU": PLAN_FAILED}
    else:
        assert rows.text_of("HCU") == "verified: runs 1.5.0"
        assert result.ok
    assert not panel.is_running() and panel.plan_button.isEnabled()
    assert "Plan ended" in panel.status_label.text()
