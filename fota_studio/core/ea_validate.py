"""Validation of an Electronic Architecture: one `validate()` that returns every problem.

Each `Problem` has the file path of the field (`ecus[1].bootloader.request_id`, the same paths
as the YAML file and `ea_format.get_path`), a plain message and a severity. Errors block saving,
importing and flashing; warnings (e.g. no Software Repository for a Brand/Model yet) do not.
`check_image_fits` checks a firmware image's segments against an ECU's writable regions when an
update is planned.

Pure functions over the model: safe from any thread.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from fota_studio.core.ea import (
    CHECKSUM_KINDS,
    DEFAULT_STEP_PARAMS,
    ERASE_RECORD_FORMATS,
    FINGERPRINT_FORMATS,
    AddressingMode,
    EcuDefinition,
    ElectronicArchitecture,
    StepKind,
    normal_fixed_ids,
)

MAX_11BIT_ID = 0x7FF
MAX_29BIT_ID = 0x1FFF_FFFF
FD_FRAME_LENGTHS = (8, 12, 16, 20, 24, 32, 48, 64)
#: ISO 15765-2 STmin: 0..127 ms (the µs codes 0xF1..0xF9 are not offered by this field).
MAX_STMIN_MS = 127
#: Step parameters that are one byte / two bytes on the wire.
BYTE_STEP_PARAMS = ("session", "setting_type", "control_type", "communication_type", "level")
WORD_STEP_PARAMS = ("did", "routine_id")
STEP_PARAM_CHOICES: dict[str, tuple[str, ...]] = {
    "record": ERASE_RECORD_FORMATS,
    "checksum": CHECKSUM_KINDS,
    "format": FINGERPRINT_FORMATS,
}
DID_CODECS = ("ascii", "hex", "uint")
SECURITY_STEPS = (StepKind.SECURITY_LEVEL_1, StepKind.SECURITY_LEVEL_2)


class Severity(enum.StrEnum):
    """How bad a problem is: errors block save/import/flash, warnings are shown only."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One validation finding at a field path."""

    path: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        tag = "" if self.severity is Severity.ERROR else "warning: "
        return f"{tag}{self.path}: {self.message}"


#: Either a predicate `(brand, model) -> bool` or a collection of known (brand, model) pairs.
KnownRepositories = Callable[[str, str], bool] | Collection[tuple[str, str]]


def has_errors(problems: Sequence[Problem]) -> bool:
    """True when any problem has ERROR severity."""
    return any(p.severity is Severity.ERROR for p in problems)


def _h(value: int) -> str:
    return f"0x{value:X}"


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, Severity.WARNING))

    def byte(self, path: str, value: Any, *, optional: bool = False) -> None:
        """Check a 0..255 value."""
        if value is None and optional:
            return
        if not _is_int(value) or not 0 <= value <= 0xFF:
            self.error(path, f"{value!r} is not a byte value (0..255 / 0x00..0xFF)")

    def int_range(self, path: str, value: Any, low: int, high: int, what: str = "") -> None:
        """Check an integer within [low, high]."""
        if not _is_int(value) or not low <= value <= high:
            self.error(path, f"{value!r} is out of range {low}..{high}{what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(
    ea: ElectronicArchitecture, known_repositories: KnownRepositories | None = None
) -> list[Problem]:
    """Return every problem of the EA (empty list: valid). Never raises for bad content.

    `known_repositories` (optional) says which Brand/Model pairs have a Software Repository; an
    ECU without one gets a WARNING.
    """
    c = _Collector()
    if not ea.name.strip():
        c.error("name", "the EA needs a name")
    if not ea.ecus:
        c.warn("ecus", "the EA has no ECUs")
    seen_names: dict[str, int] = {}
    for i, ecu in enumerate(ea.ecus):
        p = f"ecus[{i}]"
        if not ecu.name.strip():
            c.error(f"{p}.name", "the ECU needs a name")
        elif ecu.name in seen_names:
            c.error(f"{p}.name", f'"{ecu.name}" is also the name of ecus[{seen_names[ecu.name]}]')
        else:
            seen_names[ecu.name] = i
        for key in ("brand", "model"):
            if not str(getattr(ecu, key)).strip():
                c.error(f"{p}.{key}", f"the ECU needs a {key} (it selects the Software Repository)")
        if known_repositories is not None and ecu.brand.strip() and ecu.model.strip():
            known = (
                known_repositories(ecu.brand, ecu.model)
                if callable(known_repositories)
                else (ecu.brand, ecu.model) in known_repositories
            )
            if not known:
                c.warn(
                    f"{p}.model",
                    f'no Software Repository for "{ecu.brand} / {ecu.model}" yet; '
                    "import firmware for it before planning updates",
                )
        _check_connection(c, p, ecu)
        _check_uds(c, p, ecu)
    _check_id_clashes(c, ea)
    return c.problems


