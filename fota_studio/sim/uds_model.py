"""The vocabulary of the simulated UDS ECU: modes, sessions, options, snapshot, violations.

Shared by the ECU runtime (`uds_ecu.py`: stacks, threads, reboot) and its service handlers
(`uds_services.py`: the table-driven ISO 14229-1 checks), so neither imports the other's
internals. Plain data: any thread may read a `SimEcuSnapshot` or a `Violation`; a
`SimEcuOptions` is set up before the ECU starts (the runtime reads it on its worker thread).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import isotp

from fota_studio.core import reference_ecu
from fota_studio.core.compression import Decompressor
from fota_studio.protocols.isotp_link import DirectNotifierStack

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
#: ISO 14229-1 Annex C: ActiveDiagnosticSessionDataIdentifier, one byte (the session).
DID_ACTIVE_SESSION = 0xF186
#: The "check programming preconditions" routine most bootloader specifications use.
ROUTINE_CHECK_PRECONDITIONS = 0x0203

#: Violation kinds (what a strict ECU in the field logs against the tester).
V_DURING_REBOOT = "request_during_reboot"
V_OUTSTANDING = "two_requests_outstanding"
V_SEQUENCE = "request_sequence"
V_TRANSFER_SEQUENCE = "transfer_data_out_of_sequence"
V_FINGERPRINT = "fingerprint_length"
V_REERASE = "sector_erased_twice"
V_PROTECTED = "erase_into_protected_range"
V_S3 = "s3_expired_while_programming"

#: Values of `SimEcuOptions.reerase`.
REERASE_CHOICES = ("allow", "record", "refuse")


@dataclass
class SimEcuOptions:
    """Simulator knobs that are not part of the EA (timings, identities, values, limits).

    `boot_time_ms` / `reset_time_ms` None: the EA's documented times (the bootloader entry
    delay, `uds.timing.reset_time_ms`); the ECU is then up `BOOT_MARGIN_MS` before the
    documented time ends, as a real ECU within its specification. `strict` records every
    protocol violation (`SimEcu.violations`) and enforces the EA's fingerprint length;
    `reerase` says what erasing a sector a second time in one programming session does
    ("allow", "record" as a violation, "refuse" with NRC 0x22 and record). `s3_during_pending`:
    True = the S3 timer keeps running while the ECU answers 0x78 (field ECUs; the tester must
    send TesterPresent), False = S3 restarts after the final response (ISO 14229-2).
    """

    boot_time_ms: int | None = None  # entry frame -> bootloader running
    reset_time_ms: int | None = None  # ECUReset -> running again
    strict: bool = True
    reerase: str = "record"
    s3_during_pending: bool = True
    seed_length: int = 4  # 2 or 4
    max_key_attempts: int = 3  # the Nth wrong key answers 0x36 and starts the lockout
    lockout_s: float = 10.0  # requiredTimeDelay after too many wrong keys
    erase_ms_per_kib: float = 2.0
    erase_ms_per_sector: float = 0.0  # added to the per-KiB time (flash with slow sectors)
    erase_min_ms: int = 50
    programming_ms_per_kib: float = 0.0  # TransferData answer delay (0x78 when beyond P2)
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
    precondition_status: int = 0x00  # status byte of the check-preconditions routine
    precondition_reason: str = ""  # ASCII text after a non-zero status (why not)
    did_values: dict[int, bytes] = field(default_factory=dict)  # any other DID
    # secret_ref -> the seed/key secret programmed into this ECU (the demo's published ones are
    # known without it; core.seedkey.DEMO_SECRETS)
    secrets: dict[str, bytes] = field(default_factory=dict)
    dtcs: list[tuple[int, int]] = field(default_factory=list)  # initial (DTC, status)
    protected: list[tuple[int, int]] = field(
        default_factory=lambda: [(reference_ecu.BOOTLOADER_START, reference_ecu.BOOTLOADER_LENGTH)]
    )


#: The simulated ECU answers this much before its documented boot/reset time ends.
BOOT_MARGIN_MS = 5


@dataclass(frozen=True)
class Violation:
    """One protocol violation the strict simulated ECU logged against the tester."""

    at_s: float  # seconds since the simulator started
    kind: str  # one of the V_* constants
    detail: str  # what arrived, in which state, what the tester should have done

    def __str__(self) -> str:
        """`+1.234 s kind: detail`."""
        return f"+{self.at_s:.3f} s {self.kind}: {self.detail}"


class ViolationLog:
    """The bounded, thread-safe list of violations one ECU recorded (any thread)."""

    #: At most this many are kept (a runaway tester must not eat the memory).
    LIMIT = 1000

    def __init__(self) -> None:
        """Empty; times count from now."""
        self._lock = threading.Lock()
        self._items: list[Violation] = []
        self._started = time.monotonic()

    def record(self, kind: str, detail: str) -> Violation:
        """Append (unless full) and return the violation."""
        item = Violation(at_s=time.monotonic() - self._started, kind=kind, detail=detail)
        with self._lock:
            if len(self._items) < self.LIMIT:
                self._items.append(item)
        return item

    def items(self) -> list[Violation]:
        """The violations so far, oldest first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every violation."""
        with self._lock:
            self._items.clear()


@dataclass(frozen=True)
class SimEcuSnapshot:
    """A point-in-time view of a simulated ECU for tests, the CLI and the engineering panel.

    `region_erases` / `sector_erases`: erase routine runs per memory region and erasures per
    sector start address in the current (or last) programming session. `nrcs_sent`: negative
    responses sent since the simulator started, per code.
    """

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
    violations: tuple[Violation, ...] = ()
    region_erases: tuple[tuple[str, int], ...] = ()
    sector_erases: tuple[tuple[int, int], ...] = ()
    nrcs_sent: tuple[tuple[int, int], ...] = ()  # (NRC, times sent), 0x78 not counted


class Nrc(Exception):
    """Raised by a service handler to answer with a negative response."""

    def __init__(self, code: int) -> None:
        """Answer NRC `code`."""
        self.code = code
        super().__init__(f"NRC 0x{code:02X}")


@dataclass
class Download:
    """The RequestDownload in progress."""

    address: int
    size: int
    written: int = 0
    counter: int = 0  # last accepted block sequence counter (0 = none yet, first must be 1)
    blocks: int = 0
    #: Streaming decoder of a compressed download (dataFormatIdentifier high nibble); None =
    #: the blocks are the bytes themselves.
    decompressor: Decompressor | None = None


@dataclass
class Erase:
    """An erase running in the background of the worker loop, answered when done."""

    stack: isotp.TransportLayer
    sectors: list[tuple[int, int]]
    done_at: float
    started_at: float
    next_pending_at: float
    erased: int = 0
    fail: bool = False


@dataclass
class Stack:
    """One ISO-TP stack of the ECU: which mode serves it, physical or functional."""

    stack: DirectNotifierStack
    mode: str
    functional: bool


@dataclass
class Owed:
    """A response the ECU still owes: sent at `due` (monotonic), 0x78 every `pending_s` before.

    `blocking`: the ECU is busy meanwhile (answers 0x21 to anything but TesterPresent), as
    while programming; a fault's late answer is not blocking.
    """

    entry: Stack
    request: bytes
    response: bytes
    due: float
    pending_s: float | None = None
    next_pending: float = 0.0
    blocking: bool = False
