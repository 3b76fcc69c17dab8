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

from fota_studio.core.can_timing import FD_FRAME_LENGTHS
from fota_studio.core.ea import (
    CHECKSUM_KINDS,
    COMPRESSION_CODECS,
    ERASE_POLICIES,
    SECTOR_CHECKSUM_RECORDS,
    STEP_PARAMS,
    AddressingMode,
    Connection,
    EcuDefinition,
    ElectronicArchitecture,
    IsoTpAddress,
    SequenceStep,
    StepKind,
    StepParam,
    normal_fixed_ids,
)
from fota_studio.core.image_fit import image_fit_problems

MAX_11BIT_ID = 0x7FF
MAX_29BIT_ID = 0x1FFF_FFFF
#: ISO 15765-2 STmin: 0..127 ms (the µs codes 0xF1..0xF9 are not offered by this field).
MAX_STMIN_MS = 127
#: Largest ISO-TP message (CAN FD, 32-bit FF_DL) — bounds a TransferData block length.
MAX_BLOCK_LENGTH = 0xFFFF_FFFF
#: Upper bounds of the EcuTiming settings (a typo like 50000 s must not be accepted).
MAX_RESET_TIME_MS = 60_000
MAX_READY_TIMEOUT_MS = 600_000
MAX_APP_START_S = 600.0
#: Bus and UDS numeric bounds (issue 14: a 400-digit bitrate once validated and flashed).
#: Nominal bitrate: ISO 11898-1 classic CAN and the CAN FD arbitration phase, up to 1 Mbit/s.
MIN_BITRATE_BPS = 1_000
MAX_BITRATE_BPS = 1_000_000
#: CAN FD data phase: no transceiver on the market goes beyond 12 Mbit/s (SIC-XL ~ 10-20 Mbit/s
#: is CAN XL, not FD); 8 Mbit/s is the usual limit.
MAX_DATA_BITRATE_BPS = 12_000_000
#: P2, P2*, S3, TesterPresent period, bootloader entry delay: nothing in UDS waits 10 min.
MAX_TIMEOUT_MS = 600_000
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
            self.error(path, f"{_num_text(value)} is out of range {low}..{high}{what}")


def _num_text(value: Any) -> str:
    """repr of a value, a huge number shortened ("a 400-digit number")."""
    text = repr(value)
    return f"a {len(text)}-digit number {text[:8]}…" if len(text) > 24 else text


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
    _check_after(c, ea)
    _check_id_clashes(c, ea)
    return c.problems


def _check_after(c: _Collector, ea: ElectronicArchitecture) -> None:
    """`after:` names other ECUs of this EA and never makes a cycle (a plan could not start)."""
    names = {e.name for e in ea.ecus}
    for i, ecu in enumerate(ea.ecus):
        for name in ecu.after:
            if name == ecu.name:
                c.error(f"ecus[{i}].after", f'"{name}" cannot come after itself')
            elif name not in names:
                c.error(f"ecus[{i}].after", f'"{name}" is not an ECU of this EA')
    deps = {e.name: [n for n in e.after if n in names and n != e.name] for e in ea.ecus}
    state: dict[str, int] = {}

    def cyclic(name: str) -> bool:
        state[name] = 1
        for dep in deps.get(name, []):
            if state.get(dep) == 1 or (state.get(dep) is None and cyclic(dep)):
                return True
        state[name] = 2
        return False

    for i, ecu in enumerate(ea.ecus):
        if state.get(ecu.name) is None and cyclic(ecu.name):
            c.error(
                f"ecus[{i}].after",
                f'the "after" lists form a cycle through "{ecu.name}": no ECU could start first',
            )
            return


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
    c.int_range(f"{p}.bitrate_bps", con.bitrate_bps, MIN_BITRATE_BPS, MAX_BITRATE_BPS, " bit/s")
    if con.fd:
        if not _is_int(con.data_bitrate_bps) or not (
            MIN_BITRATE_BPS <= con.data_bitrate_bps <= MAX_DATA_BITRATE_BPS
        ):
            c.int_range(
                f"{p}.data_bitrate_bps",
                con.data_bitrate_bps,
                MIN_BITRATE_BPS,
                MAX_DATA_BITRATE_BPS,
                " bit/s",
            )
        elif (
            _is_int(con.bitrate_bps)
            and con.bitrate_bps <= MAX_BITRATE_BPS
            and con.data_bitrate_bps < con.bitrate_bps
        ):
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
    c.byte(f"{p}.functional_target_address", con.functional_target_address, optional=True)
    if (
        con.addressing in (AddressingMode.EXTENDED, AddressingMode.MIXED)
        and con.functional_target_address is None
    ):
        byte = "target address" if con.addressing is AddressingMode.EXTENDED else "extension"
        c.warn(
            f"{p}.functional_target_address",
            f"{con.addressing.value} addressing without a functional {byte} byte: functional "
            "requests (e.g. 28 03 01) carry the physical one and only this ECU hears them; "
            "set it from the supplier's specification (often 0xDF)",
        )
    c.byte(f"{p}.padding_byte", con.padding_byte, optional=True)
    c.byte(f"{p}.block_size", con.block_size)
    c.int_range(f"{p}.stmin_ms", con.stmin_ms, 0, MAX_STMIN_MS, " ms")
    if not _is_int(con.bootloader_entry_delay_ms) or con.bootloader_entry_delay_ms < 0:
        c.error(f"{p}.bootloader_entry_delay_ms", "the delay must be 0 ms or more")
    else:
        c.int_range(
            f"{p}.bootloader_entry_delay_ms",
            con.bootloader_entry_delay_ms,
            0,
            MAX_TIMEOUT_MS,
            " ms",
        )
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
    #: The address byte that opens each frame on this ID (extended: TA/SA, mixed: AE), None
    #: when the frames carry none (normal, normal-fixed, raw frames): then the ID alone counts.
    address: int | None


