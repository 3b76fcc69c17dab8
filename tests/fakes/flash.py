"""Shared helpers for the flash engine tests: a test image, a simulated ECU on a virtual bus."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import can

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.firmware import FirmwareImage
from fota_studio.demo import catalog as demo_catalog
from fota_studio.sim.uds_ecu import SimEcu, SimEcuOptions
from reliability import harness


def make_image(
    version: str, sizes: tuple[int, ...] = (0x3000, 0x1800), gap: int = 0x2000
) -> FirmwareImage:
    """Segments from APP_REGION_START with gaps (the reliability harness's image, with sizes
    that make a few blocks per segment)."""
    return harness.make_image(version, sizes, gap)


def demo_ecu(name: str) -> EcuDefinition:
    """The demo ECU `name` as the catalog defines it (its documented timings)."""
    ecu = next(e for e in demo_catalog.demo_ecus() if e.name == name)
    return ecu


def fast_options(**kw: object) -> SimEcuOptions:
    """Simulator options with short erase/boot times."""
    opts = SimEcuOptions(erase_ms_per_kib=0.5, erase_min_ms=20, pending_interval_ms=50)
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


@contextlib.contextmanager
def sim_ecu(
    ecu: EcuDefinition,
    channel: str,
    state_dir: Path,
    *,
    fd: bool = False,
    options: SimEcuOptions | None = None,
    initial_version: str | None = "0.9.0",
) -> Iterator[SimEcu]:
    """A started SimEcu on its own virtual bus instance + notifier (stopped on exit)."""
    bus = can.Bus(interface="virtual", channel=channel, fd=fd, ignore_config=True)
    notifier = can.Notifier(bus, [], timeout=0.05)
    initial = None
    if initial_version is not None:
        initial = [(s.address, s.data) for s in make_image(initial_version, (0x800,)).segments]
    sim = SimEcu(
        ecu,
        bus,
        notifier,
        machine="t",
        state_dir=state_dir,
        options=options or fast_options(),
        initial_image=initial,
    )
    sim.start()
    try:
        yield sim
    finally:
        sim.close()
        notifier.stop(timeout=0.1)
        bus.shutdown()


@contextlib.contextmanager
def open_tester_bus(channel: str, fd: bool = False) -> Iterator[tuple[can.BusABC, can.Notifier]]:
    """The tester's own virtual bus instance and notifier."""
    bus = can.Bus(interface="virtual", channel=channel, fd=fd, ignore_config=True)
    notifier = can.Notifier(bus, [], timeout=0.05)
    try:
        yield bus, notifier
    finally:
        notifier.stop(timeout=0.1)
        bus.shutdown()


def memory_matches(sim: SimEcu, image: FirmwareImage) -> bool:
    """True when the simulated flash holds exactly the image's segments."""
    return all(sim.memory.read(s.address, len(s.data)) == s.data for s in image.segments)


#: A demo ECU with short P2 / entry delay / TesterPresent period, and the simulator options
#: matching it (boot faster than the entry delay): the reliability harness's, shared.
fast_ecu = harness.fast_ecu
fast_sim_options = harness.fast_options


def transfer_first_frames(blf: bytes, folder: Path) -> list[bytes]:
    """The TransferData first frames the tester sent, as a session's BLF bus log has them
    (one per block when every Tx frame is logged once)."""
    path = folder / "session-check.blf"
    path.write_bytes(blf)
    with can.BLFReader(str(path)) as reader:
        tx = [bytes(m.data) for m in reader if not m.is_rx]
    path.unlink()
    return [d for d in tx if len(d) > 3 and d[0] >> 4 == 1 and d[2] == 0x36]
