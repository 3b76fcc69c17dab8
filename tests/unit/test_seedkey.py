"""Seed/key algorithms: known answers, parameter errors, both sides agree."""

from __future__ import annotations

import pytest

from fota_studio.core.errors import SecurityAccessError
from fota_studio.core.seedkey import ALGORITHMS, compute_key
from fota_studio.demo import catalog as demo_catalog


def test_xor32_known_answers() -> None:
    params = {"constant": 0x5A3C9E11}
    assert compute_key("xor32", bytes.fromhex("01020304"), params) == bytes.fromhex("5B3E9D15")
    # 2-byte seeds use the low bytes of the constant; longer seeds repeat it.
    assert compute_key("xor32", bytes.fromhex("0000"), params) == bytes.fromhex("9E11")
    assert compute_key("xor32", bytes(8), params) == bytes.fromhex("5A3C9E115A3C9E11")
    assert compute_key("xor32", b"\x00\x00\x00\x00", {"constant": "0x11"}) == b"\x00\x00\x00\x11"


def test_demo_constants_are_xor32() -> None:
    for level, constant in demo_catalog.SECURITY_CONSTANTS.items():
        key = compute_key("xor32", bytes(4), {"constant": constant})
        assert int.from_bytes(key, "big") == constant, level


def test_table_xor() -> None:
    table = [(i * 7 + 3) & 0xFF for i in range(256)]
    params = {"table": table, "constant": 0x01020304}
    key = compute_key("table_xor", bytes([0, 1, 2, 3]), params)
    assert key == bytes([3 ^ 1, 10 ^ 2, 17 ^ 3, 24 ^ 4])
    as_hex = {"table": bytes(table).hex(), "constant": 0x01020304}
    assert compute_key("table_xor", bytes([0, 1, 2, 3]), as_hex) == key


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [
        ("rot13", {"constant": 1}),
        ("xor32", {}),
        ("xor32", {"constant": "nope"}),
        ("xor32", {"constant": -1}),
        ("table_xor", {"constant": 1}),
        ("table_xor", {"table": [1, 2, 3], "constant": 1}),
        ("table_xor", {"table": "zz", "constant": 1}),
    ],
)
def test_bad_algorithm_or_params(algorithm: str, params: dict[str, object]) -> None:
    with pytest.raises(SecurityAccessError):
        compute_key(algorithm, b"\x01\x02", params)


def test_registry() -> None:
    assert {"xor32", "table_xor"} <= set(ALGORITHMS)
    with pytest.raises(SecurityAccessError):
        compute_key("xor32", b"", {"constant": 1})
