"""Issue 21 behaviours (not timings; bench/scale.py measures those): odd HEX/S-record lines stay on
the fast path and parse to the same image, sparse images merge correctly, binary export streams
and asks before a file much larger than the data, repository screens cost a fixed number of
queries, the list indexes exist, and a flash record summarises its TransferData blocks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fota_studio.core import firmware
from fota_studio.core.errors import ImageError, RepositoryError
from fota_studio.core.firmware import FirmwareImage, LoadStats
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]


def _multi_chunk_image() -> FirmwareImage:
    """~1.5 MiB of data in three segments: its HEX text spans several ~1 MiB bulk regions."""
    rng = np.random.default_rng(21)
    return FirmwareImage.from_segments(
        [
            (0x0800_0000, rng.integers(0, 256, 700_000, np.uint8).tobytes()),
            (0x0810_0000, rng.integers(0, 256, 500_000, np.uint8).tobytes()),
            (0x0820_0000, rng.integers(0, 256, 300_000, np.uint8).tobytes()),
        ],
        start_address=0x0800_0101,
    )


def _odd_line(text: bytes, kind: str) -> bytes:
    """`text` with ONE line in the middle changed the way `kind` says."""
    lines = text.split(b"\n")
    k = len(lines) // 2
    if kind == "trailing space":
        lines[k] += b" "
    elif kind == "trailing tab and CR":
        lines[k] += b"\t\r"
    elif kind == "lower case":
        lines[k] = lines[k][:1] + lines[k][1:].lower()  # the digits; 'S' stays a capital
    elif kind == "CRLF":
        lines[k] += b"\r"
    elif kind == "blank line":
        lines.insert(k, b"  ")
    return b"\n".join(lines)


ODD_KINDS = ("trailing space", "trailing tab and CR", "lower case", "CRLF", "blank line")


@pytest.fixture(scope="module")
def big_image() -> FirmwareImage:
    return _multi_chunk_image()


@pytest.mark.parametrize("kind", ODD_KINDS)
@pytest.mark.parametrize("fmt", ["hex", "srec"])
def test_one_odd_line_parses_to_the_same_image_on_the_fast_path(
    big_image: FirmwareImage, fmt: str, kind: str
) -> None:
    text = firmware.to_hex(big_image) if fmt == "hex" else firmware.to_srec(big_image)
    clean_stats, odd_stats = LoadStats(), LoadStats()
    clean, _ = firmware.load_image(text, fmt=fmt, stats=clean_stats)
    odd, _ = firmware.load_image(_odd_line(text, kind), fmt=fmt, stats=odd_stats)
    assert odd == clean == big_image
    assert clean_stats.chunks >= 3 and clean_stats.tidied_chunks == 0
    assert not clean_stats.precise_file and not odd_stats.precise_file
    # Only the region holding the odd line was tidied (lower case and CRLF need no tidying).
    expected = 0 if kind in ("lower case", "CRLF") else 1
    assert odd_stats.tidied_chunks == expected
    assert odd_stats.chunks == clean_stats.chunks


def test_a_real_fault_still_names_its_line(big_image: FirmwareImage) -> None:
    lines = firmware.to_hex(big_image).split(b"\n")
    k = len(lines) // 2
    lines[k] = lines[k][:-2] + (b"00" if lines[k][-2:] != b"00" else b"01")  # bad checksum
    stats = LoadStats()
    with pytest.raises(ImageError, match="checksum mismatch") as err:
        firmware.load_hex(b"\n".join(lines), source="bad.hex", stats=stats)
    assert err.value.line == k + 1
    assert stats.precise_file


def test_sparse_image_merges_correctly() -> None:
    # 20,000 one-record pieces: runs of 3 touching records (merge into one segment), then a gap;
    # written out of order, so the loader sorts and merges.
    pieces = []
    for i in range(20_000):
        run, pos = divmod(i, 3)
        pieces.append((0x2000_0000 + run * 0x100 + pos * 16, bytes([i & 0xFF]) * 16))
    expected = FirmwareImage.from_segments(pieces)
    assert len(expected.segments) == -(-20_000 // 3)
    lines = []
    for address, data in reversed(pieces):
        one = firmware.to_hex(FirmwareImage.from_segments([(address, data)])).split(b"\n")
        lines.extend(one[:-2])  # drop the EOF record and the trailing empty string
    hex_text = b"\n".join(lines) + b"\n:00000001FF\n"
    image = firmware.load_hex(hex_text, source="sparse.hex")
    assert image == expected
    assert image.segments[0] == expected.segments[0]
    assert image.segments[-1].data == bytes([19_998 & 0xFF]) * 16 + bytes([19_999 & 0xFF]) * 16


class _RecordingFile(io.BytesIO):
    """A file object that remembers its largest single write."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.largest = max(self.largest, len(data))
        return super().write(data)


