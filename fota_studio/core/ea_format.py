"""The EA exchange format: a versioned, human-readable YAML file (and the same tree as JSON).

One field table per model class drives everything: `ea_to_dict` (stable key order, IDs and
addresses as hex strings like "0x7E0", so files diff well in git), `ea_from_dict` (missing keys
take the model defaults, so a new ECU needs only its IDs and Brand/Model), and
`ea_json_schema()` (the published resources/ea.schema.json is generated from it).
`load_ea_yaml` rejects bad files (syntax, unknown or duplicate keys, wrong types, a newer schema
version) with `file:line: path: message` for every fault, using the YAML marks. In the file an
ECU's connection settings sit directly in the ECU entry, so paths read `ecus[1].bootloader.
request_id`; `get_path`/`set_path` resolve those paths on the model (the editor and the
validation share them).

Pure functions, no shared state: safe from any thread.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fota_studio.core.ea import (
    CHECKSUM_KINDS,
    COMPRESSION_CODECS,
    EA_SCHEMA_VERSION,
    ERASE_POLICIES,
    SECTOR_CHECKSUM_RECORDS,
    STEP_PARAMS,
    AddressingMode,
    BootloaderEntryFrame,
    CompressionSettings,
    Connection,
    DidDefinition,
    EcuDefinition,
    EcuTiming,
    ElectronicArchitecture,
    HealthChecks,
    IsoTpAddress,
    MemoryRegion,
    Precondition,
    ProtectedRange,
    RoutinePrecondition,
    SectorChecksum,
    SecurityLevel,
    SequenceStep,
    StepKind,
    StepParam,
    UdsProfile,
)
from fota_studio.core.errors import ArchitectureError

if TYPE_CHECKING:
    import jsonschema

SCHEMA_ID = "https://fota-studio.example/schemas/ea.schema.json"
FILE_HEADER = (
    "# FOTA Studio Electronic Architecture (schema version {version}).\n"
    "# CAN IDs, address bytes, DIDs and memory addresses are hex strings; a missing key takes\n"
    "# its default. Validate with `fota-studio ea validate FILE`; schema: ea.schema.json.\n"
)

#: Step parameters written as hex (key -> digits), from the byte/word keys of `STEP_PARAMS`;
#: the rest keep their YAML type.
HEX_STEP_PARAMS = {
    p.key: 2 if p.type == "byte" else 4
    for params in STEP_PARAMS.values()
    for p in params
    if p.type in ("byte", "word")
}

_HEX_RE = re.compile(r"^0[xX][0-9A-Fa-f]+$")


def _bounded_hex(digits: int) -> str:
    """A hex-string pattern of at most `digits` significant digits (0x0003 is a byte)."""
    return rf"^0[xX]0*[0-9A-Fa-f]{{1,{digits}}}$"


_BYTES_RE = re.compile(r"^([0-9A-Fa-f]{2}( ?[0-9A-Fa-f]{2})*)?$")


class EaFileError(ArchitectureError):
    """An EA file cannot be read; `problems` holds one `file:line: path: message` per fault."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        head = f"{source}: {len(problems)} problem(s), nothing was imported"
        super().__init__(head + "\n  " + "\n  ".join(problems), hint=None)


# -- codecs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Codec:
    """How one field is written, read back and described in the JSON Schema."""

    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    schema: Callable[[], dict[str, Any]]


def _hex_str(value: int, digits: int) -> str:
    return f"0x{value:0{digits}X}" if value >= 0 else str(value)


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16) if _HEX_RE.match(value) else int(value, 0)
    return int(value)


def _hex_schema() -> dict[str, Any]:
    # integers stay accepted so hand-written files may use decimal
    return {"type": ["integer", "string"], "pattern": _HEX_RE.pattern, "minimum": 0}


def _hex(digits: int) -> _Codec:
    return _Codec(lambda v: _hex_str(int(v), digits), _to_int, _hex_schema)


def _can_id_str(value: int) -> str:
    return _hex_str(value, 3 if 0 <= value <= 0x7FF else 8)


