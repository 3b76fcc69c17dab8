"""Flash throughput benchmark: our engine vs a minimal udsoncan + can-isotp loop, and the
efficiency against the wire-time lower bound on the paced bus model.

1. ~1 MiB into the simulated ECU on python-can `virtual` (classic VCU, CAN FD BCU): the download
   phase (RequestDownload request .. RequestTransferExit response) of our engine (Engine +
   flash_ecu) vs a minimal hand-written udsoncan/can-isotp loop (erase, RequestDownload
   honouring maxNumberOfBlockLength, TransferData, RequestTransferExit) in the same process,
   against the SAME simulator configuration and the same ISO-TP parameters (build_params).
   One discarded warm-up pair, then ROUNDS[kind] interleaved pairs (ours, ref / ref, ours, ...);
   the ratio is of the medians, best and spread (min..max) are printed. Target ≥ 1.0×.
2. 256 KiB through the bus timing model (PacedVirtualBus, built directly: open_bus drops the
   bitrates for "fota_sim") at 500 kbit/s classic and 500 k/2 M FD: the TransferData phase (first
   request sent .. last response received) vs the wire-time lower bound of EVERY frame the
   transfer needs: per block the request's first + consecutive frames (tester padding), the
   ECU's flow control(s) for its offered block size, and the positive response — each at its
   real length with core/can_timing's worst-case stuffing (the model the paced bus uses).
   Target ≥ 0.95 (median of PACED_RUNS); and the CPU used, target ≤ 20 % of one core —
   measured per thread (psutil) for the tester side only: engine worker, TesterPresent, our
   ISO-TP stacks and the engine's notifier; the whole-process figure (simulator + pacing
   included) is printed too.

3. The whole sequence (issue 13), through the bus timing model at 500 kbit/s: a simulated ECU
   with slow erase (400 ms per 4 KiB sector, ≥ 1 s per region), programming time per KiB,
   256-byte TransferData blocks (maxNumberOfBlockLength 0x102), BS 8 and STmin 1 ms, and a
   six-segment image spanning two memory regions whose segments share sectors. Our engine (the
   full 14-step sequence, erase_policy per_region) vs a minimal reference flasher written here
   with udsoncan + can-isotp (entry frame, sessions, security, fingerprint, one erase of the
   sector-aligned union per region, download per segment, check, reset, version read; it waits
   the EA's documented times and does nothing clever), interleaved, after a warm-up pair.
   `sequence_vs_reference` = reference total ÷ ours (target ≥ 1.0); `dryrun_error` =
   |estimate − actual| ÷ actual of `flash --dry-run`'s estimate from the EA's timing facts
   (target ≤ 0.20; `dryrun_error_measured`: the estimate from the first flash's measured step
   times); `erases_per_region` = erase requests per touched region in our flash (the
   simulator counts them; target 1.0).

The simulated bootloader of cases 1-2 offers ISO-TP block size 0 and STmin 0
(SIM_BLOCK_SIZE/SIM_STMIN_MS), like a production CAN bootloader; block sizes > 0 are only needed
on lossy transports (udp_multicast, library-notes.md).

Run: `python bench/flash.py` (≈ 3-4 min); `python bench/flash.py --only sequence` (or the
environment variable FOTA_BENCH_FLASH_ONLY=sequence) runs one case (download, paced, sequence).
Issue 18 cases (bench/flash_beyond.py): `--only compression|delta|resume|parallel`:
`compressed_speedup`, `delta_time_fraction`, `resume_time_fraction`, `inrun_resume_ok`,
`parallel_vs_longest`, `same_bus_vs_wire`.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import can
import isotp
import psutil
import udsoncan.configs
from udsoncan.client import Client
from udsoncan.common.MemoryLocation import MemoryLocation
from udsoncan.connections import PythonIsoTpV2Connection
from udsoncan.exceptions import NegativeResponseException, TimeoutException

from fota_studio.core.can_timing import fd_payload_length, wire_time_s
from fota_studio.core.ea import EcuDefinition, MemoryRegion, StepKind
from fota_studio.core.flash_plan import MeasuredFlash, make_plan
from fota_studio.core.seedkey import compute_key, demo_secret
from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.engine import Engine
from fota_studio.engine.estimates import erase_ranges, estimate_flash, measured_from_record
from fota_studio.engine.flash_job import FlashResult, SimpleSegment, fingerprint_record
from fota_studio.protocols.isotp_link import build_address, build_params
from fota_studio.sim.paced_bus import PacedVirtualBus
from fota_studio.sim.uds_ecu import SimEcu, SimEcuOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flash_beyond

logging.basicConfig(level=logging.ERROR)
#: Interleaved (ours, reference) pairs per bus kind after one discarded warm-up pair (an FD
#: run is short, ~0.5 s, so it needs more rounds for a stable median).
ROUNDS = {"classic": 4, "fd": 8}
#: Paced runs per bus kind (the median efficiency is reported).
PACED_RUNS = 3
#: What the simulated bootloader offers as ISO-TP receiver (both loops see the same ECU).
SIM_BLOCK_SIZE = 0
SIM_STMIN_MS = 0


class _Image(flash_beyond.SegmentImage):
    def __init__(self, size: int, version: str = "1.0.0") -> None:
        body = bytearray()
        i = 0
        while len(body) < size:
            body += hashlib.sha256(f"{version}{i}".encode()).digest()
            i += 1
        data = demo_catalog.app_header(version) + bytes(body[: size - 32])
        super().__init__([SimpleSegment(demo_catalog.APP_REGION_START, data)])


def _ecu(name: str) -> EcuDefinition:
    ecu = copy.deepcopy(next(e for e in demo_catalog.demo_ecus() if e.name == name))
    ecu.connection.bootloader_entry_delay_ms = 150
    return ecu


def _sim_options() -> SimEcuOptions:
    """The simulated bootloader of cases 1-2 (see the module doc)."""
    return flash_beyond.sim_options(
        erase_ms_per_kib=0.02, block_size=SIM_BLOCK_SIZE, stmin_ms=SIM_STMIN_MS
    )


@contextlib.contextmanager
def _engine_on(make_bus: Any) -> Iterator[tuple[Engine, can.Notifier]]:
    """Our engine with CAN1 on a bus instance from `make_bus`; shut down (bus too) on exit."""
    engine = Engine()
    try:
        yield engine, engine.attach_channel("CAN1", make_bus())
    finally:
        bus, _ = engine.bus_of("CAN1")
        engine.shutdown()
        bus.shutdown()


def _reference_client(
    ecu: EcuDefinition, node: tuple[can.BusABC, can.Notifier], addr: Any, **config: Any
) -> Client:
    """A udsoncan client to `addr` over our ISO-TP parameters (build_params: padding, FD
    length, blocking_send — udsoncan needs it, library-notes.md); `config`: client settings."""
    conn = ecu.connection
    bus, notifier = node
    stack = isotp.NotifierBasedCanStack(
        bus,
        notifier,
        address=build_address(conn, addr),
        params=build_params(conn, blocking_send=True),
    )
    cfg = dict(udsoncan.configs.default_client_config)
    cfg.update({"request_timeout": None, **config})
    return Client(PythonIsoTpV2Connection(stack), config=cfg)  # type: ignore[arg-type]


def _reference_unlock(ecu: EcuDefinition, bus: can.BusABC, boot: Client) -> None:
    """The entry frame, the documented entry time, then programming session and every
    security level, as the reference flashers do it (no engine of ours)."""
    conn = ecu.connection
    entry = conn.bootloader_entry
    assert entry is not None
    bus.send(
        can.Message(arbitration_id=entry.can_id, data=entry.data, is_extended_id=entry.extended_id)
    )
    time.sleep(conn.bootloader_entry_delay_ms / 1000)  # the documented entry time
    boot.change_session(3)
    for lvl in ecu.uds.security_levels:
        if lvl.seed_subfunction == 3:
            boot.change_session(2)
        seed = boot.request_seed(lvl.seed_subfunction).service_data.seed
        key = compute_key(lvl.algorithm, seed, lvl.params, demo_secret(lvl.secret_ref or ""))
        boot.send_key(lvl.key_subfunction, key)


def _reference_erase(boot: Client, start: int, size: int) -> None:
    """The demo erase routine (0xFF00) over [start, start + size)."""
    boot.routine_control(
        0xFF00, 1, bytes([0x44]) + start.to_bytes(4, "big") + size.to_bytes(4, "big")
    )


def _reference_download(boot: Client, seg: SimpleSegment) -> None:
    """RequestDownload honouring maxNumberOfBlockLength, TransferData, RequestTransferExit."""
    loc = MemoryLocation(seg.address, len(seg.data), 32, 32)
    chunk = boot.request_download(loc).service_data.max_length - 2
    counter = 1
    for off in range(0, len(seg.data), chunk):
        boot.transfer_data(counter, seg.data[off : off + chunk])
        counter = (counter + 1) & 0xFF
    boot.request_transfer_exit()


def _phase_s(result: FlashResult, first: str, last: str) -> float:
    """Seconds from the first `first` request to the last `last` response of the record."""
    ex = result.record.exchanges
    t0 = next(e.t_request for e in ex if e.step == first)
    t1 = [e.t_response for e in ex if e.step == last][-1]
    assert t1 is not None
    return t1 - t0


def _bound_s(ecu: EcuDefinition, data_len: int, max_block: int, ecu_bs: int) -> tuple[float, int]:
    """(seconds, frames): wire-time lower bound of the TransferData phase (see module doc)."""
    conn = ecu.connection
    fd, ext = conn.fd, conn.id_bits == 29
    frame_len = conn.fd_frame_length if fd else 8

    def frame(n: int, padded_min: int | None) -> float:
        # Tester (tx_data_min_length 8 with padding) and sim (FD: nearest FD length) rules.
        length = fd_payload_length(n) if fd else 8
        if padded_min is not None:
            length = max(length, padded_min)
        msg = can.Message(data=bytes(length), is_extended_id=ext, is_fd=fd, bitrate_switch=fd)
        return wire_time_s(msg, conn.bitrate_bps, conn.data_bitrate_bps if fd else None)

    pad = 8 if conn.padding_byte is not None else None
    ecu_pad = 8 if (conn.padding_byte is not None and not fd) else None
    limit = max_block if fd else min(max_block, 4095)
    chunk = limit - 2
    total, frames = 0.0, 0
    for off in range(0, data_len, chunk):
        msg_len = 2 + min(chunk, data_len - off)
        sf_max = 7 if frame_len == 8 else frame_len - 2
        if msg_len <= sf_max:
            total += frame(msg_len + (1 if msg_len <= 7 else 2), pad)
            frames += 1
        else:
            ff_data = frame_len - (2 if msg_len <= 4095 else 6)
            rest = msg_len - ff_data
            cfs = -(-rest // (frame_len - 1))
            last = rest - (cfs - 1) * (frame_len - 1)
            fcs = 1 + ((cfs - 1) // ecu_bs if ecu_bs > 0 else 0)
            total += frame(frame_len, pad) * cfs + frame(1 + last, pad) - frame(frame_len, pad)
            total += frame(frame_len, pad)  # first frame
            total += fcs * frame(3, ecu_pad)  # flow control(s) from the ECU
            frames += 1 + cfs + fcs
        total += frame(3, ecu_pad)  # positive response 76 <counter>
        frames += 1
    return total, frames


class _ThreadCpu:
    """Samples per-thread CPU time (psutil) of the tester side: engine worker, TesterPresent,
    our ISO-TP stacks and the engine's notifier — not the simulator's threads."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.ours: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)

    def mark(self, thread: threading.Thread) -> None:
        if thread.native_id is not None:
            self.ours.add(thread.native_id)

    def _sample(self) -> None:
        for t in threading.enumerate():
            if t.name.startswith(("fota-bus-", "fota-tp-", "fota-isotp-")):
                self.mark(t)
        for th in psutil.Process().threads():
            self.seen[th.id] = th.user_time + th.system_time

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> _ThreadCpu:
        self._sample()
        self.base = dict(self.seen)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def cpu_s(self) -> float:
        return sum(self.seen[i] - self.base.get(i, 0.0) for i in self.ours if i in self.seen)


