"""Benchmark: does the product stay fast as a workspace grows (issue 21)?

Builds its workspaces through the product's own API (`RepositoryStore.prepare_import` +
`commit_imports` in one transaction per size step, `RequestsStore.create`, the demo run for a
real flash) and measures, in ONE run, each cost curve at three sizes, fits the growth exponent
(slope of log time over log size) and prints the figures:

- `repo list` in process (exponent) and as a fresh process (`repo_list_4000_s`, process start
  included), 100 → 1,000 → 4,000 repositories with two versions each;
- the Repository panel built and shown (exponent), and the GUI start (`python -m fota_studio
  --workspace W` until the main window is shown and has processed its first events, process
  start included) at the same sizes;
- the Requests panel at 100 → 1,000 → 5,000 update requests: the worst GUI-thread stall of a
  click on a request (detail view shown) and of one refresh tick after a request changed
  (a running update's step), measured by a 0 ms timer that records the longest gap between its
  runs while the action and what it causes run in the event loop;
- firmware: a HEX of 64 MiB of image data with one trailing space on one line ÷ the clean file
  (`hex_fallback_vs_fast`), a sparse image of 16k → 65k → 262k one-record segments
  (`sparse_262k_s`), and the tracemalloc peak of a binary export of a 1 MiB image spanning
  0x08000000..0x20000000 ÷ that span (`bin_export_peak_over_span`);
- `record_bytes_per_flashed_mib`: flash record JSON + BLF bus log stored per MiB flashed by one
  demo update (the simulated VCU, classic CAN).

Targets (issue 21): exponents ≤ 1.2, repo_list_4000_s ≤ 2.0, gui_start_4000_repos_s ≤ 3.0,
request_click_5000_ms and request_tick_5000_ms ≤ 16, hex_fallback_vs_fast ≤ 1.5,
sparse_262k_s ≤ 0.5, bin_export_peak_over_span ≤ 1.1, record_bytes_per_flashed_mib ≤ 1.2.

Run: `python bench/scale.py` (≈ 2-3 min on 2 cores) or `--quick` (small sizes, seconds: a smoke
run whose JSON has the same keys; the size-named keys then hold the largest quick size).
The last line is one JSON object. Single-threaded script (Qt offscreen); not imported by the
application.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from fota_studio.core import firmware  # noqa: E402
from fota_studio.infra.repository import RepositoryStore  # noqa: E402
from fota_studio.infra.requests_store import RequestsStore  # noqa: E402
from fota_studio.infra.workspace import Workspace  # noqa: E402

FULL = {
    "repos": (100, 1000, 4000),
    "requests": (100, 1000, 5000),
    "hex_mib": 64,
    "sparse": (16384, 65536, 262144),
}
QUICK = {
    "repos": (5, 10, 20),
    "requests": (5, 10, 20),
    "hex_mib": 2,
    "sparse": (1024, 2048, 4096),
}
VERSIONS_PER_REPO = 2
CLICKS = 5


# ---------------------------------------------------------------------------------------------
# helpers


def exponent(sizes: list[int], times: list[float]) -> float:
    """Slope of log(time) over log(size): 1.0 is linear, 2.0 quadratic."""
    slope = np.polyfit(np.log(sizes), np.log([max(t, 1e-6) for t in times]), 1)[0]
    return float(slope)


def _child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    # A user's start reads cached bytecode (pip and the installers compile it); a sandbox that
    # sets PYTHONDONTWRITEBYTECODE would make every start compile ~170 modules again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        PYTHONPATH=str(ROOT),
        XDG_CONFIG_HOME=str(tmp / "config"),
        XDG_DATA_HOME=str(tmp / "data"),
        XDG_CACHE_HOME=str(tmp / "cache"),
    )
    return env


def _tiny_hex(i: int) -> bytes:
    image = firmware.FirmwareImage.from_segments([(0x8000 + 16 * (i % 7), bytes([i % 251]) * 64)])
    return firmware.to_hex(image)


# ---------------------------------------------------------------------------------------------
# repositories


def grow_repositories(ws: Workspace, have: int, want: int) -> None:
    """Add repositories have..want-1 with VERSIONS_PER_REPO versions each, one transaction."""
    store = RepositoryStore(ws)
    items = []
    for i in range(have, want):
        for k in range(VERSIONS_PER_REPO):
            items.append(
                store.prepare_import(
                    f"Brand {i % 37:02d}",
                    f"Model {i:05d}",
                    f"1.{k}.0",
                    _tiny_hex(i + k),
                    source_name=f"m{i}_{k}.hex",
                    create_repository=True,
                )
            )
    store.commit_imports(items)


def time_repo_list_in_process(root: Path) -> float:
    """`fota-studio --workspace ROOT repo list` through cli.main, stdout swallowed."""
    from fota_studio.cli import main

    sink = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = main(["--workspace", str(root), "repo", "list"])
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"repo list exited {code}")
    return elapsed


def time_repo_list_process(root: Path, tmp: Path) -> float:
    """The same as a fresh process: wall time from spawn to exit (process start included)."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fota_studio", "--workspace", str(root), "repo", "list"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=_child_env(tmp),
        cwd=ROOT,
    )
    return time.perf_counter() - t0


