"""Seed/key algorithms of UDS SecurityAccess (ISO 14229-1 §10.4), shared by tester and simulator.

The tester computes the key for a seed the ECU sent; the simulated ECU computes the key it
expects. Both call `compute_key` with the algorithm name and parameters of the EA's
`SecurityLevel`, so one table of algorithms serves both sides.

The secret of a built-in algorithm (the XOR constant) comes from the level's `secret_ref`: the
tester reads it from the OS keyring or the encrypted secrets file (`infra/secrets.py`) and passes
it as `secret` (big-endian bytes); it never lives in the EA. A `constant` in the params is only
read when no secret is given (EA files from before secret_ref worked; the validator flags them).
The demo machine's references (`DEMO_SECRET_PREFIX`) resolve to its published demo constants,
which protect nothing. Pure functions without state; safe from any thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fota_studio.core.errors import SecurityAccessError

#: Signature of one algorithm: (seed, params, secret) -> key.
KeyAlgorithm = Callable[[bytes, Mapping[str, Any], "bytes | None"], bytes]

#: secret_ref prefix of the demo machine's levels. Their values are PUBLISHED (the simulator and
#: every copy of FOTA Studio know them): they make the demo run without a keyring and protect
#: nothing. Never use this prefix for a real ECU.
DEMO_SECRET_PREFIX = "fota-studio-demo/"
DEMO_SECRETS: dict[str, bytes] = {
    DEMO_SECRET_PREFIX + "extended": bytes.fromhex("5A3C9E11"),
    DEMO_SECRET_PREFIX + "programming": bytes.fromhex("C3A50F69"),
}


def demo_secret(ref: str | None) -> bytes | None:
    """The published value of a demo secret reference, or None for any other reference."""
    return DEMO_SECRETS.get(ref or "")


def _constant(params: Mapping[str, Any], secret: bytes | None, algorithm: str) -> int:
    """The XOR constant: the keyring secret when given, else the (legacy) `constant` param."""
    if secret is not None:
        if not secret:
            raise SecurityAccessError(f'seed/key algorithm "{algorithm}": the secret is empty')
        return int.from_bytes(secret, "big")
    if "constant" not in params:
        raise SecurityAccessError(
            f'seed/key algorithm "{algorithm}" needs a secret',
            hint="set the security level's secret_ref and store the secret under it "
            "(`fota-studio secrets set REF`); secrets never go into the EA file",
        )
    return _int_param(params, "constant", algorithm)


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
    """key = seed XOR constant (big-endian; the constant truncated/repeated to the seed length).

    The constant is the secret (from `secret_ref`); `params["constant"]` only without one."""
    constant = _constant(params, secret, "xor32")
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
    """key[i] = table[seed[i]] XOR constant[i] (constant big-endian, truncated/repeated); the
    constant is the secret from `secret_ref` (`params["constant"]` only without one)."""
    table = _table(params)
    mask = _constant_bytes(_constant(params, secret, "table_xor"), len(seed))
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
