"""What the Flash panel and the technician view share: `FlashView` (the engine, its bridge, the
workspace, the replaceable `confirm` question and the machine → ECU → version combo boxes), how
each combo is filled from the workspace (without firing its change signal), how a refill keeps
the choice, how a view connects its `_on_bridge_<signal>` slots and says what blocks a flash.
The views decide what a failure shows and what a change triggers. GUI thread only."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtWidgets import QComboBox, QWidget

from fota_studio.core.ea import EcuDefinition
from fota_studio.engine.engine import Engine
from fota_studio.engine.preflight import Preflight
from fota_studio.ui.engine_bridge import EngineBridge
from fota_studio.ui.widgets.flash_widgets import ask_question
from fota_studio.ui.widgets.versions import fill_versions


class FlashView(QWidget):
    """Base of a view that flashes through the engine. Its `__init__` keeps the engine, the
    bridge and the workspace (None: none open), makes the machine / ECU / version combos
    (a change calls `_on_machine_combo_changed` / `_on_ecu_combo_changed` /
    `_on_version_combo_changed`), then calls the view's `_setup()`."""

    def __init__(
        self,
        engine: Engine,
        bridge: EngineBridge,
        ws: Any | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.bridge = bridge
        self.ws = ws
        #: Replaceable for tests: ask (title, text) -> True to go on.
        self.confirm: Callable[[str, str], bool] = lambda t, x: ask_question(self, t, x)
        self.machine_combo = QComboBox()
        self.ecu_combo = QComboBox()
        self.version_combo = QComboBox()
        self.machine_combo.currentIndexChanged.connect(self._on_machine_combo_changed)
        self.ecu_combo.currentIndexChanged.connect(self._on_ecu_combo_changed)
        self.version_combo.currentIndexChanged.connect(self._on_version_combo_changed)
        self._setup()

    def _setup(self) -> None:
        """The view's own construction (its widgets, state, bridge slots, first fill)."""

    def _on_machine_combo_changed(self, *_: object) -> None:
        """Another machine: refill the ECUs."""

    def _on_ecu_combo_changed(self, *_: object) -> None:
        """Another ECU: refill the versions."""

    def _on_version_combo_changed(self, *_: object) -> None:
        """Another version: refresh what depends on it."""


def fill_machines(combo: QComboBox, ws: Any, *, keep: bool) -> None:
    """List the workspace's machines ("serial — name", serial as data), silently; with `keep`
    the machine chosen before stays chosen (else the first). Raises what reading the workspace
    raises (the list then holds what was read)."""
    from fota_studio.infra.ea_store import EaStore

    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    try:
        if ws is not None:
            for m in EaStore(ws).list_machines():
                label = f"{m.serial} — {m.name}" if m.name and m.name != m.serial else m.serial
                combo.addItem(label, m.serial)
    finally:
        if keep:
            combo.setCurrentIndex(max(combo.findData(current), 0))
        combo.blockSignals(False)


def fill_ecus(combo: QComboBox, ecus: Iterable[EcuDefinition]) -> None:
    """List `ecus` ("name — brand model", name as data), silently."""
    combo.blockSignals(True)
    combo.clear()
    for ecu in ecus:
        combo.addItem(f"{ecu.name} — {ecu.brand} {ecu.model}", ecu.name)
    combo.blockSignals(False)


def fill_ecu_versions(combo: QComboBox, ws: Any, ecu: EcuDefinition | None) -> None:
    """List the versions of `ecu`'s repository (`fill_versions`: newest release chosen,
    retired left out), silently; empty without an ECU or workspace. Raises what reading the
    repository raises (the list is then empty)."""
    from fota_studio.infra.repository import RepositoryStore

    combo.blockSignals(True)
    combo.clear()
    try:
        if ecu is not None and ws is not None:
            versions = RepositoryStore(ws).list_versions(ecu.brand, ecu.model)
            fill_versions(combo, versions, show_retired=False)
    finally:
        combo.blockSignals(False)


def refill_keeping(combo: QComboBox, refill: Callable[[], None]) -> None:
    """Run `refill` (which fills `combo` again), then choose what was chosen before if it is
    still listed (a version was imported or retired)."""
    current = combo.currentData()
    refill()
    index = combo.findData(current)
    if index >= 0:
        combo.setCurrentIndex(index)


def connect_bridge(bridge: Any, view: Any, *signals: str) -> None:
    """Connect each of the EngineBridge's `signals` to `view._on_bridge_<signal>`."""
    for name in signals:
        getattr(bridge, name).connect(getattr(view, f"_on_bridge_{name}"))


def blocking_text(pre: Preflight, headline: str, skipped_title: str, advice: str) -> str:
    """Why the pre-flight `pre` blocks the flash, one line each: `headline`, every blocking
    reason, the skipped preconditions (under `skipped_title`) with their reasons, `advice`."""
    lines = [headline, *(f"• {b}" for b in pre.blocking)]
    skipped = [p for p in pre.preconditions if p.ok is None and p.skippable]
    if skipped:
        lines.append(skipped_title)
        lines += [f"• {p.name}: {p.skip_reason or 'no reason given'}" for p in skipped]
    lines.append(advice)
    return "\n".join(lines)
