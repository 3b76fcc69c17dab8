"""Flash panel under pytest-qt: a simulated flash runs to the end, each step is shown, a failure
shows its NRC name, and the flash never runs on the GUI thread (the GUI thread's own CPU time
between two ticks of a 10 ms timer stays far below the flash's duration; wall-clock stalls are
measured in bench/, not asserted here)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from fota_studio.engine.engine import Engine
from fota_studio.engine.records import list_flash_records, load_buslog, load_flash_record
from fota_studio.infra.workspace import Workspace
from fota_studio.sim.faults import Fault
from fota_studio.sim.uds_ecu import SimEcu
from fota_studio.ui.engine_bridge import EngineBridge
from fota_studio.ui.panels.flash_panel import FlashPanel
from tests.fakes.flash import (
    fast_ecu,
    fast_sim_options,
    make_image,
    memory_matches,
    sim_ecu,
    transfer_first_frames,
)
from tests.ui import flash_rig


class _GapMeter:
    """The longest stretch of GUI-thread CPU time between two 10 ms timer ticks.

    CPU time of the GUI thread itself (`time.thread_time`, read on that thread), not wall time:
    a loaded CI machine or the flash worker holding the GIL delays the ticks without the GUI
    doing anything; what must never happen is the GUI thread itself working for long.
    """

    def __init__(self) -> None:
        self.last = time.thread_time()
        self.worst = 0.0
        self.ticks = 0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.thread_time()
        self.worst = max(self.worst, now - self.last)
        self.last = now
        self.ticks += 1

    def start(self) -> None:
        self.last = time.thread_time()
        self.timer.start()


#: The demo workspace (a fixture, found by its name); `engine` is tests/ui/conftest.py's.
ws = flash_rig.ws


@pytest.fixture
def panel(qtbot, engine: Engine) -> FlashPanel:  # type: ignore[no-untyped-def]
    """A Flash panel without a workspace: the tests hand it their images."""
    flash_panel = FlashPanel(engine, EngineBridge(engine))
    qtbot.addWidget(flash_panel)
    return flash_panel


@pytest.fixture
def demo_panel(qtbot, engine: Engine, ws: Workspace) -> FlashPanel:  # type: ignore[no-untyped-def]
    """A Flash panel on the demo workspace (machine → ECU → version from its stores)."""
    flash_panel = FlashPanel(engine, EngineBridge(engine), ws)
    qtbot.addWidget(flash_panel)
    return flash_panel


@pytest.fixture
def vcu(can_channel: str, tmp_path: Path) -> Iterator[SimEcu]:
    """The fast demo VCU simulated on the test's channel (its definition: `vcu.ecu`)."""
    with sim_ecu(fast_ecu("VCU"), can_channel, tmp_path, options=fast_sim_options()) as sim:
        yield sim


