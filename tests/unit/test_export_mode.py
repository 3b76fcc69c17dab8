"""Exported files get the mode a new file gets (0o666 minus the umask), not the 0o600 of the
temp file they are written through (issue 15: exports were readable by their owner only)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fota_studio.demo.catalog import DEMO_REPOSITORIES
from fota_studio.demo.seed import ensure_demo
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace, atomic_write, public_file_mode

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_public_file_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert public_file_mode() == 0o640
    finally:
        os.umask(old)
    secret = tmp_path / "secret.bin"
    atomic_write(secret, b"k")
    assert _mode(secret) == 0o600  # settings, keys: owner only, as before


@pytest.mark.parametrize("fmt", ["hex", "bin", "package"])
def test_exported_firmware_is_not_owner_only(tmp_path: Path, fmt: str) -> None:
    ws = Workspace.open(tmp_path / "ws")
    try:
        ensure_demo(ws)
        repo = DEMO_REPOSITORIES[0]
        out = tmp_path / f"export.{fmt}"
        RepositoryStore(ws).export(
            repo.brand, repo.model, repo.versions[0], fmt, out, confirm_size=lambda *_: True
        )
        assert _mode(out) == public_file_mode()
    finally:
        ws.close()
