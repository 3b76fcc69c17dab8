"""Flash panel: choose machine → ECU → version, see the pre-flight summary, flash and watch it.

The panel shows the reprogramming sequence as a step list (pending, running, done, failed with
the NRC name), a progress bar with bytes, rate and ETA, a pyqtgraph throughput plot (preallocated
arrays, `setData` on a timer) and the live log. Start submits a job to the engine's worker for
the ECU's channel (the image is loaded from the repository on that worker, never on the GUI
thread); Cancel asks the engine to stop at the next safe point. Everything arrives through the
`EngineBridge` signals, so all slots run on the GUI thread and never block.

Before a flash the panel asks the ECU itself (`engine/ecu_info`, a job on the channel's
worker): "Check ECU" shows the version the ECU reports next to the recorded one, the live
precondition values, and what blocks the flash (`engine/preflight`); Start runs the same check
and then asks for confirmation with from → to (downgrade / re-flash / unsigned called out).
A precondition that cannot be checked is shown as a blocking failure in the panel, with the
skippable ones and their reasons. Cancel asks first; a flash that stopped after leaving the
application says the ECU waits in its bootloader and offers "Re-run the flash". `confirm`
(title, text) -> bool is replaceable for tests.

Several ECUs at once: tick ECUs of the machine, each with its version (`flash_plan_rows`), and
"Flash the ticked ECUs together" runs them as ONE plan job (`Engine.submit_plan`: interleaved
on a shared channel, parallel across channels) with one progress row per ECU.

GUI thread only.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QShowEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.ea import EcuDefinition, ElectronicArchitecture, StepKind
from fota_studio.core.errors import FotaError
from fota_studio.core.events import (
    EcuBusy,
    EngineEvent,
    JobFailed,
    JobFinished,
    JobStarted,
    LogLine,
    Progress,
    StepFinished,
    StepStarted,
)
from fota_studio.core.flash_outcome import (
    OUTCOME_LABELS,
    FlashOutcome,
    flash_outcome,
    not_verified_reason,
)
from fota_studio.core.flash_plan import SEGMENT_STEPS, MeasuredFlash
from fota_studio.engine.ecu_info import EcuInfo, submit_read_ecu_info
from fota_studio.engine.engine import JobHandle, PlanHandle, PlanItem
from fota_studio.engine.estimates import measured_flashes
from fota_studio.engine.flash_job import (
    BOOTLOADER_ENTRY_STEP,
    PRECONDITIONS_STEP,
    FlashResult,
    ImageLike,
)
from fota_studio.engine.flash_plan_run import MachineFlashResult
from fota_studio.engine.preflight import Preflight, build_preflight, left_in_bootloader
from fota_studio.ui.panels.flash_choice import (
    FlashView,
    blocking_text,
    connect_bridge,
    fill_ecu_versions,
    fill_ecus,
    fill_machines,
    refill_keeping,
)
from fota_studio.ui.panels.flash_plan_rows import PlanPicker, PlanRows, image_loader
from fota_studio.ui.widgets.flash_widgets import (
    fmt_bytes,
    preflight_html,
    set_bar_state,
    wrapping_label,
)
from fota_studio.ui.widgets.step_frames import StepFramesTree

if TYPE_CHECKING:
    from fota_studio.ui.widgets.plots import ThemedPlotWidget

PLOT_POINTS = 600
PLOT_REFRESH_MS = 200
LOG_MAX_LINES = 5000
#: How often a failure waits for the job's future (set right after its JobFailed event).
FUTURE_POLL_MS = 20

_STATE_COLORS = {
    "pending": QColor("#808080"),
    "running": QColor("#1f6fd1"),
    "done": QColor("#2e8b3a"),
    "failed": QColor("#c62828"),
    "skipped": QColor("#808080"),
}
_STATE_MARKS = {"pending": "○", "running": "▶", "done": "✔", "failed": "✖", "skipped": "–"}


def _button(text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
    """A push button with its tooltip, clicking calls `slot`."""
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button


class FlashPanel(FlashView):
    """Run and watch a flash job; workspace-driven selection or `start_flash` directly."""

    flash_finished = Signal(object)  # FlashResult
    flash_failed = Signal(object)  # JobFailed
    #: A machine-level flash of several ECUs ended (any outcome): its MachineFlashResult.
    plan_finished = Signal(object)
    #: A step (or TransferData block) of the last flash was clicked: open its frames in the
    #: trace (`ui/widgets/step_frames.FramesRequest`; the workbench's TraceLink does it).
    frames_requested = Signal(object)

    def _setup(self) -> None:
        bridge = self.bridge
        self._job: JobHandle | None = None
        #: The running (or last) machine-level flash of several ECUs.
        self._plan: PlanHandle | None = None
        self.last_plan: MachineFlashResult | None = None
        self._ecu: EcuDefinition | None = None
        self._items: dict[str, QListWidgetItem] = {}
        self._segment_index = 0
        self.last_result: FlashResult | None = None
        self.last_failure: JobFailed | None = None
        self._t0 = 0.0
        self._rates = np.zeros(PLOT_POINTS, dtype=float)
        self._times = np.zeros(PLOT_POINTS, dtype=float)
        self._n_points = 0
        self._plot_dirty = False
        self._measured_cache: dict[tuple[str, str, str], list[MeasuredFlash]] = {}
        #: The running ECU read: (job id, selection key, start the flash afterwards).
        self._info_job: tuple[int, tuple[str, str, str], bool] | None = None
        #: What the ECU said for a selection (machine, ECU, version).
        self._info: dict[tuple[str, str, str], EcuInfo] = {}
        self.last_preflight: Preflight | None = None
        self._running_what = ""
        self._build()
        # The ECU reads (pre-flight) end as jobs too: their own slots, before the flash's.
        bridge.job_finished.connect(self._on_bridge_info_finished)
        bridge.job_failed.connect(self._on_bridge_info_failed)
        steps = ("step_started", "step_finished", "progress_changed", "ecu_busy")
        connect_bridge(bridge, self, "job_started", *steps, "job_finished", "job_failed")
        connect_bridge(bridge, self, "log_line", "event_received")
        self._plot_timer = QTimer(self)
        self._plot_timer.setInterval(PLOT_REFRESH_MS)
        self._plot_timer.timeout.connect(self._refresh_plot)
        self._plot_timer.start()
        self.reload()

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        form = QFormLayout()
        form.addRow("Machine", self.machine_combo)
        form.addRow("ECU", self.ecu_combo)
        form.addRow("Version", self.version_combo)
        self.summary = wrapping_label("Choose a machine, an ECU and a version.")
        self.check_button = _button(
            "Check &ECU",
            "Read the installed version and the precondition values from the ECU itself",
            self._on_check_button_clicked,
        )
        self.start_button = _button(
            "Start flash",
            "Flash the chosen version to the chosen ECU of the machine (Ctrl+Shift+F)",
            self._on_start_button_clicked,
        )
        self.cancel_button = _button(
            "Cancel",
            "Stop the flash at the next safe point, between blocks (Ctrl+Shift+X)",
            self._on_cancel_button_clicked,
        )
        self.cancel_button.setEnabled(False)
        self.rerun_button = _button(
            "&Re-run the flash",
            "The ECU waits in its bootloader: flash the same version again to give it a valid "
            "application",
            self._on_start_button_clicked,
        )
        self.rerun_button.hide()
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.rerun_button)
        buttons.addStretch(1)
        #: Several ECUs of the machine as one plan job: tick them (each with its version).
        self.plan_picker = PlanPicker()
        self.plan_button = _button(
            "Flash the ticked ECUs &together",
            "One job for every ticked ECU: interleaved on a shared CAN channel, in parallel "
            "across channels, in the EA's `after` order; one progress row per ECU",
            self._on_plan_button_clicked,
        )
        self.plan_rows = PlanRows()
        self.plan_rows.hide()
        #: Why a flash cannot start or what to do after one failed (never only in the log).
        self.problem_label = wrapping_label()
        self.problem_label.setStyleSheet("color: #c62828; font-weight: bold;")
        self.problem_label.hide()

        self.steps = QListWidget()
        self.steps.setUniformItemSizes(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = wrapping_label("")
        self.status_label = wrapping_label("Idle")
        # The rate plot (pyqtgraph, 0.3 s to import) is built when the panel is first shown
        # or the plot first used: a window that opens on another panel opens that much sooner
        # (issue 21, GUI start).
        self._plot: ThemedPlotWidget | None = None
        self._curve: Any = None
        self._plot_box = QVBoxLayout()
        self._plot_box.setContentsMargins(0, 0, 0, 0)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_MAX_LINES)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addLayout(form)
        lv.addWidget(self.summary)
        lv.addLayout(buttons)
        lv.addWidget(self.problem_label)
        lv.addWidget(QLabel("Several ECUs at once"))
        lv.addWidget(self.plan_picker)
        lv.addWidget(self.plan_button)
        lv.addWidget(self.plan_rows)
        lv.addWidget(QLabel("Sequence"))
        lv.addWidget(self.steps, 1)
        #: After a flash: the record's steps with their bus-log frames; a click opens them in
        #: the trace (issue 19).
        self.record_steps = StepFramesTree()
        self.record_steps.frames_requested.connect(self.frames_requested)
        self.record_steps_label = QLabel("Steps of the last flash (click: frames in the trace)")
        self.record_steps_label.hide()
        self.record_steps.hide()
        lv.addWidget(self.record_steps_label)
        lv.addWidget(self.record_steps, 1)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.addWidget(self.status_label)
        rv.addWidget(self.progress)
        rv.addWidget(self.progress_label)
        rv.addLayout(self._plot_box, 1)
        rv.addWidget(QLabel("Log"))
        rv.addWidget(self.log, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 2)
        outer = QVBoxLayout(self)
        outer.addWidget(split)

    # -- workspace selection ----------------------------------------------------------------

    def set_workspace(self, ws: Any) -> None:
        """Follow File ▸ Open workspace…: machines, ECUs and versions of the new workspace."""
        self.ws = ws
        self._measured_cache.clear()
        self.reload()

    def reload(self) -> None:
        """Refill the machine list from the workspace (no-op without one)."""
        try:
            fill_machines(self.machine_combo, self.ws, keep=False)
        except Exception as exc:  # a broken workspace must not break the panel
            self._append_log("warning", f"cannot list machines: {exc}")
        self._on_machine_combo_changed()

    def _machine(self) -> Any | None:
        serial = self.machine_combo.currentData()
        if self.ws is None or serial is None:
            return None
        from fota_studio.infra.ea_store import EaStore

        return EaStore(self.ws).find_machine(serial)

    def _ea(self) -> ElectronicArchitecture | None:
        machine = self._machine()
        if self.ws is None or machine is None or not machine.ea_name:
            return None
        from fota_studio.infra.ea_store import EaStore

        return EaStore(self.ws).find(machine.ea_name)

    def _on_machine_combo_changed(self, *_: object) -> None:
        ea = self._ea() if self.ws is not None else None
        fill_ecus(self.ecu_combo, ea.ecus if ea is not None else [])
        self._refresh_plan_picker(ea)
        self._on_ecu_combo_changed()

    def _refresh_plan_picker(self, ea: ElectronicArchitecture | None) -> None:
        for problem in self.plan_picker.set_ecus(self.ws, list(ea.ecus) if ea else []):
            self._append_log("warning", problem)

    def versions_changed(self) -> None:
        """A version was imported or retired: refill the version list, keep the choice."""
        refill_keeping(self.version_combo, self._on_ecu_combo_changed)
        self._refresh_plan_picker(self._ea() if self.ws is not None else None)

    def _selected_ecu(self) -> EcuDefinition | None:
        ea = self._ea() if self.ws is not None else None
        name = self.ecu_combo.currentData()
        if ea is None or name is None:
            return None
        for ecu in ea.ecus:
            if ecu.name == name:
                return ecu
        return None

    def _on_ecu_combo_changed(self, *_: object) -> None:
        ecu = self._selected_ecu()
        try:
            fill_ecu_versions(self.version_combo, self.ws, ecu)
        except Exception as exc:
            what = f"{ecu.brand} {ecu.model}" if ecu is not None else "the ECU"
            self._append_log("warning", f"no repository for {what}: {exc}")
        self._update_summary()

    def _on_version_combo_changed(self, *_: object) -> None:
        self._update_summary()

    def _update_summary(self, *_: object) -> None:
        if not self.is_running():
            self._show_problem("")
            self.rerun_button.hide()
        segments = self._refresh_summary()
        ecu = self._selected_ecu()
        if ecu is not None and segments is not None:
            self._show_plan(ecu, segments)

    def _selection_key(self) -> tuple[str, str, str] | None:
        ecu = self._selected_ecu()
        version = self.version_combo.currentData()
        if ecu is None or version is None:
            return None
        return (str(self.machine_combo.currentData() or ""), ecu.name, str(version))

    def _refresh_summary(self) -> int | None:
        """Rewrite the pre-flight summary (`engine/preflight`): the version the ECU reported
        when it was asked (Check ECU / Start), the recorded one, warnings, estimate and
        preconditions; returns the segment count, None when nothing is chosen."""
        ecu = self._selected_ecu()
        key = self._selection_key()
        if ecu is None or key is None or self.ws is None:
            self.summary.setText("Choose a machine, an ECU and a version.")
            self.last_preflight = None
            return None
        try:
            pre = build_preflight(self.ws, key[0], ecu, key[2], self._info.get(key))
        except FotaError as exc:
            self.summary.setText(html.escape(f"{ecu.name} {key[2]}: {exc}"))
            self.last_preflight = None
            return 0
        self.last_preflight = pre
        self.summary.setText(preflight_html(pre))
        return pre.segments

    def _measured(self, ecu: EcuDefinition) -> list[MeasuredFlash]:
        """Measured step times of earlier flashes of this ECU model (cached per ECU model
        until a flash ends: a few small workspace reads, not on every selection change)."""
        key = (ecu.name, ecu.brand, ecu.model)
        if self.ws is None:
            return []
        if key not in self._measured_cache:
            try:
                self._measured_cache[key] = measured_flashes(self.ws, ecu)
            except FotaError:
                self._measured_cache[key] = []
        return self._measured_cache[key]

    # -- running ----------------------------------------------------------------------------

    def _show_plan(self, ecu: EcuDefinition, n_segments: int) -> None:
        """Fill the step list with the sequence the job will run (all pending)."""
        self.steps.clear()
        self._items.clear()
        names = [PRECONDITIONS_STEP]
        if ecu.connection.bootloader_entry is not None:
            names.append(BOOTLOADER_ENTRY_STEP)
        for s in ecu.uds.sequence:
            if s.enabled and s.kind.value not in names:
                names.append(s.kind.value)
        for name in names:
            seg = StepKind(name) in SEGMENT_STEPS if name in StepKind._value2member_map_ else False
            label = name.replace("_", " ")
            if seg and n_segments > 1:
                label += f" (× {n_segments} segments)"
            item = QListWidgetItem()
            item.setData(256, label)
            self._items[name] = item
            self.steps.addItem(item)
            self._set_state(name, "pending")

    def _set_state(self, step: str, state: str, extra: str = "") -> None:
        item = self._items.get(step)
        if item is None:
            item = QListWidgetItem()
            item.setData(256, step.replace("_", " "))
            self._items[step] = item
            self.steps.addItem(item)
        label = item.data(256)
        item.setText(f"{_STATE_MARKS[state]}  {label}" + (f" — {extra}" if extra else ""))
        item.setForeground(QBrush(_STATE_COLORS[state]))
        item.setData(257, state)

    def step_state(self, step: str) -> str:
        """The shown state of a step (pending, running, done, failed) — for tests."""
        item = self._items.get(step)
        return str(item.data(257)) if item is not None else ""

    def step_text(self, step: str) -> str:
        """The shown text of a step."""
        item = self._items.get(step)
        return item.text() if item is not None else ""

    def is_running(self) -> bool:
        """True while a flash job (or plan) of this panel is queued or running."""
        jobs = (self._job, self._plan)
        return any(job is not None and not job.done() for job in jobs)

    # -- several ECUs at once ---------------------------------------------------------------

    def start_plan(self, items: list[PlanItem], *, machine: str = "") -> PlanHandle:
        """Submit ONE plan job for several ECUs (`Engine.submit_plan`) and show a row each."""
        self._reset_view()
        self._plan = self.engine.submit_plan(
            items, machine=machine, workspace=self.ws, by="GUI Flash panel"
        )
        self.last_plan = None
        self.plan_rows.start(self._plan)
        self.plan_rows.show()
        self._set_busy(True)
        names = ", ".join(self._plan.ecus)
        self._running_what = f"{names}" + (f" of {machine}" if machine else "")
        self.status_label.setText(f"Queued: flash {names} as one plan")
        return self._plan

    def _on_plan_button_clicked(self) -> None:
        chosen = self.plan_picker.chosen()
        machine = self._machine()
        if not chosen or self.ws is None or machine is None:
            self._show_problem("Tick the ECUs of the machine to flash together first.")
            return
        if self.is_running() or self._info_job is not None:
            return
        closed = sorted({e.connection.channel for e, _ in chosen} - set(self.engine.channels()))
        if closed:
            self._show_problem(
                f"CAN channel {', '.join(closed)} is not open: connect the adapter first "
                "(CAN ▸ Connect adapters)."
            )
            return
        try:
            questions = [
                build_preflight(self.ws, machine.serial, ecu, version).confirm_text()
                for ecu, version in chosen
            ]
        except FotaError as exc:
            self._show_problem(str(exc))
            return
        if not self.confirm(f"Flash {len(chosen)} ECUs together?", "\n\n".join(questions)):
            self.status_label.setText("Not started (not confirmed)")
            return
        items = [
            PlanItem(
                ecu,
                loader=image_loader(self.ws, machine.serial, ecu.name, version),
                version=version,
                expected_version=version,
            )
            for ecu, version in chosen
        ]
        try:
            self.start_plan(items, machine=machine.serial)
        except FotaError as exc:  # an ECU is being flashed elsewhere / has an open request
            self._append_log("error", str(exc))
            self.status_label.setText(f"Not started: {exc.message}")
            self._show_problem(str(exc))

    def _on_bridge_event_received(self, ev: EngineEvent) -> None:
        plan = self._plan
        if plan is None:
            return
        self.plan_rows.on_event(ev)
        if ev.job_id in {h.job_id for h in plan.ecus.values()} and isinstance(ev, LogLine):
            self._append_log(ev.level, f"{self._ecu_of(plan, ev.job_id)}: {ev.text}")
        if ev.job_id != plan.job_id:
            return
        if isinstance(ev, JobStarted):
            self.status_label.setText(f"Running: {ev.description}")
        elif isinstance(ev, JobFinished) and isinstance(ev.result, MachineFlashResult):
            self.last_plan = ev.result
            rec = ev.result.record
            states = ", ".join(f"{n} {rec.states.get(n, '?')}" for n in rec.order)
            self.status_label.setText(f"Plan ended: {states}")
            set_bar_state(self.progress, "done" if ev.result.ok else "failed")
            self._info.clear()
            self._measured_cache.clear()
            self.plan_finished.emit(ev.result)
            self._done()
        elif isinstance(ev, JobFailed):
            self.status_label.setText(f"Plan failed: {ev.error}")
            self._done()

    @staticmethod
    def _ecu_of(plan: PlanHandle, job_id: int) -> str:
        return next((n for n, h in plan.ecus.items() if h.job_id == job_id), "?")

    def start_flash(
        self,
        ecu: EcuDefinition,
        image: ImageLike | None = None,
        *,
        version: str = "",
        expected_version: str | None = None,
        machine: str = "",
        boot_wait_s: float | None = None,
        loader: Any | None = None,
    ) -> JobHandle:
        """Submit a flash of `image` (or of `loader()` run on the worker) into `ecu`."""
        self._ecu = ecu
        self._reset_view()
        self._show_plan(ecu, len(image.segments) if image is not None else 1)
        # The engine loads the image on its worker (reading/verifying a firmware file never
        # blocks the GUI), stores the record with its bus log and, for a machine of the
        # workspace, the version the ECU now runs.
        self._job = self.engine.submit_flash(
            ecu.connection.channel,
            ecu,
            image,
            loader=loader if image is None else None,
            machine=machine,
            version=version,
            expected_version=expected_version,
            boot_wait_s=boot_wait_s,
            workspace=self.ws,
            by="GUI Flash panel",
        )
        self._set_busy(True)
        self._running_what = f"{ecu.name} {version}".rstrip() + (
            f" of {machine}" if machine else ""
        )
        self.status_label.setText(f"Queued: flash {ecu.name} {version}".rstrip())
        return self._job

    def _show_problem(self, text: str) -> None:
        """Show why a flash cannot start / what to do after it stopped (hidden when "")."""
        self.problem_label.setText(text)
        self.problem_label.setVisible(bool(text))

    def problem_text(self) -> str:
        """The blocking problem shown in the panel ("" when none) — for tests and the view."""
        return "" if self.problem_label.isHidden() else self.problem_label.text()

    def _on_check_button_clicked(self) -> None:
        self._ask_ecu(then_start=False)

    def _on_start_button_clicked(self) -> None:
        self._ask_ecu(then_start=True)

    def _ask_ecu(self, *, then_start: bool) -> None:
        """Pre-flight: read the ECU on its channel's worker; the answer arrives as a
        JobFinished (`_on_bridge_info_finished`), then Start asks and flashes."""
        ecu = self._selected_ecu()
        key = self._selection_key()
        if ecu is None or key is None or self.ws is None:
            self._show_problem("Choose a machine, an ECU and a version first.")
            return
        if self.is_running() or self._info_job is not None:
            return
        if ecu.connection.channel not in self.engine.channels():
            # Name the adapter and why it did not open (e.g. after a remap to socketcan:can0).
            why = self.engine.open_error(ecu.connection.channel)
            self._show_problem(
                f"CAN channel {ecu.connection.channel} is not open"
                + (f": {why}" if why else ": connect the adapter first (CAN ▸ Connect adapters).")
            )
            return
        self._show_problem("")
        try:
            handle = submit_read_ecu_info(self.engine, ecu)
        except FotaError as exc:
            self._show_problem(f"Cannot ask {ecu.name}: {exc}")
            return
        self._info_job = (handle.job_id, key, then_start)
        self.check_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.status_label.setText(f"Asking {ecu.name} for its version and preconditions…")

    def _on_bridge_info_finished(self, ev: JobFinished) -> None:
        if self._info_job is None or self._info_job[0] != ev.job_id:
            return
        _jid, key, then_start = self._info_job
        self._info_job = None
        self.check_button.setEnabled(True)
        self.start_button.setEnabled(True)
        if isinstance(ev.result, EcuInfo):
            self._info[key] = ev.result
        if key != self._selection_key():
            self.status_label.setText("Idle")
            return  # the selection changed meanwhile: the answer is kept for later
        self._refresh_summary()
        pre = self.last_preflight
        if pre is None:
            return
        self.status_label.setText(f"Pre-flight of {pre.ecu}: {pre.from_version} → {pre.target}")
        if pre.blocking:
            self._show_problem(self._blocking_text(pre))
            return
        if then_start:
            self._confirm_and_start(pre)

    def _on_bridge_info_failed(self, ev: JobFailed) -> None:
        if self._info_job is None or self._info_job[0] != ev.job_id:
            return
        self._info_job = None
        self.check_button.setEnabled(True)
        self.start_button.setEnabled(True)
        self.status_label.setText("Pre-flight failed")
        self._show_problem(
            f"Cannot read the ECU: {ev.error}" + (f" — {ev.hint}" if ev.hint else "")
        )

    @staticmethod
    def _blocking_text(pre: Preflight) -> str:
        return blocking_text(
            pre,
            f"{pre.ecu} cannot be flashed now (nothing was sent to its bootloader):",
            "Skippable (the EA allows it):",
            "Make sure the application runs and answers (power, ignition), make the machine "
            "safe, then check again.",
        )

    def _confirm_and_start(self, pre: Preflight) -> None:
        if not self.confirm(f"Flash {pre.ecu}?", pre.confirm_text()):
            self.status_label.setText("Not started (not confirmed)")
            return
        ecu = self._selected_ecu()
        version = pre.target
        machine = self._machine()
        if ecu is None or self.ws is None:
            return
        serial = machine.serial if machine is not None else ""
        load = image_loader(self.ws, serial, ecu.name, version)
        try:
            self.start_flash(
                ecu,
                None,
                version=version,
                expected_version=version,
                machine=machine.serial if machine is not None else "",
                loader=load,
            )
        except FotaError as exc:  # the ECU is being flashed elsewhere / has an open request
            self._append_log("error", str(exc))
            self.status_label.setText(f"Not started: {exc.message}")
            self._show_problem(str(exc))

    def _on_cancel_button_clicked(self) -> None:
        if not self.is_running():
            return
        if self._plan is not None and not self._plan.done():
            what = " / ".join(self._plan.ecus)
        else:
            what = self._ecu.name if self._ecu is not None else "the ECU"
        if not self.confirm(
            "Cancel the flash?",
            f"The flash of {what} stops at the next safe point (between blocks). If its "
            f"application is already erased, {what} stays in its bootloader with no valid "
            "application until the flash is run again.",
        ):
            return
        self.stop_flash()

    def running_flash(self) -> str:
        """What this panel is flashing now ("" when idle): the window's quit/switch guard."""
        return self._running_what if self.is_running() else ""

    def stop_flash(self, reason: str = "cancelled by the user") -> None:
        """Stop the running flash (every ECU of a plan) at the next safe point (no question
        asked)."""
        for job in (self._job, self._plan):
            if job is not None and not job.done():
                self.engine.cancel(job.job_id, reason)
                self.status_label.setText("Cancelling at the next safe point…")

    def _reset_view(self) -> None:
        self.progress.setValue(0)
        set_bar_state(self.progress, "running")
        self.progress_label.setText("")
        self.log.clear()  # a previous run's errors never stay under this run's headline
        self._show_problem("")
        self.rerun_button.hide()
        self._n_points = 0
        self._plot_dirty = True
        self._t0 = time.monotonic()
        self.last_result = None
        self.last_failure = None
        self._show_record_steps(None)

    def _mine(self, job_id: int) -> bool:
        return self._job is not None and self._job.job_id == job_id

    # -- bridge slots (GUI thread) ----------------------------------------------------------

    def _on_bridge_job_started(self, ev: JobStarted) -> None:
        if self._mine(ev.job_id):
            self.status_label.setText(f"Running: {ev.description}")
            self._t0 = time.monotonic()

    def _on_bridge_step_started(self, ev: StepStarted) -> None:
        if self._mine(ev.job_id):
            self._set_state(ev.step, "running", ev.detail)

    def _on_bridge_step_finished(self, ev: StepFinished) -> None:
        if not self._mine(ev.job_id):
            return
        if ev.ok:
            self._set_state(ev.step, "done", ev.detail if len(ev.detail) < 80 else "")
        else:
            extra = f"NRC 0x{ev.nrc:02X} {ev.nrc_name}" if ev.nrc is not None else "failed"
            self._set_state(ev.step, "failed", extra)

    def _on_bridge_progress_changed(self, ev: Progress) -> None:
        if not self._mine(ev.job_id):
            return
        self.progress.setValue(int(ev.fraction * 1000))
        eta = f", ETA {ev.eta_s:.0f} s" if ev.eta_s is not None else ""
        self.progress_label.setText(
            f"{fmt_bytes(ev.bytes_done)} / {fmt_bytes(ev.bytes_total)} — "
            f"{fmt_bytes(ev.rate_bps)}/s{eta}"
        )
        if self._n_points >= PLOT_POINTS:
            self._times[:-1] = self._times[1:]
            self._rates[:-1] = self._rates[1:]
            self._n_points = PLOT_POINTS - 1
        self._times[self._n_points] = time.monotonic() - self._t0
        self._rates[self._n_points] = ev.rate_bps
        self._n_points += 1
        self._plot_dirty = True

    def _on_bridge_ecu_busy(self, ev: EcuBusy) -> None:
        if self._mine(ev.job_id):
            self.status_label.setText(f"ECU busy (response pending) during {ev.step}…")

    def installed_changed(self) -> None:
        """A flash or an update request ended: the "from" version of the summary may differ."""
        self._refresh_summary()

    def _on_bridge_job_finished(self, ev: JobFinished) -> None:
        if not self._mine(ev.job_id):
            return
        result = ev.result
        if isinstance(result, FlashResult):
            self.last_result = result
            self._show_record_steps(result)
            self._measured_cache.clear()  # the next estimate uses this flash's step times
            outcome = flash_outcome(result.record)
            if outcome is FlashOutcome.VERIFIED:
                text = f"Flashed and verified: {result.record.ecu} runs {result.version_after}"
            else:
                text = f"{OUTCOME_LABELS[outcome]}: {not_verified_reason(result.record)}"
            self.status_label.setText(text)
            self.progress.setValue(self.progress.maximum())
            set_bar_state(self.progress, "done")
            self._info.clear()  # the ECU runs something else now: ask it again
            self.flash_finished.emit(result)
        self._done()

    def _on_bridge_job_failed(self, ev: JobFailed) -> None:
        if self._mine(ev.job_id):
            self._finish_failed(ev)

    def _finish_failed(self, ev: JobFailed) -> None:
        # The engine emits JobFailed just before it sets the job's future: wait for the
        # record (a few ms) so the panel can say whether the ECU is in its bootloader.
        if self._job is not None and not self._job.done():
            QTimer.singleShot(FUTURE_POLL_MS, lambda: self._finish_failed(ev))
            return
        self.last_failure = ev
        if self._job is not None and self._job.done():
            with_result = self._job.future.exception() is None
            if with_result and isinstance(self._job.future.result(), FlashResult):
                self.last_result = self._job.future.result()
                self._show_record_steps(self.last_result)
        word = "Cancelled" if ev.cancelled else "Failed"
        self.status_label.setText(f"{word}: {ev.error}")
        set_bar_state(self.progress, "cancelled" if ev.cancelled else "failed")
        self._info.clear()
        record = self.last_result.record if self.last_result is not None else None
        what = ev.hint or ""
        if left_in_bootloader(record):
            name = record.ecu if record is not None else "The ECU"
            what = (
                f"{name} is in its bootloader with no valid application: run the flash again "
                "(Re-run the flash) before the machine is used."
            )
            self.rerun_button.show()
        if what:
            self._show_problem(what)
        self.flash_failed.emit(ev)
        self._done()

    def _show_record_steps(self, result: FlashResult | None) -> None:
        self.record_steps.set_record(None if result is None else result.record)
        self.record_steps.setVisible(result is not None)
        self.record_steps_label.setVisible(result is not None)

    def _on_bridge_log_line(self, ev: LogLine) -> None:
        if self._mine(ev.job_id):
            self._append_log(ev.level, ev.text)

    def _append_log(self, level: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log.appendPlainText(f"{stamp} {level.upper():7} {text}")

    def _set_busy(self, busy: bool) -> None:
        """Start / Check / the plan's button while a flash runs, else Cancel."""
        for button in (self.start_button, self.check_button, self.plan_button):
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _done(self) -> None:
        self._set_busy(False)
        self._running_what = ""
        self._plot_dirty = True

    def showEvent(self, event: QShowEvent) -> None:
        """Qt override: the first show builds the rate plot (see __init__)."""
        self._ensure_plot()
        super().showEvent(event)

    def _ensure_plot(self) -> ThemedPlotWidget:
        """The rate plot, built on first need (see __init__)."""
        if self._plot is not None:
            return self._plot
        import pyqtgraph as pg

        from fota_studio.ui.widgets.plots import ThemedPlotWidget

        plot = ThemedPlotWidget()
        # KiB/s without SI prefixes: pyqtgraph would print "mB/s" for a zero rate.
        plot.setLabel("left", "Rate (KiB/s)")  # short: the plot is low
        plot.setLabel("bottom", "Time (s)")
        for axis in ("left", "bottom"):
            plot.getAxis(axis).enableAutoSIPrefix(False)
        plot.setLimits(xMin=0, yMin=0)
        plot.setYRange(0, 1, padding=0)
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        plot.setMinimumHeight(120)
        self._curve = plot.plot(pen=pg.mkPen("#1f6fd1", width=2))
        plot.apply_palette()  # the axis labels set above too
        self._plot_box.addWidget(plot)
        self._plot = plot
        self._plot_dirty = True
        return plot

    @property
    def plot(self) -> ThemedPlotWidget:
        """The rate plot (KiB/s over the flash's time)."""
        return self._ensure_plot()

    @property
    def curve(self) -> Any:
        """The plot's rate curve (a pyqtgraph PlotDataItem)."""
        self._ensure_plot()
        return self._curve

    def _refresh_plot(self) -> None:
        if self._plot_dirty:
            self._plot_dirty = False
            n = self._n_points
            rates = self._rates[:n] / 1024.0
            self.curve.setData(self._times[:n], rates)
            # Explicit ranges from 0: no auto-range to −400…400 on an empty or flat curve.
            top = float(rates.max()) if n else 0.0
            self.plot.setYRange(0, max(top * 1.1, 1.0), padding=0)
            right = float(self._times[n - 1]) if n else 0.0
            self.plot.setXRange(0, max(right, 1.0), padding=0)
