"""From a flash step to its frames (issue 19 part 2): every step of a flash record, and every
TransferData block, names its range of frames in the job's bus log, and a frame finds its step.

Checked against the BLF itself: the frames a step names hold that step's request and answer,
each block's range starts with its TransferData first frame and holds its positive answer."""

from __future__ import annotations

import itertools
from pathlib import Path

import can
import pytest

from fota_studio.core.flash_record import FlashRecord, step_at_frame
from tests.fakes.flash import fast_ecu, fast_sim, flash_image, make_image


def _flash(tmp_path: Path, can_channel: str) -> tuple[FlashRecord, list[can.Message], int, int]:
    ecu = fast_ecu("VCU")
    image = make_image("4.0.0", sizes=(0x3000, 0x1800))
    blf = tmp_path / "bus.blf"
    with fast_sim(ecu, can_channel, tmp_path / "sim"):
        result = flash_image(ecu, can_channel, image, expected_version="4.0.0", buslog_path=blf)
    assert result.ok, result.error
    with can.BLFReader(str(blf)) as reader:
        frames = list(reader)
    assert len(frames) == result.record.buslog_frames
    boot = ecu.connection.bootloader
    return result.record, frames, boot.request_id, boot.response_id


def _payload(msg: can.Message) -> bytes:
    """The UDS bytes a single or first frame starts with (classic CAN, normal addressing)."""
    data = bytes(msg.data)
    if data[0] >> 4 == 0:
        return data[1 : 1 + (data[0] & 0x0F)]
    if data[0] >> 4 == 1:
        return data[2:]
    return b""


def test_each_step_and_block_names_its_frames(tmp_path: Path, can_channel: str) -> None:
    record, frames, req_id, resp_id = _flash(tmp_path, can_channel)
    rebuilt = FlashRecord.from_json(record.to_json())  # the ranges survive the record's JSON
    assert [(s.frame_first, s.frame_last, s.block_frames) for s in rebuilt.steps] == [
        (s.frame_first, s.frame_last, s.block_frames) for s in record.steps
    ]
    transfers = [s for s in record.steps if s.step == "transfer_data"]
    assert len(transfers) == 2
    for st in transfers:
        assert st.frame_first is not None and st.frame_last is not None
        assert st.block_frames and st.block_frames[0] == st.frame_first
        for k in range(len(st.block_frames)):
            rng = st.block_range(k)
            assert rng is not None
            first, last = rng
            span = frames[first : last + 1]
            counter = (k + 1) & 0xFF
            # Starts with the tester's TransferData (36 <counter>) ...
            assert span[0].arbitration_id == req_id
            assert _payload(span[0])[:2] == bytes([0x36, counter]), (k, span[0])
            # ... holds the ECU's positive answer (76 <counter>), and no other block's request.
            answers = [m for m in span if m.arbitration_id == resp_id]
            assert any(_payload(m)[:2] == bytes([0x76, counter]) for m in answers), k
            requests = [
                m for m in span if m.arbitration_id == req_id and _payload(m)[:1] == b"\x36"
            ]
            assert len(requests) == 1
            # ... and every frame of it finds this step and block.
            index = record.steps.index(st)
            assert step_at_frame(record.steps, first) == (index, k)
            assert step_at_frame(record.steps, last) == (index, k)
    rd = next(s for s in record.steps if s.step == "request_download")
    assert rd.frame_first is not None and rd.frame_last is not None
    span = frames[rd.frame_first : rd.frame_last + 1]
    assert any(_payload(m)[:1] == b"\x34" for m in span if m.arbitration_id == req_id)
    assert any(_payload(m)[:1] == b"\x74" for m in span if m.arbitration_id == resp_id)
    # Steps follow each other in the log: no two steps share a frame.
    ranges = sorted(
        (s.frame_first, s.frame_last) for s in record.steps if s.frame_first is not None
    )
    for (_, last), (first, _) in itertools.pairwise(ranges):
        assert last is not None and first > last


def test_failed_step_names_the_frames_of_its_nrc(tmp_path: Path, can_channel: str) -> None:
    """A step refused with an NRC keeps its frames: the request and the 7F answer are in them."""
    from fota_studio.sim.faults import Fault

    ecu = fast_ecu("VCU")
    blf = tmp_path / "bus.blf"
    with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
        sim.inject(Fault(step="request_download", kind="nrc", arg=0x70))
        result = flash_image(ecu, can_channel, make_image("4.1.0", sizes=(0x800,)), buslog_path=blf)
    assert not result.ok
    failed = next(s for s in result.record.steps if s.ok is False)
    assert failed.step == "request_download" and failed.nrc == 0x70
    assert failed.frame_first is not None and failed.frame_last is not None
    with can.BLFReader(str(blf)) as reader:
        frames = list(reader)[failed.frame_first : failed.frame_last + 1]
    resp = ecu.connection.bootloader.response_id
    assert any(_payload(m)[:3] == b"\x7f\x34\x70" for m in frames if m.arbitration_id == resp)


def test_records_show_flash_names_each_steps_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`fota-studio records show --flash ID` says where each step is in the bus log."""
    from fota_studio.cli import main
    from fota_studio.core.flash_record import StepRecord
    from fota_studio.engine.records import save_flash_record
    from fota_studio.infra.workspace import Workspace

    steps = [
        StepRecord("request_download", 1.0, 2.0, True, frame_first=0, frame_last=3),
        StepRecord(
            "transfer_data", 2.0, 3.0, True, frame_first=4, frame_last=29, block_frames=[4, 18]
        ),
        StepRecord("reset", 3.0, 4.0, True),
    ]
    with Workspace.open(tmp_path / "ws") as ws:
        rid = save_flash_record(ws, FlashRecord(ecu="VCU", steps=steps))
    show = ["--workspace", str(tmp_path / "ws"), "records", "show", "--flash", str(rid)]
    assert main(show) == 0
    out = capsys.readouterr().out
    assert "step request_download: ok [frames 0-3]" in out
    assert "step transfer_data: ok [frames 4-29, 2 blocks]" in out
    assert "step reset: ok\n" in out or "step reset: ok -" in out
