"""validate(): every rule gives a problem at the right path with a plain message."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fota_studio.core.ea import (
    STEP_PARAMS,
    AddressingMode,
    BootloaderEntryFrame,
    DidDefinition,
    ElectronicArchitecture,
    MemoryRegion,
    Precondition,
    ProtectedRange,
    RoutinePrecondition,
    SequenceStep,
    StepKind,
)
from fota_studio.core.ea_validate import (
    Problem,
    Severity,
    check_image_fits,
    check_step_param,
    has_errors,
    validate,
)
from fota_studio.demo.catalog import demo_architecture


def _demo() -> ElectronicArchitecture:
    return demo_architecture()


def _paths(problems: list[Problem]) -> set[str]:
    return {p.path for p in problems}


def _only(problems: list[Problem], path: str) -> Problem:
    hits = [p for p in problems if p.path == path]
    assert len(hits) == 1, f"expected one problem at {path}, got {problems}"
    return hits[0]


def test_demo_is_valid() -> None:
    assert validate(_demo()) == []


def test_id_clash_message_names_both_fields_and_channel() -> None:
    ea = _demo()
    ea.ecus[2].connection.bootloader.request_id = 0x7E0
    problems = validate(ea)
    p = _only(problems, "ecus[2].bootloader.request_id")
    assert str(p) == (
        "ecus[2].bootloader.request_id: 0x7E0 is also ecus[0].application.request_id on "
        'channel "CAN1"'
    )
    assert p.severity is Severity.ERROR


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (
            lambda ea: setattr(ea.ecus[2].connection, "functional_id", 0x7E8),
            "ecus[2].functional_id",
        ),
        (
            lambda ea: setattr(ea.ecus[2].connection.bootloader_entry, "can_id", 0x7C0),
            "ecus[2].bootloader_entry.can_id",
        ),
        (lambda ea: setattr(ea.ecus[2].connection, "heartbeat_id", 0x7E9), "ecus[2].heartbeat_id"),
        (
            lambda ea: setattr(ea.ecus[0].connection.bootloader, "response_id", 0x7E0),
            "ecus[0].bootloader.response_id",
        ),
    ],
)
def test_every_id_kind_takes_part_in_clash_checks(
    mutate: Callable[[ElectronicArchitecture], None], path: str
) -> None:
    ea = _demo()
    mutate(ea)
    assert "is also" in _only(validate(ea), path).message


def test_shared_functional_id_and_other_channels_are_no_clash() -> None:
    ea = _demo()
    assert ea.ecus[0].connection.functional_id == ea.ecus[2].connection.functional_id
    ea.ecus[2].connection.channel = "CAN2"
    ea.ecus[2].connection.application.request_id = 0x7E0
    ea.ecus[2].connection.application.response_id = 0x7E8
    assert validate(ea) == []


def test_id_ranges_for_11_and_29_bit() -> None:
    ea = _demo()
    ea.ecus[0].connection.application.request_id = 0x800
    ea.ecus[1].connection.heartbeat_id = 0x2000_0000
    ea.ecus[0].connection.bootloader_entry = BootloaderEntryFrame(0x1234_5678, extended_id=True)
    problems = validate(ea)
    assert "largest 11-bit ID 0x7FF" in _only(problems, "ecus[0].application.request_id").message
    assert "largest 29-bit ID 0x1FFFFFFF" in _only(problems, "ecus[1].heartbeat_id").message
    assert "ecus[0].bootloader_entry.can_id" not in _paths(problems)


def test_normal_fixed_ids_must_match_ta_sa() -> None:
    ea = _demo()
    ea.ecus[1].connection.application.target_address = 0x12
    problems = validate(ea)
    msg = _only(problems, "ecus[1].application.request_id").message
    assert "does not match TA 0x12 / SA 0xF1" in msg
    assert "ecus[1].application.response_id" in _paths(problems)


def test_normal_fixed_needs_29_bit_and_address_bytes() -> None:
    ea = _demo()
    con = ea.ecus[0].connection
    con.addressing = AddressingMode.NORMAL_FIXED
    problems = validate(ea)
    assert "needs 29-bit IDs" in _only(problems, "ecus[0].application.request_id").message
    assert "ecus[0].application.target_address" in _paths(problems)
    assert "ecus[0].bootloader.source_address" in _paths(problems)
    assert "ecus[0].functional_id" in _paths(problems)


def test_extended_and_mixed_need_their_address_bytes() -> None:
    ea = _demo()
    ea.ecus[0].connection.addressing = AddressingMode.EXTENDED
    ea.ecus[2].connection.addressing = AddressingMode.MIXED
    paths = _paths(validate(ea))
    assert {
        "ecus[0].application.target_address",
        "ecus[0].application.source_address",
        "ecus[2].bootloader.address_extension",
    } <= paths
    ea.ecus[2].connection.application.address_extension = 0x10
    ea.ecus[2].connection.bootloader.address_extension = 0x11
    # without a functional address byte only a warning remains
    problems = [p for p in validate(ea) if p.path.startswith("ecus[2]")]
    assert [(p.path, p.severity) for p in problems] == [
        ("ecus[2].functional_target_address", Severity.WARNING)
    ]
    ea.ecus[2].connection.functional_target_address = 0x33
    assert not any(p.startswith("ecus[2]") for p in _paths(validate(ea)))


def test_region_overlap() -> None:
    ea = _demo()
    ea.ecus[0].uds.memory_regions.append(MemoryRegion("calib", start=0x0010_0000, length=0x2_0000))
    p = _only(validate(ea), "ecus[0].uds.memory_regions[1].start")
    assert 'overlaps memory_regions[0] "application"' in p.message


def test_region_needs_positive_length_and_one_region() -> None:
    ea = _demo()
    ea.ecus[0].uds.memory_regions[0].length = 0
    ea.ecus[1].uds.memory_regions = []
    paths = _paths(validate(ea))
    assert {"ecus[0].uds.memory_regions[0].length", "ecus[1].uds.memory_regions"} <= paths


def _move(ea: ElectronicArchitecture, kind: StepKind, to: int) -> None:
    seq = ea.ecus[0].uds.sequence
    step = next(s for s in seq if s.kind == kind)
    seq.remove(step)
    seq.insert(to, step)


def test_download_needs_programming_session_and_security_before_it() -> None:
    ea = _demo()
    _move(ea, StepKind.PROGRAMMING_SESSION, 12)
    problems = validate(ea)
    msgs = " | ".join(p.message for p in problems)
    assert '"request_download" needs programming_session before it' in msgs
    ea = _demo()
    for s in ea.ecus[0].uds.sequence:
        if s.kind == StepKind.SECURITY_LEVEL_2:
            s.enabled = False
    msgs = " | ".join(p.message for p in validate(ea))
    assert "needs a security access step between programming_session and it" in msgs


def test_transfer_needs_request_download_and_erase_before_download() -> None:
    ea = _demo()
    _move(ea, StepKind.TRANSFER_DATA, 0)
    assert any("needs request_download before it" in p.message for p in validate(ea))
    ea = _demo()
    _move(ea, StepKind.ERASE, 9)  # after request_download
    assert any('"erase" must come before request_download' in p.message for p in validate(ea))
    ea = _demo()
    for s in ea.ecus[0].uds.sequence:
        if s.kind == StepKind.REQUEST_DOWNLOAD:
            s.enabled = False
    assert "ecus[0].uds.sequence" in _paths(validate(ea))


def test_check_after_exit_and_duplicates() -> None:
    ea = _demo()
    _move(ea, StepKind.CHECK, 9)
    assert any('"check" must come after transfer_exit' in p.message for p in validate(ea))
    ea = _demo()
    ea.ecus[0].uds.sequence.append(SequenceStep(StepKind.RESET))
    assert "is also sequence[12]" in _only(validate(ea), "ecus[0].uds.sequence[14].kind").message


def test_security_step_level_must_exist() -> None:
    ea = _demo()
    ea.ecus[0].uds.sequence[5].params["level"] = 0x05
    assert (
        "no security level" in _only(validate(ea), "ecus[0].uds.sequence[5].params.level").message
    )


def test_unknown_and_bad_step_params() -> None:
    ea = _demo()
    seq = ea.ecus[0].uds.sequence
    seq[0].params["sesion"] = 3
    seq[7].params["record"] = "bogus"
    seq[1].params["suppress_response"] = "yes"
    seq[12].params["reset_type"] = 300
    problems = validate(ea)
    assert (
        'unknown parameter for step "extended_session"'
        in _only(problems, "ecus[0].uds.sequence[0].params.sesion").message
    )
    assert "address_length" in _only(problems, "ecus[0].uds.sequence[7].params.record").message
    assert (
        "true or false"
        in _only(problems, "ecus[0].uds.sequence[1].params.suppress_response").message
    )
    assert "not a byte" in _only(problems, "ecus[0].uds.sequence[12].params.reset_type").message


def test_timing_relations() -> None:
    ea = _demo()
    ea.ecus[0].uds.tester_present_period_ms = 5000
    ea.ecus[1].uds.p2_star_timeout_ms = 500
    problems = validate(ea)
    assert "shorter than S3" in _only(problems, "ecus[0].uds.tester_present_period_ms").message
    assert (
        "must not be shorter than P2" in _only(problems, "ecus[1].uds.p2_star_timeout_ms").message
    )


def test_byte_values() -> None:
    ea = _demo()
    ea.ecus[0].connection.padding_byte = 0x100
    ea.ecus[0].connection.block_size = -1
    ea.ecus[1].connection.application.source_address = 256
    ea.ecus[0].uds.data_format = 0x1FF
    paths = _paths(validate(ea))
    assert {
        "ecus[0].padding_byte",
        "ecus[0].block_size",
        "ecus[1].application.source_address",
        "ecus[0].uds.data_format",
    } <= paths
    ea = _demo()
    ea.ecus[0].connection.padding_byte = None  # no padding is allowed
    assert validate(ea) == []


def test_fd_frame_length() -> None:
    ea = _demo()
    ea.ecus[2].connection.fd_frame_length = 40
    assert "48" in _only(validate(ea), "ecus[2].fd_frame_length").message
    for n in (8, 12, 16, 20, 24, 32, 48, 64):
        ea.ecus[2].connection.fd_frame_length = n
        assert validate(ea) == []


def test_entry_frame_data_fits_a_frame() -> None:
    ea = _demo()
    ea.ecus[0].connection.bootloader_entry = BootloaderEntryFrame(0x5F0, bytes(9))
    assert "8 bytes at most" in _only(validate(ea), "ecus[0].bootloader_entry.data").message


def test_names_security_dids_preconditions() -> None:
    ea = _demo()
    ea.ecus[1].name = "VCU"
    ea.ecus[0].brand = " "
    ea.ecus[0].uds.security_levels[1].seed_subfunction = 0x02
    ea.ecus[0].uds.dids.append(DidDefinition(did=0x1_0000, name="x", codec="utf8"))
    ea.ecus[0].uds.preconditions.append(Precondition("p", 0xF40D, minimum=5, maximum=1))
    paths = _paths(validate(ea))
    assert {
        "ecus[1].name",
        "ecus[0].brand",
        "ecus[0].uds.security_levels[1].seed_subfunction",
        "ecus[0].uds.dids[3].did",
        "ecus[0].uds.dids[3].codec",
        "ecus[0].uds.preconditions[2].maximum",
    } <= paths


def test_missing_repository_is_a_warning() -> None:
    ea = _demo()
    known = {("TTControl", "TTC 2390"), ("Danfoss", "PLUS+1 MC050-112")}
    problems = validate(ea, known)
    p = _only(problems, "ecus[1].model")
    assert p.severity is Severity.WARNING
    assert "BODAS RC5-6/40" in p.message
    assert not has_errors(problems)
    assert validate(ea, lambda brand, model: True) == []


def test_check_image_fits() -> None:
    ecu = _demo().ecus[0]
    assert check_image_fits(ecu, [(0x1_0000, 0x100), (0x2_0000, 0x800)]) == []
    problems = check_image_fits(ecu, [(0x1_0000, 0x100), (0x8000, 0x100), (0x10_FF00, 0x200)])
    assert [p.path for p in problems] == ["segments[1]", "segments[2]"]
    assert 'outside every writable region of ECU "VCU"' in problems[0].message
    assert "0x8000–0x80FF" in problems[0].message


# -- issue 13: step schema, fingerprint, addressing pairs, timing, erase policy, protection ----


def _step(ea: ElectronicArchitecture, kind: StepKind, ecu: int = 0) -> tuple[int, SequenceStep]:
    for j, s in enumerate(ea.ecus[ecu].uds.sequence):
        if s.kind == kind:
            return j, s
    raise AssertionError(kind)


def test_every_step_default_passes_its_own_schema() -> None:
    for kind, params in STEP_PARAMS.items():
        for param in params:
            assert check_step_param(param, param.default) is None, (kind, param.key)


def test_fingerprint_raw_data_and_length_are_accepted() -> None:
    # symptom 3: the engine used params.data, `ea validate` refused it
    ea = _demo()
    j, step = _step(ea, StepKind.FINGERPRINT)
    step.params.update({"format": "raw", "length": 9, "data": "01 02 03 04 05 06 07 08 09"})
    assert validate(ea) == []
    step.params["data"] = "zz"
    p = _only(validate(ea), f"ecus[0].uds.sequence[{j}].params.data")
    assert "not hex bytes" in p.message and p.severity is Severity.ERROR
    step.params.update({"format": "ascii", "data": "TESTER-LONGER-THAN-9"})
    p = _only(validate(ea), f"ecus[0].uds.sequence[{j}].params.data")
    assert p.severity is Severity.WARNING and "cut to length 9" in p.message
    step.params.update({"format": "ascii", "data": "Prüfer"})
    assert has_errors(validate(ea))
    step.params.update({"format": "date_tester", "data": "", "length": 0})
    assert "out of range 1..4093" in (
        _only(validate(ea), f"ecus[0].uds.sequence[{j}].params.length").message
    )


def test_step_param_ranges_come_from_the_table() -> None:
    ea = _demo()
    j, step = _step(ea, StepKind.READ_VERSION)
    step.params["boot_wait_s"] = 900.0
    assert "0..600" in _only(validate(ea), f"ecus[0].uds.sequence[{j}].params.boot_wait_s").message
    step.params["boot_wait_s"] = 5.0
    j, step = _step(ea, StepKind.TRANSFER_DATA)
    step.params["max_retries"] = -1
    assert (
        "out of range"
        in _only(validate(ea), f"ecus[0].uds.sequence[{j}].params.max_retries").message
    )


def _extended(ea: ElectronicArchitecture, ecu: int, ta: int, fta: int | None) -> None:
    con = ea.ecus[ecu].connection
    con.addressing = AddressingMode.EXTENDED
    for side in (con.application, con.bootloader):
        side.target_address, side.source_address = ta, 0xF1
    con.functional_target_address = fta


def test_functional_id_equal_to_request_id_is_fine_when_address_bytes_differ() -> None:
    # symptom 4: the validator refused a functional ID equal to the physical request ID
    ea = _demo()
    _extended(ea, 0, 0x10, 0xDF)
    con = ea.ecus[0].connection
    con.functional_id = con.bootloader.request_id
    assert not [p for p in validate(ea) if p.path.startswith("ecus[0]")]
    # the same byte cannot be told apart
    con.functional_target_address = 0x10
    p = _only(validate(ea), "ecus[0].functional_id")
    assert "with address byte 0x10 is also ecus[0].bootloader.request_id" in p.message
    assert "functional_target_address" in p.message
    # normal addressing has no byte: the ID alone counts
    ea = _demo()
    ea.ecus[0].connection.functional_id = ea.ecus[0].connection.bootloader.request_id
    assert "is also" in _only(validate(ea), "ecus[0].functional_id").message


def test_extended_without_functional_address_warns_and_uses_the_physical_byte() -> None:
    ea = _demo()
    _extended(ea, 0, 0x10, None)
    p = _only(validate(ea), "ecus[0].functional_target_address")
    assert p.severity is Severity.WARNING and "0xDF" in p.message
    con = ea.ecus[0].connection
    con.functional_id = con.bootloader.request_id
    assert "is also" in _only(validate(ea), "ecus[0].functional_id").message


def test_two_ecus_share_a_request_id_with_different_target_bytes() -> None:
    ea = _demo()
    _extended(ea, 0, 0x10, 0xDF)
    _extended(ea, 2, 0x12, 0xDF)
    for side in ("application", "bootloader"):
        a, b = getattr(ea.ecus[0].connection, side), getattr(ea.ecus[2].connection, side)
        b.request_id, b.response_id = a.request_id, a.response_id
    # responses: the ECU's frames carry the tester's byte (SA 0xF1) on both -> a clash
    problems = validate(ea)
    assert {p.path for p in problems} == {
        "ecus[2].application.response_id",
        "ecus[2].bootloader.response_id",
    }
    ea.ecus[2].connection.application.response_id = 0x7EF
    ea.ecus[2].connection.bootloader.response_id = 0x7EF
    assert validate(ea) == []


def test_timing_ranges() -> None:
    ea = _demo()
    t = ea.ecus[0].uds.timing
    t.reset_time_ms = -1
    t.application_start_timeout_s = 0
    t.bootloader_ready_timeout_ms = 10_000_000
    t.erase_ms_per_kib = -2.0
    t.ecu_stmin_ms = 200
    t.ecu_block_size = 256
    t.ecu_max_block_length = 2
    assert _paths(validate(ea)) == {
        f"ecus[0].uds.timing.{k}"
        for k in (
            "reset_time_ms",
            "application_start_timeout_s",
            "bootloader_ready_timeout_ms",
            "erase_ms_per_kib",
            "ecu_stmin_ms",
            "ecu_block_size",
            "ecu_max_block_length",
        )
    }


def test_erase_policy_choice_and_active_session_did() -> None:
    ea = _demo()
    ea.ecus[0].uds.erase_policy = "per_sector"
    ea.ecus[0].uds.active_session_did = 0x1_0000
    problems = validate(ea)
    assert "per_region, per_segment, whole_region" in (
        _only(problems, "ecus[0].uds.erase_policy").message
    )
    assert "ecus[0].uds.active_session_did" in _paths(problems)


def test_protected_ranges_against_regions_and_policy() -> None:
    ea = _demo()
    u = ea.ecus[0].uds
    region = u.memory_regions[0]
    sector = region.erase_sector_bytes
    u.protected_ranges = [ProtectedRange("boot", region.start, sector)]
    assert validate(ea) == []  # on sector boundaries, per_region: fine
    u.erase_policy = "whole_region"
    assert "would erase protected range" in _only(validate(ea), "ecus[0].uds.erase_policy").message
    u.erase_policy = "per_region"
    u.protected_ranges = [ProtectedRange("boot", region.start + 0x10, 0x100)]
    problems = validate(ea)
    assert "starts inside" in _only(problems, "ecus[0].uds.protected_ranges[0].start").message
    assert "ends inside" in _only(problems, "ecus[0].uds.protected_ranges[0].length").message
    u.protected_ranges = [ProtectedRange("far", 0x7000_0000, 0x100)]
    p = _only(validate(ea), "ecus[0].uds.protected_ranges[0].start")
    assert p.severity is Severity.WARNING and "outside every memory region" in p.message
    u.protected_ranges = [ProtectedRange("all", region.start, region.length)]
    assert "covers all of" in _only(validate(ea), "ecus[0].uds.protected_ranges[0].start").message


def test_image_into_a_protected_range_does_not_fit() -> None:
    ecu = _demo().ecus[0]
    region = ecu.uds.memory_regions[0]
    ecu.uds.protected_ranges = [ProtectedRange("boot", region.start, 0x1000)]
    problems = check_image_fits(ecu, [(region.start + 0x800, 0x1000), (region.start + 0x2000, 8)])
    assert [p.path for p in problems] == ["segments[0]"]
    assert 'protected range "boot"' in problems[0].message


def test_skippable_preconditions_need_a_reason() -> None:
    ea = _demo()
    u = ea.ecus[0].uds
    u.preconditions.append(Precondition("Speed", 0xF40D, skippable=True))
    u.routine_preconditions.append(RoutinePrecondition("Check", 0x0203, skippable=True))
    u.routine_preconditions.append(RoutinePrecondition("", 0x1_0000, expected_status=0x100))
    problems = validate(ea)
    n = len(u.preconditions) - 1
    assert (
        "needs a reason" in _only(problems, f"ecus[0].uds.preconditions[{n}].skip_reason").message
    )
    assert "ecus[0].uds.routine_preconditions[0].skip_reason" in _paths(problems)
    assert {
        "ecus[0].uds.routine_preconditions[1].name",
        "ecus[0].uds.routine_preconditions[1].routine_id",
        "ecus[0].uds.routine_preconditions[1].expected_status",
    } <= _paths(problems)
    u.preconditions[n].skip_reason = "the application may be dead; stationary by design"
    u.routine_preconditions[0].skip_reason = "bootloader checks it again"
    del u.routine_preconditions[1]
    assert validate(ea) == []


def test_read_version_boot_wait_is_said_to_be_ignored() -> None:
    """The engine waits `timing.application_start_timeout_s` for the application after the
    reset; an EA that still sets the old read_version `boot_wait_s` is told it does nothing
    (it once looked like a setting the panel and the manual offered)."""
    ea = _demo()
    j, step = _step(ea, StepKind.READ_VERSION)
    assert validate(ea) == []
    step.params["boot_wait_s"] = 20.0
    p = _only(validate(ea), f"ecus[0].uds.sequence[{j}].params.boot_wait_s")
    assert p.severity is Severity.WARNING
    assert "timing.application_start_timeout_s" in p.message
