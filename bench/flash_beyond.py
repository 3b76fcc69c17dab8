"""Bench cases of issue 18 (run by bench/flash.py `--only compression|delta|resume|parallel`):
compressed, delta and resumed transfers and several ECUs at once, through the bus timing model
(PacedVirtualBus) at 500 kbit/s classic, with firmware-like content — bytes of this machine's
libpython (compiled code), not random data.

- compression: the same image flashed without and with zlib (method 1), whole flash time;
  `compressed_speedup` = without ÷ with (target ≥ 1.5).
- delta: a full flash with the sector-checksum routine, then a re-flash with 3 of 64 sectors
  changed; `delta_time_fraction` = re-flash ÷ full flash (target ≤ 0.15).
- resume: a power loss after 70 % of the transfer, then the re-run; `resume_time_fraction` =
  re-run ÷ a full flash (target ≤ 0.45). `inrun_resume_ok`: the tester's frames are lost for
  2 s mid-transfer (S3 5 s) and the flash completes in the same run (target true).
- parallel: three ECUs on three channels in one plan ÷ the longest of the three alone
  (`parallel_vs_longest`, target ≤ 1.15); three ECUs on one bus ÷ the wire time of every frame
  they put on it (`same_bus_vs_wire`, target ≤ 1.10).
Main thread of the bench process.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import sys
import sysconfig
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import can

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes, run standalone

from fota_studio.core.can_timing import wire_time_s
from fota_studio.core.ea import CompressionSettings, EcuDefinition, IsoTpAddress, SectorChecksum
from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.flash_job import FlashResult, FlashSession, SimpleSegment, flash_ecu
from fota_studio.engine.flash_plan_run import PlanTarget, flash_machine
from fota_studio.sim.faults import Fault
from fota_studio.sim.paced_bus import PacedVirtualBus
from fota_studio.sim.uds_ecu import SimEcu, SimEcuOptions
from tests.fakes.sim_rig import AdapterFaultBus, bus_node

BITRATE = 500_000
SECTOR = 0x1000


def machine_code(size: int, offset: int) -> bytes:
    """`size` bytes of libpython from `offset` (firmware-like: compiled code)."""
    path = Path(sysconfig.get_config_var("LIBDIR") or "") / (
        sysconfig.get_config_var("LDLIBRARY") or ""
    )
    raw = path.read_bytes() if path.is_file() else Path(__file__).read_bytes() * 64
    start = offset % max(1, len(raw) - size)
    return raw[start : start + size]


class SegmentImage:
    """An image as flash_ecu reads it: its segments, their SHA-256 (of the concatenated data)
    and CRC32 (chained over the segments)."""

    def __init__(self, segments: list[SimpleSegment]) -> None:
        """Hash `segments` once (the bench flashes an image many times)."""
        self.segments = segments
        self._sha = hashlib.sha256(b"".join(s.data for s in segments)).hexdigest()
        crc = 0
        for seg in segments:
            crc = zlib.crc32(seg.data, crc)
        self._crc = crc & 0xFFFFFFFF

    def sha256(self) -> str:
        """SHA-256 hex of the data."""
        return self._sha

    def crc32(self) -> int:
        """CRC32 of the data."""
        return self._crc


class Image(SegmentImage):
    """A one-segment application image of machine code (app header first)."""

    def __init__(self, version: str, size: int, patch_sectors: tuple[int, ...] = ()) -> None:
        """`patch_sectors`: sector indices changed against the same version's base content."""
        body = bytearray(machine_code(size, 0x100000))
        body[: demo_catalog.APP_HEADER_SIZE] = demo_catalog.app_header(version)
        for k in patch_sectors:
            body[k * SECTOR + 64 : k * SECTOR + 96] = bytes(range(32))
        super().__init__([SimpleSegment(demo_catalog.APP_REGION_START, bytes(body))])


