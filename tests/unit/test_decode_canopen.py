"""CANopen decoder golden tests: NMT, heartbeat, EMCY, SDO expedited/segmented with EDS names."""

from __future__ import annotations

from pathlib import Path

from fota_studio.protocols.decode import Decoder, TpFrame
from fota_studio.protocols.decode.canopen import SdoTracker, describe_canopen

EDS = Path(__file__).resolve().parents[2] / "resources" / "fota_tcu.eds"


def test_nmt_heartbeat_emcy_sync() -> None:
    assert describe_canopen(0x000, bytes([0x01, 0x7A])) == "NMT start node 122"
    assert describe_canopen(0x000, bytes([0x81, 0x00])) == "NMT reset node all nodes"
    assert describe_canopen(0x77A, bytes([0x05])) == "Heartbeat node 122 operational"
    assert describe_canopen(0x77A, bytes([0x00])) == "Boot-up node 122"
    assert describe_canopen(0x0FA, bytes.fromhex("1082010000000000")).startswith(
        "EMCY node 122 error 0x8210"
    )
    assert describe_canopen(0x080, b"") == "SYNC"
    assert describe_canopen(0x1FA, bytes([1, 2])) == "TPDO1 node 122 01 02"
    assert describe_canopen(0x7E0, b"", extended=True) is None


def test_segmented_sdo_download_with_eds_names() -> None:
    decoder = Decoder()
    if EDS.exists():
        assert decoder.load_eds(EDS) > 0
    frames = [
        (0x67A, bytes.fromhex("21F35F010A000000")),  # initiate download, 10 bytes
        (0x5FA, bytes.fromhex("60F35F0100000000")),
        (0x67A, b"\x00hello w"),  # toggle 0, 7 bytes
        (0x5FA, bytes.fromhex("2000000000000000")),
        (0x67A, b"\x19orl\x00\x00\x00\x00"),  # toggle 1, n=4, last
        (0x5FA, bytes.fromhex("3000000000000000")),
    ]
    lines = [
        ln.text
        for ln in decoder.sdo_lines([TpFrame(i, 0.0, c, d) for i, (c, d) in enumerate(frames)])
    ]
    assert lines[0].startswith("SDO req node 122 write 5FF3:01")
    assert lines[0].endswith("segmented, 10 bytes")
    assert "write 5FF3:01" in lines[1] and lines[1].endswith("OK")
    assert lines[4].startswith("SDO req node 122 segment t=1 last: 5FF3:01")
    assert lines[4].endswith("= 'hello worl'")
    if EDS.exists():
        assert "ecu_fota" in lines[0]


def test_sdo_expedited_and_abort() -> None:
    sdo = SdoTracker()
    assert (
        sdo.feed(0x67A, bytes.fromhex("2F00100105000000"))
        == "SDO req node 122 write 1000:01 = 5 (0x05)"
    )
    assert (
        sdo.feed(0x5FA, bytes.fromhex("4B00100134120000"))
        == "SDO rsp node 122 1000:01 = 4660 (0x1234)"
    )
    text = sdo.feed(0x5FA, bytes.fromhex("8000200000000206"))
    assert text == (
        "SDO rsp node 122 ABORT 2000:00 0x06020000 object does not exist in the object dictionary"
    )
