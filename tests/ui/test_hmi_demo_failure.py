"""The demo's machine HMI on a failed update shows the reason the TCU logged (which check
failed and why), read over CANopen before the demo bench goes away (issue 15)."""

from __future__ import annotations

from pathlib import Path

from fota_studio.infra.workspace import Workspace
from fota_studio.protocols import fota_objects as fo
from fota_studio.ui.demo_runner import DemoRunner
from fota_studio.ui.panels.hmi_panel import HmiPanel


def test_a_failed_demo_shows_the_logged_reason_on_the_hmi(qtbot, workspace_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace.open(workspace_dir)
    panel = HmiPanel()
    qtbot.addWidget(panel)
    runner = DemoRunner(ws, hmi_panel=panel, healthy=False)  # the OEM node says unhealthy
    try:
        with qtbot.waitSignal(panel.offer_shown, timeout=20_000):
            runner.run()
        with qtbot.waitSignal(panel.final_shown, timeout=60_000) as final:
            panel.approve_button.click()
        assert final.args == [fo.STATUS_FAILED]
        text = panel.result_label.text()
        # The workflow's own words (which checkpoint, what failed), not only the code's text.
        assert text.startswith("Failed: Checkpoint 2"), text
        assert "unhealthy" in text
        assert panel.headline.text() == "Failed"
        qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    finally:
        runner.shutdown()
        panel.shutdown()
        ws.close()
