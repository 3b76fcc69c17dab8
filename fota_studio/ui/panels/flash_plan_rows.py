"""The Flash panel's machine-level flash (issue 18 §4): tick several ECUs of the machine, each
with its version (`PlanPicker`), and watch ONE progress row per ECU while `Engine.submit_plan`
runs them as one job (`PlanRows`): waiting / running + step / verified / not verified / failed
with the reason / skipped with the reason, a progress bar and the bytes written. The rows
follow the engine events of the plan's per-ECU job ids (`EngineBridge.event_received`). GUI
thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QProgressBar, QWidget

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.errors import FotaError
from fota_studio.core.events import (
    EngineEvent,
    JobFailed,
    JobFinished,
    Progress,
    StepStarted,
)
from fota_studio.core.flash_outcome import not_verified_reason
from fota_studio.core.flash_record import (
    PLAN_CANCELLED,
    PLAN_FAILED,
    PLAN_NOT_VERIFIED,
    PLAN_SKIPPED,
    PLAN_VERIFIED,
)
from fota_studio.engine.engine import PlanHandle
from fota_studio.engine.flash_job import FlashResult, ImageLike
from fota_studio.engine.flash_plan_run import PLAN_RUNNING, PLAN_WAITING, PlanEcuState
from fota_studio.ui.panels.flash_choice import fill_ecu_versions
from fota_studio.ui.widgets.flash_widgets import fmt_bytes, set_bar_state, wrapping_label

#: Each PLAN_* state: the row's word and its bar state (`set_bar_state`).
_LOOK = {
    PLAN_WAITING: ("waiting", "running"),
    PLAN_RUNNING: ("running", "running"),
    PLAN_VERIFIED: ("verified", "done"),
    PLAN_NOT_VERIFIED: ("not verified", "done"),
    PLAN_FAILED: ("failed", "failed"),
    PLAN_CANCELLED: ("cancelled", "cancelled"),
    PLAN_SKIPPED: ("skipped", "cancelled"),
}


def image_loader(ws: Any, machine: str, ecu: str, version: str) -> Callable[[], ImageLike]:
    """A loader for `submit_flash` / `PlanItem`: the one resolver (engine/targets.py: flash
    policy, image, fit) for (machine, ECU, version), called on the engine's thread."""

    def load() -> ImageLike:
        from fota_studio.engine.targets import resolve_flash_target

        return resolve_flash_target(ws, machine, ecu, version).image

    return load


def clear_grid(grid: QGridLayout) -> None:
    """Remove (and delete) every widget of `grid` (before it is filled again)."""
    while grid.count():
        item = grid.takeAt(0)
        widget = item.widget() if item is not None else None
        if widget is not None:
            widget.deleteLater()


class _Grid(QWidget):
    """A widget laid out as rows of a grid, refilled as a whole."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)

    def _clear(self) -> None:
        clear_grid(self._grid)

    def _put(self, row: int, *widgets: QWidget) -> None:
        """Fill grid row `row` with `widgets`, one column each."""
        for column, widget in enumerate(widgets):
            self._grid.addWidget(widget, row, column)


class PlanPicker(_Grid):
    """A tick box and a version list per ECU of the machine (the newest release preselected)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.checks: dict[str, QCheckBox] = {}
        self.versions: dict[str, QComboBox] = {}
        self._ecus: dict[str, EcuDefinition] = {}

    def set_ecus(self, ws: Any, ecus: list[EcuDefinition]) -> list[str]:
        """Offer `ecus` (keeps the ticks and versions of ECUs offered before); returns the
        problems of ECUs whose repository cannot be read (they are offered without versions)."""
        ticked = {n for n, c in self.checks.items() if c.isChecked()}
        chosen = {n: c.currentData() for n, c in self.versions.items()}
        self._clear()
        self.checks, self.versions = {}, {}
        self._ecus = {e.name: e for e in ecus}
        problems: list[str] = []
        for row, ecu in enumerate(ecus):
            check = QCheckBox(f"{ecu.name} — {ecu.brand} {ecu.model}")
            check.setChecked(ecu.name in ticked)
            combo = QComboBox()
            try:
                fill_ecu_versions(combo, ws, ecu)
            except FotaError as exc:
                problems.append(f"no repository for {ecu.brand} {ecu.model}: {exc}")
            index = combo.findData(chosen.get(ecu.name))
            if index >= 0:
                combo.setCurrentIndex(index)
            self._put(row, check, combo)
            self.checks[ecu.name], self.versions[ecu.name] = check, combo
        return problems

    def chosen(self) -> list[tuple[EcuDefinition, str]]:
        """The ticked ECUs that have a version chosen, in the EA's order."""
        return [
            (ecu, str(self.versions[name].currentData()))
            for name, ecu in self._ecus.items()
            if self.checks[name].isChecked() and self.versions[name].currentData() is not None
        ]