def test_flash_panel_runs_a_simulated_flash(
    qtbot,
    engine: Engine,
    vcu: SimEcu,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    image = make_image("7.1.0", (0x6000, 0x2000))
    ws = Workspace.open(tmp_path / "ws")  # an empty one: the panel flashes a given image
    panel = FlashPanel(engine, EngineBridge(engine), ws)
    qtbot.addWidget(panel)
    panel.show()
    meter = _GapMeter()
    meter.start()
    with qtbot.waitSignal(panel.flash_finished, timeout=60_000):
        panel.start_flash(
            vcu.ecu, image, version="7.1.0", expected_version="7.1.0", boot_wait_s=1.5
        )
    meter.timer.stop()
    assert memory_matches(vcu, image)
    for step in (
        "preconditions",
        "bootloader_entry",
        "extended_session",
        "security_level_2",
        "erase",
        "transfer_data",
        "check",
        "reset",
        "read_version",
    ):
        assert panel.step_state(step) == "done", (step, panel.step_text(step))
    assert panel.progress.value() == 1000
    assert "7.1.0" in panel.status_label.text()
    # A clean flash logs no warning or error (the log shows the job's LogLine events).
    logged = panel.log.toPlainText()
    assert " ERROR " not in logged and " WARNING " not in logged, logged
    # A flash done on the GUI thread would starve the timer for the whole run; instead it kept
    # ticking, and no stretch of GUI work came near the flash's length (0.5 s leaves room for a
    # loaded CI machine).
    assert meter.ticks >= 10, meter.ticks
    assert meter.worst < 0.5, f"GUI thread busy {meter.worst * 1000:.0f} ms between two ticks"
    # The record and its bus log are in the workspace; the bus echoes Tx frames and each one
    # is in the log once (one TransferData first frame per block).
    row = list_flash_records(ws)[0]
    assert row.result == "success" and row.version == "7.1.0"
    record = load_flash_record(ws, row.id)
    blf = load_buslog(ws, record)
    assert blf is not None
    first_frames = transfer_first_frames(blf, tmp_path)
    # One exchange record may summarise a run of plain blocks (`blocks`, issue 21).
    assert len(first_frames) == sum(e.blocks for e in record.exchanges if e.step == "transfer_data")
    ws.close()


def test_flash_panel_shows_nrc_name_of_a_failure(qtbot, panel: FlashPanel, vcu: SimEcu) -> None:  # type: ignore[no-untyped-def]
    vcu.inject(Fault(step="request_download", kind="nrc", arg=0x70))
    with qtbot.waitSignal(panel.flash_failed, timeout=60_000) as blocker:
        panel.start_flash(vcu.ecu, make_image("7.2.0", (0x800,)), version="7.2.0", boot_wait_s=1.5)
    ev = blocker.args[0]
    assert ev.step == "request_download"
    assert panel.step_state("request_download") == "failed"
    assert "uploadDownloadNotAccepted" in panel.step_text("request_download")
    assert panel.step_state("erase") == "done"
    assert panel.step_state("check") == "pending"
    assert "Failed" in panel.status_label.text()
    assert panel.start_button.isEnabled()
    # Issue 15: the bar turns red (not blue at 100 %), the rate axis stays 0…, in KiB/s without
    # "mB/s", and the failure (after the erase) says the ECU waits in its bootloader.
    assert panel.progress.property("state") == "failed"
    assert "c62828" in panel.progress.styleSheet()
    panel._refresh_plot()
    assert panel.plot.viewRange()[1][0] >= 0
    assert "mB" not in panel.plot.getAxis("left").labelString()
    assert "bootloader" in panel.problem_text()
    assert not panel.rerun_button.isHidden()


def test_a_long_failure_message_never_widens_the_panel(qtbot, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QScrollArea

    panel = FlashPanel(engine, EngineBridge(engine))
    scroll = QScrollArea()  # as in its dock: the window's scroll area
    scroll.setWidgetResizable(True)
    scroll.setWidget(panel)
    qtbot.addWidget(scroll)
    scroll.resize(700, 600)
    scroll.show()
    qtbot.wait(20)
    before = panel.minimumSizeHint().width()
    long_text = "transfer_data: " + "the adapter reported an error on /dev/ttyACM0 " * 40
    panel.status_label.setText(long_text)
    panel._show_problem(long_text.replace(" ", "_"))  # even without spaces to wrap at
    qtbot.wait(50)
    assert panel.minimumSizeHint().width() <= before
    assert scroll.horizontalScrollBar().maximum() == 0
    scroll.close()


def test_start_reads_the_ecu_and_asks_with_from_to(
    qtbot,
    demo_panel: FlashPanel,
    can_channel: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """The ECU runs 3.2.1 although the workspace recorded 3.1.0: Start reads the ECU, asks
    "3.2.1 → 3.2.0 … DOWNGRADE", and a No sends nothing to the bootloader."""
    panel = demo_panel
    asked: list[str] = []
    panel.confirm = lambda title, text: asked.append(text) and False
    panel.ecu_combo.setCurrentIndex(panel.ecu_combo.findData("VCU"))
    panel.version_combo.setCurrentIndex(panel.version_combo.findData("3.2.0"))
    opts = fast_sim_options()
    with sim_ecu(
        fast_ecu("VCU"), can_channel, tmp_path, options=opts, initial_version="3.2.1"
    ) as sim:
        panel.start_button.click()
        qtbot.waitUntil(lambda: bool(asked), timeout=20_000)
        assert sim.state().mode == "application"
    assert "3.2.1 → 3.2.0" in asked[0] and "DOWNGRADE" in asked[0]
    assert "recorded 3.1.0" in asked[0]
    assert "ECU reports <b>3.2.1</b>" in panel.summary.text()
    assert not panel.is_running() and panel.start_button.isEnabled()
    assert "not confirmed" in panel.status_label.text()


def test_silent_application_is_a_blocking_failure_in_the_panel(
    qtbot,
    ws: Workspace,
    demo_panel: FlashPanel,  # type: ignore[no-untyped-def]
) -> None:
    """Nobody answers: the panel shows a blocking failure (not a log warning), lists the
    skippable precondition with its reason, and never asks to start."""
    from fota_studio.infra.ea_store import EaStore

    store = EaStore(ws)
    ea = store.get(store.names()[0])
    vcu = ea.ecu("VCU")
    vcu.uds.preconditions[1].skippable = True
    vcu.uds.preconditions[1].skip_reason = "bench supply fixed at 13.2 V"
    vcu.uds.p2_timeout_ms = 200
    store.save(ea)
    panel = demo_panel
    asked: list[str] = []
    panel.confirm = lambda title, text: asked.append(text) or True
    panel.ecu_combo.setCurrentIndex(panel.ecu_combo.findData("VCU"))
    panel.start_button.click()
    qtbot.waitUntil(lambda: bool(panel.problem_text()), timeout=20_000)
    text = panel.problem_text()
    assert "cannot be flashed now" in text
    assert "Machine stationary cannot be checked: the application does not answer" in text
    assert "Supply voltage: bench supply fixed at 13.2 V" in text
    assert asked == [] and not panel.is_running()


def test_cancel_asks_first_and_a_stop_mid_flash_offers_the_re_run(
    qtbot, panel: FlashPanel, vcu: SimEcu
) -> None:  # type: ignore[no-untyped-def]
    answers = [False, True]
    asked: list[str] = []
    panel.confirm = lambda title, text: asked.append(title) or answers.pop(0)
    vcu.options.programming_ms_per_kib = 20.0
    panel.start_flash(
        vcu.ecu, make_image("7.3.0", (0x6000, 0x6000)), version="7.3.0", boot_wait_s=1.5
    )
    qtbot.waitUntil(lambda: panel.step_state("transfer_data") == "running", timeout=30_000)
    panel.cancel_button.click()  # "No": the flash goes on
    assert panel.is_running() and asked == ["Cancel the flash?"]
    with qtbot.waitSignal(panel.flash_failed, timeout=60_000) as blocker:
        panel.cancel_button.click()  # "Yes"
    assert blocker.args[0].cancelled
    assert panel.progress.property("state") == "cancelled"
    assert "bootloader" in panel.problem_text()
    assert not panel.rerun_button.isHidden()


def test_version_choice_defaults_to_the_newest_release(
    qtbot, ws: Workspace, demo_panel: FlashPanel
) -> None:  # type: ignore[no-untyped-def]
    """The BCU's repository has 2.2.0-rc.1 as its newest version: it is listed and marked,
    but the panel (and the Create update request dialog) preselect 2.1.0, the newest release."""
    from fota_studio.ui.panels.requests_panel import CreateRequestDialog

    panel = demo_panel
    panel.ecu_combo.setCurrentIndex(panel.ecu_combo.findData("BCU"))
    items = [panel.version_combo.itemText(i) for i in range(panel.version_combo.count())]
    assert items == ["2.2.0-rc.1 (pre-release)", "2.1.0", "2.0.0"]
    assert panel.version_combo.currentData() == "2.1.0"
    assert "→ <b>2.1.0</b>" in panel.summary.text()
    panel.version_combo.setCurrentIndex(0)  # a deliberate choice still works
    assert panel.version_combo.currentData() == "2.2.0-rc.1"

    dlg = CreateRequestDialog(ws)
    qtbot.addWidget(dlg)
    dlg.ecu_combo.setCurrentIndex(dlg.ecu_combo.findData("BCU"))
    assert dlg.version_combo.currentData() == "2.1.0"
    assert dlg.version_combo.itemText(0) == "2.2.0-rc.1 (pre-release)"


def test_start_refuses_an_unsigned_version_when_the_workspace_requires_signatures(
    qtbot,
    ws: Workspace,
    demo_panel: FlashPanel,
    vcu: SimEcu,  # type: ignore[no-untyped-def]
) -> None:
    """Under the signed-packages policy the pre-flight refuses the unsigned demo version: the
    panel says why (not only the log), nothing is asked to confirm and the ECU never hears a
    programming request."""
    from fota_studio.infra.repository import RepositoryStore

    RepositoryStore(ws).require_signed_packages = True
    panel = demo_panel
    asked: list[str] = []
    panel.confirm = lambda title, text: asked.append(text) or True
    panel.ecu_combo.setCurrentIndex(panel.ecu_combo.findData("VCU"))
    assert panel.version_combo.currentData() == "3.2.1"
    panel.start_button.click()
    qtbot.waitUntil(lambda: bool(panel.problem_text()), timeout=20_000)
    assert vcu.state().mode == "application"  # nothing was sent to it
    assert "requires packages signed by a trusted key" in panel.problem_text()
    assert asked == [] and not panel.is_running()
    assert panel.start_button.isEnabled()
    assert list_flash_records(ws) == []


def test_a_success_after_a_failure_shows_no_old_error(
    qtbot, panel: FlashPanel, vcu: SimEcu
) -> None:  # type: ignore[no-untyped-def]
    """Issue 15: the previous run's ERROR no longer stays in the log under a success headline,
    and the red bar / bootloader notice of the failure go away with the new run."""
    ecu, image = vcu.ecu, make_image("7.4.0", (0x800,))
    vcu.inject(Fault(step="request_download", kind="nrc", arg=0x70))
    with qtbot.waitSignal(panel.flash_failed, timeout=60_000):
        panel.start_flash(ecu, image, version="7.4.0", expected_version="7.4.0")
    assert " ERROR " in panel.log.toPlainText() or panel.problem_text()
    with qtbot.waitSignal(panel.flash_finished, timeout=60_000):
        panel.start_flash(ecu, image, version="7.4.0", expected_version="7.4.0")
    assert panel.status_label.text().startswith("Flashed and verified")
    assert " ERROR " not in panel.log.toPlainText()
    assert panel.progress.property("state") == "done"
    assert panel.problem_text() == "" and panel.rerun_button.isHidden()
