"""`fota-studio trace info` and `trace convert`: counts that match the files, loss never silent."""

from __future__ import annotations

import json
from pathlib import Path

import can
import pytest

from fota_studio.cli import main
from fota_studio.cli.trace import EXIT_LOSS
from fota_studio.infra.tracefile import write_log
from tests.fakes.frames import sample_frames


@pytest.fixture
def blf(tmp_path: Path) -> Path:
    path = tmp_path / "in.blf"
    write_log(path, sample_frames())
    return path


def test_info_counts(blf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "info", str(blf), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 7
    assert (info["fd_frames"], info["remote_frames"], info["error_frames"]) == (3, 1, 1)
    assert info["tx_frames"] == 3
    assert len(info["channels"]) == 2 and sum(info["channels"].values()) == 7
    assert info["duration_s"] == pytest.approx(0.006, abs=1e-5)
    assert sum(row["frames"] for row in info["frames_per_id"]) == 7
    assert main(["trace", "info", str(blf)]) == 0
    assert "frames:    7" in capsys.readouterr().out


def test_convert_lossless_and_lossy(
    blf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asc = tmp_path / "out.asc"
    assert main(["trace", "convert", str(blf), str(asc)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 7 frames to {asc}"
    assert len(list(can.ASCReader(str(asc)))) == 7

    csv = tmp_path / "out.csv"
    assert main(["trace", "convert", str(blf), str(csv)]) == EXIT_LOSS
    err = capsys.readouterr().err
    assert "left out: 3 CAN FD frames" in err and "nothing was written" in err
    assert not csv.exists()

    assert main(["trace", "convert", str(blf), str(csv), "--allow-loss"]) == 0
    out = capsys.readouterr().out
    in_file = len(list(can.CSVReader(str(csv))))
    assert out.startswith(f"wrote {in_file} of 7 frames (left out: 3 CAN FD frames")

    # --format overrides the suffix; the file is the format asked for.
    odd = tmp_path / "export.dat"
    assert main(["trace", "convert", str(blf), str(odd), "--format", "trc", "--allow-loss"]) == 0
    assert "wrote 6 of 7 frames (left out: 1 error frame)" in capsys.readouterr().out
    assert odd.read_text().startswith(";$FILEVERSION=2.1")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_convert_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.blf"
    bad.write_bytes(b"not a blf")
    assert main(["trace", "convert", str(bad), str(tmp_path / "o.asc")]) == 1
    assert "bad.blf" in capsys.readouterr().err
    assert not (tmp_path / "o.asc").exists()