def run_engine(
    ecu: EcuDefinition, image: _Image, make_bus: Any, *, measure_cpu: bool = False
) -> tuple[float, float, float, float, float]:
    """(download-phase s, transfer-phase s, total s, process CPU s, tester-side CPU s)."""
    with (
        flash_beyond.sim_node(make_bus, ecu, _sim_options()),
        _engine_on(make_bus) as (engine, notifier),
    ):
        # The CPU sampler (psutil every 50 ms) costs GIL time: only where CPU is reported,
        # never in the comparison with the reference loop, which has no sampler.
        meter = _ThreadCpu() if measure_cpu else None
        with meter if meter is not None else contextlib.nullcontext():
            if meter is not None:
                for reader in notifier._readers:
                    if isinstance(reader, threading.Thread):
                        meter.mark(reader)
            cpu0, t0 = time.process_time(), time.perf_counter()
            result = engine.submit_flash("CAN1", ecu, image, boot_wait_s=2.0).result(600)
            total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if not result.ok:
            raise SystemExit(f"engine flash failed: {result.error}")
        return (
            _phase_s(result, "request_download", "transfer_exit"),
            _phase_s(result, "transfer_data", "transfer_data"),
            total,
            cpu,
            meter.cpu_s() if meter is not None else 0.0,
        )


