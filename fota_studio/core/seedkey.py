"""Seed/key algorithms of UDS SecurityAccess (ISO 14229-1 §10.4), shared by tester and simulator.

The tester computes the key for a seed the ECU sent; the simulated ECU computes the key it
expects. Both call `compute_key` with the algorithm name and parameters of the EA's
`SecurityLevel`, so one table of algorithms serves both sides. Pure functions without state;
safe from any thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fota_studio.core.errors import SecurityAccessError

#: Signature of one algorithm: (seed, params, secret) -> key.
KeyAlgorithm = Callable[[bytes, Mapping[str, Any], "bytes | None"], bytes]


def _int_param(params: Mapping[str, Any], name: str, algorithm: str) -> int:
    """Return an integer parameter (int or "0x..." string) or raise a SecurityAccessError."""
    if name not in params:
        raise SecurityAccessError(
            f'seed/key algorithm "{algorithm}" needs the parameter "{name}"',
            hint="add it to the security level's params in the Electronic Architecture",
        )
    value = params[name]
    try:
        number = int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError) as exc:
        raise SecurityAccessError(
            f'seed/key algorithm "{algorithm}": parameter "{name}" = {value!r} is not an integer'
        ) from exc
    if number < 0:
        raise SecurityAccessError(
            f'seed/key algorithm "{algorithm}": parameter "{name}" must not be negative'
        )
    return number


def _constant_bytes(constant: int, length: int) -> bytes:
    """The constant as big-endian bytes, truncated (low bytes kept) or repeated to `length`."""
    raw = constant.to_bytes(max(4, (constant.bit_length() + 7) // 8), "big")
    if len(raw) >= length:
        return raw[len(raw) - length :]
    return (raw * (length // len(raw) + 1))[:length]


def xor32(seed: bytes, params: Mapping[str, Any], secret: bytes | None = None) -> bytes:
    """key = seed XOR constant (big-endian; the constant truncated/repeated to the seed length)."""
    del secret
    constant = _int_param(params, "constant", "xor32")
    mask = _constant_bytes(constant, len(seed))
    return bytes(s ^ m for s, m in zip(seed, mask, strict=True))


def _table(params: Mapping[str, Any]) -> list[int]:
    """Return the 256-entry substitution table of "table_xor" (list of ints or a hex string)."""
    raw = params.get("table")
    if raw is None:
        raise SecurityAccessError('seed/key algorithm "table_xor" needs the parameter "table"')
    try:
        table = list(bytes.fromhex(raw)) if isinstance(raw, str) else [int(v) for v in raw]
    except (TypeError, ValueError) as exc:
        raise SecurityAccessError(
            'seed/key algorithm "table_xor": "table" must be 256 byte values or a hex string'
        ) from exc
    if len(table) != 256 or any(not 0 <= v <= 0xFF for v in table):
        raise SecurityAccessError(
            f'seed/key algorithm "table_xor": "table" must hold 256 byte values, got {len(table)}'
        )
    return table


def table_xor(seed: bytes, params: Mapping[str, Any], secret: bytes | None = None) -> bytes:
    """key[i] = table[seed[i]] XOR constant[i] (constant big-endian, truncated/repeated)."""
    del secret
    table = _table(params)
    mask = _constant_bytes(_int_param(params, "constant", "table_xor"), len(seed))
    return bytes(table[s] ^ m for s, m in zip(seed, mask, strict=True))


ALGORITHMS: dict[str, KeyAlgorithm] = {"xor32": xor32, "table_xor": table_xor}


def compute_key(
    algorithm: str, seed: bytes, params: Mapping[str, Any], secret: bytes | None = None
) -> bytes:
    """Return the key for `seed` with the named algorithm; SecurityAccessError when unknown/bad."""
    func = ALGORITHMS.get(algorithm)
    if func is None:
        known = ", ".join(sorted(ALGORITHMS))
        raise SecurityAccessError(
            f'unknown seed/key algorithm "{algorithm}" (known: {known})',
            hint="fix the security level's algorithm in the Electronic Architecture",
        )
    if not seed:
        raise SecurityAccessError(f'seed/key algorithm "{algorithm}": the seed is empty')
    return func(bytes(seed), params, secret)
