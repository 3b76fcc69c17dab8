"""The TCU node driven with raw SDO frames built by hand, as `cansend 67A#2F.F3.5F...` would.

A second python-can virtual Bus on the same channel plays the machine-side client; no CANopen
stack on this side. Sub-indices are taken from the shipped EDS by name (plus one literal frame
from the interface documentation).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.tcu_node import TcuNode
from tests.fakes.tcu import TcuOffer, bus_pair, started_tcu

NODE_ID = 0x7A
SDO_RX = 0x600 + NODE_ID  # 0x67A, client -> TCU
SDO_TX = 0x580 + NODE_ID  # 0x5FA, TCU -> client
HEARTBEAT = 0x700 + NODE_ID
TPDO1 = 0x180 + NODE_ID
WAIT_S = 5.0

LAYOUT = fo.FotaLayout.load()
INDEX_LE = struct.pack("<H", fo.FOTA_INDEX)


def sub(name: str) -> int:
    return LAYOUT.object(name).subindex


class RawClient:
    """The raw client side: sends frames, collects what the TCU sends."""

    def __init__(self, bus: can.BusABC) -> None:
        self.bus = bus
        self.backlog: list[can.Message] = []  # frames received while waiting for another ID

    def recv_id(self, can_id: int, timeout_s: float = WAIT_S) -> can.Message:
        for i, msg in enumerate(self.backlog):
            if msg.arbitration_id == can_id:
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no frame 0x{can_id:03X} received"
            msg = self.bus.recv(remaining)
            if msg is None:
                continue
            if msg.arbitration_id == can_id:
                return msg
            if msg.arbitration_id != HEARTBEAT:
                self.backlog.append(msg)

    def drain(self) -> None:
        self.backlog.clear()
        while self.bus.recv(0) is not None:
            pass

    def request(self, data: bytes) -> bytes:
        self.bus.send(can.Message(arbitration_id=SDO_RX, data=data, is_extended_id=False))
        return bytes(self.recv_id(SDO_TX).data)

    def upload_init(self, subindex: int) -> bytes:
        return self.request(bytes([0x40]) + INDEX_LE + bytes([subindex, 0, 0, 0, 0]))

    def upload(self, subindex: int) -> bytes:
        """Expedited or segmented upload; checks the toggle bit of every segment."""
        resp = self.upload_init(subindex)
        assert resp[0] & 0xE0 == 0x40, f"not an upload response: {resp.hex()}"
        assert resp[1:4] == INDEX_LE + bytes([subindex])
        if resp[0] & 0x02:  # expedited
            n = 4 - ((resp[0] >> 2) & 0x3) if resp[0] & 0x01 else 4
            return resp[4 : 4 + n]
        size = struct.unpack_from("<L", resp, 4)[0]
        data = bytearray()
        toggle = 0
        while True:
            seg = self.request(bytes([0x60 | toggle]) + bytes(7))
            assert seg[0] & 0xE0 == 0x00, f"not an upload segment: {seg.hex()}"
            assert seg[0] & 0x10 == toggle, "toggle bit not alternated"
            unused = (seg[0] >> 1) & 0x7
            data += seg[1 : 8 - unused]
            if seg[0] & 0x01:
                break
            toggle ^= 0x10
        assert len(data) == size
        return bytes(data)

    def download(self, subindex: int, value: int, size: int) -> bytes:
        """Expedited download with size indicated (0x2F/0x2B/0x23)."""
        cmd = 0x23 | ((4 - size) << 2)
        payload = value.to_bytes(size, "little") + bytes(4 - size)
        return self.request(bytes([cmd]) + INDEX_LE + bytes([subindex]) + payload)


def abort_code(resp: bytes) -> int:
    assert resp[0] == 0x80, f"expected an abort, got {resp.hex()}"
    return int(struct.unpack_from("<L", resp, 4)[0])


@pytest.fixture
def buses(can_channel: str) -> Iterator[tuple[can.BusABC, can.BusABC]]:
    """(the TCU's bus, the raw tester's bus)."""
    with bus_pair(can_channel) as pair:
        yield pair


@pytest.fixture
def tcu(buses: tuple[can.BusABC, can.BusABC], tmp_path: Path) -> Iterator[TcuNode]:
    with started_tcu(buses[0], tmp_path / "tcu.json", heartbeat_period_ms=50) as node:
        yield node


@pytest.fixture
def tester(buses: tuple[can.BusABC, can.BusABC], tcu: TcuNode) -> RawClient:
    return RawClient(buses[1])


def offer(tcu: TcuNode) -> None:
    """Offer VCU 1.1.0-rc1 (1.0.0 installed) as request 0x12345678."""
    TcuOffer("VCU", "1.0.0", "1.1.0-rc1", expected_downtime_s=480).make(tcu, 0x1234_5678)


def test_boot_up_then_operational_heartbeat(buses: tuple[can.BusABC, can.BusABC]) -> None:
    tester = RawClient(buses[1])
    node = TcuNode(buses[0], heartbeat_period_ms=50)
    node.start()
    try:
        boot = tester.recv_id(HEARTBEAT)
        assert bytes(boot.data) == b"\x00"  # boot-up message
        states = set()
        for _ in range(10):
            states.add(bytes(tester.recv_id(HEARTBEAT).data))
            if b"\x05" in states:
                break
        assert b"\x05" in states  # operational
    finally:
        node.stop()


def test_expedited_read_of_every_numeric_object(tcu: TcuNode, tester: RawClient) -> None:
    offer(tcu)
    tcu.set_last_error(fo.error_code_for_nrc(0x22))
    expected = {
        fo.UPDATE_AVAILABLE: (1, 1),
        fo.UPDATE_STATUS: (fo.STATUS_IDLE, 1),
        fo.OPERATOR_DECISION: (0, 1),
        fo.OEM_VERIFICATION: (0, 1),
        fo.PROGRESS_PERCENT: (0, 1),
        fo.EXPECTED_DOWNTIME_S: (480, 2),
        fo.APPROVAL_TIMEOUT_S: (3600, 2),
        fo.VERIFICATION_TIMEOUT_S: (300, 2),
        fo.LAST_ERROR: (0x0001_0022, 4),
        fo.REQUEST_ID: (0x1234_5678, 4),
    }
    for name, (value, size) in expected.items():
        resp = tester.upload_init(sub(name))
        # 0x4F / 0x4B / 0x43: expedited, size indicated, 1 / 2 / 4 bytes
        assert resp[0] == 0x43 | ((4 - size) << 2), name
        assert int.from_bytes(resp[4 : 4 + size], "little") == value, name
    assert tester.upload_init(0)[4] == 0x0E  # highest_sub_index


def test_read_strings_expedited_and_segmented(tcu: TcuNode, tester: RawClient) -> None:
    offer(tcu)
    resp = tester.upload_init(sub(fo.TARGET_ECU))
    assert resp[0] == 0x47 and resp[4:7] == b"VCU"  # 3 bytes fit an expedited frame
    assert tester.upload(sub(fo.INSTALLED_VERSION)) == b"1.0.0"
    assert tester.upload(sub(fo.OFFERED_VERSION)) == b"1.1.0-rc1"


def test_documented_cansend_frames_approve(tcu: TcuNode, tester: RawClient) -> None:
    offer(tcu)
    # cansend can0 67A#2F.F3.5F.03.01.00.00.00  (our layout: operator_decision = sub 3)
    resp = tester.request(bytes.fromhex("2FF35F0301000000"))
    assert resp == bytes.fromhex("60F35F0300000000")
    assert tcu.wait_operator_decision(WAIT_S) == fo.DECISION_APPROVE
    # The TCU consumed the decision and the offer is no longer waiting for approval.
    assert tester.upload(sub(fo.OPERATOR_DECISION)) == b"\x00"
    assert tester.upload(sub(fo.UPDATE_AVAILABLE)) == b"\x00"


def test_reject(tcu: TcuNode, tester: RawClient) -> None:
    offer(tcu)
    resp = tester.download(sub(fo.OPERATOR_DECISION), fo.DECISION_REJECT, 1)
    assert resp[0] == 0x60
    assert tcu.wait_operator_decision(WAIT_S) == fo.DECISION_REJECT


def test_decision_without_offer_is_aborted_device_state(tcu: TcuNode, tester: RawClient) -> None:
    resp = tester.download(sub(fo.OPERATOR_DECISION), fo.DECISION_APPROVE, 1)
    assert abort_code(resp) == 0x0800_0022
    assert resp[1:4] == INDEX_LE + bytes([sub(fo.OPERATOR_DECISION)])
    # A second decision after the first one was accepted is refused too.
    offer(tcu)
    assert tester.download(sub(fo.OPERATOR_DECISION), 1, 1)[0] == 0x60
    assert abort_code(tester.download(sub(fo.OPERATOR_DECISION), 2, 1)) == 0x0800_0022


@pytest.mark.parametrize("value", [0, 3, 0xFF])
def test_decision_value_not_listed_is_aborted_value_range(
    tcu: TcuNode, tester: RawClient, value: int
) -> None:
    offer(tcu)
    assert abort_code(tester.download(sub(fo.OPERATOR_DECISION), value, 1)) == 0x0609_0030
    assert tcu.get(fo.UPDATE_AVAILABLE) == 1  # the offer still waits


def test_oem_verification_only_in_status_2(tcu: TcuNode, tester: RawClient) -> None:
    verdict = sub(fo.OEM_VERIFICATION)
    for status in (fo.STATUS_IDLE, fo.STATUS_FLASHING, fo.STATUS_SUCCESSFUL):
        tcu.set_status(status)
        assert abort_code(tester.download(verdict, fo.VERDICT_HEALTHY, 1)) == 0x0800_0022
    tcu.set_status(fo.STATUS_WAITING_VERIFICATION)
    assert abort_code(tester.download(verdict, 7, 1)) == 0x0609_0030
    assert tester.download(verdict, fo.VERDICT_UNHEALTHY, 1)[0] == 0x60
    assert tcu.wait_oem_verification(WAIT_S) == fo.VERDICT_UNHEALTHY
    assert tcu.get(fo.OEM_VERIFICATION) == 0  # consumed


def test_write_read_only_objects_is_aborted(tcu: TcuNode, tester: RawClient) -> None:
    for name in (fo.UPDATE_AVAILABLE, fo.UPDATE_STATUS, fo.PROGRESS_PERCENT):
        assert abort_code(tester.download(sub(name), 1, 1)) == 0x0601_0002, name
    assert abort_code(tester.download(sub(fo.LAST_ERROR), 0, 4)) == 0x0601_0002
    assert abort_code(tester.download(sub(fo.REQUEST_ID), 9, 4)) == 0x0601_0002
    assert tcu.get(fo.UPDATE_STATUS) == fo.STATUS_IDLE


def test_unknown_sub_index_is_aborted(tcu: TcuNode, tester: RawClient) -> None:
    unknown = max(o.subindex for o in LAYOUT.objects()) + 1
    assert abort_code(tester.upload_init(unknown)) == 0x0609_0011
    assert abort_code(tester.download(unknown, 1, 1)) == 0x0609_0011


def test_wrong_length_and_unknown_index_are_aborted(tcu: TcuNode, tester: RawClient) -> None:
    offer(tcu)
    # UNSIGNED8 written with 2 bytes: data type and length do not match.
    assert abort_code(tester.download(sub(fo.OPERATOR_DECISION), 1, 2)) == 0x0607_0010
    resp = tester.request(bytes.fromhex("40F45F0100000000"))  # index 0x5FF4
    assert abort_code(resp) == 0x0602_0000


def test_timeouts_are_rw_with_defaults_and_limits(tcu: TcuNode, tester: RawClient) -> None:
    approval = sub(fo.APPROVAL_TIMEOUT_S)
    verification = sub(fo.VERIFICATION_TIMEOUT_S)
    assert tester.upload(approval) == struct.pack("<H", 3600)
    assert tester.upload(verification) == struct.pack("<H", 300)
    assert tester.download(approval, 600, 2)[0] == 0x60
    assert tester.download(verification, 45, 2)[0] == 0x60
    assert tcu.get(fo.APPROVAL_TIMEOUT_S) == 600
    assert tester.upload(verification) == struct.pack("<H", 45)
    assert abort_code(tester.download(approval, 0, 2)) == 0x0609_0032  # below LowLimit


def test_segmented_upload_of_diagnostic_log(tcu: TcuNode, tester: RawClient) -> None:
    offer(tcu)
    lines = [f"step {i:02d}: RequestDownload block {i} ok" for i in range(12)]
    for line in lines:
        tcu.append_log(line)
    expected = ("\n".join(lines) + "\n").encode()
    assert len(expected) > 7 * 20  # many segments
    log_sub = sub(fo.DIAGNOSTIC_LOG)
    resp = tester.upload_init(log_sub)
    assert resp[0] == 0x41  # segmented, size indicated
    assert struct.unpack_from("<L", resp, 4)[0] == len(expected)
    assert tester.upload(log_sub) == expected


def test_segmented_upload_wrong_toggle_is_aborted(tcu: TcuNode, tester: RawClient) -> None:
    tcu.append_log("a line long enough to need segments")
    assert tester.upload_init(sub(fo.DIAGNOSTIC_LOG))[0] == 0x41
    first = tester.request(bytes([0x60]) + bytes(7))
    assert first[0] & 0x10 == 0
    # Repeat toggle 0 instead of alternating to 1.
    assert abort_code(tester.request(bytes([0x60]) + bytes(7))) == 0x0503_0000


def test_empty_strings_read_as_zero_length_uploads(tcu: TcuNode, tester: RawClient) -> None:
    """An idle TCU's empty target_ecu / diagnostic_log used to answer abort 0x08000024, which a
    third-party HMI treats as an error: now a segmented upload of size 0 (CiA 301), one last
    segment with no data, and the client reads an empty value."""
    for name in (fo.DIAGNOSTIC_LOG, fo.TARGET_ECU, fo.OFFERED_VERSION):
        init = tester.upload_init(sub(name))
        assert init[0] == 0x41, f"{name}: {init.hex()}"  # segmented, size indicated
        assert struct.unpack_from("<L", init, 4)[0] == 0
        seg = tester.request(bytes([0x60]) + bytes(7))
        assert seg[0] == 0x0F  # toggle 0, 7 bytes unused, last segment
        assert tester.upload(sub(name)) == b""


def test_empty_values_read_through_canopen_client(tcu: TcuNode, can_channel: str) -> None:
    """canopen's own SDO client reads the empty values too (no SdoAbortedError)."""
    import canopen

    network = canopen.Network()
    network.connect(interface="virtual", channel=can_channel, receive_own_messages=False)
    try:
        node = network.add_node(NODE_ID, str(fo.default_eds_path()))
        assert node.sdo.upload(fo.FOTA_INDEX, sub(fo.TARGET_ECU)) == b""
        assert node.sdo.upload(fo.FOTA_INDEX, sub(fo.DIAGNOSTIC_LOG)) == b""
    finally:
        network.disconnect()