def run_reference(ecu: EcuDefinition, image: _Image, make_bus: Any) -> float:
    """Download-phase seconds of a minimal udsoncan + can-isotp loop (no engine of ours).

    Same ISO-TP parameters as our links (build_params: padding, FD length, blocking_send —
    udsoncan needs it, library-notes.md) so the comparison measures the flashing loop only.
    """
    with (
        flash_beyond.sim_node(make_bus, ecu, _sim_options()),
        flash_beyond.bus_node(make_bus) as tester,
    ):
        client = _reference_client(
            ecu, tester, ecu.connection.bootloader, p2_timeout=1.0, p2_star_timeout=5.0
        )
        with client:
            _reference_unlock(ecu, tester[0], client)
            seg = image.segments[0]
            _reference_erase(client, seg.address, len(seg.data))
            t0 = time.time()
            _reference_download(client, seg)
            return time.time() - t0


def _spread(times: list[float], size: int) -> str:
    rates = sorted(size / t / 1000 for t in times)
    mid = statistics.median(rates)
    return f"median {mid:7.1f} kB/s (min {rates[0]:.1f} .. max {rates[-1]:.1f})"


# -- case 3: the whole sequence vs a minimal reference flasher -------------------------------

#: Interleaved (ours, reference) pairs after one discarded warm-up pair.
SEQUENCE_ROUNDS = 2
SEQ_SECTOR = 0x1000
SEQ_ERASE_MS_PER_SECTOR = 400.0
SEQ_PROGRAMMING_MS_PER_KIB = 4.0
SEQ_MAX_BLOCK_LENGTH = 0x102  # 256 data bytes per TransferData block
SEQ_BLOCK_SIZE = 8
SEQ_STMIN_MS = 1
SEQ_RESET_MS = 300
SEQ_ENTRY_DELAY_MS = 150
#: Region "application" from the demo app start, region "calibration" above it.
SEQ_CAL_START = demo_catalog.APP_REGION_START + 0x8_0000
#: Segments (offset in region, length): they share sectors, so an erase per segment would
#: erase a sector twice; per region the union is 4 + 3 sectors.
SEQ_LAYOUT = (
    (demo_catalog.APP_REGION_START, ((0x0000, 0x1800), (0x1C00, 0x800), (0x3000, 0x600))),
    (SEQ_CAL_START, ((0x0000, 0x900), (0x0A00, 0x900), (0x2000, 0x200))),
)