def bench_ecu(name: str = "VCU", app_id: int | None = None) -> EcuDefinition:
    """A demo ECU with short documented waits (the transfer dominates, as on a real machine)."""
    ecu = copy.deepcopy(next(e for e in demo_catalog.demo_ecus() if e.name == name))
    ecu.name = name if app_id is None else f"{name}-{app_id:X}"
    if app_id is not None:
        ecu.connection.application = IsoTpAddress(app_id, app_id + 8)
        ecu.connection.bootloader = IsoTpAddress(app_id + 1, app_id + 9)
        ecu.connection.bootloader_entry = None
    ecu.connection.bootloader_entry_delay_ms = 80
    ecu.uds.p2_timeout_ms = 300
    ecu.uds.tester_present_period_ms = 1000
    ecu.uds.timing.reset_time_ms = 40
    return ecu


#: The bench's simulated bootloader: fast erase and boot; ISO-TP BS 0 / STmin 0 like a
#: production CAN bootloader.
SIM_OPTIONS: dict[str, Any] = {
    "erase_ms_per_kib": 0.05,
    "erase_min_ms": 10,
    "boot_time_ms": 20,
    "reset_time_ms": 20,
    "block_size": 0,
    "stmin_ms": 0,
    "strict": True,
}


def sim_options(**kw: Any) -> SimEcuOptions:
    """SIM_OPTIONS with `kw` changed."""
    return SimEcuOptions(**(SIM_OPTIONS | kw))


def paced_bus(channel: str) -> Callable[[], can.BusABC]:
    """A maker of paced bus instances on `channel` (500 kbit/s classic), one per node."""
    return lambda: PacedVirtualBus(channel=channel, bitrate=BITRATE, data_bitrate=None)


def paced(channel: str) -> contextlib.AbstractContextManager[tuple[can.BusABC, can.Notifier]]:
    """One node's paced bus instance + notifier on `channel` (500 kbit/s classic)."""
    return bus_node(paced_bus(channel))


@contextlib.contextmanager
def sim_node(
    make_bus: Callable[[], can.BusABC], ecu: EcuDefinition, options: SimEcuOptions, **kw: Any
) -> Iterator[SimEcu]:
    """A started simulated ECU on its own bus instance (from `make_bus`), its state in a
    temporary folder; `kw`: more SimEcu arguments (e.g. `initial_image`)."""
    with tempfile.TemporaryDirectory() as d, bus_node(make_bus) as (bus, notifier):
        sim = SimEcu(ecu, bus, notifier, machine="bench", state_dir=Path(d), options=options, **kw)
        sim.start()
        try:
            yield sim
        finally:
            sim.close()


def simulated(
    ecu: EcuDefinition, channel: str, **opts: Any
) -> contextlib.AbstractContextManager[SimEcu]:
    """A started simulated ECU on its own paced bus instance."""
    return sim_node(paced_bus(channel), ecu, sim_options(**opts))


def flash_once(
    ecu: EcuDefinition, channel: str, image: Image, stall: tuple[int, float] | None = None
) -> tuple[float, FlashResult]:
    """(seconds, result) of one flash from a fresh tester bus on `channel`; `stall` (frames,
    seconds): after that many frames the tester's frames are lost for that long (a cable
    pulled for a moment)."""
    with paced(channel) as (bus, notifier):
        wrapper = None
        if stall:
            frames, seconds = stall
            wrapper = AdapterFaultBus(bus, mode="stall", after_frames=frames, stall_s=seconds)
        session = FlashSession(
            ecu=ecu, bus=wrapper or bus, notifier=notifier, expected_version=None, boot_wait_s=2
        )
        t0 = time.perf_counter()
        result = flash_ecu(session, image)
        took = time.perf_counter() - t0
        if wrapper is not None:
            wrapper.shutdown()  # the wrapper only; the paced bus closes with `paced`
        return took, result


def _need(result: FlashResult, what: str) -> None:
    if not result.ok:
        raise SystemExit(f"{what} failed: {result.error}")


