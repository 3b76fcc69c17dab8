"""Intel HEX and Motorola S-record lines with correct checksums, for firmware loader tests."""

from __future__ import annotations


def hexrec(kind: int, offset: int, payload: bytes = b"") -> str:
    """One Intel HEX record line (no line end) with a correct checksum."""
    rec = bytes([len(payload), offset >> 8, offset & 0xFF, kind]) + payload
    return ":" + (rec + bytes([-sum(rec) & 0xFF])).hex().upper()


def srec(kind: int, value: int, payload: bytes = b"") -> str:
    """One S-record line (no line end) with a correct checksum."""
    alen = (2, 2, 3, 4, 0, 2, 3, 4, 3, 2)[kind]
    rec = bytes([alen + len(payload) + 1]) + value.to_bytes(alen, "big") + payload
    return f"S{kind}" + (rec + bytes([~sum(rec) & 0xFF])).hex().upper()


def lines(*items: str, eol: str = "\n") -> bytes:
    """The lines of a file, each ended by `eol`, as bytes."""
    return (eol.join(items) + eol).encode()


#: The Intel HEX end-of-file record.
EOF_HEX = ":00000001FF"
