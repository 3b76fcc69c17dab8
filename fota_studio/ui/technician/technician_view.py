"""The technician view: one guided page to update an ECU of a machine, in large type.

Three stages on one page (a `QStackedWidget`): **choose** (machine → ECU → version, then
"Check the ECU": the version read FROM the ECU next to the workspace's record, downgrade /
re-flash / unsigned called out, the estimated time, the preconditions with their live values,
and what blocks the update), **flashing** (a large progress bar, the current step in words,
time left, Cancel that asks first) and **result** (what happened and what to do next; after a
stop that left the ECU in its bootloader, "Re-run the flash"). Start asks for confirmation
with from → to. The ECU is read and flashed by engine jobs on the channel's worker
(`engine/ecu_info`; `Engine.submit_flash`, several ECUs as ONE `Engine.submit_plan` job, with
the one resolver on the engine's threads); events arrive through the `EngineBridge`, so nothing
here blocks. Every action has a mnemonic (Alt+…) and the primary button of each stage is the
default (Enter). `confirm(title, text) -> bool` is
replaceable for tests. GUI thread only.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
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
from fota_studio.core.flash_record import NOT_FLASHED, was_skipped
from fota_studio.engine.ecu_info import EcuInfo, submit_read_ecu_info
from fota_studio.engine.engine import JobHandle, PlanHandle, PlanItem
from fota_studio.engine.flash_job import FlashResult
from fota_studio.engine.preflight import Preflight, build_preflight, left_in_bootloader
from fota_studio.ui.panels import flash_choice as choice
from fota_studio.ui.panels.flash_choice import FlashView
from fota_studio.ui.panels.flash_plan_rows import clear_grid, image_loader
from fota_studio.ui.technician.steps import FlashFacts, next_steps, step_words
from fota_studio.ui.widgets.flash_widgets import (
    preflight_html,
    set_bar_state,
    wrapping_label,
)

#: Point sizes: readable from arm's length on a 14" laptop at 1024×700.
BODY_PT = 13
TITLE_PT = 20
BAR_HEIGHT_PX = 44
#: How often the result waits for a failed job's future (set right after its JobFailed event).
FUTURE_POLL_MS = 20

STAGE_CHOOSE = 0
STAGE_FLASHING = 1
STAGE_RESULT = 2


@dataclass(eq=False)
class _FlashRow:
    """One ECU of a run: its large progress row and, at the end, its outcome."""

    ecu: EcuDefinition
    pre: Preflight
    heading: QLabel
    step: QLabel
    bar: QProgressBar
    time: QLabel
    job: JobHandle | None = None
    result: FlashResult | None = None
    failure: JobFailed | None = None
    ended: bool = False
    widgets: list[QWidget] = field(default_factory=list)  # built for this run (removed after)


def _page(parts: Sequence[QWidget | QLayout], buttons: Sequence[QPushButton]) -> QWidget:
    """A stage page: `parts` from the top, then a row of `buttons` (left-aligned)."""
    page = QWidget()
    v = QVBoxLayout(page)
    for part in parts:
        if isinstance(part, QLayout):
            v.addLayout(part)
        else:
            v.addWidget(part)
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    row.addStretch(1)
    v.addLayout(row)
    v.addStretch(1)
    return page


def _big_button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.setMinimumHeight(40)
    button.setAutoDefault(True)  # Enter presses the focused button
    return button


class TechnicianView(FlashView):
    """Update one ECU of one machine, guided (see the module docstring)."""

    flash_finished = Signal(object)  # FlashResult (ended, any outcome with a record)
    stage_changed = Signal(int)

    def _setup(self) -> None:
        bridge = self.bridge
        self.setObjectName("technician_view")
        self.preflight: Preflight | None = None
        self.last_result: FlashResult | None = None
        self.last_failure: JobFailed | None = None
        #: Pre-flight jobs of the ECUs being checked (job id → ECU) and their answers.
        self._info_jobs: dict[int, EcuDefinition] = {}
        self._infos: dict[str, tuple[EcuInfo | None, str]] = {}
        #: The pre-flight of every ECU of the run (the current ECU first), once all answered.
        self.preflights: list[Preflight] = []
        self._rerun_pending = False
        #: "Re-run the flash": only these ECUs (the failed ones) are checked and flashed again.
        self._rerun_only: list[tuple[EcuDefinition, str]] | None = None
        self._rows: list[_FlashRow] = []
        self._info_targets: list[tuple[EcuDefinition, str]] = []
        #: The checked ECUs, each with its pre-flight (what Start flashes).
        self._checked: list[tuple[EcuDefinition, Preflight]] = []
        self._job: JobHandle | None = None
        #: The plan job of a run of several ECUs (its rows hold its per-ECU handles).
        self._plan: PlanHandle | None = None
        self._ecu: EcuDefinition | None = None
        self.ecu_checks: dict[str, QCheckBox] = {}
        self.ecu_versions: dict[str, QComboBox] = {}
        self._started_at = 0.0
        self._build()
        steps = ("step_started", "step_finished", "progress_changed")
        choice.connect_bridge(bridge, self, "job_started", *steps, "job_finished", "job_failed")
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
        form = QFormLayout()
        for text, combo in (
            ("&Machine", self.machine_combo),
            ("&ECU", self.ecu_combo),
            ("&Version", self.version_combo),
        ):
            label = QLabel(text)
            label.setBuddy(combo)
            form.addRow(label, combo)
        # Several ECUs in one run: the current one (above) is always in; others are ticked,
        # each with its version (the newest release preselected).
        self.ecus_box = QWidget()
        self.ecus_grid = QGridLayout(self.ecus_box)
        self.ecus_grid.setContentsMargins(0, 0, 0, 0)
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
        v.addWidget(self.ecus_box)
        v.addLayout(buttons)
        v.addWidget(self.problem_label)
        v.addWidget(self.preflight_label, 1, Qt.AlignmentFlag.AlignTop)
        return page

    def _build_flashing(self) -> QWidget:
        self.flash_title = self._title("")
        self.step_label = wrapping_label("")
        self.step_label.setStyleSheet(f"font-size: {TITLE_PT - 4}pt;")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMinimumHeight(BAR_HEIGHT_PX)
        self.progress.setFormat("%p %")
        self.row_heading = wrapping_label("")
        self.row_heading.setStyleSheet("font-weight: bold;")
        self.row_heading.hide()
        self.time_label = wrapping_label("")
        self.rows_layout = QVBoxLayout()
        self.cancel_button = _big_button(
            "C&ancel",
            "Stop at the next safe point (asks first: the ECU may stay in its bootloader)",
        )
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        parts = (self.flash_title, self.row_heading, self.step_label, self.progress)
        return _page([*parts, self.time_label, self.rows_layout], [self.cancel_button])

    def _build_result(self) -> QWidget:
        self.result_title = self._title("")
        self.result_detail = wrapping_label("")
        self.next_label = wrapping_label("")
        self.rerun_button = _big_button(
            "&Re-run the flash", "Flash the same version again (the ECU waits in its bootloader)"
        )
        self.again_button = _big_button("&Update another ECU", "Back to the choice of ECU")
        self.rerun_button.clicked.connect(self.rerun)
        self.again_button.clicked.connect(self.back_to_start)
        parts = [self.result_title, self.result_detail, self.next_label]
        return _page(parts, [self.rerun_button, self.again_button])

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
        try:
            choice.fill_machines(self.machine_combo, self.ws, keep=True)
        except FotaError as exc:
            self._show_problem(f"Cannot list the machines: {exc}")
        self._on_machine_combo_changed()

    def versions_changed(self) -> None:
        """A version was imported or retired: refill the version list, keep the choice."""
        choice.refill_keeping(self.version_combo, self._on_ecu_combo_changed)

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
        choice.fill_ecus(self.ecu_combo, self._ecus())
        self._on_ecu_combo_changed()

    def _on_ecu_combo_changed(self, *_: object) -> None:
        ecu = self.selected_ecu()
        try:
            choice.fill_ecu_versions(self.version_combo, self.ws, ecu)
        except FotaError as exc:
            what = f"{ecu.brand} {ecu.model}" if ecu is not None else "the ECU"
            self._show_problem(f"No firmware for {what}: {exc}")
        self._fill_ecu_list()
        self._on_version_combo_changed()

    def _fill_ecu_list(self) -> None:
        """One row per ECU of the machine: a tick and its version (the current one ticked)."""
        clear_grid(self.ecus_grid)
        self.ecu_checks, self.ecu_versions = {}, {}
        current = self.selected_ecu()
        ecus = self._ecus()
        self.ecus_box.setVisible(len(ecus) > 1)
        if len(ecus) < 2 or current is None:
            return
        title = QLabel("ECUs to update in this run:")
        self.ecus_grid.addWidget(title, 0, 0, 1, 2)
        previous: QWidget = self.version_combo
        for row, ecu in enumerate(ecus, start=1):
            check = QCheckBox(f"{ecu.name} — {ecu.brand} {ecu.model}")
            combo = QComboBox()
            if ecu.name == current.name:
                check.setChecked(True)
                check.setEnabled(False)  # the ECU chosen above is always updated
                check.setToolTip("The ECU chosen above, with the version chosen above")
                combo.setEnabled(False)
                combo.addItem(str(self.version_combo.currentText()))
            else:
                try:
                    choice.fill_ecu_versions(combo, self.ws, ecu)
                except FotaError:
                    check.setEnabled(False)
                check.toggled.connect(self._on_version_combo_changed)
                combo.currentIndexChanged.connect(self._on_version_combo_changed)
            self.ecus_grid.addWidget(check, row, 0)
            self.ecus_grid.addWidget(combo, row, 1)
            self.ecu_checks[ecu.name] = check
            self.ecu_versions[ecu.name] = combo
            QWidget.setTabOrder(previous, check)
            QWidget.setTabOrder(check, combo)
            previous = combo
        QWidget.setTabOrder(previous, self.check_button)

    def targets(self) -> list[tuple[EcuDefinition, str]]:
        """What one run updates: (ECU, version), the current ECU first, then the ticked ones
        (after "Re-run the flash": only the ECUs that failed)."""
        if self._rerun_only is not None:
            return list(self._rerun_only)
        ecu = self.selected_ecu()
        version = self.version_combo.currentData()
        if ecu is None or version is None:
            return []
        out = [(ecu, str(version))]
        for other in self._ecus():
            check = self.ecu_checks.get(other.name)
            combo = self.ecu_versions.get(other.name)
            if other.name == ecu.name or check is None or combo is None:
                continue
            if check.isChecked() and combo.currentData() is not None:
                out.append((other, str(combo.currentData())))
        return out

    def _on_version_combo_changed(self, *_: object) -> None:
        self.preflight = None
        self.preflights = []
        self._checked = []
        self._rerun_only = None
        current = self.selected_ecu()
        if current is not None and current.name in self.ecu_versions:
            mirror = self.ecu_versions[current.name]
            mirror.clear()
            mirror.addItem(self.version_combo.currentText())
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

    def _single(self, targets: list[tuple[EcuDefinition, str]]) -> bool:
        """True when the run is the one ECU and version chosen above (the one-ECU page)."""
        ecu = self.selected_ecu()
        return (
            len(targets) == 1
            and ecu is not None
            and targets[0][0].name == ecu.name
            and targets[0][1] == self.version_combo.currentData()
        )

    def check_ecu(self) -> None:
        """Read the version and the preconditions from each ECU (jobs on their channels)."""
        targets = self.targets()
        if not targets:
            self._show_problem("Choose the machine, the ECU and the version first.")
            return
        if self._info_jobs or self.is_running():
            return
        for ecu, _version in targets:
            if ecu.connection.channel not in self.engine.channels():
                # Name the adapter and why it did not open (e.g. after a remap).
                why = self.engine.open_error(ecu.connection.channel)
                self._show_problem(
                    f"CAN channel {ecu.connection.channel} is not open: "
                    + (f"{why}." if why else "connect the adapter (CAN ▸ Connect adapters)")
                    + " Then check again."
                )
                return
        self._infos = {}
        jobs: dict[int, EcuDefinition] = {}
        for ecu, _version in targets:
            try:
                jobs[submit_read_ecu_info(self.engine, ecu).job_id] = ecu
            except FotaError as exc:
                self._show_problem(f"Cannot ask {ecu.name}: {exc}")
                return
        self._info_jobs = jobs
        self._info_targets = targets
        self._show_problem("")
        self.check_button.setEnabled(False)
        self.start_button.setEnabled(False)
        names = ", ".join(html.escape(e.name) for e, _ in targets)
        self.preflight_label.setText(f"Asking {names}…")

    def _on_infos(self) -> None:
        """Every ECU of the check answered (or failed): one line block per ECU."""
        targets = self._info_targets
        if self._single(targets):
            info, error = self._infos.get(targets[0][0].name, (None, "no answer"))
            self._on_info(info, error)
            pre = self.preflight
            if pre is not None and not pre.blocking and self.start_button.isEnabled():
                self._checked = [(targets[0][0], pre)]
                self.preflights = [pre]
            return
        self.check_button.setEnabled(True)
        machine = str(self.machine_combo.currentData() or "")
        blocks: list[str] = []
        problems: list[str] = []
        checked: list[tuple[EcuDefinition, Preflight]] = []
        for ecu, version in targets:
            info, error = self._infos.get(ecu.name, (None, "no answer"))
            heading = f"<p style='font-size: {TITLE_PT - 4}pt'><b>{html.escape(ecu.name)}</b></p>"
            if info is None or self.ws is None:
                problems.append(f"Cannot read {ecu.name}: {error}")
                blocks.append(heading + html.escape(f"Cannot read {ecu.name}: {error}"))
                continue
            try:
                pre = build_preflight(self.ws, machine, ecu, version, info)
            except FotaError as exc:
                problems.append(f"{ecu.name}: {exc}")
                continue
            blocks.append(heading + preflight_html(pre))
            if pre.blocking:
                problems.append(f"{pre.ecu} cannot be updated now (nothing was sent to it):")
                problems += [f"• {b}" for b in pre.blocking]
            checked.append((ecu, pre))
        self.preflight_label.setText("".join(blocks))
        if problems:
            problems.append("Make the machine safe, power it, then check again.")
            self._show_problem("\n".join(problems))
            return
        self._checked = checked
        self.preflights = [pre for _, pre in checked]
        self.preflight = self.preflights[0]
        self.start_button.setEnabled(True)
        self.start_button.setDefault(True)
        self.check_button.setDefault(False)
        self.setFocusProxy(self.start_button)
        self.start_button.setFocus(Qt.FocusReason.OtherFocusReason)

    def _on_info(self, info: EcuInfo | None, error: str = "") -> None:
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
            self._show_problem(
                choice.blocking_text(
                    pre,
                    f"{pre.ecu} cannot be updated now (nothing was sent to it):",
                    "Skipped, as the EA allows:",
                    "Make the machine safe, power it, then check again.",
                )
            )
            return
        self.start_button.setEnabled(True)
        self.start_button.setDefault(True)
        self.check_button.setDefault(False)
        self.setFocusProxy(self.start_button)
        self.start_button.setFocus(Qt.FocusReason.OtherFocusReason)

    def _clear_extra_rows(self) -> None:
        for row in self._rows:
            for widget in row.widgets:
                self.rows_layout.removeWidget(widget)
                widget.deleteLater()
        self._rows = []

    def _new_row(self, ecu: EcuDefinition, pre: Preflight, first: bool) -> _FlashRow:
        if first:
            return _FlashRow(
                ecu, pre, self.row_heading, self.step_label, self.progress, self.time_label
            )
        heading = wrapping_label("")
        heading.setStyleSheet("font-weight: bold;")
        step = wrapping_label("")
        step.setStyleSheet(f"font-size: {TITLE_PT - 4}pt;")
        bar = QProgressBar()
        bar.setRange(0, 1000)
        bar.setMinimumHeight(BAR_HEIGHT_PX)
        bar.setFormat("%p %")
        time_label = wrapping_label("")
        widgets: list[QWidget] = [heading, step, bar, time_label]
        for widget in widgets:
            self.rows_layout.addWidget(widget)
        return _FlashRow(ecu, pre, heading, step, bar, time_label, widgets=widgets)

    def start_update(self) -> None:
        """Ask once (from → to per ECU), then flash: one ECU as one engine job, several as ONE
        plan job (`Engine.submit_plan`: interleaved on a shared channel, parallel across
        channels, one row per ECU); the resolver loads and checks each image on the engine's
        threads."""
        checked = list(self._checked)
        if not checked or self.ws is None or self.is_running():
            return
        if any(pre.blocking for _, pre in checked):
            return
        if len(checked) == 1:
            pre = checked[0][1]
            title, question = f"Update {pre.ecu}?", pre.confirm_text()
        else:
            title = f"Update {len(checked)} ECUs?"
            question = "\n\n".join(pre.confirm_text() for _, pre in checked)
        if not self.confirm(title, question):
            return
        ws = self.ws
        self._clear_extra_rows()
        rows = [self._new_row(ecu, pre, n == 0) for n, (ecu, pre) in enumerate(checked)]
        self._rows = rows
        items = [
            PlanItem(
                row.ecu,
                loader=image_loader(ws, row.pre.machine, row.ecu.name, row.pre.target),
                version=row.pre.target,
                expected_version=row.pre.target,
            )
            for row in rows
        ]
        machine = rows[0].pre.machine
        self._plan = None
        try:
            if len(rows) == 1:
                it = items[0]
                rows[0].job = self.engine.submit_flash(
                    it.ecu.connection.channel,
                    it.ecu,
                    None,
                    loader=it.loader,
                    machine=machine,
                    version=it.version,
                    expected_version=it.expected_version,
                    workspace=ws,
                    by="GUI technician view",
                )
            else:
                self._plan = self.engine.submit_plan(
                    items, machine=machine, workspace=ws, by="GUI technician view"
                )
                for row in rows:
                    row.job = self._plan.ecus[row.ecu.name]
        except FotaError as exc:  # an ECU is flashed elsewhere / has an open request
            self._clear_extra_rows()
            self._show_problem(str(exc))
            return
        first = rows[0]
        self._job = first.job
        self._ecu = first.ecu
        self.last_result = None
        self.last_failure = None
        self._started_at = time.monotonic()
        pre = first.pre
        if len(rows) == 1:
            self.flash_title.setText(f"Updating {pre.ecu}: {pre.from_version} → {pre.target}")
            self.row_heading.hide()
        else:
            where = f" of {pre.machine}" if pre.machine else ""
            self.flash_title.setText(f"Updating {len(rows)} ECUs{where} in one run")
            self.row_heading.show()
        for row in rows:
            row.heading.setText(f"{row.pre.ecu}: {row.pre.from_version} → {row.pre.target}")
            row.step.setText("Waiting for the CAN channel…")
            row.time.setText(f"About {row.pre.estimated_s:.0f} s")
            row.bar.setValue(0)
            set_bar_state(row.bar, "running")
        self.cancel_button.setEnabled(True)
        self._show_stage(STAGE_FLASHING)

    def rerun(self) -> None:
        """Result ▸ Re-run the flash: check the failed ECUs again (they answer from their
        bootloader), then start the same versions."""
        failed = [(r.ecu, r.pre.target) for r in self._rows if r.result is None or not r.result.ok]
        multi = len(self._rows) > 1
        self.back_to_start()
        if multi and failed:
            self._rerun_only = failed
        self._rerun_pending = True
        self.check_ecu()

    def back_to_start(self) -> None:
        """Result ▸ Update another ECU: back to the choice (the pre-flight is read again)."""
        self._on_version_combo_changed()
        self._show_stage(STAGE_CHOOSE)

    # -- running ----------------------------------------------------------------------------

    @property
    def plan(self) -> PlanHandle | None:
        """The plan job of the last run of several ECUs (None: one ECU, or none yet)."""
        return self._plan

    def is_running(self) -> bool:
        """True while one of this view's flashes is queued or running."""
        return any(r.job is not None and not r.job.done() for r in self._rows)

    def running_flash(self) -> str:
        """What is being flashed ("" when idle): the window's quit / switch guard."""
        running = [r for r in self._rows if r.job is not None and not r.job.done()]
        if not running:
            return ""
        machine = running[0].pre.machine
        what = ", ".join(f"{r.pre.ecu} {r.pre.target}" for r in running)
        return what + (f" of {machine}" if machine else "")

    def stop_flash(self, reason: str = "cancelled by the user") -> None:
        """Stop at the next safe point (no question); the queued ECUs do not start."""
        if self._plan is not None and not self._plan.done():
            self.engine.cancel(self._plan.job_id, reason)
        for row in self._rows:
            if row.job is not None and not row.job.done():
                self.engine.cancel(row.job.job_id, reason)
                row.step.setText("Stopping at the next safe point…")
        self.cancel_button.setEnabled(False)

    def _on_cancel_button_clicked(self) -> None:
        names = [r.ecu.name for r in self._rows if not r.ended] or ["the ECU"]
        name = " / ".join(names)
        if self.confirm(
            "Cancel the update?",
            f"The update stops at the next safe point. If the old software of {name} is "
            f"already erased, {name} stays in its bootloader and the machine cannot be used "
            "until the flash is run again.",
        ):
            self.stop_flash()

    def _row(self, job_id: int) -> _FlashRow | None:
        return next((r for r in self._rows if r.job is not None and r.job.job_id == job_id), None)

    def _on_bridge_job_started(self, ev: JobStarted) -> None:
        row = self._row(ev.job_id)
        if row is not None:
            row.step.setText("Starting…")

    def _on_bridge_step_started(self, ev: StepStarted) -> None:
        row = self._row(ev.job_id)
        if row is not None and not row.ended:
            row.step.setText(step_words(ev.step) + "…")

    def _on_bridge_step_finished(self, ev: StepFinished) -> None:
        row = self._row(ev.job_id)
        if row is not None and not ev.ok:
            row.step.setText(f"{step_words(ev.step)}: failed")

    def _on_bridge_progress_changed(self, ev: Progress) -> None:
        row = self._row(ev.job_id)
        if row is None:
            return
        row.bar.setValue(int(ev.fraction * 1000))
        left = f"about {ev.eta_s:.0f} s left" if ev.eta_s is not None else ""
        done = f"{ev.fraction * 100:.0f} % written"
        row.time.setText(", ".join(x for x in (done, left) if x))

    def _on_bridge_job_finished(self, ev: JobFinished) -> None:
        if ev.job_id in self._info_jobs:
            ecu = self._info_jobs.pop(ev.job_id)
            info = ev.result if isinstance(ev.result, EcuInfo) else None
            self._infos[ecu.name] = (info, "no answer")
            self._after_info()
            return
        row = self._row(ev.job_id)
        if row is None or not isinstance(ev.result, FlashResult):
            return
        row.result = ev.result
        self._row_ended(row)

    def _after_info(self) -> None:
        if self._info_jobs:
            return
        pending, self._rerun_pending = self._rerun_pending, False
        self._on_infos()
        if pending and self.start_button.isEnabled():
            self.start_update()

    def _on_bridge_job_failed(self, ev: JobFailed) -> None:
        if ev.job_id in self._info_jobs:
            ecu = self._info_jobs.pop(ev.job_id)
            self._infos[ecu.name] = (None, ev.error)
            self._after_info()
            return
        row = self._row(ev.job_id)
        if row is not None:
            self._finish_failed(row, ev)

    def _finish_failed(self, row: _FlashRow, ev: JobFailed) -> None:
        # The engine emits JobFailed just before it sets the job's future: wait for the
        # record (a few ms) so the result can say whether the ECU is in its bootloader.
        job = row.job
        if job is not None and not job.done():
            QTimer.singleShot(FUTURE_POLL_MS, lambda: self._finish_failed(row, ev))
            return
        row.failure = ev
        if job is not None and job.done() and job.future.exception() is None:
            result = job.future.result()
            if isinstance(result, FlashResult):
                row.result = result
        self._row_ended(row)

    def _row_ended(self, row: _FlashRow) -> None:
        row.ended = True
        if len(self._rows) > 1:
            title, state, _detail, _next = self._outcome(row)
            row.step.setText(title)
            set_bar_state(row.bar, state)
            if row.result is not None and row.result.ok:
                row.bar.setValue(row.bar.maximum())
        if not all(r.ended for r in self._rows):
            return
        first = self._rows[0]
        self.last_result = first.result
        self.last_failure = first.failure
        if len(self._rows) == 1:
            self._show_result(first.result, first.failure)
        else:
            self._show_results()
        for r in self._rows:
            if r.result is not None:
                self.flash_finished.emit(r.result)

    @staticmethod
    def _facts(row: _FlashRow) -> FlashFacts:
        """What the row's flash did (for its title and what to do next)."""
        result, failure = row.result, row.failure
        record = result.record if result is not None else None
        segment_steps = {k.value for k in SEGMENT_STEPS}
        wrote = bool(record and any(s.step in segment_steps for s in record.steps))
        ok = result is not None and result.ok
        verified = ok and result is not None and result.verified
        cancelled = failure is not None and failure.cancelled
        return FlashFacts(row.ecu.name, ok, verified, cancelled, left_in_bootloader(record), wrote)

    def _outcome(self, row: _FlashRow) -> tuple[str, str, str, str]:
        """(title, bar state, detail, what to do next) of one ECU's flash."""
        result, failure, name = row.result, row.failure, row.ecu.name
        facts = self._facts(row)
        if result is not None and facts.verified:
            title, state = f"✔ {name} updated: it runs {result.version_after}", "done"
        elif facts.ok:
            title, state = f"⚠ {name} written, NOT verified", "done"
        elif result is not None and was_skipped(result.record):
            # A plan's ECU that was never started (it must follow one that failed, or the
            # run stopped): not "cancelled" by anyone, and nothing was sent to it.
            title, state = f"⏭ {name} not updated (skipped)", "cancelled"
            reason = result.record.error.removeprefix(NOT_FLASHED)
            what_next = (
                f"Nothing was sent to {name}: it still runs its old software. It was skipped "
                f"because {reason}. Fix that first, then update {name} again."
            )
            return title, state, "", what_next
        elif facts.cancelled:
            title, state = f"✖ Update of {name} cancelled", "cancelled"
        else:
            title, state = f"✖ Update of {name} failed", "failed"
        if facts.in_bootloader:
            title += f" — {name} is in its bootloader"
        detail = ""
        if failure is not None:
            detail = failure.error + (f"\n{failure.hint}" if failure.hint else "")
        elif result is not None and not facts.verified:
            from fota_studio.core.flash_outcome import not_verified_reason

            detail = not_verified_reason(result.record)
        return title, state, detail, next_steps(facts)

    def _show_results(self) -> None:
        """The end of a run of several ECUs: one block per ECU, re-run for the failed ones."""
        blocks = []
        for row in self._rows:
            title, _state, detail, what_next = self._outcome(row)
            blocks.append("\n".join(x for x in (title, detail, what_next) if x))
        good = [r for r in self._rows if r.result is not None and r.result.ok]
        verified = [r for r in good if r.result is not None and r.result.verified]
        n = len(self._rows)
        if len(verified) == n:
            title, color = f"✔ {n} ECUs updated and verified", "color: #2e8b3a;"
        elif len(good) == n:
            title, color = f"⚠ {n} ECUs written, {n - len(verified)} NOT verified", ""
        else:
            title, color = f"✖ {n - len(good)} of {n} ECUs not updated", "color: #c62828;"
        self.result_title.setText(title)
        self.result_title.setStyleSheet(color)
        self.result_detail.setText("\n\n".join(blocks))
        self.result_detail.setVisible(True)
        rerun = any(self._facts(r).needs_rerun for r in self._rows)
        self.next_label.setText(
            '"Re-run the flash" flashes only the ECUs that failed.' if rerun else ""
        )
        self.next_label.setVisible(rerun)
        self.rerun_button.setVisible(rerun)
        self.cancel_button.setEnabled(False)
        self._show_stage(STAGE_RESULT)

    def _show_result(self, result: FlashResult | None, failure: JobFailed | None) -> None:
        row = self._rows[0]
        title, state, detail, what_next = self._outcome(row)
        ok = result is not None and result.ok
        verified = result is not None and result.verified
        set_bar_state(self.progress, state)
        if ok:
            self.progress.setValue(self.progress.maximum())
        self.result_title.setText(title)
        self.result_title.setStyleSheet(
            "color: #2e8b3a;" if ok and verified else "color: #c62828;" if not ok else ""
        )
        self.result_detail.setText(detail)
        self.result_detail.setVisible(bool(detail))
        self.next_label.setText(what_next)
        self.next_label.setVisible(True)
        self.rerun_button.setVisible(self._facts(row).needs_rerun)
        self.cancel_button.setEnabled(False)
        self._show_stage(STAGE_RESULT)
