"""Benchmark: the live CAN trace (capture → store → Qt model) and its offline paths.

Measures in one run:

- live: a producer thread sends 20,000 frames/s (paced in 5 ms bursts) on a python-can
  `virtual` bus for --live-s seconds (default 30) into a running, shown `TracePanel` (offscreen
  Qt, a real event loop as in the app); a 10 ms QTimer records the worst event-loop gap. Prints
  frames lost (sent − stored − dropped-by-capacity is expected 0), worst gap and process CPU %.

  Where the live stall came from (profiled November 2026, this 2-core machine): the cyclic GC
  (full collections 30-50 ms; none during capture with `configure_gc_for_live_capture`), the
  drain (Message → columns on the GUI thread, up to 24 ms; now done on the Notifier thread into
  preallocated staging columns, the drain is ≈ 0.1 ms), and above all the table repaint: ~460
  C++ → Python calls per paint, each acquiring the GIL behind the Notifier/producer threads,
  10-90 ms under load. Now the view inserts at most every 100 ms and paints its viewport in one
  Python call (ui/widgets/trace_view.py): paint ≈ 4 ms mean, ≤ 20 ms. Remaining spikes > 50 ms
  had no work of ours overlapping them (OS scheduling / other processes on the shared cores).
- memory: bytes per stored classic frame with 5M frames in a `TraceStore`.
- BLF open: a 1M-frame BLF file read by `infra.tracefile.read_log` into a store, against
  python-can's `BLFReader` alone iterating the same file (ratio; target ≤ 1.3).
- filter: 1M frames filtered by an ID set, and by protocol (UDS payload check, SDO/PDO), the
  slower of the two is reported (target ≤ 0.2 s).
- text search: 1M frames of UDS traffic searched for a word of the decoded text through the
  model (`TraceModel.set_filter`): the time the GUI thread is blocked and the time until the
  result is shown, against the same search done synchronously on the calling thread
  (`text_match_mask`, what `set_filter` did before it moved to a worker).

- 10 M frames (issue 19): a 10 M-frame BLF (a flash bus log: TransferData consecutive frames
  with all-distinct data, flow control, cyclic traffic on 64 IDs, one TesterPresent every
  10,000 frames) written once per run by a vectorised BLF writer in a temp dir, opened in a
  `TracePanel` as a document (`open_10m_blf_s`; ÷ python-can's BLFReader iterating the same
  file: `open_10m_vs_reader`), bytes per stored frame, the ID and UDS filters until shown
  (`filter_10m_s`), the free-text search: GUI-thread time of starting it, recall of the
  TesterPresent frames and the peak temporary memory of the search per frame (tracemalloc),
  and a 20 M-frame BLF opened whole (`frames_kept_20m`).

The LAST line is one JSON object with `live_frames_lost`, `live_max_stall_ms`,
`bytes_per_frame`, `blf_open_vs_reader`, `filter_1m_s`, `text_search_gui_ms`,
`text_search_gui_vs_sync`, `open_10m_blf_s`, `open_10m_vs_reader`, `bytes_per_frame_10m`,
`filter_10m_s`, `text_search_10m_gui_ms`, `text_search_10m_recall`,
`text_search_10m_peak_bytes_per_frame`, `frames_kept_20m` (+ a few context figures). Run:
`QT_QPA_PLATFORM=offscreen python bench/trace.py [--live-s 30] [--default-gc] [--skip-10m]`
(the live part applies `configure_gc_for_live_capture()` as app.py should; --default-gc
measures without).
Single-threaded script apart from the producer; not imported by the application.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes

import can
import numpy as np

from fota_studio.core.frames import FrameBatch
from fota_studio.engine.trace_search import TraceQuery
from fota_studio.engine.trace_store import TraceFilter, TraceStore
from fota_studio.infra.tracefile import read_log
from fota_studio.protocols.bus import BusSettings, open_bus
from tests.fakes.frame_batches import classic_batch, uds_batch

LIVE_RATE_FPS = 20_000
BURST_PERIOD_S = 0.005


def bench_live(seconds: float, tune_gc: bool = True) -> dict[str, float]:
    """Live capture into a shown TracePanel; returns lost frames, worst gap, CPU %."""
    import psutil
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from fota_studio.ui.panels.trace_panel import TracePanel, configure_gc_for_live_capture

    app = QApplication.instance() or QApplication([])
    channel = f"bench-{os.getpid()}"
    panel = TracePanel()
    panel.resize(1400, 800)
    panel.show()
    panel.open_capture(BusSettings("virtual", channel), "CAN1")
    if tune_gc:
        # What app.py should do after start-up (see configure_gc_for_live_capture): the
        # default GC thresholds stall the GUI for 100+ ms now and then at 20k frames/s.
        configure_gc_for_live_capture()
    producer_bus = open_bus(BusSettings("virtual", channel))
    stop = threading.Event()
    sent = [0]

    def produce() -> None:
        per_burst = int(LIVE_RATE_FPS * BURST_PERIOD_S)
        msgs = [
            can.Message(
                arbitration_id=0x100 + (i % 64), data=bytes([i & 0xFF] * 8), is_extended_id=False
            )
            for i in range(per_burst)
        ]
        start = time.perf_counter()
        n = 0
        while not stop.is_set():
            for msg in msgs:
                producer_bus.send(msg)
            n += 1
            sent[0] += per_burst
            delay = start + n * BURST_PERIOD_S - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    gaps, probe = _gap_probe(10)
    proc = psutil.Process()
    cpu0 = proc.cpu_times()
    t0 = time.perf_counter()
    thread = threading.Thread(target=produce, name="bench-producer", daemon=True)
    thread.start()
    # A real event loop, as in the app (app.exec()): a Python loop of processEvents() + sleep
    # adds a GIL hand-over per iteration that the application never pays.
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    stop.set()
    thread.join()
    settle = time.perf_counter() + 2.0
    while time.perf_counter() < settle and panel.store.end_seq < sent[0]:
        app.processEvents()
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    cpu1 = proc.cpu_times()
    probe.stop()
    stored = panel.store.end_seq
    lost = sent[0] - stored + panel.capture.staging_dropped
    cpu_pct = 100.0 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall
    steady = sorted(gaps[5:]) or [float("nan")]
    worst = steady[-1]
    p99 = steady[int(len(steady) * 0.99)]
    over = sum(1 for g in steady if g > 50.0)
    print(
        f"live: sent {sent[0]:,} in {seconds:.0f} s, stored {stored:,}, lost {lost:,}, "
        f"10 ms timer gaps: worst {worst:.1f} ms, p99 {p99:.1f} ms, {over} of {len(steady)} "
        f"> 50 ms; CPU {cpu_pct:.0f} % of one core; load average {os.getloadavg()[0]:.1f}"
    )
    panel.close_all()
    producer_bus.shutdown()
    panel.close()
    return {
        "lost": float(lost),
        "max_stall_ms": worst,
        "p99_stall_ms": p99,
        "stalls_over_50ms": float(over),
        "cpu_pct": cpu_pct,
    }


def _gap_probe(interval_ms: int) -> tuple[list[float], Any]:
    """A started QTimer ticking every `interval_ms` and the list it appends each gap between
    its ticks to (ms): the longest gap is the worst time the event loop was blocked."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    probe = QTimer()
    probe.setInterval(interval_ms)
    probe.timeout.connect(tick)
    probe.start()
    return gaps, probe