# -- connection ------------------------------------------------------------------------------


def _check_id(c: _Collector, path: str, can_id: Any, extended: bool) -> None:
    limit = MAX_29BIT_ID if extended else MAX_11BIT_ID
    if not _is_int(can_id) or can_id < 0:
        c.error(path, f"{can_id!r} is not a CAN ID")
    elif can_id > limit:
        bits = "29-bit" if extended else "11-bit"
        c.error(path, f"{_h(can_id)} is larger than the largest {bits} ID {_h(limit)}")


def _check_connection(c: _Collector, p: str, ecu: EcuDefinition) -> None:
    con = ecu.connection
    if not con.channel.strip():
        c.error(f"{p}.channel", "the logical CAN channel name is empty")
    if not _is_int(con.bitrate_bps) or con.bitrate_bps <= 0:
        c.error(f"{p}.bitrate_bps", f"{con.bitrate_bps!r} is not a positive bitrate")
    if con.fd:
        if not _is_int(con.data_bitrate_bps) or con.data_bitrate_bps <= 0:
            c.error(f"{p}.data_bitrate_bps", f"{con.data_bitrate_bps!r} is not a positive bitrate")
        elif con.data_bitrate_bps < con.bitrate_bps:
            c.error(
                f"{p}.data_bitrate_bps",
                f"the CAN FD data bitrate {con.data_bitrate_bps} is below the nominal "
                f"bitrate {con.bitrate_bps}",
            )
    if con.fd_frame_length not in FD_FRAME_LENGTHS:
        c.error(
            f"{p}.fd_frame_length",
            f"{con.fd_frame_length!r} is not a CAN FD frame length "
            f"({', '.join(map(str, FD_FRAME_LENGTHS))})",
        )
    if con.id_bits not in (11, 29):
        c.error(f"{p}.id_bits", f"{con.id_bits!r} must be 11 or 29")
    extended = con.id_bits == 29
    for side in ("application", "bootloader"):
        addr = getattr(con, side)
        _check_id(c, f"{p}.{side}.request_id", addr.request_id, extended)
        _check_id(c, f"{p}.{side}.response_id", addr.response_id, extended)
        for key in ("target_address", "source_address", "address_extension"):
            c.byte(f"{p}.{side}.{key}", getattr(addr, key), optional=True)
        _check_addressing(c, f"{p}.{side}", con.addressing, addr, extended)
    _check_id(c, f"{p}.functional_id", con.functional_id, extended)
    if (
        con.addressing is AddressingMode.NORMAL_FIXED
        and _is_int(con.functional_id)
        and (con.functional_id >> 16) & 0xFF != 0xDB
    ):
        c.error(
            f"{p}.functional_id",
            f"{_h(con.functional_id)} is not a normal-fixed functional ID (0x18DB<TA><SA>)",
        )
    c.byte(f"{p}.padding_byte", con.padding_byte, optional=True)
    c.byte(f"{p}.block_size", con.block_size)
    c.int_range(f"{p}.stmin_ms", con.stmin_ms, 0, MAX_STMIN_MS, " ms")
    if not _is_int(con.bootloader_entry_delay_ms) or con.bootloader_entry_delay_ms < 0:
        c.error(f"{p}.bootloader_entry_delay_ms", "the delay must be 0 ms or more")
    entry = con.bootloader_entry
    if entry is not None:
        _check_id(c, f"{p}.bootloader_entry.can_id", entry.can_id, entry.extended_id)
        max_len = 64 if con.fd else 8
        if len(entry.data) > max_len:
            c.error(
                f"{p}.bootloader_entry.data",
                f"{len(entry.data)} bytes do not fit one {'CAN FD' if con.fd else 'CAN'} frame "
                f"({max_len} bytes at most)",
            )
    if con.heartbeat_id is not None:
        _check_id(c, f"{p}.heartbeat_id", con.heartbeat_id, extended)


