"""The reprogramming sequence against the strict simulated bootloader (issue 13): reboot silence
and readiness probes, explicit verification, fingerprint length, erase policy, routine and
unanswerable preconditions, clean start. The simulated ECU records every protocol violation
(requests during a reboot, two outstanding, a sector erased twice, a wrong fingerprint length);
each flash here must leave none."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import can

from fota_studio.core.ea import EcuDefinition, IsoTpAddress, ProtectedRange, RoutinePrecondition
from fota_studio.core.errors import ConfigurationError, PreconditionError, VerificationError
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.engine.flash_job import (
    APPLICATION_START_STEP,
    BOOTLOADER_READY_STEP,
    CLEAN_START_STEP,
    OUTCOME_FAILED,
    OUTCOME_NOT_VERIFIED,
    OUTCOME_VERIFIED,
    FlashResult,
)
from fota_studio.sim.faults import Fault
from tests.fakes.flash import (
    assert_no_violations,
    erase_requests,
    fast_ecu,
    fast_sim,
    flash_image,
    make_image,
    memory_matches,
    sim_ecu,
)


def _flash(
    ecu: EcuDefinition,
    channel: str,
    image: FirmwareImage,
    *,
    expected: str | None = None,
    buslog: Path | None = None,
    boot_wait_s: float | None = 1.5,
) -> FlashResult:
    return flash_image(
        ecu, channel, image, expected_version=expected, boot_wait_s=boot_wait_s, buslog_path=buslog
    )


def _step(result: FlashResult, name: str) -> str:
    steps = [s for s in result.record.steps if s.step == name]
    assert steps, f"no step {name}: {[s.step for s in result.record.steps]}"
    return steps[-1].detail


# -- 1. reboot timing -------------------------------------------------------------------------


def test_silent_during_the_reset_then_one_probe(can_channel: str, tmp_path: Path) -> None:
    """Nothing is sent while the ECU reboots after 11 01 (no 22 F195 polling, no TesterPresent);
    the version is read once the application answered a probe."""
    ecu = fast_ecu()
    ecu.uds.timing.reset_time_ms = 300  # the ECU reboots in 295 ms (just under, as documented)
    image = make_image("4.1.0", (0x900, 0x500), gap=0x300)
    blf = tmp_path / "bus.blf"
    with fast_sim(ecu, can_channel, tmp_path / "sim", reset_time_ms=None) as sim:
        result = _flash(ecu, can_channel, image, expected="4.1.0", buslog=blf)
        assert result.ok, result.error
        assert_no_violations(sim)
    reset = next(ex for ex in result.record.exchanges if ex.step == "reset")
    assert reset.t_response is not None
    quiet_until = reset.t_response + 0.3
    req_ids = {ecu.connection.application.request_id, ecu.connection.bootloader.request_id}
    with can.BLFReader(str(blf)) as reader:
        sent = [m for m in reader if not m.is_rx and m.arbitration_id in req_ids]
    early = [m for m in sent if reset.t_response + 0.001 < m.timestamp < quiet_until - 0.01]
    assert not early, [bytes(m.data).hex(" ") for m in early]
    after = [ex for ex in result.record.exchanges if ex.t_request > reset.t_response]
    assert [ex.step for ex in after] == [APPLICATION_START_STEP, "read_version"]
    assert all(ex.response_hex for ex in after)


def test_bootloader_slower_than_its_entry_delay_is_probed(can_channel: str, tmp_path: Path) -> None:
    """The supplier documents 80 ms, the bootloader needs 250 ms: the first probes go
    unanswered, the sequence starts when it answers (the old engine's 10 03 timed out)."""
    tester = fast_ecu()
    machine = copy.deepcopy(tester)
    image = make_image("4.2.0", (0x900,))
    with fast_sim(machine, can_channel, tmp_path / "sim", boot_time_ms=250) as sim:
        result = _flash(tester, can_channel, image, expected="4.2.0")
        assert result.ok, result.error
        assert memory_matches(sim, image)
    detail = _step(result, BOOTLOADER_READY_STEP)
    assert "answered after" in detail and "answered after 1 probe" not in detail
    # Each unanswered probe waited its P2 before the next one: never two outstanding.
    probes = [ex for ex in result.record.exchanges if ex.step == BOOTLOADER_READY_STEP]
    for a, b in itertools.pairwise(probes):
        assert b.t_request - a.t_request >= tester.uds.p2_timeout_ms / 1000 - 0.01


def test_application_that_never_answers_names_the_setting(can_channel: str, tmp_path: Path) -> None:
    tester = fast_ecu()
    machine = copy.deepcopy(tester)
    tester.connection.application = IsoTpAddress(0x7E4, 0x7EC)  # nobody answers there
    tester.uds.preconditions = []
    tester.uds.timing.application_start_timeout_s = 0.8
    image = make_image("4.3.0", (0x600,))
    with fast_sim(machine, can_channel, tmp_path / "sim") as sim:
        result = _flash(tester, can_channel, image, expected="4.3.0", boot_wait_s=None)
        assert memory_matches(sim, image)
    assert not result.ok and result.outcome == OUTCOME_FAILED
    assert isinstance(result.error, VerificationError)
    assert result.record.failed_step == APPLICATION_START_STEP
    assert "timing.application_start_timeout_s = 0.8 s" in str(result.error)
    assert "timing.reset_time_ms" in str(result.error)


# -- 2. verification --------------------------------------------------------------------------


def test_verified_only_when_read_and_equal(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    image = make_image("5.0.0", (0x600,))
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        verified = _flash(ecu, can_channel, image, expected="5.0.0")
        unexpected = _flash(ecu, can_channel, image, expected=None)
        for step in ecu.uds.sequence:
            if step.kind.value == "read_version":
                step.enabled = False
        unread = _flash(ecu, can_channel, image, expected="5.0.0")
        assert_no_violations(sim)
    assert verified.ok and verified.verified and verified.outcome == OUTCOME_VERIFIED
    assert verified.record.verification == "verified" and verified.version_after == "5.0.0"
    assert unexpected.ok and not unexpected.verified
    assert unexpected.outcome == OUTCOME_NOT_VERIFIED and unexpected.version_after == "5.0.0"
    # The false "verified": read_version disabled, an expected version given.
    assert unread.ok and not unread.verified and unread.outcome == OUTCOME_NOT_VERIFIED
    assert unread.record.verification == "not_verified" and unread.version_after == ""
    assert not unread.record.verified
    assert _step(unread, APPLICATION_START_STEP).endswith("the version is not read")


def test_failed_flash_claims_nothing(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        result = _flash(ecu, can_channel, make_image("5.1.0", (0x600,)), expected="9.9.9")
        assert_no_violations(sim)
    assert not result.ok and result.outcome == OUTCOME_FAILED
    assert result.record.verification == "" and not result.verified


# -- 3. fingerprint ---------------------------------------------------------------------------


def test_fingerprint_has_the_length_the_ecu_wants(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    fp = next(s for s in ecu.uds.sequence if s.kind.value == "fingerprint")
    fp.params.update({"length": 9, "format": "raw", "data": "01 02 03"})
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        result = _flash(ecu, can_channel, make_image("5.2.0", (0x600,)), expected="5.2.0")
        assert result.ok, result.error
        assert sim.state().fingerprint_hex == "010203000000000000"
        assert_no_violations(sim)


# -- 4. erase policy --------------------------------------------------------------------------

# Three segments in one 4 KiB-sector region, the first two sharing a sector.
MULTI = make_image("6.0.0", (0x900, 0x300, 0x1200), gap=0x100)


def test_per_region_erases_once(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    assert ecu.uds.erase_policy == "per_region"
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        result = _flash(ecu, can_channel, MULTI, expected="6.0.0")
        assert result.ok, result.error
        assert memory_matches(sim, MULTI)
        assert [n for _, n in sim.state().region_erases] == [1]
        assert_no_violations(sim)
    start = MULTI.segments[0].address
    end = MULTI.segments[-1].address + len(MULTI.segments[-1].data)
    [(address, length)] = erase_requests(result)
    assert address == start and address + length == -(-end // 0x1000) * 0x1000


def test_per_segment_never_erases_a_sector_twice(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    ecu.uds.erase_policy = "per_segment"
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        result = _flash(ecu, can_channel, MULTI, expected="6.0.0")
        assert result.ok, result.error
        assert memory_matches(sim, MULTI)
        assert all(n == 1 for _, n in sim.state().sector_erases)
        assert_no_violations(sim)
    erases = sorted(erase_requests(result))
    assert len(erases) == 2  # segment 2 lies in segment 1's sector: not erased again
    for (a, n), (b, _) in itertools.pairwise(erases):
        assert a + n <= b


def test_whole_region_and_protected_range(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    region = ecu.uds.memory_regions[0]
    ecu.uds.erase_policy = "whole_region"
    keys = ProtectedRange(name="keys", start=region.end - 0x2000, length=0x1000)
    ecu.uds.protected_ranges = [keys]
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        result = _flash(ecu, can_channel, MULTI, expected="6.0.0")
        assert result.ok, result.error
        assert_no_violations(sim)
        assert erase_requests(result) == [
            (region.start, keys.start - region.start),
            (keys.end, region.end - keys.end),
        ]
        # An image reaching into the protected range is refused before anything is sent.
        before = sim.state().requests
        bad = FirmwareImage((Segment(keys.start - 0x100, bytes(0x200)),))
        refused = _flash(ecu, can_channel, bad)
        assert isinstance(refused.error, ConfigurationError)
        assert 'protected range "keys"' in str(refused.error)
        assert refused.record.exchanges == [] and sim.state().requests == before


# -- 5. preconditions -------------------------------------------------------------------------


def test_routine_precondition_status(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    ecu.uds.routine_preconditions = [RoutinePrecondition(name="Programming preconditions")]
    image = make_image("7.0.0", (0x600,))
    refusing = {"precondition_status": 0x01, "precondition_reason": "ENGINE"}
    with fast_sim(ecu, can_channel, tmp_path / "sim", **refusing) as sim:
        refused = _flash(ecu, can_channel, image, expected="7.0.0")
        assert isinstance(refused.error, PreconditionError)
        assert refused.record.failed_step == "preconditions"
        assert "status 0x01 'ENGINE', expected 0x00" in str(refused.error)
        assert sim.state().mode == "application"  # nothing reached the bootloader
        sim.options.precondition_status = 0x00
        result = _flash(ecu, can_channel, image, expected="7.0.0")
        assert result.ok, result.error
        assert_no_violations(sim)
    assert "Programming preconditions OK (status 0x00)" in _step(result, "preconditions")


def test_silent_application_fails_preconditions_unless_skippable(
    can_channel: str, tmp_path: Path
) -> None:
    """The issue's GUI case: the application does not answer; the old engine skipped the
    preconditions with a log line and flashed."""
    tester = fast_ecu()
    machine = copy.deepcopy(tester)
    tester.connection.application = IsoTpAddress(0x7E4, 0x7EC)  # nobody answers there
    tester.uds.timing.application_start_timeout_s = 0.5
    image = make_image("7.1.0", (0x600,))
    with fast_sim(machine, can_channel, tmp_path / "sim") as sim:
        refused = _flash(tester, can_channel, image, boot_wait_s=None)
        assert isinstance(refused.error, PreconditionError)
        assert refused.record.failed_step == "preconditions"
        assert '"Machine stationary"' in str(refused.error)
        assert '"Supply voltage"' in str(refused.error)
        assert sim.state().mode == "application" and sim.state().boots == 0
        for pre in tester.uds.preconditions:
            pre.skippable = True
            pre.skip_reason = "operator confirms on the machine"
        tester.uds.sequence = [s for s in tester.uds.sequence if s.kind.value != "read_version"]
        result = _flash(tester, can_channel, image, boot_wait_s=None)
        assert result.ok, result.error
        assert memory_matches(sim, image)
    detail = _step(result, "preconditions")
    assert "skipped Machine stationary" in detail and "operator confirms on the machine" in detail


# -- 6. clean start ---------------------------------------------------------------------------


def test_rerun_inside_s3_starts_from_the_default_session(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    image = make_image("8.0.0", (0x600,))
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        sim.inject(Fault(step="check", kind="nrc", arg=0x72))
        failed = _flash(ecu, can_channel, image, expected="8.0.0")
        assert not failed.ok and sim.state().session == 0x02  # still programming, S3 running
        again = _flash(ecu, can_channel, image, expected="8.0.0")
        assert again.ok, again.error
        ecu.uds.active_session_did = 0xF186
        third = _flash(ecu, can_channel, image, expected="8.0.0")
        assert third.ok, third.error
        assert_no_violations(sim)
    assert [ex.nrc for ex in again.record.exchanges if ex.nrc is not None] == []
    assert "entry frame not sent" in _step(again, "bootloader_entry")
    assert _step(again, CLEAN_START_STEP) == "default session 0x01"
    assert "already in the default session" in _step(third, CLEAN_START_STEP)


# -- 8. step times ----------------------------------------------------------------------------


def test_every_phase_is_a_timed_step(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu()
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        result = _flash(ecu, can_channel, MULTI, expected="6.0.0")
        assert result.ok, result.error
        assert_no_violations(sim)
    names = [s.step for s in result.record.steps]
    for name in (
        "preconditions",
        "bootloader_entry",
        BOOTLOADER_READY_STEP,
        CLEAN_START_STEP,
        "erase",
        "transfer_data",
        "check",
        "reset",
        APPLICATION_START_STEP,
        "read_version",
    ):
        assert name in names
    for s in result.record.steps:
        assert s.ok and s.finished_at is not None and s.finished_at >= s.started_at
    assert names.count("transfer_data") == len(MULTI.segments)


def test_demo_sim_default_options_have_no_violations(can_channel: str, tmp_path: Path) -> None:
    """The simulator's defaults boot just inside the EA's documented times."""
    ecu = fast_ecu("BCU")
    image = make_image("9.0.0", (0x900, 0x500))
    # sim_ecu's own options: short erases, boot and reset at the simulator's defaults.
    with sim_ecu(ecu, can_channel, tmp_path / "sim", fd=True) as sim:
        result = _flash(ecu, can_channel, image, expected="9.0.0")
        assert result.ok and result.verified, result.error
        assert_no_violations(sim)


def test_flash_started_while_the_ecu_reboots_waits_for_the_application(
    can_channel: str, tmp_path: Path
) -> None:
    """A re-run started right after a reset (found by the fault matrix: read_version late, then
    the re-run) met an ECU whose application and bootloader were both still silent and failed
    its preconditions. Neither answering means "still starting": the application is probed up
    to its documented start time, then the preconditions are read and the flash goes on."""
    ecu = fast_ecu()
    ecu.uds.timing.reset_time_ms = 2500  # a long reboot window after 11 01
    image = make_image("7.2.0", (0x600,))
    app = ecu.connection.application
    with fast_sim(ecu, can_channel, tmp_path / "sim", reset_time_ms=None) as sim:
        with can.Bus(interface="virtual", channel=can_channel, ignore_config=True) as bus:
            # Someone else resets the ECU (ECUReset hardReset, one ISO-TP single frame) ...
            bus.send(
                can.Message(
                    arbitration_id=app.request_id,
                    data=bytes([0x02, 0x11, 0x01]) + bytes([0xAA] * 5),
                    is_extended_id=app.request_id > 0x7FF,
                )
            )
            answer = None
            while answer is None:
                msg = bus.recv(2.0)
                assert msg is not None, "no answer to 11 01"
                if msg.arbitration_id == app.response_id:
                    answer = bytes(msg.data[1:3])
            assert answer == bytes([0x51, 0x01])
        # ... and the flash starts at once, while it reboots.
        result = _flash(ecu, can_channel, image, expected="7.2.0", boot_wait_s=None)
        assert result.ok, result.error
        assert "Machine stationary" in _step(result, "preconditions")
        assert memory_matches(sim, image)
