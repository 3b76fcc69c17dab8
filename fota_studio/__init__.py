"""FOTA Studio: operator and engineering console for updating ECU firmware over CAN.

The package version comes from the installed distribution metadata (pyproject.toml is the one
place it is written); a source checkout that is not installed falls back to reading pyproject.
Any thread may import this module.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from pathlib import Path as _Path


def _read_version() -> str:
    """Return the version from the installed metadata, else from pyproject.toml, else 0+unknown."""
    try:
        return _metadata.version("fota-studio")
    except _metadata.PackageNotFoundError:
        pass
    pyproject = _Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib

        with pyproject.open("rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "0+unknown"


__version__ = _read_version()
__all__ = ["__version__"]
