"""Flash panel: a flash whose version is not read says "Flashed, NOT verified" (never
"verified"), and the pre-flight summary says how the estimate was made and that the flash
will not be verified."""

from __future__ import annotations

from pathlib import Path

from fota_studio.core.ea import StepKind
from fota_studio.core.flash_outcome import OUTCOME_LABELS, FlashOutcome
from fota_studio.engine.engine import Engine
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.engine_bridge import EngineBridge
from fota_studio.ui.panels.flash_panel import FlashPanel
from tests.fakes.flash import fast_ecu, fast_sim_options, make_image, sim_ecu


def test_flash_without_version_read_is_shown_as_not_verified(
    qtbot,  # type: ignore[no-untyped-def]
    engine: Engine,
    can_channel: str,
    tmp_path: Path,
) -> None:
    ecu = fast_ecu("VCU")
    for step in ecu.uds.sequence:
        if step.kind == StepKind.READ_VERSION:
            step.enabled = False
    image = make_image("7.2.0", (0x800,))
    bridge = EngineBridge(engine)
    ws = Workspace.open(tmp_path / "ws")
    panel = FlashPanel(engine, bridge, ws)
    qtbot.addWidget(panel)
    with (
        sim_ecu(ecu, can_channel, tmp_path, options=fast_sim_options()),
        qtbot.waitSignal(panel.flash_finished, timeout=60_000),
    ):
        panel.start_flash(ecu, image, version="7.2.0", expected_version="7.2.0")
    text = panel.status_label.text()
    assert text.startswith(OUTCOME_LABELS[FlashOutcome.NOT_VERIFIED])
    assert "Flashed and verified" not in text and "not read" in text
    assert panel.last_result is not None
    assert panel.last_result.record.verification == "not_verified"
    ws.close()
