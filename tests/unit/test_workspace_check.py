"""`fota-studio workspace check` (issue 14): ok on a healthy workspace; names every missing or
corrupt blob, random bytes in the database pages, and a newer schema, and exits 1 on any; never
writes to the workspace it checks."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest

from fota_studio.cli import main
from fota_studio.infra.workspace import DB_NAME, SCHEMA_VERSION, Workspace
from tests.fakes.storage import scribble_btree_pages


@pytest.fixture
def seeded(workspace_dir: Path) -> Path:
    from fota_studio.demo.seed import ensure_demo

    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
    return workspace_dir


def _check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--workspace", str(root), "workspace", "check"])
    return code, capsys.readouterr().out


def _blob_of(root: Path) -> tuple[str, Path]:
    with Workspace.open(root) as ws:
        sha = ws.read("SELECT blob_sha256 FROM versions ORDER BY id LIMIT 1")[0][0]
        return sha, ws.blobs.path(sha)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))  # SQLite's read index files
    }


def test_healthy_workspace_is_ok_and_untouched(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _tree(seeded)
    code, out = _check(seeded, capsys)
    assert code == 0 and "workspace check: ok" in out and "PROBLEM" not in out
    assert _tree(seeded) == before


def test_missing_and_corrupt_blobs_are_named(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sha, path = _blob_of(seeded)
    path.unlink()
    code, out = _check(seeded, capsys)
    assert code == 1 and f"missing blob {sha[:12]}" in out and "firmware" in out
    path.write_bytes(b"not the firmware")
    code, out = _check(seeded, capsys)
    assert code == 1 and f"corrupt blob {sha[:12]}" in out


def test_random_bytes_in_database_pages_are_reported(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed in range(5):
        with Workspace.open(seeded) as ws:  # each round on an intact copy
            ws.read("SELECT 1")
        backup = (seeded / DB_NAME).read_bytes()
        assert scribble_btree_pages(seeded / DB_NAME, random.Random(seed))
        code, out = _check(seeded, capsys)
        assert code == 1 and "PROBLEM" in out, (seed, out)
        (seeded / DB_NAME).write_bytes(backup)


def test_bad_shaped_values_are_reported(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Workspace.open(seeded) as ws, ws.transaction() as cur:
        cur.execute("UPDATE versions SET segments = '[{not json' WHERE id = 1")
        cur.execute(
            "INSERT INTO flash_records(started_at, ecu, result, record, buslog_sha256) "
            "VALUES ('x', 'VCU', 'failed', '{}', 'nothex')"
        )
    code, out = _check(seeded, capsys)
    assert code == 1
    assert "versions row 1 column segments: not valid JSON" in out
    assert "column buslog_sha256: 'nothex' is not a SHA-256" in out


def test_newer_schema_is_a_problem_and_not_migrated(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace_dir.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(workspace_dir / DB_NAME)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    raw.commit()
    raw.close()
    code, out = _check(workspace_dir, capsys)
    assert code == 1 and f"schema {SCHEMA_VERSION + 3} is newer" in out
    assert not (workspace_dir / (DB_NAME + "-wal")).exists()


def test_no_workspace_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(tmp_path / "nothing", capsys)
    assert code == 1 and "no workspace database" in out
    assert not (tmp_path / "nothing").exists()


def test_interrupted_flash_is_a_note_not_a_problem(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(seeded) as ws, ws.transaction() as cur:
        cur.execute(
            "INSERT INTO flash_records(started_at, machine, ecu, result, record) "
            "VALUES ('2026-01-01', 'M', 'VCU', 'started', '{}')"
        )
    code, out = _check(seeded, capsys)
    assert code == 0 and "note: flash job" in out
    assert os.path.exists(seeded / DB_NAME)
