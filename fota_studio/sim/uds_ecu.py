"""A simulated ECU: application + strict UDS bootloader, speaking real ISO-TP on a python-can bus.

`SimEcu` is built from an EA `EcuDefinition` plus `SimEcuOptions`. In application mode it answers
on the application IDs (sessions, ReadDataByIdentifier, ReadDTCInformation, TesterPresent,
ControlDTCSetting, CommunicationControl, SecurityAccess level 1, ECUReset), sends a periodic
heartbeat and jumps to its bootloader on the bootloader entry frame (or on 10 02). In bootloader
mode it answers on the bootloader IDs and enforces the reprogramming rules of a strict production
bootloader (session order, security with attempt counter and lockout, erase with 0x78 pending
responses and TesterPresent accepted meanwhile, RequestDownload/TransferData/RequestTransferExit
sequence and counters, programming only erased memory, checksum routine, S3 fallback). Its flash
is a `FlashMemory` file, so state survives restarts and "power loss". Faults (`faults.Fault`) can
be injected per step.

Threads: one worker thread `fota-sim-<machine>-<ecu>` owns all ECU state and serves every request;
the can-isotp stacks run their own two threads each (renamed `fota-sim-<machine>-<ecu>-isotp-…`)
and read through the SHARED notifier given to the constructor; the notifier thread hands each
stack only the frames addressed to it (`DirectNotifierStack`). `start`/`stop`/`inject`/
`clear_faults`/`state` may be called from any thread.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import logging
import os
import queue
import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can
import isotp

from fota_studio.core import reference_ecu
from fota_studio.core.ea import (
    DEFAULT_STEP_PARAMS,
    AddressingMode,
    EcuDefinition,
    IsoTpAddress,
    StepKind,
)
from fota_studio.core.errors import ConfigurationError, SecurityAccessError
from fota_studio.core.nrc import nrc_name, service_name
from fota_studio.core.seedkey import compute_key
from fota_studio.protocols.isotp_link import DirectNotifierStack
from fota_studio.sim.faults import BOOTLOADER_ENTRY, Fault, FaultSet, FaultyBus
from fota_studio.sim.flash_memory import EcuState, FlashAccessError, FlashMemory

log = logging.getLogger(__name__)

APPLICATION = "application"
BOOTLOADER = "bootloader"
BOOTING = "booting"

SESSION_DEFAULT = 0x01
SESSION_PROGRAMMING = 0x02
SESSION_EXTENDED = 0x03

DID_VIN = 0xF190
DID_SW_VERSION = 0xF195
DID_SERIAL = 0xF18C
DID_FINGERPRINT = 0xF15A

#: Worker loop wait per iteration: bounds the latency of timers (S3, heartbeat, erase progress).
LOOP_WAIT_S = 0.005
#: Services whose first byte after the SID is a sub-function with the suppress bit (0x80).
_SPR_SERVICES = {0x10, 0x11, 0x28, 0x31, 0x3E, 0x85}
#: NRCs a server does not send to a functional request (ISO 14229-1 §7.5).
_FUNCTIONAL_SUPPRESSED_NRCS = {0x11, 0x12, 0x31, 0x7E, 0x7F}


@dataclass
class SimEcuOptions:
    """Simulator knobs that are not part of the EA (timings, identities, values, limits)."""

    boot_time_ms: int = 100  # entry frame -> bootloader; must stay < bootloader_entry_delay_ms
    reset_time_ms: int = 100  # ECUReset -> running again
    seed_length: int = 4  # 2 or 4
    max_key_attempts: int = 3  # the Nth wrong key answers 0x36 and starts the lockout
    lockout_s: float = 10.0  # requiredTimeDelay after too many wrong keys
    erase_ms_per_kib: float = 2.0
    erase_min_ms: int = 50
    pending_interval_ms: int = 1000  # 0x78 period, below P2* (5000 ms)
    max_block_length: int | None = None  # None: 0x402 classic CAN, 0xFFF CAN FD
    block_size: int | None = None  # ISO-TP BS the ECU offers; None: the EA's
    stmin_ms: int | None = None  # ISO-TP STmin the ECU offers; None: the EA's
    s3_ms: int | None = None  # None: the EA profile's S3
    p2_server_ms: int = 50
    p2_star_server_ms: int = 5000
    heartbeat_period_ms: int = 100
    vin: str = "WFSX200DEMO000001"  # 17 characters (ISO 3779)
    serial: str = "SN-000001"
    software_version: str | None = None  # overrides the version read from the app header
    vehicle_speed_kmh: int = 0
    supply_voltage_mv: int = 13_200
    did_values: dict[int, bytes] = field(default_factory=dict)  # any other DID
    dtcs: list[tuple[int, int]] = field(default_factory=list)  # initial (DTC, status)
    protected: list[tuple[int, int]] = field(
        default_factory=lambda: [(reference_ecu.BOOTLOADER_START, reference_ecu.BOOTLOADER_LENGTH)]
    )


@dataclass(frozen=True)
class SimEcuSnapshot:
    """A point-in-time view of a simulated ECU for tests, the CLI and the engineering panel."""

    name: str
    mode: str
    session: int
    security_level: int  # unlocked requestSeed sub-function, 0 = locked
    app_valid: bool
    software_version: str
    bytes_written: int  # TransferData bytes programmed since the last programming session
    last_nrc: int | None
    erase_in_progress: bool
    download_active: bool
    comm_disabled: bool
    fingerprint_hex: str
    requests: int  # requests served since the simulator started
    boots: int  # completed (re)boots since the simulator started
    armed_faults: tuple[str, ...]


class _Nrc(Exception):
    """Raised by a service handler to answer with a negative response."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"NRC 0x{code:02X}")