def _check_addressing(
    c: _Collector, p: str, mode: AddressingMode, addr: Any, extended: bool
) -> None:
    if mode is AddressingMode.NORMAL_FIXED:
        if not extended:
            c.error(f"{p}.request_id", "normal-fixed addressing needs 29-bit IDs (id_bits: 29)")
        ta, sa = addr.target_address, addr.source_address
        for key, val in (("target_address", ta), ("source_address", sa)):
            if val is None:
                c.error(f"{p}.{key}", f"normal-fixed addressing needs the {key.split('_')[0]} byte")
        if _is_int(ta) and _is_int(sa) and 0 <= ta <= 0xFF and 0 <= sa <= 0xFF:
            want_req, want_resp = normal_fixed_ids(ta, sa)
            # the priority bits (28..26) are free; DA/TA/SA must match ISO 15765-2 §10.3.3
            for key, want in (("request_id", want_req), ("response_id", want_resp)):
                got = getattr(addr, key)
                if _is_int(got) and (got & 0x03FF_FFFF) != (want & 0x03FF_FFFF):
                    c.error(
                        f"{p}.{key}",
                        f"{_h(got)} does not match TA {_h(ta)} / SA {_h(sa)} "
                        f"(normal-fixed expects {_h(want)})",
                    )
    elif mode is AddressingMode.EXTENDED:
        for key in ("target_address", "source_address"):
            if getattr(addr, key) is None:
                c.error(f"{p}.{key}", f"extended addressing needs the {key.split('_')[0]} byte")
    elif mode is AddressingMode.MIXED and addr.address_extension is None:
        c.error(f"{p}.address_extension", "mixed addressing needs the address extension byte")


@dataclass
class _IdUse:
    path: str
    ecu: int
    role: str  # "request" | "response" | "functional" | "entry" | "heartbeat"


def _check_id_clashes(c: _Collector, ea: ElectronicArchitecture) -> None:
    """Report any CAN ID used twice on one channel, except the shared functional ID."""
    owners: dict[tuple[str, bool, int], _IdUse] = {}
    for i, ecu in enumerate(ea.ecus):
        con = ecu.connection
        p = f"ecus[{i}]"
        ext = con.id_bits == 29
        uses: list[tuple[str, int | None, bool, str]] = []
        for side in ("application", "bootloader"):
            addr = getattr(con, side)
            uses.append((f"{p}.{side}.request_id", addr.request_id, ext, "request"))
            uses.append((f"{p}.{side}.response_id", addr.response_id, ext, "response"))
        uses.append((f"{p}.functional_id", con.functional_id, ext, "functional"))
        if con.bootloader_entry is not None:
            e = con.bootloader_entry
            uses.append((f"{p}.bootloader_entry.can_id", e.can_id, e.extended_id, "entry"))
        uses.append((f"{p}.heartbeat_id", con.heartbeat_id, ext, "heartbeat"))
        for path, can_id, is_ext, role in uses:
            if not isinstance(can_id, int) or isinstance(can_id, bool):
                continue
            key = (con.channel, is_ext, can_id)
            first = owners.get(key)
            if first is None:
                owners[key] = _IdUse(path, i, role)
                continue
            if role == first.role == "functional":
                continue  # every ECU listens to the one functional ID
            if first.ecu == i and role == first.role and role in ("request", "response"):
                continue  # a bootloader may keep the application's addresses
            c.error(path, f'{_h(can_id)} is also {first.path} on channel "{con.channel}"')


# -- UDS profile -----------------------------------------------------------------------------


