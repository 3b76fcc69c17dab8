"""Load and soak: many consecutive simulated updates through the real `Engine`, and two machines
updated in parallel on two channels.

`soak(n)` flashes one simulated ECU `n` times through `Engine.submit_flash` (the per-channel
worker), with a random fault on ~20 % of the updates, while `TraceCapture` + `TraceStore` capture
the same bus; every record is stored in a real workspace with its BLF bus log. After a warm-up it
samples threads, open file descriptors (psutil), python-can virtual-bus instances and RSS, and at
the end checks every record for consistency, `PRAGMA integrity_check`, `repo verify` and the
update-records hash chain. `parallel(...)` runs two ECUs on two channels (each its own engine
worker), injects a fault on one, and proves the other is undisturbed.

Run `python -m reliability.soak [N]`. Main thread of a script or test.
"""

from __future__ import annotations

import gc
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can
import psutil
from can.interfaces import virtual

from fota_studio.core.flash_record import RESULT_SUCCESS, FlashRecord
from fota_studio.engine.engine import Engine
from fota_studio.engine.flash_job import FlashResult
from fota_studio.engine.records import (
    list_flash_records,
    load_buslog,
    load_flash_record,
    save_flash_record,
)
from fota_studio.engine.trace_capture import TraceCapture
from fota_studio.engine.trace_store import TraceStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.sim.faults import Fault
from tests.fakes import sim_rig

#: Faults drawn for the ~20 % faulty updates (all recoverable by the next update).
SOAK_FAULTS = (
    Fault("erase", "nrc", 0x72),
    Fault("transfer_data", "power_loss", 0x500),
    Fault("transfer_data", "no_answer"),
    Fault("security_level_2", "nrc", 0x35),
    Fault("check", "nrc", 0x72),
    Fault("request_download", "drop", 1),
    Fault("transfer_exit", "corrupt", 1),
    Fault("reset", "no_answer"),
)
#: A job that has not finished after this long counts as hung.
JOB_DEADLINE_S = 60.0


@dataclass
class SoakReport:
    """Figures of one soak run."""

    updates: int = 0
    faulted: int = 0
    succeeded: int = 0
    failed: int = 0
    inconsistent: list[str] = field(default_factory=list)
    threads: tuple[int, int] = (0, 0)  # after warm-up, at the end
    fds: tuple[int, int] = (0, 0)
    buses: tuple[int, int] = (0, 0)
    rss_mib: tuple[float, float] = (0.0, 0.0)
    trace_frames: int = 0
    trace_received: int = 0
    trace_dropped: int = 0
    buslog_frames: int = 0
    threads_after_shutdown: tuple[int, int] = (0, 0)  # before the run, after shutdown
    integrity: str = ""
    repo_problems: list[str] = field(default_factory=list)
    chain_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mem_growth(self) -> float:
        """RSS growth after warm-up, as a fraction."""
        start, end = self.rss_mib
        return (end - start) / start if start else 0.0

    @property
    def leaks(self) -> list[str]:
        """Resource counts that grew between warm-up and the end."""
        out = []
        for what, (a, b) in (("threads", self.threads), ("fds", self.fds), ("buses", self.buses)):
            if b > a:
                out.append(f"{what} {a} -> {b}")
        before, after = self.threads_after_shutdown
        if after > before:
            out.append(f"threads left after shutdown {before} -> {after}")
        return out


def _sample() -> tuple[int, int, int, float]:
    gc.collect()
    proc = psutil.Process()
    buses = sum(len(v) for v in virtual.channels.values())
    return threading.active_count(), proc.num_fds(), buses, proc.memory_info().rss / 2**20


def _check_record(rec: FlashRecord, result: FlashResult, sim_ok: bool) -> str | None:
    """One line when the stored record contradicts the job result or the ECU."""
    if result.ok != (rec.result == RESULT_SUCCESS):
        return f"result.ok={result.ok} but record says {rec.result}"
    if result.ok and not sim_ok:
        return "success recorded but the ECU does not run the image"
    if not result.ok and not (rec.failed_step and rec.error):
        return f"failed record without step/error: {rec.failed_step!r} {rec.error!r}"
    if rec.bytes_total <= 0 or not rec.steps:
        return "record without bytes/steps"
    return None