@dataclass
class _Download:
    address: int
    size: int
    written: int = 0
    counter: int = 0  # last accepted block sequence counter (0 = none yet, first must be 1)
    blocks: int = 0


@dataclass
class _Erase:
    """An erase running in the background of the worker loop, answered when done."""

    stack: isotp.TransportLayer
    sectors: list[tuple[int, int]]
    done_at: float
    started_at: float
    next_pending_at: float
    erased: int = 0
    fail: bool = False


@dataclass
class _Stack:
    stack: DirectNotifierStack
    mode: str
    functional: bool


def _step_param(ecu: EcuDefinition, kind: StepKind, key: str) -> Any:
    step = ecu.uds.step(kind)
    if step is not None:
        return step.param(key)
    return DEFAULT_STEP_PARAMS[kind][key]


def isotp_address(
    ecu: EcuDefinition, addr: IsoTpAddress, *, functional_id: int | None = None
) -> isotp.Address:
    """The ECU-side can-isotp Address (rx = requests, tx = responses) for an EA address pair."""
    conn = ecu.connection
    bits29 = conn.id_bits == 29
    rxid = functional_id if functional_id is not None else addr.request_id
    mode = conn.addressing
    if mode == AddressingMode.NORMAL_FIXED and functional_id is None:
        if addr.target_address is None or addr.source_address is None:
            raise ValueError(f"{ecu.name}: normal-fixed addressing needs target/source address")
        return isotp.Address(
            isotp.AddressingMode.NormalFixed_29bits,
            target_address=addr.source_address,
            source_address=addr.target_address,
        )
    if mode in (AddressingMode.NORMAL, AddressingMode.NORMAL_FIXED):
        am = isotp.AddressingMode.Normal_29bits if bits29 else isotp.AddressingMode.Normal_11bits
        return isotp.Address(am, txid=addr.response_id, rxid=rxid)
    if mode == AddressingMode.EXTENDED:
        am = (
            isotp.AddressingMode.Extended_29bits if bits29 else isotp.AddressingMode.Extended_11bits
        )
        return isotp.Address(
            am,
            txid=addr.response_id,
            rxid=rxid,
            target_address=addr.source_address or 0,
            source_address=addr.target_address or 0,
        )
    if bits29:
        return isotp.Address(
            isotp.AddressingMode.Mixed_29bits,
            target_address=addr.source_address or 0,
            source_address=addr.target_address or 0,
            address_extension=addr.address_extension or 0,
        )
    return isotp.Address(
        isotp.AddressingMode.Mixed_11bits,
        txid=addr.response_id,
        rxid=rxid,
        address_extension=addr.address_extension or 0,
    )


def checksum(kind: str, data: bytes) -> bytes:
    """The check routine's checksum of `data` for an EA checksum kind (`ea.CHECKSUM_KINDS`)."""
    if kind == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if kind == "crc16_ccitt":
        return binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")  # CRC-16/CCITT-FALSE
    if kind == "sha256":
        return hashlib.sha256(data).digest()
    if kind == "none":
        return b""
    raise ValueError(f'unknown checksum kind "{kind}"')


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "machine"