def _check_uds(c: _Collector, p: str, ecu: EcuDefinition) -> None:
    u = ecu.uds
    up = f"{p}.uds"
    for key in ("p2_timeout_ms", "p2_star_timeout_ms", "s3_ms", "tester_present_period_ms"):
        val = getattr(u, key)
        if not _is_int(val) or val <= 0:
            c.error(f"{up}.{key}", f"{val!r} must be a positive number of milliseconds")
    ints = _is_int(u.p2_star_timeout_ms) and _is_int(u.p2_timeout_ms)
    if ints and u.p2_star_timeout_ms < u.p2_timeout_ms:
        c.error(
            f"{up}.p2_star_timeout_ms",
            f"P2* ({u.p2_star_timeout_ms} ms) must not be shorter than P2 ({u.p2_timeout_ms} ms)",
        )
    ints = _is_int(u.tester_present_period_ms) and _is_int(u.s3_ms)
    if ints and u.tester_present_period_ms >= u.s3_ms:
        c.error(
            f"{up}.tester_present_period_ms",
            f"TesterPresent every {u.tester_present_period_ms} ms must be shorter than S3 "
            f"({u.s3_ms} ms), or the session drops mid-erase",
        )
    for key in ("default_session", "extended_session", "programming_session", "data_format"):
        c.byte(f"{up}.{key}", getattr(u, key))
    alfi = u.address_and_length_format
    c.byte(f"{up}.address_and_length_format", alfi)
    if _is_int(alfi) and 0 <= alfi <= 0xFF and not (1 <= alfi & 0xF <= 4 and 1 <= alfi >> 4 <= 4):
        c.error(
            f"{up}.address_and_length_format",
            f"{_h(alfi)}: both nibbles (size bytes, address bytes) must be 1..4",
        )
    seeds: dict[int, int] = {}
    for j, lvl in enumerate(u.security_levels):
        sp = f"{up}.security_levels[{j}]"
        s = lvl.seed_subfunction
        if not _is_int(s) or not 1 <= s <= 0x7D or s % 2 == 0:
            c.error(f"{sp}.seed_subfunction", f"{s!r} is not an odd requestSeed sub-function")
        elif s in seeds:
            c.error(f"{sp}.seed_subfunction", f"{_h(s)} is also security_levels[{seeds[s]}]")
        else:
            seeds[s] = j
        if not lvl.algorithm.strip():
            c.error(f"{sp}.algorithm", "the seed/key algorithm name is empty")
    _check_regions(c, up, ecu)
    for j, did in enumerate(u.dids):
        dp = f"{up}.dids[{j}]"
        c.int_range(f"{dp}.did", did.did, 0, 0xFFFF)
        if did.codec not in DID_CODECS:
            c.error(f"{dp}.codec", f"{did.codec!r} is not one of {', '.join(DID_CODECS)}")
        if did.length is not None and (not _is_int(did.length) or did.length <= 0):
            c.error(f"{dp}.length", f"{did.length!r} must be a positive byte count")
    for j, pre in enumerate(u.preconditions):
        pp = f"{up}.preconditions[{j}]"
        c.int_range(f"{pp}.did", pre.did, 0, 0xFFFF)
        c.int_range(f"{pp}.length", pre.length, 1, 8, " bytes")
        if pre.minimum is not None and pre.maximum is not None and pre.minimum > pre.maximum:
            c.error(f"{pp}.maximum", f"maximum {pre.maximum} is below minimum {pre.minimum}")
        if pre.scale == 0:
            c.error(f"{pp}.scale", "a scale of 0 makes every reading the offset")
    h = u.health
    c.int_range(f"{up}.health.version_did", h.version_did, 0, 0xFFFF)
    c.byte(f"{up}.health.dtc_status_mask", h.dtc_status_mask)
    if h.heartbeat_within_s <= 0:
        c.error(f"{up}.health.heartbeat_within_s", "must be more than 0 s")
    if h.check_heartbeat and ecu.connection.heartbeat_id is None:
        c.warn(
            f"{up}.health.check_heartbeat",
            "the heartbeat check needs heartbeat_id; it will be skipped",
        )
    _check_sequence(c, up, ecu)


def _check_regions(c: _Collector, up: str, ecu: EcuDefinition) -> None:
    regions = ecu.uds.memory_regions
    if not regions:
        c.error(f"{up}.memory_regions", "no writable memory region: nothing can be flashed")
    for j, r in enumerate(regions):
        rp = f"{up}.memory_regions[{j}]"
        if not _is_int(r.start) or r.start < 0:
            c.error(f"{rp}.start", f"{r.start!r} is not an address")
        if not _is_int(r.length) or r.length <= 0:
            c.error(f"{rp}.length", f"{r.length!r} must be a positive size")
        if not _is_int(r.erase_sector_bytes) or r.erase_sector_bytes < 0:
            c.error(f"{rp}.erase_sector_bytes", f"{r.erase_sector_bytes!r} is not a size")
        for k in range(j):
            o = regions[k]
            ok = all(_is_int(x) for x in (r.start, r.length, o.start, o.length))
            if ok and r.start < o.end and o.start < r.end:
                c.error(
                    f"{rp}.start",
                    f'region "{r.name}" {_h(r.start)}–{_h(r.end - 1)} overlaps '
                    f'memory_regions[{k}] "{o.name}" {_h(o.start)}–{_h(o.end - 1)}',
                )


