"""The check routine's checksums, computed the same way by the tester and the simulated ECU.

`checksum(kind, data)` returns the record a check routine (RoutineControl, EA step `check`)
carries for the image bytes, given as one bytes object or as chunks in address order (the
tester passes the image's segments, so it never joins megabytes first; the simulator the memory
it programmed). The kinds are `core.ea.CHECKSUM_KINDS`. Pure functions; any thread.
"""

from __future__ import annotations

import binascii
import hashlib
import zlib
from collections.abc import Iterable

from fota_studio.core.ea import CHECKSUM_KINDS
from fota_studio.core.errors import ConfigurationError

#: Bytes of each kind's record (the check routine's option record length).
CHECKSUM_LENGTHS = {"crc32": 4, "crc16_ccitt": 2, "sha256": 32, "none": 0}

Bytes = bytes | bytearray | memoryview


def crc16_ccitt(data: Bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR)."""
    return binascii.crc_hqx(data, crc)


def checksum(kind: str, data: Bytes | Iterable[Bytes]) -> bytes:
    """The check routine's record for `kind` over `data` (bytes, or chunks in address order).

    crc32 (zlib) and crc16_ccitt are big-endian; sha256 is the 32-byte digest; none is empty.
    """
    chunks: Iterable[Bytes] = (data,) if isinstance(data, bytes | bytearray | memoryview) else data
    if kind == "crc32":
        crc32 = 0
        for chunk in chunks:
            crc32 = zlib.crc32(chunk, crc32)
        return (crc32 & 0xFFFFFFFF).to_bytes(4, "big")
    if kind == "crc16_ccitt":
        crc16 = 0xFFFF
        for chunk in chunks:
            crc16 = crc16_ccitt(chunk, crc16)
        return crc16.to_bytes(2, "big")
    if kind == "sha256":
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
        return digest.digest()
    if kind == "none":
        return b""
    raise ConfigurationError(
        f'unknown checksum kind "{kind}" in the check step',
        hint=f"use one of {', '.join(CHECKSUM_KINDS)}",
    )


def checksum_length(kind: str) -> int:
    """Bytes of the record `checksum(kind, …)` returns (raises for an unknown kind)."""
    if kind not in CHECKSUM_LENGTHS:
        raise ConfigurationError(
            f'unknown checksum kind "{kind}" in the check step',
            hint=f"use one of {', '.join(CHECKSUM_KINDS)}",
        )
    return CHECKSUM_LENGTHS[kind]
