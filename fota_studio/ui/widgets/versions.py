"""The firmware-version combo boxes of the Flash panel and the New update request dialog."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtWidgets import QComboBox

from fota_studio.core.versions import is_prerelease


def fill_versions(combo: QComboBox, versions: Iterable[Any], *, show_retired: bool) -> None:
    """List `versions` (VersionInfo, oldest first) newest first, each with its version string
    as item data. Pre-releases are marked "(pre-release)" and retired versions "(retired)" (or
    left out unless `show_retired`); the current item is the newest release that is not
    retired, because bringing an ECU up to the latest release is the usual intent and a
    pre-release on a production machine must be a deliberate choice."""
    combo.clear()
    default = -1
    for v in reversed(list(versions)):
        if v.retired and not show_retired:
            continue
        pre = is_prerelease(v.version)
        marks = [m for m, on in (("pre-release", pre), ("retired", v.retired)) if on]
        combo.addItem(v.version + "".join(f" ({m})" for m in marks), v.version)
        if default < 0 and not pre and not v.retired:
            default = combo.count() - 1
    if combo.count():
        combo.setCurrentIndex(max(default, 0))
