"""FotaClient with ScriptedHmi and ScriptedOemLogic against a real TcuNode on a virtual bus."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import can
import pytest

from fota_studio.core.errors import ConfigurationError
from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.fota_client import FotaClient, TcuAccessError
from fota_studio.protocols.tcu_node import TcuNode
from fota_studio.sim.hmi import ScriptedHmi
from fota_studio.sim.oem import ScriptedOemLogic
from tests.fakes.tcu import TcuOffer, bus_pair, started_tcu

WAIT_S = 5.0


@dataclass
class Rig:
    tcu_bus: can.BusABC
    machine_bus: can.BusABC
    tcu: TcuNode
    client: FotaClient
    state_file: Path


@pytest.fixture
def rig(can_channel: str, tmp_path: Path) -> Iterator[Rig]:
    state_file = tmp_path / "tcu.json"
    with (
        bus_pair(can_channel) as (tcu_bus, machine_bus),
        started_tcu(tcu_bus, state_file, heartbeat_period_ms=100) as tcu,
    ):
        client = FotaClient(machine_bus, poll_period_s=0.2, sdo_timeout_s=2.0)
        client.start()
        yield Rig(tcu_bus, machine_bus, tcu, client, state_file)
        client.stop()


def offer(tcu: TcuNode, request_id: int = 7) -> None:
    """Offer BCU 3.1.0 (3.0.0 installed) as request `request_id`."""
    TcuOffer("BCU", "3.0.0", "3.1.0", expected_downtime_s=240).make(tcu, request_id)


def test_hmi_approves_offer(rig: Rig) -> None:
    with ScriptedHmi(rig.client, decision=fo.DECISION_APPROVE, delay_s=0.05) as hmi:
        offer(rig.tcu)
        assert rig.tcu.wait_operator_decision(WAIT_S) == fo.DECISION_APPROVE
        [made] = hmi.wait_decisions(1, WAIT_S)
    assert made.accepted and made.decision == fo.DECISION_APPROVE
    assert made.offer.target_ecu == "BCU"
    assert (made.offer.installed_version, made.offer.offered_version) == ("3.0.0", "3.1.0")
    assert made.offer.expected_downtime_s == 240 and made.offer.request_id == 7
    assert rig.tcu.get(fo.UPDATE_AVAILABLE) == 0


def test_hmi_rejects_offer(rig: Rig) -> None:
    with ScriptedHmi(rig.client, decision=fo.DECISION_REJECT, delay_s=0.0):
        offer(rig.tcu)
        assert rig.tcu.wait_operator_decision(WAIT_S) == fo.DECISION_REJECT


def test_hmi_answers_each_new_offer_once(rig: Rig) -> None:
    with ScriptedHmi(rig.client, decision=fo.DECISION_APPROVE, delay_s=0.0) as hmi:
        offer(rig.tcu, request_id=1)
        assert rig.tcu.wait_operator_decision(WAIT_S) == fo.DECISION_APPROVE
        offer(rig.tcu, request_id=2)
        assert rig.tcu.wait_operator_decision(WAIT_S) == fo.DECISION_APPROVE
        made = hmi.wait_decisions(2, WAIT_S)
    assert [d.offer.request_id for d in made] == [1, 2]
    assert all(d.accepted for d in made)


def test_silent_hmi_lets_approval_time_out(rig: Rig) -> None:
    with ScriptedHmi(rig.client, decision=None) as hmi:
        offer(rig.tcu)
        [seen] = hmi.wait_decisions(1, WAIT_S)  # it saw the offer and chose not to answer
        assert seen.decision is None
        assert rig.tcu.wait_operator_decision(0.3) is None
    assert rig.tcu.get(fo.UPDATE_AVAILABLE) == 1


def test_oem_verdict_only_accepted_in_status_2(rig: Rig) -> None:
    with pytest.raises(TcuAccessError) as err:
        rig.client.write_oem_verification(fo.VERDICT_HEALTHY)
    assert err.value.abort_code == 0x0800_0022
    rig.tcu.set_status(fo.STATUS_FLASHING)
    with pytest.raises(TcuAccessError) as err:
        rig.client.report_healthy(True)
    assert err.value.abort_code == 0x0800_0022
    with ScriptedOemLogic(rig.client, verdict=fo.VERDICT_HEALTHY, delay_s=0.0) as oem:
        rig.tcu.set_status(fo.STATUS_WAITING_VERIFICATION)
        assert rig.tcu.wait_oem_verification(WAIT_S) == fo.VERDICT_HEALTHY
        [verdict] = oem.wait_verdicts(1, WAIT_S)
    assert verdict.accepted and verdict.verdict == fo.VERDICT_HEALTHY


def test_oem_health_check_decides(rig: Rig) -> None:
    with ScriptedOemLogic(rig.client, health_check=lambda: fo.VERDICT_UNHEALTHY, delay_s=0.0):
        rig.tcu.set_status(fo.STATUS_WAITING_VERIFICATION)
        assert rig.tcu.wait_oem_verification(WAIT_S) == fo.VERDICT_UNHEALTHY


def test_full_update_with_hmi_and_oem_sharing_one_client(rig: Rig) -> None:
    tcu = rig.tcu
    with (
        ScriptedHmi(rig.client, delay_s=0.0) as hmi,
        ScriptedOemLogic(rig.client, delay_s=0.0) as oem,
    ):
        offer(tcu, request_id=99)
        assert tcu.wait_operator_decision(WAIT_S) == fo.DECISION_APPROVE
        tcu.set_status(fo.STATUS_FLASHING)
        tcu.append_log("bootloader entry frame sent")
        tcu.set_progress(55)
        assert rig.client.read_progress_percent() == 55
        tcu.set_status(fo.STATUS_WAITING_VERIFICATION)
        assert tcu.wait_oem_verification(WAIT_S) == fo.VERDICT_HEALTHY
        tcu.set_status(fo.STATUS_SUCCESSFUL)
        final = rig.client.wait_state(lambda s: s.update_status == fo.STATUS_SUCCESSFUL, WAIT_S)
        assert final is not None and final.update_available == 0
        assert len(hmi.decisions) == 1 and len(oem.verdicts) == 1
    assert rig.client.read_diagnostic_log() == "bootloader entry frame sent\n"


def test_client_reads_and_writes(rig: Rig) -> None:
    client = rig.client
    assert client.read_diagnostic_log() == ""  # empty log: TCU says "no data"
    assert client.read(fo.TARGET_ECU) == ""
    offer(rig.tcu, request_id=0xDEAD_BEEF)
    rig.tcu.set_last_error(fo.error_code_for_nrc(0x31))
    got = client.read_offer()
    assert got.request_id == 0xDEAD_BEEF and got.target_ecu == "BCU"
    assert client.read_update_available() == 1
    assert client.read_update_status() == fo.STATUS_IDLE
    assert client.read_last_error() == 0x0001_0031
    assert client.read_timeouts_s() == (3600, 300)
    client.write_timeouts_s(approval_timeout_s=900, verification_timeout_s=60)
    assert rig.tcu.get(fo.APPROVAL_TIMEOUT_S) == 900
    assert client.read_timeouts_s() == (900, 60)
    with pytest.raises(TcuAccessError) as err:
        client.write_operator_decision(3)
    assert err.value.abort_code == 0x0609_0030
    with pytest.raises(TcuAccessError) as err:
        client.write(fo.UPDATE_STATUS, 1)
    assert err.value.abort_code == 0x0601_0002
    with pytest.raises(ConfigurationError):
        client.read("not_an_object")
    client.approve()
    with pytest.raises(TcuAccessError) as err:
        client.reject()
    assert err.value.abort_code == 0x0800_0022


def test_state_from_tpdo_without_polling(rig: Rig) -> None:
    # One receive loop per bus: the rig's client gives the machine bus up first.
    rig.client.stop()
    client = FotaClient(rig.machine_bus, poll_period_s=None)
    client.start()
    try:
        assert client.state is None
        changes: list[tuple[int, int]] = []
        client.add_state_listener(lambda s: changes.append((s.update_available, s.update_status)))
        offer(rig.tcu)
        state = client.wait_state(lambda s: s.update_available == 1, WAIT_S)
        assert state is not None and state.source == "tpdo"
        rig.tcu.set_status(fo.STATUS_FLASHING)
        state = client.wait_state(lambda s: s.update_status == fo.STATUS_FLASHING, WAIT_S)
        assert state is not None
        assert changes[:2] == [(1, fo.STATUS_IDLE), (1, fo.STATUS_FLASHING)]
    finally:
        client.stop()


def test_state_from_polling_when_tpdo_was_missed(rig: Rig) -> None:
    # The TCU changed its state before this client listened: only polling can tell.
    rig.client.stop()
    rig.tcu.set_status(fo.STATUS_FAILED)
    while rig.machine_bus.recv(0) is not None:  # the TPDO went by while nobody listened
        pass
    client = FotaClient(rig.machine_bus, poll_period_s=0.1)
    client.start()
    try:
        state = client.wait_state(lambda s: s.update_status == fo.STATUS_FAILED, WAIT_S)
        assert state is not None and state.source == "poll"
        assert state.describe() == "no update, failed"
    finally:
        client.stop()


def test_shared_notifier(rig: Rig) -> None:
    rig.client.stop()
    notifier = can.Notifier(rig.machine_bus, [], timeout=0.1)
    try:
        client = FotaClient(rig.machine_bus, notifier=notifier, poll_period_s=None)
        with client:
            offer(rig.tcu)
            assert client.read_update_available() == 1
        assert notifier.listeners == []
    finally:
        notifier.stop(timeout=0.1)


def test_no_tcu_on_the_bus(can_channel: str) -> None:
    bus = can.Bus(interface="virtual", channel=can_channel + "-empty", ignore_config=True)
    try:
        with FotaClient(bus, poll_period_s=None, sdo_timeout_s=0.05) as client:
            with pytest.raises(TcuAccessError, match="no SDO answer") as err:
                client.read_update_status()
            assert err.value.abort_code is None
    finally:
        bus.shutdown()


def test_persistence_across_tcu_restart(rig: Rig) -> None:
    with ScriptedHmi(rig.client, delay_s=0.0):
        offer(rig.tcu, request_id=314)
        assert rig.tcu.wait_operator_decision(WAIT_S) == fo.DECISION_APPROVE
    rig.tcu.set_status(fo.STATUS_WAITING_VERIFICATION)
    rig.tcu.append_log("flashed 3.1.0")
    rig.tcu.set_last_error(fo.ERROR_NONE)
    rig.tcu.stop()

    restarted = TcuNode(rig.tcu_bus, state_file=rig.state_file, heartbeat_period_ms=100)
    restarted.start()
    try:
        client = rig.client
        assert client.read_request_id() == 314
        assert client.read_update_status() == fo.STATUS_WAITING_VERIFICATION
        assert client.read_update_available() == 0
        assert client.read_versions() == ("3.0.0", "3.1.0")
        assert client.read_diagnostic_log() == "flashed 3.1.0\n"
        # Checkpoint 2 can still be answered after the restart.
        with ScriptedOemLogic(client, delay_s=0.0):
            assert restarted.wait_oem_verification(WAIT_S) == fo.VERDICT_HEALTHY
    finally:
        restarted.stop()


def test_client_acts_only_on_a_state_seen_after_its_last_write(can_channel: str) -> None:
    """The OEM logic once acted on a stale polled status. A state observed before this client's
    last write is not acted on: wait_state waits for a TPDO or a poll begun after the write."""
    tcu_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    machine_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    tcu = TcuNode(tcu_bus, heartbeat_period_ms=100)
    tcu.start()
    client = FotaClient(machine_bus, poll_period_s=None, sdo_timeout_s=2.0)  # no polling
    client.start()
    try:
        offer(tcu)
        assert client.wait_state(lambda s: s.update_available == 1, WAIT_S) is not None
        # A write that does not change the state (no TPDO follows): what we saw before it may
        # no longer be true, so it is not acted on ...
        client.write(fo.APPROVAL_TIMEOUT_S, 600)
        assert client.wait_state(lambda s: s.update_available == 1, 0.3) is None
        # ... until the state is read again after the write.
        assert client.poll_once().update_available == 1
        assert client.wait_state(lambda s: s.update_available == 1, 0.3) is not None
    finally:
        client.stop()
        tcu.stop()
        machine_bus.shutdown()
        tcu_bus.shutdown()
