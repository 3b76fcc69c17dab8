"""Flash-engine test pieces on top of the shared rig (`sim_rig`): a test image with a few blocks
per segment, a simulated ECU on a virtual bus, the tester's bus, and the TransferData frames a
bus log holds. Main thread of a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import can

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.firmware import FirmwareImage
from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.flash_job import FlashResult, Report, flash_ecu
from fota_studio.sim.uds_ecu import SimEcu, SimEcuOptions
from tests.fakes import sim_rig

#: The tester's own virtual bus instance and notifier; flash contents equal an image.
open_tester_bus = sim_rig.tester_bus
memory_matches = sim_rig.memory_matches
#: A demo ECU with short P2 / entry delay / TesterPresent period, and the simulator options
#: matching it (boot faster than the entry delay).
fast_ecu = sim_rig.fast_ecu
fast_sim_options = sim_rig.fast_options
#: A FlashSession on the tester's own bus instance (boot wait 1.5 s unless given).
flash_session = sim_rig.flash_session


def make_image(
    version: str, sizes: tuple[int, ...] = (0x3000, 0x1800), gap: int = 0x2000
) -> FirmwareImage:
    """Segments from APP_REGION_START with gaps (the rig's image, with sizes that make a few
    blocks per segment)."""
    return sim_rig.make_image(version, sizes, gap)


def flash_image(
    ecu: EcuDefinition,
    channel: str,
    image: FirmwareImage,
    report: Report | None = None,
    **fields: Any,
) -> FlashResult:
    """One flash of `image` through the engine on a fresh `flash_session` (its keywords)."""
    with flash_session(ecu, channel, **fields) as session:
        return flash_ecu(session, image, report)


def demo_ecu(name: str) -> EcuDefinition:
    """The demo ECU `name` as the catalog defines it (its documented timings)."""
    return next(e for e in demo_catalog.demo_ecus() if e.name == name)


def fast_options(**kw: object) -> SimEcuOptions:
    """Simulator options with short erase times (boot and reset at the simulator's defaults,
    for the demo ECU's documented timings)."""
    return sim_rig.options_with(sim_rig.SHORT_ERASE, **kw)


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
    """A started SimEcu (machine "t") on its own virtual bus instance + notifier (stopped on
    exit); classic CAN unless `fd`."""
    with sim_rig.sim_ecu(
        ecu,
        channel,
        state_dir,
        fd=fd,
        options=options or fast_options(),
        initial_version=initial_version,
        machine="t",
    ) as sim:
        yield sim


def fast_sim(
    ecu: EcuDefinition, channel: str, state_dir: Path, *, fd: bool = False, **options: Any
) -> contextlib.AbstractContextManager[SimEcu]:
    """`sim_ecu` with `fast_sim_options(**options)`, for a `fast_ecu` (boots within its short
    entry delay)."""
    return sim_ecu(ecu, channel, state_dir, fd=fd, options=fast_sim_options(**options))


def transfer_first_frames(blf: bytes, folder: Path) -> list[bytes]:
    """The TransferData first frames the tester sent, as a session's BLF bus log has them
    (one per block when every Tx frame is logged once)."""
    path = folder / "session-check.blf"
    path.write_bytes(blf)
    with can.BLFReader(str(path)) as reader:
        tx = [bytes(m.data) for m in reader if not m.is_rx]
    path.unlink()
    return [d for d in tx if len(d) > 3 and d[0] >> 4 == 1 and d[2] == 0x36]


def assert_no_violations(sim: SimEcu) -> None:
    """The strict simulated bootloader recorded no protocol violation (listed when it did)."""
    assert not sim.violations, "\n".join(str(v) for v in sim.violations)


#: RoutineControl (0x31) start (0x01) of the erase routine 0xFF00, as the record writes it.
ERASE_REQUEST = "3101ff00"


def erase_requests(result: FlashResult) -> list[tuple[int, int]]:
    """(address, length) of every erase request the tester sent (ALFID 0x44 record)."""
    out = []
    for ex in result.record.exchanges:
        if ex.request_hex.startswith(ERASE_REQUEST):
            rec = bytes.fromhex(ex.request_hex[len(ERASE_REQUEST) :])
            assert rec[0] == 0x44
            out.append((int.from_bytes(rec[1:5], "big"), int.from_bytes(rec[5:9], "big")))
    return out