_CAN_ID = _Codec(lambda v: _can_id_str(int(v)), _to_int, _hex_schema)
_STR = _Codec(str, str, lambda: {"type": "string"})
_INT = _Codec(int, int, lambda: {"type": "integer"})
_NUM = _Codec(lambda v: v, lambda v: v, lambda: {"type": "number"})
_BOOL = _Codec(bool, bool, lambda: {"type": "boolean"})
_BYTES = _Codec(
    lambda v: bytes(v).hex(" ").upper(),
    lambda v: bytes.fromhex(str(v).replace(" ", "")),
    lambda: {"type": "string", "pattern": _BYTES_RE.pattern},
)


def _enum(values: Sequence[str], cls: Callable[[str], Any] = str) -> _Codec:
    return _Codec(str, cls, lambda: {"type": "string", "enum": list(values)})


def _opt(inner: _Codec) -> _Codec:
    def schema() -> dict[str, Any]:
        s = inner.schema()
        if "$ref" in s:
            return {"anyOf": [{"type": "null"}, s]}
        s = dict(s)
        t = s["type"]
        s["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
        if "enum" in s:
            s["enum"] = [*s["enum"], None]
        return s

    return _Codec(
        lambda v: None if v is None else inner.encode(v),
        lambda v: None if v is None else inner.decode(v),
        schema,
    )


class _HexInt(int):
    """An int the YAML dumper writes as an unquoted hex literal (YAML 1.1 reads it as int)."""


def _encode_free_params(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _HexInt(v) if isinstance(v, int) and not isinstance(v, bool) and v > 9 else v
        for k, v in params.items()
    }


def _decode_free_params(params: Any) -> dict[str, Any]:
    return {str(k): v for k, v in dict(params).items()}


def _encode_step_params(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k in HEX_STEP_PARAMS and isinstance(v, int) and not isinstance(v, bool):
            out[k] = _hex_str(v, HEX_STEP_PARAMS[k])
        else:
            out[k] = v
    return out


def step_param_schema(param: StepParam) -> dict[str, Any]:
    """The JSON Schema of one step parameter, from its `StepParam` entry."""
    out: dict[str, Any]
    if param.type in ("byte", "word"):
        digits = 2 if param.type == "byte" else 4
        # the pattern bounds hex strings, `maximum` the decimal integers
        out = {**_hex_schema(), "pattern": _bounded_hex(digits), "maximum": param.high}
    elif param.type in ("int", "number"):
        out = {"type": "integer" if param.type == "int" else "number"}
        if param.minimum is not None:
            out["minimum"] = param.minimum
        if param.maximum is not None:
            out["maximum"] = param.maximum
    elif param.type == "bool":
        out = {"type": "boolean"}
    elif param.type == "choice":
        out = {"type": "string", "enum": list(param.choices)}
    else:
        out = {"type": "string"}
    out["description"] = param.meaning
    return out


def _step_params_schema() -> dict[str, Any]:
    """Per step kind: the keys its `params` may hold and their types (if kind = x then ...)."""
    rules = []
    for kind, params in STEP_PARAMS.items():
        rules.append(
            {
                "if": {"properties": {"kind": {"const": kind.value}}, "required": ["kind"]},
                "then": {
                    "properties": {
                        "params": {
                            "type": "object",
                            "properties": {p.key: step_param_schema(p) for p in params},
                            "additionalProperties": False,
                        }
                    }
                },
            }
        )
    return {"allOf": rules}


def _decode_step_params(params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dict(params).items():
        if k in HEX_STEP_PARAMS and isinstance(v, str) and _HEX_RE.match(v):
            out[str(k)] = int(v, 16)
        else:
            out[str(k)] = v
    return out


# -- field tables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """The file keys of one model class, in file order; `required` keys have no default."""

    name: str
    cls: type
    fields: tuple[tuple[str, _Codec], ...]
    required: tuple[str, ...] = ()
    #: More schema keywords for the class (e.g. the per-kind step parameters).
    extra: Callable[[], dict[str, Any]] | None = None


def _obj(spec_name: str) -> _Codec:
    return _Codec(
        lambda v: _encode(_SPECS[spec_name], v),
        lambda v: _decode(_SPECS[spec_name], v),
        lambda: {"$ref": f"#/$defs/{spec_name}"},
    )


def _list(spec_name: str) -> _Codec:
    return _Codec(
        lambda v: [_encode(_SPECS[spec_name], x) for x in v],
        lambda v: [_decode(_SPECS[spec_name], x) for x in v],
        lambda: {"type": "array", "items": {"$ref": f"#/$defs/{spec_name}"}},
    )


_ADDRESS = _Spec(
    "IsoTpAddress",
    IsoTpAddress,
    (
        ("request_id", _CAN_ID),
        ("response_id", _CAN_ID),
        ("target_address", _opt(_hex(2))),
        ("source_address", _opt(_hex(2))),
        ("address_extension", _opt(_hex(2))),
    ),
    required=("request_id", "response_id"),
)
_ENTRY = _Spec(
    "BootloaderEntryFrame",
    BootloaderEntryFrame,
    (("can_id", _CAN_ID), ("data", _BYTES), ("extended_id", _BOOL)),
    required=("can_id",),
)
#: Connection fields, written inline in each ECU entry (in this order).
_CONNECTION = _Spec(
    "Connection",
    Connection,
    (
        ("channel", _STR),
        ("bitrate_bps", _INT),
        ("fd", _BOOL),
        ("data_bitrate_bps", _INT),
        ("fd_frame_length", _INT),
        ("id_bits", _INT),
        ("addressing", _enum([m.value for m in AddressingMode], AddressingMode)),
        ("application", _obj("IsoTpAddress")),
        ("bootloader", _obj("IsoTpAddress")),
        ("functional_id", _CAN_ID),
        ("padding_byte", _opt(_hex(2))),
        ("block_size", _INT),
        ("stmin_ms", _INT),
        ("bootloader_entry", _opt(_obj("BootloaderEntryFrame"))),
        ("bootloader_entry_delay_ms", _INT),
        ("heartbeat_id", _opt(_CAN_ID)),
        ("functional_target_address", _opt(_hex(2))),
    ),
)
CONNECTION_KEYS = tuple(k for k, _ in _CONNECTION.fields)
_SECURITY = _Spec(
    "SecurityLevel",
    SecurityLevel,
    (
        ("name", _STR),
        ("seed_subfunction", _hex(2)),
        ("algorithm", _STR),
        ("params", _Codec(_encode_free_params, _decode_free_params, lambda: {"type": "object"})),
        ("secret_ref", _opt(_STR)),
    ),
    required=("name", "seed_subfunction"),
)
_STEP = _Spec(
    "SequenceStep",
    SequenceStep,
    (
        ("kind", _enum([k.value for k in StepKind], StepKind)),
        ("enabled", _BOOL),
        ("params", _Codec(_encode_step_params, _decode_step_params, lambda: {"type": "object"})),
    ),
    required=("kind",),
    extra=_step_params_schema,
)
_REGION = _Spec(
    "MemoryRegion",
    MemoryRegion,
    (("name", _STR), ("start", _hex(8)), ("length", _hex(8)), ("erase_sector_bytes", _hex(4))),
    required=("name", "start", "length"),
)
_DID = _Spec(
    "DidDefinition",
    DidDefinition,
    (
        ("did", _hex(4)),
        ("name", _STR),
        ("codec", _enum(["ascii", "hex", "uint"])),
        ("length", _opt(_INT)),
    ),
    required=("did", "name"),
)
_PRECONDITION = _Spec(
    "Precondition",
    Precondition,
    (
        ("name", _STR),
        ("did", _hex(4)),
        ("length", _INT),
        ("scale", _NUM),
        ("offset", _NUM),
        ("unit", _STR),
        ("minimum", _opt(_NUM)),
        ("maximum", _opt(_NUM)),
        ("skippable", _BOOL),
        ("skip_reason", _STR),
    ),
    required=("name", "did"),
)
_ROUTINE_PRECONDITION = _Spec(
    "RoutinePrecondition",
    RoutinePrecondition,
    (
        ("name", _STR),
        ("routine_id", _hex(4)),
        ("record", _BYTES),
        ("expected_status", _opt(_hex(2))),
        ("skippable", _BOOL),
        ("skip_reason", _STR),
    ),
    required=("name", "routine_id"),
)
_PROTECTED = _Spec(
    "ProtectedRange",
    ProtectedRange,
    (("name", _STR), ("start", _hex(8)), ("length", _hex(8))),
    required=("name", "start", "length"),
)
_TIMING = _Spec(
    "EcuTiming",
    EcuTiming,
    (
        ("reset_time_ms", _INT),
        ("application_start_timeout_s", _NUM),
        ("bootloader_ready_timeout_ms", _INT),
        ("erase_ms_per_kib", _NUM),
        ("erase_ms_per_sector", _NUM),
        ("programming_ms_per_kib", _NUM),
        ("ecu_max_block_length", _opt(_INT)),
        ("ecu_stmin_ms", _opt(_INT)),
        ("ecu_block_size", _opt(_INT)),
    ),
)
_COMPRESSION = _Spec(
    "CompressionSettings",
    CompressionSettings,
    (("method_id", _INT), ("codec", _enum(COMPRESSION_CODECS))),
    required=("method_id", "codec"),
)
_SECTOR_CHECKSUM = _Spec(
    "SectorChecksum",
    SectorChecksum,
    (
        ("routine_id", _hex(4)),
        ("record", _enum(SECTOR_CHECKSUM_RECORDS)),
        ("sector_bytes", _hex(4)),
        ("checksum", _enum(CHECKSUM_KINDS)),
    ),
    required=("routine_id",),
)
_HEALTH = _Spec(
    "HealthChecks",
    HealthChecks,
    (
        ("check_version", _BOOL),
        ("version_did", _hex(4)),
        ("check_no_active_dtcs", _BOOL),
        ("dtc_status_mask", _hex(2)),
        ("check_heartbeat", _BOOL),
        ("heartbeat_within_s", _NUM),
    ),
)
_UDS = _Spec(
    "UdsProfile",
    UdsProfile,
    (
        ("p2_timeout_ms", _INT),
        ("p2_star_timeout_ms", _INT),
        ("s3_ms", _INT),
        ("tester_present_period_ms", _INT),
        ("default_session", _hex(2)),
        ("extended_session", _hex(2)),
        ("programming_session", _hex(2)),
        ("security_levels", _list("SecurityLevel")),
        ("address_and_length_format", _hex(2)),
        ("data_format", _hex(2)),
        ("memory_regions", _list("MemoryRegion")),
        ("dids", _list("DidDefinition")),
        ("preconditions", _list("Precondition")),
        ("routine_preconditions", _list("RoutinePrecondition")),
        ("health", _obj("HealthChecks")),
        ("timing", _obj("EcuTiming")),
        ("erase_policy", _enum(ERASE_POLICIES)),
        ("protected_ranges", _list("ProtectedRange")),
        ("active_session_did", _opt(_hex(4))),
        ("compression", _opt(_obj("CompressionSettings"))),
        ("sector_checksum", _opt(_obj("SectorChecksum"))),
        ("sequence", _list("SequenceStep")),
    ),
)
#: ECU identity fields; the connection fields follow them inline, then `uds`.
_ECU_HEAD = (
    ("name", _STR),
    ("role", _STR),
    ("brand", _STR),
    ("model", _STR),
    ("hardware_version", _STR),
    ("notes", _STR),
)
_NAMES = _Codec(
    lambda v: [str(x) for x in v],
    lambda v: [str(x) for x in v],
    lambda: {"type": "array", "items": {"type": "string"}},
)
_ECU_TAIL = (("uds", _obj("UdsProfile")), ("after", _NAMES))
_ECU = _Spec(
    "EcuDefinition",
    EcuDefinition,
    _ECU_HEAD + _CONNECTION.fields + _ECU_TAIL,
    required=("name", "brand", "model", "application"),
)
_EA = _Spec(
    "ElectronicArchitecture",
    ElectronicArchitecture,
    (
        ("schema_version", _INT),
        ("name", _STR),
        ("description", _STR),
        ("machine_model", _STR),
        ("ecus", _list("EcuDefinition")),
    ),
    required=("schema_version", "name"),
)

_SPECS: dict[str, _Spec] = {
    s.name: s
    for s in (
        _ADDRESS,
        _ENTRY,
        _SECURITY,
        _STEP,
        _REGION,
        _DID,
        _PRECONDITION,
        _ROUTINE_PRECONDITION,
        _PROTECTED,
        _TIMING,
        _COMPRESSION,
        _SECTOR_CHECKSUM,
        _HEALTH,
        _UDS,
        _ECU,
        _EA,
    )
}


def _encode(spec: _Spec, obj: Any) -> dict[str, Any]:
    if spec is _ECU:
        out = {k: c.encode(getattr(obj, k)) for k, c in _ECU_HEAD}
        out.update({k: c.encode(getattr(obj.connection, k)) for k, c in _CONNECTION.fields})
        out.update({k: c.encode(getattr(obj, k)) for k, c in _ECU_TAIL})
        return out
    return {k: c.encode(getattr(obj, k)) for k, c in spec.fields}


def _decode(spec: _Spec, data: Any) -> Any:
    codecs = dict(spec.fields)
    if spec is _ECU:
        conn = {k: codecs[k].decode(data[k]) for k in CONNECTION_KEYS if k in data}
        if "bootloader" not in conn:
            # an ECU whose bootloader keeps the application addresses needs to say it once
            conn["bootloader"] = copy.deepcopy(conn["application"])
        rest = {k: codecs[k].decode(v) for k, v in data.items() if k in codecs and k not in conn}
        return EcuDefinition(connection=Connection(**conn), **rest)
    kwargs = {k: codecs[k].decode(v) for k, v in data.items() if k in codecs}
    return spec.cls(**kwargs)


# -- dict / JSON Schema ----------------------------------------------------------------------


def ea_to_dict(ea: ElectronicArchitecture) -> dict[str, Any]:
    """The file tree of an EA: plain dicts/lists/str/int, stable key order, hex strings."""
    return _encode(_EA, ea)


def ea_from_dict(data: dict[str, Any]) -> ElectronicArchitecture:
    """Build an EA from a (schema-valid) file tree; missing keys take the model defaults."""
    ea = _decode(_EA, data)
    assert isinstance(ea, ElectronicArchitecture)
    return ea


def ecu_to_dict(ecu: EcuDefinition) -> dict[str, Any]:
    """The file tree of one ECU entry (as inside `ecus:`)."""
    return _encode(_ECU, ecu)


def ecu_from_dict(data: dict[str, Any]) -> EcuDefinition:
    """Build one ECU from its file tree."""
    ecu = _decode(_ECU, data)
    assert isinstance(ecu, EcuDefinition)
    return ecu


def ea_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the EA file; resources/ea.schema.json is this."""
    defs: dict[str, Any] = {}
    for name, spec in _SPECS.items():
        if spec is _EA:
            continue
        defs[name] = _spec_schema(spec)
    root = _spec_schema(_EA)
    root["properties"]["schema_version"] = {
        "type": "integer",
        "minimum": 1,
        "description": "format version of this file; readers refuse newer versions",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "FOTA Studio Electronic Architecture",
        "description": "The ECU topology of one machine type: ECUs, CAN addressing, UDS profiles.",
        **root,
        "$defs": defs,
    }


def _spec_schema(spec: _Spec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": {k: c.schema() for k, c in spec.fields},
        "additionalProperties": False,
    }
    if spec.required:
        out["required"] = list(spec.required)
    if spec.extra is not None:
        out.update(spec.extra())
    return out


# -- YAML ------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents lists inside mappings (reads better, diffs the same)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_Dumper.add_representer(
    _HexInt, lambda d, v: d.represent_scalar("tag:yaml.org,2002:int", f"0x{int(v):X}")
)


def dump_ea_yaml(ea: ElectronicArchitecture) -> str:
    """The EA as YAML text: header comment, stable key order, one blank line between ECUs."""
    body = yaml.dump(
        ea_to_dict(ea),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    # a blank line before each ECU entry makes a long file scannable and its diffs local
    body = re.sub(r"\n(  - name: )", r"\n\n\1", body).replace("ecus:\n\n", "ecus:\n")
    return FILE_HEADER.format(version=EA_SCHEMA_VERSION) + body


def save_ea_file(ea: ElectronicArchitecture, path: str | Path) -> None:
    """Write the EA as a YAML file (UTF-8, LF)."""
    Path(path).write_text(dump_ea_yaml(ea), encoding="utf-8", newline="\n")


def path_str(parts: Sequence[str | int]) -> str:
    """Format a path like `ecus[1].bootloader.request_id`."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


@dataclass
class LoadedEa:
    """An EA read from a file, with the line of every path (to place later problems)."""

    ea: ElectronicArchitecture
    source: str
    lines: dict[str, int]

    def where(self, path: str) -> str:
        """`source:line` of a path (its nearest ancestor present in the file)."""
        line = self.line_of(path)
        return f"{self.source}:{line}" if line else self.source

    def line_of(self, path: str) -> int | None:
        """Line number (1-based) of a path or its nearest ancestor in the file."""
        p = path
        while p:
            if p in self.lines:
                return self.lines[p]
            cut = max(p.rfind("."), p.rfind("["))
            p = p[:cut] if cut > 0 else ""
        return None


def _walk(
    node: yaml.Node, parts: tuple[str | int, ...], lines: dict[str, int], problems: list[str]
) -> None:
    """Record the line of every path; report duplicate and non-string keys (PyYAML allows)."""
    lines.setdefault(path_str(parts), node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            sub = path_str((*parts, key))
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                problems.append(f"{line}: {sub}: keys must be plain names")
                continue
            if key in seen:
                problems.append(f"{line}: {sub}: duplicate key")
            seen.add(key)
            lines[sub] = line
            _walk(value_node, (*parts, key), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*parts, i), lines, problems)


def _schema_message(err: jsonschema.ValidationError) -> tuple[list[str | int], str]:
    """A plain message for one schema error, and the path it is about."""
    path: list[str | int] = list(err.absolute_path)
    v = err.validator
    if v == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(str(k) for k in err.instance if k not in allowed)
        key = extra[0] if extra else ""
        close = difflib.get_close_matches(key, sorted(allowed), n=1)
        hint = f'did you mean "{close[0]}"?' if close else "known keys: " + ", ".join(allowed)
        more = f" (and {len(extra) - 1} more: {', '.join(extra[1:])})" if len(extra) > 1 else ""
        return [*path, key], f"unknown key ({hint}){more}"
    if v == "required":
        return path, str(err.message).replace("is a required property", "is missing (required)")
    if v == "type":
        want = err.validator_value
        want_s = " or ".join(want) if isinstance(want, list) else str(want)
        return path, f"expected {want_s}, got {err.instance!r}"
    if v == "pattern":
        if err.validator_value == _HEX_RE.pattern:
            return path, f"expected a hex number like 0x7E0, got {err.instance!r}"
        if err.validator_value == _bounded_hex(2):
            return path, f"expected a byte 0x00..0xFF, got {err.instance!r}"
        if err.validator_value == _bounded_hex(4):
            return path, f"expected a 16-bit value 0x0000..0xFFFF, got {err.instance!r}"
        return path, f"expected hex bytes like 'B0 07 00', got {err.instance!r}"
    if v == "enum":
        opts = ", ".join(str(x) for x in err.validator_value if x is not None)
        return path, f"{err.instance!r} is not one of: {opts}"
    if v == "minimum":
        return path, f"{err.instance!r} must be at least {err.validator_value}"
    if v == "maximum":
        return path, f"{err.instance!r} must be at most {err.validator_value}"
    if v == "anyOf" and err.context:
        import jsonschema

        best = jsonschema.exceptions.best_match(err.context)
        _, msg = _schema_message(best)
        return path, msg
    return path, str(err.message)


_VALIDATOR: jsonschema.protocols.Validator | None = None


def _validator() -> Any:
    global _VALIDATOR
    if _VALIDATOR is None:
        import jsonschema  # on first use (an EA read or checked): 0.08 s of every start

        _VALIDATOR = jsonschema.Draft202012Validator(ea_json_schema())
    return _VALIDATOR


def structure_problems(data: Any) -> list[tuple[str, str]]:
    """(path, message) for every way `data` breaks the EA schema (empty when it fits)."""
    out = []
    for err in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.path))):
        parts, msg = _schema_message(err)
        out.append((path_str(parts), msg))
    return out


