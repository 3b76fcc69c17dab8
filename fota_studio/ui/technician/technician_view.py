"""The technician view: one guided page to update an ECU of a machine, in large type.

Three stages on one page (a `QStackedWidget`): **choose** (machine → ECU → version, then
"Check the ECU": the version read FROM the ECU next to the workspace's record, downgrade /
re-flash / unsigned called out, the estimated time, the preconditions with their live values,
and what blocks the update), **flashing** (a large progress bar, the current step in words,
time left, Cancel that asks first) and **result** (what happened and what to do next; after a
stop that left the ECU in its bootloader, "Re-run the flash"). Start asks for confirmation
with from → to. The ECU is read and flashed by engine jobs on the channel's worker
(`engine/ecu_info`, `Engine.submit_flash` with the one resolver on the worker); events arrive
through the `EngineBridge`, so nothing here blocks. Every action has a mnemonic (Alt+…) and
the primary button of each stage is the default (Enter). `confirm(title, text) -> bool` is
replaceable for tests. GUI thread only.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.errors import FotaError
from fota_studio.core.events import (
    JobFailed,
    JobFinished,
    JobStarted,
    Progress,
    StepFinished,
    StepStarted,
)
from fota_studio.core.flash_plan import SEGMENT_STEPS
from fota_studio.engine.ecu_info import EcuInfo, submit_read_ecu_info
from fota_studio.engine.engine import Engine, JobHandle
from fota_studio.engine.flash_job import FlashResult, ImageLike
from fota_studio.engine.preflight import Preflight, build_preflight, left_in_bootloader
from fota_studio.ui.engine_bridge import EngineBridge
from fota_studio.ui.technician.steps import next_steps, step_words
from fota_studio.ui.widgets.flash_widgets import (
    ask_question,
    preflight_html,
    set_bar_state,
    wrapping_label,
)
from fota_studio.ui.widgets.versions import fill_versions

#: Point sizes: readable from arm's length on a 14" laptop at 1024×700.
BODY_PT = 13
TITLE_PT = 20
BAR_HEIGHT_PX = 44
#: How often the result waits for a failed job's future (set right after its JobFailed event).
FUTURE_POLL_MS = 20

STAGE_CHOOSE = 0
STAGE_FLASHING = 1
STAGE_RESULT = 2


def _big_button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.setMinimumHeight(40)
    button.setAutoDefault(True)  # Enter presses the focused button
    return button


class TechnicianView(QWidget):
    """Update one ECU of one machine, guided (see the module docstring)."""

    flash_finished = Signal(object)  # FlashResult (ended, any outcome with a record)
    stage_changed = Signal(int)

    def __init__(
        self,
        engine: Engine,
        bridge: EngineBridge,
        ws: Any | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("technician_view")
        self.engine = engine
        self.bridge = bridge
        self.ws = ws
        #: Replaceable for tests: ask (title, text) -> True to go on.
        self.confirm: Callable[[str, str], bool] = lambda t, x: ask_question(self, t, x)
        self.preflight: Preflight | None = None
        self.last_result: FlashResult | None = None
        self.last_failure: JobFailed | None = None
        self._info_job: int | None = None
        self._rerun_pending = False
        self._job: JobHandle | None = None
        self._ecu: EcuDefinition | None = None
        self._started_at = 0.0
        self._build()
        bridge.job_started.connect(self._on_bridge_job_started)
        bridge.step_started.connect(self._on_bridge_step_started)
        bridge.step_finished.connect(self._on_bridge_step_finished)
        bridge.progress_changed.connect(self._on_bridge_progress_changed)
        bridge.job_finished.connect(self._on_bridge_job_finished)
        bridge.job_failed.connect(self._on_bridge_job_failed)
        self.reload()
        self._show_stage(STAGE_CHOOSE)

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        self.setStyleSheet(
            f"#technician_view QLabel, #technician_view QComboBox, "
            f"#technician_view QPushButton {{ font-size: {BODY_PT}pt; }}"
            f" #technician_view QLabel[role='title'] {{ font-size: {TITLE_PT}pt; "
            "font-weight: bold; }"
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self._build_choose())
        self.stack.addWidget(self._build_flashing())
        self.stack.addWidget(self._build_result())
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 12, 16, 12)
        outer.addWidget(self.stack)

    @staticmethod
    def _title(text: str) -> QLabel:
        label = wrapping_label(text)
        label.setProperty("role", "title")
        return label

    def _build_choose(self) -> QWidget:
        page = QWidget()
        self.machine_combo = QComboBox()
        self.ecu_combo = QComboBox()
        self.version_combo = QComboBox()
        self.machine_combo.currentIndexChanged.connect(self._on_machine_combo_changed)
        self.ecu_combo.currentIndexChanged.connect(self._on_ecu_combo_changed)
        self.version_combo.currentIndexChanged.connect(self._on_version_combo_changed)
        form = QFormLayout()
        for text, combo in (
            ("&Machine", self.machine_combo),
            ("&ECU", self.ecu_combo),
            ("&Version", self.version_combo),
        ):
            label = QLabel(text)
            label.setBuddy(combo)
            form.addRow(label, combo)
        self.check_button = _big_button(
            "&Check the ECU", "Read the installed version and the preconditions from the ECU"
        )
        self.start_button = _big_button(
            "&Start the update", "Flash the chosen version (asks first, shows from → to)"
        )
        self.start_button.setEnabled(False)
        self.check_button.clicked.connect(self.check_ecu)
        self.start_button.clicked.connect(self.start_update)
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.start_button)
        buttons.addStretch(1)
        self.preflight_label = wrapping_label(
            "Choose the machine, the ECU and the version, then check the ECU."
        )
        self.preflight_label.setTextFormat(Qt.TextFormat.RichText)
        self.problem_label = wrapping_label()
        self.problem_label.setStyleSheet("color: #c62828; font-weight: bold;")
        self.problem_label.hide()
        v = QVBoxLayout(page)
        v.addWidget(self._title("Update an ECU"))
        v.addLayout(form)
        v.addLayout(buttons)
        v.addWidget(self.problem_label)
        v.addWidget(self.preflight_label, 1, Qt.AlignmentFlag.AlignTop)
        return page

    def _build_flashing(self) -> QWidget:
        page = QWidget()
        self.flash_title = self._title("")
        self.step_label = wrapping_label("")
        self.step_label.setStyleSheet(f"font-size: {TITLE_PT - 4}pt;")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMinimumHeight(BAR_HEIGHT_PX)
        self.progress.setFormat("%p %")
        self.time_label = wrapping_label("")
        self.cancel_button = _big_button(
            "C&ancel",
            "Stop at the next safe point (asks first: the ECU may stay in its bootloader)",
        )
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        row = QHBoxLayout()
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        v = QVBoxLayout(page)
        v.addWidget(self.flash_title)
        v.addWidget(self.step_label)
        v.addWidget(self.progress)
        v.addWidget(self.time_label)
        v.addLayout(row)
        v.addStretch(1)
        return page

    def _build_result(self) -> QWidget:
        page = QWidget()
        self.result_title = self._title("")
        self.result_detail = wrapping_label("")
        self.next_label = wrapping_label("")
        self.rerun_button = _big_button(
            "&Re-run the flash", "Flash the same version again (the ECU waits in its bootloader)"
        )
        self.again_button = _big_button("&Update another ECU", "Back to the choice of ECU")
        self.rerun_button.clicked.connect(self.rerun)
        self.again_button.clicked.connect(self.back_to_start)
        row = QHBoxLayout()
        row.addWidget(self.rerun_button)
        row.addWidget(self.again_button)
        row.addStretch(1)
        v = QVBoxLayout(page)
        v.addWidget(self.result_title)
        v.addWidget(self.result_detail)
        v.addWidget(self.next_label)
        v.addLayout(row)
        v.addStretch(1)
        return page

    def stage(self) -> int:
        """The shown stage: STAGE_CHOOSE, STAGE_FLASHING or STAGE_RESULT."""
        return self.stack.currentIndex()

    def _show_stage(self, index: int) -> None:
        self.stack.setCurrentIndex(index)
        primary = {
            STAGE_CHOOSE: self.start_button if self.start_button.isEnabled() else self.check_button,
            STAGE_FLASHING: self.cancel_button,
            STAGE_RESULT: self.rerun_button
            if not self.rerun_button.isHidden()
            else self.again_button,
        }[index]
        for button in self.findChildren(QPushButton):
            button.setDefault(button is primary)
        # Focusing the view (Ctrl+T, Window menu) focuses the stage's primary button: Enter.
        self.setFocusProxy(primary)
        primary.setFocus(Qt.FocusReason.OtherFocusReason)
        self.stage_changed.emit(index)

    # -- workspace selection ----------------------------------------------------------------

    def set_workspace(self, ws: Any) -> None:
        """Follow File ▸ Open workspace…."""
        self.ws = ws
        self.reload()

    def reload(self) -> None:
        """Refill machines (then ECUs, versions) from the workspace."""
        from fota_studio.infra.ea_store import EaStore

        self.machine_combo.blockSignals(True)
        current = self.machine_combo.currentData()
        self.machine_combo.clear()
        if self.ws is not None:
            try:
                for m in EaStore(self.ws).list_machines():
                    label = f"{m.serial} — {m.name}" if m.name and m.name != m.serial else m.serial
                    self.machine_combo.addItem(label, m.serial)
            except FotaError as exc:
                self._show_problem(f"Cannot list the machines: {exc}")
        index = self.machine_combo.findData(current)
        self.machine_combo.setCurrentIndex(max(index, 0))
        self.machine_combo.blockSignals(False)
        self._on_machine_combo_changed()

    def versions_changed(self) -> None:
        """A version was imported or retired: refill the version list, keep the choice."""
        current = self.version_combo.currentData()
        self._on_ecu_combo_changed()
        index = self.version_combo.findData(current)
        if index >= 0:
            self.version_combo.setCurrentIndex(index)

    def _ecus(self) -> list[EcuDefinition]:
        from fota_studio.infra.ea_store import EaStore

        serial = self.machine_combo.currentData()
        if self.ws is None or serial is None:
            return []
        store = EaStore(self.ws)
        try:
            machine = store.get_machine(serial)
            return list(store.get(machine.ea_name).ecus) if machine.ea_name else []
        except FotaError:
            return []

    def selected_ecu(self) -> EcuDefinition | None:
        """The chosen ECU's definition (from the machine's EA)."""
        name = self.ecu_combo.currentData()
        return next((e for e in self._ecus() if e.name == name), None)

    def _on_machine_combo_changed(self, *_: object) -> None:
        self.ecu_combo.blockSignals(True)
        self.ecu_combo.clear()
        for ecu in self._ecus():
            self.ecu_combo.addItem(f"{ecu.name} — {ecu.brand} {ecu.model}", ecu.name)
        self.ecu_combo.blockSignals(False)
        self._on_ecu_combo_changed()

    def _on_ecu_combo_changed(self, *_: object) -> None:
        from fota_studio.infra.repository import RepositoryStore

        self.version_combo.blockSignals(True)
        self.version_combo.clear()
        ecu = self.selected_ecu()
        if ecu is not None and self.ws is not None:
            try:
                versions = RepositoryStore(self.ws).list_versions(ecu.brand, ecu.model)
                fill_versions(self.version_combo, versions, show_retired=False)
            except FotaError as exc:
                self._show_problem(f"No firmware for {ecu.brand} {ecu.model}: {exc}")
        self.version_combo.blockSignals(False)
        self._on_version_combo_changed()

    def _on_version_combo_changed(self, *_: object) -> None:
        self.preflight = None
        self.start_button.setEnabled(False)
        self.start_button.setDefault(False)
        self.check_button.setDefault(True)  # a new choice is checked first (Enter)
        self.setFocusProxy(self.check_button)
        self._show_problem("")
        self._render_preflight(None)

    def _render_preflight(self, info: EcuInfo | None) -> None:
        ecu = self.selected_ecu()
        version = self.version_combo.currentData()
        if ecu is None or version is None or self.ws is None:
            self.preflight_label.setText(
                "Choose the machine, the ECU and the version, then check the ECU."
            )
            return
        try:
            pre = build_preflight(
                self.ws, str(self.machine_combo.currentData() or ""), ecu, str(version), info
            )
        except FotaError as exc:
            self._show_problem(str(exc))
            return
        if info is not None:
            self.preflight = pre
        self.preflight_label.setText(preflight_html(pre))

    def _show_problem(self, text: str) -> None:
        self.problem_label.setText(text)
        self.problem_label.setVisible(bool(text))

    def problem_text(self) -> str:
        """The blocking problem shown ("" when none)."""
        return "" if self.problem_label.isHidden() else self.problem_label.text()

    # -- pre-flight, start ------------------------------------------------------------------

    def check_ecu(self) -> None:
        """Read the version and the preconditions from the ECU (a job on its channel)."""
        ecu = self.selected_ecu()
        if ecu is None or self.version_combo.currentData() is None:
            self._show_problem("Choose the machine, the ECU and the version first.")
            return
        if self._info_job is not None or self.is_running():
            return
        if ecu.connection.channel not in self.engine.channels():
            # Name the adapter and why it did not open (e.g. after a remap to socketcan:can0).
            why = self.engine.open_error(ecu.connection.channel)
            self._show_problem(
                f"CAN channel {ecu.connection.channel} is not open: "
                + (f"{why}." if why else "connect the adapter (CAN ▸ Connect adapters)")
                + " Then check again."
            )
            return
        try:
            self._info_job = submit_read_ecu_info(self.engine, ecu).job_id
        except FotaError as exc:
            self._show_problem(f"Cannot ask {ecu.name}: {exc}")
            return
        self._show_problem("")
        self.check_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.preflight_label.setText(f"Asking {html.escape(ecu.name)}…")

    def _on_info(self, info: EcuInfo | None, error: str = "") -> None:
        self._info_job = None
        self.check_button.setEnabled(True)
        if info is None:
            self._show_problem(f"Cannot read the ECU: {error}")
            self._render_preflight(None)
            return
        self._render_preflight(info)
        pre = self.preflight
        if pre is None:
            return
        if pre.blocking:
            lines = [f"{pre.ecu} cannot be updated now (nothing was sent to it):"]
            lines += [f"• {b}" for b in pre.blocking]
            skipped = [p for p in pre.preconditions if p.ok is None and p.skippable]
            if skipped:
                lines.append("Skipped, as the EA allows:")
                lines += [f"• {p.name}: {p.skip_reason or 'no reason given'}" for p in skipped]
            lines.append("Make the machine safe, power it, then check again.")
            self._show_problem("\n".join(lines))
            return
        self.start_button.setEnabled(True)
        self.start_button.setDefault(True)
        self.check_button.setDefault(False)
        self.setFocusProxy(self.start_button)
        self.start_button.setFocus(Qt.FocusReason.OtherFocusReason)

    def start_update(self) -> None:
        """Ask from → to, then flash (the resolver loads and checks the image on the worker)."""
        pre = self.preflight
        ecu = self.selected_ecu()
        if pre is None or ecu is None or self.ws is None or pre.blocking or self.is_running():
            return
        if not self.confirm(f"Update {pre.ecu}?", pre.confirm_text()):
            return
        ws = self.ws
        machine, version = pre.machine, pre.target

        def load() -> ImageLike:
            from fota_studio.engine.targets import resolve_flash_target

            return resolve_flash_target(ws, machine, ecu.name, version).image

        try:
            self._job = self.engine.submit_flash(
                ecu.connection.channel,
                ecu,
                None,
                loader=load,
                machine=machine,
                version=version,
                expected_version=version,
                workspace=ws,
                by="GUI technician view",
            )
        except FotaError as exc:
            self._show_problem(str(exc))
            return
        self._ecu = ecu
        self.last_result = None
        self.last_failure = None
        self._started_at = time.monotonic()
        self.flash_title.setText(f"Updating {ecu.name}: {pre.from_version} → {version}")
        self.step_label.setText("Waiting for the CAN channel…")
        self.time_label.setText(f"About {pre.estimated_s:.0f} s")
        self.progress.setValue(0)
        set_bar_state(self.progress, "running")
        self.cancel_button.setEnabled(True)
        self._show_stage(STAGE_FLASHING)

    def rerun(self) -> None:
        """Result ▸ Re-run the flash: check the ECU again (it answers from its bootloader),
        then start the same version."""
        self.back_to_start()
        self._rerun_pending = True
        self.check_ecu()

    def back_to_start(self) -> None:
        """Result ▸ Update another ECU: back to the choice (the pre-flight is read again)."""
        self._on_version_combo_changed()
        self._show_stage(STAGE_CHOOSE)

    # -- running ----------------------------------------------------------------------------

    def is_running(self) -> bool:
        """True while this view's flash is queued or running."""
        return self._job is not None and not self._job.done()

    def running_flash(self) -> str:
        """What is being flashed ("" when idle): the window's quit / switch guard."""
        if not self.is_running() or self.preflight is None:
            return ""
        pre = self.preflight
        return f"{pre.ecu} {pre.target}" + (f" of {pre.machine}" if pre.machine else "")

    def stop_flash(self, reason: str = "cancelled by the user") -> None:
        """Stop at the next safe point (no question)."""
        if self._job is not None and not self._job.done():
            self.engine.cancel(self._job.job_id, reason)
            self.cancel_button.setEnabled(False)
            self.step_label.setText("Stopping at the next safe point…")

    def _on_cancel_button_clicked(self) -> None:
        name = self._ecu.name if self._ecu is not None else "the ECU"
        if self.confirm(
            "Cancel the update?",
            f"The update stops at the next safe point. If the old software of {name} is "
            f"already erased, {name} stays in its bootloader and the machine cannot be used "
            "until the flash is run again.",
        ):
            self.stop_flash()

    def _mine(self, job_id: int) -> bool:
        return self._job is not None and self._job.job_id == job_id

    def _on_bridge_job_started(self, ev: JobStarted) -> None:
        if self._mine(ev.job_id):
            self.step_label.setText("Starting…")

    def _on_bridge_step_started(self, ev: StepStarted) -> None:
        if self._mine(ev.job_id):
            self.step_label.setText(step_words(ev.step) + "…")

    def _on_bridge_step_finished(self, ev: StepFinished) -> None:
        if self._mine(ev.job_id) and not ev.ok:
            self.step_label.setText(f"{step_words(ev.step)}: failed")

    def _on_bridge_progress_changed(self, ev: Progress) -> None:
        if not self._mine(ev.job_id):
            return
        self.progress.setValue(int(ev.fraction * 1000))
        left = f"about {ev.eta_s:.0f} s left" if ev.eta_s is not None else ""
        done = f"{ev.fraction * 100:.0f} % written"
        self.time_label.setText(", ".join(x for x in (done, left) if x))

    def _on_bridge_job_finished(self, ev: JobFinished) -> None:
        if self._info_job is not None and ev.job_id == self._info_job:
            self._on_info(ev.result if isinstance(ev.result, EcuInfo) else None, "no answer")
            if self._rerun_pending:
                self._rerun_pending = False
                if self.start_button.isEnabled():
                    self.start_update()
            return
        if not self._mine(ev.job_id) or not isinstance(ev.result, FlashResult):
            return
        self.last_result = ev.result
        self._show_result(ev.result, None)

    def _on_bridge_job_failed(self, ev: JobFailed) -> None:
        if self._info_job is not None and ev.job_id == self._info_job:
            self._rerun_pending = False
            self._on_info(None, ev.error)
            return
        if self._mine(ev.job_id):
            self._finish_failed(ev)

    def _finish_failed(self, ev: JobFailed) -> None:
        # The engine emits JobFailed just before it sets the job's future: wait for the
        # record (a few ms) so the result can say whether the ECU is in its bootloader.
        job = self._job
        if job is not None and not job.done():
            QTimer.singleShot(FUTURE_POLL_MS, lambda: self._finish_failed(ev))
            return
        self.last_failure = ev
        if job is not None and job.done() and job.future.exception() is None:
            result = job.future.result()
            if isinstance(result, FlashResult):
                self.last_result = result
        self._show_result(self.last_result, ev)

    def _show_result(self, result: FlashResult | None, failure: JobFailed | None) -> None:
        name = self._ecu.name if self._ecu is not None else "The ECU"
        record = result.record if result is not None else None
        in_boot = left_in_bootloader(record)
        ok = result is not None and result.ok
        verified = result is not None and result.verified
        cancelled = failure is not None and failure.cancelled
        wrote = bool(
            record and any(s.step in {k.value for k in SEGMENT_STEPS} for s in record.steps)
        )
        if result is not None and ok and verified:
            title, state = f"✔ {name} updated: it runs {result.version_after}", "done"
        elif ok:
            title, state = f"⚠ {name} written, NOT verified", "done"
        elif cancelled:
            title, state = f"✖ Update of {name} cancelled", "cancelled"
        else:
            title, state = f"✖ Update of {name} failed", "failed"
        if in_boot:
            title += f" — {name} is in its bootloader"
        set_bar_state(self.progress, state)
        if ok:
            self.progress.setValue(self.progress.maximum())
        detail = ""
        if failure is not None:
            detail = failure.error + (f"\n{failure.hint}" if failure.hint else "")
        elif result is not None and not verified:
            from fota_studio.core.flash_outcome import not_verified_reason

            detail = not_verified_reason(result.record)
        self.result_title.setText(title)
        self.result_title.setStyleSheet(
            "color: #2e8b3a;" if ok and verified else "color: #c62828;" if not ok else ""
        )
        self.result_detail.setText(detail)
        self.result_detail.setVisible(bool(detail))
        self.next_label.setText(
            next_steps(
                ok=ok,
                verified=verified,
                cancelled=cancelled,
                in_bootloader=in_boot,
                ecu=name,
                wrote=wrote,
            )
        )
        self.rerun_button.setVisible(in_boot or (wrote and not ok))
        self.cancel_button.setEnabled(False)
        self._show_stage(STAGE_RESULT)
        if result is not None:
            self.flash_finished.emit(result)
