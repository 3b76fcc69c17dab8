"""The Repository panel's PDX / ODX-F branch (issue 19): a container picked in the import form or
dropped on the panel is imported with its own identity (company, ECU, version ident), its data
blocks as the version's segments and its checksums verified, off the GUI thread
(`ui/background` through the panel's task plumbing). A container that breaks the ODX rules is
refused first; the panel then asks whether to read it leniently (odxtools' non-strict mode) and
lists, per problem, what was ignored. Afterwards the flash parameters the container states are
offered, per EA ECU of that Brand/Model, in the `EaDiffDialog`; only what the engineer accepts
is saved (`ea_profile_changed(ea name)` follows).

`panel.review_profile_changes(ea, ecu, changes, container) -> accepted changes` may replace the
dialog (tests). GUI thread only, except `work`, which runs on `fota-ui-io`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialog, QWidget

from fota_studio.core.errors import FotaError, ImageError
from fota_studio.core.pdx import ProfileChange
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.pdx_import import (
    ContainerImport,
    accept_changes,
    offered_changes,
    prepare_container,
)
from fota_studio.infra.repository import ImportResult
from fota_studio.ui.dialogs.ea_diff_dialog import EaDiffDialog

_log = logging.getLogger(__name__)

#: File dialog filter of the containers (the import form adds it to its firmware filter).
CONTAINER_FILTER = "ODX-F / PDX flash containers (*.pdx *.odx-f)"


@dataclass(frozen=True)
class ContainerImported:
    """What the background import returns to the GUI thread."""

    result: ImportResult
    done: ContainerImport
    offers: dict[tuple[str, str], list[ProfileChange]]


def review_with_dialog(
    parent: QWidget, ea: str, ecu: str, changes: list[ProfileChange], container: str
) -> list[ProfileChange]:
    """The default review: the EA diff dialog, modal; the changes the engineer applied."""
    dlg = EaDiffDialog(ea, ecu, changes, container=container, parent=parent)
    dlg.exec()
    return dlg.accepted_changes() if dlg.result() == QDialog.DialogCode.Accepted else []


def start_container_import(
    panel: Any, path: Path, *, create_repository: bool = True, lenient: bool = False
) -> Any:
    """Import container `path` into `panel`'s workspace in the background (see module doc)."""
    if panel._task is not None:
        panel.show_error("Import not started", "Another import or export is still running.", None)
        return None
    store = panel.store
    ws = panel._ws

    def work(progress: Callable[[float], None]) -> ContainerImported:
        done = prepare_container(
            store,
            path,
            lenient=lenient,
            create_repository=create_repository,
            progress=progress,
        )
        result = store.commit_imports([done.prepared])[0]
        offers = offered_changes(EaStore(ws), result.version, done.container)
        return ContainerImported(result, done, offers)

    def succeeded(out: ContainerImported) -> None:
        panel._on_import_succeeded(out.result)
        c = out.done.container
        _log.info(
            "%s: %d data block(s); %s",
            c.source_name,
            len(c.blocks),
            "; ".join(out.done.checksums.verified) or "no checksums stated",
        )
        if out.done.problems:
            panel.show_warnings(
                f"{c.source_name} imported leniently: what was ignored",
                list(out.done.problems),
            )
        review = getattr(panel, "review_profile_changes", None) or (
            lambda ea, ecu, changes, name: review_with_dialog(panel, ea, ecu, changes, name)
        )
        for (ea_name, ecu_name), changes in out.offers.items():
            accepted = review(ea_name, ecu_name, changes, c.source_name)
            if not accepted:
                _log.info("EA %s / %s: container changes not applied", ea_name, ecu_name)
                continue
            try:
                accept_changes(EaStore(ws), ea_name, ecu_name, accepted)
            except FotaError as exc:
                panel.show_error(f"EA {ea_name} not changed", exc, None)
                continue
            _log.info(
                "EA %s / %s: applied %s from %s",
                ea_name,
                ecu_name,
                ", ".join(ch.key for ch in accepted),
                c.source_name,
            )
            panel.ea_profile_changed.emit(ea_name)

    def failed(exc: BaseException, details: str) -> None:
        hint = (exc.hint or "") if isinstance(exc, ImageError) else ""
        if not lenient and "--lenient" in hint:
            question = (
                f"{exc.message if isinstance(exc, FotaError) else exc}\n\n"
                "Import it leniently? odxtools then reads it in its non-strict mode and every "
                "problem it ignores is listed. A wrong checksum is refused anyway."
            )
            if panel.confirm("The container breaks the ODX rules", question):
                # After this task's finish handler has released the panel.
                QTimer.singleShot(
                    0,
                    lambda: start_container_import(
                        panel, path, create_repository=create_repository, lenient=True
                    ),
                )
                return
        panel._on_import_failed(exc, details)

    _log.info("importing container %s%s", path, " (lenient)" if lenient else "")
    return panel._start(f"Importing {path.name}…", work, succeeded, failed)