def _address_byte(con: Connection, addr: IsoTpAddress | None, role: str) -> int | None:
    """The first data byte that tells this use's frames apart on a shared CAN ID.

    Functional requests without a `functional_target_address` carry the physical byte (the
    bootloader's, which the reprogramming sequence addresses).
    """
    if con.addressing not in (AddressingMode.EXTENDED, AddressingMode.MIXED):
        return None
    if role == "functional" or addr is None:
        if con.functional_target_address is not None:
            return con.functional_target_address
        addr, role = con.bootloader, "request"
    if con.addressing is AddressingMode.MIXED:
        return addr.address_extension
    return addr.target_address if role == "request" else addr.source_address


def _id_text(can_id: int, address: int | None) -> str:
    return _h(can_id) if address is None else f"{_h(can_id)} with address byte {_h(address)}"


def _check_id_clashes(c: _Collector, ea: ElectronicArchitecture) -> None:
    """Report any (CAN ID, address byte) pair used twice on one channel.

    Extended and mixed addressing put an address byte first in every frame (ISO 15765-2
    §10.3.4/§10.3.5), so one CAN ID may carry several ECUs, or physical and functional requests,
    as long as the bytes differ; a raw frame or normal addressing claims the whole ID. The
    shared functional request, and a bootloader keeping its application's addresses, are fine.
    """
    owners: dict[tuple[str, bool, int], list[_IdUse]] = {}
    for i, ecu in enumerate(ea.ecus):
        con = ecu.connection
        p = f"ecus[{i}]"
        ext = con.id_bits == 29
        uses: list[tuple[str, Any, bool, str, int | None]] = []
        for side in ("application", "bootloader"):
            addr = getattr(con, side)
            for role in ("request", "response"):
                key = f"{role}_id"
                byte = _address_byte(con, addr, role)
                uses.append((f"{p}.{side}.{key}", getattr(addr, key), ext, role, byte))
        fbyte = _address_byte(con, None, "functional")
        uses.append((f"{p}.functional_id", con.functional_id, ext, "functional", fbyte))
        if con.bootloader_entry is not None:
            e = con.bootloader_entry
            uses.append((f"{p}.bootloader_entry.can_id", e.can_id, e.extended_id, "entry", None))
        uses.append((f"{p}.heartbeat_id", con.heartbeat_id, ext, "heartbeat", None))
        for path, can_id, is_ext, role, byte in uses:
            if not _is_int(can_id):
                continue
            if byte is not None and not _is_int(byte):
                byte = None
            use = _IdUse(path, i, role, byte)
            same_id = owners.setdefault((con.channel, is_ext, can_id), [])
            for first in same_id:
                if first.address is not None and byte is not None and first.address != byte:
                    continue  # told apart by the address byte
                if role == first.role == "functional":
                    continue  # every ECU listens to the one functional request
                if first.ecu == i and role == first.role and role in ("request", "response"):
                    continue  # a bootloader may keep the application's addresses
                why = ""
                if {role, first.role} == {"request", "functional"}:
                    why = (
                        "; a functional request could not be told from a physical one (give "
                        "functional_target_address a byte of its own)"
                    )
                c.error(
                    path,
                    f"{_id_text(can_id, byte)} is also {first.path} on channel "
                    f'"{con.channel}"{why}',
                )
                break
            else:
                same_id.append(use)


