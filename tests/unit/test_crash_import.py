"""Crash durability of imports: a child process importing firmware is SIGKILLed at random moments.

After every kill the workspace must reopen healthy: SQLite integrity "ok", every version row has
its complete, uncorrupted blob, no half-written version, and `collect_garbage` removes the blobs a
kill left behind without a row. POSIX only (SIGKILL).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")

KILLS = 20
IMAGE_BYTES = 256 << 10  # 256 KiB per import: big enough that kills land mid-write
BASE_ADDRESS = 0x1_0000
BRAND, MODEL = "Crash", "Test"

# The child imports new versions in a loop until it is killed. Each import gets different
# content (the version number in its first bytes) so every import writes a new blob.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fota_studio.infra.repository import RepositoryStore
    from fota_studio.infra.workspace import Workspace

    ws_dir, src, scratch = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ws = Workspace.open(ws_dir)
    store = RepositoryStore(ws)
    data = bytearray(src.read_bytes())
    n = len(store.list_versions("Crash", "Test"))
    print("ready", flush=True)
    while True:
        data[0:8] = n.to_bytes(8, "little")
        path = scratch / f"fw-{n}.bin"
        path.write_bytes(data)
        store.import_file("Crash", "Test", f"1.0.{n}", path, base_address=0x10000)
        path.unlink()
        n += 1
    """
)


def _check_workspace(ws_dir: Path, checked: set[int]) -> int:
    """Assert the reopened workspace is healthy; return the number of versions."""
    with Workspace.open(ws_dir) as ws:
        assert ws.integrity_check() == "ok"
        store = RepositoryStore(ws)
        versions = store.list_versions(BRAND, MODEL)
        for v in versions:
            assert ws.blobs.verify(v.file_sha256), f"{v.version}: blob missing or torn"
            assert v.size == IMAGE_BYTES and v.segments == ((BASE_ADDRESS, IMAGE_BYTES),)
            if v.id not in checked:  # parse each version once: its content is complete
                image = store.load_image(v)
                index = int(v.version.rsplit(".", 1)[1])
                assert image.data_bytes()[:8] == index.to_bytes(8, "little")
                checked.add(v.id)
        # Version numbers are consecutive: no import was half-recorded or skipped.
        assert sorted(int(v.version.rsplit(".", 1)[1]) for v in versions) == list(
            range(len(versions))
        )
        return len(versions)


def test_import_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    src = tmp_path / "image.bin"
    rng = random.Random(0xF07A)
    src.write_bytes(rng.randbytes(IMAGE_BYTES))
    with Workspace.open(ws_dir) as ws:
        RepositoryStore(ws).create_repository(BRAND, MODEL, "crash test")

    checked: set[int] = set()
    counts = []
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(ws_dir), str(src), str(scratch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == b"ready", child.stderr.read() if child.stderr else b""
            # A random moment inside the import loop (parse, hash, blob write, commit).
            try:
                child.wait(timeout=rng.uniform(0.0, 0.3))
            except subprocess.TimeoutExpired:
                pass
            else:
                err = child.stderr.read() if child.stderr else b""
                pytest.fail(f"child exited by itself: {err.decode(errors='replace')}")
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
        counts.append(_check_workspace(ws_dir, checked))

    assert counts == sorted(counts)  # nothing committed was ever lost
    assert counts[-1] > 0  # the child did get imports through between kills

    with Workspace.open(ws_dir) as ws:
        planted = ws.blobs.put(b"blob written just before a crash, never referenced")
        referenced = ws.referenced_blobs()
        orphans = set(ws.blobs.all_hashes()) - referenced
        assert planted in orphans
        assert set(ws.collect_garbage()) == orphans
        assert set(ws.blobs.all_hashes()) == referenced
        assert RepositoryStore(ws).verify() == []
