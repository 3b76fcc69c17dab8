"""Run `fota-studio` in the test's own process through `cli.main` (or build its command line for
a child process), quiet unless asked, and a demo workspace seeded once per test module. Main
thread of a test."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from fota_studio.cli import main


def cli_command(*argv: str, log_level: str = "WARNING") -> list[str]:
    """The command line of `fota-studio --log-level <log_level> <argv>` in a child process
    (this interpreter, `python -m fota_studio`)."""
    return [sys.executable, "-m", "fota_studio", "--log-level", log_level, *argv]


def cli(ws_dir: Path | None, *argv: str, log_level: str = "WARNING") -> int:
    """Exit code of `fota-studio --log-level <log_level> [--workspace <ws_dir>] <argv>`."""
    workspace = [] if ws_dir is None else ["--workspace", str(ws_dir)]
    return main(["--log-level", log_level, *workspace, *argv])


@pytest.fixture(scope="module")
def seeded_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo workspace seeded once per test module (`repo list` creates it); tests change
    only copies of it (`seeded_copy`)."""
    ws_dir = tmp_path_factory.mktemp("seed") / "ws"
    assert cli(ws_dir, "repo", "list") == 0
    return ws_dir


@pytest.fixture
def seeded_copy(seeded_workspace: Path, tmp_path: Path) -> Path:
    """This test's own copy of the seeded demo workspace, at tmp_path / "ws"."""
    ws_dir = tmp_path / "ws"
    shutil.copytree(seeded_workspace, ws_dir)
    return ws_dir