# -- UDS profile -----------------------------------------------------------------------------


def _check_uds(c: _Collector, p: str, ecu: EcuDefinition) -> None:
    u = ecu.uds
    up = f"{p}.uds"
    for key in ("p2_timeout_ms", "p2_star_timeout_ms", "s3_ms", "tester_present_period_ms"):
        val = getattr(u, key)
        if not _is_int(val) or val <= 0:
            c.error(f"{up}.{key}", f"{_num_text(val)} must be a positive number of milliseconds")
        else:
            c.int_range(f"{up}.{key}", val, 1, MAX_TIMEOUT_MS, " ms")
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
        if "constant" in lvl.params and lvl.algorithm in ("xor32", "table_xor"):
            # the built-in algorithms take their secret from secret_ref (issue 14)
            c.warn(
                f"{sp}.params.constant",
                "a seed/key secret in the EA file (it ends up in the workspace and every "
                "export): store it with `fota-studio secrets set REF`, set secret_ref: REF and "
                "remove the constant",
            )
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
        _check_skip(c, pp, pre.skippable, pre.skip_reason)
    for j, rpre in enumerate(u.routine_preconditions):
        rp = f"{up}.routine_preconditions[{j}]"
        if not rpre.name.strip():
            c.error(f"{rp}.name", "the precondition needs a name (shown in the record and panel)")
        c.int_range(f"{rp}.routine_id", rpre.routine_id, 0, 0xFFFF)
        c.byte(f"{rp}.expected_status", rpre.expected_status, optional=True)
        if len(rpre.record) > 4089:
            c.error(f"{rp}.record", f"{len(rpre.record)} bytes do not fit one ISO-TP message")
        _check_skip(c, rp, rpre.skippable, rpre.skip_reason)
    if u.active_session_did is not None:
        c.int_range(f"{up}.active_session_did", u.active_session_did, 0, 0xFFFF)
    _check_timing(c, up, ecu)
    _check_compression(c, up, ecu)
    if u.erase_policy not in ERASE_POLICIES:
        c.error(
            f"{up}.erase_policy",
            f"{u.erase_policy!r} is not one of {', '.join(ERASE_POLICIES)}",
        )
    _check_protected(c, up, ecu)
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


def _check_skip(c: _Collector, path: str, skippable: Any, reason: str) -> None:
    """A skippable precondition must say why (the record and the panel show the reason)."""
    if not isinstance(skippable, bool):
        c.error(f"{path}.skippable", f"{skippable!r} must be true or false")
    elif skippable and not str(reason).strip():
        c.error(
            f"{path}.skip_reason",
            "a skippable precondition needs a reason (it is shown in the record and the panel "
            "when the check is skipped)",
        )
    elif not skippable and str(reason).strip():
        c.warn(f"{path}.skip_reason", "ignored: the precondition is not skippable")


def _check_timing(c: _Collector, up: str, ecu: EcuDefinition) -> None:
    t = ecu.uds.timing
    tp = f"{up}.timing"
    c.int_range(f"{tp}.reset_time_ms", t.reset_time_ms, 0, MAX_RESET_TIME_MS, " ms")
    c.int_range(
        f"{tp}.bootloader_ready_timeout_ms",
        t.bootloader_ready_timeout_ms,
        1,
        MAX_READY_TIMEOUT_MS,
        " ms",
    )
    _number(c, f"{tp}.application_start_timeout_s", t.application_start_timeout_s, MAX_APP_START_S)
    if _is_number(t.application_start_timeout_s) and t.application_start_timeout_s <= 0:
        c.error(f"{tp}.application_start_timeout_s", "must be more than 0 s")
    for key in ("erase_ms_per_kib", "erase_ms_per_sector", "programming_ms_per_kib"):
        _number(c, f"{tp}.{key}", getattr(t, key), 3_600_000.0)
    if t.ecu_max_block_length is not None:
        c.int_range(
            f"{tp}.ecu_max_block_length", t.ecu_max_block_length, 3, MAX_BLOCK_LENGTH, " bytes"
        )
    if t.ecu_stmin_ms is not None:
        c.int_range(f"{tp}.ecu_stmin_ms", t.ecu_stmin_ms, 0, MAX_STMIN_MS, " ms")
    if t.ecu_block_size is not None:
        c.byte(f"{tp}.ecu_block_size", t.ecu_block_size)


