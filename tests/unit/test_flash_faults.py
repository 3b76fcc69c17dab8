"""Fault matrix: every step × {relevant NRC, no answer, dropped frames, power loss} against the
simulated ECU → the job fails with a named error (never a false success), the ECU stays
reachable in its bootloader, and a re-run without the fault succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.errors import TransferError, UdsNegativeResponseError, VerificationError
from fota_studio.engine.flash_job import FlashResult
from fota_studio.sim.faults import Fault
from fota_studio.sim.uds_ecu import SimEcu
from tests.fakes.flash import fast_ecu, fast_sim, flash_image, make_image, memory_matches

IMAGE = make_image("4.0.0", (0x900, 0x500), gap=0x300)

NRC_CASES = [
    ("extended_session", 0x12),
    ("dtc_off", 0x22),
    ("comm_control_off", 0x22),
    ("security_level_1", 0x35),
    ("programming_session", 0x22),
    ("security_level_2", 0x36),
    ("fingerprint", 0x33),
    ("erase", 0x72),
    ("request_download", 0x70),
    ("transfer_data", 0x73),
    ("transfer_data", 0x71),
    ("transfer_exit", 0x24),
    ("check", 0x72),
    ("reset", 0x22),
]
SILENT_STEPS = [
    "extended_session",
    "comm_control_off",
    "security_level_2",
    "erase",
    "check",
]


def _flash(sim: SimEcu, channel: str, ecu_expected: str = "4.0.0") -> FlashResult:
    return flash_image(sim.ecu, channel, IMAGE, fd=False, expected_version=ecu_expected)


def _assert_recovers(sim: SimEcu, channel: str) -> None:
    sim.clear_faults()
    again = _flash(sim, channel)
    assert again.ok, f"re-run failed: {again.error}"
    assert memory_matches(sim, IMAGE)


@pytest.mark.parametrize(("step", "nrc"), NRC_CASES)
def test_nrc_fails_with_named_error_and_rerun_succeeds(
    step: str, nrc: int, can_channel: str, tmp_path: Path
) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step=step, kind="nrc", arg=nrc))
        result = _flash(sim, can_channel)
        assert not result.ok
        assert isinstance(result.error, UdsNegativeResponseError)
        assert result.error.nrc == nrc
        assert result.record.failed_step == step
        assert result.record.nrc == nrc
        assert result.error.nrc_name in str(result.error)
        assert result.error.hint
        assert sim.state().mode == "bootloader"
        _assert_recovers(sim, can_channel)


@pytest.mark.parametrize("step", SILENT_STEPS)
def test_no_answer_times_out_and_rerun_succeeds(
    step: str, can_channel: str, tmp_path: Path
) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step=step, kind="no_answer"))
        result = _flash(sim, can_channel)
        assert not result.ok
        assert isinstance(result.error, TransferError)
        assert result.record.failed_step == step
        assert "no response" in str(result.error)
        _assert_recovers(sim, can_channel)


@pytest.mark.parametrize("step", ["security_level_1", "request_download", "transfer_exit"])
def test_dropped_response_frame_fails(step: str, can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step=step, kind="drop", arg=1))
        result = _flash(sim, can_channel)
        assert not result.ok
        assert result.record.failed_step == step
        _assert_recovers(sim, can_channel)


def test_transfer_block_timeout_is_resent_with_same_counter(
    can_channel: str, tmp_path: Path
) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step="transfer_data", kind="drop", arg=1))
        sim.inject(Fault(step="transfer_data", kind="no_answer"))
        result = _flash(sim, can_channel)
        assert result.ok, result.error
        assert result.record.block_retries == 2
        assert memory_matches(sim, IMAGE)


def test_transfer_block_retries_are_bounded(can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step="transfer_data", kind="no_answer", count=10))
        result = _flash(sim, can_channel)
        assert not result.ok
        assert isinstance(result.error, TransferError)
        assert "after 4 attempts" in str(result.error)
        _assert_recovers(sim, can_channel)


def test_busy_repeat_request_is_retried(can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step="request_download", kind="nrc", arg=0x21))
        result = _flash(sim, can_channel)
        assert result.ok, result.error


def test_power_loss_during_transfer(can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step="transfer_data", kind="power_loss", arg=0x500))
        result = _flash(sim, can_channel)
        assert not result.ok
        assert result.record.failed_step == "transfer_data"
        state = sim.state()
        assert state.mode == "bootloader" and not state.app_valid
        _assert_recovers(sim, can_channel)


def test_erase_failure_and_wrong_key(can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step="erase", kind="fail"))
        result = _flash(sim, can_channel)
        assert isinstance(result.error, UdsNegativeResponseError)
        assert result.error.nrc == 0x72 and result.record.failed_step == "erase"
        sim.clear_faults()
        sim.inject(Fault(step="security_level_2", kind="wrong_key_algorithm"))
        result = _flash(sim, can_channel)
        assert isinstance(result.error, UdsNegativeResponseError)
        assert result.error.nrc == 0x35
        assert result.record.failed_step == "security_level_2"
        _assert_recovers(sim, can_channel)


def test_refused_bootloader_entry(can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step="bootloader_entry", kind="refuse"))
        result = _flash(sim, can_channel)
        assert not result.ok
        # The bootloader never answers the readiness probes: the error names what to check.
        assert result.record.failed_step == "bootloader_ready"
        for setting in (
            "bootloader_entry_delay_ms",
            "timing.reset_time_ms",
            "timing.bootloader_ready_timeout_ms",
        ):
            assert setting in str(result.error)
        assert sim.state().mode == "application" and sim.state().app_valid
        _assert_recovers(sim, can_channel)


def test_wrong_version_after_reset_is_not_a_success(can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        result = _flash(sim, can_channel, ecu_expected="9.9.9")
        assert not result.ok
        assert isinstance(result.error, VerificationError)
        assert result.record.failed_step == "read_version"


def test_read_version_refused(can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path) as sim:
        sim.inject(Fault(step="read_version", kind="nrc", arg=0x22, count=1000))
        result = _flash(sim, can_channel)
        assert not result.ok
        assert isinstance(result.error, VerificationError)
        _assert_recovers(sim, can_channel)


def test_precondition_violation_stops_before_erase(can_channel: str, tmp_path: Path) -> None:
    with fast_sim(fast_ecu(), can_channel, tmp_path, vehicle_speed_kmh=12) as sim:
        result = _flash(sim, can_channel)
        assert not result.ok
        assert result.record.failed_step == "preconditions"
        assert "Machine stationary" in str(result.error)
        state = sim.state()
        assert state.mode == "application" and state.app_valid
