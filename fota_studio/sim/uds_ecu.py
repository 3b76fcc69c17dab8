"""A simulated ECU: application + strict UDS bootloader, speaking real ISO-TP on a python-can bus.

`SimEcu` is built from an EA `EcuDefinition` plus `SimEcuOptions` (`uds_model.py`). This module
is its runtime: worker thread, state and persistence, reboots, response-pending timing, S3, fault
firing and the violation log. The services and the ISO 14229-1 §7.5 NRC order are the mixins
`uds_services.UdsServices` and `uds_programming.ProgrammingServices`; the ISO-TP stacks and the
bus watch are `uds_transport.EcuTransport`. The application answers on its IDs and sends a
heartbeat; the entry frame (or 10 02) reboots it into the bootloader. The flash is a
`FlashMemory` file, so state survives restarts and "power loss"; faults (`faults.Fault`) can be
injected per step. As strict as the field: during a reboot (the EA's entry delay / reset time)
the ECU does not exist on the bus and each request is recorded as a violation (`violations`,
also on the snapshot), as are two requests outstanding, TransferData out of sequence, a wrong
fingerprint length, a sector erased twice and an erase into a protected range.

Threads: one worker thread `fota-sim-<machine>-<ecu>` owns all ECU state and serves every request;
the can-isotp stacks run their own two threads each (`fota-sim-<machine>-<ecu>-isotp-…`) on the
SHARED notifier given to the constructor. `start`/`stop`/`inject`/`clear_faults`/`state`/
`violations` may be called from any thread.

Why this size: `SimEcu` is the runtime of one simulated ECU (threads, sessions, timers, reboot,
the application side); its UDS services are already table-driven in
`uds_services.py`/`uds_programming.py` and its storage in `flash_memory.py`. What is left is one
object's life cycle, which reads best in one place.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import can
import isotp

from fota_studio.core import reference_ecu
from fota_studio.core.checksums import checksum
from fota_studio.core.ea import (
    DEFAULT_STEP_PARAMS,
    EcuDefinition,
    StepKind,
)
from fota_studio.core.errors import ConfigurationError
from fota_studio.core.nrc import nrc_name, service_name
from fota_studio.sim.faults import BOOTLOADER_ENTRY, Fault, FaultSet, FaultyBus, request_step
from fota_studio.sim.flash_memory import open_ecu_storage
from fota_studio.sim.uds_model import (
    APPLICATION,
    BOOT_MARGIN_MS,
    BOOTING,
    BOOTLOADER,
    DID_FINGERPRINT,
    DID_SERIAL,
    DID_SW_VERSION,
    DID_VIN,
    REERASE_CHOICES,
    SESSION_DEFAULT,
    SESSION_EXTENDED,
    SESSION_PROGRAMMING,
    V_DURING_REBOOT,
    V_OUTSTANDING,
    V_S3,
    Erase,
    Nrc,
    Owed,
    SimEcuOptions,
    SimEcuSnapshot,
    Stack,
    Violation,
    ViolationLog,
)
from fota_studio.sim.uds_programming import ProgrammingServices
from fota_studio.sim.uds_services import SPR_SERVICES, level1_before_programming
from fota_studio.sim.uds_transport import EcuTransport, wall_time

log = logging.getLogger(__name__)

#: Worker loop wait per iteration: bounds the latency of timers (S3, heartbeat, erase progress).
LOOP_WAIT_S = 0.005
#: NRCs a server does not send to a functional request (ISO 14229-1 §7.5).
_FUNCTIONAL_SUPPRESSED_NRCS = {0x11, 0x12, 0x31, 0x7E, 0x7F}


def _step_param(ecu: EcuDefinition, kind: StepKind, key: str) -> Any:
    step = ecu.uds.step(kind)
    if step is not None:
        return step.param(key)
    return DEFAULT_STEP_PARAMS[kind][key]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "machine"


class SimEcu(ProgrammingServices):
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
        if self.options.reerase not in REERASE_CHOICES:
            raise ConfigurationError(
                f'{ecu.name}: simulator option reerase="{self.options.reerase}" is unknown',
                hint=f"use one of: {', '.join(REERASE_CHOICES)}",
            )
        conn = ecu.connection
        self._bus = bus
        self._notifier = notifier
        self._tx_bus = FaultyBus(bus)
        self._faults = FaultSet()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frames: queue.SimpleQueue[can.Message] = queue.SimpleQueue()
        self._thread_prefix = f"fota-sim-{_slug(machine)}-{_slug(ecu.name)}"
        self._violations = ViolationLog()

        self.state_dir = Path(state_dir)
        self._state_path = self.state_dir / f"{_slug(ecu.name)}.json"
        protected = list(self.options.protected) + [
            (p.start, p.length) for p in ecu.uds.protected_ranges
        ]
        try:
            self.memory, self._persist = open_ecu_storage(
                self.state_dir / f"{_slug(ecu.name)}.flash",
                self._state_path,
                ecu.uds.memory_regions,
                protected,
                initial_image=initial_image,
                dtcs=self.options.dtcs,
            )
        except BaseException:  # e.g. no disk space for the flash file: close what we opened
            self._tx_bus.shutdown()
            raise

        prof = ecu.uds
        self._s3_s = (self.options.s3_ms or prof.s3_ms) / 1000.0
        self._level1 = int(_step_param(ecu, StepKind.SECURITY_LEVEL_1, "level"))
        self._prog_level = int(_step_param(ecu, StepKind.SECURITY_LEVEL_2, "level"))
        self._erase_routine = int(_step_param(ecu, StepKind.ERASE, "routine_id"))
        self._erase_record = str(_step_param(ecu, StepKind.ERASE, "record"))
        self._check_routine = int(_step_param(ecu, StepKind.CHECK, "routine_id"))
        self._checksum_kind = str(_step_param(ecu, StepKind.CHECK, "checksum"))
        self._fingerprint_did = int(_step_param(ecu, StepKind.FINGERPRINT, "did"))
        self._fingerprint_length = int(_step_param(ecu, StepKind.FINGERPRINT, "length"))
        self._prog_needs_level1 = level1_before_programming(ecu)
        if self.options.max_block_length is not None:
            self._max_block = self.options.max_block_length
        else:
            self._max_block = 0xFFF if conn.fd else 0x402

        # Volatile state (reset on every boot).
        self._mode = self._persist.mode
        self._boot_target: tuple[str, int] | None = None
        self._boot_at = 0.0
        self._owed: list[Owed] = []
        self._reset_volatile(SESSION_DEFAULT)
        self._failed_attempts = 0
        self._lockout_until = 0.0
        self._last_nrc: int | None = None
        self._nrc_counts: dict[int, int] = {}
        self._requests = 0
        self._boots = 0
        self._bytes_written = 0
        self._downloaded: list[tuple[int, int]] = []
        self._sector_erases: dict[int, int] = {}
        self._region_erases: dict[str, int] = {}
        self._heartbeat_counter = 0
        self._next_heartbeat = 0.0
        self._transport = EcuTransport(
            ecu,
            self._tx_bus,
            notifier,
            self.options,
            max_block=self._max_block,
            thread_prefix=self._thread_prefix,
            on_entry_frame=self._on_entry_frame,
            on_early_request=self._on_early_request,
        )

    # -- public API ----------------------------------------------------------------------
    def start(self) -> None:
        """Create the ISO-TP stacks on the shared notifier and start the worker thread."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._transport.start()
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
        self._transport.stop()
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

    @property
    def violations(self) -> list[Violation]:
        """Protocol violations recorded so far (strict mode), oldest first."""
        return self._violations.items()

    def clear_violations(self) -> None:
        """Forget the recorded violations (e.g. between two runs of a test)."""
        self._violations.clear()

    def set_preconditions(self, status: int, reason: str = "") -> None:
        """Make the check-programming-preconditions routine answer `status` (0 = ok)."""
        with self._lock:
            self.options.precondition_status = status
            self.options.precondition_reason = reason

    def state(self) -> SimEcuSnapshot:
        """A snapshot of mode, session, security, app validity, counters, faults, violations."""
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
                violations=tuple(self.violations),
                region_erases=tuple(sorted(self._region_erases.items())),
                sector_erases=tuple(sorted(self._sector_erases.items())),
                nrcs_sent=tuple(sorted(self._nrc_counts.items())),
            )

    def set_dtcs(self, dtcs: Sequence[tuple[int, int]]) -> None:
        """Replace the stored DTCs (3-byte DTC, status byte)."""
        with self._lock:
            self._persist.dtcs = [(int(d), int(s)) for d, s in dtcs]
            self._save_state()

    # -- setup ---------------------------------------------------------------------------
    def _on_entry_frame(self, msg: can.Message) -> None:
        """Notifier thread: the bootloader entry frame; silent from this frame on (the worker
        starts the reboot a moment later)."""
        if (
            self._mode == APPLICATION
            and self._faults.peek(BOOTLOADER_ENTRY, "refuse", "no_answer") is None
        ):
            self._transport.silence(wall_time(msg) + self._boot_time_ms() / 1000.0)
        self._frames.put(msg)

    def _on_early_request(self, detail: str) -> None:
        self._violation(V_DURING_REBOOT, detail)

    def _go_silent(self, until_wall: float) -> None:
        self._transport.silence(until_wall)

    # -- state helpers -------------------------------------------------------------------
    def _reset_volatile(self, session: int) -> None:
        self._session = session
        self._unlocked = 0
        self._pending_seed: tuple[int, bytes] | None = None
        self._download = None
        self._erase: Erase | None = None
        self._owed = []
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

    def _boot_time_ms(self) -> int:
        """Entry frame -> bootloader up: the option, else just under the EA's entry delay."""
        if self.options.boot_time_ms is not None:
            return self.options.boot_time_ms
        return max(0, self.ecu.connection.bootloader_entry_delay_ms - BOOT_MARGIN_MS)

    def _reset_time_ms(self) -> int:
        """ECUReset -> running again: the option, else just under the EA's reset_time_ms."""
        if self.options.reset_time_ms is not None:
            return self.options.reset_time_ms
        return max(0, self.ecu.uds.timing.reset_time_ms - BOOT_MARGIN_MS)

    def _enter(self, mode: str, session: int) -> None:
        """Switch mode now (a jump or the end of a boot)."""
        self._boots += 1
        self._mode = mode
        self._boot_target = None
        self._reset_volatile(session)
        self._next_heartbeat = time.monotonic()
        self._save_state()
        log.info("%s: running %s, session 0x%02X", self.name, mode, session)

    def _reboot(
        self,
        delay_ms: int,
        target: tuple[str, int] | None = None,
        *,
        since_wall: float | None = None,
    ) -> None:
        """Go silent for `delay_ms` from `since_wall` (time.time; default now), then run
        `target` (default: the application if valid, else the bootloader)."""
        if target is None:
            target = (APPLICATION if self._persist.app_valid else BOOTLOADER, SESSION_DEFAULT)
        now_wall, now_mono = time.time(), time.monotonic()
        start_wall = now_wall if since_wall is None else min(since_wall, now_wall)
        self._transport.silence(start_wall + delay_ms / 1000.0)
        self._boot_at = now_mono - (now_wall - start_wall) + delay_ms / 1000.0
        self._reset_volatile(SESSION_DEFAULT)
        self._mode = BOOTING
        self._boot_target = target
        self._save_state()

    def _lock_security(self) -> None:
        self._unlocked = 0
        self._pending_seed = None

    def _violation(self, kind: str, detail: str) -> None:
        if not self.options.strict:
            return
        item = self._violations.record(kind, detail)
        log.warning("%s: protocol violation %s", self.name, item)

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

    def _next_request(self) -> tuple[bytes, Stack] | None:
        primary = None
        for entry in self._transport.stacks:
            if not entry.functional and entry.mode == self._mode:
                primary = entry
        for entry in self._transport.stacks:
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
                frame = self._frames.get_nowait()
            except queue.Empty:
                break
            if self._mode != APPLICATION:
                continue
            if self._faults.take(BOOTLOADER_ENTRY, "refuse", "no_answer") is not None:
                log.info("%s: bootloader entry frame refused (fault)", self.name)
                continue
            log.info("%s: bootloader entry frame received", self.name)
            self._reboot(
                self._boot_time_ms(),
                (BOOTLOADER, SESSION_DEFAULT),
                since_wall=wall_time(frame),
            )
        self._serve_owed(now)
        if self._mode == BOOTING:
            if now >= self._boot_at and self._boot_target is not None:
                self._enter(*self._boot_target)
            return
        if self._erase is not None:
            self._progress_erase(now)
        if (self._erase is not None or self._owed) and not self.options.s3_during_pending:
            self._last_request_at = now  # ISO 14229-2: S3 restarts after the final response
        if self._session != SESSION_DEFAULT and now - self._last_request_at > self._s3_s:
            if self._session == SESSION_PROGRAMMING:
                self._violation(
                    V_S3,
                    f"no request for {self._s3_s * 1000:.0f} ms (S3) in the programming "
                    f"session{' during the erase' if self._erase is not None else ''}: "
                    "send TesterPresent",
                )
            log.info(
                "%s: S3 expired (%.0f ms without request): back to default session%s",
                self.name,
                self._s3_s * 1000,
                ", erase aborted" if self._erase is not None else "",
            )
            self._reset_volatile(SESSION_DEFAULT)
        self._heartbeat(now)

    def _heartbeat(self, now: float) -> None:
        hb_id = self.ecu.connection.heartbeat_id
        if (
            self._mode == APPLICATION
            and hb_id is not None
            and not self._comm_disabled
            and now >= self._next_heartbeat
        ):
            self._next_heartbeat = now + self.options.heartbeat_period_ms / 1000.0
            self._heartbeat_counter = (self._heartbeat_counter + 1) & 0xFF
            self._transport.send_heartbeat(self._bus, hb_id, self._heartbeat_counter)

    def _serve_owed(self, now: float) -> None:
        """Send the owed responses that are due, and 0x78 for those that are not yet."""
        keep: list[Owed] = []
        for owed in self._owed:
            if now >= owed.due:
                if self._mode == owed.entry.mode:
                    self._finish(owed.entry, owed.request, owed.response)
                continue
            if owed.pending_s is not None and now >= owed.next_pending:
                owed.next_pending = now + owed.pending_s
                self._respond(owed.entry.stack, self._nrc_bytes(owed.request[0], 0x78), False)
            keep.append(owed)
        self._owed = keep

    def _owe_busy(self, entry: Stack, request: bytes, response: bytes, delay_ms: float) -> None:
        now = time.monotonic()
        owed = Owed(entry, request, response, due=now + delay_ms / 1000.0, blocking=True)
        if delay_ms >= self.options.p2_server_ms:  # beyond P2server: responsePending first
            owed.pending_s = self.options.pending_interval_ms / 1000.0
            owed.next_pending = now
        self._owed.append(owed)
        self._serve_owed(now)

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
            if code != 0x78:
                self._nrc_counts[code] = self._nrc_counts.get(code, 0) + 1
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
        return request_step(
            data,
            level1=self._level1,
            prog_level=self._prog_level,
            routines={self._erase_routine: StepKind.ERASE, self._check_routine: StepKind.CHECK},
        )

    def _busy_with(self) -> str | None:
        """What the ECU is still processing (a request it has not answered yet), or None."""
        if self._erase is not None:
            return "the erase routine"
        if self._owed:
            return service_name(self._owed[0].request[0])
        return None

    def _handle(self, data: bytes, entry: Stack) -> None:
        if not data:
            return
        if self._mode == BOOTING:
            if self._boot_target is None or time.monotonic() < self._boot_at:
                # Queued before the silence began (frames during it never reach a stack): the
                # tester sent it while the ECU still processed the request that rebooted it.
                self._violation(
                    V_OUTSTANDING,
                    f"{service_name(data[0])} [{data[:8].hex(' ')}] while the ECU was going "
                    "into a reboot: lost; wait for the response and the reset time",
                )
                return
            self._enter(*self._boot_target)  # the worker had not noticed the boot ended yet
        if self._mode != entry.mode:
            return  # the other mode's addresses are not served (a real ECU is not listening)
        sid = data[0]
        self._requests += 1
        self._last_request_at = time.monotonic()
        # TransferData at DEBUG: thousands per flash would drown the log (RequestTransferExit
        # reports the total).
        level = logging.DEBUG if sid == 0x36 else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s: <- %s %s", self.name, service_name(sid), data[:12].hex(" "))
        busy = self._busy_with()
        if busy is not None and sid != 0x3E:
            self._violation(
                V_OUTSTANDING,
                f"{service_name(sid)} [{data[:8].hex(' ')}] while {busy} is still being "
                "processed: wait for the final response",
            )
        if self._erase is not None or any(o.blocking for o in self._owed):
            if sid == 0x3E:
                self._dispatch(data, entry)
            else:
                self._respond(entry.stack, self._nrc_bytes(sid, 0x21), entry.functional)
            return
        step = self._step_of(data)
        late_s: float | None = None
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
        self._dispatch(data, entry, late_s)

    def _dispatch(self, data: bytes, entry: Stack, late_s: float | None = None) -> None:
        """Check (§7.5 order), run the handler, answer now or `late_s` later."""
        try:
            response = self.check(data)(data, entry)
        except Nrc as nrc:
            response = self._nrc_bytes(data[0], nrc.code)
        if late_s is not None and response is not None:
            # Answered by the loop when due, so state() and TesterPresent are not blocked.
            self._owed.append(Owed(entry, data, response, due=time.monotonic() + late_s))
            return
        self._finish(entry, data, response)

    def _finish(self, entry: Stack, data: bytes, response: bytes | None) -> None:
        if response is None:
            return
        if response[0] != 0x7F and data[0] in SPR_SERVICES and len(data) > 1 and data[1] & 0x80:
            return  # suppressPosRspMsgIndicationBit
        self._respond(entry.stack, response, entry.functional)

    def _wait_sent(self, entry: Stack) -> None:
        deadline = time.monotonic() + 0.2
        while entry.stack.transmitting() and time.monotonic() < deadline:
            time.sleep(0.001)


def default_state_dir(base: Path, machine: str) -> Path:
    """The per-machine state folder under `base`."""
    return Path(base) / _slug(machine)


__all__ = [
    "APPLICATION",
    "BOOTING",
    "BOOTLOADER",
    "DID_FINGERPRINT",
    "DID_SERIAL",
    "DID_SW_VERSION",
    "DID_VIN",
    "SESSION_DEFAULT",
    "SESSION_EXTENDED",
    "SESSION_PROGRAMMING",
    "SimEcu",
    "SimEcuOptions",
    "SimEcuSnapshot",
    "Violation",
    "checksum",
    "default_state_dir",
]