def _classic_batch(n: int, start: int) -> FrameBatch:
    data = np.zeros((n, 8), np.uint8)
    data[:, 0] = np.arange(n) & 0xFF
    return classic_batch(
        np.arange(start, start + n, dtype=np.float64) * 1e-4,
        (np.arange(start, start + n) % 0x800).astype(np.uint32),
        data,
    )


def bench_memory(frames: int = 5_000_000) -> float:
    """Bytes per stored classic frame with `frames` frames."""
    store = TraceStore(capacity_frames=frames)
    step = 100_000
    for start in range(0, frames, step):
        store.append_batch(_classic_batch(step, start))
    per_frame = store.nbytes() / len(store)
    print(
        f"memory: {len(store):,} frames, {store.nbytes() / 2**20:.0f} MiB, {per_frame:.1f} B/frame"
    )
    return per_frame


def bench_blf(frames: int = 1_000_000) -> float:
    """read_log into a store vs BLFReader iteration alone (best of 2 each)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.blf"
        with can.BLFWriter(str(path)) as writer:
            for i in range(frames):
                writer.on_message_received(
                    can.Message(
                        timestamp=i * 1e-4,
                        arbitration_id=i & 0x7FF,
                        is_extended_id=False,
                        data=bytes([i & 0xFF] * 8),
                        channel=0,
                    )
                )

        def reader_only() -> float:
            t = time.perf_counter()
            count = 0
            with can.BLFReader(str(path)) as reader:
                for _ in reader:
                    count += 1
            assert count == frames
            return time.perf_counter() - t

        def ours() -> float:
            t = time.perf_counter()
            store = TraceStore(capacity_frames=frames)
            for batch in read_log(path, channel_names=store.channel_names):
                store.append_batch(batch)
            assert len(store) == frames
            return time.perf_counter() - t

        base = min(reader_only() for _ in range(2))
        mine = min(ours() for _ in range(2))
    print(
        f"BLF {frames:,} frames: BLFReader {base:.2f} s, read_log+store {mine:.2f} s "
        f"({mine / base:.2f}x)"
    )
    return mine / base


def bench_filter(frames: int = 1_000_000) -> float:
    """Filter `frames` frames by a set of 20 IDs (best of 3)."""
    store = TraceStore(capacity_frames=frames)
    for start in range(0, frames, 100_000):
        store.append_batch(_classic_batch(100_000, start))
    flt = TraceFilter(ids=tuple(range(0x7E0, 0x7F4)))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        seqs = store.filter(flt)
        best = min(best, time.perf_counter() - t)
    print(f"filter {frames:,} frames by 20 IDs: {best * 1000:.1f} ms ({len(seqs):,} matches)")
    from fota_studio.protocols.decode import Decoder

    decoder = Decoder()
    t = time.perf_counter()
    ids, flags, data = store.column("ids"), store.column("flags"), store.column("data")
    uds = decoder.uds_mask(ids, flags, data)  # type: ignore[arg-type]
    sdo = decoder.protocol_mask(ids, flags, ("SDO", "PDO"))  # type: ignore[arg-type]
    proto_s = time.perf_counter() - t
    print(
        f"protocol filter {frames:,} frames (UDS payload check + SDO/PDO): {proto_s * 1000:.1f} ms"
        f" ({int(uds.sum()):,} UDS, {int(sdo.sum()):,} SDO/PDO)"
    )
    return max(best, proto_s)


def bench_text_search(frames: int = 1_000_000) -> tuple[float, float]:
    """(GUI-thread ms of the background search, ratio to the synchronous search), best of 3."""
    from PySide6.QtWidgets import QApplication

    from fota_studio.protocols.decode import Decoder
    from fota_studio.ui.models.trace_model import TraceModel

    app = QApplication.instance() or QApplication([])
    store = TraceStore(capacity_frames=frames)
    model = TraceModel(store, Decoder([(0x7E0, 0x7E8)]))
    for start in range(0, frames, 100_000):
        store.append_batch(uds_batch(100_000, start, period_s=1e-4))
        model.rows_appended(100_000)
    query = TraceQuery(text="testerpresent")
    sync_best = gui_best = total_best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        found = query.select(store.segments(), model.decoder)
        sync_best = min(sync_best, time.perf_counter() - t)
        done: list[float] = []
        model.search_finished.connect(lambda _n, done=done: done.append(time.perf_counter()))
        t = time.perf_counter()
        model.set_filter(query)
        gui_best = min(gui_best, time.perf_counter() - t)
        while not done:
            app.processEvents()
            time.sleep(0.001)
        total_best = min(total_best, done[0] - t)
        model.search_finished.disconnect()
        assert model.rowCount() == found.shape[0] == frames // 10
        model.set_filter(TraceQuery())
    print(
        f"text search {frames:,} frames: synchronous {sync_best * 1000:.0f} ms on the calling "
        f"thread; in the model {gui_best * 1000:.1f} ms on the GUI thread, result shown after "
        f"{total_best * 1000:.0f} ms ({gui_best / sync_best:.2f}x of the synchronous block)"
    )
    return gui_best * 1000, gui_best / sync_best


# --- 10 M frames -----------------------------------------------------------------------------
_BLF_CAN_MESSAGE = np.dtype(
    [
        ("signature", "S4"),
        ("header_size", "<u2"),
        ("header_version", "<u2"),
        ("object_size", "<u4"),
        ("object_type", "<u4"),
        ("time_flags", "<u4"),
        ("client_index", "<u2"),
        ("object_version", "<u2"),
        ("timestamp_ns", "<u8"),
        ("channel", "<u2"),
        ("flags", "u1"),
        ("dlc", "u1"),
        ("id", "<u4"),
        ("data", "u1", (8,)),
    ]
)
"""One BLF CAN_MESSAGE object (header v1, 48 bytes), as python-can's BLFWriter lays it out."""
BLF_CONTAINER_BYTES = 128 * 1024
TESTER_PRESENT_EVERY = 10_000
T0_S = 1_796_590_000.0