#: An EA file is a few hundred lines; anything this large is not one (and must not be parsed).
MAX_EA_FILE_BYTES = 4 * 1024 * 1024


#: Deepest nesting of mappings/lists an EA file may have. The EA schema nests about 8 levels;
#: a 5,000-deep file once crashed the loader with RecursionError (issue 14).
MAX_EA_NESTING = 32


def _reject_aliases(text: str, source: str) -> None:
    """EA files never need YAML anchors/aliases; refusing them stops "billion laughs" bombs.
    Nesting deeper than MAX_EA_NESTING is refused here too, from the event stream (which needs
    no recursion), before anything recursive (composer, schema validation) sees the file."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_EA_NESTING:
                mark = event.start_mark
                line = mark.line + 1 if mark is not None else "?"
                raise EaFileError(
                    source,
                    [
                        f"{source}:{line}: nested more than {MAX_EA_NESTING} levels deep; an "
                        "EA file is a few levels of mappings and lists"
                    ],
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            line = mark.line + 1 if mark is not None else "?"
            raise EaFileError(
                source,
                [
                    f"{source}:{line}: YAML anchors and aliases (&name / *name) are not "
                    "allowed in EA files; write each value out"
                ],
            )


def load_ea_yaml(text: str, source: str = "<text>") -> LoadedEa:
    """Parse EA YAML text; EaFileError lists every fault as `source:line: path: message`."""
    if len(text) > MAX_EA_FILE_BYTES:
        raise EaFileError(
            source,
            [
                f"{source}: {len(text):,} characters is too large for an EA file "
                f"(limit {MAX_EA_FILE_BYTES:,})"
            ],
        )
    try:
        _reject_aliases(text, source)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{mark.line + 1}" if mark is not None else "?"
        raise EaFileError(source, [f"{source}:{line}: YAML syntax error: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise EaFileError(source, [f"{source}: YAML error: {exc}"]) from None
    if node is None or not isinstance(data, dict):
        raise EaFileError(source, [f"{source}:1: the file must be a mapping with an EA"])
    lines: dict[str, int] = {}
    raw_problems: list[str] = []
    _walk(node, (), lines, raw_problems)
    problems = [f"{source}:{p}" for p in raw_problems]
    loaded = LoadedEa(ElectronicArchitecture(name=""), source, lines)
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > EA_SCHEMA_VERSION:
        # a newer file may use keys this version does not know: say why once, not per key
        raise EaFileError(
            source,
            [
                f"{loaded.where('schema_version')}: schema_version: the file is schema version "
                f"{version}, this FOTA Studio reads up to {EA_SCHEMA_VERSION}; update FOTA Studio"
            ],
        )
    for path, msg in structure_problems(data):
        problems.append(f"{loaded.where(path)}: {path or '(top)'}: {msg}")
    if problems:
        raise EaFileError(source, problems)
    try:
        loaded.ea = ea_from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:  # the schema should have caught it
        raise EaFileError(source, [f"{source}: cannot build the EA: {exc}"]) from None
    return loaded


def load_ea_file(path: str | Path) -> LoadedEa:
    """Read an EA YAML file; EaFileError (with file:line) when it is not a valid EA file."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_EA_FILE_BYTES:
            raise EaFileError(
                str(p), [f"{p}: too large for an EA file ({p.stat().st_size:,} bytes)"]
            )
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise EaFileError(str(p), [f"{p}: cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise EaFileError(str(p), [f"{p}: not UTF-8 text ({exc.reason})"]) from None
    return load_ea_yaml(text, str(p))


# -- paths on the model ----------------------------------------------------------------------

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """Split `ecus[1].uds.memory_regions[0].start` into ['ecus', 1, 'uds', ...]."""
    return [m.group(1) if m.group(1) else int(m.group(2)) for m in _TOKEN.finditer(path)]


def _step_into(obj: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return obj[part]
    if isinstance(obj, dict):
        return obj[part]
    if isinstance(obj, EcuDefinition) and part in CONNECTION_KEYS:
        return getattr(obj.connection, part)
    return getattr(obj, part)


def get_path(ea: ElectronicArchitecture, path: str) -> Any:
    """The model value at a file path (ECU connection keys resolve into `connection`)."""
    obj: Any = ea
    for part in parse_path(path):
        obj = _step_into(obj, part)
    return obj


def set_path(ea: ElectronicArchitecture, path: str, value: Any) -> None:
    """Set the model value at a file path (in place)."""
    parts = parse_path(path)
    obj: Any = ea
    for part in parts[:-1]:
        obj = _step_into(obj, part)
    last = parts[-1]
    if isinstance(last, int) or isinstance(obj, dict):
        obj[last] = value
    elif isinstance(obj, EcuDefinition) and last in CONNECTION_KEYS:
        setattr(obj.connection, last, value)
    else:
        setattr(obj, last, value)
