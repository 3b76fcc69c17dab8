"""The user manual stays true: its screenshots exist and are small, and its EA reference lists
every field of `core/ea.py` with the defaults the code has (generated, compared here)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from fota_studio.core import ea

ROOT = Path(__file__).resolve().parents[2]
MANUAL = ROOT / "docs" / "USER_MANUAL.md"
IMAGES = ROOT / "docs" / "images"
MAX_PNG_BYTES = 150 * 1024
SECTIONS = (
    "Getting started",
    "Flashing",
    "Approval workflow",
    "Trace",
    "EA reference",
    "Troubleshooting",
)


def _load_tool(name: str) -> ModuleType:
    path = ROOT / "docs" / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_tools_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def text() -> str:
    return MANUAL.read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"the manual has no section '## {title}'"
    return match.group(1)


def test_every_section_is_there(text: str) -> None:
    for title in SECTIONS:
        assert _section(text, title).strip()


def test_every_referenced_screenshot_exists_and_is_small(text: str) -> None:
    refs = re.findall(r"!\[[^\]]*\]\((images/[^)]+\.png)\)", text)
    assert len(refs) >= 6
    for ref in refs:
        path = MANUAL.parent / ref
        assert path.is_file(), f"{ref} is referenced by the manual but missing (make screenshots)"
        assert path.stat().st_size <= MAX_PNG_BYTES, f"{ref} is larger than 150 KB"
    # and no stale image lies around unreferenced
    on_disk = {f"images/{p.name}" for p in IMAGES.glob("*.png")}
    assert on_disk <= set(refs), f"unreferenced images: {sorted(on_disk - set(refs))}"


def test_every_screenshot_of_the_script_is_in_the_manual(text: str) -> None:
    source = (ROOT / "docs" / "tools" / "screenshots.py").read_text(encoding="utf-8")
    shots = re.search(r"^SHOTS = \((.*?)\)", source, re.M | re.S)
    assert shots
    for name in re.findall(r'"(\w+)"', shots.group(1)):
        assert f"(images/{name}.png)" in text


def _ea_dataclasses() -> list[type]:
    return [
        obj
        for obj in vars(ea).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == ea.__name__
    ]


def test_every_ea_field_is_in_the_reference(text: str) -> None:
    reference = _section(text, "EA reference")
    classes = _ea_dataclasses()
    assert len(classes) >= 14
    for cls in classes:
        assert f"#### {cls.__name__} " in reference, f"{cls.__name__} missing"
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in reference, f"{cls.__name__}.{f.name} missing"
    for kind, params in ea.DEFAULT_STEP_PARAMS.items():
        assert f"| `{kind.value}` |" in reference
        for key in params:
            assert f"`{key}` = " in reference


def test_reference_matches_the_code(text: str) -> None:
    tool = _load_tool("ea_reference")
    assert tool.embedded(text) == tool.generate().strip("\n"), (
        "docs/USER_MANUAL.md's EA reference is out of date: "
        "run .venv/bin/python docs/tools/ea_reference.py --write"
    )


def test_reference_shows_real_defaults(text: str) -> None:
    reference = _section(text, "EA reference")
    # Spot checks in the words a reader sees, independent of the generator.
    assert "| `bitrate_bps` | 500 000 |" in reference
    assert "| `functional_id` | 0x7DF |" in reference
    assert "| `p2_timeout_ms` | 1 000 |" in reference
    assert "| `padding_byte` | 0xAA |" in reference
    assert "| `heartbeat_within_s` | 5 |" in reference
