"""Workspace storage: schema migration, version refusal, atomic writes, blobs, settings, GC."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fota_studio.core.errors import WorkspaceError
from fota_studio.infra.workspace import DB_NAME, SCHEMA_VERSION, Workspace, atomic_write


def _tables(ws: Workspace) -> set[str]:
    return {r["name"] for r in ws.read("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migration_from_empty_creates_every_table(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        assert ws.schema_version == SCHEMA_VERSION
        assert {
            "repositories",
            "versions",
            "eas",
            "machines",
            "machine_history",
            "settings",
            "trusted_keys",
            "flash_records",
        } <= _tables(ws)
        assert ws.integrity_check() == "ok"
        mode = ws.read("PRAGMA journal_mode")[0][0]
        assert mode.lower() == "wal"
    raw = sqlite3.connect(workspace_dir / DB_NAME)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()


def test_reopen_keeps_data_and_does_not_migrate_again(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        ws.set_setting("answer", {"value": 42, "list": [1, 2]})
    with Workspace.open(workspace_dir) as ws:
        assert ws.schema_version == SCHEMA_VERSION
        assert ws.get_setting("answer") == {"value": 42, "list": [1, 2]}
        assert ws.get_setting("missing", "dflt") == "dflt"
        ws.set_setting("answer", 43)
        assert ws.get_setting("answer") == 43


def test_newer_schema_is_refused(workspace_dir: Path) -> None:
    Workspace.open(workspace_dir).close()
    raw = sqlite3.connect(workspace_dir / DB_NAME)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    raw.commit()
    raw.close()
    with pytest.raises(WorkspaceError, match="newer than this FOTA Studio"):
        Workspace.open(workspace_dir)


def test_not_a_database_is_refused(workspace_dir: Path) -> None:
    workspace_dir.mkdir(parents=True)
    (workspace_dir / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WorkspaceError, match="not a usable workspace database"):
        Workspace.open(workspace_dir)


def test_failed_transaction_rolls_back(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        with pytest.raises(RuntimeError), ws.transaction() as cur:
            cur.execute("INSERT INTO settings(key, value) VALUES('k', '1')")
            raise RuntimeError("boom")
        assert ws.get_setting("k") is None


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write(target, b"first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_atomic_write_failure_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.bin"
    atomic_write(target, b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    # The disk fails while the new content is being made durable: the old file must survive
    # and the temp file must be cleaned up.
    monkeypatch.setattr("fota_studio.infra.workspace.os.fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, b"new content")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_blob_store_put_get_verify(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        sha = ws.blobs.put(b"firmware bytes")
        assert ws.blobs.put(b"firmware bytes") == sha  # idempotent
        assert ws.blobs.get(sha) == b"firmware bytes"
        assert ws.blobs.verify(sha)
        assert ws.blobs.all_hashes() == [sha]
        ws.blobs.path(sha).write_bytes(b"tampered")
        assert not ws.blobs.verify(sha)
        ws.blobs.path(sha).unlink()
        assert not ws.blobs.exists(sha)
        with pytest.raises(WorkspaceError, match="missing"):
            ws.blobs.get(sha)


def test_collect_garbage_removes_only_unreferenced_blobs(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        kept = ws.blobs.put(b"referenced")
        orphan = ws.blobs.put(b"orphan")
        with ws.transaction() as cur:
            cur.execute(
                "INSERT INTO repositories(brand, model, created_at) VALUES('B', 'M', 'now')"
            )
            cur.execute(
                "INSERT INTO versions(repository_id, version, blob_sha256, crc32, size, "
                "segments, imported_at) VALUES(1, '1.0.0', ?, 0, 10, '[]', 'now')",
                (kept,),
            )
        assert ws.collect_garbage() == [orphan]
        assert ws.blobs.exists(kept)
        assert not ws.blobs.exists(orphan)


RACER = """
import sys, time
from fota_studio.cli import main
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
sys.exit(main(["--workspace", sys.argv[1], "--log-level", "WARNING", "repo", "list"]))
"""


def test_four_processes_opening_a_new_workspace_at_once_seed_it_once(tmp_path: Path) -> None:
    """Before: the migrations and the demo seeding raced ("version 3.1.0 already exists")."""
    from fota_studio.demo.catalog import DEMO_REPOSITORIES
    from tests.fakes.processes import start_together

    root = tmp_path / "new-ws"
    procs = start_together(RACER, str(root))  # they start 3 s from now, all imported by then
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "already exists" not in err and "Traceback" not in err
        assert DEMO_REPOSITORIES[0].brand in out  # every process lists the repositories
    with Workspace.open(root) as ws:
        count = ws.read("SELECT COUNT(*) FROM versions")[0][0]
        assert count == sum(len(r.versions) for r in DEMO_REPOSITORIES)
        assert ws.schema_version == SCHEMA_VERSION
