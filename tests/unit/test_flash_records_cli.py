"""Flash records (JSON round trip, workspace + BLF blob), the dry-run plan and `fota-studio
flash` end to end on the in-process simulated machine (workspace mode, HEX and S-record files)."""

from __future__ import annotations

import json
from pathlib import Path

import can
import pytest

from fota_studio.cli import main
from fota_studio.core import firmware
from fota_studio.core.ea_format import save_ea_file
from fota_studio.core.flash_plan import isotp_frames, make_plan
from fota_studio.core.flash_record import FlashRecord
from fota_studio.demo.catalog import demo_architecture
from fota_studio.engine.flash_job import block_payload_size
from fota_studio.engine.records import (
    list_flash_records,
    load_buslog,
    load_flash_record,
    save_flash_record,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.paths import sim_state_dir
from fota_studio.infra.workspace import Workspace
from tests.fakes.flash import fast_ecu, fast_sim, flash_image, make_image
from tests.helpers.cli import cli


def test_block_payload_subtracts_sid_and_counter() -> None:
    assert block_payload_size(0x402, fd=False) == 0x400
    assert block_payload_size(0xFFFF, fd=False) == 4093
    assert block_payload_size(0xFFF, fd=True) == 0xFFD


def test_isotp_frame_counts() -> None:
    ecu = fast_ecu("VCU")
    assert isotp_frames(7, ecu.connection) == (1, 0)
    # 1026 bytes: FF carries 6, CFs carry 7 -> 146 CFs; BS 8 -> 19 flow controls
    assert isotp_frames(1026, ecu.connection) == (147, 19)
    bcu = fast_ecu("BCU")
    assert isotp_frames(62, bcu.connection) == (1, 0)


def test_plan_covers_sequence_and_segments() -> None:
    ecu = fast_ecu("VCU")
    plan = make_plan(ecu, [(0x10000, 0x4000), (0x20000, 0x100)])
    names = [s.step for s in plan.steps]
    assert names[0] == "preconditions" and names[1] == "bootloader_entry"
    assert names.count("erase") == 2 and names.count("transfer_data") == 2
    assert names[-1] == "read_version"
    assert plan.bytes_total == 0x4100
    assert plan.segments[0].blocks == 16 and plan.segments[1].blocks == 1
    # 500 kbit/s classic: ≥ 16 KiB of payload at ≈ 57 % efficiency takes well over 0.4 s
    assert 0.4 < plan.wire_time_s < 2.0
    assert plan.estimated_s > plan.wire_time_s
    assert "transfer_data" in plan.to_text()


def test_record_round_trip_and_workspace(can_channel: str, tmp_path: Path) -> None:
    ecu = fast_ecu("VCU")
    image = make_image("9.1.0", (0x800,))
    blf = tmp_path / "job.blf"
    with fast_sim(ecu, can_channel, tmp_path / "sim"):
        result = flash_image(
            ecu,
            can_channel,
            image,
            expected_version="9.1.0",
            buslog_path=blf,
            machine="Unit #1001",
            version="9.1.0",
        )
    assert result.ok, result.error
    rec = result.record
    again = FlashRecord.from_json(rec.to_json())
    assert again == rec
    assert any(e.step == "transfer_data" and e.request_len > 16 for e in rec.exchanges)
    assert any(e.pending_count > 0 for e in rec.exchanges if e.step == "erase")
    with Workspace.open(tmp_path / "ws") as ws:
        rid = save_flash_record(ws, rec, blf)
        assert not blf.exists()
        rows = list_flash_records(ws)
        assert rows[0].id == rid and rows[0].result == "success"
        stored = load_flash_record(ws, rid)
        assert stored.buslog_sha256 and stored.version_after == "9.1.0"
        data = load_buslog(ws, stored)
        assert data is not None
        (tmp_path / "back.blf").write_bytes(data)
        frames = list(can.BLFReader(str(tmp_path / "back.blf")))
        assert len(frames) == stored.buslog_frames
        assert any(not f.is_rx for f in frames) and any(f.is_rx for f in frames)
        assert stored.buslog_sha256 in ws.referenced_blobs()


def test_cli_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--workspace",
            str(tmp_path / "ws"),
            "flash",
            "--machine",
            "Unit #1001",
            "--ecu",
            "VCU",
            "--version",
            "3.2.0",
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Flash plan for VCU" in out and "transfer_data" in out


def test_cli_flash_machine_version_simulated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws_dir = tmp_path / "ws"
    unit = ("--machine", "Unit #1001", "--ecu", "HCU", "--version", "1.5.0")
    code = cli(ws_dir, "flash", *unit, "--simulate", "--json", "--no-progress")
    out = capsys.readouterr().out
    assert code == 0, out
    rec = json.loads(out)
    assert rec["result"] == "success" and rec["version_after"] == "1.5.0"
    with Workspace.open(ws_dir) as ws:
        rows = list_flash_records(ws)
        assert rows and rows[0].ecu == "HCU" and rows[0].buslog_sha256
        # The workspace now knows what the machine's HCU runs (history names the job) ...
        machine = EaStore(ws).get_machine("Unit #1001")
        assert machine.installed["HCU"] == "1.5.0"
        assert machine.history[-1].source.startswith("flash job ")
    # ... and the simulated machine keeps its flash where the Simulator panel and
    # `fota-studio sim` look for it.
    assert (sim_state_dir(ws_dir) / "Unit_1001" / "HCU.flash").exists()


@pytest.mark.parametrize("fmt", ["hex", "srec"])
def test_cli_flash_files_simulated(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ea_path = tmp_path / "ea.yaml"
    save_ea_file(demo_architecture(), ea_path)
    parts = make_image("2.9.0", (0x1100, 0x300, 0x900), gap=0x1300).segments
    image = firmware.FirmwareImage.from_segments([(s.address, s.data) for s in parts])
    fw = tmp_path / ("fw.hex" if fmt == "hex" else "fw.s19")
    fw.write_bytes(firmware.to_hex(image) if fmt == "hex" else firmware.to_srec(image))
    files = ("--ea", str(ea_path), "--ecu", "BCU", "--firmware", str(fw))
    code = cli(
        tmp_path / "ws", "flash", *files, "--expect-version", "2.9.0", "--simulate", "--no-progress"
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verified version 2.9.0" in out


def test_cli_failure_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unit = ("--machine", "Unit #1001", "--ecu", "VCU", "--version", "3.2.0")
    code = cli(
        tmp_path / "ws",
        *("flash", *unit, "--expect-version", "0.0.1", "--simulate", "--no-progress"),
        log_level="ERROR",
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "expected '0.0.1'" in err