@dataclass(eq=False)
class _Row:
    ecu: str
    state: QLabel
    bar: QProgressBar
    bytes: QLabel
    plan_state: str = PLAN_WAITING


class PlanRows(_Grid):
    """One row per ECU of a running (or the last) plan: name, state, progress bar, bytes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: dict[int, _Row] = {}

    def start(self, plan: PlanHandle) -> None:
        """Show one waiting row per ECU of `plan` (its per-ECU job ids name the rows)."""
        self._clear()
        self._rows = {}
        for n, (name, handle) in enumerate(plan.ecus.items()):
            bar = QProgressBar()
            bar.setRange(0, 1000)
            row = _Row(name, wrapping_label("waiting"), bar, QLabel(""))
            set_bar_state(bar, "running")
            self._put(n, QLabel(f"<b>{name}</b>"), row.state, bar, row.bytes)
            self._rows[handle.job_id] = row
        self._grid.setColumnStretch(1, 2)
        self._grid.setColumnStretch(2, 1)

    def on_event(self, ev: EngineEvent) -> None:
        """Follow one engine event (ignored unless it belongs to an ECU of the plan)."""
        row = self._rows.get(ev.job_id)
        if row is None:
            return
        if isinstance(ev, PlanEcuState):
            detail = {PLAN_RUNNING: "", PLAN_WAITING: ev.detail and f"after {ev.detail}"}
            self._set(row, ev.state, detail.get(ev.state, ev.detail))
        elif isinstance(ev, StepStarted) and row.plan_state == PLAN_RUNNING:
            row.state.setText(f"running: {ev.step.replace('_', ' ')}")
        elif isinstance(ev, Progress):
            row.bar.setValue(int(ev.fraction * 1000))
            row.bytes.setText(f"{fmt_bytes(ev.bytes_done)} / {fmt_bytes(ev.bytes_total)}")
        elif isinstance(ev, JobFinished) and isinstance(ev.result, FlashResult):
            result = ev.result
            if result.verified:
                self._set(row, PLAN_VERIFIED, f"runs {result.version_after}")
            else:
                self._set(row, PLAN_NOT_VERIFIED, not_verified_reason(result.record))
        elif isinstance(ev, JobFailed) and row.plan_state != PLAN_SKIPPED:
            state = PLAN_CANCELLED if ev.cancelled else PLAN_FAILED
            self._set(row, state, ev.error + (f" — {ev.hint}" if ev.hint else ""))

    def _set(self, row: _Row, state: str, detail: str) -> None:
        word, bar_state = _LOOK.get(state, (state, "running"))
        row.plan_state = state
        row.state.setText(f"{word}: {detail}" if detail else word)
        set_bar_state(row.bar, bar_state)
        if state in (PLAN_VERIFIED, PLAN_NOT_VERIFIED):
            row.bar.setValue(row.bar.maximum())

    def state_of(self, ecu: str) -> str:
        """The shown PLAN_* state of `ecu`'s row ("" when it has none) — for tests."""
        return next((r.plan_state for r in self._rows.values() if r.ecu == ecu), "")

    def text_of(self, ecu: str) -> str:
        """The shown state text of `ecu`'s row."""
        return next((r.state.text() for r in self._rows.values() if r.ecu == ecu), "")

    def bar_of(self, ecu: str) -> QProgressBar | None:
        """The progress bar of `ecu`'s row."""
        return next((r.bar for r in self._rows.values() if r.ecu == ecu), None)

    def ecus(self) -> list[str]:
        """The ECUs shown, one row each."""
        return [r.ecu for r in self._rows.values()]
