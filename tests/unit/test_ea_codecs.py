"""The EA editor's cell codecs (`ui/panels/ea/codecs.py`): text to typed values and back,
without Qt."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fota_studio.core.ea import StepKind
from fota_studio.ui.panels.ea.codecs import (
    format_cell,
    format_params,
    format_step_params,
    parse_cell,
    parse_hex,
    parse_params,
    parse_scalar,
    parse_step_params,
    step_params_help,
    unique_name,
)


def test_importing_the_codecs_loads_no_qt() -> None:
    code = (
        "import sys, fota_studio.ui.panels.ea.codecs; "
        "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("text", "value"),
    [("7E0", 0x7E0), ("0x7e0", 0x7E0), (" 0X1f ", 0x1F), ("", None), ("0x", None), ("xyz", None)],
)
def test_parse_hex(text: str, value: int | None) -> None:
    assert parse_hex(text) == value


def test_parse_scalar_types_by_text() -> None:
    assert parse_scalar(" TRUE ") is True
    assert parse_scalar("false") is False
    assert parse_scalar("0x10") == 16 and parse_scalar("12") == 12
    assert parse_scalar("1.5") == 1.5
    assert parse_scalar(" hello ") == "hello"


def test_generic_params_round_trip_with_ids_in_hex() -> None:
    params = {"level": 0x11, "did": 0xF190, "enabled": True, "name": "x", "count": 3}
    text = format_params(params)
    assert text == "level=0x11, did=0xF190, enabled=true, name=x, count=3"
    assert parse_params(text) == params


def test_parse_params_names_the_bad_part() -> None:
    with pytest.raises(ValueError, match='"oops" is not key=value'):
        parse_params("a=1, oops")
    assert parse_params(" , a=1 ,") == {"a": 1}


def test_step_params_typed_by_the_schema() -> None:
    params = parse_step_params(StepKind.PROGRAMMING_SESSION, "session=0x02")
    assert params == {"session": 2}
    assert format_step_params(StepKind.PROGRAMMING_SESSION, params) == "session=0x02"
    with pytest.raises(ValueError, match=r'session: "two" is not byte'):
        parse_step_params(StepKind.PROGRAMMING_SESSION, "session=two")
    # An unknown key keeps a generic value so the validator can name it.
    assert parse_step_params(StepKind.PROGRAMMING_SESSION, "colour=red") == {"colour": "red"}


def test_step_params_help_names_range_and_meaning() -> None:
    text = step_params_help(StepKind.PROGRAMMING_SESSION)
    assert text.startswith("session (0x00..0xFF")
    assert "default" in text


@pytest.mark.parametrize(
    ("kind", "value", "text"),
    [
        ("hex", 0x7E0, "0x7E0"),
        ("opthex", None, ""),
        ("bytes", b"\xb0\x07", "B0 07"),
        ("int", 5, "5"),
        ("optfloat", 1.5, "1.5"),
        ("str", "name", "name"),
        ("params", {"level": 1}, "level=0x1"),
    ],
)
def test_cells_round_trip(kind: str, value: object, text: str) -> None:
    assert format_cell(kind, value) == text
    assert parse_cell(kind, text) == value


def test_parse_cell_refuses_what_the_column_cannot_hold() -> None:
    with pytest.raises(ValueError, match="not a hex number"):
        parse_cell("hex", "zz")
    with pytest.raises(ValueError):
        parse_cell("int", "1.5")
    with pytest.raises(ValueError, match="column kind ro"):
        parse_cell("ro", "x")
    assert parse_cell("optstr", "  ") is None
    assert parse_cell("optint", "") is None


def test_unique_name_counts_up() -> None:
    assert unique_name([], "VCU") == "VCU"
    assert unique_name(["VCU", "VCU 2"], "VCU") == "VCU 3"