def test_binary_export_streams_the_span() -> None:
    image = FirmwareImage.from_segments(
        [(0x0800_0000, b"\x11" * 4096), (0x0800_0000 + (9 << 20), b"\x22" * 100)]
    )
    out = _RecordingFile()
    written = firmware.write_binary(image, out, fill=0xA5)
    assert written == image.span == len(out.getvalue())
    assert out.getvalue() == firmware.to_binary(image, fill=0xA5)[1]
    assert out.largest <= firmware.BINARY_FILL_CHUNK_BYTES  # never the whole span at once


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace.open(tmp_path / "ws")
    yield w
    w.close()


def test_binary_export_asks_before_a_file_much_larger_than_the_data(
    ws: Workspace, tmp_path: Path
) -> None:
    image = FirmwareImage.from_segments([(0x0800_0000, b"\x01" * 1024), (0x0A00_0000, b"\x02")])
    store = RepositoryStore(ws)
    store.create_repository("Acme", "Sparse")
    store.import_bytes("Acme", "Sparse", "1.0.0", firmware.to_hex(image), source_name="s.hex")
    target = tmp_path / "out.bin"
    with pytest.raises(RepositoryError, match=r"33,554,433 bytes \(32\.0 MiB\) for 1,025 bytes"):
        store.export("Acme", "Sparse", "1.0.0", "bin", target)
    assert not target.exists()
    asked: list[tuple[int, int]] = []

    def refuse(file_bytes: int, data_bytes: int) -> bool:
        asked.append((file_bytes, data_bytes))
        return False

    with pytest.raises(RepositoryError, match="not written"):
        store.export("Acme", "Sparse", "1.0.0", "bin", target, confirm_size=refuse)
    assert asked == [(image.span, 1025)] and not target.exists()
    store.export("Acme", "Sparse", "1.0.0", "bin", target, confirm_size=lambda f, d: True)
    data = target.read_bytes()
    assert len(data) == image.span and data[:1024] == b"\x01" * 1024 and data[-1:] == b"\x02"
    assert data[1024:2048] == b"\xff" * 1024


def _statements(ws: Workspace) -> list[str]:
    seen: list[str] = []
    ws._conn.set_trace_callback(seen.append)  # SQLite's own statement trace
    return seen


def _grow(store: RepositoryStore, start: int, stop: int) -> None:
    items = []
    for i in range(start, stop):
        text = firmware.to_hex(FirmwareImage.from_segments([(0x1000 + i, bytes([i & 0xFF]) * 8)]))
        for version in ("1.0.0", "1.1.0", "1.0.1"):
            items.append(
                store.prepare_import(
                    f"Brand {i % 3}",
                    f"Model {i:04d}",
                    version,
                    text,
                    source_name=f"{i}.hex",
                    create_repository=True,
                )
            )
    store.commit_imports(items)


