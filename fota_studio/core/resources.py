"""Where the files FOTA Studio ships live: the TCU's EDS, the EA schema, icons, example EAs and
the user manual.

The one source is the top-level `resources/` folder (and `docs/USER_MANUAL.md` with its images)
of the source tree. A built package carries them inside itself as `fota_studio/resources/`
(`setup.py` copies them in at build time; the user manual goes to `resources/manual/`), and the
PyInstaller bundle puts them at the same place under `sys._MEIPASS`, so installed and frozen
copies are found with `importlib.resources`. A source checkout (editable install, tests) has no
copy inside the package and reads the source folders themselves. Every reader (TCU node and
trace EDS, icons, self-test, Help ▸ User manual) asks this module. Pure; any thread.
"""

from __future__ import annotations

import sys
from importlib import resources as _ilr
from pathlib import Path

#: The folder name inside the package (and in the source tree).
RESOURCES = "resources"
#: Where the user manual is inside the packaged resources.
MANUAL_DIR = "manual"
MANUAL_FILE = "USER_MANUAL.md"

#: fota_studio/core/resources.py -> the source tree root.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _packaged() -> Path | None:
    """`fota_studio/resources` inside an installed package or a frozen bundle, if present."""
    try:
        root = _ilr.files("fota_studio").joinpath(RESOURCES)
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - fota_studio is importable
        return None
    path = Path(str(root))
    if path.is_dir():
        return path
    base = getattr(sys, "_MEIPASS", None)
    if base is not None and (Path(base) / "fota_studio" / RESOURCES).is_dir():
        return Path(base) / "fota_studio" / RESOURCES
    return None


def resources_dir() -> Path:
    """The folder with the shipped resources (packaged copy first, then the source tree)."""
    return _packaged() or _SOURCE_ROOT / RESOURCES


def resource_path(*parts: str) -> Path:
    """A shipped resource, e.g. `resource_path("icons", "app.svg")` (may not exist)."""
    return resources_dir().joinpath(*parts)


def manual_path() -> Path:
    """The user manual (USER_MANUAL.md; its images are in `images/` beside it)."""
    packaged = _packaged()
    if packaged is not None:
        return packaged / MANUAL_DIR / MANUAL_FILE
    return _SOURCE_ROOT / "docs" / MANUAL_FILE
