"""Hex number text as the editors take it (`7E0`, `0x7E0`): no Qt, so the EA editor's codecs
and their unit tests use it without loading PySide6. Any thread."""

from __future__ import annotations


def parse_hex(text: str) -> int | None:
    """`7E0` / `0x7E0` as an int; None for empty or non-hex text."""
    t = text.strip()
    if t.lower().startswith("0x"):
        t = t[2:]
    if not t:
        return None
    try:
        return int(t, 16)
    except ValueError:
        return None
