"""The simulated-ECU rig the tests and the reliability campaign share: test images, a simulated
ECU on a virtual bus, the tester's bus, and a tester-side bus wrapper that fails like a real
adapter (bus-off, adapter error, a stalled tester that lets the ECU's S3 timer expire).

Everything here uses real parts: python-can `virtual` buses, the real `SimEcu` (or `ChaosEcu`)
speaking can-isotp/UDS, the real flash engine. Call from the main thread of a script or test;
`AdapterFaultBus.send` is called from the engine's ISO-TP threads.
"""

from __future__ import annotations

import contextlib
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import can

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.engine import Engine
from fota_studio.engine.flash_job import FlashResult, FlashSession, flash_ecu
from fota_studio.engine.trace_capture import TraceCapture
from fota_studio.sim.faults import SendWrapperBus
from fota_studio.sim.uds_ecu import SimEcu, SimEcuOptions

#: Base version the simulated ECU runs before every flash.
INITIAL_VERSION = "0.9.0"
#: Version the campaign flashes.
TARGET_VERSION = "4.0.0"
#: How long the engine waits for the application after the reset (fast ECU boots in 20 ms).
BOOT_WAIT_S = 1.5


def make_image(
    version: str, sizes: tuple[int, ...] = (0x900, 0x500), gap: int = 0x300
) -> FirmwareImage:
    """Segments from APP_REGION_START with gaps; the first starts with the app header."""
    segs = []
    addr = demo_catalog.APP_REGION_START
    seed = zlib.crc32(version.encode())
    for i, size in enumerate(sizes):
        body = bytes((seed + i * 7 + j * 31) & 0xFF for j in range(size))
        if i == 0:
            body = demo_catalog.app_header(version) + body[demo_catalog.APP_HEADER_SIZE :]
        segs.append(Segment(addr, body))
        addr += size + gap
    return FirmwareImage(tuple(segs))


def fast_ecu(name: str = "VCU") -> EcuDefinition:
    """A demo ECU with short P2 / entry delay / TesterPresent period so fault cells are quick."""
    ecu = next(e for e in demo_catalog.demo_ecus() if e.name == name)
    ecu.uds.p2_timeout_ms = 300
    ecu.uds.p2_star_timeout_ms = 1000
    ecu.uds.tester_present_period_ms = 200
    ecu.connection.bootloader_entry_delay_ms = 80
    # The simulated ECU reboots in 20 ms (fast_options); the tester stays silent a bit longer.
    ecu.uds.timing.reset_time_ms = 40
    ecu.uds.timing.bootloader_ready_timeout_ms = 1000
    return ecu


#: Simulator timings that keep a test short: erase, responsePending interval, boot, reset.
SHORT_ERASE = {"erase_ms_per_kib": 0.5, "erase_min_ms": 20, "pending_interval_ms": 50}
FAST_BOOT = {"boot_time_ms": 20, "reset_time_ms": 20}


def options_with(base: dict[str, Any], **kw: Any) -> SimEcuOptions:
    """Simulator options from the `base` timings, then `kw` set on them."""
    opts = SimEcuOptions(**base)
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


def fast_options(**kw: Any) -> SimEcuOptions:
    """Simulator options matching `fast_ecu` (boot faster than the entry delay)."""
    return options_with(SHORT_ERASE | FAST_BOOT, **kw)


def new_channel() -> str:
    """A unique python-can `virtual` channel name."""
    return f"rel-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def sim_ecu(
    ecu: EcuDefinition,
    channel: str,
    state_dir: Path,
    *,
    options: SimEcuOptions | None = None,
    cls: type[SimEcu] = SimEcu,
    fd: bool | None = None,
    initial_version: str | None = INITIAL_VERSION,
    **extra: Any,
) -> Iterator[SimEcu]:
    """A started simulated ECU (class `cls`) on its own virtual bus + notifier, running
    `initial_version` (None: blank flash); `fd` defaults to the ECU's connection."""
    initial = None
    if initial_version is not None:
        initial = [(s.address, s.data) for s in make_image(initial_version, (0x800,)).segments]
    with tester_bus(channel, ecu.connection.fd if fd is None else fd) as (bus, notifier):
        sim = cls(
            ecu,
            bus,
            notifier,
            state_dir=state_dir,
            options=options or fast_options(),
            initial_image=initial,
            **extra,
        )
        sim.start()
        try:
            yield sim
        finally:
            sim.close()


def tester_bus(
    channel: str, fd: bool = False
) -> contextlib.AbstractContextManager[tuple[can.BusABC, can.Notifier]]:
    """A virtual bus instance of its own and its notifier: the tester's (or a simulated ECU's)."""
    return bus_node(
        lambda: can.Bus(interface="virtual", channel=channel, fd=fd, ignore_config=True)
    )


@contextlib.contextmanager
def bus_node(make_bus: Callable[[], can.BusABC]) -> Iterator[tuple[can.BusABC, can.Notifier]]:
    """One node's bus instance (from `make_bus`) and its notifier; both closed on exit."""
    bus = make_bus()
    notifier = can.Notifier(bus, [], timeout=0.05)
    try:
        yield bus, notifier
    finally:
        notifier.stop(timeout=0.1)
        bus.shutdown()


