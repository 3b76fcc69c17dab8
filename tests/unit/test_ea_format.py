"""The EA file: YAML round trip, published JSON Schema, and bad files with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from fota_studio.core.ea import (
    STEP_PARAMS,
    AddressingMode,
    BootloaderEntryFrame,
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
    SecurityLevel,
    SequenceStep,
    StepKind,
    UdsProfile,
)
from fota_studio.core.ea_format import (
    EaFileError,
    dump_ea_yaml,
    ea_from_dict,
    ea_json_schema,
    ea_to_dict,
    get_path,
    load_ea_file,
    load_ea_yaml,
    save_ea_file,
    set_path,
)
from fota_studio.demo.catalog import demo_architecture

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "resources" / "ea.schema.json"
EXAMPLE_FILE = ROOT / "resources" / "examples" / "excavator-x200.ea.yaml"


def _full_ea() -> ElectronicArchitecture:
    """An EA with every optional field set to a non-default value."""
    ecu = EcuDefinition(
        name="GW",
        brand="Acme",
        model="GW-9",
        role="Gateway",
        hardware_version="B2",
        notes="line one\nline two: with colon",
        connection=Connection(
            application=IsoTpAddress(0x18DA22F1, 0x18DAF122, 0x22, 0xF1, 0x05),
            bootloader=IsoTpAddress(0x18DA23F1, 0x18DAF123, 0x23, 0xF1, 0x06),
            channel="Body",
            bitrate_bps=250_000,
            fd=True,
            data_bitrate_bps=5_000_000,
            id_bits=29,
            addressing=AddressingMode.NORMAL_FIXED,
            functional_id=0x18DB33F1,
            padding_byte=None,
            block_size=16,
            stmin_ms=2,
            fd_frame_length=32,
            bootloader_entry=BootloaderEntryFrame(0x18FF0022, b"\x01\x02\xff", True),
            bootloader_entry_delay_ms=1200,
            heartbeat_id=0x0CFF0022,
            functional_target_address=0xDF,
        ),
        uds=UdsProfile(
            p2_timeout_ms=150,
            p2_star_timeout_ms=8000,
            s3_ms=4000,
            tester_present_period_ms=1500,
            default_session=0x01,
            extended_session=0x60,
            programming_session=0x61,
            security_levels=[
                SecurityLevel(
                    "prog",
                    0x11,
                    "aes_cmac",
                    {"constant": 0xDEADBEEF, "rounds": 3, "label": "x", "f": 1.5, "b": True},
                    "acme/gw9/prog",
                )
            ],
            sequence=[
                SequenceStep(StepKind.EXTENDED_SESSION, True, {"session": 0x60}),
                SequenceStep(StepKind.DTC_OFF, False, {"setting_type": 2}),
                SequenceStep(StepKind.PROGRAMMING_SESSION, True, {"session": 0x61}),
                SequenceStep(StepKind.SECURITY_LEVEL_2, True, {"level": 0x11}),
                SequenceStep(
                    StepKind.FINGERPRINT,
                    True,
                    {"did": 0xF184, "format": "raw", "length": 9, "data": "01 02 03"},
                ),
                SequenceStep(StepKind.ERASE, True, {"routine_id": 0xFF00, "record": "none"}),
                SequenceStep(StepKind.REQUEST_DOWNLOAD, True, {}),
                SequenceStep(StepKind.TRANSFER_DATA, True, {"max_retries": 5}),
                SequenceStep(StepKind.TRANSFER_EXIT, True, {}),
                SequenceStep(StepKind.CHECK, True, {"checksum": "sha256"}),
                SequenceStep(StepKind.RESET, True, {"reset_type": 0x03}),
                SequenceStep(StepKind.READ_VERSION, True, {"did": 0xF189, "boot_wait_s": 2.5}),
            ],
            address_and_length_format=0x24,
            data_format=0x11,
            memory_regions=[
                MemoryRegion("app", 0x8000_0000, 0x40_0000, 0x2_0000),
                MemoryRegion("cal", 0x8040_0000, 0x1_0000, 0x400),
            ],
            dids=[DidDefinition(0xF189, "SW", "hex", 4)],
            preconditions=[
                Precondition("Temp", 0x0105, 1, 1.0, -40.0, "°C", -20.0, None),
                Precondition("Volt", 0xF442, 2, 0.001, 0.0, "V", None, 30.0, True, "no app"),
            ],
            routine_preconditions=[
                RoutinePrecondition("Prog conditions", 0x0203, b"\x01\x02", None, True, "why"),
                RoutinePrecondition("Stationary", 0x0204),
            ],
            health=HealthChecks(False, 0xF189, False, 0x2F, True, 12.5),
            timing=EcuTiming(1200, 12.5, 4000, 1.5, 80.0, 3.25, 0x102, 1, 16),
            erase_policy="whole_region",
            protected_ranges=[ProtectedRange("boot", 0x8000_0000, 0x2_0000)],
            active_session_did=0xF186,
        ),
    )
    return ElectronicArchitecture(
        name="Harvester-H9", description="Ünïcode – description", machine_model="H9", ecus=[ecu]
    )


@pytest.mark.parametrize("make", [demo_architecture, _full_ea], ids=["demo", "full"])
def test_export_import_is_identity(make: type, tmp_path: Path) -> None:
    ea = make()
    path = tmp_path / "ea.yaml"
    save_ea_file(ea, path)
    loaded = load_ea_file(path)
    assert loaded.ea == ea
    # and the text is stable: a second export is byte-identical (git diffs stay empty)
    assert dump_ea_yaml(loaded.ea) == path.read_text(encoding="utf-8")
    assert ea_from_dict(json.loads(json.dumps(ea_to_dict(ea)))) == ea


def test_file_is_readable_hex_with_stable_key_order() -> None:
    text = dump_ea_yaml(demo_architecture())
    assert text.startswith("# FOTA Studio Electronic Architecture")
    assert "request_id: '0x7E0'" in text
    assert "request_id: '0x18DA11F1'" in text
    assert "data: B0 07 00 00 00 00 00 00" in text
    top = [line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()]
    assert top == ["schema_version", "name", "description", "machine_model", "ecus"]


def test_published_schema_is_current_and_validates_exports() -> None:
    published = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == ea_json_schema(), "regenerate resources/ea.schema.json"
    jsonschema.Draft202012Validator.check_schema(published)
    validator = jsonschema.Draft202012Validator(published)
    for ea in (demo_architecture(), _full_ea()):
        validator.validate(yaml.safe_load(dump_ea_yaml(ea)))
    validator.validate(yaml.safe_load(EXAMPLE_FILE.read_text(encoding="utf-8")))


def test_example_file_is_the_demo_export() -> None:
    assert load_ea_file(EXAMPLE_FILE).ea == demo_architecture()


def test_minimal_ecu_takes_every_default() -> None:
    text = """
