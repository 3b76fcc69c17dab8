"""Hostile text (issue 14): version strings outside the documented safe set are refused at
import with a message naming the character (before: "3.2.1" + U+200B / U+2028 / U+202E / DEL
imported as look-alikes of "3.2.1"); EA nesting depth and numeric ranges are bounded with
file:line errors (before: a 5,000-deep EA crashed with RecursionError, a 400-digit bitrate
validated and flashed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fota_studio.cli import main
from fota_studio.core.ea_format import MAX_EA_NESTING, EaFileError, dump_ea_yaml, load_ea_yaml
from fota_studio.core.errors import RepositoryError
from fota_studio.core.firmware import to_hex
from fota_studio.core.safe_text import check_version_text
from fota_studio.demo.catalog import demo_architecture
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace
from tests.fakes.sim_rig import make_image

LOOK_ALIKES = {
    "\u200b": "U+200B ZERO WIDTH SPACE",
    "\u2028": "U+2028 LINE SEPARATOR",
    "\u202e": "U+202E RIGHT-TO-LEFT OVERRIDE",
    "\x7f": "U+007F DELETE",
    "\u00a0": "U+00A0 NO-BREAK SPACE",
    "\uff13": "U+FF13 FULLWIDTH DIGIT THREE",
}


@pytest.mark.parametrize("ch", list(LOOK_ALIKES))
@pytest.mark.parametrize("where", ["end", "middle", "start"])
def test_look_alike_versions_are_refused_at_import(
    workspace_dir: Path, ch: str, where: str
) -> None:
    version = {"end": "3.2.1" + ch, "middle": "3.2" + ch + ".1", "start": ch + "3.2.1"}[where]
    hex_bytes = to_hex(make_image("3.2.1"))
    with Workspace.open(workspace_dir) as ws:
        store = RepositoryStore(ws)
        with pytest.raises(RepositoryError) as info:
            store.import_bytes(
                "Hostile", "Text", version, hex_bytes, source_name="x.hex", create_repository=True
            )
        assert LOOK_ALIKES[ch] in str(info.value)
        assert "position" in str(info.value)
        assert store.all_versions() == []


def test_refusal_is_one_clear_cli_line(
    workspace_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fw = tmp_path / "fw.hex"
    fw.write_bytes(to_hex(make_image("3.2.1")))
    args = ["--workspace", str(workspace_dir), "repo", "import", str(fw), "--create"]
    code = main([*args, "--brand", "Hostile", "--model", "Text", "--version", "3.2.1\u202e"])
    err = capsys.readouterr().err
    assert code == 1
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in err and "'3.2.1\\u202e'" in err
    assert "\u202e" not in err  # the hostile character is never echoed raw


def test_safe_versions_pass_and_are_nfc_normalised() -> None:
    for ok in ("3.2.1", "2.2.0-rc.1+build.5", "v2", "2024_03", "1.0~beta", " 1.0 "):
        assert check_version_text(ok) == ok.strip()
    decomposed = "1.0-cafe\u0301"  # NFC makes it "café", still outside the safe set
    with pytest.raises(RepositoryError, match="U\\+00E9"):
        check_version_text(decomposed)
    for bad in ("", "-1.0", "1" * 65, "1.0 beta", "1.0/2", "1.0\n"):
        with pytest.raises(RepositoryError):
            check_version_text(bad)


@pytest.mark.parametrize("style", ["flow-list", "flow-map", "block"])
def test_deeply_nested_ea_is_a_file_line_error_not_recursion(
    tmp_path: Path, style: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if style == "flow-list":
        text = "name: deep\necus: " + "[" * 5000 + "]" * 5000 + "\n"
    elif style == "flow-map":
        text = "name: deep\necus:\n  - " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"
    else:
        text = "name: deep\nx:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 600))
        text += " " * 600 + "v: 1\n"
    with pytest.raises(EaFileError, match=rf"deep.yaml:\d+: nested more than {MAX_EA_NESTING}"):
        load_ea_yaml(text, "deep.yaml")
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    code = main(["ea", "validate", str(path)])
    out = capsys.readouterr()
    assert code != 0 and "RecursionError" not in out.err + out.out
    assert re.search(rf"deep.yaml:\d+: nested more than {MAX_EA_NESTING}", out.err + out.out)


def _fd_ecu_index(ea_ecus: list) -> int:  # type: ignore[type-arg]
    return next(i for i, e in enumerate(ea_ecus) if e.connection.fd)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connection.bitrate_bps", 10**400),
        ("connection.bitrate_bps", 2_000_000),
        ("connection.bitrate_bps", 10),
        ("connection.data_bitrate_bps", 10**400),
        ("connection.data_bitrate_bps", 40_000_000),
        ("uds.p2_timeout_ms", 10**30),
        ("uds.p2_star_timeout_ms", 86_400_000),
        ("uds.s3_ms", 10**12),
        ("connection.bootloader_entry_delay_ms", 10**9),
        ("connection.application.request_id", 0x800),
    ],
)
def test_numeric_fields_are_bounded_with_file_line(
    tmp_path: Path, field: str, value: int, capsys: pytest.CaptureFixture[str]
) -> None:
    ea = demo_architecture()
    index = _fd_ecu_index(ea.ecus)
    obj = ea.ecus[index]
    *parents, leaf = field.split(".")
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, leaf, value)
    path = tmp_path / "hostile.ea.yaml"
    path.write_text(dump_ea_yaml(ea))
    code = main(["ea", "validate", str(path)])
    out = capsys.readouterr().out + capsys.readouterr().err
    assert code != 0
    line = re.search(rf"hostile.ea.yaml:(\d+): error: ecus\[{index}\]\.[\w.]*{leaf}: ", out)
    assert line is not None, out
    text_line = path.read_text().splitlines()[int(line.group(1)) - 1]
    assert leaf in text_line  # the line named is the field's own line
    assert len(out) < 4000  # a 400-digit number is not echoed in full