def test_block_upload_request(tcu: TcuNode, tester: RawClient) -> None:
    for i in range(5):
        tcu.append_log(f"line {i}")
    log_sub = sub(fo.DIAGNOSTIC_LOG)
    # Block upload is not implemented by the server; with pst = 0 it must not switch protocol.
    init = bytes([0xA4]) + INDEX_LE + bytes([log_sub, 127, 0, 0, 0])
    assert abort_code(tester.request(init)) == 0x0504_0001
    # With a protocol switch threshold >= size the server answers with a normal upload.
    init_pst = bytes([0xA4]) + INDEX_LE + bytes([log_sub, 127, 127, 0, 0])
    assert tester.request(init_pst)[0] == 0x41


def test_tpdo_sent_on_change(tcu: TcuNode, tester: RawClient) -> None:
    tester.drain()
    offer(tcu)
    assert bytes(tester.recv_id(TPDO1).data) == bytes([1, fo.STATUS_IDLE])
    assert tester.download(sub(fo.OPERATOR_DECISION), fo.DECISION_APPROVE, 1)[0] == 0x60
    assert bytes(tester.recv_id(TPDO1).data) == bytes([0, fo.STATUS_IDLE])
    tcu.set_status(fo.STATUS_FLASHING)
    assert bytes(tester.recv_id(TPDO1).data) == bytes([0, fo.STATUS_FLASHING])
    tcu.set_progress(40)  # not mapped: no TPDO
    tcu.set_status(fo.STATUS_WAITING_VERIFICATION)
    assert bytes(tester.recv_id(TPDO1).data) == bytes([0, fo.STATUS_WAITING_VERIFICATION])


def test_heartbeat_period_writable_over_sdo(tcu: TcuNode, tester: RawClient) -> None:
    resp = tester.request(bytes([0x2B, 0x17, 0x10, 0x00]) + struct.pack("<H", 20) + bytes(2))
    assert resp[0] == 0x60
    assert tester.request(bytes([0x40, 0x17, 0x10, 0x00, 0, 0, 0, 0]))[4:6] == struct.pack("<H", 20)
    assert bytes(tester.recv_id(HEARTBEAT).data) == b"\x05"
