"""Decoder golden tests: multi-frame ISO-TP UDS exchange with NRC 0x78 and a TransferData burst."""

from __future__ import annotations

import numpy as np

from fota_studio.protocols.decode import Decoder, TpFrame
from fota_studio.protocols.decode.isotp import IsoTpReassembler, detect_pairs, parse_pci
from fota_studio.protocols.decode.uds import describe_uds

REQ, RSP = 0x7E0, 0x7E8


def _segment(can_id: int, payload: bytes, frames: list[tuple[int, bytes]], peer: int) -> None:
    """Split `payload` into ISO-TP frames (FF + FC from the peer + CFs), padded with 0xAA."""
    if len(payload) <= 7:
        frames.append((can_id, (bytes([len(payload)]) + payload).ljust(8, b"\xaa")))
        return
    frames.append((can_id, bytes([0x10 | (len(payload) >> 8), len(payload) & 0xFF]) + payload[:6]))
    frames.append((peer, bytes([0x30, 0x08, 0x00]).ljust(8, b"\xaa")))
    rest, sn = payload[6:], 1
    while rest:
        frames.append((can_id, (bytes([0x20 | sn]) + rest[:7]).ljust(8, b"\xaa")))
        rest, sn = rest[7:], (sn + 1) & 0x0F


def _exchange() -> list[TpFrame]:
    raw: list[tuple[int, bytes]] = []
    _segment(REQ, bytes.fromhex("1002"), raw, RSP)
    _segment(RSP, bytes.fromhex("7F1078"), raw, REQ)
    _segment(RSP, bytes.fromhex("5002003201F4"), raw, REQ)
    _segment(REQ, bytes.fromhex("22F195"), raw, RSP)
    _segment(RSP, b"\x62\xf1\x95" + b"VCU-APP 2.4.1", raw, REQ)
    _segment(REQ, bytes.fromhex("3400440001000000001000"), raw, RSP)
    _segment(RSP, bytes.fromhex("74200402"), raw, REQ)
    for block in range(1, 6):
        _segment(REQ, bytes([0x36, block]) + bytes(range(20)), raw, RSP)
        _segment(RSP, bytes([0x76, block]), raw, REQ)
    _segment(REQ, bytes.fromhex("37"), raw, RSP)
    _segment(RSP, bytes.fromhex("77"), raw, REQ)
    return [TpFrame(i, i * 0.001, cid, data) for i, (cid, data) in enumerate(raw)]


def test_parse_pci_kinds() -> None:
    assert parse_pci(bytes.fromhex("0322F195")).describe() == "SF len=3"  # type: ignore[union-attr]
    ff = parse_pci(bytes.fromhex("101062F195414243"))
    assert ff is not None and ff.kind == "FF" and ff.length == 0x10
    fc = parse_pci(bytes.fromhex("300AF3"))
    assert fc is not None and fc.describe() == "FC CTS bs=10 stmin=300us"
    assert parse_pci(bytes.fromhex("F0")) is None


def test_reassembly_of_multi_frame_exchange() -> None:
    frames = _exchange()
    messages = IsoTpReassembler([(REQ, RSP)]).feed_all(frames)
    payloads = [m.payload for m in messages]
    assert b"\x62\xf1\x95VCU-APP 2.4.1" in payloads
    rdbi = next(m for m in messages if m.payload.startswith(b"\x62"))
    assert rdbi.flow_control is not None and rdbi.flow_control.block_size == 8
    assert len(rdbi.frame_seqs) == 4  # FF + FC + 2 CF
    assert all(m.complete for m in messages)


def test_uds_text_golden() -> None:
    assert describe_uds(bytes.fromhex("1002")) == "DiagnosticSessionControl programmingSession"
    assert (
        describe_uds(bytes.fromhex("7F1078"))
        == "NEG DiagnosticSessionControl NRC 0x78 requestCorrectlyReceived-ResponsePending"
    )
    assert describe_uds(bytes.fromhex("2701")) == "SecurityAccess requestSeed level 0x01"
    assert (
        describe_uds(bytes.fromhex("3101FF00"))
        == "RoutineControl startRoutine routine 0xFF00 eraseMemory"
    )
    assert (
        describe_uds(b"\x62\xf1\x95AB")
        == "POS ReadDataByIdentifier DID 0xF195 systemSupplierECUSoftwareVersionNumber 'AB'"
    )
    assert describe_uds(bytes.fromhex("3400440001000000001000")) == (
        "RequestDownload addr 0x10000 size 4096"
    )
    assert describe_uds(bytes.fromhex("7F3633")).endswith("securityAccessDenied")