class _SeqImage(flash_beyond.SegmentImage):
    """A multi-segment image over two regions, the app header first (the ECU reads the version)."""

    def __init__(self, version: str) -> None:
        segments: list[SimpleSegment] = []
        n = 0
        for base, parts in SEQ_LAYOUT:
            for off, length in parts:
                body = bytearray()
                while len(body) < length:
                    body += hashlib.sha256(f"{version}/{n}/{len(body)}".encode()).digest()
                data = bytes(body[:length])
                if not segments:
                    data = demo_catalog.app_header(version) + data[32:]
                segments.append(SimpleSegment(base + off, data))
                n += 1
        super().__init__(segments)


def _seq_ecu() -> EcuDefinition:
    """The demo VCU with a second region and the timing facts of its (simulated) supplier."""
    ecu = copy.deepcopy(next(e for e in demo_catalog.demo_ecus() if e.name == "VCU"))
    ecu.connection.bootloader_entry_delay_ms = SEQ_ENTRY_DELAY_MS
    ecu.connection.block_size = SEQ_BLOCK_SIZE
    u = ecu.uds
    u.memory_regions = [
        MemoryRegion("application", demo_catalog.APP_REGION_START, 0x4_0000, SEQ_SECTOR),
        MemoryRegion("calibration", SEQ_CAL_START, 0x1_0000, SEQ_SECTOR),
    ]
    u.erase_policy = "per_region"
    t = u.timing
    t.reset_time_ms = SEQ_RESET_MS
    t.erase_ms_per_kib = 0.0
    t.erase_ms_per_sector = SEQ_ERASE_MS_PER_SECTOR
    t.programming_ms_per_kib = SEQ_PROGRAMMING_MS_PER_KIB
    t.ecu_max_block_length = SEQ_MAX_BLOCK_LENGTH
    t.ecu_stmin_ms = SEQ_STMIN_MS
    t.ecu_block_size = SEQ_BLOCK_SIZE
    return ecu


