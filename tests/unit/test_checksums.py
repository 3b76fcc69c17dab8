"""core/checksums.py: the check routine's checksums, shared by the tester (engine/flash_job.py)
and the simulated ECU — the standard check values, and chunked input equal to one block."""

from __future__ import annotations

import hashlib

import pytest

from fota_studio.core.checksums import CHECKSUM_LENGTHS, checksum, checksum_length, crc16_ccitt
from fota_studio.core.ea import CHECKSUM_KINDS
from fota_studio.core.errors import ConfigurationError

CHECK = b"123456789"  # the catalogue's check input


def test_standard_check_values() -> None:
    assert checksum("crc32", CHECK) == bytes.fromhex("CBF43926")  # CRC-32/ISO-HDLC
    assert checksum("crc16_ccitt", CHECK) == bytes.fromhex("29B1")  # CRC-16/CCITT-FALSE
    assert crc16_ccitt(CHECK) == 0x29B1
    assert checksum("sha256", CHECK) == hashlib.sha256(CHECK).digest()
    assert checksum("none", CHECK) == b""


@pytest.mark.parametrize("kind", CHECKSUM_KINDS)
def test_chunks_equal_the_joined_bytes(kind: str) -> None:
    data = bytes(range(256)) * 5
    chunks = [data[:1], memoryview(data)[1:700], bytearray(data[700:])]
    assert checksum(kind, chunks) == checksum(kind, data)
    assert len(checksum(kind, data)) == checksum_length(kind) == CHECKSUM_LENGTHS[kind]


def test_unknown_kind_says_what_to_use() -> None:
    with pytest.raises(ConfigurationError, match='unknown checksum kind "md5"') as info:
        checksum("md5", CHECK)
    assert "crc32" in (info.value.hint or "")
    with pytest.raises(ConfigurationError):
        checksum_length("md5")
