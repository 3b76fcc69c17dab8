"""The TCU's ECU-FOTA CANopen objects (index 0x5FF3): layout from the EDS, codes and constants.

The sub-index layout is not public, so FOTA Studio ships its own EDS (resources/fota_tcu.eds)
and every piece of code refers to sub-objects by **name** (the EDS ParameterName); numbers live
only in the EDS. This module loads that layout, decodes the TPDO1 mapping, and holds the
status/decision/verdict constants and the `last_error` codes. Pure functions and immutable data
after loading; safe from any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import canopen
from canopen.objectdictionary import ODRecord, ODVariable, datatypes

from fota_studio.core import resources as _resources
from fota_studio.core.errors import ConfigurationError
from fota_studio.core.nrc import NRC_NAMES

#: The manufacturer-specific index of the FOTA objects (public, from the TCU manual).
FOTA_INDEX = 0x5FF3
DEFAULT_NODE_ID = 0x7A
EDS_FILE_NAME = "fota_tcu.eds"

# Sub-object names (EDS ParameterName); the only way code addresses them.
HIGHEST_SUB_INDEX = "highest_sub_index"
UPDATE_AVAILABLE = "update_available"
UPDATE_STATUS = "update_status"
OPERATOR_DECISION = "operator_decision"
OEM_VERIFICATION = "oem_verification"
TARGET_ECU = "target_ecu"
INSTALLED_VERSION = "installed_version"
OFFERED_VERSION = "offered_version"
PROGRESS_PERCENT = "progress_percent"
EXPECTED_DOWNTIME_S = "expected_downtime_s"
APPROVAL_TIMEOUT_S = "approval_timeout_s"
VERIFICATION_TIMEOUT_S = "verification_timeout_s"
LAST_ERROR = "last_error"
DIAGNOSTIC_LOG = "diagnostic_log"
REQUEST_ID = "request_id"

#: Every name an EDS must define under FOTA_INDEX, with its expected CANopen data type.
REQUIRED_OBJECTS: Mapping[str, int] = {
    UPDATE_AVAILABLE: datatypes.UNSIGNED8,
    UPDATE_STATUS: datatypes.UNSIGNED8,
    OPERATOR_DECISION: datatypes.UNSIGNED8,
    OEM_VERIFICATION: datatypes.UNSIGNED8,
    TARGET_ECU: datatypes.VISIBLE_STRING,
    INSTALLED_VERSION: datatypes.VISIBLE_STRING,
    OFFERED_VERSION: datatypes.VISIBLE_STRING,
    PROGRESS_PERCENT: datatypes.UNSIGNED8,
    EXPECTED_DOWNTIME_S: datatypes.UNSIGNED16,
    APPROVAL_TIMEOUT_S: datatypes.UNSIGNED16,
    VERIFICATION_TIMEOUT_S: datatypes.UNSIGNED16,
    LAST_ERROR: datatypes.UNSIGNED32,
    DIAGNOSTIC_LOG: datatypes.DOMAIN,
    REQUEST_ID: datatypes.UNSIGNED32,
}

#: Fallback when an EDS has no StorageLocation keys: the "Persistent" column of the interface.
PERSISTENT_NAMES: frozenset[str] = frozenset(
    {
        UPDATE_AVAILABLE,
        UPDATE_STATUS,
        TARGET_ECU,
        INSTALLED_VERSION,
        OFFERED_VERSION,
        EXPECTED_DOWNTIME_S,
        APPROVAL_TIMEOUT_S,
        VERIFICATION_TIMEOUT_S,
        LAST_ERROR,
        DIAGNOSTIC_LOG,
        REQUEST_ID,
    }
)

# update_status codes.
STATUS_IDLE = 0x00
STATUS_FLASHING = 0x01
STATUS_WAITING_VERIFICATION = 0x02
STATUS_SUCCESSFUL = 0x03
STATUS_FAILED = 0x04
STATUS_REJECTED = 0x05
STATUS_APPROVAL_TIMEOUT = 0x06
STATUS_VERIFICATION_TIMEOUT = 0x07
STATUS_CANCELLED = 0x08

STATUS_NAMES: Mapping[int, str] = {
    STATUS_IDLE: "idle",
    STATUS_FLASHING: "flashing in progress",
    STATUS_WAITING_VERIFICATION: "waiting for OEM verification",
    STATUS_SUCCESSFUL: "successful",
    STATUS_FAILED: "failed",
    STATUS_REJECTED: "rejected by operator",
    STATUS_APPROVAL_TIMEOUT: "approval timed out",
    STATUS_VERIFICATION_TIMEOUT: "verification timed out",
    STATUS_CANCELLED: "cancelled",
}

UPDATE_NONE = 0x00
UPDATE_WAITING_APPROVAL = 0x01

# operator_decision (Checkpoint 1) and oem_verification (Checkpoint 2) values.
DECISION_NONE = 0x00
DECISION_APPROVE = 0x01
DECISION_REJECT = 0x02
VERDICT_NONE = 0x00
VERDICT_HEALTHY = 0x01
VERDICT_UNHEALTHY = 0x02

#: Values a client may write to the rw command objects; anything else is aborted 0x06090030.
ALLOWED_WRITE_VALUES: Mapping[str, frozenset[int]] = {
    OPERATOR_DECISION: frozenset({DECISION_APPROVE, DECISION_REJECT}),
    OEM_VERIFICATION: frozenset({VERDICT_HEALTHY, VERDICT_UNHEALTHY}),
}

# last_error codes (also listed in the EDS [Comments] section).
ERROR_NONE = 0x0000_0000
ERROR_NRC_BASE = 0x0001_0000
ERROR_NO_RESPONSE = 0x0002_0001
ERROR_BUS_FAILURE = 0x0002_0002
ERROR_PACKAGE_VERIFICATION = 0x0003_0001
ERROR_IMAGE_LAYOUT = 0x0003_0002
ERROR_BRAND_MODEL_MISMATCH = 0x0003_0003
ERROR_PRECONDITION = 0x0004_0001
ERROR_SECURITY_ACCESS = 0x0004_0002
ERROR_REJECTED = 0x0005_0001
ERROR_APPROVAL_TIMEOUT = 0x0005_0002
ERROR_UNHEALTHY = 0x0006_0001
ERROR_VERIFICATION_TIMEOUT = 0x0006_0002
ERROR_CANCELLED = 0x0007_0001
ERROR_INTERNAL = 0x00FF_FFFF

ERROR_NAMES: Mapping[int, str] = {
    ERROR_NONE: "no error",
    ERROR_NO_RESPONSE: "no response from the ECU (ISO-TP / P2 timeout)",
    ERROR_BUS_FAILURE: "CAN adapter or bus failure",
    ERROR_PACKAGE_VERIFICATION: "package verification failed (SHA-256 or signature)",
    ERROR_IMAGE_LAYOUT: "image does not fit the ECU memory layout",
    ERROR_BRAND_MODEL_MISMATCH: "package Brand/Model does not match the ECU definition",
    ERROR_PRECONDITION: "precondition not met",
    ERROR_SECURITY_ACCESS: "security access failed (seed/key)",
    ERROR_REJECTED: "rejected by the operator",
    ERROR_APPROVAL_TIMEOUT: "operator approval timed out",
    ERROR_UNHEALTHY: "OEM verification reported the ECU unhealthy",
    ERROR_VERIFICATION_TIMEOUT: "OEM verification timed out",
    ERROR_CANCELLED: "cancelled before operator approval",
    ERROR_INTERNAL: "internal error of the TCU (see diagnostic_log)",
}

# SDO abort codes the TCU uses (CiA 301 §7.2.4.3.17).
ABORT_WRITE_READ_ONLY = 0x0601_0002
ABORT_NO_SUBINDEX = 0x0609_0011
ABORT_INVALID_VALUE = 0x0609_0030
ABORT_VALUE_TOO_HIGH = 0x0609_0031
ABORT_VALUE_TOO_LOW = 0x0609_0032
ABORT_DEVICE_STATE = 0x0800_0022
ABORT_NO_DATA = 0x0800_0024


def error_code_for_nrc(nrc: int) -> int:
    """The `last_error` code for a UDS negative response code: 0x0001_0000 | nrc."""
    if not 0 <= nrc <= 0xFF:
        raise ValueError(f"NRC 0x{nrc:X} is not a byte")
    return ERROR_NRC_BASE | nrc


def nrc_from_error_code(code: int) -> int | None:
    """The UDS NRC a `last_error` code stands for, or None if it is not an NRC code."""
    if code & 0xFFFF_FF00 == ERROR_NRC_BASE:
        return code & 0xFF
    return None


def describe_error(code: int) -> str:
    """A one-line text for a `last_error` code (for logs and the HMI panel)."""
    nrc = nrc_from_error_code(code)
    if nrc is not None:
        return f"ECU answered NRC 0x{nrc:02X} {NRC_NAMES.get(nrc, 'unknown NRC')}"
    return ERROR_NAMES.get(code, f"unknown error 0x{code:08X}")


def describe_status(code: int) -> str:
    """A short text for an `update_status` code."""
    return STATUS_NAMES.get(code, f"unknown status 0x{code:02X}")


def resources_dir() -> Path:
    """The shipped resources folder (installed package, frozen bundle or source tree; see
    `core/resources.py`)."""
    return _resources.resources_dir()


def default_eds_path() -> Path:
    """The EDS FOTA Studio ships for the TCU node (resources/fota_tcu.eds)."""
    return resources_dir() / EDS_FILE_NAME


@dataclass(frozen=True)
class FotaObject:
    """One sub-object of the FOTA record, as the EDS describes it."""

    name: str
    subindex: int
    data_type: int
    access_type: str
    persistent: bool
    default: Any
    min_value: int | None
    max_value: int | None

    @property
    def writable(self) -> bool:
        """True if a client may write it over SDO."""
        return "w" in self.access_type

    @property
    def is_string(self) -> bool:
        """True for VISIBLE_STRING objects (Python `str`)."""
        return self.data_type in (datatypes.VISIBLE_STRING, datatypes.UNICODE_STRING)

    @property
    def is_bytes(self) -> bool:
        """True for DOMAIN / OCTET_STRING objects (Python `bytes`)."""
        return self.data_type in (datatypes.DOMAIN, datatypes.OCTET_STRING)


@dataclass(frozen=True)
class TpdoField:
    """One object mapped into a TPDO: its name and its bit position in the payload."""

    name: str
    offset_bits: int
    length_bits: int


@dataclass(frozen=True)
class TpdoLayout:
    """The TPDO that carries update_available/update_status (0x1800/0x1A00 in the EDS)."""

    cob_id: int
    fields: tuple[TpdoField, ...]

    @property
    def length_bytes(self) -> int:
        """Payload length in bytes."""
        return (sum(f.length_bits for f in self.fields) + 7) // 8

    def encode(self, values: Mapping[str, int]) -> bytes:
        """The TPDO payload for the given object values (little-endian bit packing)."""
        raw = 0
        for f in self.fields:
            raw |= (int(values.get(f.name, 0)) & ((1 << f.length_bits) - 1)) << f.offset_bits
        return raw.to_bytes(self.length_bytes, "little")

    def decode(self, data: bytes) -> dict[str, int]:
        """Object values from a received TPDO payload; missing bytes decode as absent fields."""
        raw = int.from_bytes(bytes(data), "little")
        out: dict[str, int] = {}
        for f in self.fields:
            if (f.offset_bits + f.length_bits) <= 8 * len(data):
                out[f.name] = (raw >> f.offset_bits) & ((1 << f.length_bits) - 1)
        return out


class FotaLayout:
    """The FOTA record of one EDS: objects by name, the TPDO layout, the CANopen dictionary."""

    def __init__(
        self, od: canopen.ObjectDictionary, *, index: int = FOTA_INDEX, source: str = "EDS"
    ) -> None:
        self.od = od
        self.index = index
        self.source = source
        if index not in od:
            raise ConfigurationError(
                f"{source}: no object 0x{index:04X} (the FOTA record)",
                hint="use resources/fota_tcu.eds or an EDS that defines the FOTA objects",
            )
        record = od[index]
        if not isinstance(record, ODRecord):
            raise ConfigurationError(f"{source}: object 0x{index:04X} is not a RECORD")
        self.record_name: str = record.name
        objects: dict[str, FotaObject] = {}
        for var in record.values():
            objects[var.name] = _fota_object(var)
        self._by_name = objects
        self._by_sub = {o.subindex: o for o in objects.values()}
        for name, data_type in REQUIRED_OBJECTS.items():
            obj = objects.get(name)
            if obj is None:
                raise ConfigurationError(
                    f"{source}: FOTA record 0x{index:04X} has no sub-object named '{name}'",
                    hint="ParameterName of each sub-object must be the name from the interface",
                )
            if obj.data_type != data_type:
                raise ConfigurationError(
                    f"{source}: '{name}' has DataType 0x{obj.data_type:04X}, "
                    f"expected 0x{data_type:04X}"
                )
        self.tpdo = _tpdo_layout(od, index, self._by_sub, source)

    @classmethod
    def load(cls, eds_path: Path | None = None, node_id: int = DEFAULT_NODE_ID) -> FotaLayout:
        """Load the layout from an EDS file (default: the one FOTA Studio ships)."""
        path = eds_path if eds_path is not None else default_eds_path()
        return cls(load_object_dictionary(path, node_id), source=str(path))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def object(self, name: str) -> FotaObject:
        """The sub-object called `name`; ConfigurationError if the EDS does not have it."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigurationError(
                f"{self.source}: FOTA record has no sub-object named '{name}'"
            ) from None

    def object_at(self, subindex: int) -> FotaObject | None:
        """The sub-object at a sub-index (for decoding requests), or None."""
        return self._by_sub.get(subindex)

    def objects(self) -> tuple[FotaObject, ...]:
        """All sub-objects except the highest-sub-index entry, in sub-index order."""
        return tuple(o for s, o in sorted(self._by_sub.items()) if s != 0)

    def persistent_names(self) -> frozenset[str]:
        """Names of the objects the TCU keeps across restarts."""
        return frozenset(o.name for o in self.objects() if o.persistent)