def run_compression_case(out: dict[str, Any]) -> None:
    """`compressed_speedup` (module doc)."""
    size = 192 * 1024
    image = Image("2.0.0", size)
    plain = bench_ecu()
    packed = bench_ecu()
    packed.uds.compression = CompressionSettings(method_id=1, codec="zlib")
    times = {}
    wire = {}
    for label, ecu in (("plain", plain), ("zlib", packed)):
        ch = f"cmp-{uuid.uuid4().hex[:6]}"
        with simulated(ecu, ch):
            took, result = flash_once(ecu, ch, image)
        _need(result, f"{label} flash")
        times[label] = took
        wire[label] = result.record.bytes_on_wire
    speedup = times["plain"] / times["zlib"]
    print(
        f"compression paced 500k, {size} bytes of libpython: plain {times['plain']:.2f} s "
        f"({wire['plain']} B on the wire), zlib {times['zlib']:.2f} s ({wire['zlib']} B) -> "
        f"{speedup:.2f}x"
    )
    out["compressed_speedup"] = round(speedup, 3)


def _fraction(part_s: float, full_s: float, what: str) -> float:
    """part ÷ full to 3 decimals, after printing `what` with it."""
    frac = part_s / full_s
    print(f"{what} -> {frac:.3f}")
    return round(frac, 3)


def _delta_ecu() -> EcuDefinition:
    ecu = bench_ecu()
    ecu.uds.sector_checksum = SectorChecksum(routine_id=0xFF02, sector_bytes=SECTOR)
    return ecu


def run_delta_case(out: dict[str, Any]) -> None:
    """`delta_time_fraction` (module doc)."""
    size = 64 * SECTOR
    ecu = _delta_ecu()
    old = Image("3.0.0", size)
    new = Image("3.0.0", size, patch_sectors=(11, 30, 47))  # 3 of 64 sectors (≈ 5 %)
    ch = f"dlt-{uuid.uuid4().hex[:6]}"
    with simulated(ecu, ch) as sim:
        full_s, full = flash_once(ecu, ch, old)
        _need(full, "full flash")
        delta_s, delta = flash_once(ecu, ch, new)
        _need(delta, "delta re-flash")
        same = all(sim.memory.read(s.address, len(s.data)) == s.data for s in new.segments)
    if not same:
        raise SystemExit("delta re-flash: the simulated memory differs from the new image")
    out["delta_time_fraction"] = _fraction(
        delta_s,
        full_s,
        f"delta paced 500k, {size} bytes, 3/64 sectors changed: full {full_s:.2f} s, re-flash "
        f"{delta_s:.2f} s ({delta.record.bytes_on_wire} B written, "
        f"{delta.record.sectors_skipped} sectors skipped)",
    )


