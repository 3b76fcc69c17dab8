"""Electronic Architecture (EA) model: machine types, their ECUs, CAN addressing and UDS profiles.

An EA describes one machine type: which ECUs it has, how to reach each one on CAN in application
AND bootloader mode, how its bootloader wants to be programmed (the UDS profile and the
reprogramming sequence as data), and which Software Repository (Brand/Model) fits it. Everything
the flashing engine and the simulator need comes from here; nothing is hard-coded elsewhere.

Every field has a sensible default, so a new ECU needs only its IDs and Brand/Model. The classes
are plain mutable dataclasses (the editor edits copies of them); `copy.deepcopy` clones one.
Pure data, no I/O: safe from any thread. Validation lives in `ea_validate`, the file format in
`ea_format`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

EA_SCHEMA_VERSION = 1


class AddressingMode(enum.StrEnum):
    """ISO 15765-2 addressing modes (§10.3)."""

    NORMAL = "normal"
    NORMAL_FIXED = "normal_fixed"
    EXTENDED = "extended"
    MIXED = "mixed"


class StepKind(enum.StrEnum):
    """The steps of the reprogramming sequence (domain file, table of 14 steps)."""

    EXTENDED_SESSION = "extended_session"  # 10 03
    DTC_OFF = "dtc_off"  # 85 02
    COMM_CONTROL_OFF = "comm_control_off"  # 28 03 01 (functional)
    SECURITY_LEVEL_1 = "security_level_1"  # 27 01 / 27 02
    PROGRAMMING_SESSION = "programming_session"  # 10 02
    SECURITY_LEVEL_2 = "security_level_2"  # 27 03 / 27 04
    FINGERPRINT = "fingerprint"  # 2E F1 5A
    ERASE = "erase"  # 31 01 FF 00
    REQUEST_DOWNLOAD = "request_download"  # 34
    TRANSFER_DATA = "transfer_data"  # 36
    TRANSFER_EXIT = "transfer_exit"  # 37
    CHECK = "check"  # 31 01 FF 01
    RESET = "reset"  # 11 01
    READ_VERSION = "read_version"  # 22 F1 95


#: The erase routine's option record formats the sequence understands.
ERASE_RECORD_FORMATS = ("address_length", "none", "segment_index")
#: Checksum kinds the check routine may carry.
CHECKSUM_KINDS = ("crc32", "crc16_ccitt", "sha256", "none")
#: Fingerprint record formats: date_tester = 3 BCD date bytes (YYMMDD) + the tester name;
#: ascii = `data` as text; raw = `data` as hex bytes. Every format is padded with 0x00 /
#: truncated to the step's `length`.
FINGERPRINT_FORMATS = ("date_tester", "ascii", "raw")
#: How the erase step covers the image (UdsProfile.erase_policy): per_region = one erase of the
#: sector-aligned union of the image inside each memory region; per_segment = one erase per image
#: segment (never a sector twice); whole_region = each touched region erased whole.
ERASE_POLICIES = ("per_region", "per_segment", "whole_region")
#: Codecs a compressed download may use (UdsProfile.compression.codec): zlib = deflate in a
#: zlib stream (RFC 1950), lzma = an .xz stream, lz4 = an LZ4 frame (the `lz4` package).
COMPRESSION_CODECS = ("zlib", "lzma", "lz4")
#: Record layouts of the sector-checksum routine (UdsProfile.sector_checksum.record):
#: address_length = ALFID + address + size in the request, the checksums (one per sector, in
#: address order) after the status byte in the answer.
SECTOR_CHECKSUM_RECORDS = ("address_length",)

#: Kinds of step parameter (StepParam.type): byte 0..0xFF and word 0..0xFFFF (hex in the file),
#: int a whole number and number a decimal within [minimum, maximum], bool, choice one of
#: `choices`, text any string.
STEP_PARAM_TYPES = ("byte", "word", "int", "number", "bool", "choice", "text")


class StepParam(NamedTuple):
    """One parameter of a sequence step: type, allowed values, default and meaning.

    `STEP_PARAMS` is the one table the engine's defaults, `ea validate`, the JSON schema, the EA
    panel and the manual are built from, so a key is accepted everywhere or nowhere. (A schema
    entry, not an EA field: a NamedTuple, so the manual's field reference skips it.)
    """

    key: str
    type: str
    default: Any
    meaning: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def low(self) -> float | None:
        """The smallest allowed value (byte/word: 0), None when unbounded or not numeric."""
        if self.type in ("byte", "word"):
            return 0
        return self.minimum

    @property
    def high(self) -> float | None:
        """The largest allowed value (byte 0xFF, word 0xFFFF), None when unbounded."""
        if self.type == "byte":
            return 0xFF
        if self.type == "word":
            return 0xFFFF
        return self.maximum


def _sp(key: str, type_: str, default: Any, meaning: str, **kw: Any) -> StepParam:
    return StepParam(key, type_, default, meaning, **kw)


#: The parameter schema of every step kind (see StepParam).
STEP_PARAMS: dict[StepKind, tuple[StepParam, ...]] = {
    StepKind.EXTENDED_SESSION: (
        _sp("session", "byte", 0x03, "DiagnosticSessionControl sub-function (10 xx)"),
    ),
    StepKind.DTC_OFF: (
        _sp("setting_type", "byte", 0x02, "ControlDTCSetting type (85 xx; 0x02 = off)"),
        _sp("suppress_response", "bool", False, "set the suppressPosRspMsg bit (no answer)"),
    ),
    StepKind.COMM_CONTROL_OFF: (
        _sp("control_type", "byte", 0x03, "CommunicationControl type (28 xx)"),
        _sp("communication_type", "byte", 0x01, "communicationType byte (0x01 = normal msgs)"),
        _sp("functional", "bool", True, "send to the functional ID (all ECUs of the bus)"),
        _sp("suppress_response", "bool", False, "set the suppressPosRspMsg bit (no answer)"),
    ),
    StepKind.SECURITY_LEVEL_1: (
        _sp("level", "byte", 0x01, "requestSeed sub-function; one of security_levels"),
    ),
    StepKind.PROGRAMMING_SESSION: (
        _sp("session", "byte", 0x02, "DiagnosticSessionControl sub-function (10 xx)"),
    ),
    StepKind.SECURITY_LEVEL_2: (
        _sp("level", "byte", 0x03, "requestSeed sub-function; one of security_levels"),
    ),
    StepKind.FINGERPRINT: (
        _sp("did", "word", 0xF15A, "DID written with WriteDataByIdentifier (2E)"),
        _sp(
            "format",
            "choice",
            "date_tester",
            "date_tester: 3 BCD date bytes + tester name; ascii: data as text; raw: data as hex",
            choices=FINGERPRINT_FORMATS,
        ),
        _sp(
            "length",
            "int",
            19,
            "bytes written; the record is padded with 0x00 or truncated to it",
            minimum=1,
            maximum=4093,
        ),
        _sp("data", "text", "", "ascii: the text; raw: hex bytes like 'A1 B2'; else unused"),
    ),
    StepKind.ERASE: (
        _sp("routine_id", "word", 0xFF00, "RoutineControl ID of the erase routine (31 01 xx xx)"),
        _sp(
            "record",
            "choice",
            "address_length",
            "the routine's option record: address + length (ALFID sizes), none, or the "
            "segment index byte",
            choices=ERASE_RECORD_FORMATS,
        ),
    ),
    StepKind.REQUEST_DOWNLOAD: (),
    StepKind.TRANSFER_DATA: (
        _sp(
            "max_retries",
            "int",
            3,
            "times one block is sent again after a lost answer",
            minimum=0,
            maximum=100,
        ),
    ),
    StepKind.TRANSFER_EXIT: (),
    StepKind.CHECK: (
        _sp("routine_id", "word", 0xFF01, "RoutineControl ID of the check routine"),
        _sp(
            "checksum",
            "choice",
            "crc32",
            "checksum of the image the routine's record carries",
            choices=CHECKSUM_KINDS,
        ),
    ),
    StepKind.RESET: (_sp("reset_type", "byte", 0x01, "ECUReset type (11 xx; 0x01 = hard)"),),
    StepKind.READ_VERSION: (
        _sp("did", "word", 0xF195, "DID of the running software version (22 xx xx)"),
        _sp(
            "boot_wait_s",
            "number",
            5.0,
            "deprecated, ignored (older EA files still load): the application's start time "
            "after the reset is timing.application_start_timeout_s",
            minimum=0.0,
            maximum=600.0,
        ),
    ),
}

#: Default parameters per step kind, from `STEP_PARAMS`. Keys are the contract between the EA
#: file, the editor, the flash job and the simulator; validation rejects unknown keys.
DEFAULT_STEP_PARAMS: dict[StepKind, dict[str, Any]] = {
    kind: {p.key: p.default for p in params} for kind, params in STEP_PARAMS.items()
}


def step_param(kind: StepKind, key: str) -> StepParam | None:
    """The schema of one step parameter, None when the step has no such key."""
    for p in STEP_PARAMS[kind]:
        if p.key == key:
            return p
    return None


def default_sequence() -> list[SequenceStep]:
    """Return the 14 default reprogramming steps of the domain file, all enabled."""
    return [
        SequenceStep(kind=k, enabled=True, params=dict(DEFAULT_STEP_PARAMS[k])) for k in StepKind
    ]


@dataclass
class SequenceStep:
    """One step of the reprogramming sequence; `params` keys per `DEFAULT_STEP_PARAMS`."""

    kind: StepKind
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, key: str) -> Any:
        """Return a parameter, falling back to the step kind's default."""
        if key in self.params:
            return self.params[key]
        return DEFAULT_STEP_PARAMS[self.kind][key]


@dataclass
class IsoTpAddress:
    """A physical request/response CAN ID pair plus the address bytes some modes need.

    normal: only the IDs. normal_fixed (29-bit): IDs 0x18DA<TA><SA>, `target_address` and
    `source_address` name the ECU and the tester. extended: `target_address` is the first data
    byte of each request frame (and `source_address` of each response). mixed: `address_extension`
    is the first data byte in both directions.
    """

    request_id: int
    response_id: int
    target_address: int | None = None
    source_address: int | None = None
    address_extension: int | None = None


@dataclass
class BootloaderEntryFrame:
    """A raw CAN frame that makes the application jump to its bootloader (optional)."""

    can_id: int
    data: bytes = b""
    extended_id: bool = False


@dataclass
class Connection:
    """How to reach one ECU on CAN, in application and in bootloader mode."""

    application: IsoTpAddress
    bootloader: IsoTpAddress
    channel: str = "CAN1"
    bitrate_bps: int = 500_000
    fd: bool = False
    data_bitrate_bps: int = 2_000_000
    id_bits: int = 11
    addressing: AddressingMode = AddressingMode.NORMAL
    functional_id: int = 0x7DF
    padding_byte: int | None = 0xAA
    block_size: int = 8
    stmin_ms: int = 0
    fd_frame_length: int = 64
    bootloader_entry: BootloaderEntryFrame | None = None
    bootloader_entry_delay_ms: int = 500
    heartbeat_id: int | None = None
    #: Extended/mixed addressing: the address byte of FUNCTIONAL requests (extended: the target
    #: address byte, e.g. 0xDF; mixed: the functional address extension). None = not set (the
    #: validator warns; the physical address byte is used).
    functional_target_address: int | None = None


@dataclass
class SecurityLevel:
    """One SecurityAccess level: seed sub-function (odd), key = seed + 1, and the algorithm.

    `secret_ref` names a secret in the OS keyring; the secret itself is never stored here.
    """

    name: str
    seed_subfunction: int
    algorithm: str = "xor32"
    params: dict[str, Any] = field(default_factory=dict)
    secret_ref: str | None = None

    @property
    def key_subfunction(self) -> int:
        """The sendKey sub-function (ISO 14229-1 §10.4: requestSeed + 1)."""
        return self.seed_subfunction + 1


@dataclass
class MemoryRegion:
    """A writable flash region; every image segment must lie inside one of them."""

    name: str
    start: int
    length: int
    erase_sector_bytes: int = 0x1000

    @property
    def end(self) -> int:
        """One past the last address of the region."""
        return self.start + self.length


@dataclass
class DidDefinition:
    """A data identifier the tester reads, with how to show its value."""

    did: int
    name: str
    codec: str = "ascii"  # ascii | hex | uint
    length: int | None = None


@dataclass
class Precondition:
    """A check before anything is erased: read a DID, scale it, compare to limits.

    When the application cannot be asked, a precondition FAILS the flash unless `skippable` is
    set with a `skip_reason` (shown in the record and the panel).
    """

    name: str
    did: int
    length: int = 2
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    skippable: bool = False
    skip_reason: str = ""

    def evaluate(self, raw: bytes) -> tuple[bool, float]:
        """Return (passes, physical value) for the raw DID bytes (big-endian unsigned)."""
        value = int.from_bytes(raw[: self.length], "big") * self.scale + self.offset
        ok = (self.minimum is None or value >= self.minimum) and (
            self.maximum is None or value <= self.maximum
        )
        return ok, value


@dataclass
class RoutinePrecondition:
    """A "check programming preconditions" routine (RoutineControl 31 01 <id> [record]).

    The response's first status byte must equal `expected_status` (None = any positive answer).
    Like `Precondition`, it fails the flash when it cannot be run unless `skippable`.
    """

    name: str
    routine_id: int = 0x0203
    record: bytes = b""
    expected_status: int | None = 0x00
    skippable: bool = False
    skip_reason: str = ""


@dataclass
class ProtectedRange:
    """An address range the erase must never touch (e.g. the bootloader itself)."""

    name: str
    start: int
    length: int

    @property
    def end(self) -> int:
        """One past the last address of the range."""
        return self.start + self.length


@dataclass
class EcuTiming:
    """Timing facts of one ECU (from its supplier's bootloader specification).

    Reset/entry: after the positive ECUReset response the tester stays silent `reset_time_ms`
    (after the bootloader entry frame: `Connection.bootloader_entry_delay_ms`), then probes
    until the ECU answers: the bootloader within `bootloader_ready_timeout_ms`, the application
    within `application_start_timeout_s`. Estimates: erase time per KiB or per sector,
    programming time per KiB, and the ECU's own block length / STmin / BS when known (None =
    unknown, the estimate falls back to the wire time).
    """

    reset_time_ms: int = 500
    application_start_timeout_s: float = 10.0
    bootloader_ready_timeout_ms: int = 3000
    erase_ms_per_kib: float = 0.0
    erase_ms_per_sector: float = 0.0
    programming_ms_per_kib: float = 0.0
    ecu_max_block_length: int | None = None
    ecu_stmin_ms: int | None = None
    ecu_block_size: int | None = None


@dataclass
class CompressionSettings:
    """A compressed download (ISO 14229-1 §14.2: the high nibble of dataFormatIdentifier).

    The method ID (1..15) is OEM-defined; the bootloader specification says which codec it
    means. memorySize in RequestDownload stays the uncompressed size; the ECU decompresses.
    """

    method_id: int = 1
    codec: str = "zlib"


@dataclass
class SectorChecksum:
    """The bootloader's "checksum per sector" routine (OEM-specific RoutineControl).

    31 01 <routine_id> <ALFID address size> is answered 71 01 <routine_id> <status 00>
    <one `checksum` per `sector_bytes` sector of the range, in address order>. With it the
    engine writes only the sectors whose checksum differs from the image (delta, resume).
    """

    routine_id: int = 0xFF02
    record: str = "address_length"
    sector_bytes: int = 0x1000
    checksum: str = "crc32"


@dataclass
class HealthChecks:
    """Checkpoint 2 health checks run after the reset."""

    check_version: bool = True
    version_did: int = 0xF195
    check_no_active_dtcs: bool = True
    dtc_status_mask: int = 0x09  # testFailed | confirmedDTC
    check_heartbeat: bool = True
    heartbeat_within_s: float = 5.0


@dataclass
class UdsProfile:
    """Tester-side UDS parameters for one ECU (ISO 14229-2 timing, sessions, security, ...)."""

    p2_timeout_ms: int = 1000
    p2_star_timeout_ms: int = 5000
    s3_ms: int = 5000
    tester_present_period_ms: int = 2000
    default_session: int = 0x01
    extended_session: int = 0x03
    programming_session: int = 0x02
    security_levels: list[SecurityLevel] = field(
        default_factory=lambda: [
            SecurityLevel(name="extended", seed_subfunction=0x01),
            SecurityLevel(name="programming", seed_subfunction=0x03),
        ]
    )
    sequence: list[SequenceStep] = field(default_factory=default_sequence)
    address_and_length_format: int = 0x44
    data_format: int = 0x00
    memory_regions: list[MemoryRegion] = field(
        default_factory=lambda: [
            MemoryRegion(name="application", start=0x0001_0000, length=0x000F_0000)
        ]
    )
    dids: list[DidDefinition] = field(
        default_factory=lambda: [
            DidDefinition(did=0xF190, name="VIN", codec="ascii"),
            DidDefinition(did=0xF195, name="Software version", codec="ascii"),
            DidDefinition(did=0xF18C, name="ECU serial number", codec="ascii"),
        ]
    )
    preconditions: list[Precondition] = field(default_factory=list)
    routine_preconditions: list[RoutinePrecondition] = field(default_factory=list)
    health: HealthChecks = field(default_factory=HealthChecks)
    timing: EcuTiming = field(default_factory=EcuTiming)
    #: One of ERASE_POLICIES.
    erase_policy: str = "per_region"
    protected_ranges: list[ProtectedRange] = field(default_factory=list)
    #: DID of the active diagnostic session (ISO 14229-1 0xF186) to learn the session before
    #: the sequence starts; None = send DiagnosticSessionControl default (10 01) first.
    active_session_did: int | None = None
    #: Compressed download (method ID + codec); None = data sent as is (dataFormat 0x00).
    compression: CompressionSettings | None = None
    #: The bootloader's sector-checksum routine; None = every flash writes the whole image.
    sector_checksum: SectorChecksum | None = None

    def step(self, kind: StepKind) -> SequenceStep | None:
        """Return the enabled step of that kind, or None when absent/disabled."""
        for s in self.sequence:
            if s.kind == kind and s.enabled:
                return s
        return None

    def security_level(self, seed_subfunction: int) -> SecurityLevel | None:
        """Return the security level with this requestSeed sub-function."""
        for lvl in self.security_levels:
            if lvl.seed_subfunction == seed_subfunction:
                return lvl
        return None


@dataclass
class EcuDefinition:
    """One ECU of a machine type: identity, repository link, connection and UDS profile."""

    name: str
    brand: str
    model: str
    connection: Connection
    role: str = ""
    hardware_version: str = ""
    notes: str = ""
    uds: UdsProfile = field(default_factory=UdsProfile)
    #: Names of ECUs of the same EA that a machine-level flash must finish before this one.
    after: list[str] = field(default_factory=list)


@dataclass
class ElectronicArchitecture:
    """The reference ECU topology of one machine type."""

    name: str
    description: str = ""
    machine_model: str = ""
    ecus: list[EcuDefinition] = field(default_factory=list)
    schema_version: int = EA_SCHEMA_VERSION

    def ecu(self, name: str) -> EcuDefinition:
        """Return the ECU with this name; KeyError names the EA and the known ECUs."""
        for e in self.ecus:
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.ecus) or "none"
        raise KeyError(f'EA "{self.name}" has no ECU "{name}" (known: {known})')


