"""The machine → ECU → version combo boxes of the Flash panel and the technician view: how each
is filled from the workspace (without firing its change signal), and how a refill keeps the
choice. The views decide what a failure shows and what a change triggers. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtWidgets import QComboBox

from fota_studio.core.ea import EcuDefinition
from fota_studio.ui.widgets.versions import fill_versions


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