def run_resume_case(out: dict[str, Any]) -> None:
    """`resume_time_fraction`, `inrun_resume_ok` (module doc)."""
    size = 64 * SECTOR
    ecu = _delta_ecu()
    image = Image("4.0.0", size)
    ch = f"res-{uuid.uuid4().hex[:6]}"
    with simulated(ecu, ch) as sim:
        full_s, full = flash_once(ecu, ch, image)
        _need(full, "full flash")
    ch = f"res-{uuid.uuid4().hex[:6]}"
    with simulated(ecu, ch) as sim:
        sim.inject(Fault(step="transfer_data", kind="power_loss", arg=size * 7 // 10))
        cut_s, cut = flash_once(ecu, ch, image)
        if cut.ok:
            raise SystemExit("the power loss at 70 % did not interrupt the flash")
        rerun_s, rerun = flash_once(ecu, ch, image)
        _need(rerun, "re-run after the power loss")
    out["resume_time_fraction"] = _fraction(
        rerun_s,
        full_s,
        f"resume paced 500k, {size} bytes: full {full_s:.2f} s; power loss at 70 % after "
        f"{cut_s:.2f} s; re-run {rerun_s:.2f} s ({rerun.record.bytes_skipped} B resumed)",
    )
    plain = bench_ecu()
    ch = f"out-{uuid.uuid4().hex[:6]}"
    with simulated(plain, ch):
        took, res = flash_once(plain, ch, Image("4.1.0", 32 * SECTOR), stall=(899, 2.0))
    downloads = sum(1 for s in res.record.steps if s.step == "request_download")
    ok = res.ok and res.record.link_outages >= 1 and downloads == 1
    print(
        f"in-session resume: 2 s outage mid-transfer -> ok={res.ok}, link outages "
        f"{res.record.link_outages}, re-sent blocks {res.record.block_retries}, "
        f"{took:.2f} s{'' if res.ok else f' ({res.error})'}"
    )
    out["inrun_resume_ok"] = bool(ok)


class _WireMeter(can.Listener):
    """Sums the wire time of every frame seen on the bus (worst-case stuffing)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.frames = 0

    def on_message_received(self, msg: can.Message) -> None:
        self.seconds += wire_time_s(msg, BITRATE)
        self.frames += 1


def run_parallel_case(out: dict[str, Any]) -> None:
    """`parallel_vs_longest`, `same_bus_vs_wire` (module doc)."""
    sizes = (96 * 1024, 128 * 1024, 160 * 1024)
    ecus = [bench_ecu("VCU", 0x7E0 + 2 * i) for i in range(3)]
    images = [Image(f"5.0.{i}", n) for i, n in enumerate(sizes)]
    alone = []
    for ecu, image in zip(ecus, images, strict=True):
        ch = f"par-{uuid.uuid4().hex[:6]}"
        with simulated(ecu, ch):
            took, res = flash_once(ecu, ch, image)
        _need(res, f"{ecu.name} alone")
        alone.append(took)
    channels = [f"par-{uuid.uuid4().hex[:6]}" for _ in ecus]
    took = _plan(ecus, images, channels)
    ratio = took / max(alone)
    print(
        f"parallel: 3 ECUs on 3 channels {took:.2f} s; alone "
        f"{', '.join(f'{a:.2f}' for a in alone)} s -> {ratio:.3f} of the longest"
    )
    out["parallel_vs_longest"] = round(ratio, 3)
    ch = f"one-{uuid.uuid4().hex[:6]}"
    meter = _WireMeter()
    took = _plan(ecus, images, [ch] * 3, meter)
    ratio = took / meter.seconds
    print(
        f"same bus: 3 ECUs interleaved {took:.2f} s; wire time of their {meter.frames} frames "
        f"{meter.seconds:.2f} s -> {ratio:.3f}"
    )
    out["same_bus_vs_wire"] = round(ratio, 3)


def _plan(
    ecus: list[EcuDefinition],
    images: list[Image],
    channels: list[str],
    meter: _WireMeter | None = None,
) -> float:
    with contextlib.ExitStack() as stack:
        for ecu, ch in zip(ecus, channels, strict=True):
            stack.enter_context(simulated(ecu, ch))
        buses: dict[str, tuple[can.BusABC, can.Notifier]] = {}
        for ch in channels:
            if ch not in buses:
                buses[ch] = stack.enter_context(paced(ch))
        if meter is not None:
            # A listening node of its own: it sees every frame of the others once.
            _, listen = stack.enter_context(paced(channels[0]))
            listen.add_listener(meter)
        targets = [
            PlanTarget(
                FlashSession(
                    ecu=ecu,
                    bus=buses[ch][0],
                    notifier=buses[ch][1],
                    job_id=i + 1,
                    channel=ch,
                    boot_wait_s=2,
                ),
                image,
            )
            for i, (ecu, image, ch) in enumerate(zip(ecus, images, channels, strict=True))
        ]
        t0 = time.perf_counter()
        result = flash_machine(targets)
        took = time.perf_counter() - t0
        if not result.ok:
            errors = {n: str(r.error) for n, r in result.results.items() if not r.ok}
            raise SystemExit(f"machine flash failed: {errors} {result.record.skipped}")
        return took