def _seq_sim(ecu: EcuDefinition, make_bus: Any) -> contextlib.AbstractContextManager[SimEcu]:
    """The simulated ECU of case 3 (slow erase, small blocks), holding version 0.9.0."""
    opts = SimEcuOptions(
        erase_ms_per_kib=0.0,
        erase_ms_per_sector=SEQ_ERASE_MS_PER_SECTOR,
        erase_min_ms=10,
        programming_ms_per_kib=SEQ_PROGRAMMING_MS_PER_KIB,
        max_block_length=SEQ_MAX_BLOCK_LENGTH,
        block_size=SEQ_BLOCK_SIZE,
        stmin_ms=SEQ_STMIN_MS,
        strict=True,
    )
    old = _SeqImage("0.9.0")
    initial = [(s.address, s.data) for s in old.segments]
    return flash_beyond.sim_node(make_bus, ecu, opts, initial_image=initial)


def _paced_factory(ecu: EcuDefinition) -> Any:
    channel = f"seq-{uuid.uuid4().hex[:6]}"
    conn = ecu.connection

    def paced() -> can.BusABC:
        return PacedVirtualBus(
            channel=channel, bitrate=conn.bitrate_bps, data_bitrate=conn.data_bitrate_bps
        )

    return paced


def run_sequence_ours(ecu: EcuDefinition, image: _SeqImage) -> tuple[float, FlashResult, Any]:
    """(seconds, result, simulator state) of our engine's whole flash on the paced bus."""
    make_bus = _paced_factory(ecu)
    with _seq_sim(ecu, make_bus) as sim, _engine_on(make_bus) as (engine, _notifier):
        t0 = time.perf_counter()
        result = engine.submit_flash(
            "CAN1", ecu, image, expected_version="2.0.0", version="2.0.0"
        ).result(600)
        took = time.perf_counter() - t0
        if not result.ok:
            raise SystemExit(f"engine sequence flash failed: {result.error}")
        return took, result, sim.state()