@dataclass
class VersionChange:
    """One entry of a machine ECU's installed-version history."""

    ecu: str
    version: str | None
    at: str  # ISO 8601 UTC
    source: str = ""  # e.g. "update request 12", "manual"


@dataclass
class Machine:
    """A physical (or simulated) machine assigned to an EA, with installed versions."""

    serial: str
    ea_name: str | None = None
    name: str = ""
    installed: dict[str, str | None] = field(default_factory=dict)
    history: list[VersionChange] = field(default_factory=list)


def normal_fixed_ids(target_address: int, source_address: int) -> tuple[int, int]:
    """Return (request, response) 29-bit IDs of ISO 15765-2 normal-fixed physical addressing."""
    request = 0x18DA0000 | (target_address << 8) | source_address
    response = 0x18DA0000 | (source_address << 8) | target_address
    return request, response


def make_ecu(
    name: str,
    brand: str,
    model: str,
    *,
    app_ids: tuple[int, int],
    boot_ids: tuple[int, int] | None = None,
    **connection: Any,
) -> EcuDefinition:
    """Build an ECU with every default, from its name, Brand/Model and IDs (convenience)."""
    app = IsoTpAddress(*app_ids)
    boot = IsoTpAddress(*(boot_ids or app_ids))
    return EcuDefinition(
        name=name,
        brand=brand,
        model=model,
        connection=Connection(application=app, bootloader=boot, **connection),
    )


def default_ecu(name: str = "ECU1", brand: str = "", model: str = "") -> EcuDefinition:
    """The template ECU of the editor: every default, OBD-style IDs 0x7E0/0x7E8 on "CAN1"."""
    return make_ecu(name, brand, model, app_ids=(0x7E0, 0x7E8))


def new_architecture(name: str, *, with_template_ecu: bool = True) -> ElectronicArchitecture:
    """A new EA called `name`, holding the template ECU unless `with_template_ecu` is False."""
    return ElectronicArchitecture(name=name, ecus=[default_ecu()] if with_template_ecu else [])
