"""The UDS services of the simulated ECU, with the ISO 14229-1 §7.5 NRC order driven by a table.

`SERVICES` says, per service ID, in which mode (application / bootloader) and session the
service exists, its minimum length and whether it has a sub-function; `UdsServices.check`
applies the general server response behaviour (ISO 14229-1 figure 5) in the standard's order:
0x11 service not supported (in this mode), 0x7F not supported in the active session, 0x13
minimum length, 0x12 sub-function not supported, 0x7E sub-function not in the active session.
Each `_svc_*` handler then checks what is specific to the service (exact length 0x13,
conditions 0x22, sequence 0x24, out of range 0x31, security 0x33, ...). So a scanner that sends
a bare `27` in the default session learns 0x7F (not supported there), never 0x13.

`UdsServices` is the mixin `SimEcu` (`uds_ecu.py`) inherits: the handlers run on the ECU's
worker thread with its lock held, and reach the runtime (responses, reboot, state file,
violations) only through the abstract methods at the end of this class.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import isotp

from fota_studio.core import reference_ecu
from fota_studio.core.ea import EcuDefinition, StepKind
from fota_studio.core.errors import SecurityAccessError
from fota_studio.core.seedkey import compute_key, demo_secret
from fota_studio.sim.faults import FaultSet
from fota_studio.sim.flash_memory import EcuState, FlashMemory
from fota_studio.sim.uds_model import (
    APPLICATION,
    BOOTLOADER,
    DID_ACTIVE_SESSION,
    DID_FINGERPRINT,
    DID_SERIAL,
    DID_SW_VERSION,
    DID_VIN,
    SESSION_DEFAULT,
    SESSION_EXTENDED,
    SESSION_PROGRAMMING,
    V_FINGERPRINT,
    V_SEQUENCE,
    Download,
    Erase,
    Nrc,
    SimEcuOptions,
    Stack,
)

log = logging.getLogger(__name__)

ALL_SESSIONS = frozenset({SESSION_DEFAULT, SESSION_EXTENDED, SESSION_PROGRAMMING})
NON_DEFAULT = frozenset({SESSION_EXTENDED, SESSION_PROGRAMMING})
PROGRAMMING = frozenset({SESSION_PROGRAMMING})


@dataclass(frozen=True)
class ServiceRule:
    """Where a service exists (mode -> sessions; a missing mode = 0x11) and its request shape."""

    handler: str  # name of the UdsServices method
    min_length: int  # bytes including the SID
    sessions: dict[str, frozenset[int]]
    subfunction: bool = False


def _both(sessions: frozenset[int]) -> dict[str, frozenset[int]]:
    return {APPLICATION: sessions, BOOTLOADER: sessions}


#: The service table (ISO 14229-1 §7.5 figure 5 inputs), per SID.
SERVICES: dict[int, ServiceRule] = {
    0x10: ServiceRule("_svc_session", 2, _both(ALL_SESSIONS), subfunction=True),
    0x11: ServiceRule("_svc_reset", 2, _both(ALL_SESSIONS), subfunction=True),
    0x19: ServiceRule("_svc_read_dtc", 2, _both(ALL_SESSIONS), subfunction=True),
    0x22: ServiceRule("_svc_read_did", 3, _both(ALL_SESSIONS)),
    0x27: ServiceRule("_svc_security", 2, _both(NON_DEFAULT), subfunction=True),
    0x28: ServiceRule("_svc_comm_control", 3, _both(NON_DEFAULT), subfunction=True),
    0x2E: ServiceRule("_svc_write_did", 4, {BOOTLOADER: PROGRAMMING}),
    0x31: ServiceRule("_svc_routine", 4, _both(NON_DEFAULT), subfunction=True),
    0x34: ServiceRule("_svc_request_download", 3, {BOOTLOADER: PROGRAMMING}),
    0x36: ServiceRule("_svc_transfer_data", 2, {BOOTLOADER: PROGRAMMING}),
    0x37: ServiceRule("_svc_transfer_exit", 1, {BOOTLOADER: PROGRAMMING}),
    0x3E: ServiceRule("_svc_tester_present", 2, _both(ALL_SESSIONS), subfunction=True),
    0x85: ServiceRule("_svc_dtc_setting", 2, _both(NON_DEFAULT), subfunction=True),
}
#: Services whose first byte after the SID carries the suppressPosRspMsgIndicationBit (0x80).
SPR_SERVICES = frozenset({0x10, 0x11, 0x28, 0x31, 0x3E, 0x85})


def routine_response(routine_id: int, status: bytes) -> bytes:
    """The positive startRoutine response `71 01 <id> <status record>`."""
    return bytes([0x71, 0x01]) + routine_id.to_bytes(2, "big") + status


def level1_before_programming(ecu: EcuDefinition) -> bool:
    """True when the EA's sequence unlocks level 1 before the programming session (so the
    bootloader refuses 10 02 with 0x33 until it is)."""
    kinds = [s.kind for s in ecu.uds.sequence if s.enabled]
    if StepKind.SECURITY_LEVEL_1 not in kinds:
        return False
    if StepKind.PROGRAMMING_SESSION not in kinds:
        return True
    return kinds.index(StepKind.SECURITY_LEVEL_1) < kinds.index(StepKind.PROGRAMMING_SESSION)


class UdsServices(ABC):
    """The service handlers of `SimEcu` (mixin); state lives on the ECU runtime."""

    ecu: EcuDefinition
    name: str
    options: SimEcuOptions
    memory: FlashMemory
    _faults: FaultSet
    _persist: EcuState
    _mode: str
    _session: int
    _unlocked: int
    _pending_seed: tuple[int, bytes] | None
    _download: Download | None
    _erase: Erase | None
    _comm_disabled: bool
    _dtc_setting_off: bool
    _failed_attempts: int
    _lockout_until: float
    _bytes_written: int
    _downloaded: list[tuple[int, int]]
    _max_block: int
    _level1: int
    _prog_level: int
    _prog_needs_level1: bool
    _erase_routine: int
    _erase_record: str
    _check_routine: int
    _checksum_kind: str
    _fingerprint_did: int
    _fingerprint_length: int
    _sector_erases: dict[int, int]
    _region_erases: dict[str, int]

    # -- the §7.5 checks -------------------------------------------------------------------
    def _subfunctions(self, sid: int) -> dict[int, frozenset[int]]:
        """Supported sub-functions of `sid` in the current mode -> sessions they work in."""
        if sid == 0x27:
            subs: dict[int, frozenset[int]] = {}
            for lvl in self.ecu.uds.security_levels:
                seed = lvl.seed_subfunction
                if self._mode == APPLICATION and seed != self._level1:
                    continue
                where = PROGRAMMING if seed == self._prog_level else NON_DEFAULT
                if self._mode == APPLICATION:
                    where = NON_DEFAULT
                subs[seed] = subs[lvl.key_subfunction] = where
            return subs
        plain = {
            0x10: (0x01, 0x02, 0x03),
            0x11: (0x01, 0x02, 0x03),
            0x19: (0x01, 0x02),
            0x28: (0x00, 0x01, 0x02, 0x03),
            0x31: (0x01,),
            0x3E: (0x00,),
            0x85: (0x01, 0x02),
        }[sid]
        return dict.fromkeys(plain, ALL_SESSIONS)

    def check(self, data: bytes) -> Callable[[bytes, Stack], bytes | None]:
        """The handler for `data` after the general checks, or Nrc in the ISO 14229-1 order."""
        sid = data[0]
        rule = SERVICES.get(sid)
        if rule is None or self._mode not in rule.sessions:
            raise Nrc(0x11)
        if self._session not in rule.sessions[self._mode]:
            raise Nrc(0x7F)
        if len(data) < rule.min_length:
            raise Nrc(0x13)
        if rule.subfunction:
            where = self._subfunctions(sid).get(data[1] & 0x7F)
            if where is None:
                raise Nrc(0x12)
            if self._session not in where:
                raise Nrc(0x7E)
        handler: Callable[[bytes, Stack], bytes | None] = getattr(self, rule.handler)
        return handler

    def _require_security(self) -> None:
        if self._unlocked != self._prog_level:
            raise Nrc(0x33)

    # -- sessions, reset, tester present, DTC setting, communication control ----------------
    def _session_response(self, session: int) -> bytes:
        p2 = self.options.p2_server_ms
        p2_star = self.options.p2_star_server_ms // 10
        return bytes([0x50, session]) + p2.to_bytes(2, "big") + p2_star.to_bytes(2, "big")

    def _svc_session(self, data: bytes, entry: Stack) -> bytes | None:
        if len(data) != 2:
            raise Nrc(0x13)
        target = data[1] & 0x7F
        if target == SESSION_PROGRAMMING:
            if self._session != SESSION_EXTENDED:
                raise Nrc(0x22)
            if self._mode == BOOTLOADER and self._prog_needs_level1 and self._unlocked == 0:
                raise Nrc(0x33)
            self._new_programming_run()
            if self._mode == APPLICATION:
                # EAs without an entry frame: the application jumps to the bootloader, which
                # answers from the programming session with security locked.
                self._finish(entry, data, self._session_response(target))
                self._enter(BOOTLOADER, SESSION_PROGRAMMING)
                return None
        elif (
            target == SESSION_EXTENDED
            and self._mode == BOOTLOADER
            and self._session == SESSION_PROGRAMMING
        ):
            raise Nrc(0x22)  # a bootloader does not step back from programming to extended
        if target != self._session:
            self._lock_security()
            self._download = None
            if target == SESSION_DEFAULT:
                self._comm_disabled = False
                self._dtc_setting_off = False
        self._session = target
        return self._session_response(target)

    def _new_programming_run(self) -> None:
        self._downloaded = []
        self._bytes_written = 0
        self._sector_erases = {}
        self._region_erases = {}

    def _svc_reset(self, data: bytes, entry: Stack) -> bytes | None:
        if len(data) != 2:
            raise Nrc(0x13)
        reset_type = data[1] & 0x7F
        # Silent from the response on: a request the tester sends the moment it has the answer
        # must already find the ECU rebooting (and be recorded), not slip in before.
        start, delay_ms = time.time(), self._reset_time_ms()
        self._go_silent(start + delay_ms / 1000.0)
        self._finish(entry, data, bytes([0x51, reset_type]))
        self._wait_sent(entry)  # the response leaves before the ECU goes silent
        log.info("%s: ECU reset 0x%02X", self.name, reset_type)
        self._reboot(delay_ms, since_wall=start)
        return None

    def _svc_tester_present(self, data: bytes, entry: Stack) -> bytes | None:
        del entry
        if len(data) != 2:
            raise Nrc(0x13)
        return bytes([0x7E, 0x00])

    def _svc_dtc_setting(self, data: bytes, entry: Stack) -> bytes | None:
        del entry
        setting = data[1] & 0x7F
        self._dtc_setting_off = setting == 0x02
        return bytes([0xC5, setting])

    def _svc_comm_control(self, data: bytes, entry: Stack) -> bytes | None:
        del entry
        if len(data) != 3:
            raise Nrc(0x13)
        control = data[1] & 0x7F
        if data[2] & 0x03 == 0:
            raise Nrc(0x31)
        self._comm_disabled = control in (0x01, 0x03)
        return bytes([0x68, control])

    # -- security access -------------------------------------------------------------------
    def _svc_security(self, data: bytes, entry: Stack) -> bytes | None:
        del entry
        sub = data[1] & 0x7F
        seed_sub = sub if sub % 2 else sub - 1
        level = self.ecu.uds.security_level(seed_sub)
        assert level is not None  # the table only lets configured levels through
        now = time.monotonic()
        if sub % 2:  # requestSeed
            if len(data) != 2:
                raise Nrc(0x13)
            if now < self._lockout_until:
                raise Nrc(0x37)
            if self._unlocked == seed_sub:
                return bytes([0x67, sub]) + bytes(self.options.seed_length)
            seed = b"\x00"
            while not any(seed):
                seed = os.urandom(self.options.seed_length)
            self._pending_seed = (seed_sub, seed)
            return bytes([0x67, sub]) + seed
        # sendKey
        if self._pending_seed is None or self._pending_seed[0] != seed_sub:
            self._violation(V_SEQUENCE, f"sendKey 0x{sub:02X} without a requestSeed before it")
            raise Nrc(0x24)
        if now < self._lockout_until:
            raise Nrc(0x37)
        seed = self._pending_seed[1]
        self._pending_seed = None
        try:
            ref = level.secret_ref or ""
            secret = demo_secret(ref) or self.options.secrets.get(ref)
            expected = compute_key(level.algorithm, seed, level.params, secret)
        except SecurityAccessError as exc:
            log.warning("%s: cannot compute the expected key: %s", self.name, exc)
            raise Nrc(0x22) from exc
        step = self._step_of(data)
        if step is not None and self._faults.take(step, "wrong_key_algorithm") is not None:
            expected = bytes(b ^ 0xFF for b in expected)
        if bytes(data[2:]) != expected:
            self._failed_attempts += 1
            if self._failed_attempts >= self.options.max_key_attempts:
                self._failed_attempts = 0
                self._lockout_until = now + self.options.lockout_s
                raise Nrc(0x36)
            raise Nrc(0x35)
        self._failed_attempts = 0
        self._unlocked = seed_sub
        return bytes([0x67, sub])

    # -- data identifiers, DTCs -----------------------------------------------------------
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
        if did == DID_ACTIVE_SESSION or did == self.ecu.uds.active_session_did:
            return bytes([self._session])
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
        raise Nrc(0x31)

    def _svc_read_did(self, data: bytes, entry: Stack) -> bytes | None:
        del entry
        if (len(data) - 1) % 2:
            raise Nrc(0x13)
        out = bytearray([0x62])
        for i in range(1, len(data), 2):
            did = int.from_bytes(data[i : i + 2], "big")
            out += did.to_bytes(2, "big") + self._did_value(did)
        return bytes(out)

    def _svc_read_dtc(self, data: bytes, entry: Stack) -> bytes | None:
        del entry
        if len(data) != 3:
            raise Nrc(0x13)
        sub, mask = data[1] & 0x7F, data[2]
        matching = [(d, s) for d, s in self._persist.dtcs if s & mask]
        if sub == 0x01:
            return bytes([0x59, 0x01, 0xFF, 0x01]) + len(matching).to_bytes(2, "big")
        out = bytearray([0x59, 0x02, 0xFF])
        for dtc, status in matching:
            out += (dtc & 0xFFFFFF).to_bytes(3, "big") + bytes([status & 0xFF])
        return bytes(out)

    def _svc_write_did(self, data: bytes, entry: Stack) -> bytes | None:
        del entry
        did = int.from_bytes(data[1:3], "big")
        if did != self._fingerprint_did:
            raise Nrc(0x31)
        self._require_security()
        record = bytes(data[3:])
        if self.options.strict and len(record) != self._fingerprint_length:
            self._violation(
                V_FINGERPRINT,
                f"fingerprint DID 0x{did:04X} written with {len(record)} bytes, the EA says "
                f"{self._fingerprint_length} (fingerprint step parameter 'length')",
            )
            raise Nrc(0x13)
        self._persist.fingerprint_hex = record.hex()
        self._save_state()
        return bytes([0x6E]) + data[1:3]

    # -- what the runtime provides ------------------------------------------------------------
    @abstractmethod
    def _finish(self, entry: Stack, data: bytes, response: bytes | None) -> None:
        """Send `response` to `data` unless suppressed (SPR bit)."""

    @abstractmethod
    def _wait_sent(self, entry: Stack) -> None:
        """Return when the stack has sent everything queued (bounded)."""

    @abstractmethod
    def _enter(self, mode: str, session: int) -> None:
        """Switch mode now (a jump or the end of a boot)."""

    @abstractmethod
    def _reboot(
        self,
        delay_ms: int,
        target: tuple[str, int] | None = None,
        *,
        since_wall: float | None = None,
    ) -> None:
        """Go silent for `delay_ms` (from `since_wall`), then run `target` (default:
        the application if valid)."""

    @abstractmethod
    def _go_silent(self, until_wall: float) -> None:
        """Ignore every frame stamped before `until_wall` (time.time clock)."""

    @abstractmethod
    def _reset_time_ms(self) -> int:
        """How long an ECUReset keeps the ECU silent."""

    @abstractmethod
    def _save_state(self) -> None:
        """Persist mode, app validity, fingerprint, DTCs."""

    @abstractmethod
    def _software_version(self) -> str:
        """The version the application header (or the option) names."""

    @abstractmethod
    def _lock_security(self) -> None:
        """Lock security access and forget a pending seed."""

    @abstractmethod
    def _progress_erase(self, now: float) -> None:
        """Erase the sectors due by `now`; answer 0x78 / the final response."""

    @abstractmethod
    def _respond(self, stack: isotp.TransportLayer, payload: bytes, functional: bool) -> None:
        """Send `payload` on `stack` (NRCs a functional request must not get are dropped)."""

    @abstractmethod
    def _nrc_bytes(self, sid: int, code: int) -> bytes:
        """The negative response `7F sid code`."""

    @abstractmethod
    def _owe_busy(self, entry: Stack, request: bytes, response: bytes, delay_ms: float) -> None:
        """Answer `response` after `delay_ms` (0x78 first when beyond P2), busy meanwhile."""

    @abstractmethod
    def _violation(self, kind: str, detail: str) -> None:
        """Record a protocol violation (strict mode)."""

    @abstractmethod
    def _step_of(self, data: bytes) -> str | None:
        """The reprogramming step a request belongs to (fault matching)."""


__all__ = [
    "ALL_SESSIONS",
    "NON_DEFAULT",
    "PROGRAMMING",
    "SERVICES",
    "SPR_SERVICES",
    "ServiceRule",
    "UdsServices",
    "level1_before_programming",
    "routine_response",
]