def run_sequence_reference(ecu: EcuDefinition, image: _SeqImage) -> float:
    """Seconds of a minimal udsoncan + can-isotp flasher doing the same job (see module doc)."""
    conn = ecu.connection
    make_bus = _paced_factory(ecu)
    with _seq_sim(ecu, make_bus), flash_beyond.bus_node(make_bus) as tester:
        timing = {
            "p2_timeout": ecu.uds.p2_timeout_ms / 1000,
            "p2_star_timeout": ecu.uds.p2_star_timeout_ms / 1000,
            "use_server_timing": False,
        }
        boot = _reference_client(ecu, tester, conn.bootloader, **timing)
        app = _reference_client(ecu, tester, conn.application, **timing)
        reset_s = ecu.uds.timing.reset_time_ms / 1000
        t0 = time.perf_counter()
        with boot:
            _reference_unlock(ecu, tester[0], boot)
            fp = next(s for s in ecu.uds.sequence if s.kind == StepKind.FINGERPRINT)
            # 2E without a DID codec: udsoncan's generic request
            boot.send_request(
                udsoncan.Request(
                    udsoncan.services.WriteDataByIdentifier,
                    data=int(fp.param("did")).to_bytes(2, "big") + fingerprint_record(fp, "bench"),
                )
            )
            erased: set[str] = set()
            for seg in image.segments:
                region = next(r for r in ecu.uds.memory_regions if r.start <= seg.address < r.end)
                if region.name not in erased:
                    # one erase of the sector-aligned union of the image in this region
                    inside = [s for s in image.segments if region.start <= s.address < region.end]
                    lo = min(s.address for s in inside) // SEQ_SECTOR * SEQ_SECTOR
                    hi = max(s.address + len(s.data) for s in inside)
                    hi = -(-hi // SEQ_SECTOR) * SEQ_SECTOR
                    _reference_erase(boot, lo, hi - lo)
                    erased.add(region.name)
                _reference_download(boot, seg)
            boot.routine_control(0xFF01, 1, image.crc32().to_bytes(4, "big"))
            boot.ecu_reset(1)
        time.sleep(reset_s)  # the documented reset time, then ask the application
        with app:
            deadline = time.monotonic() + ecu.uds.timing.application_start_timeout_s
            read_version = udsoncan.Request(
                udsoncan.services.ReadDataByIdentifier, data=b"\xf1\x95"
            )
            while True:
                try:
                    app.send_request(read_version)
                    break
                except (TimeoutException, NegativeResponseException):
                    if time.monotonic() > deadline:
                        raise
        return time.perf_counter() - t0


def run_sequence_case(out: dict[str, Any]) -> None:
    """Case 3: `sequence_vs_reference`, `dryrun_error`, `erases_per_region` (module doc)."""
    ecu = _seq_ecu()
    image = _SeqImage("2.0.0")
    segments = [(s.address, len(s.data)) for s in image.segments]
    estimate = estimate_flash(ecu, segments)
    run_sequence_ours(ecu, image)  # warm-up pair (imports, caches): discarded
    run_sequence_reference(ecu, image)
    ours: list[float] = []
    refs: list[float] = []
    first: FlashResult | None = None
    state: Any = None
    for i in range(SEQUENCE_ROUNDS):
        if i % 2:
            refs.append(run_sequence_reference(ecu, image))
        took, result, snap = run_sequence_ours(ecu, image)
        ours.append(took)
        if first is None:
            first, state = result, snap
        if not i % 2:
            refs.append(run_sequence_reference(ecu, image))
    assert first is not None and state is not None
    actual = statistics.median(ours)
    ratio = statistics.median(refs) / actual
    err = abs(estimate.estimated_s - actual) / actual
    measured: list[MeasuredFlash] = [measured_from_record(ecu, first.record)]
    again = make_plan(ecu, segments, erase_ranges=erase_ranges(ecu, segments), measured=measured)
    err_measured = abs(again.estimated_s - actual) / actual
    regions = dict(state.region_erases)
    per_region = sum(regions.values()) / len(regions) if regions else 0.0
    violations = len(state.violations)
    print(
        f"sequence paced 500k, {len(segments)} segments / 2 regions, "
        f"{sum(n for _, n in segments)} bytes: reference {statistics.median(refs):.2f} s "
        f"({', '.join(f'{r:.2f}' for r in refs)}), ours {actual:.2f} s "
        f"({', '.join(f'{o:.2f}' for o in ours)}) -> {ratio:.2f}x; dry-run estimate "
        f"{estimate.estimated_s:.2f} s (error {err:.3f}), from the measured flash "
        f"{again.estimated_s:.2f} s (error {err_measured:.3f}); erases per region {regions} "
        f"-> {per_region:.2f}; simulator violations {violations}"
    )
    out["sequence_vs_reference"] = round(ratio, 3)
    out["dryrun_error"] = round(err, 3)
    out["dryrun_error_measured"] = round(err_measured, 3)
    out["erases_per_region"] = round(per_region, 3)
    out["sequence_violations"] = violations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        choices=("download", "paced", "sequence", "compression", "delta", "resume", "parallel"),
        default=os.environ.get("FOTA_BENCH_FLASH_ONLY") or None,
        help="run one case (default: all; env FOTA_BENCH_FLASH_ONLY)",
    )
    only = parser.parse_args().only
    out: dict[str, Any] = {}
    if only in (None, "download"):
        run_download_case(out)
    if only in (None, "paced"):
        run_paced_case(out)
    if only in (None, "sequence"):
        run_sequence_case(out)
    if only in (None, "compression"):
        flash_beyond.run_compression_case(out)
    if only in (None, "delta"):
        flash_beyond.run_delta_case(out)
    if only in (None, "resume"):
        flash_beyond.run_resume_case(out)
    if only in (None, "parallel"):
        flash_beyond.run_parallel_case(out)
    print(json.dumps(out))