def test_summary_collapses_transfer_burst_and_keeps_nrc() -> None:
    decoder = Decoder([(REQ, RSP)], auto_detect=False)
    lines = [line.text for line in decoder.summarise(_exchange())]
    assert lines[0] == "DiagnosticSessionControl programmingSession"
    assert lines[1].startswith("NEG DiagnosticSessionControl NRC 0x78")
    assert lines[2].startswith("POS DiagnosticSessionControl programmingSession")
    burst = [t for t in lines if t.startswith("TransferData")]
    assert burst == ["TransferData ×5 blocks 0x01..0x05, 100 bytes [FC CTS bs=8 stmin=0ms]"]
    assert lines[-2:] == ["RequestTransferExit", "POS RequestTransferExit"]


def test_describe_frame_is_context_free() -> None:
    decoder = Decoder()
    assert decoder.describe_frame(REQ, False, bytes.fromhex("0322F195AAAAAAAA")).startswith(
        "SF: ReadDataByIdentifier DID 0xF195"
    )
    assert (
        decoder.describe_frame(RSP, False, bytes.fromhex("3008000000")) == "FC CTS bs=8 stmin=0ms"
    )
    assert decoder.protocol(REQ, False, bytes.fromhex("0322F195")) == "UDS"
    assert decoder.protocol(0x18DA11F1, True, bytes.fromhex("2101020304")) == "ISO-TP"


def test_auto_detect_pairs_29_bit() -> None:
    frames = [
        TpFrame(0, 0.0, 0x18DA11F1, bytes.fromhex("100A2EF199010203")),
        TpFrame(1, 0.0, 0x18DAF111, bytes.fromhex("300000")),
        TpFrame(2, 0.0, 0x18DA11F1, bytes.fromhex("2104050607")),
    ]
    assert (0x18DA11F1, 0x18DAF111) in detect_pairs(frames)
    messages = Decoder().reassemble(frames)
    assert messages[0].payload == bytes.fromhex("2EF19901020304050607")


def test_protocol_mask_vectorised() -> None:
    decoder = Decoder()
    ids = np.array([0x7E0, 0x000, 0x080, 0x0FA, 0x1FA, 0x5FA, 0x67A, 0x77A, 0x123], np.uint32)
    flags = np.zeros(len(ids), np.uint16)
    assert decoder.protocol_mask(ids, flags, {"UDS"}).tolist() == [True] + [False] * 8
    assert decoder.protocol_mask(ids, flags, {"SDO"}).tolist() == [False] * 5 + [
        True,
        True,
        False,
        False,
    ]
    assert decoder.protocol_mask(ids, flags, {"other"}).tolist()[-1] is True
    assert decoder.protocol_mask(ids, flags, {"HEARTBEAT"}).tolist()[7] is True


def test_uds_mask_matches_per_frame_protocol() -> None:
    decoder = Decoder([(REQ, RSP)])
    frames = _exchange()
    frames.append(TpFrame(len(frames), 9.0, 0x7E0, bytes([0x00, 0x03, 0x22, 0xF1, 0x95])))  # FD SF
    frames.append(TpFrame(len(frames), 9.1, 0x7E0, bytes([0x02, 0xAB, 0x00])))  # not a UDS SID
    frames.append(TpFrame(len(frames), 9.2, 0x123, bytes([0x02, 0x3E, 0x00])))  # not diagnostic
    ids = np.array([f.can_id for f in frames], np.uint32)
    flags = np.zeros(len(frames), np.uint16)
    data = np.zeros((len(frames), 8), np.uint8)
    for i, f in enumerate(frames):
        data[i, : min(8, len(f.data))] = np.frombuffer(f.data[:8], np.uint8)
    expected = [decoder.protocol(f.can_id, False, f.data) == "UDS" for f in frames]
    assert decoder.uds_mask(ids, flags, data).tolist() == expected
    assert sum(expected) > 5 and not expected[-1] and not expected[-2] and expected[-3]
