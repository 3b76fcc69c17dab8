"""The strict simulated bootloader: silence during reboots, the violation log, erase counting,
the fingerprint length, S3 during 0x78, the preconditions routine, slow programming.

A plain udsoncan/can-isotp tester with raw requests; nothing of the flash engine is used.
"""

from __future__ import annotations

from collections.abc import Callable

import can
import pytest

from fota_studio.core.ea import EcuDefinition, ProtectedRange
from fota_studio.demo import catalog as demo_catalog
from fota_studio.sim.uds_ecu import SimEcuOptions
from fota_studio.sim.uds_model import (
    V_DURING_REBOOT,
    V_FINGERPRINT,
    V_OUTSTANDING,
    V_PROTECTED,
    V_REERASE,
    V_S3,
    V_TRANSFER_SEQUENCE,
)
from tests.fakes.uds_tester import (
    FINGERPRINT,
    Rig,
    ask,
    enter_bootloader,
    unlock_programming,
    wait_for,
)

APP = demo_catalog.APP_REGION_START
FAST = {"erase_ms_per_kib": 0.5, "erase_min_ms": 20, "pending_interval_ms": 50}


def _erase(address: int, length: int) -> bytes:
    return bytes.fromhex("3101ff0044") + address.to_bytes(4, "big") + length.to_bytes(4, "big")


def _kinds(rig: Rig) -> list[str]:
    return [v.kind for v in rig.sim.violations]