def test_repository_screens_cost_a_fixed_number_of_queries(ws: Workspace) -> None:
    store = RepositoryStore(ws)
    counts = []
    for start, stop in ((0, 10), (10, 60)):
        _grow(store, start, stop)
        seen = _statements(ws)
        repos = store.list_repositories()
        latest = store.latest_versions()
        grouped = store.versions_by_repository()
        problems, checked = store.verify_counted()
        ws._conn.set_trace_callback(None)
        counts.append(len([s for s in seen if s.lstrip().upper().startswith("SELECT")]))
        assert len(repos) == stop and checked == 3 * stop and problems == []
        assert all(latest[r.id].version == "1.1.0" for r in repos)
        assert all([v.version for v in grouped[r.id]] == ["1.0.0", "1.0.1", "1.1.0"] for r in repos)
    assert counts[0] == counts[1]  # 10 or 60 repositories: the same queries
    one = _statements(ws)
    assert store.get_repository("Brand 1", "Model 0007").version_count == 3
    assert [v.version for v in store.list_versions("Brand 1", "Model 0007")][-1] == "1.1.0"
    ws._conn.set_trace_callback(None)
    assert len(one) <= 3
    with pytest.raises(RepositoryError, match="no Software Repository"):
        store.list_versions("Brand 1", "Nope")


def test_repo_verify_lists_each_version_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fota_studio.cli import main

    root = tmp_path / "ws"
    with Workspace.open(root) as w:
        _grow(RepositoryStore(w), 0, 4)
        total = len(RepositoryStore(w).all_versions())
    assert main(["--workspace", str(root), "repo", "verify"]) == 0
    assert f"ok: {total} version(s) verified" in capsys.readouterr().out
    assert main(["--workspace", str(root), "repo", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    mine = [r for r in listed if r["brand"].startswith("Brand ")]
    assert len(mine) == 4 and {r["latest"] for r in mine} == {"1.1.0"}


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ("SELECT * FROM machine_history WHERE serial = 'x' ORDER BY id", "machine_history_serial"),
        ("SELECT * FROM update_requests WHERE status = 'Pending'", "update_requests_status"),
        ("SELECT * FROM update_requests WHERE updated_at >= '2026'", "update_requests_updated"),
        ("SELECT repository_id, COUNT(*) FROM versions GROUP BY repository_id", "versions_repo"),
        ("SELECT id FROM flash_records WHERE ecu = 'VCU' ORDER BY id DESC", "flash_records_ecu"),
    ],
)
def test_list_queries_use_an_index(ws: Workspace, sql: str, index: str) -> None:
    plan = " ".join(str(tuple(r)) for r in ws.read("EXPLAIN QUERY PLAN " + sql))
    assert index in plan, plan


def test_flash_record_summarises_plain_transfer_blocks(tmp_path: Path) -> None:
    from fota_studio.demo.run import run_demo
    from fota_studio.engine.records import list_flash_records, load_buslog, load_flash_record
    from tests.fakes.flash import transfer_first_frames

    with Workspace.open(tmp_path / "ws") as w:
        run_demo(w)
        record = load_flash_record(w, list_flash_records(w)[0].id)
        blf = load_buslog(w, record)
    assert blf is not None
    transfers = [e for e in record.exchanges if e.step == "transfer_data"]
    blocks = sum(e.blocks for e in transfers)
    assert blocks == len(transfer_first_frames(blf, tmp_path)) > len(transfers)
    assert sum(e.request_len for e in transfers) >= record.bytes_total
    assert all(e.response_hex and e.response_hex.startswith("76") for e in transfers)


def test_scale_bench_quick_prints_every_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in (
        "repo_list_exponent",
        "repo_panel_exponent",
        "repo_list_4000_s",
        "gui_start_4000_repos_s",
        "request_click_5000_ms",
        "request_tick_5000_ms",
        "hex_fallback_vs_fast",
        "sparse_262k_s",
        "bin_export_peak_over_span",
        "record_bytes_per_flashed_mib",
    ):
        assert isinstance(result[key], int | float), (key, result)