def load_object_dictionary(eds_path: Path, node_id: int) -> canopen.ObjectDictionary:
    """Parse an EDS into a canopen ObjectDictionary; ConfigurationError if it cannot be read."""
    if not Path(eds_path).is_file():
        raise ConfigurationError(
            f"EDS file not found: {eds_path}",
            hint="reinstall FOTA Studio or pass the path of the TCU's EDS",
        )
    try:
        return canopen.import_od(str(eds_path), node_id)
    except Exception as exc:  # configparser/ValueError/KeyError: all mean a broken EDS
        raise ConfigurationError(f"{eds_path}: not a valid EDS ({exc})") from exc


def _fota_object(var: ODVariable) -> FotaObject:
    location = (var.storage_location or "").upper()
    if location:
        persistent = location.startswith("PERSIST") or location == "EEPROM"
    else:
        persistent = var.name in PERSISTENT_NAMES
    return FotaObject(
        name=var.name,
        subindex=var.subindex,
        data_type=int(var.data_type or 0),
        access_type=var.access_type,
        persistent=persistent,
        default=var.default,
        min_value=var.min,
        max_value=var.max,
    )


def _tpdo_layout(
    od: canopen.ObjectDictionary, index: int, by_sub: Mapping[int, FotaObject], source: str
) -> TpdoLayout:
    """Decode TPDO1 (0x1800 COB-ID, 0x1A00 mapping) into names and bit positions."""
    try:
        comm: Any = od[0x1800]
        mapping: Any = od[0x1A00]
        cob_id = int(comm[1].default) & 0x7FF
        count = int(mapping[0].default)
        entries = [int(mapping[i].default) for i in range(1, count + 1)]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{source}: TPDO1 (0x1800/0x1A00) is missing or incomplete ({exc})"
        ) from exc
    fields: list[TpdoField] = []
    offset = 0
    for entry in entries:
        map_index, map_sub, length = entry >> 16, (entry >> 8) & 0xFF, entry & 0xFF
        obj = by_sub.get(map_sub) if map_index == index else None
        if obj is None:
            raise ConfigurationError(
                f"{source}: TPDO1 maps 0x{map_index:04X}:{map_sub:02X}, not a FOTA object"
            )
        fields.append(TpdoField(obj.name, offset, length))
        offset += length
    return TpdoLayout(cob_id=cob_id, fields=tuple(fields))
