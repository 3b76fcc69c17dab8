"""Every log format the Save dialog offers round-trips through python-can's own reader.

Classic, CAN FD (with BRS and ESI), remote and error frames, both directions and two channels are
written with `write_log`; each format's reader must give back exactly the frames the format can
hold (`CAPABILITIES`), the report's `written` must be the number of frames in the file, and a
lossy save without `allow_loss` must write nothing and say what it would lose.
"""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from fota_studio.infra.tracefile import (
    CAPABILITIES,
    FORMATS,
    LossyFormatError,
    read_log,
    scan_loss,
    write_log,
)
from tests.fakes.frames import sample_frames


def _key(msg: can.Message, cap_suffix: str) -> tuple[object, ...]:
    cap = CAPABILITIES[cap_suffix]
    remote_dlc = msg.dlc if (msg.is_remote_frame and cap.remote_dlc) else None
    return (
        msg.arbitration_id,
        msg.is_extended_id,
        msg.is_remote_frame,
        msg.is_error_frame,
        msg.is_fd if cap.fd else None,
        msg.bitrate_switch if cap.fd else None,
        msg.error_state_indicator if cap.fd else None,
        (not msg.is_rx) if cap.direction else None,
        remote_dlc,
        b"" if msg.is_remote_frame or msg.is_error_frame else bytes(msg.data),
    )


def _expected(suffix: str) -> list[can.Message]:
    cap = CAPABILITIES[suffix]
    out = []
    for m in sample_frames():
        if m.is_error_frame and not cap.error:
            continue
        if m.is_remote_frame and not cap.remote:
            continue
        if m.is_fd and not cap.fd:
            continue
        out.append(m)
    return out


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_format_round_trips_through_python_can(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"trace{suffix}"
    report = write_log(path, sample_frames(), allow_loss=True)
    # ASC stores times relative to its header date unless asked for absolute ones.
    kwargs = {"relative_timestamp": False} if suffix == ".asc" else {}
    with can.LogReader(str(path), **kwargs) as reader:  # closes the file (MF4 keeps it open)
        back = list(reader)
    expected = _expected(suffix)
    assert report.written == len(back) == len(expected)
    assert report.total == len(sample_frames())
    assert [_key(m, suffix) for m in back] == [_key(m, suffix) for m in expected]
    for got, want in zip(back, expected, strict=True):
        assert got.timestamp == pytest.approx(want.timestamp, abs=1e-5)
    cap = CAPABILITIES[suffix]
    if cap.channels:
        # Two channels stay two channels (whatever numbering the reader uses).
        chans = [m.channel for m in back if not m.is_error_frame or cap.error_channel]
        assert len(set(chans)) == 2
    # Our own reader reads the file we wrote (the app can reopen its own file).
    names: list[str] = []
    assert sum(len(b) for b in read_log(path, channel_names=names)) == len(back)


@pytest.mark.parametrize(
    "suffix", sorted(s for s, c in CAPABILITIES.items() if c.summary() != "holds every frame")
)
def test_lossy_format_refused_without_allow_loss(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"trace{suffix}"
    path.write_text("old contents")
    with pytest.raises(LossyFormatError) as info:
        write_log(path, sample_frames())
    assert "nothing was written" in str(info.value)
    assert path.read_text() == "old contents"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    scan = scan_loss(path, sample_frames())
    assert scan.left_out == info.value.report.left_out
    assert scan.not_kept == info.value.report.not_kept


def test_trc_reports_the_count_in_the_file(tmp_path: Path) -> None:
    # The field report: "wrote 3", the file held 0 (python-can's TRC writer skips FD).
    fd_only = [m for m in sample_frames() if m.is_fd]
    path = tmp_path / "fd.trc"
    report = write_log(path, fd_only)
    assert report.lossless
    assert report.written == len(list(can.LogReader(str(path)))) == 3
    assert report.summary() == "wrote 3 frames"


def test_csv_says_what_it_loses(tmp_path: Path) -> None:
    report = write_log(tmp_path / "t.csv", sample_frames(), allow_loss=True)
    assert report.left_out == {"CAN FD frames": 3}
    assert report.not_kept["direction of Tx frames"] == 1
    assert "wrote 4 of 7 frames (left out: 3 CAN FD frames" in report.summary()


def test_mf4_through_asammdf(tmp_path: Path) -> None:
    asammdf = pytest.importorskip("asammdf")
    path = tmp_path / "t.mf4"
    report = write_log(path, sample_frames())
    mdf = asammdf.MDF(str(path))
    try:
        ids = []
        for group_index, group in enumerate(mdf.groups):
            names = [ch.name for ch in group.channels]
            for name in names:
                if name.endswith(".ID") and name.startswith(
                    ("CAN_DataFrame", "CAN_RemoteFrame", "CAN_ErrorFrame")
                ):
                    ids.extend(int(v) for v in mdf.get(name, group=group_index).samples)
        assert len(ids) == report.written == len(sample_frames())
    finally:
        mdf.close()


def test_blf_fd_dlc_codes_above_15_read_like_python_can(tmp_path: Path) -> None:
    """A BLF remote CAN FD frame with DLC byte 34 read as length 2 (34 & 0xF); python-can's
    BLFReader maps codes above 15 to 64, and so must we."""
    path = tmp_path / "dlc.blf"
    with can.BLFWriter(str(path), compression_level=0) as writer:
        writer.on_message_received(
            can.Message(
                timestamp=1.0,
                arbitration_id=0x1ABCDEF,
                is_extended_id=True,
                is_fd=True,
                is_remote_frame=True,
                dlc=64,
                channel=0,
            )
        )
    raw = bytearray(path.read_bytes())
    marker = (0x1ABCDEF | 0x80000000).to_bytes(4, "little")
    pos = raw.index(marker)
    assert raw[pos - 1] == 15  # len2dlc(64): the DLC byte sits right before the ID
    raw[pos - 1] = 34
    path.write_bytes(bytes(raw))
    theirs = list(can.BLFReader(str(path)))
    assert [m.dlc for m in theirs] == [64]
    batches = list(read_log(path))
    assert [int(b.length[0]) for b in batches] == [64]