def time_repo_panel(ws: Workspace) -> float:
    """Build the Repository panel over ws, show it and let it lay out and paint."""
    from PySide6.QtWidgets import QApplication

    from fota_studio.ui.panels.repository_panel import RepositoryPanel

    app = QApplication.instance()
    assert app is not None
    t0 = time.perf_counter()
    panel = RepositoryPanel(ws)
    panel.resize(1000, 700)
    panel.show()
    app.processEvents()
    elapsed = time.perf_counter() - t0
    panel.close()
    panel.deleteLater()
    app.processEvents()
    return elapsed


_GUI_DRIVER = r"""
import os, sys, time
# What `fota-studio --workspace W` does before Qt: the GUI entry point defers MF4 support and
# builds its parser (importing the command modules), then app.run_gui imports Qt. Importing
# PySide6 first would make its import hook scan every later module (not what users run).
from fota_studio import cli
from fota_studio.infra.mf4_support import defer_mf4
defer_mf4()
cli.build_parser(only=None)
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
def shown():
    app.processEvents()
    print("SHOWN", time.time(), flush=True)
    os._exit(0)
QTimer.singleShot(0, shown)
cli.main(["--workspace", sys.argv[1]])
print("NOT SHOWN", flush=True)
"""


#: CPU seconds (user + system) of the last GUI start child.
_last_child_cpu_s = [0.0]


