"""TcuNode through the canopen library (RemoteNode from the same EDS), its API and persistence."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import can
import canopen
import pytest
from canopen.sdo.exceptions import SdoAbortedError

from fota_studio.core.errors import AdapterError, ConfigurationError
from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.tcu_node import TcuNode
from tests.fakes.tcu import TcuOffer, bus_pair, started_tcu

WAIT_S = 5.0


@pytest.fixture
def buses(can_channel: str) -> Iterator[tuple[can.BusABC, can.BusABC]]:
    """(the TCU's bus, the client's bus)."""
    with bus_pair(can_channel) as pair:
        yield pair


@pytest.fixture
def network(buses: tuple[can.BusABC, can.BusABC]) -> Iterator[canopen.Network]:
    net = canopen.Network(buses[1])
    net.NOTIFIER_CYCLE = 0.1
    net.connect()
    yield net
    assert net.notifier is not None
    net.notifier.stop(timeout=0.5)
    net.notifier = None


@pytest.fixture
def remote(network: canopen.Network) -> canopen.RemoteNode:
    node = network.add_node(fo.DEFAULT_NODE_ID, str(fo.default_eds_path()))
    node.sdo.RESPONSE_TIMEOUT = 2.0
    return node


@pytest.fixture
def tcu(buses: tuple[can.BusABC, can.BusABC], tmp_path: Path) -> Iterator[TcuNode]:
    with started_tcu(buses[0], tmp_path / "tcu-state.json", heartbeat_period_ms=50) as node:
        yield node


def offer(tcu: TcuNode, request_id: int = 42) -> None:
    """Offer HCU 2.4.1 (2.3.0 installed) as request `request_id`."""
    TcuOffer("HCU", "2.3.0", "2.4.1", expected_downtime_s=300).make(tcu, request_id)


def test_remote_reads_every_object_by_name(tcu: TcuNode, remote: canopen.RemoteNode) -> None:
    offer(tcu)
    for line in ("bootloader entry frame sent", "erase ok"):
        tcu.append_log(line)
    rec = remote.sdo["ecu_fota"]
    assert rec[fo.UPDATE_AVAILABLE].raw == 1
    assert rec[fo.UPDATE_STATUS].raw == fo.STATUS_IDLE
    assert rec[fo.OPERATOR_DECISION].raw == 0
    assert rec[fo.OEM_VERIFICATION].raw == 0
    assert rec[fo.TARGET_ECU].raw == "HCU"
    assert rec[fo.INSTALLED_VERSION].raw == "2.3.0"
    assert rec[fo.OFFERED_VERSION].raw == "2.4.1"
    assert rec[fo.PROGRESS_PERCENT].raw == 0
    assert rec[fo.EXPECTED_DOWNTIME_S].raw == 300
    assert rec[fo.APPROVAL_TIMEOUT_S].raw == 3600
    assert rec[fo.VERIFICATION_TIMEOUT_S].raw == 300
    assert rec[fo.LAST_ERROR].raw == 0
    assert rec[fo.DIAGNOSTIC_LOG].raw == b"bootloader entry frame sent\nerase ok\n"
    assert rec[fo.REQUEST_ID].raw == 42
    assert remote.sdo[0x1017].raw == 50
    assert remote.sdo[0x1018][2].raw == 0x5FF3


def test_remote_decisions_and_abort_codes(tcu: TcuNode, remote: canopen.RemoteNode) -> None:
    rec = remote.sdo["ecu_fota"]
    with pytest.raises(SdoAbortedError) as err:
        rec[fo.OPERATOR_DECISION].raw = fo.DECISION_APPROVE
    assert err.value.code == 0x0800_0022
    offer(tcu)
    with pytest.raises(SdoAbortedError) as err:
        rec[fo.OPERATOR_DECISION].raw = 5
    assert err.value.code == 0x0609_0030
    with pytest.raises(SdoAbortedError) as err:
        rec[fo.UPDATE_STATUS].raw = fo.STATUS_SUCCESSFUL
    assert err.value.code == 0x0601_0002
    with pytest.raises(SdoAbortedError) as err:
        remote.sdo.upload(fo.FOTA_INDEX, 0x40)
    assert err.value.code == 0x0609_0011
    rec[fo.OPERATOR_DECISION].raw = fo.DECISION_REJECT
    assert tcu.wait_operator_decision(WAIT_S) == fo.DECISION_REJECT
    assert rec[fo.UPDATE_AVAILABLE].raw == 0

    with pytest.raises(SdoAbortedError) as err:
        rec[fo.OEM_VERIFICATION].raw = fo.VERDICT_HEALTHY
    assert err.value.code == 0x0800_0022
    tcu.set_status(fo.STATUS_WAITING_VERIFICATION)
    rec[fo.OEM_VERIFICATION].raw = fo.VERDICT_HEALTHY
    assert tcu.wait_oem_verification(WAIT_S) == fo.VERDICT_HEALTHY


def test_remote_long_log_segmented_upload(tcu: TcuNode, remote: canopen.RemoteNode) -> None:
    lines = [f"TransferData block {i:03d} accepted, {i * 4096} bytes" for i in range(40)]
    for line in lines:
        tcu.append_log(line)
    assert remote.sdo["ecu_fota"][fo.DIAGNOSTIC_LOG].raw.decode() == "\n".join(lines) + "\n"


def test_remote_sees_boot_up_and_operational_heartbeat(
    buses: tuple[can.BusABC, can.BusABC], remote: canopen.RemoteNode
) -> None:
    states: list[int] = []
    seen = threading.Event()

    def on_state(state: int) -> None:
        states.append(state)
        if state == 5:
            seen.set()

    remote.nmt.add_heartbeat_callback(on_state)
    node = TcuNode(buses[0], heartbeat_period_ms=50)
    node.start()
    try:
        assert seen.wait(WAIT_S)
        assert states[0] == 0  # boot-up first
        assert remote.nmt.state == "OPERATIONAL"
    finally:
        node.stop()


def test_remote_tpdo_on_change(tcu: TcuNode, remote: canopen.RemoteNode) -> None:
    remote.tpdo.read(from_od=True)
    tpdo = remote.tpdo[1]
    assert tpdo.cob_id == 0x180 + fo.DEFAULT_NODE_ID
    received: list[tuple[int, int]] = []
    got = threading.Condition()

    def on_tpdo(pdo_map: object) -> None:
        with got:
            received.append(
                (
                    tpdo[f"ecu_fota.{fo.UPDATE_AVAILABLE}"].raw,
                    tpdo[f"ecu_fota.{fo.UPDATE_STATUS}"].raw,
                )
            )
            got.notify_all()

    tpdo.add_callback(on_tpdo)
    offer(tcu)
    tcu.set_status(fo.STATUS_FLASHING)
    with got:
        assert got.wait_for(lambda: (1, fo.STATUS_FLASHING) in received, WAIT_S)
    assert (1, 0) in received


def test_shared_notifier_is_used_and_released(buses: tuple[can.BusABC, can.BusABC]) -> None:
    tcu_bus, client_bus = buses
    notifier = can.Notifier(tcu_bus, [], timeout=0.1)
    try:
        node = TcuNode(tcu_bus, notifier=notifier, heartbeat_period_ms=0)
        node.start()
        assert len(notifier.listeners) == 1
        client_bus.send(can.Message(arbitration_id=0x67A, data=bytes.fromhex("40F35F0E00000000")))
        reply = client_bus.recv(WAIT_S)
        while reply is not None and reply.arbitration_id != 0x5FA:
            reply = client_bus.recv(WAIT_S)
        assert reply is not None and reply.data[0] == 0x43
        node.stop()
        node.stop()  # idempotent
        assert notifier.listeners == []
    finally:
        notifier.stop(timeout=0.1)


def test_second_receive_loop_on_a_bus_is_refused(buses: tuple[can.BusABC, can.BusABC]) -> None:
    notifier = can.Notifier(buses[0], [], timeout=0.1)
    try:
        node = TcuNode(buses[0])
        with pytest.raises(AdapterError, match="notifier="):
            node.start()
        assert not node.running
    finally:
        notifier.stop(timeout=0.1)


def test_persistent_objects_survive_restart(
    buses: tuple[can.BusABC, can.BusABC], tmp_path: Path
) -> None:
    state_file = tmp_path / "state" / "tcu.json"
    node = TcuNode(buses[0], state_file=state_file)
    node.start()
    offer(node, request_id=777)
    node.set_status(fo.STATUS_WAITING_VERIFICATION)
    node.set_progress(100)
    node.set_last_error(fo.error_code_for_nrc(0x72))
    node.set(fo.APPROVAL_TIMEOUT_S, 120)
    node.append_log("flash done")
    node.stop()
    assert not (state_file.parent / "tcu.json.tmp").exists()
    doc = json.loads(state_file.read_text())
    assert doc["values"][fo.REQUEST_ID] == 777
    assert fo.PROGRESS_PERCENT not in doc["values"]

    again = TcuNode(buses[0], state_file=state_file)
    assert again.get(fo.REQUEST_ID) == 777
    assert again.get(fo.UPDATE_AVAILABLE) == 1
    assert again.get(fo.UPDATE_STATUS) == fo.STATUS_WAITING_VERIFICATION
    assert again.get(fo.TARGET_ECU) == "HCU"
    assert again.get(fo.OFFERED_VERSION) == "2.4.1"
    assert again.get(fo.LAST_ERROR) == 0x0001_0072
    assert again.get(fo.APPROVAL_TIMEOUT_S) == 120
    assert again.get(fo.DIAGNOSTIC_LOG) == b"flash done\n"
    assert again.get(fo.PROGRESS_PERCENT) == 0  # not persistent


def test_unreadable_state_file_starts_from_defaults(
    buses: tuple[can.BusABC, can.BusABC], tmp_path: Path
) -> None:
    state_file = tmp_path / "tcu.json"
    state_file.write_text("{ not json")
    node = TcuNode(buses[0], state_file=state_file)
    assert node.get(fo.APPROVAL_TIMEOUT_S) == 3600
    assert node.get(fo.UPDATE_AVAILABLE) == 0


def test_api_by_name(tcu: TcuNode) -> None:
    with pytest.raises(ConfigurationError, match="no_such_object"):
        tcu.get("no_such_object")
    with pytest.raises(TypeError):
        tcu.set(fo.UPDATE_STATUS, "3")
    with pytest.raises(ValueError):
        tcu.set(fo.UPDATE_STATUS, 256)
    tcu.set_progress(140)
    assert tcu.get(fo.PROGRESS_PERCENT) == 100
    tcu.clear_offer()
    assert tcu.get(fo.UPDATE_AVAILABLE) == 0


def test_wait_decision_timeout_and_cancel(tcu: TcuNode) -> None:
    offer(tcu)
    assert tcu.wait_operator_decision(0.05) is None
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    try:
        assert tcu.wait_operator_decision(30.0, cancel) is None
    finally:
        timer.cancel()
    assert tcu.wait_oem_verification(0.0) is None


def test_decision_listener_and_waiter_woken_from_can_thread(
    tcu: TcuNode, remote: canopen.RemoteNode
) -> None:
    heard: list[tuple[str, int]] = []
    tcu.add_decision_listener(lambda name, value: heard.append((name, value)))
    offer(tcu)
    result: list[int | None] = []
    waiter = threading.Thread(target=lambda: result.append(tcu.wait_operator_decision(WAIT_S)))
    waiter.start()
    remote.sdo["ecu_fota"][fo.OPERATOR_DECISION].raw = fo.DECISION_APPROVE
    waiter.join(WAIT_S)
    assert result == [fo.DECISION_APPROVE]
    assert heard == [(fo.OPERATOR_DECISION, fo.DECISION_APPROVE)]


def test_concurrent_api_and_sdo_reads(tcu: TcuNode, remote: canopen.RemoteNode) -> None:
    stop = threading.Event()

    def worker() -> None:
        i = 0
        while not stop.is_set():
            tcu.set_progress(i % 101)
            tcu.append_log(f"block {i}")
            i += 1

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        for _ in range(30):
            assert 0 <= remote.sdo["ecu_fota"][fo.PROGRESS_PERCENT].raw <= 100
        log = remote.sdo["ecu_fota"][fo.DIAGNOSTIC_LOG].raw
        assert log.endswith(b"\n")
    finally:
        stop.set()
        thread.join()


# ----------------------------------------------------------------- layout / EDS


def test_default_eds_path_source_and_frozen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert fo.default_eds_path().is_file()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    # The bundle keeps them where importlib.resources finds them (packaging/fota_studio.spec).
    frozen = tmp_path / "fota_studio" / "resources"
    frozen.mkdir(parents=True)
    assert fo.default_eds_path() == frozen / "fota_tcu.eds"


def test_layout_from_eds_names() -> None:
    layout = fo.FotaLayout.load()
    assert layout.record_name == "ecu_fota"
    assert {o.name for o in layout.objects()} == set(fo.REQUIRED_OBJECTS)
    assert layout.persistent_names() == fo.PERSISTENT_NAMES
    assert [f.name for f in layout.tpdo.fields] == [fo.UPDATE_AVAILABLE, fo.UPDATE_STATUS]
    assert layout.tpdo.encode({fo.UPDATE_AVAILABLE: 1, fo.UPDATE_STATUS: 4}) == b"\x01\x04"
    assert layout.object(fo.OPERATOR_DECISION).writable
    assert not layout.object(fo.UPDATE_STATUS).writable


def test_layout_from_another_eds_with_renumbered_subs(tmp_path: Path) -> None:
    text = fo.default_eds_path().read_text()
    # Swap the sub-indices of target_ecu (5) and request_id (14): code must not care.
    text = text.replace("[5FF3sub5]", "[5FF3subX]").replace("[5FF3subE]", "[5FF3sub5]")
    text = text.replace("[5FF3subX]", "[5FF3subE]")
    eds = tmp_path / "other.eds"
    eds.write_text(text)
    layout = fo.FotaLayout.load(eds)
    assert layout.object(fo.REQUEST_ID).subindex == 5
    assert layout.object(fo.TARGET_ECU).subindex == 0x0E


def test_layout_missing_object_is_a_configuration_error(tmp_path: Path) -> None:
    text = fo.default_eds_path().read_text().replace("ParameterName=request_id", "ParameterName=x")
    eds = tmp_path / "broken.eds"
    eds.write_text(text)
    with pytest.raises(ConfigurationError, match="request_id"):
        fo.FotaLayout.load(eds)
    with pytest.raises(ConfigurationError, match="not found"):
        fo.FotaLayout.load(tmp_path / "missing.eds")


def test_error_codes() -> None:
    assert fo.error_code_for_nrc(0x22) == 0x0001_0022
    assert fo.nrc_from_error_code(0x0001_0033) == 0x33
    assert fo.nrc_from_error_code(fo.ERROR_APPROVAL_TIMEOUT) is None
    assert "conditionsNotCorrect" in fo.describe_error(0x0001_0022)
    assert fo.describe_error(fo.ERROR_UNHEALTHY).startswith("OEM verification")
    with pytest.raises(ValueError):
        fo.error_code_for_nrc(0x100)
    # Every named code is documented in the EDS comment for integrators.
    comments = fo.FotaLayout.load().od.comments
    for code in fo.ERROR_NAMES:
        if code:
            assert f"0x{code:08X}" in comments