def _check_sequence(c: _Collector, up: str, ecu: EcuDefinition) -> None:
    u = ecu.uds
    pos: dict[StepKind, int] = {}
    for j, step in enumerate(u.sequence):
        sp = f"{up}.sequence[{j}]"
        try:
            kind = StepKind(step.kind)
        except ValueError:
            c.error(f"{sp}.kind", f"{step.kind!r} is not a known step")
            continue
        defaults = DEFAULT_STEP_PARAMS[kind]
        for key, val in step.params.items():
            kp = f"{sp}.params.{key}"
            if key not in defaults:
                known = ", ".join(defaults) or "none"
                c.error(kp, f'unknown parameter for step "{kind.value}" (known: {known})')
                continue
            want = defaults[key]
            if isinstance(want, bool):
                if not isinstance(val, bool):
                    c.error(kp, f"{val!r} must be true or false")
            elif isinstance(want, int):
                if key in BYTE_STEP_PARAMS or key == "reset_type":
                    c.byte(kp, val)
                elif key in WORD_STEP_PARAMS:
                    c.int_range(kp, val, 0, 0xFFFF)
                elif not _is_int(val) or val < 0:
                    c.error(kp, f"{val!r} must be a whole number ≥ 0")
            elif isinstance(want, float):
                if not isinstance(val, int | float) or isinstance(val, bool) or val < 0:
                    c.error(kp, f"{val!r} must be a number ≥ 0")
            elif isinstance(want, str):
                choices = STEP_PARAM_CHOICES.get(key)
                if not isinstance(val, str) or (choices and val not in choices):
                    opts = f" (one of {', '.join(choices)})" if choices else ""
                    c.error(kp, f"{val!r} is not allowed{opts}")
        if not step.enabled:
            continue
        if kind in pos:
            c.error(f"{sp}.kind", f'step "{kind.value}" is also sequence[{pos[kind]}]')
            continue
        pos[kind] = j
        if kind in SECURITY_STEPS:
            level = step.param("level")
            if _is_int(level) and u.security_level(level) is None:
                c.error(
                    f"{sp}.params.level",
                    f"no security level with seed sub-function {_h(level)} in security_levels",
                )

    def need_before(kind: StepKind, before: StepKind, why: str) -> None:
        if kind in pos and (before not in pos or pos[before] > pos[kind]):
            c.error(f"{up}.sequence[{pos[kind]}]", f'"{kind.value}" {why}')

    K = StepKind
    if K.REQUEST_DOWNLOAD not in pos or K.TRANSFER_DATA not in pos:
        c.error(f"{up}.sequence", "request_download and transfer_data must be enabled")
    need_before(K.REQUEST_DOWNLOAD, K.PROGRAMMING_SESSION, "needs programming_session before it")
    if K.REQUEST_DOWNLOAD in pos and K.PROGRAMMING_SESSION in pos:
        lo, hi = pos[K.PROGRAMMING_SESSION], pos[K.REQUEST_DOWNLOAD]
        # a session change locks security again (ISO 14229-1 §10.4), so unlock after it
        if not any(lo < pos[s] < hi for s in SECURITY_STEPS if s in pos):
            c.error(
                f"{up}.sequence[{hi}]",
                '"request_download" needs a security access step between programming_session '
                "and it",
            )
    need_before(K.TRANSFER_DATA, K.REQUEST_DOWNLOAD, "needs request_download before it")
    need_before(K.TRANSFER_EXIT, K.TRANSFER_DATA, "needs transfer_data before it")
    if K.ERASE in pos and K.REQUEST_DOWNLOAD in pos and pos[K.ERASE] > pos[K.REQUEST_DOWNLOAD]:
        c.error(f"{up}.sequence[{pos[K.ERASE]}]", '"erase" must come before request_download')
    need_before(K.ERASE, K.PROGRAMMING_SESSION, "needs programming_session before it")
    need_before(K.CHECK, K.TRANSFER_EXIT, "must come after transfer_exit")
    need_before(K.SECURITY_LEVEL_2, K.PROGRAMMING_SESSION, "needs programming_session before it")
    if K.RESET in pos:
        for k in (K.TRANSFER_EXIT, K.CHECK):
            if k in pos and pos[k] > pos[K.RESET]:
                c.error(f"{up}.sequence[{pos[k]}]", f'"{k.value}" must come before reset')
    need_before(K.READ_VERSION, K.RESET, "reads the new version, so it must follow reset")


# -- images ----------------------------------------------------------------------------------


def check_image_fits(ecu: EcuDefinition, segments: Sequence[tuple[int, int]]) -> list[Problem]:
    """Check that every image segment `(address, length)` lies inside one writable region."""
    c = _Collector()
    regions = ecu.uds.memory_regions
    layout = ", ".join(f'"{r.name}" {_h(r.start)}–{_h(r.end - 1)}' for r in regions) or "none"
    for i, (address, length) in enumerate(segments):
        end = address + length
        if length <= 0:
            c.error(f"segments[{i}]", f"segment at {_h(address)} is empty")
            continue
        if not any(r.start <= address and end <= r.end for r in regions):
            c.error(
                f"segments[{i}]",
                f"{_h(address)}–{_h(end - 1)} ({length} bytes) is outside every writable region "
                f'of ECU "{ecu.name}" (regions: {layout})',
            )
    return c.problems
