"""User settings: small versioned dataclasses in one JSON file under the per-user config folder.

The file (`settings.json` in `paths.config_dir()`) carries a `schema_version`; older files are
upgraded by the functions in `MIGRATIONS` (index i upgrades version i to i+1) before they are
decoded, unknown keys are ignored and bad values fall back to defaults, so a hand-edited or
half-broken file never stops the app from starting. Writes are atomic (temp file, fsync,
rename). Window geometry and dock layout do NOT live here (the GUI keeps them in QSettings).
Secrets never go here (they belong in the OS keyring). Plain functions on plain data: any thread
may call them, but the GUI thread is the only writer in practice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fota_studio.infra.paths import config_dir
from fota_studio.infra.workspace import atomic_write

_log = logging.getLogger(__name__)

SETTINGS_FILE_NAME = "settings.json"
THEMES = ("system", "light", "dark")
MAX_RECENT = 10

#: Migrations; index i upgrades a raw settings dict from schema i to i+1. Append, never edit.
MIGRATIONS: list[Callable[[dict[str, Any]], dict[str, Any]]] = []


def _v0_to_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """v0 (unversioned, flat keys) → v1: group the UI keys and rename the timeout key."""
    out: dict[str, Any] = {"ui": {}, "approval": {}}
    for key in ("theme", "recent_workspaces", "recent_log_files"):
        if key in raw:
            out["ui"][key] = raw[key]
    # v0 stored the approval timeout in minutes under `approval_timeout`.
    if "approval_timeout" in raw:
        try:
            out["approval"]["operator_timeout_s"] = float(raw["approval_timeout"]) * 60.0
        except (TypeError, ValueError):
            pass
    return out


MIGRATIONS.append(_v0_to_v1)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class UiSettings:
    """Look and recent-file lists of the GUI."""

    theme: str = "system"
    recent_workspaces: tuple[str, ...] = ()
    recent_log_files: tuple[str, ...] = ()
    log_panel_max_lines: int = 20_000
    welcome_shown: bool = False
    """True once the user ticked "Don't show again" on the first-run welcome."""


@dataclass(frozen=True)
class ApprovalSettings:
    """Defaults for the two FOTA checkpoints (operator approval, health verification)."""

    operator_timeout_s: float = 300.0
    verification_timeout_s: float = 120.0


@dataclass(frozen=True)
class Settings:
    """All user settings; immutable — change with `dataclasses.replace` and `save_settings`."""

    ui: UiSettings = field(default_factory=UiSettings)
    approval: ApprovalSettings = field(default_factory=ApprovalSettings)

    def with_recent_workspace(self, path: str | Path) -> Settings:
        """Return a copy with `path` first in the recent-workspace list (deduplicated, bounded)."""
        return replace(
            self,
            ui=replace(self.ui, recent_workspaces=_push_recent(self.ui.recent_workspaces, path)),
        )

    def with_recent_log_file(self, path: str | Path) -> Settings:
        """Return a copy with `path` first in the recent-log-file list (deduplicated, bounded)."""
        return replace(
            self, ui=replace(self.ui, recent_log_files=_push_recent(self.ui.recent_log_files, path))
        )


def _push_recent(items: tuple[str, ...], path: str | Path) -> tuple[str, ...]:
    text = str(path)
    return (text, *[p for p in items if p != text])[:MAX_RECENT]


def settings_path(folder: Path | None = None) -> Path:
    """The settings file in `folder` (default: the per-user config folder)."""
    return (folder if folder is not None else config_dir()) / SETTINGS_FILE_NAME


def _coerce(default: Any, value: Any) -> Any:
    """Return `value` converted to the type of `default`, or `default` when it does not fit."""
    if isinstance(default, bool):
        return value if isinstance(value, bool) else default
    if isinstance(default, int):
        return value if isinstance(value, int) and not isinstance(value, bool) else default
    if isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        return float(value) if ok else default
    if isinstance(default, str):
        return value if isinstance(value, str) else default
    if isinstance(default, tuple):
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)[:MAX_RECENT]
        return default
    return default


def _decode_section(cls: type[Any], raw: Any) -> Any:
    """Build dataclass `cls` from a dict, keeping defaults for missing or bad values."""
    default = cls()
    if not isinstance(raw, dict):
        return default
    values = {
        f.name: _coerce(getattr(default, f.name), raw[f.name]) for f in fields(cls) if f.name in raw
    }
    out = replace(default, **values)
    if isinstance(out, UiSettings) and out.theme not in THEMES:
        out = replace(out, theme="system")
    return out


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a raw settings dict to `SCHEMA_VERSION` (a dict without a version is v0)."""
    version = raw.get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        version = 0
    data = {k: v for k, v in raw.items() if k != "schema_version"}
    for step in range(version, SCHEMA_VERSION):
        data = MIGRATIONS[step](data)
    return data


def decode_settings(raw: dict[str, Any]) -> Settings:
    """Turn a raw (possibly old) settings dict into `Settings`."""
    version = raw.get("schema_version", 0)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        _log.warning(
            "settings file schema %s is newer than this FOTA Studio (%s); reading what fits",
            version,
            SCHEMA_VERSION,
        )
        data = {k: v for k, v in raw.items() if k != "schema_version"}
    else:
        data = migrate(raw)
    return Settings(
        ui=_decode_section(UiSettings, data.get("ui")),
        approval=_decode_section(ApprovalSettings, data.get("approval")),
    )


def encode_settings(settings: Settings) -> dict[str, Any]:
    """Turn `Settings` into the JSON-ready dict written to disk (with `schema_version`)."""
    body = asdict(settings)
    for section in body.values():
        for key, value in section.items():
            if isinstance(value, tuple):
                section[key] = list(value)
    return {"schema_version": SCHEMA_VERSION, **body}


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings file; defaults when it is missing or unreadable (logged, not raised)."""
    target = path if path is not None else settings_path()
    try:
        raw = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        _log.warning("%s: cannot read settings (%s); using defaults", target, exc)
        return Settings()
    if not isinstance(raw, dict):
        _log.warning("%s: settings file is not a JSON object; using defaults", target)
        return Settings()
    return decode_settings(raw)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings file atomically and return its path."""
    target = path if path is not None else settings_path()
    text = json.dumps(encode_settings(settings), indent=2, sort_keys=True) + "\n"
    atomic_write(target, text.encode("utf-8"))
    return target
