"""Hostile storage (issue 14): a full disk and read-only media give one clear line, never a
traceback or a SIGBUS; a newer-schema workspace is refused before anything is written; a
read-only workspace serves the read-only commands.

The full disk is a real one: a tiny tmpfs mounted in a private mount namespace (`unshare -rm`,
no privileges needed where user namespaces are allowed; the tests skip elsewhere). Read-only
media are a read-only bind mount of the workspace in the same kind of namespace.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from fota_studio.core.errors import WorkspaceError
from fota_studio.infra.workspace import DB_NAME, Workspace
from tests.fakes.storage import newer_schema_database
from tests.helpers.cli import cli_command

REPO = Path(__file__).resolve().parents[2]


def _namespaces_work() -> bool:
    if os.name != "posix" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "d=$(mktemp -d); mount -t tmpfs -o size=64k t $d"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_ns = pytest.mark.skipif(not _namespaces_work(), reason="needs unshare -rm (mount ns)")


def _cli(*args: str) -> str:
    return shlex.join(cli_command(*args))


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private user + mount namespace (mounts vanish with it)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _seeded(root: Path) -> Path:
    from fota_studio.demo.seed import ensure_demo

    with Workspace.open(root) as ws:
        ensure_demo(ws)
    return root


def _one_clear_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _fill(mount: Path, leave_kib: int) -> str:
    """Shell: fill the tmpfs at `mount` until only ~`leave_kib` KiB are left."""
    return (
        f"avail=$(df -k --output=avail {mount} | tail -1); "
        f"dd if=/dev/zero of={mount}/filler bs=1k count=$((avail - {leave_kib})) 2>/dev/null; "
    )


def _cli_on_a_full_disk(
    tmp_path: Path, leave_kib: int, *args: str
) -> subprocess.CompletedProcess[str]:
    """In a namespace: a seeded workspace copied onto an 8 MiB tmpfs filled up to ~`leave_kib`
    KiB free, then `fota-studio --workspace <it> <args>`."""
    src = _seeded(tmp_path / "ws")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    ws = mnt / "ws"
    return _in_namespace(
        f"mount -t tmpfs -o size=8m fota-full {mnt} && cp -a {src} {ws} && {_fill(mnt, leave_kib)}"
        + _cli("--workspace", str(ws), *args)
    )


@needs_ns
def test_import_on_a_full_disk_is_one_clear_line(tmp_path: Path) -> None:
    """Before: a raw Python traceback (OSError ENOSPC / sqlite3 'database or disk is full')."""
    firmware = tmp_path / "big.bin"
    firmware.write_bytes(os.urandom(600 * 1024))
    repository = ("--brand", "Hostile", "--model", "Disk", "--version", "1.0.0", "--create")
    proc = _cli_on_a_full_disk(
        tmp_path, 200, "repo", "import", str(firmware), *repository, "--base-address", "0x10000"
    )
    _one_clear_line(proc, "disk is full")


@needs_ns
def test_simulated_flash_on_a_full_disk_is_one_clear_line_not_sigbus(tmp_path: Path) -> None:
    """Before: the sparse mmap'd flash file killed `flash --simulate` with SIGBUS (-7)."""
    unit = ("--machine", "Unit #1001", "--ecu", "VCU", "--version", "3.2.0")
    proc = _cli_on_a_full_disk(tmp_path, 300, "flash", *unit, "--simulate", "--no-progress")
    assert proc.returncode != -7, "SIGBUS"
    _one_clear_line(proc, "cannot allocate the simulated ECU flash")
    assert "not properly shut down" not in proc.stderr  # nothing half-started is left behind


@needs_ns
def test_read_only_workspace_serves_read_only_commands(tmp_path: Path) -> None:
    """Before: even `records list` was refused on a read-only medium."""
    ws = _seeded(tmp_path / "ws")
    ro = f"mount --bind {ws} {ws} && mount -o remount,ro,bind {ws} && "
    for args in (
        ["records", "list"],
        ["repo", "list"],
        ["ea", "list"],
        ["records", "verify"],
        ["workspace", "check"],
    ):
        proc = _in_namespace(ro + _cli("--workspace", str(ws), *args))
        assert proc.returncode == 0, (args, proc.stdout[-1500:], proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr
    proc = _in_namespace(
        ro + _cli("--workspace", str(ws), "repo", "create", "--brand", "Ro", "--model", "M")
    )
    _one_clear_line(proc, "read-only")


def test_read_only_open_reads_and_refuses_writes_in_one_line(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        ws.set_setting("k", 1)
    with Workspace.open(workspace_dir, read_only=True) as ws:
        assert ws.read_only and ws.get_setting("k") == 1
        with pytest.raises(WorkspaceError, match="read-only"):
            ws.set_setting("k", 2)
    with Workspace.open(workspace_dir) as ws:
        assert ws.get_setting("k") == 1


def test_newer_schema_is_refused_before_anything_is_written(workspace_dir: Path) -> None:
    """Before: the workspace was switched to WAL (a write) and only then refused."""
    before = newer_schema_database(workspace_dir).read_bytes()
    with pytest.raises(WorkspaceError, match="newer"):
        Workspace.open(workspace_dir)
    assert (workspace_dir / DB_NAME).read_bytes() == before
    assert not (workspace_dir / (DB_NAME + "-wal")).exists()
    raw = sqlite3.connect(workspace_dir / DB_NAME)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        raw.close()