def _check_compression(c: _Collector, up: str, ecu: EcuDefinition) -> None:
    """Compressed download and the sector-checksum routine (delta / resume)."""
    u = ecu.uds
    if u.compression is not None:
        cp = f"{up}.compression"
        c.int_range(f"{cp}.method_id", u.compression.method_id, 1, 15)
        if u.compression.codec not in COMPRESSION_CODECS:
            c.error(
                f"{cp}.codec",
                f"{u.compression.codec!r} is not one of {', '.join(COMPRESSION_CODECS)}",
            )
        if _is_int(u.data_format) and u.data_format >> 4:
            c.error(
                f"{up}.data_format",
                f"0x{u.data_format:02X} names a compression method in its high nibble while "
                "`compression` is set: keep only the encryption nibble (0x0X) here",
            )
    if u.sector_checksum is not None:
        sp = f"{up}.sector_checksum"
        sc = u.sector_checksum
        c.int_range(f"{sp}.routine_id", sc.routine_id, 0, 0xFFFF)
        if sc.record not in SECTOR_CHECKSUM_RECORDS:
            c.error(
                f"{sp}.record", f"{sc.record!r} is not one of {', '.join(SECTOR_CHECKSUM_RECORDS)}"
            )
        if sc.checksum not in CHECKSUM_KINDS or sc.checksum == "none":
            kinds = ", ".join(k for k in CHECKSUM_KINDS if k != "none")
            c.error(f"{sp}.checksum", f"{sc.checksum!r} is not one of {kinds}")
        c.int_range(f"{sp}.sector_bytes", sc.sector_bytes, 1, 0xFFFFFFFF, " bytes")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(c: _Collector, path: str, value: Any, high: float) -> None:
    if not _is_number(value) or not 0 <= value <= high:
        c.error(path, f"{value!r} is out of range 0..{high:g}")


def _check_protected(c: _Collector, up: str, ecu: EcuDefinition) -> None:
    """Protected ranges against the regions and the erase policy: the erase must never touch
    one, so a range inside a region must sit on that region's sector boundaries, and a
    whole-region erase must not include one."""
    u = ecu.uds
    for j, pr in enumerate(u.protected_ranges):
        pp = f"{up}.protected_ranges[{j}]"
        if not pr.name.strip():
            c.error(f"{pp}.name", "the protected range needs a name")
        if not _is_int(pr.start) or pr.start < 0:
            c.error(f"{pp}.start", f"{pr.start!r} is not an address")
            continue
        if not _is_int(pr.length) or pr.length <= 0:
            c.error(f"{pp}.length", f"{pr.length!r} must be a positive size")
            continue
        where = f'"{pr.name}" {_h(pr.start)}–{_h(pr.end - 1)}'
        touched = [
            (k, r)
            for k, r in enumerate(u.memory_regions)
            if _is_int(r.start) and _is_int(r.length) and pr.start < r.end and r.start < pr.end
        ]
        if not touched:
            c.warn(
                f"{pp}.start",
                f"protected range {where} lies outside every memory region: nothing there is "
                "ever erased (check the address)",
            )
            continue
        for k, r in touched:
            rname = f'memory_regions[{k}] "{r.name}"'
            if pr.start <= r.start and r.end <= pr.end:
                c.error(
                    f"{pp}.start",
                    f"protected range {where} covers all of {rname}: nothing can be flashed "
                    "there; remove the region or shrink the range",
                )
                continue
            if u.erase_policy == "whole_region":
                c.error(
                    f"{up}.erase_policy",
                    f"whole_region would erase protected range {where} inside {rname}; use "
                    "per_region or per_segment, or move the range out of the region",
                )
            sector = r.erase_sector_bytes
            if not _is_int(sector) or sector <= 0:
                continue
            for key, edge in (("start", pr.start), ("length", pr.end)):
                if r.start < edge < r.end and (edge - r.start) % sector:
                    c.error(
                        f"{pp}.{key}",
                        f"protected range {where} {'starts' if key == 'start' else 'ends'} "
                        f"inside a {_h(sector)}-byte erase sector of {rname}: erasing the rest "
                        "of that sector would touch it; align it to the sectors",
                    )


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