schema_version: 1
name: Mini
ecus:
  - name: ECM
    brand: Acme
    model: E1
    application: {request_id: "0x7E0", response_id: 0x7E8}
"""
    ea = load_ea_yaml(text).ea
    ecu = ea.ecus[0]
    assert ecu.connection.application == IsoTpAddress(0x7E0, 0x7E8)
    assert ecu.connection.bootloader == IsoTpAddress(0x7E0, 0x7E8)
    assert ecu.uds == UdsProfile()
    assert ecu.connection.bitrate_bps == 500_000


def _broken_text() -> str:
    text = dump_ea_yaml(demo_architecture())
    lines = text.splitlines()
    i = lines.index("    bitrate_bps: 500000")  # first ECU
    lines[i] = "    bitrate_bps: fast"
    lines.insert(i + 1, "    colour: red")
    j = next(k for k, line in enumerate(lines) if "addressing: normal_fixed" in line)
    lines[j] = "    addressing: sideways"
    k = next(k for k, line in enumerate(lines) if "functional_id: '0x7DF'" in line)
    lines[k] = "    functional_id: '0xZZ'"
    return "\n".join(lines) + "\n"


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_broken_file_names_every_fault_with_its_line(tmp_path: Path) -> None:
    text = _broken_text()
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EaFileError) as exc:
        load_ea_file(path)
    problems = exc.value.problems
    line = _line_of(text, "bitrate_bps: fast")
    assert f"{path}:{line}: ecus[0].bitrate_bps: expected integer, got 'fast'" in problems
    assert any(
        p.startswith(f"{path}:{_line_of(text, 'colour: red')}: ecus[0].colour: unknown key")
        for p in problems
    )
    assert any(
        p.startswith(f"{path}:{_line_of(text, 'sideways')}: ecus[1].addressing: 'sideways' is not")
        for p in problems
    )
    assert any(
        f"{path}:{_line_of(text, '0xZZ')}: ecus[0].functional_id: expected a hex number" in p
        for p in problems
    )
    assert len(problems) == 4
    assert "nothing was imported" in str(exc.value)


def test_syntax_error_has_a_line() -> None:
    with pytest.raises(EaFileError) as exc:
        load_ea_yaml("schema_version: 1\nname: [x\necus: []\n", "f.yaml")
    assert exc.value.problems[0].startswith("f.yaml:")
    assert "YAML syntax error" in exc.value.problems[0]


def test_newer_schema_version_is_refused() -> None:
    with pytest.raises(EaFileError) as exc:
        load_ea_yaml("schema_version: 2\nname: X\nfuture_key: 1\n", "f.yaml")
    assert exc.value.problems == [
        "f.yaml:1: schema_version: the file is schema version 2, this FOTA Studio reads up to 1; "
        "update FOTA Studio"
    ]


def test_duplicate_and_missing_keys() -> None:
    text = "schema_version: 1\nname: X\nname: Y\necus:\n  - name: A\n    model: M\n"
    with pytest.raises(EaFileError) as exc:
        load_ea_yaml(text, "f.yaml")
    problems = exc.value.problems
    assert "f.yaml:3: name: duplicate key" in problems
    assert any(p.startswith("f.yaml:5: ecus[0]: 'brand' is missing") for p in problems)
    assert any("'application' is missing" in p for p in problems)


def test_not_a_mapping_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(EaFileError, match="must be a mapping"):
        load_ea_yaml("- 1\n- 2\n")
    with pytest.raises(EaFileError, match="cannot read"):
        load_ea_file(tmp_path / "missing.yaml")


def test_loaded_lines_place_semantic_problems() -> None:
    text = dump_ea_yaml(demo_architecture())
    loaded = load_ea_yaml(text, "x.yaml")
    n = loaded.line_of("ecus[1].bootloader.request_id")
    assert n is not None and "request_id: '0x18DA91F1'" in text.splitlines()[n - 1]
    assert loaded.where("ecus[0].uds.sequence[3].params.level").startswith("x.yaml:")


def test_get_and_set_path_resolve_connection_keys() -> None:
    ea = demo_architecture()
    assert get_path(ea, "ecus[1].bootloader.request_id") == 0x18DA91F1
    assert get_path(ea, "ecus[0].channel") == "CAN1"
    set_path(ea, "ecus[0].application.request_id", 0x700)
    set_path(ea, "ecus[0].uds.sequence[3].params.level", 0x05)
    set_path(ea, "ecus[2].fd_frame_length", 32)
    assert ea.ecus[0].connection.application.request_id == 0x700
    assert ea.ecus[0].uds.sequence[3].params["level"] == 0x05
    assert ea.ecus[2].connection.fd_frame_length == 32


def test_json_schema_step_params_are_the_step_table() -> None:
    """The published schema's per-step params and the validator come from one table."""
    schema = ea_json_schema()
    rules = schema["$defs"]["SequenceStep"]["allOf"]
    by_kind = {
        r["if"]["properties"]["kind"]["const"]: r["then"]["properties"]["params"] for r in rules
    }
    assert set(by_kind) == {k.value for k in StepKind}
    validator = jsonschema.Draft202012Validator(schema)
    for kind, params in STEP_PARAMS.items():
        props = by_kind[kind.value]["properties"]
        assert list(props) == [p.key for p in params]
        assert by_kind[kind.value]["additionalProperties"] is False
        for param in params:
            assert props[param.key]["description"] == param.meaning
            if param.choices:
                assert props[param.key]["enum"] == list(param.choices)
            if param.high is not None and param.type != "bool":
                # one past the table's maximum: refused by the file schema and by validate()
                bad = param.high + (1 if param.type != "number" else 0.5)
                ea = demo_architecture()
                step = next(s for s in ea.ecus[0].uds.sequence if s.kind == kind)
                step.params[param.key] = bad
                tree = ea_to_dict(ea)
                assert list(validator.iter_errors(tree)), (kind, param.key)
                from fota_studio.core.ea_validate import validate

                assert any(p.path.endswith(f"params.{param.key}") for p in validate(ea))


def test_unknown_step_param_is_refused_with_its_line() -> None:
    text = dump_ea_yaml(demo_architecture()).replace(
        "format: date_tester", "format: raw\n            colour: red", 1
    )
    with pytest.raises(EaFileError) as info:
        load_ea_yaml(text, "x.yaml")
    (problem,) = info.value.problems
    assert ".params.colour: unknown key" in problem
    assert problem.startswith("x.yaml:")