def run_download_case(out: dict[str, Any]) -> None:
    """Case 1: `classic_vs_reference`, `fd_vs_reference` (+ `_best`)."""
    size = 1024 * 1024 - 0x10000  # the whole demo application region minus a margin
    for label, name in (("classic", "VCU"), ("fd", "BCU")):
        ecu = _ecu(name)
        image = _Image(size)
        channel = f"bench-{uuid.uuid4().hex[:6]}"

        def virtual(channel: str = channel) -> can.BusABC:
            return can.Bus(interface="virtual", channel=channel, ignore_config=True)

        # Warm-up pair (imports, caches, page cache of the flash file): discarded.
        run_engine(ecu, image, virtual)
        run_reference(ecu, image, virtual)
        ref_times, our_times = [], []
        for i in range(ROUNDS[label]):
            # Alternate the order so drift in machine load hits both alike.
            if i % 2:
                ref_times.append(run_reference(ecu, image, virtual))
                our_times.append(run_engine(ecu, image, virtual)[0])
            else:
                our_times.append(run_engine(ecu, image, virtual)[0])
                ref_times.append(run_reference(ecu, image, virtual))
        ratio = statistics.median(ref_times) / statistics.median(our_times)
        best = min(ref_times) / min(our_times)
        pairs = [r / o for r, o in zip(ref_times, our_times, strict=True)]
        print(
            f"{label:8} virtual {size / 1024:.0f} KiB, download phase, {ROUNDS[label]} rounds: "
            f"reference {_spread(ref_times, size)}; ours {_spread(our_times, size)} "
            f"-> {ratio:.2f}x (median), {best:.2f}x (best), per pair "
            f"{min(pairs):.2f}..{max(pairs):.2f}x"
        )
        out[f"{label}_vs_reference"] = round(ratio, 3)
        out[f"{label}_vs_reference_best"] = round(best, 3)


def run_paced_case(out: dict[str, Any]) -> None:
    """Case 2: `paced_classic_efficiency`, `paced_fd_efficiency`, `paced_cpu_fraction`."""
    cpu_fracs = []
    for label, name, fd in (("classic", "VCU", False), ("fd", "BCU", True)):
        ecu = _ecu(name)
        psize = 256 * 1024
        image = _Image(psize)
        channel = f"paced-{uuid.uuid4().hex[:6]}"
        conn = ecu.connection

        def paced(channel: str = channel, fd: bool = fd, conn: Any = conn) -> can.BusABC:
            return PacedVirtualBus(
                channel=channel,
                bitrate=conn.bitrate_bps,
                data_bitrate=conn.data_bitrate_bps,
                fd=fd,
            )

        max_block = 0xFFF if fd else 0x402  # SimEcu's maxNumberOfBlockLength
        bound, frames = _bound_s(ecu, psize, max_block, SIM_BLOCK_SIZE)
        effs, fracs, whole = [], [], []
        for _ in range(PACED_RUNS):
            _dl, td_s, total_s, cpu, tester_cpu = run_engine(ecu, image, paced, measure_cpu=True)
            effs.append(bound / td_s)
            fracs.append(tester_cpu / total_s)
            whole.append(cpu / total_s)
        eff = statistics.median(effs)
        cpu_fracs.append(max(fracs))
        rate = "500k/2M" if fd else "500k"
        print(
            f"{label:8} paced {rate} 256 KiB: wire lower bound {bound:.3f} s ({frames} frames: "
            f"FF+CFs, ECU flow controls for BS={SIM_BLOCK_SIZE}, responses; worst-case "
            f"stuffing); efficiency per run {', '.join(f'{e:.3f}' for e in effs)} -> median "
            f"{eff:.3f}; tester-side CPU max {max(fracs) * 100:.1f} % of one core (whole "
            f"process incl. simulator and pacing: {max(whole) * 100:.1f} %)"
        )
        out[f"paced_{label}_efficiency"] = round(eff, 3)
    out["paced_cpu_fraction"] = round(max(cpu_fracs), 3)
    out["paced_bound_includes"] = "data frames (FF+CF), ECU flow controls, responses"


if __name__ == "__main__":
    main()
