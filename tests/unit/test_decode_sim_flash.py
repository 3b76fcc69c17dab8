"""Decoder golden tests on frames captured from a SIMULATED flash and a simulated CANopen exchange.

A plain udsoncan client reprograms the demo VCU (fota_studio.sim SimMachine) on a python-can
virtual bus while a `TraceCapture` records every frame on its own Bus instance; the captured
frames are then decoded and compared with golden text (seed/key bytes masked: they are random),
including the NRC 0x78 (responsePending) sequence while the ECU erases. A TcuNode and a
FotaClient exchange a segmented SDO upload of `diagnostic_log`, decoded with the EDS names.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import can

from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.trace_capture import TraceCapture
from fota_studio.engine.trace_store import TraceStore
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.decode import Decoder, MessageTracker, TpFrame, isotp_pairs_of
from fota_studio.sim.uds_ecu import SimEcuOptions
from tests.fakes.uds_tester import Rig, build_image, flash, wait_for

EDS = Path(__file__).resolve().parents[2] / "resources" / "fota_tcu.eds"


def _frames(store: TraceStore) -> list[TpFrame]:
    return [
        TpFrame(r.seq, r.timestamp, r.arbitration_id, r.data)
        for r in store.records(range(store.first_seq, store.end_seq))
    ]


def _capture(channel: str) -> tuple[TraceStore, TraceCapture]:
    store = TraceStore(capacity_frames=1_000_000)
    capture = TraceCapture(store)
    capture.open(BusSettings("virtual", channel), "CAN1")
    return store, capture


def _stop(capture: TraceCapture, expected_min: int = 0) -> None:
    deadline = time.monotonic() + 2.0
    last = -1
    while time.monotonic() < deadline:  # wait until the capture stops growing
        time.sleep(0.05)
        now = capture.pending()
        if now == last and now >= expected_min:
            break
        last = now
    capture.drain_into_store()
    capture.close_all()


PENDING = "NEG RoutineControl NRC 0x78 requestCorrectlyReceived-ResponsePending"
GOLDEN_FLASH = [
    "DiagnosticSessionControl extendedDiagnosticSession",
    "POS DiagnosticSessionControl extendedDiagnosticSession 00 32 01 F4",
    "ControlDTCSetting off",
    "POS ControlDTCSetting off",
    "CommunicationControl disableRxAndTx 01",
    "POS CommunicationControl disableRxAndTx",
    "SecurityAccess requestSeed level 0x01",
    "POS SecurityAccess requestSeed level 0x01 seed …",
    "SecurityAccess sendKey level 0x02 key …",
    "POS SecurityAccess sendKey level 0x02",
    "DiagnosticSessionControl programmingSession",
    "POS DiagnosticSessionControl programmingSession 00 32 01 F4",
    "SecurityAccess requestSeed level 0x03",
    "POS SecurityAccess requestSeed level 0x03 seed …",
    "SecurityAccess sendKey level 0x04 key …",
    "POS SecurityAccess sendKey level 0x04",
    "WriteDataByIdentifier DID 0xF15A 26 11 21 54 45 53 54 45 52 30 31 20 20 20 20 20 …(+3)"
    " [FC CTS bs=8 stmin=0ms]",
    "POS WriteDataByIdentifier DID 0xF15A",
    "RoutineControl startRoutine routine 0xFF00 eraseMemory 44 00 01 00 00 00 00 0B D8"
    " [FC CTS bs=8 stmin=0ms]",
    PENDING + " (repeated)",
    "POS RoutineControl startRoutine routine 0xFF00 eraseMemory 00",
    "RequestDownload addr 0x10000 size 3032 [FC CTS bs=8 stmin=0ms]",
    "POS RequestDownload maxBlockLength 1026",
    "TransferData ×3 blocks 0x01..0x03, 3032 bytes [FC CTS bs=8 stmin=0ms]",
    "RequestTransferExit",
    "POS RequestTransferExit",
    "RoutineControl startRoutine routine 0xFF00 eraseMemory 44 00 01 80 00 00 00 09 29"
    " [FC CTS bs=8 stmin=0ms]",
    PENDING + " (repeated)",
    "POS RoutineControl startRoutine routine 0xFF00 eraseMemory 00",
    "RequestDownload addr 0x18000 size 2345 [FC CTS bs=8 stmin=0ms]",
    "POS RequestDownload maxBlockLength 1026",
    "TransferData ×3 blocks 0x01..0x03, 2345 bytes [FC CTS bs=8 stmin=0ms]",
    "RequestTransferExit",
    "POS RequestTransferExit",
    "RoutineControl startRoutine routine 0xFF01 checkProgrammingDependencies BF 80 E0 83"
    " [FC CTS bs=8 stmin=0ms]",
    "POS RoutineControl startRoutine routine 0xFF01 checkProgrammingDependencies 00",
    "ECUReset hardReset",
    "POS ECUReset hardReset",
]
"""Golden decoded exchange of `flash()`; the 0x78 runs (their count depends on timing: the
erase lasts ~150 ms, one pending every 40 ms) are checked to hold at least two."""


def _collapse_pending(lines: list[str]) -> list[str]:
    out: list[str] = []
    run = 0
    for line in [*lines, ""]:
        if line == PENDING:
            run += 1
            continue
        if run:
            assert run >= 2, f"only {run} responsePending during erase"
            out.append(PENDING + " (repeated)")
            run = 0
        if line:
            out.append(line)
    return out


def _mask(text: str) -> str:
    return re.sub(r"(seed|key) [0-9A-F ]+", r"\1 …", text)


def test_golden_decode_of_a_simulated_flash(make_rig: Callable[..., Rig]) -> None:
    # Erase takes ~150 ms with a 0x78 every 40 ms: a visible responsePending sequence.
    opts = SimEcuOptions(erase_ms_per_kib=0.5, erase_min_ms=150, pending_interval_ms=40)
    rig = make_rig("VCU", options=opts)
    store, capture = _capture(rig.channel)
    try:
        flash(rig, build_image())
        wait_for(lambda: rig.sim.state().mode == "application")
    finally:
        _stop(capture)
    decoder = Decoder(isotp_pairs_of(demo_catalog.demo_architecture()))
    frames = _frames(store)
    lines = [_mask(line.text) for line in decoder.summarise(frames)]
    boot = rig.ecu_def.connection.bootloader
    ids = {line.can_id for line in decoder.summarise(frames)}
    assert ids == {boot.request_id, boot.response_id, 0x7DF}
    # Each erase: the request, at least two responsePending, then the positive response.
    assert _collapse_pending(lines) == GOLDEN_FLASH, "\n".join(lines)
    assert decoder.summarise(frames)[0].can_id == boot.request_id
    # The incremental tracker (the Messages view) gives the same lines in chunks.
    tracker = MessageTracker(decoder)
    for k in range(0, len(frames), 97):
        tracker.feed(frames[k : k + 97])
    assert [_mask(line.text) for line in tracker.lines()] == lines


def test_golden_decode_of_a_simulated_canopen_exchange(can_channel: str, tmp_path: Path) -> None:
    from fota_studio.protocols.fota_client import FotaClient
    from fota_studio.protocols.tcu_node import TcuNode

    tcu_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    machine_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    store, capture = _capture(can_channel)
    tcu = TcuNode(tcu_bus, state_file=tmp_path / "tcu.json", heartbeat_period_ms=100)
    client = FotaClient(machine_bus, poll_period_s=None, sdo_timeout_s=2.0)
    log_text = "flash VCU 1.0.0 -> 1.1.0: erase ok, 6 blocks, crc ok, reset ok"
    try:
        tcu.start()
        client.start()
        tcu.append_log(log_text)
        assert log_text in client.read_diagnostic_log()
    finally:
        client.stop()
        tcu.stop()
        _stop(capture)
        machine_bus.shutdown()
        tcu_bus.shutdown()
    decoder = Decoder()
    decoder.load_eds(EDS)
    lines = [line.text for line in decoder.sdo_lines(_frames(store))]
    text = "\n".join(lines)
    # Golden: the segmented upload of diagnostic_log with the EDS name, the whole text at the
    # last segment (63 bytes: 9 segments of 7), toggles alternating.
    first = lines.index("SDO req node 122 read 5FF3:0D ecu_fota.diagnostic_log")
    assert (
        lines[first + 1] == "SDO rsp node 122 5FF3:0D ecu_fota.diagnostic_log segmented, 63 bytes"
    )
    golden = []
    for k in range(9):
        golden.append(f"SDO req node 122 upload segment request t={k % 2}")
        so_far = f"{7 * (k + 1)} bytes so far"
        last = f"last: 5FF3:0D ecu_fota.diagnostic_log = {(log_text + chr(10))!r}"
        golden.append(f"SDO rsp node 122 segment t={k % 2} " + (last if k == 8 else so_far))
    assert lines[first + 2 : first + 20] == golden, text
    assert "Heartbeat node 122 operational" in lines