def _flash_log_frames(start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [start, start+n) of the 10 M-frame log as (BLF records, TesterPresent mask): a flash
    bus log whose data frames are all different, with rare TesterPresent frames."""
    rows = np.arange(start, start + n, dtype=np.int64)
    rec = np.zeros(n, _BLF_CAN_MESSAGE)
    rec["signature"] = b"LOBJ"
    rec["header_size"] = 32
    rec["header_version"] = 1
    rec["object_size"] = _BLF_CAN_MESSAGE.itemsize
    rec["object_type"] = 1  # CAN_MESSAGE
    rec["time_flags"] = 2  # TIME_ONE_NANS
    rec["timestamp_ns"] = rows * 100_000  # 10,000 frames/s
    rec["channel"] = 1
    rec["dlc"] = 8
    ids = np.full(n, 0x7E0, np.uint32)
    data = rec["data"]
    data[:, 0] = 0x20 | (rows & 0x0F)  # TransferData consecutive frames ...
    data[:, 1:5] = rows.astype("<u4").view(np.uint8).reshape(n, 4)  # ... all different
    data[:, 5:8] = ((rows * 2_654_435_761) >> 11).astype("<u4").view(np.uint8).reshape(n, 4)[:, :3]
    block = rows % 585
    ff = block == 0
    data[ff, 0:3] = (0x1F, 0xFF, 0x36)  # FF of the next TransferData request
    fc = block == 1
    ids[fc] = 0x7E8
    data[fc] = (0x30, 0, 0, 0, 0, 0, 0, 0)
    cyclic = (rows % 4 == 3) & ~ff & ~fc
    ids[cyclic] = 0x100 + (rows[cyclic] // 4) % 64  # cyclic traffic, counters in the data
    tp = (rows % TESTER_PRESENT_EVERY == TESTER_PRESENT_EVERY // 2) & ~ff & ~fc & ~cyclic
    ids[tp] = 0x7E0
    data[tp] = (0x02, 0x3E, 0x80, 0, 0, 0, 0, 0)
    rec["id"] = ids
    return rec, tp


def write_big_blf(path: Path, frames: int) -> int:
    """Write the benchmark's flash log with `frames` frames as a zlib-compressed BLF (what
    python-can's BLFWriter writes, built with numpy: BLFWriter takes minutes for 10 M frames);
    returns the TesterPresent frames in it."""
    from can.io.blf import FILE_HEADER_SIZE, FILE_HEADER_STRUCT, timestamp_to_systemtime

    base = struct.Struct("<4sHHLL")
    container = struct.Struct("<H6xL4x")
    present = 0
    uncompressed = FILE_HEADER_SIZE
    with path.open("wb") as fh:
        fh.write(b"\0" * FILE_HEADER_SIZE)
        pending = b""

        def write_container(part: bytes) -> None:
            packed = zlib.compress(part, 1)
            size = base.size + container.size + len(packed)
            fh.write(base.pack(b"LOBJ", base.size, 1, size, 10))
            fh.write(container.pack(2, len(part)))
            fh.write(packed)
            fh.write(b"\0" * (size % 4))

        for start in range(0, frames, 1_000_000):
            rec, tp = _flash_log_frames(start, min(1_000_000, frames - start))
            present += int(tp.sum())
            buf = pending + rec.tobytes()
            whole = len(buf) // BLF_CONTAINER_BYTES * BLF_CONTAINER_BYTES
            for off in range(0, whole, BLF_CONTAINER_BYTES):
                write_container(buf[off : off + BLF_CONTAINER_BYTES])
                uncompressed += base.size + container.size + BLF_CONTAINER_BYTES
            pending = buf[whole:]
        if pending:
            write_container(pending)
            uncompressed += base.size + container.size + len(pending)
        size = fh.tell()
        fh.seek(0)
        header = [b"LOGG", FILE_HEADER_SIZE, 5, 0, 0, 0, 2, 6, 8, 1, size, uncompressed, frames, 0]
        header += timestamp_to_systemtime(T0_S)
        header += timestamp_to_systemtime(T0_S + frames * 1e-4)
        fh.write(FILE_HEADER_STRUCT.pack(*header))
    return present


def _wait(app, until, timeout_s: float) -> None:
    end = time.perf_counter() + timeout_s
    while not until():
        if time.perf_counter() > end:
            raise TimeoutError("bench: timed out")
        app.processEvents()
        time.sleep(0.002)


def bench_10m(frames: int = 10_000_000, frames_20m: int = 20_000_000) -> dict[str, float]:
    """The 10 M-frame case of issue 19 (see the module docstring)."""
    from PySide6.QtWidgets import QApplication

    from fota_studio.ui.panels.trace_panel import TracePanel

    app = QApplication.instance() or QApplication([])
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flash-10m.blf"
        t = time.perf_counter()
        present = write_big_blf(path, frames)
        print(
            f"10M: wrote {frames:,} frames ({path.stat().st_size / 2**20:.0f} MiB BLF, "
            f"{present:,} TesterPresent) in {time.perf_counter() - t:.1f} s"
        )
        t = time.perf_counter()
        count = 0
        with can.BLFReader(str(path)) as reader:
            for _ in reader:
                count += 1
        reader_s = time.perf_counter() - t
        assert count == frames

        panel = TracePanel(isotp_pairs=[(0x7E0, 0x7E8)])
        panel.resize(1400, 800)
        panel.show()
        loaded: list[int] = []
        panel.file_loaded.connect(lambda _name, n: loaded.append(n))
        t = time.perf_counter()
        panel.open_file(path)
        _wait(app, lambda: bool(loaded), 600)
        open_s = time.perf_counter() - t
        doc = panel.current_document()
        assert loaded[0] == frames == len(doc.store)
        out["open_10m_blf_s"] = open_s
        out["open_10m_vs_reader"] = open_s / reader_s
        out["bytes_per_frame_10m"] = doc.store.nbytes() / len(doc.store)
        print(
            f"10M: BLFReader iteration {reader_s:.1f} s; opened in the panel in {open_s:.1f} s "
            f"({open_s / reader_s:.2f}x), {out['bytes_per_frame_10m']:.1f} B/frame"
        )

        model = doc.model
        finished: list[float] = []
        model.search_finished.connect(lambda _n: finished.append(time.perf_counter()))

        def run(query: TraceQuery) -> tuple[float, float]:
            finished.clear()
            t0 = time.perf_counter()
            model.set_filter(query)
            gui = time.perf_counter() - t0
            if model.searching:
                _wait(app, lambda: bool(finished), 600)
                return gui, finished[0] - t0
            return gui, gui

        _gui, id_s = run(TraceQuery(frames=TraceFilter(ids=tuple(range(0x100, 0x114)))))
        id_rows = model.rowCount()
        _gui, uds_s = run(TraceQuery(protocols=frozenset({"UDS"})))
        uds_rows = model.rowCount()
        out["filter_10m_s"] = max(id_s, uds_s)
        print(
            f"10M: filter by 20 IDs {id_s:.2f} s ({id_rows:,} rows), UDS {uds_s:.2f} s "
            f"({uds_rows:,} rows), in the background until shown"
        )

        gaps, probe = _gap_probe(5)
        gui_s, search_s = run(TraceQuery(text="testerpresent"))
        probe.stop()
        found = model.rowCount()
        out["text_search_10m_gui_ms"] = gui_s * 1000
        out["text_search_10m_s"] = search_s
        out["text_search_10m_max_gap_ms"] = max(gaps[1:], default=0.0)
        out["text_search_10m_recall"] = found / present
        model.set_filter(TraceQuery())
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        hits = TraceQuery(text="testerpresent").select(doc.store.segments(), panel.decoder)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        assert hits.shape[0] == found
        out["text_search_10m_peak_bytes_per_frame"] = peak / frames
        print(
            f"10M: text search found {found:,} of {present:,} TesterPresent frames in "
            f"{search_s:.1f} s; GUI thread {gui_s * 1000:.1f} ms to start, worst event-loop gap "
            f"{out['text_search_10m_max_gap_ms']:.0f} ms meanwhile; peak temporary memory "
            f"{peak / 2**20:.1f} MiB ({peak / frames:.2f} B/frame)"
        )
        panel.close_document(doc)
        path.unlink()

        path20 = Path(tmp) / "flash-20m.blf"
        write_big_blf(path20, frames_20m)
        loaded.clear()
        t = time.perf_counter()
        panel.open_file(path20)
        _wait(app, lambda: bool(loaded), 900)
        doc20 = panel.current_document()
        out["frames_kept_20m"] = float(len(doc20.store))
        print(
            f"20M: opened {loaded[0]:,} frames, {len(doc20.store):,} kept, in "
            f"{time.perf_counter() - t:.1f} s ({doc20.store.nbytes() / 2**20:.0f} MiB)"
        )
        panel.close_all()
        panel.close_document(doc20)
        panel.close()
    return out


def main() -> None:
    """Run every measurement and print the JSON summary last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live-s", type=float, default=30.0)
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-10m", action="store_true", help="skip the 10 M / 20 M cases")
    parser.add_argument(
        "--default-gc", action="store_true", help="keep Python's default GC thresholds"
    )
    args = parser.parse_args()
    nan = float("nan")
    live = {
        "lost": nan,
        "max_stall_ms": nan,
        "p99_stall_ms": nan,
        "stalls_over_50ms": nan,
        "cpu_pct": nan,
    }
    if not args.skip_live:
        live = bench_live(args.live_s, tune_gc=not args.default_gc)
    per_frame = bench_memory()
    blf_ratio = bench_blf()
    filter_s = bench_filter()
    search_gui_ms, search_ratio = bench_text_search()
    big = {
        key: nan
        for key in (
            "open_10m_blf_s",
            "open_10m_vs_reader",
            "bytes_per_frame_10m",
            "filter_10m_s",
            "text_search_10m_gui_ms",
            "text_search_10m_s",
            "text_search_10m_max_gap_ms",
            "text_search_10m_recall",
            "text_search_10m_peak_bytes_per_frame",
            "frames_kept_20m",
        )
    }
    if not args.skip_10m:
        big = bench_10m()
    print(
        json.dumps(
            {
                "live_frames_lost": live["lost"],
                "live_max_stall_ms": round(live["max_stall_ms"], 1),
                "live_p99_stall_ms": round(live["p99_stall_ms"], 1),
                "live_stalls_over_50ms": live["stalls_over_50ms"],
                "live_cpu_pct": round(live["cpu_pct"], 1),
                "bytes_per_frame": round(per_frame, 1),
                "blf_open_vs_reader": round(blf_ratio, 3),
                "filter_1m_s": round(filter_s, 4),
                "text_search_gui_ms": round(search_gui_ms, 1),
                "text_search_gui_vs_sync": round(search_ratio, 3),
                **{k: round(v, 3) for k, v in big.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
