"""The EA model: defaults, helpers and the template ECU (core, no I/O)."""

from __future__ import annotations

import copy

import pytest

from fota_studio.core.ea import (
    DEFAULT_STEP_PARAMS,
    AddressingMode,
    MemoryRegion,
    Precondition,
    SecurityLevel,
    SequenceStep,
    StepKind,
    default_ecu,
    default_sequence,
    make_ecu,
    new_architecture,
    normal_fixed_ids,
)
from fota_studio.core.ea_validate import validate
from fota_studio.demo.catalog import demo_architecture


def test_default_sequence_has_the_14_steps_in_order_all_enabled() -> None:
    seq = default_sequence()
    assert [s.kind for s in seq] == list(StepKind)
    assert len(seq) == 14
    assert all(s.enabled for s in seq)
    assert seq[0].params == DEFAULT_STEP_PARAMS[StepKind.EXTENDED_SESSION]
    # each step owns its params (editing one never changes the defaults)
    seq[0].params["session"] = 0x40
    assert DEFAULT_STEP_PARAMS[StepKind.EXTENDED_SESSION]["session"] == 0x03


def test_step_param_falls_back_to_the_kind_default() -> None:
    step = SequenceStep(kind=StepKind.RESET, params={})
    assert step.param("reset_type") == 0x01
    step.params["reset_type"] = 0x03
    assert step.param("reset_type") == 0x03


def test_new_ecu_needs_only_ids_and_brand_model() -> None:
    ecu = make_ecu("ECM", "Acme", "E1", app_ids=(0x7E0, 0x7E8))
    assert ecu.connection.bootloader.request_id == 0x7E0
    assert ecu.connection.channel == "CAN1"
    assert ecu.connection.bitrate_bps == 500_000
    assert ecu.connection.addressing is AddressingMode.NORMAL
    assert ecu.uds.p2_star_timeout_ms >= ecu.uds.p2_timeout_ms
    assert ecu.uds.tester_present_period_ms < ecu.uds.s3_ms
    ea = new_architecture("Test")
    ea.ecus = [ecu]
    assert validate(ea) == [p for p in validate(ea) if p.severity == "warning"]


def test_template_ea_has_one_default_ecu() -> None:
    ea = new_architecture("New")
    assert [e.name for e in ea.ecus] == ["ECU1"]
    assert ea.ecus[0].connection.application.request_id == 0x7E0
    assert new_architecture("Empty", with_template_ecu=False).ecus == []
    assert default_ecu("X", "B", "M").brand == "B"


def test_normal_fixed_ids_follow_iso_15765_2() -> None:
    assert normal_fixed_ids(0x11, 0xF1) == (0x18DA11F1, 0x18DAF111)


def test_security_key_subfunction_is_seed_plus_one() -> None:
    assert SecurityLevel(name="x", seed_subfunction=0x03).key_subfunction == 0x04


def test_precondition_scales_and_compares() -> None:
    pre = Precondition(name="V", did=0xF442, length=2, scale=0.001, minimum=11.5, maximum=14.5)
    ok, value = pre.evaluate((12_600).to_bytes(2, "big"))
    assert ok and value == pytest.approx(12.6)
    assert pre.evaluate((15_000).to_bytes(2, "big"))[0] is False


def test_region_end_and_ecu_lookup() -> None:
    assert MemoryRegion(name="a", start=0x100, length=0x10).end == 0x110
    ea = demo_architecture()
    assert ea.ecu("HCU").connection.id_bits == 29
    with pytest.raises(KeyError, match="known: VCU, HCU, BCU"):
        ea.ecu("XYZ")


def test_deepcopy_is_independent() -> None:
    ea = demo_architecture()
    clone = copy.deepcopy(ea)
    clone.ecus[0].connection.application.request_id = 0x123
    assert ea.ecus[0].connection.application.request_id == 0x7E0
    assert clone != ea