def soak(n: int, *, seed: int = 3, fault_share: float = 0.2, warmup: int = 5) -> SoakReport:
    """`n` consecutive updates (see the module docstring)."""
    rng = random.Random(seed)
    report = SoakReport()
    t0 = time.monotonic()
    ecu = sim_rig.fast_ecu()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    channel = sim_rig.new_channel()
    threads_before = threading.active_count()
    with tempfile.TemporaryDirectory(prefix="fota-soak-") as tmp:
        root = Path(tmp)
        ws = Workspace.open(root / "ws")
        engine = Engine()
        store = TraceStore(capacity_frames=200_000)
        capture = TraceCapture(store)
        tester = can.Bus(interface="virtual", channel=channel, ignore_config=True)
        try:
            with sim_rig.sim_ecu(ecu, channel, root / "sim") as sim:
                notifier = engine.attach_channel("CAN1", tester)
                capture.attach("CAN1", tester, notifier)
                for i in range(n):
                    if i == warmup:
                        a = _sample()
                        report.threads, report.fds, report.buses = (a[0], 0), (a[1], 0), (a[2], 0)
                        report.rss_mib = (a[3], 0.0)
                    fault = rng.choice(SOAK_FAULTS) if rng.random() < fault_share else None
                    if fault is not None:
                        sim.inject(fault)
                        report.faulted += 1
                    blf = root / f"job-{i}.blf"
                    handle = engine.submit_flash(
                        "CAN1",
                        ecu,
                        image,
                        machine="Soak #1",
                        version=sim_rig.TARGET_VERSION,
                        expected_version=sim_rig.TARGET_VERSION,
                        buslog_path=blf,
                        boot_wait_s=sim_rig.BOOT_WAIT_S,
                    )
                    result: FlashResult = handle.result(JOB_DEADLINE_S)
                    report.trace_frames += capture.drain_into_store()
                    sim.clear_faults()
                    sim_rig.wait_until_settled(sim)
                    report.updates += 1
                    if result.ok:
                        report.succeeded += 1
                    else:
                        report.failed += 1
                    rid = save_flash_record(ws, result.record, blf)
                    stored = load_flash_record(ws, rid)
                    state = sim.state()
                    sim_ok = sim_rig.memory_matches(sim, image) and state.app_valid
                    problem = _check_record(stored, result, sim_ok)
                    if problem is None and stored.buslog_sha256 and load_buslog(ws, stored) is None:
                        problem = "bus log blob missing"
                    if problem:
                        report.inconsistent.append(f"update {i} ({fault}): {problem}")
                    report.buslog_frames += stored.buslog_frames
                b = _sample()
                report.threads = (report.threads[0], b[0])
                report.fds = (report.fds[0], b[1])
                report.buses = (report.buses[0], b[2])
                report.rss_mib = (report.rss_mib[0], b[3])
                report.trace_received = capture.received
                report.trace_dropped = capture.staging_dropped + store.dropped
                capture.detach("CAN1")
        finally:
            engine.shutdown()
            tester.shutdown()
        gc.collect()
        time.sleep(0.2)  # stopped threads finish their last loop iteration
        report.threads_after_shutdown = (threads_before, threading.active_count())
        report.integrity = ws.integrity_check()
        report.repo_problems = RepositoryStore(ws).verify()
        report.chain_problems = RequestsStore(ws).verify_chain()
        if len(list_flash_records(ws)) != n:
            report.inconsistent.append("stored record count differs from the number of updates")
        ws.close()
    report.seconds = time.monotonic() - t0
    return report


@dataclass
class ParallelReport:
    """Outcome of two simultaneous updates on two channels."""

    faulty_ok: bool
    healthy_ok: bool
    healthy_retries: int
    healthy_pending: int
    workers: set[str]
    overlapped: bool


def parallel(fault: Fault | None = None) -> ParallelReport:
    """Flash ECU A (with `fault`) and ECU B at the same time, each on its own channel/worker."""
    fault = fault or Fault("transfer_data", "power_loss", 0x500)
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    ecus = {"A": sim_rig.fast_ecu(), "B": sim_rig.fast_ecu()}
    channels = {k: sim_rig.new_channel() for k in ecus}
    with tempfile.TemporaryDirectory(prefix="fota-par-") as tmp:
        engine = Engine()
        buses: list[can.BusABC] = []
        windows: dict[str, tuple[float, float]] = {}
        workers: set[str] = set()
        try:
            with (
                sim_rig.sim_ecu(ecus["A"], channels["A"], Path(tmp) / "a") as sim_a,
                sim_rig.sim_ecu(ecus["B"], channels["B"], Path(tmp) / "b") as sim_b,
            ):
                sim_a.inject(fault)
                handles: dict[str, Any] = {}
                for key in ("A", "B"):
                    bus = can.Bus(interface="virtual", channel=channels[key], ignore_config=True)
                    buses.append(bus)
                    engine.attach_channel(key, bus)

                    def job(ctx: Any) -> Any:
                        workers.add(threading.current_thread().name)
                        return ctx

                    def on_result(r: FlashResult, k: str = key) -> None:
                        windows[k] = (r.record.started_at, r.record.finished_at or 0.0)

                    handles[key] = engine.submit_flash(
                        key,
                        ecus[key],
                        image,
                        expected_version=sim_rig.TARGET_VERSION,
                        boot_wait_s=sim_rig.BOOT_WAIT_S,
                        on_result=on_result,
                    )
                    engine.submit(key, "whoami", job)
                res_a: FlashResult = handles["A"].result(JOB_DEADLINE_S)
                res_b: FlashResult = handles["B"].result(JOB_DEADLINE_S)
                sim_rig.wait_until_settled(sim_b)
                healthy_ok = (
                    res_b.ok and sim_rig.memory_matches(sim_b, image) and sim_b.state().app_valid
                )
                a0, a1 = windows["A"]
                b0, b1 = windows["B"]
                return ParallelReport(
                    faulty_ok=res_a.ok,
                    healthy_ok=healthy_ok,
                    healthy_retries=res_b.record.block_retries,
                    healthy_pending=res_b.record.pending_responses,
                    workers=workers,
                    overlapped=a0 < b1 and b0 < a1,
                )
        finally:
            engine.shutdown()
            for bus in buses:
                bus.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run the soak (N updates, default 200) and the parallel check; print the figures."""
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 200
    rep = soak(n)
    out = sys.stdout
    out.write(
        f"soak: {rep.updates} updates ({rep.faulted} with a fault): {rep.succeeded} ok, "
        f"{rep.failed} failed, {len(rep.inconsistent)} inconsistent records, "
        f"{rep.trace_frames} frames traced ({rep.trace_dropped} dropped; bus logs "
        f"{rep.buslog_frames}), {rep.seconds:.0f} s\n"
        f"  threads {rep.threads}, fds {rep.fds}, buses {rep.buses}, RSS "
        f"{rep.rss_mib[0]:.1f} -> {rep.rss_mib[1]:.1f} MiB ({rep.mem_growth:+.1%})\n"
        f"  integrity {rep.integrity}, repo verify {rep.repo_problems or 'ok'}, "
        f"records verify {rep.chain_problems or 'ok'}\n"
    )
    par = parallel()
    out.write(f"parallel: {par}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