def check_step_param(param: StepParam, value: Any) -> str | None:
    """Why `value` is not allowed for this step parameter (None when it is), from STEP_PARAMS.

    The EA panel calls it on each edit, `validate` on each file: one rule for both.
    """
    if param.type == "bool":
        return None if isinstance(value, bool) else f"{value!r} must be true or false"
    if param.type in ("byte", "word", "int"):
        low, high = param.low, param.high
        if not _is_int(value):
            what = "a byte value" if param.type == "byte" else "a whole number"
            return f"{value!r} is not {what}" + (
                " (0..255 / 0x00..0xFF)" if param.type == "byte" else ""
            )
        if (low is not None and value < low) or (high is not None and value > high):
            rng = f"{low:g}..{high:g}" if high is not None else f"≥ {low:g}"
            if param.type == "byte":
                return f"{value!r} is not a byte value (0..255 / 0x00..0xFF)"
            if param.type == "word":
                return f"{value!r} is out of range 0..0xFFFF"
            return f"{value!r} is out of range {rng}"
        return None
    if param.type == "number":
        if not _is_number(value):
            return f"{value!r} must be a number"
        if (param.minimum is not None and value < param.minimum) or (
            param.maximum is not None and value > param.maximum
        ):
            return f"{value!r} is out of range {param.minimum:g}..{param.maximum:g}"
        return None
    if not isinstance(value, str):
        return f"{value!r} must be text"
    if param.type == "choice" and value not in param.choices:
        return f"{value!r} is not allowed (one of {', '.join(param.choices)})"
    return None


def _check_step_params(c: _Collector, sp: str, kind: StepKind, step: SequenceStep) -> None:
    schema = {p.key: p for p in STEP_PARAMS[kind]}
    for key, val in step.params.items():
        kp = f"{sp}.params.{key}"
        param = schema.get(key)
        if param is None:
            known = ", ".join(schema) or "none"
            c.error(kp, f'unknown parameter for step "{kind.value}" (known: {known})')
            continue
        why = check_step_param(param, val)
        if why:
            c.error(kp, why)
        elif kind is StepKind.READ_VERSION and key == "boot_wait_s" and val != param.default:
            c.warn(
                kp,
                "ignored: the wait for the application after the reset is "
                "uds.timing.application_start_timeout_s (set that instead)",
            )
    if kind is StepKind.FINGERPRINT:
        _check_fingerprint(c, sp, step)


def _check_fingerprint(c: _Collector, sp: str, step: SequenceStep) -> None:
    """The record the step writes: `data` must suit `format`, and fit `length`."""
    fmt, length, data = step.param("format"), step.param("length"), step.param("data")
    if not isinstance(data, str) or not _is_int(length):
        return
    kp = f"{sp}.params.data"
    if fmt == "raw":
        try:
            raw = bytes.fromhex(data.replace(" ", ""))
        except ValueError:
            c.error(kp, f"{data!r} is not hex bytes like 'A1 B2 C3' (format raw)")
            return
        if not raw:
            c.warn(kp, f"format raw with no data writes {length} zero bytes")
        elif len(raw) > length:
            c.warn(kp, f"{len(raw)} bytes are cut to length {length}")
    elif fmt == "ascii":
        if not data.isascii():
            c.error(kp, f"{data!r} is not ASCII text (format ascii)")
        elif len(data) > length:
            c.warn(kp, f"{len(data)} characters are cut to length {length}")
    elif fmt == "date_tester":
        if data:
            c.warn(kp, "ignored: format date_tester writes the date and the tester name")
        if 0 < length < 3:
            c.warn(f"{sp}.params.length", f"{length} bytes cut the 3-byte BCD date short")


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
        _check_step_params(c, sp, kind, step)
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
    """Check that every image segment `(address, length)` fits the ECU (the one rule,
    `core/image_fit.py`: inside one writable region, clear of the protected ranges)."""
    c = _Collector()
    for p in image_fit_problems(ecu.uds, segments, ecu_name=ecu.name):
        c.error(p.path, p.message)
    return c.problems
