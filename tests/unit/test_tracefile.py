"""Trace log files: write → read round trip per format, independent readers, rotation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import can
import cantools
import pytest

from fota_studio.engine.trace_store import TraceStore
from fota_studio.infra.tracefile import RotatingRecorder, TraceFileError, read_log, write_log

T0 = 1_700_000_000.0


# The frames a format may not keep: which kind, seconds after T0, the frame's other fields.
_OPTIONAL_FRAMES: tuple[tuple[str, float, dict[str, Any]], ...] = (
    (
        "fd",
        0.5,
        {"arbitration_id": 0x7EA, "data": bytes(range(64)), "is_fd": True, "bitrate_switch": True},
    ),
    ("direction", 0.6, {"arbitration_id": 0x7E0, "data": b"\x02\x10\x03", "is_rx": False}),
    ("remote", 0.7, {"arbitration_id": 0x123, "is_remote_frame": True, "dlc": 3}),
)


def _frames(*, fd: bool, remote: bool, direction: bool) -> list[can.Message]:
    msgs = [
        can.Message(
            timestamp=T0 + i * 0.001,
            arbitration_id=(0x18DA11F1 + i) if i % 2 else 0x100 + i,
            is_extended_id=bool(i % 2),
            data=bytes((i + k) & 0xFF for k in range(i % 9)),
            channel=0,
        )
        for i in range(40)
    ]
    wanted = {"fd": fd, "direction": direction, "remote": remote}
    msgs += [
        can.Message(timestamp=T0 + offset_s, is_extended_id=False, channel=0, **fields)
        for kind, offset_s, fields in _OPTIONAL_FRAMES
        if wanted[kind]
    ]
    return msgs


# What each format keeps (see tracefile.CAPABILITIES): TRC (our 2.1 writer) everything but error
# frames; CSV no FD and no direction; candump no remote DLC.
CASES = {
    ".blf": {"fd": True, "remote": True, "direction": True},
    ".asc": {"fd": True, "remote": True, "direction": True},
    ".mf4": {"fd": True, "remote": True, "direction": True},
    ".trc": {"fd": True, "remote": True, "direction": True},
    ".csv": {"fd": False, "remote": True, "direction": False},
    ".log": {"fd": True, "remote": False, "direction": True},
}


@pytest.mark.parametrize("suffix", sorted(CASES))
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    msgs = _frames(**CASES[suffix])
    path = tmp_path / f"trace{suffix}"
    assert write_log(path, msgs).written == len(msgs)
    store = TraceStore()
    for batch in read_log(path, channel_names=store.channel_names):
        store.append_batch(batch)
    assert len(store) == len(msgs)
    for rec, msg in zip(store.records(range(len(store))), msgs, strict=True):
        back = rec.to_message()
        assert back.equals(msg, timestamp_delta=1e-5, check_channel=False), (back, msg)
    assert len(store.channel_names) == 1  # "CAN1" (candump writes "can0")


def test_save_store_selection_and_read_independently(tmp_path: Path) -> None:
    store = TraceStore()
    store.append_messages(_frames(fd=False, remote=False, direction=False))
    seqs = list(range(0, len(store), 2))
    blf = tmp_path / "sel.blf"
    write_log(blf, (r.to_message(0) for r in store.records(seqs)))
    with can.BLFReader(str(blf)) as reader:
        ids = [m.arbitration_id for m in reader]
    assert ids == [store.record(s).arbitration_id for s in seqs]
    dump = tmp_path / "sel.log"
    write_log(dump, (r.to_message(0) for r in store.records(seqs)))
    with dump.open() as text:
        parsed = [entry.frame_id for entry in cantools.logreader.Parser(text)]
    assert parsed == ids


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(TraceFileError, match="unsupported"):
        write_log(tmp_path / "x.xyz", [])
    broken = tmp_path / "broken.blf"
    broken.write_bytes(b"not a blf file at all" * 10)
    with pytest.raises(TraceFileError):
        list(read_log(broken))


def test_rotating_recorder(tmp_path: Path) -> None:
    recorder = RotatingRecorder(tmp_path / "rec.asc", max_bytes=2_000)
    for msg in _frames(fd=False, remote=False, direction=False) * 5:
        recorder.on_message_received(msg)
    recorder.stop()
    recorder.stop()
    files = sorted(tmp_path.glob("*.asc"))
    assert len(files) > 1 and recorder.frames == 200


def test_fast_blf_reader_matches_python_can(tmp_path: Path) -> None:
    path = tmp_path / "mixed.blf"
    msgs = _frames(fd=True, remote=True, direction=True)
    msgs.append(
        can.Message(
            timestamp=T0 + 0.8,
            arbitration_id=0x0,
            is_error_frame=True,
            is_extended_id=False,
            data=b"",
            channel=1,
        )
    )
    msgs *= 300  # several compressed containers, objects straddling their boundaries
    write_log(path, msgs)
    with can.BLFReader(str(path)) as reader:
        reference = list(reader)
    store = TraceStore()
    for batch in read_log(path, channel_names=store.channel_names, batch_frames=1000):
        store.append_batch(batch)
    assert len(store) == len(reference)
    for rec, ref in zip(store.records(range(len(store))), reference, strict=True):
        assert rec.to_message().equals(ref, timestamp_delta=1e-6, check_channel=False)
    assert store.channel_names == ["CAN1", "CAN2"]


@pytest.mark.parametrize("suffix", [".blf", ".asc", ".log"])
def test_failed_or_cancelled_save_leaves_no_half_file(tmp_path: Path, suffix: str) -> None:
    """A save that fails or is cancelled half way writes nothing: no partial file, and a file
    already at the path keeps its content."""
    msgs = _frames(fd=False, remote=False, direction=True)
    path = tmp_path / f"trace{suffix}"
    assert write_log(path, msgs).written == len(msgs)
    before = path.read_bytes()

    def failing() -> Iterator[can.Message]:
        yield from msgs[:3]
        raise OSError("disk full")

    with pytest.raises(TraceFileError, match=r"write failed after 3 frames: disk full"):
        write_log(path, failing())
    assert path.read_bytes() == before

    cancel = threading.Event()

    def cancelled_midway() -> Iterator[can.Message]:
        yield from msgs[:2]
        cancel.set()
        yield from msgs[2:]

    assert write_log(path, cancelled_midway(), cancel=cancel).written == 2
    assert path.read_bytes() == before
    fresh = tmp_path / f"new{suffix}"
    cancel.clear()
    write_log(fresh, cancelled_midway(), cancel=cancel)
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp files left
