"""Where things live on disk: default workspace, settings and log folders (platformdirs)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "FOTA Studio"
APP_AUTHOR = "FOTA Studio"
WORKSPACE_ENV = "FOTA_STUDIO_WORKSPACE"


def default_workspace_dir() -> Path:
    """The per-user default workspace folder (env FOTA_STUDIO_WORKSPACE overrides it)."""
    env = os.environ.get(WORKSPACE_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)) / "workspace"


SIM_STATE_DIRNAME = "sim"
"""Folder of a workspace where the simulated machine keeps its ECUs' flash and state."""


def sim_state_dir(workspace_root: str | os.PathLike[str] | None = None) -> Path:
    """Where the simulated machine of a workspace keeps its state: the same folder for the
    Simulator panel, `fota-studio sim` and `flash --simulate`, so all three see the firmware
    the others flashed (default workspace when `workspace_root` is None)."""
    root = Path(workspace_root) if workspace_root is not None else default_workspace_dir()
    return root / SIM_STATE_DIRNAME


def resolve_workspace_dir(explicit: str | os.PathLike[str] | None) -> Path:
    """The workspace folder from `--workspace`, else the default."""
    return Path(explicit).expanduser() if explicit else default_workspace_dir()


def config_dir() -> Path:
    """The per-user config folder for settings files."""
    return Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR))


def log_dir() -> Path:
    """The per-user log folder."""
    return Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR))