class AdapterFaultBus(SendWrapperBus):
    """Tester-side send wrapper failing like an adapter after `after_frames` frames.

    mode "bus_off": every later send raises `can.CanOperationError` (the controller went
    bus-off and stays there); "glitch": exactly one send raises (a transient adapter error);
    "stall": later sends are silently lost for `stall_s` seconds (the tester hangs, so the ECU's
    S3 timer expires). Receiving stays on the inner bus's notifier.
    """

    def __init__(
        self, inner: can.BusABC, *, mode: str, after_frames: int, stall_s: float = 0.0
    ) -> None:
        """Wrap `inner` (not owned)."""
        if mode not in ("bus_off", "glitch", "stall"):
            raise ValueError(f"unknown adapter fault mode {mode!r}")
        self.mode = mode
        self.after_frames = after_frames
        self.stall_s = stall_s
        self.sent = 0
        self.fired = False
        self._stall_until = 0.0
        super().__init__(inner, label="adapter fault wrapper")

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Send through the inner bus unless the fault is active."""
        with self._lock:
            self.sent += 1
            active = self.sent > self.after_frames
            if active and self.mode == "bus_off":
                self.fired = True
                raise can.CanOperationError("bus-off (injected adapter fault)")
            if active and self.mode == "glitch" and not self.fired:
                self.fired = True
                raise can.CanOperationError("adapter error (injected, transient)")
            if active and self.mode == "stall":
                now = time.monotonic()
                if not self.fired:
                    self.fired = True
                    self._stall_until = now + self.stall_s
                if now < self._stall_until:
                    return
        self._inner.send(msg, timeout)


@contextlib.contextmanager
def flash_session(
    ecu: EcuDefinition,
    channel: str,
    *,
    fd: bool | None = None,
    adapter_fault: dict[str, Any] | None = None,
    **fields: Any,
) -> Iterator[FlashSession]:
    """A `FlashSession` for `ecu` on the tester's own bus instance (closed on exit), optionally
    behind an `AdapterFaultBus`; `fd` defaults to the ECU's connection, `boot_wait_s` to
    BOOT_WAIT_S; other `FlashSession` fields by keyword."""
    fields.setdefault("boot_wait_s", BOOT_WAIT_S)
    with tester_bus(channel, ecu.connection.fd if fd is None else fd) as (bus, notifier):
        wrapper = AdapterFaultBus(bus, **adapter_fault) if adapter_fault else None
        try:
            yield FlashSession(ecu=ecu, bus=wrapper or bus, notifier=notifier, **fields)
        finally:
            if wrapper is not None:
                wrapper.shutdown()


def flash(
    ecu: EcuDefinition,
    channel: str,
    image: FirmwareImage,
    *,
    expected_version: str = TARGET_VERSION,
    adapter_fault: dict[str, Any] | None = None,
    buslog_path: Path | None = None,
) -> tuple[FlashResult, AdapterFaultBus | None]:
    """One flash from a fresh tester bus (optionally behind an `AdapterFaultBus`)."""
    with flash_session(
        ecu,
        channel,
        adapter_fault=adapter_fault,
        expected_version=expected_version,
        buslog_path=buslog_path,
    ) as session:
        wrapper = session.bus if isinstance(session.bus, AdapterFaultBus) else None
        return flash_ecu(session, image), wrapper


def traced_flash(
    engine: Engine,
    capture: TraceCapture,
    bus: tuple[can.BusABC, can.Notifier],
    ecu: EcuDefinition,
    image: FirmwareImage,
    **submit: Any,
) -> FlashResult:
    """Flash `image` (to TARGET_VERSION) through `engine`'s channel "CAN1" on `bus` (bus and
    notifier) with `capture` attached to it; it must succeed. The capture is drained into its
    store and detached after; `submit`: more `Engine.submit_flash` keywords."""
    capture.attach("CAN1", *bus)
    result = engine.submit_flash(
        "CAN1", ecu, image, expected_version=TARGET_VERSION, boot_wait_s=BOOT_WAIT_S, **submit
    ).result(60)
    assert isinstance(result, FlashResult) and result.ok, result.error
    capture.drain_into_store()
    capture.detach("CAN1")
    return result


def memory_matches(sim: SimEcu, image: FirmwareImage) -> bool:
    """True when the simulated flash holds exactly the image's segments."""
    return all(sim.memory.read(s.address, len(s.data)) == s.data for s in image.segments)


def protected_bytes(sim: SimEcu) -> bytes:
    """The bytes of every protected (bootloader) region of the simulated ECU."""
    return b"".join(sim.memory.read(start, length) for start, length in sim.options.protected)


def wait_until_settled(sim: SimEcu, timeout_s: float = 2.0) -> None:
    """Wait until the ECU has finished booting / erasing (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = sim.state()
        if st.mode != "booting" and not st.erase_in_progress:
            return
        time.sleep(0.01)