class SimEcu:
    """One simulated ECU (application + strict UDS bootloader) on a shared bus and notifier."""

    def __init__(
        self,
        ecu: EcuDefinition,
        bus: can.BusABC,
        notifier: can.Notifier,
        *,
        machine: str = "sim",
        state_dir: Path,
        options: SimEcuOptions | None = None,
        initial_image: Sequence[tuple[int, bytes]] | None = None,
    ) -> None:
        """Open (or create) the ECU's flash/state files under `state_dir`; nothing runs yet."""
        self.ecu = ecu
        self.name = ecu.name
        self.machine = machine
        self.options = options or SimEcuOptions()
        conn = ecu.connection
        if (
            conn.bootloader_entry is not None
            and self.options.boot_time_ms >= conn.bootloader_entry_delay_ms
        ):
            raise ConfigurationError(
                f"{ecu.name}: simulated boot time {self.options.boot_time_ms} ms must be shorter "
                f"than the EA's bootloader entry delay {conn.bootloader_entry_delay_ms} ms",
                hint="lower SimEcuOptions.boot_time_ms",
            )
        self._bus = bus
        self._notifier = notifier
        self._tx_bus = FaultyBus(bus)
        self._faults = FaultSet()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stacks: list[_Stack] = []
        self._frames: queue.SimpleQueue[can.Message] = queue.SimpleQueue()
        self._thread_prefix = f"fota-sim-{_slug(machine)}-{_slug(ecu.name)}"

        self.state_dir = Path(state_dir)
        self._state_path = self.state_dir / f"{_slug(ecu.name)}.json"
        self.memory = FlashMemory(
            self.state_dir / f"{_slug(ecu.name)}.flash",
            ecu.uds.memory_regions,
            self.options.protected,
        )
        saved = None if self.memory.fresh else EcuState.load(self._state_path)
        if saved is None:
            saved = EcuState(dtcs=list(self.options.dtcs))
            if initial_image:
                self.memory.load_image(initial_image)
                saved.app_valid = True
            saved.mode = APPLICATION if saved.app_valid else BOOTLOADER
            saved.save(self._state_path)
        self._persist = saved

        prof = ecu.uds
        self._s3_s = (self.options.s3_ms or prof.s3_ms) / 1000.0
        self._level1 = int(_step_param(ecu, StepKind.SECURITY_LEVEL_1, "level"))
        self._prog_level = int(_step_param(ecu, StepKind.SECURITY_LEVEL_2, "level"))
        self._erase_routine = int(_step_param(ecu, StepKind.ERASE, "routine_id"))
        self._erase_record = str(_step_param(ecu, StepKind.ERASE, "record"))
        self._check_routine = int(_step_param(ecu, StepKind.CHECK, "routine_id"))
        self._checksum_kind = str(_step_param(ecu, StepKind.CHECK, "checksum"))
        self._fingerprint_did = int(_step_param(ecu, StepKind.FINGERPRINT, "did"))
        self._prog_needs_level1 = self._level1_before_programming()
        if self.options.max_block_length is not None:
            self._max_block = self.options.max_block_length
        else:
            self._max_block = 0xFFF if conn.fd else 0x402

        # Volatile state (reset on every boot).
        self._mode = self._persist.mode
        self._boot_target: tuple[str, int] | None = None
        self._boot_at = 0.0
        self._reset_volatile(SESSION_DEFAULT)
        self._failed_attempts = 0
        self._lockout_until = 0.0
        self._last_nrc: int | None = None
        self._requests = 0
        self._boots = 0
        self._bytes_written = 0
        self._downloaded: list[tuple[int, int]] = []
        self._heartbeat_counter = 0
        self._next_heartbeat = 0.0
        self._delayed: list[tuple[float, _Stack, bytes, bytes]] = []

    # -- public API ----------------------------------------------------------------------
    def start(self) -> None:
        """Create the ISO-TP stacks on the shared notifier and start the worker thread."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._build_stacks()
            self._notifier.add_listener(self._on_frame)
            self._thread = threading.Thread(target=self._run, name=self._thread_prefix, daemon=True)
            self._thread.start()
            log.info("%s: started in %s mode", self.name, self._mode)

    def stop(self) -> None:
        """Stop the worker and the ISO-TP stacks, persist the state (idempotent)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(5.0)
        with contextlib.suppress(ValueError):
            self._notifier.remove_listener(self._on_frame)
        for entry in self._stacks:
            entry.stack.stop()
        self._stacks.clear()
        with self._lock:
            self._save_state()
        log.info("%s: stopped", self.name)

    def close(self) -> None:
        """Stop and release the flash file and the fault wrapper."""
        self.stop()
        self.memory.close()
        self._tx_bus.shutdown()

    def inject(self, fault: Fault) -> None:
        """Arm a fault (fires `fault.count` times at its step)."""
        self._faults.add(fault)
        log.info("%s: fault armed: %s", self.name, fault)

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    @property
    def faults_fired(self) -> list[Fault]:
        """Faults that have fired so far (in order)."""
        return list(self._faults.fired)

    def state(self) -> SimEcuSnapshot:
        """A snapshot of mode, session, security, app validity, counters and armed faults."""
        with self._lock:
            return SimEcuSnapshot(
                name=self.name,
                mode=self._mode,
                session=self._session,
                security_level=self._unlocked,
                app_valid=self._persist.app_valid,
                software_version=self._software_version(),
                bytes_written=self._bytes_written,
                last_nrc=self._last_nrc,
                erase_in_progress=self._erase is not None,
                download_active=self._download is not None,
                comm_disabled=self._comm_disabled,
                fingerprint_hex=self._persist.fingerprint_hex,
                requests=self._requests,
                boots=self._boots,
                armed_faults=tuple(str(f) for f in self._faults.armed()),
            )

    def set_dtcs(self, dtcs: Sequence[tuple[int, int]]) -> None:
        """Replace the stored DTCs (3-byte DTC, status byte)."""
        with self._lock:
            self._persist.dtcs = [(int(d), int(s)) for d, s in dtcs]
            self._save_state()

    # -- setup ---------------------------------------------------------------------------
    def _level1_before_programming(self) -> bool:
        kinds = [s.kind for s in self.ecu.uds.sequence if s.enabled]
        if StepKind.SECURITY_LEVEL_1 not in kinds:
            return False
        if StepKind.PROGRAMMING_SESSION not in kinds:
            return True
        return kinds.index(StepKind.SECURITY_LEVEL_1) < kinds.index(StepKind.PROGRAMMING_SESSION)

    def _isotp_params(self) -> dict[str, Any]:
        conn = self.ecu.connection
        block_size = self.options.block_size
        stmin = self.options.stmin_ms
        return {
            "blocksize": conn.block_size if block_size is None else block_size,
            "stmin": conn.stmin_ms if stmin is None else stmin,
            "tx_padding": conn.padding_byte,
            "tx_data_length": conn.fd_frame_length if conn.fd else 8,
            "can_fd": conn.fd,
            "bitrate_switch": conn.fd,
            "max_frame_size": max(0x10000, self._max_block + 16),
            "rx_flowcontrol_timeout": 1000,
            "rx_consecutive_frame_timeout": 1000,
        }

    def _build_stacks(self) -> None:
        conn = self.ecu.connection
        params = self._isotp_params()
        seen: dict[tuple[Any, ...], _Stack] = {}
        wanted = [
            (APPLICATION, False, conn.application),
            (APPLICATION, True, conn.application),
            (BOOTLOADER, False, conn.bootloader),
            (BOOTLOADER, True, conn.bootloader),
        ]
        for mode, functional, addr in wanted:
            address = isotp_address(
                self.ecu, addr, functional_id=conn.functional_id if functional else None
            )
            key = (functional, addr.request_id, addr.response_id, mode if functional else "")
            if key in seen:
                continue
            # Direct hand-over: each stack wakes only for frames addressed to it, not for every
            # frame of the bus (4 stacks x 2 threads competing for the GIL per frame).
            stack = DirectNotifierStack(
                self._tx_bus,
                self._notifier,
                address=address,
                params=dict(params),
                error_handler=self._on_isotp_error,
            )
            stack.start()
            for attr, suffix in (("main_thread", "isotp"), ("relay_thread", "isotp-rx")):
                thread = getattr(stack, attr, None)
                if thread is not None:
                    thread.name = f"{self._thread_prefix}-{suffix}"
            entry = _Stack(stack=stack, mode=mode, functional=functional)
            seen[key] = entry
            self._stacks.append(entry)

    def _on_isotp_error(self, error: Exception) -> None:
        log.debug("%s: ISO-TP: %s", self.name, error)

    def _on_frame(self, msg: can.Message) -> None:
        """Notifier thread: queue a frame that may be the bootloader entry frame."""
        entry = self.ecu.connection.bootloader_entry
        if (
            entry is not None
            and msg.arbitration_id == entry.can_id
            and bool(msg.is_extended_id) == bool(entry.extended_id or entry.can_id > 0x7FF)
            and bytes(msg.data) == bytes(entry.data)
        ):
            self._frames.put(msg)

    # -- state helpers -------------------------------------------------------------------
    def _reset_volatile(self, session: int) -> None:
        self._session = session
        self._unlocked = 0
        self._pending_seed: tuple[int, bytes] | None = None
        self._download: _Download | None = None
        self._erase: _Erase | None = None
        self._comm_disabled = False
        self._dtc_setting_off = False
        self._last_request_at = time.monotonic()

    def _save_state(self) -> None:
        mode = self._mode if self._mode != BOOTING else (self._boot_target or (BOOTLOADER,))[0]
        self._persist.mode = mode
        self._persist.save(self._state_path)

    def _software_version(self) -> str:
        if self.options.software_version:
            return self.options.software_version
        region = self.ecu.uds.memory_regions[0]
        header = self.memory.read(region.start, reference_ecu.APP_HEADER_SIZE)
        return reference_ecu.parse_app_header(header) or "unknown"

    def _enter(self, mode: str, session: int) -> None:
        """Switch mode now (a jump or the end of a boot)."""
        self._boots += 1
        self._mode = mode
        self._boot_target = None
        self._reset_volatile(session)
        self._next_heartbeat = time.monotonic()
        self._save_state()
        log.info("%s: running %s, session 0x%02X", self.name, mode, session)

    def _reboot(self, delay_ms: int, target: tuple[str, int] | None = None) -> None:
        """Start booting: no answers for `delay_ms`, then application (if valid) or bootloader."""
        if target is None:
            target = (APPLICATION if self._persist.app_valid else BOOTLOADER, SESSION_DEFAULT)
        self._reset_volatile(SESSION_DEFAULT)
        self._mode = BOOTING
        self._boot_target = target
        self._boot_at = time.monotonic() + delay_ms / 1000.0
        self._save_state()

    def _lock_security(self) -> None:
        self._unlocked = 0
        self._pending_seed = None

    # -- worker loop ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    self._tick(time.monotonic())
                request = self._next_request()
                if request is not None:
                    data, entry = request
                    with self._lock:
                        self._handle(data, entry)
        except Exception:  # a simulator bug must be visible, never a silent dead ECU
            log.exception("%s: simulator worker crashed", self.name)

    def _next_request(self) -> tuple[bytes, _Stack] | None:
        primary = None
        for entry in self._stacks:
            if not entry.functional and entry.mode == self._mode:
                primary = entry
        for entry in self._stacks:
            if entry is primary:
                continue
            data = entry.stack.recv(block=False)
            if data is not None:
                return bytes(data), entry
        if primary is not None:
            data = primary.stack.recv(block=True, timeout=LOOP_WAIT_S)
            if data is not None:
                return bytes(data), primary
        else:
            self._stop.wait(LOOP_WAIT_S)
        return None

    def _tick(self, now: float) -> None:
        while True:
            try:
                self._frames.get_nowait()
            except queue.Empty:
                break
            if self._mode != APPLICATION:
                continue
            if self._faults.take(BOOTLOADER_ENTRY, "refuse", "no_answer") is not None:
                log.info("%s: bootloader entry frame refused (fault)", self.name)
                continue
            log.info("%s: bootloader entry frame received", self.name)
            self._reboot(self.options.boot_time_ms, (BOOTLOADER, SESSION_DEFAULT))
        while self._delayed and now >= self._delayed[0][0]:
            _, entry, data, response = self._delayed.pop(0)
            if self._mode == entry.mode:
                self._finish(entry, data, response)
        if self._mode == BOOTING:
            if now >= self._boot_at and self._boot_target is not None:
                self._enter(*self._boot_target)
            return
        if self._erase is not None:
            self._progress_erase(now)
        if self._session != SESSION_DEFAULT and now - self._last_request_at > self._s3_s:
            log.info(
                "%s: S3 expired (%.0f ms without request): back to default session%s",
                self.name,
                self._s3_s * 1000,
                ", erase aborted" if self._erase is not None else "",
            )
            self._reset_volatile(SESSION_DEFAULT)
        hb_id = self.ecu.connection.heartbeat_id
        if (
            self._mode == APPLICATION
            and hb_id is not None
            and not self._comm_disabled
            and now >= self._next_heartbeat
        ):
            self._next_heartbeat = now + self.options.heartbeat_period_ms / 1000.0
            self._heartbeat_counter = (self._heartbeat_counter + 1) & 0xFF
            msg = can.Message(
                arbitration_id=hb_id,
                is_extended_id=hb_id > 0x7FF,
                data=bytes([self._heartbeat_counter, 0x01, 0, 0, 0, 0, 0, 0]),
            )
            with contextlib.suppress(can.CanError):
                self._bus.send(msg)

    def _progress_erase(self, now: float) -> None:
        op = self._erase
        assert op is not None
        total = len(op.sectors)
        span = max(op.done_at - op.started_at, 1e-6)
        target = total if now >= op.done_at else int(total * (now - op.started_at) / span)
        while op.erased < target:
            start, size = op.sectors[op.erased]
            self.memory.erase_sector(start, size)
            op.erased += 1
        if op.erased >= total:
            self._erase = None
            if op.fail:
                self._respond(op.stack, self._nrc_bytes(0x31, 0x72), False)
            else:
                self._respond(
                    op.stack,
                    bytes([0x71, 0x01]) + self._erase_routine.to_bytes(2, "big") + b"\x00",
                    False,
                )
            return
        if now >= op.next_pending_at:
            op.next_pending_at = now + self.options.pending_interval_ms / 1000.0
            self._respond(op.stack, self._nrc_bytes(0x31, 0x78), False)

    # -- request dispatch ----------------------------------------------------------------
    def _nrc_bytes(self, sid: int, code: int) -> bytes:
        return bytes([0x7F, sid, code])

    def _respond(self, stack: isotp.TransportLayer, payload: bytes, functional: bool) -> None:
        if payload[0] == 0x7F:
            code = payload[2]
            if code != 0x78:
                self._last_nrc = code
            if functional and code in _FUNCTIONAL_SUPPRESSED_NRCS:
                return
            log.info(
                "%s: -> NRC 0x%02X %s to %s",
                self.name,
                code,
                nrc_name(code),
                service_name(payload[1]),
            )
        else:
            log.debug("%s: -> %s", self.name, payload[:8].hex(" "))
        stack.send(payload)

    def _step_of(self, data: bytes) -> str | None:
        sid = data[0]
        sub = data[1] & 0x7F if len(data) > 1 else -1
        if sid == 0x10:
            return {
                SESSION_EXTENDED: StepKind.EXTENDED_SESSION.value,
                SESSION_PROGRAMMING: StepKind.PROGRAMMING_SESSION.value,
            }.get(sub)
        if sid == 0x27 and sub > 0:
            seed_sub = sub if sub % 2 else sub - 1
            if seed_sub == self._level1:
                return StepKind.SECURITY_LEVEL_1.value
            if seed_sub == self._prog_level:
                return StepKind.SECURITY_LEVEL_2.value
            return None
        if sid == 0x31 and len(data) >= 4:
            rid = int.from_bytes(data[2:4], "big")
            if rid == self._erase_routine:
                return StepKind.ERASE.value
            if rid == self._check_routine:
                return StepKind.CHECK.value
            return None
        if sid == 0x22 and len(data) >= 3 and int.from_bytes(data[1:3], "big") == DID_SW_VERSION:
            return StepKind.READ_VERSION.value
        simple = {
            0x85: StepKind.DTC_OFF,
            0x28: StepKind.COMM_CONTROL_OFF,
            0x2E: StepKind.FINGERPRINT,
            0x34: StepKind.REQUEST_DOWNLOAD,
            0x36: StepKind.TRANSFER_DATA,
            0x37: StepKind.TRANSFER_EXIT,
            0x11: StepKind.RESET,
        }
        kind = simple.get(sid)
        return kind.value if kind is not None else None

    def _handle(self, data: bytes, entry: _Stack) -> None:
        if not data or self._mode != entry.mode:
            return  # the other mode's addresses are not served (a real ECU is not listening)
        sid = data[0]
        self._requests += 1
        self._last_request_at = time.monotonic()
        # TransferData at DEBUG: thousands per flash would drown the log (RequestTransferExit
        # reports the total).
        level = logging.DEBUG if sid == 0x36 else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s: <- %s %s", self.name, service_name(sid), data[:12].hex(" "))
        if self._erase is not None:
            if sid == 0x3E:
                self._finish(entry, data, self._svc_tester_present(data))
            else:
                self._respond(entry.stack, self._nrc_bytes(sid, 0x21), entry.functional)
            return
        step = self._step_of(data)
        late_s = 0.0
        if step is not None:
            fault = self._faults.take(
                step, "nrc", "late", "no_answer", "drop", "corrupt", "pending"
            )
            if fault is not None:
                log.info("%s: fault fires: %s", self.name, fault)
                if fault.kind == "no_answer":
                    return
                if fault.kind == "nrc":
                    self._respond(entry.stack, self._nrc_bytes(sid, int(fault.arg or 0x10)), False)
                    return
                if fault.kind == "late":
                    late_s = (fault.arg or 0) / 1000.0
                elif fault.kind == "pending":
                    # N x 0x78 now, the real answer one pending interval later (within P2*).
                    for _ in range(max(1, int(fault.arg or 1))):
                        self._respond(entry.stack, self._nrc_bytes(sid, 0x78), False)
                    late_s = self.options.pending_interval_ms / 1000.0
                elif fault.kind == "drop":
                    self._tx_bus.arm(drop=int(fault.arg or 1))
                elif fault.kind == "corrupt":
                    self._tx_bus.arm(corrupt=int(fault.arg or 1))
        handler = self._handlers().get(sid)
        try:
            if handler is None:
                raise _Nrc(0x11)
            response = handler(data, entry)
        except _Nrc as nrc:
            response = self._nrc_bytes(sid, nrc.code)
        if late_s and response is not None:
            # Answered by the loop when due, so state() and TesterPresent are not blocked.
            self._delayed.append((time.monotonic() + late_s, entry, data, response))
            return
        self._finish(entry, data, response)

    def _finish(self, entry: _Stack, data: bytes, response: bytes | None) -> None:
        if response is None:
            return
        if response[0] != 0x7F and data[0] in _SPR_SERVICES and len(data) > 1 and data[1] & 0x80:
            return  # suppressPosRspMsgIndicationBit
        self._respond(entry.stack, response, entry.functional)

    def _handlers(self) -> dict[int, Callable[[bytes, _Stack], bytes | None]]:
        return {
            0x10: self._svc_session,
            0x11: self._svc_reset,
            0x19: self._svc_read_dtc,
            0x22: self._svc_read_did,
            0x27: self._svc_security,
            0x28: self._svc_comm_control,
            0x2E: self._svc_write_did,
            0x31: self._svc_routine,
            0x34: self._svc_request_download,
            0x36: self._svc_transfer_data,
            0x37: self._svc_transfer_exit,
            0x3E: lambda d, e: self._svc_tester_present(d),
            0x85: self._svc_dtc_setting,
        }

    # -- services ------------------------------------------------------------------------
    def _session_response(self, session: int) -> bytes:
        p2 = self.options.p2_server_ms
        p2_star = self.options.p2_star_server_ms // 10
        return bytes([0x50, session]) + p2.to_bytes(2, "big") + p2_star.to_bytes(2, "big")

    def _svc_session(self, data: bytes, entry: _Stack) -> bytes | None:
        if len(data) != 2:
            raise _Nrc(0x13)
        target = data[1] & 0x7F
        if target not in (SESSION_DEFAULT, SESSION_EXTENDED, SESSION_PROGRAMMING):
            raise _Nrc(0x12)
        if target == SESSION_PROGRAMMING:
            if self._session != SESSION_EXTENDED:
                raise _Nrc(0x22)
            if self._mode == BOOTLOADER and self._prog_needs_level1 and self._unlocked == 0:
                raise _Nrc(0x33)
            if self._mode == APPLICATION:
                # EAs without an entry frame: the application jumps to the bootloader, which
                # answers from the programming session with security locked.
                response = self._session_response(target)
                self._finish(entry, data, response)
                self._enter(BOOTLOADER, SESSION_PROGRAMMING)
                self._downloaded = []
                self._bytes_written = 0
                return None
            self._downloaded = []
            self._bytes_written = 0
        elif (
            target == SESSION_EXTENDED
            and self._mode == BOOTLOADER
            and self._session == SESSION_PROGRAMMING
        ):
            raise _Nrc(0x22)  # a bootloader does not step back from programming to extended
        if target != self._session:
            self._lock_security()
            self._download = None
            if target == SESSION_DEFAULT:
                self._comm_disabled = False
                self._dtc_setting_off = False
        self._session = target
        return self._session_response(target)

    def _svc_reset(self, data: bytes, entry: _Stack) -> bytes | None:
        if len(data) != 2:
            raise _Nrc(0x13)
        reset_type = data[1] & 0x7F
        if reset_type not in (0x01, 0x02, 0x03):
            raise _Nrc(0x12)
        self._finish(entry, data, bytes([0x51, reset_type]))
        # Let the response leave before the ECU goes silent.
        deadline = time.monotonic() + 0.2
        while entry.stack.transmitting() and time.monotonic() < deadline:
            time.sleep(0.001)
        log.info("%s: ECU reset 0x%02X", self.name, reset_type)
        self._reboot(self.options.reset_time_ms)
        return None

    def _svc_tester_present(self, data: bytes) -> bytes | None:
        if len(data) != 2:
            raise _Nrc(0x13)
        if data[1] & 0x7F != 0x00:
            raise _Nrc(0x12)
        return bytes([0x7E, 0x00])

    def _svc_dtc_setting(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        if len(data) < 2:
            raise _Nrc(0x13)
        setting = data[1] & 0x7F
        if setting not in (0x01, 0x02):
            raise _Nrc(0x12)
        if self._session == SESSION_DEFAULT:
            raise _Nrc(0x7F)
        self._dtc_setting_off = setting == 0x02
        return bytes([0xC5, setting])

    def _svc_comm_control(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        if len(data) != 3:
            raise _Nrc(0x13)
        control = data[1] & 0x7F
        if control not in (0x00, 0x01, 0x02, 0x03):
            raise _Nrc(0x12)
        if self._session == SESSION_DEFAULT:
            raise _Nrc(0x7F)
        if data[2] & 0x03 == 0:
            raise _Nrc(0x31)
        self._comm_disabled = control in (0x01, 0x03)
        return bytes([0x68, control])

    def _svc_security(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        if len(data) < 2:
            raise _Nrc(0x13)
        sub = data[1] & 0x7F
        seed_sub = sub if sub % 2 else sub - 1
        level = self.ecu.uds.security_level(seed_sub)
        if level is None or sub == 0:
            raise _Nrc(0x12)
        if self._mode == APPLICATION and seed_sub != self._level1:
            raise _Nrc(0x12)
        if self._session == SESSION_DEFAULT:
            raise _Nrc(0x7F)
        if seed_sub == self._prog_level and self._session != SESSION_PROGRAMMING:
            raise _Nrc(0x7E)
        now = time.monotonic()
        if sub % 2:  # requestSeed
            if len(data) != 2:
                raise _Nrc(0x13)
            if now < self._lockout_until:
                raise _Nrc(0x37)
            if self._unlocked == seed_sub:
                return bytes([0x67, sub]) + bytes(self.options.seed_length)
            seed = b"\x00"
            while not any(seed):
                seed = os.urandom(self.options.seed_length)
            self._pending_seed = (seed_sub, seed)
            return bytes([0x67, sub]) + seed
        # sendKey
        if self._pending_seed is None or self._pending_seed[0] != seed_sub:
            raise _Nrc(0x24)
        if now < self._lockout_until:
            raise _Nrc(0x37)
        seed = self._pending_seed[1]
        self._pending_seed = None
        try:
            expected = compute_key(level.algorithm, seed, level.params)
        except SecurityAccessError as exc:
            log.warning("%s: cannot compute the expected key: %s", self.name, exc)
            raise _Nrc(0x22) from exc
        step = self._step_of(data)
        if step is not None and self._faults.take(step, "wrong_key_algorithm") is not None:
            expected = bytes(b ^ 0xFF for b in expected)
        if bytes(data[2:]) != expected:
            self._failed_attempts += 1
            if self._failed_attempts >= self.options.max_key_attempts:
                self._failed_attempts = 0
                self._lockout_until = now + self.options.lockout_s
                raise _Nrc(0x36)
            raise _Nrc(0x35)
        self._failed_attempts = 0
        self._unlocked = seed_sub
        return bytes([0x67, sub])

    def _did_value(self, did: int) -> bytes:
        opts = self.options
        if did in opts.did_values:
            return bytes(opts.did_values[did])
        if did == DID_VIN:
            return opts.vin.encode("ascii")
        if did == DID_SW_VERSION:
            return self._software_version().encode("ascii")
        if did == DID_SERIAL:
            return opts.serial.encode("ascii")
        if did == self._fingerprint_did or did == DID_FINGERPRINT:
            return bytes.fromhex(self._persist.fingerprint_hex)
        for pre in self.ecu.uds.preconditions:
            if pre.did == did:
                if did == reference_ecu.DID_VEHICLE_SPEED:
                    value = opts.vehicle_speed_kmh
                elif did == reference_ecu.DID_SUPPLY_VOLTAGE:
                    value = opts.supply_voltage_mv
                else:
                    value = 0
                return max(0, value).to_bytes(pre.length, "big")
        raise _Nrc(0x31)

    def _svc_read_did(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        if len(data) < 3 or (len(data) - 1) % 2:
            raise _Nrc(0x13)
        out = bytearray([0x62])
        for i in range(1, len(data), 2):
            did = int.from_bytes(data[i : i + 2], "big")
            out += did.to_bytes(2, "big") + self._did_value(did)
        return bytes(out)

    def _svc_read_dtc(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        if len(data) < 2:
            raise _Nrc(0x13)
        sub = data[1] & 0x7F
        if sub not in (0x01, 0x02):
            raise _Nrc(0x12)
        if len(data) != 3:
            raise _Nrc(0x13)
        mask = data[2]
        matching = [(d, s) for d, s in self._persist.dtcs if s & mask]
        if sub == 0x01:
            return bytes([0x59, 0x01, 0xFF, 0x01]) + len(matching).to_bytes(2, "big")
        out = bytearray([0x59, 0x02, 0xFF])
        for dtc, status in matching:
            out += (dtc & 0xFFFFFF).to_bytes(3, "big") + bytes([status & 0xFF])
        return bytes(out)

    def _require_programming(self, sid: int, *, routine: bool = False) -> None:
        if self._mode != BOOTLOADER:
            raise _Nrc(0x11 if sid != 0x31 else 0x31)
        if self._session == SESSION_DEFAULT:
            raise _Nrc(0x7F)
        if self._session != SESSION_PROGRAMMING:
            raise _Nrc(0x7E if routine else 0x7F)
        if self._unlocked != self._prog_level:
            raise _Nrc(0x33)

    def _svc_write_did(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        if len(data) < 4:
            raise _Nrc(0x13)
        did = int.from_bytes(data[1:3], "big")
        if did != self._fingerprint_did:
            raise _Nrc(0x31)
        self._require_programming(0x2E)
        self._persist.fingerprint_hex = bytes(data[3:]).hex()
        self._save_state()
        return bytes([0x6E]) + data[1:3]

    def _parse_address_length(self, record: bytes) -> tuple[int, int]:
        if not record:
            raise _Nrc(0x13)
        alfid = record[0]
        n_len, n_addr = alfid >> 4, alfid & 0x0F
        if n_len == 0 or n_addr == 0 or n_len > 4 or n_addr > 4:
            raise _Nrc(0x31)
        if len(record) != 1 + n_addr + n_len:
            raise _Nrc(0x13)
        address = int.from_bytes(record[1 : 1 + n_addr], "big")
        length = int.from_bytes(record[1 + n_addr :], "big")
        return address, length

    def _svc_routine(self, data: bytes, entry: _Stack) -> bytes | None:
        if len(data) < 4:
            raise _Nrc(0x13)
        sub = data[1] & 0x7F
        rid = int.from_bytes(data[2:4], "big")
        if rid not in (self._erase_routine, self._check_routine):
            raise _Nrc(0x31)
        if sub != 0x01:
            raise _Nrc(0x12)
        self._require_programming(0x31, routine=True)
        if self._download is not None:
            raise _Nrc(0x24)
        if rid == self._erase_routine:
            return self._start_erase(data[4:], entry)
        return self._check(data[4:])

    def _start_erase(self, record: bytes, entry: _Stack) -> bytes | None:
        regions = self.ecu.uds.memory_regions
        if self._erase_record == "none":
            if record:
                raise _Nrc(0x13)
            ranges = [(r.start, r.length) for r in regions]
        elif self._erase_record == "segment_index":
            if len(record) != 1:
                raise _Nrc(0x13)
            if record[0] >= len(regions):
                raise _Nrc(0x31)
            ranges = [(regions[record[0]].start, regions[record[0]].length)]
        else:
            ranges = [self._parse_address_length(record)]
        sectors: list[tuple[int, int]] = []
        try:
            for address, length in ranges:
                sectors += self.memory.sectors_for(address, length)
        except FlashAccessError as exc:
            log.info("%s: erase refused: %s", self.name, exc)
            raise _Nrc(0x31) from exc
        fail = self._faults.take(StepKind.ERASE.value, "fail") is not None
        kib = sum(size for _, size in sectors) / 1024
        duration_s = max(self.options.erase_min_ms, kib * self.options.erase_ms_per_kib) / 1000
        now = time.monotonic()
        self._persist.app_valid = False
        self._save_state()
        self._erase = _Erase(
            stack=entry.stack,
            sectors=sectors,
            started_at=now,
            done_at=now + duration_s,
            next_pending_at=now,
            fail=fail,
        )
        log.info(
            "%s: erasing %d sectors (%.0f KiB, %.0f ms)",
            self.name,
            len(sectors),
            kib,
            duration_s * 1000,
        )
        self._progress_erase(now)
        return None

    def _check(self, record: bytes) -> bytes:
        expected_len = len(checksum(self._checksum_kind, b""))
        if len(record) != expected_len:
            raise _Nrc(0x13)
        if not self._downloaded:
            raise _Nrc(0x24)
        data = b"".join(self.memory.read(a, n) for a, n in sorted(self._downloaded))
        ok = checksum(self._checksum_kind, data) == bytes(record)
        self._persist.app_valid = ok
        self._save_state()
        log.info("%s: check routine: %s", self.name, "OK" if ok else "MISMATCH")
        return (
            bytes([0x71, 0x01]) + self._check_routine.to_bytes(2, "big") + bytes([0 if ok else 1])
        )

    def _svc_request_download(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        if len(data) < 3:
            raise _Nrc(0x13)
        self._require_programming(0x34)
        if self._download is not None:
            raise _Nrc(0x70)
        if data[1] != 0x00:
            raise _Nrc(0x31)  # compression/encryption not supported
        address, size = self._parse_address_length(data[2:])
        try:
            self.memory.check_writable(address, size)
        except FlashAccessError as exc:
            log.info("%s: download refused: %s", self.name, exc)
            raise _Nrc(0x31 if exc.kind == "out_of_range" else 0x70) from exc
        self._download = _Download(address=address, size=size)
        self._persist.app_valid = False
        self._save_state()
        n = max(2, (self._max_block.bit_length() + 7) // 8)
        return bytes([0x74, n << 4]) + self._max_block.to_bytes(n, "big")

    def _svc_transfer_data(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        self._require_programming(0x36)
        dl = self._download
        if dl is None:
            raise _Nrc(0x24)
        if len(data) < 2:
            raise _Nrc(0x13)
        counter = data[1]
        payload = bytes(data[2:])
        if len(payload) > self._max_block - 2:
            raise _Nrc(0x13)
        expected = (dl.counter + 1) & 0xFF
        if counter != expected:
            if dl.blocks > 0 and counter == dl.counter:
                return bytes([0x76, counter])  # repeated previous block: already written
            raise _Nrc(0x73)
        if not payload:
            raise _Nrc(0x13)
        if dl.written + len(payload) > dl.size:
            raise _Nrc(0x71)
        address = dl.address + dl.written
        loss = self._faults.peek(StepKind.TRANSFER_DATA.value, "power_loss")
        if loss is not None and self._bytes_written + len(payload) > int(loss.arg or 0):
            self._faults.take(StepKind.TRANSFER_DATA.value, "power_loss")
            keep = max(0, int(loss.arg or 0) - self._bytes_written)
            with contextlib.suppress(FlashAccessError):
                self.memory.program(address, payload[:keep])
            self._bytes_written += keep
            log.info("%s: POWER LOSS after %d transferred bytes (fault)", self.name, keep)
            self._persist.app_valid = False
            self._reboot(self.options.reset_time_ms, (BOOTLOADER, SESSION_DEFAULT))
            return None
        try:
            self.memory.program(address, payload)
        except FlashAccessError as exc:
            log.info("%s: programming failed: %s", self.name, exc)
            raise _Nrc(0x72) from exc
        dl.written += len(payload)
        dl.counter = counter
        dl.blocks += 1
        self._bytes_written += len(payload)
        return bytes([0x76, counter])

    def _svc_transfer_exit(self, data: bytes, entry: _Stack) -> bytes | None:
        del entry
        self._require_programming(0x37)
        dl = self._download
        if dl is None or dl.written != dl.size:
            raise _Nrc(0x24)
        if len(data) != 1:
            raise _Nrc(0x13)
        log.info(
            "%s: download of 0x%X bytes at 0x%08X complete (%d blocks)",
            self.name,
            dl.size,
            dl.address,
            dl.blocks,
        )
        self._downloaded.append((dl.address, dl.size))
        self._download = None
        return bytes([0x77])


def default_state_dir(base: Path, machine: str) -> Path:
    """The per-machine state folder under `base`."""
    return Path(base) / _slug(machine)
