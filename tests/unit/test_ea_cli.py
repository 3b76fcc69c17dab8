"""`fota-studio ea ...` on a real workspace folder: validate, import, export, assign, machines."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fota_studio.cli import ea as ea_cli
from fota_studio.demo.catalog import DEMO_EA_NAME
from fota_studio.demo.seed import seed_demo_architecture
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace


@pytest.fixture(autouse=True)
def _light_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed only the demo EA (not the demo firmware) so the CLI tests stay fast."""

    def open_ws(args: argparse.Namespace, *, seed_demo: bool = True) -> Workspace:
        ws = Workspace.open(args.workspace)
        if seed_demo:
            seed_demo_architecture(ws)
        return ws

    monkeypatch.setattr(ea_cli, "open_workspace", open_ws)


def run(ws: Path, *argv: str) -> int:
    """Parse like `fota-studio --workspace WS ea ...` with the `ea` module's parser."""
    parser = argparse.ArgumentParser(prog="fota-studio")
    parser.add_argument("--workspace")
    ea_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--workspace", str(ws), *argv])
    return int(args.func(args))


def test_export_then_validate_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x200.yaml"
    assert run(tmp_path / "ws", "ea", "export", DEMO_EA_NAME, "--output", str(out)) == 0
    assert run(tmp_path / "ws", "ea", "validate", str(out)) == 0
    assert "is valid (3 ECUs)" in capsys.readouterr().out


def test_validate_broken_copy_exits_1_naming_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x200.yaml"
    run(tmp_path / "ws", "ea", "export", DEMO_EA_NAME, "--output", str(out))
    text = out.read_text(encoding="utf-8")
    # BCU's bootloader request ID onto the VCU's application request ID; TP slower than S3
    text = text.replace("request_id: '0x7E3'", "request_id: '0x7E0'")
    text = text.replace("tester_present_period_ms: 2000", "tester_present_period_ms: 9000", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert run(tmp_path / "ws", "ea", "validate", str(bad)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{bad}:50: error: ecus[0].uds.tester_present_period_ms: ")
    assert lines[1].startswith(f"{bad}:")
    assert lines[1].endswith(
        "error: ecus[2].bootloader.request_id: 0x7E0 is also ecus[0].application.request_id "
        'on channel "CAN1"'
    )


def test_validate_unreadable_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: X\necus:\n  - name: A\n    colour: red\n")
    assert run(tmp_path / "ws", "ea", "validate", str(bad)) == 1
    out = capsys.readouterr().out
    assert f"{bad}:5: ecus[0].colour: unknown key" in out


def test_import_refuses_invalid_and_needs_replace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    out = tmp_path / "x200.yaml"
    run(ws, "ea", "export", DEMO_EA_NAME, "--output", str(out))
    text = out.read_text(encoding="utf-8").replace("name: Excavator-X200", "name: X300")
    new = tmp_path / "x300.yaml"
    new.write_text(text.replace("s3_ms: 5000", "s3_ms: 1000"), encoding="utf-8")
    assert run(ws, "ea", "import", str(new)) == 1
    with Workspace.open(ws) as w:
        assert EaStore(w).names() == [DEMO_EA_NAME]
    new.write_text(text, encoding="utf-8")
    assert run(ws, "ea", "import", str(new)) == 0
    from fota_studio.core.errors import ArchitectureError

    with pytest.raises(ArchitectureError, match="--replace"):
        run(ws, "ea", "import", str(new))
    assert run(ws, "ea", "import", "--replace", str(new)) == 0
    capsys.readouterr()
    assert run(ws, "ea", "list") == 0
    listing = capsys.readouterr().out
    assert "X300" in listing and DEMO_EA_NAME in listing


def test_show_assign_machines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    assert run(ws, "ea", "show", DEMO_EA_NAME) == 0
    assert "request_id: '0x7E0'" in capsys.readouterr().out
    assert run(ws, "ea", "assign", "--machine", "Unit #2001", "--ea", DEMO_EA_NAME) == 0
    capsys.readouterr()
    assert run(ws, "ea", "machines") == 0
    out = capsys.readouterr().out
    assert "Unit #1001" in out and "VCU=3.1.0" in out and "Unit #2001" in out


def test_real_entry_point_validates_the_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fota_studio.cli import main

    example = Path(__file__).resolve().parents[2] / "resources/examples/excavator-x200.ea.yaml"
    assert main(["ea", "validate", str(example)]) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        example.read_text(encoding="utf-8").replace("fd_frame_length: 64", "fd_frame_length: 40"),
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["ea", "validate", str(broken)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 2)[2].split(":")[0] for line in out] == [
        "ecus[0].fd_frame_length",
        "ecus[1].fd_frame_length",
        "ecus[2].fd_frame_length",
    ]


def test_import_of_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: Other\necus: 5\n", encoding="utf-8")
    assert run(ws, "ea", "list") == 0
    assert run(ws, "ea", "import", "--replace", str(bad)) == 1
    with Workspace.open(ws) as w:
        assert EaStore(w).names() == [DEMO_EA_NAME]