def test_no_answer_and_no_flow_control_during_reset(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", mode="application", options=SimEcuOptions(reset_time_ms=400, **FAST))
    assert ask(rig.tester, bytes([0x11, 0x01])) == bytes([0x51, 0x01])
    assert ask(rig.tester, bytes([0x22, 0xF1, 0x95]), timeout=0.1) is None  # rebooting
    # A first frame gets no flow control: the ECU's transport layer is not running either.
    reader = can.BufferedReader()
    rig.tester.notifier.add_listener(reader)
    try:
        rig.tester.send_raw(0x7E0, bytes([0x10, 0x16, 0x2E, 0xF1, 0x5A, 0, 0, 0]))
        answers = []
        while (msg := reader.get_message(0.1)) is not None:
            if msg.arbitration_id == 0x7E8:
                answers.append(msg)
        assert answers == []
    finally:
        rig.tester.notifier.remove_listener(reader)
    assert _kinds(rig) == [V_DURING_REBOOT, V_DURING_REBOOT]
    assert "reset_time_ms" in rig.sim.violations[0].detail
    assert rig.sim.state().violations == tuple(rig.sim.violations)
    wait_for(lambda: rig.sim.state().mode == "application")
    assert ask(rig.tester, bytes([0x3E, 0x00])) == bytes([0x7E, 0x00])
    assert len(rig.sim.violations) == 2  # a request after the reboot is no violation
    rig.sim.clear_violations()
    assert rig.sim.violations == []


def test_reboot_after_entry_frame_lasts_the_documented_delay(make_rig: Callable[..., Rig]) -> None:
    """boot_time_ms unset: the EA's bootloader entry delay (here 300 ms) minus a small margin."""
    rig = make_rig("VCU", options=SimEcuOptions(**FAST))
    entry = rig.ecu_def.connection.bootloader_entry
    assert entry is not None and rig.ecu_def.connection.bootloader_entry_delay_ms == 300
    boot = UdsBoot(rig)
    rig.tester.send_raw(entry.can_id, entry.data)
    assert ask(boot.tester, bytes([0x3E, 0x00]), timeout=0.1) is None
    assert _kinds(rig) == [V_DURING_REBOOT]
    wait_for(lambda: rig.sim.state().mode == "bootloader")
    assert ask(boot.tester, bytes([0x3E, 0x00])) == bytes([0x7E, 0x00])
    assert rig.sim.state().boots == 1


class UdsBoot:
    """The rig's tester already talks to the bootloader IDs (mode="bootloader")."""

    def __init__(self, rig: Rig) -> None:
        self.tester = rig.tester


def test_two_requests_outstanding_during_erase(make_rig: Callable[..., Rig]) -> None:
    opts = SimEcuOptions(erase_ms_per_kib=20, pending_interval_ms=100)
    rig = make_rig("VCU", options=opts)
    enter_bootloader(rig)
    unlock_programming(rig)
    conn = rig.tester.conn
    conn.empty_rxqueue()
    conn.send(_erase(APP, 0x8000))
    assert bytes(conn.wait_frame(timeout=1)) == bytes([0x7F, 0x31, 0x78])
    rig.tester.functional(bytes([0x3E, 0x80]))  # TesterPresent is always allowed
    conn.send(bytes([0x22, 0xF1, 0x95]))
    frames = [bytes(conn.wait_frame(timeout=1)) for _ in range(2)]
    assert bytes([0x7F, 0x22, 0x21]) in frames
    assert _kinds(rig) == [V_OUTSTANDING]
    assert "erase" in rig.sim.violations[0].detail
    final = b""
    while final[:1] != b"\x71":
        final = bytes(conn.wait_frame(timeout=2))
    assert _kinds(rig) == [V_OUTSTANDING]


def test_transfer_out_of_sequence_is_recorded_repeat_is_not(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", options=SimEcuOptions(max_block_length=0x82, **FAST))
    enter_bootloader(rig)
    unlock_programming(rig)
    assert ask(rig.tester, _erase(APP, 0x1000)) == bytes.fromhex("7101ff0000")
    request = bytes.fromhex("340044") + APP.to_bytes(4, "big") + (0x100).to_bytes(4, "big")
    assert ask(rig.tester, request) == bytes.fromhex("74200082")
    assert ask(rig.tester, bytes([0x36, 0x01]) + b"\x01" * 0x80) == bytes([0x76, 0x01])
    assert ask(rig.tester, bytes([0x36, 0x01]) + b"\x01" * 0x80) == bytes([0x76, 0x01])
    assert rig.sim.violations == []  # a repeated block is allowed (ISO 14229-1 §14.4)
    assert ask(rig.tester, bytes([0x36, 0x03]) + b"\x03" * 0x80) == bytes([0x7F, 0x36, 0x73])
    assert ask(rig.tester, bytes([0x37])) == bytes([0x7F, 0x37, 0x24])
    assert _kinds(rig) == [V_TRANSFER_SEQUENCE, V_TRANSFER_SEQUENCE]


def test_fingerprint_length_from_the_ea(make_rig: Callable[..., Rig]) -> None:
    def nine_bytes(ecu: EcuDefinition) -> None:
        step = next(s for s in ecu.uds.sequence if s.kind.value == "fingerprint")
        step.params["length"] = 9

    rig = make_rig("VCU", options=SimEcuOptions(**FAST), configure=nine_bytes)
    enter_bootloader(rig)
    unlock_programming(rig)
    write = bytes.fromhex("2ef15a")
    assert ask(rig.tester, write + FINGERPRINT) == bytes([0x7F, 0x2E, 0x13])
    assert _kinds(rig) == [V_FINGERPRINT]
    assert "9" in rig.sim.violations[0].detail
    assert ask(rig.tester, write + FINGERPRINT[:9]) == bytes.fromhex("6ef15a")
    assert rig.sim.state().fingerprint_hex == FINGERPRINT[:9].hex()


def test_fingerprint_length_not_enforced_when_not_strict(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", options=SimEcuOptions(strict=False, **FAST))
    enter_bootloader(rig)
    unlock_programming(rig)
    assert ask(rig.tester, bytes.fromhex("2ef15a") + b"short") == bytes.fromhex("6ef15a")
    assert rig.sim.violations == []


def test_erase_counts_and_reerase_refused(make_rig: Callable[..., Rig]) -> None:
    image = [(APP, bytes([0x5A]) * 0x4000)]
    rig = make_rig("VCU", options=SimEcuOptions(reerase="refuse", **FAST), image=image)
    enter_bootloader(rig)
    unlock_programming(rig)
    assert ask(rig.tester, _erase(APP, 0x1800)) == bytes.fromhex("7101ff0000")
    assert ask(rig.tester, _erase(APP + 0x3000, 0x1000)) == bytes.fromhex("7101ff0000")
    state = rig.sim.state()
    assert dict(state.region_erases) == {"application": 2}
    assert dict(state.sector_erases) == {APP: 1, APP + 0x1000: 1, APP + 0x3000: 1}
    # Sector APP + 0x1000 again (with a new one): refused, nothing erased, recorded.
    assert ask(rig.tester, _erase(APP + 0x1000, 0x2000)) == bytes([0x7F, 0x31, 0x22])
    assert _kinds(rig) == [V_REERASE]
    assert f"0x{APP + 0x1000:08X}" in rig.sim.violations[0].detail
    assert dict(rig.sim.state().sector_erases)[APP + 0x1000] == 1
    assert rig.sim.memory.read(APP + 0x2000, 0x1000) == bytes([0x5A]) * 0x1000  # untouched


@pytest.mark.parametrize(("policy", "recorded"), [("record", [V_REERASE]), ("allow", [])])
def test_reerase_recorded_or_allowed(
    policy: str, recorded: list[str], make_rig: Callable[..., Rig]
) -> None:
    rig = make_rig("VCU", options=SimEcuOptions(reerase=policy, **FAST))
    enter_bootloader(rig)
    unlock_programming(rig)
    for _ in range(2):
        assert ask(rig.tester, _erase(APP, 0x1000)) == bytes.fromhex("7101ff0000")
    assert dict(rig.sim.state().sector_erases) == {APP: 2}
    assert _kinds(rig) == recorded
    # A new programming session is a new run: its counts start again.
    rig.tester.client.ecu_reset(1)
    wait_for(lambda: rig.sim.state().mode == "bootloader" and rig.sim.state().boots >= 2)


def test_erase_into_an_ea_protected_range(make_rig: Callable[..., Rig]) -> None:
    def protect(ecu: EcuDefinition) -> None:
        ecu.uds.protected_ranges.append(ProtectedRange("calibration", APP + 0x8000, 0x1000))

    rig = make_rig("VCU", options=SimEcuOptions(**FAST), configure=protect)
    enter_bootloader(rig)
    unlock_programming(rig)
    assert ask(rig.tester, _erase(APP + 0x7000, 0x2000)) == bytes([0x7F, 0x31, 0x31])
    assert _kinds(rig) == [V_PROTECTED]
    assert ask(rig.tester, _erase(APP + 0x7000, 0x1000)) == bytes.fromhex("7101ff0000")


def test_s3_runs_during_0x78_unless_told_otherwise(make_rig: Callable[..., Rig]) -> None:
    image = [(APP, bytes([0x5A]) * 0x8000)]
    iso = SimEcuOptions(
        erase_ms_per_kib=25, s3_ms=300, pending_interval_ms=100, s3_during_pending=False
    )
    rig = make_rig("VCU", options=iso, image=image)
    enter_bootloader(rig)
    unlock_programming(rig)
    # 32 KiB * 25 ms = 0.8 s of erase without TesterPresent: S3 paused while answering 0x78.
    assert ask(rig.tester, _erase(APP, 0x8000), timeout=2) == bytes.fromhex("7101ff0000")
    state = rig.sim.state()
    assert state.session == 2 and rig.sim.memory.is_erased(APP, 0x8000)
    assert rig.sim.violations == []


def test_s3_expiry_in_programming_is_recorded(make_rig: Callable[..., Rig]) -> None:
    opts = SimEcuOptions(s3_ms=300, **FAST)
    rig = make_rig("VCU", options=opts)
    enter_bootloader(rig)
    unlock_programming(rig)
    wait_for(lambda: rig.sim.state().session == 1)
    assert _kinds(rig) == [V_S3]


def test_slow_programming_answers_0x78_then_the_block(make_rig: Callable[..., Rig]) -> None:
    opts = SimEcuOptions(programming_ms_per_kib=400, max_block_length=0x402, **FAST)
    rig = make_rig("VCU", options=opts)
    enter_bootloader(rig)
    unlock_programming(rig)
    assert ask(rig.tester, _erase(APP, 0x1000)) == bytes.fromhex("7101ff0000")
    request = bytes.fromhex("340044") + APP.to_bytes(4, "big") + (0x400).to_bytes(4, "big")
    assert ask(rig.tester, request) is not None
    conn = rig.tester.conn
    conn.empty_rxqueue()
    conn.send(bytes([0x36, 0x01]) + b"\x42" * 0x400)  # 1 KiB * 400 ms > P2server (50 ms)
    assert bytes(conn.wait_frame(timeout=1)) == bytes([0x7F, 0x36, 0x78])
    answer = b"\x7f\x36\x78"
    while answer == b"\x7f\x36\x78":
        answer = bytes(conn.wait_frame(timeout=2))
    assert answer == bytes([0x76, 0x01])
    assert rig.sim.memory.read(APP, 0x400) == b"\x42" * 0x400


def test_preconditions_routine_and_active_session(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", mode="application", options=SimEcuOptions(**FAST))
    t = rig.tester
    assert ask(t, bytes.fromhex("22f186")) == bytes.fromhex("62f18601")
    assert ask(t, bytes.fromhex("1003"))[:2] == bytes.fromhex("5003")  # type: ignore[index]
    assert ask(t, bytes.fromhex("22f186")) == bytes.fromhex("62f18603")
    assert ask(t, bytes.fromhex("31010203")) == bytes.fromhex("7101020300")
    rig.sim.set_preconditions(0x05, "speed")
    assert ask(t, bytes.fromhex("31010203")) == bytes.fromhex("7101020305") + b"speed"
    rig.sim.set_preconditions(0x00)
    assert ask(t, bytes.fromhex("31010203")) == bytes.fromhex("7101020300")


def test_preconditions_routine_in_the_bootloader(make_rig: Callable[..., Rig]) -> None:
    def ea_routine(ecu: EcuDefinition) -> None:
        from fota_studio.core.ea import RoutinePrecondition

        ecu.uds.routine_preconditions.append(RoutinePrecondition("ready", routine_id=0x0244))

    opts = SimEcuOptions(precondition_status=0x02, precondition_reason="engine", **FAST)
    rig = make_rig("VCU", options=opts, configure=ea_routine)
    enter_bootloader(rig)
    t = rig.tester
    assert ask(t, bytes.fromhex("31010244")) == bytes([0x7F, 0x31, 0x7F])  # default session
    t.client.change_session(3)
    assert ask(t, bytes.fromhex("31010244")) == bytes.fromhex("7101024402") + b"engine"
    unlock_programming(rig)
    assert ask(t, bytes.fromhex("31010203")) == bytes.fromhex("7101020302") + b"engine"
    assert ask(t, bytes.fromhex("22f186")) == bytes.fromhex("62f18602")


def test_slow_sector_erase_answers_0x78_until_done(make_rig: Callable[..., Rig]) -> None:
    """erase_ms_per_sector models an ECU whose erase takes ~1 s per region, whatever its size."""
    opts = SimEcuOptions(erase_ms_per_kib=0, erase_ms_per_sector=300, pending_interval_ms=100)
    rig = make_rig("VCU", options=opts)
    enter_bootloader(rig)
    unlock_programming(rig)
    conn = rig.tester.conn
    conn.empty_rxqueue()
    conn.send(_erase(APP, 0x1000))  # one sector: 300 ms, 0x78 every 100 ms meanwhile
    answers = [bytes(conn.wait_frame(timeout=1))]
    while answers[-1] == bytes([0x7F, 0x31, 0x78]):
        answers.append(bytes(conn.wait_frame(timeout=1)))
    assert answers[-1] == bytes.fromhex("7101ff0000")
    assert len(answers) >= 3  # at least two 0x78 before the answer