def time_gui_start(root: Path, tmp: Path) -> float:
    """Spawn the GUI on `root`; seconds until its main window is shown (process start in)."""
    t0 = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-c", _GUI_DRIVER, str(root)],
        capture_output=True,
        text=True,
        env=_child_env(tmp),
        cwd=ROOT,
        timeout=600,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _last_child_cpu_s[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in proc.stdout.splitlines():
        if line.startswith("SHOWN "):
            return float(line.split()[1]) - t0
    raise RuntimeError(f"the GUI did not start: {proc.stdout[-500:]} {proc.stderr[-2000:]}")


def run_repositories(
    sizes: tuple[int, ...], tmp: Path, out: dict[str, Any], *, spawn_each: bool = True
) -> None:
    """Repository curves; `spawn_each=False` (quick) starts processes at the largest size only."""
    root = tmp / "ws-repos"
    ws = Workspace.open(root)
    from fota_studio.demo.seed import ensure_demo

    ensure_demo(ws)
    # One start that is not measured: it writes the bytecode cache, as a user's first start
    # after `pip install` finds it written already.
    time_gui_start(root, tmp)
    have = 0
    lists, panels, procs, starts, start_cpus = [], [], [], [], []
    for n in sizes:
        t0 = time.perf_counter()
        grow_repositories(ws, have, n)
        have = n
        build_s = time.perf_counter() - t0
        lists.append(min(time_repo_list_in_process(root) for _ in range(2)))
        panels.append(min(time_repo_panel(ws) for _ in range(2)))
        spawned = ""
        if spawn_each or n == sizes[-1]:
            procs.append(time_repo_list_process(root, tmp))
            starts.append(time_gui_start(root, tmp))
            start_cpus.append(_last_child_cpu_s[0])
            spawned = (
                f"; as a process {procs[-1]:6.2f} s | GUI start {starts[-1]:6.2f} s "
                f"({start_cpus[-1]:.2f} s CPU)"
            )
        print(
            f"repositories {n:>5} (+demo): built {build_s:6.2f} s | repo list in-process "
            f"{lists[-1]:7.3f} s | Repository panel {panels[-1]:7.3f} s{spawned}",
            flush=True,
        )
    ws.close()
    out["repo_list_exponent"] = round(exponent(list(sizes), lists), 3)
    out["repo_panel_exponent"] = round(exponent(list(sizes), panels), 3)
    if len(procs) == len(sizes):
        out["repo_list_process_exponent"] = round(exponent(list(sizes), procs), 3)
        out["gui_start_exponent"] = round(exponent(list(sizes), starts), 3)
    out["repo_list_4000_s"] = round(procs[-1], 3)
    out["gui_start_4000_repos_s"] = round(starts[-1], 3)
    out["gui_start_4000_repos_cpu_s"] = round(start_cpus[-1], 3)


# ---------------------------------------------------------------------------------------------
# update requests


def grow_requests(ws: Workspace, have: int, want: int) -> None:
    """Add update requests have..want-1 (each with its signed "created" entry)."""
    store = RequestsStore(ws)
    for i in range(have, want):
        store.create(
            machine=f"Unit #{1000 + i % 40}",
            ecu=("VCU", "HCU", "BCU")[i % 3],
            brand="Bench",
            model="Model",
            version=f"1.{i % 9}.0",
            created_by="bench",
        )


def worst_stall_ms(action: Callable[[], None], done: Callable[[], bool], settle_s: float) -> float:
    """Run `action` in the event loop and return the longest gap between two runs of a 0 ms
    timer (ms) until `done()` holds and `settle_s` more has passed: the GUI-thread freeze."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    state = {"last": time.perf_counter(), "worst": 0.0, "done_at": None, "start": None}

    def tick() -> None:
        now = time.perf_counter()
        state["worst"] = max(state["worst"], now - state["last"])
        state["last"] = now
        if state["start"] is None:
            return
        if state["done_at"] is None and done():
            state["done_at"] = now
        settled = state["done_at"] is not None and now - state["done_at"] >= settle_s
        if settled or now - state["start"] > 60:
            loop.quit()

    def go() -> None:
        state["start"] = time.perf_counter()
        action()

    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(tick)
    timer.start()
    QTimer.singleShot(5, go)
    # The gaps before the action do not count: reset once the loop runs.
    QTimer.singleShot(1, lambda: state.update(worst=0.0, last=time.perf_counter()))
    loop.exec()
    timer.stop()
    return state["worst"] * 1000.0


def gui_thread_ms(action: Callable[[], None], done: Callable[[], bool]) -> float:
    """GUI-thread CPU time (ms, `time.thread_time`) of `action` and of the events it causes
    until `done()` holds (results delivered, painted): what the issue calls GUI-thread time.
    Waits sleep between short `processEvents` calls, so a worker thread's work is not counted."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    assert app is not None
    app.processEvents()
    c0 = time.thread_time()
    action()
    deadline = time.monotonic() + 60
    while True:
        app.processEvents()
        if done() or time.monotonic() > deadline:
            break
        time.sleep(0.002)
    app.processEvents()
    return (time.thread_time() - c0) * 1000.0


def _detail_idle(panel: Any) -> Callable[[], bool]:
    pending = getattr(panel, "detail_pending", None)
    return (lambda: not pending()) if pending is not None else (lambda: True)


def run_requests(sizes: tuple[int, ...], tmp: Path, out: dict[str, Any]) -> None:
    from PySide6.QtWidgets import QApplication

    from fota_studio.core.update_request import RequestStatus
    from fota_studio.ui.panels.requests_panel import RequestsPanel

    app = QApplication.instance()
    assert app is not None
    ws = Workspace.open(tmp / "ws-requests")
    store = RequestsStore(ws)
    have = 0
    clicks, ticks, click_stalls, tick_stalls_all = [], [], [], []
    for n in sizes:
        t0 = time.perf_counter()
        grow_requests(ws, have, n)
        have = n
        build_s = time.perf_counter() - t0
        panel = RequestsPanel(ws)
        panel.resize(1000, 700)
        panel.show()
        idle = _detail_idle(panel)
        app.processEvents()
        ids = [r.id for r in panel.model.rows]
        baseline = statistics.median(
            worst_stall_ms(lambda: None, lambda: True, 0.05) for _ in range(3)
        )
        samples, stalls = [], []
        for k in range(CLICKS):
            rid = ids[(k * 7919) % len(ids)]
            samples.append(gui_thread_ms(lambda p=panel, r=rid: p.select(r), idle))
        for k in range(CLICKS):
            rid = ids[(k * 104729 + 3) % len(ids)]
            stalls.append(worst_stall_ms(lambda p=panel, r=rid: p.select(r), idle, 0.05))
        first_click = samples[0]
        click = statistics.median(samples)
        click_stall = statistics.median(stalls)
        # A running update: one request changes (its step), then the panel's refresh tick runs.
        target = ids[len(ids) // 2]
        panel.select(target)
        worst_stall_ms(lambda: None, idle, 0.05)
        tick_samples, tick_stalls = [], []
        for k, step in enumerate(("erase", "transfer_data", "check", "reset", "read_version")):
            store.update(
                target,
                status=RequestStatus.IN_PROGRESS if k == 0 else None,
                step=step,
            )
            if k % 2 == 0:
                tick_samples.append(gui_thread_ms(panel._timer.timeout.emit, idle))
            else:
                tick_stalls.append(worst_stall_ms(panel._timer.timeout.emit, idle, 0.05))
        tick = statistics.median(tick_samples)
        tick_stall = statistics.median(tick_stalls)
        clicks.append(click)
        ticks.append(tick)
        click_stalls.append(click_stall)
        tick_stalls_all.append(tick_stall)
        panel.shutdown()
        panel.close()
        panel.deleteLater()
        app.processEvents()
        print(
            f"requests {n:>5}: built {build_s:6.1f} s | click: GUI-thread time median "
            f"{click:6.1f} ms (first {first_click:6.1f} ms), worst event-loop gap "
            f"{click_stall:6.1f} ms | refresh tick after a step: GUI-thread time {tick:6.1f} ms, "
            "worst gap "
            f"{tick_stall:6.1f} ms | idle loop's worst gap {baseline:5.1f} ms (machine noise)",
            flush=True,
        )
    ws.close()
    out["request_click_5000_ms"] = round(clicks[-1], 2)
    out["request_tick_5000_ms"] = round(ticks[-1], 2)
    out["request_click_stall_5000_ms"] = round(click_stalls[-1], 2)
    out["request_tick_stall_5000_ms"] = round(tick_stalls_all[-1], 2)
    out["request_click_exponent"] = round(exponent(list(sizes), clicks), 3)
    out["request_tick_exponent"] = round(exponent(list(sizes), ticks), 3)


# ---------------------------------------------------------------------------------------------
# firmware


def _stats() -> Any:
    cls = getattr(firmware, "LoadStats", None)
    return cls() if cls is not None else None


def _load_hex(data: bytes, stats: Any) -> firmware.FirmwareImage:
    if stats is None:
        return firmware.load_hex(data, source="bench.hex")
    return firmware.load_hex(data, source="bench.hex", stats=stats)


def run_hex(size_mib: int, out: dict[str, Any]) -> None:
    rng = np.random.default_rng(21)
    total = size_mib << 20
    quarter = total // 4
    parts = [
        (0x0800_0000 + k * (quarter + 0x1_0000), rng.integers(0, 256, quarter, np.uint8).tobytes())
        for k in range(4)
    ]
    clean = firmware.to_hex(firmware.FirmwareImage.from_segments(parts), record_bytes=32)
    del parts
    mid = clean.index(b"\n", len(clean) // 2)
    odd = clean[:mid] + b" " + clean[mid:]  # one trailing space on one line
    # Interleaved rounds, best of each: the machine is shared, so wall times are noisy; the
    # CPU time (process_time) is printed next to them.
    walls: dict[str, list[float]] = {"clean": [], "odd": []}
    cpus: dict[str, list[float]] = {"clean": [], "odd": []}
    stats: dict[str, Any] = {}
    images = {}
    for _ in range(3):
        for name, data in (("clean", clean), ("odd", odd)):
            if walls[name] and walls[name][-1] > 5.0:
                continue  # the slow parser: one run says enough
            st = _stats()
            images.pop(name, None)
            t0, c0 = time.perf_counter(), time.process_time()
            images[name] = _load_hex(data, st)
            walls[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
            stats[name] = st
    times = {name: min(v) for name, v in walls.items()}
    cpu = {name: min(v) for name, v in cpus.items()}
    same = images["clean"] == images["odd"]
    del images
    odd_stats = stats["odd"]
    how = (
        f"tidied regions {odd_stats.tidied_chunks}/{odd_stats.chunks}, whole-file fallback "
        f"{odd_stats.precise_file}"
        if odd_stats is not None
        else "no LoadStats"
    )
    print(
        f"HEX {size_mib} MiB image ({len(clean) / 2**20:.0f} MiB text): clean "
        f"{times['clean']:.2f} s ({cpu['clean']:.2f} s CPU), one trailing space "
        f"{times['odd']:.2f} s ({cpu['odd']:.2f} s CPU) ({how}); same image: {same}",
        flush=True,
    )
    out["hex_fallback_vs_fast"] = round(times["odd"] / times["clean"], 3)
    out["hex_fallback_vs_fast_cpu"] = round(cpu["odd"] / cpu["clean"], 3)
    out["hex_clean_mib_per_s"] = round(size_mib / times["clean"], 1)


def run_sparse(sizes: tuple[int, ...], out: dict[str, Any]) -> None:
    times, cpus = [], []
    for n in sizes:
        parts = [(0x1000_0000 + 32 * i, bytes([i & 0xFF]) * 16) for i in range(n)]
        text = firmware.to_hex(firmware.FirmwareImage.from_segments(parts), record_bytes=16)
        del parts
        runs = []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            image = firmware.load_hex(text, source="sparse.hex")
            runs.append((time.perf_counter() - t0, time.process_time() - c0))
            assert len(image.segments) == n
            del image
            if runs[-1][0] > 5.0:
                break  # the quadratic merge: one run says enough
        times.append(min(r[0] for r in runs))
        cpus.append(min(r[1] for r in runs))
        print(
            f"sparse HEX, {n:>6} one-record segments: {times[-1]:.3f} s wall (best of "
            f"{len(runs)}), {cpus[-1]:.3f} s CPU",
            flush=True,
        )
    out["sparse_262k_s"] = round(times[-1], 3)
    out["sparse_262k_cpu_s"] = round(cpus[-1], 3)
    out["sparse_exponent"] = round(exponent(list(sizes), times), 3)


def run_bin_export(tmp: Path, out: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    half = 512 * 1024
    image = firmware.FirmwareImage.from_segments(
        [
            (0x0800_0000, rng.integers(0, 256, half, np.uint8).tobytes()),
            (0x2000_0000 - half, rng.integers(0, 256, half, np.uint8).tobytes()),
        ]
    )
    ws = Workspace.open(tmp / "ws-bin")
    store = RepositoryStore(ws)
    store.commit_imports(
        [
            store.prepare_import(
                "Bench",
                "Sparse",
                "1.0.0",
                firmware.to_hex(image),
                source_name="sparse.hex",
                create_repository=True,
            )
        ]
    )
    target = tmp / "sparse.bin"
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        store.export("Bench", "Sparse", "1.0.0", "bin", target, confirm_size=lambda f, d: True)
    except TypeError:  # before issue 21: no size question
        store.export("Bench", "Sparse", "1.0.0", "bin", target)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    size = target.stat().st_size
    ws.close()
    target.unlink()
    print(
        f"binary export of 1 MiB spanning {image.span / 2**20:.0f} MiB: file {size / 2**20:.0f} "
        f"MiB, peak traced memory {peak / 2**20:.1f} MiB, {elapsed:.2f} s",
        flush=True,
    )
    out["bin_export_peak_over_span"] = round(peak / image.span, 4)


def run_record_size(tmp: Path, out: dict[str, Any]) -> None:
    from fota_studio.demo.run import run_demo
    from fota_studio.engine.records import list_flash_records, load_flash_record

    ws = Workspace.open(tmp / "ws-flash")
    outcome = run_demo(ws)
    row = list_flash_records(ws)[0]
    rec = load_flash_record(ws, row.id)
    text = ws.read("SELECT record FROM flash_records WHERE id = ?", (row.id,))[0]["record"]
    blf = ws.blobs.get(rec.buslog_sha256) if rec.buslog_sha256 else b""
    ws.close()
    mib = rec.bytes_total / 2**20
    per_record = len(text) / mib / 2**20
    per_log = len(blf) / mib / 2**20
    status = getattr(getattr(outcome, "request", None), "status", "?")
    print(
        f"demo flash ({status}): {rec.bytes_total:,} bytes flashed, "
        f"record {len(text):,} B ({per_record:.3f} MiB/MiB), BLF {len(blf):,} B "
        f"({per_log:.3f} MiB/MiB), {rec.buslog_frames:,} frames, "
        f"{len(rec.exchanges)} exchange records",
        flush=True,
    )
    out["record_bytes_per_flashed_mib"] = round(per_record + per_log, 3)
    out["record_json_per_flashed_mib"] = round(per_record, 3)
    out["buslog_per_flashed_mib"] = round(per_log, 3)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every case; print the figures and, last, one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only",
        choices=("repos", "requests", "hex", "sparse", "bin", "record"),
        action="append",
        help="run only these cases (repeatable)",
    )
    parser.add_argument("--repos", help="repository counts, e.g. 100,400,1000 (default by mode)")
    parser.add_argument("--requests", help="request counts, e.g. 100,1000,5000")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("repos", "requests"):
        if getattr(args, key):
            sizes[key] = tuple(int(n) for n in getattr(args, key).split(","))
    only = set(args.only or ("repos", "requests", "hex", "sparse", "bin", "record"))
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    out: dict[str, Any] = {"quick": bool(args.quick)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fota-scale-") as folder:
        tmp = Path(folder)
        os.environ.update(
            XDG_CONFIG_HOME=str(tmp / "config"),
            XDG_DATA_HOME=str(tmp / "data"),
            XDG_CACHE_HOME=str(tmp / "cache"),
        )
        if "sparse" in only:
            run_sparse(sizes["sparse"], out)
        if "bin" in only:
            run_bin_export(tmp, out)
        if "hex" in only:
            run_hex(sizes["hex_mib"], out)
        if "record" in only:
            run_record_size(tmp, out)
        if "repos" in only:
            run_repositories(sizes["repos"], tmp, out, spawn_each=not args.quick)
        if "requests" in only:
            run_requests(sizes["requests"], tmp, out)
    del app
    out["total_s"] = round(time.perf_counter() - started, 1)
    for key, value in out.items():
        if isinstance(value, float) and math.isnan(value):
            out[key] = None
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
