"""Fuzz targets for issue 14's hostile text: the EA parser at depth, EA numbers out of range,
and firmware version strings full of Unicode look-alikes.

- `ea_depth`: the demo EA with nesting spliced in (flow lists/maps, block mappings and
  sequences; around the limit and thousands deep, closed or not). Must load or be refused with
  a FotaError; never RecursionError. Crafted: 5,000-deep flow list and map, 1,000-deep block
  mapping, nesting exactly at and one past `MAX_EA_NESTING`.
- `ea_numbers`: a number of the demo EA replaced by a hostile one (400 digits, negative, 2**64,
  huge hex, 1e309, .inf, .nan, booleans). Loaded and validated; an EA that validates must have
  its bitrates and timeouts within the documented bounds (a violation counts as a crash).
- `version_text`: versions with inserted code points (format, separator and control
  characters, combining marks, confusable digits, random BMP). Must be accepted or refused
  with a RepositoryError; an accepted version must be NFC and inside the safe set (else crash).

Each target has its own mutator (`Target.mutator`). Main thread of a script or test.
"""

from __future__ import annotations

import random
import unicodedata
from typing import TYPE_CHECKING

from fota_studio.core.ea_format import MAX_EA_NESTING, dump_ea_yaml, load_ea_yaml
from fota_studio.core.ea_validate import (
    MAX_BITRATE_BPS,
    MAX_DATA_BITRATE_BPS,
    MAX_TIMEOUT_MS,
    MIN_BITRATE_BPS,
    Severity,
    validate,
)
from fota_studio.core.safe_text import VERSION_MAX_CHARS, check_version_text
from fota_studio.demo.catalog import demo_architecture

if TYPE_CHECKING:
    from reliability.fuzz import Target

#: Code points an attacker would pick: zero-width and bidi controls, separators, C0/C1/DEL,
#: combining marks, no-break and odd spaces, confusable digits and dots, a BOM, a surrogate.
HOSTILE_CODE_POINTS = (
    *(0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x034F),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    *(0x2028, 0x2029, 0x0085, 0x000A, 0x000D, 0x0009, 0x000B, 0x000C, 0x0000, 0x001B, 0x007F),
    *(0x00A0, 0x2007, 0x202F, 0x3000, 0x1680),
    *(0x0301, 0x0308, 0x20DD, 0x0338),
    *(0xFF13, 0x0663, 0x06F3, 0x0969, 0x1D7F9, 0x2024, 0xFF0E, 0x3002, 0x2219, 0x2010, 0x2212),
    *(0x0430, 0x0435, 0x043E, 0x0440, 0x0441, 0x0455, 0x0456),
)


class _Violation(AssertionError):
    """An accepted input that breaks the target's invariant (counted as a crash)."""


def ea_seed() -> bytes:
    """The demo EA reduced to its CAN FD ECU, as YAML (a third of the text: PyYAML parses an EA
    three times per load, so this triples the inputs per second)."""
    ea = demo_architecture()
    ea.ecus = [e for e in ea.ecus if e.connection.fd][:1] or ea.ecus[:1]
    return dump_ea_yaml(ea).encode("utf-8")


def _nesting(rng: random.Random, depth: int, block: bool) -> str:
    kind = rng.randrange(2, 4) if block else rng.randrange(2)
    if kind == 0:
        return "[" * depth + ("]" * depth if rng.random() < 0.7 else "")
    if kind == 1:
        return "{a: " * depth + "1" + ("}" * depth if rng.random() < 0.7 else "")
    if kind == 2:
        return "\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(depth)) + " " * (depth + 1)
    return "\n" + "".join(" " * i + "- \n" for i in range(depth)) + " " * depth + "- 1\n"


def mutate_depth(data: bytes, rng: random.Random) -> bytes:
    """Splice a nesting of random depth (mostly near the limit, sometimes thousands) into the
    EA text, at a line start or after a `key:`."""
    text = data.decode("utf-8")
    lines = text.splitlines(keepends=True)
    depth = rng.choice(
        [
            rng.randint(1, MAX_EA_NESTING - 2),
            rng.randint(MAX_EA_NESTING - 2, MAX_EA_NESTING + 2),
            rng.randint(100, 6000),
        ]
    )
    if kind_is_block := rng.random() < 0.5:
        depth = min(depth, rng.randint(40, 400))  # block text grows quadratically with depth
    i = rng.randrange(len(lines))
    line = lines[i].rstrip("\n")
    if ":" in line and rng.random() < 0.6:
        key = line.split(":", 1)[0]
        lines[i] = f"{key}: {_nesting(rng, depth, kind_is_block)}\n"
    else:
        lines.insert(i, f"x{rng.randrange(99)}: {_nesting(rng, depth, kind_is_block)}\n")
    return "".join(lines).encode("utf-8")


def crafted_depth() -> list[tuple[str, bytes]]:
    """The attacks of issue 14 and the exact limit."""
    head = "name: deep\necus: "
    return [
        ("flow list 5000 deep", (head + "[" * 5000 + "]" * 5000).encode()),
        ("flow map 5000 deep", (head + "{a: " * 5000 + "1" + "}" * 5000).encode()),
        ("unclosed 100000 deep", (head + "[" * 100_000).encode()),
        (
            "block map 1000 deep",
            ("name: deep\nx:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 1000))).encode(),
        ),
        ("at the limit", ("name: d\nx: " + "[" * (MAX_EA_NESTING - 1) + "]" * 31).encode()),
        ("one past", ("name: d\nx: " + "[" * MAX_EA_NESTING + "]" * MAX_EA_NESTING).encode()),
    ]


HOSTILE_NUMBERS = (
    "1" + "0" * 400,
    "-1",
    "0",
    "-0",
    str(2**64),
    str(2**31),
    "0x" + "F" * 120,
    "1e309",
    "-1e309",
    ".inf",
    "-.inf",
    ".nan",
    "true",
    "0b" + "1" * 80,
    "0o777777777777777777777777",
    "1_000_000_000_000",
    "99999999999999999999",
    "3.5",
    "'500000'",
    "~",
)


def mutate_numbers(data: bytes, rng: random.Random) -> bytes:
    """Replace one to three numeric values of the EA YAML with hostile numbers."""
    lines = data.decode("utf-8").splitlines(keepends=True)
    numeric = [
        i
        for i, ln in enumerate(lines)
        if ": " in ln and ln.split(": ", 1)[1].strip().lstrip("-'0x").replace("'", "").isalnum()
    ]
    for _ in range(rng.randint(1, 3)):
        i = rng.choice(numeric)
        key = lines[i].split(": ", 1)[0]
        lines[i] = f"{key}: {rng.choice(HOSTILE_NUMBERS)}\n"
    return "".join(lines).encode("utf-8")


def feed_numbers(data: bytes) -> object:
    """Load and validate; a valid EA must respect the numeric bounds."""
    loaded = load_ea_yaml(data.decode("utf-8", "replace"), "fuzz.ea.yaml")
    problems = validate(loaded.ea)
    if any(p.severity is Severity.ERROR for p in problems):
        return problems
    for ecu in loaded.ea.ecus:
        con, uds = ecu.connection, ecu.uds
        checks = [
            ("bitrate_bps", con.bitrate_bps, MIN_BITRATE_BPS, MAX_BITRATE_BPS),
            ("p2_timeout_ms", uds.p2_timeout_ms, 1, MAX_TIMEOUT_MS),
            ("p2_star_timeout_ms", uds.p2_star_timeout_ms, 1, MAX_TIMEOUT_MS),
            ("s3_ms", uds.s3_ms, 1, MAX_TIMEOUT_MS),
        ]
        if con.fd:
            checks.append(
                ("data_bitrate_bps", con.data_bitrate_bps, MIN_BITRATE_BPS, MAX_DATA_BITRATE_BPS)
            )
        for name, value, low, high in checks:
            if not isinstance(value, int) or not low <= value <= high:
                raise _Violation(f"{ecu.name}.{name} = {str(value)[:30]} validated")
    return problems


def mutate_version(data: bytes, rng: random.Random) -> bytes:
    """Insert, replace or append hostile or random code points in a version string."""
    chars = list(data.decode("utf-8"))
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.7:
            cp = rng.choice(HOSTILE_CODE_POINTS)
        else:
            cp = rng.randrange(0x20, 0x30000)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0x200B
        pos = rng.randrange(len(chars) + 1)
        if rng.random() < 0.3 and chars:
            chars[min(pos, len(chars) - 1)] = chr(cp)
        else:
            chars.insert(pos, chr(cp))
    if rng.random() < 0.05:
        chars = chars * rng.randint(2, 40)
    return "".join(chars).encode("utf-8", "surrogatepass")


def feed_version(data: bytes) -> object:
    """check_version_text; an accepted version must be NFC, short and in the safe set."""
    text = data.decode("utf-8", "surrogatepass")
    out = check_version_text(text)
    if unicodedata.normalize("NFC", out) != out or len(out) > VERSION_MAX_CHARS:
        raise _Violation(f"accepted {ascii(out)[:60]}")
    if not all(c.isascii() and (c.isalnum() or c in ".-+_~") for c in out):
        raise _Violation(f"accepted unsafe {ascii(out)[:60]}")
    return out


def hostile_targets() -> list[Target]:
    """The three targets of this module."""
    from reliability.fuzz import Target

    seed = ea_seed()
    return [
        Target(
            "ea_depth",
            [seed],
            lambda d: load_ea_yaml(d.decode("utf-8", "replace"), "fuzz.ea.yaml"),
            crafted_depth(),
            mutator=mutate_depth,
        ),
        Target("ea_numbers", [seed], feed_numbers, mutator=mutate_numbers),
        Target(
            "version_text",
            [b"3.2.1", b"2.2.0-rc.1+build.5", b"v10"],
            feed_version,
            mutator=mutate_version,
        ),
    ]
