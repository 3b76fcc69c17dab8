"""UDS (ISO 14229-1) message decoding for the trace: service, sub-function, DID, routine, NRC.

`describe_uds(payload)` turns one reassembled ISO-TP payload into a one-line text;
`summarise_transfers` collapses a TransferData burst (hundreds of 0x36/0x76 messages) into one
line with the block counter range and the byte count. Pure functions; any thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fota_studio.core.nrc import SERVICE_NAMES, nrc_name

DID_NAMES: dict[int, str] = {
    0xF180: "bootSoftwareIdentification",
    0xF181: "applicationSoftwareIdentification",
    0xF186: "activeDiagnosticSession",
    0xF187: "vehicleManufacturerSparePartNumber",
    0xF188: "vehicleManufacturerECUSoftwareNumber",
    0xF189: "vehicleManufacturerECUSoftwareVersionNumber",
    0xF18A: "systemSupplierIdentifier",
    0xF18C: "ECUSerialNumber",
    0xF190: "VIN",
    0xF191: "vehicleManufacturerECUHardwareNumber",
    0xF192: "systemSupplierECUHardwareNumber",
    0xF193: "systemSupplierECUHardwareVersionNumber",
    0xF194: "systemSupplierECUSoftwareNumber",
    0xF195: "systemSupplierECUSoftwareVersionNumber",
    0xF199: "programmingDate",
    0xF19E: "ODXFile",
    0xF40D: "vehicleSpeed",
    0xF442: "controlModuleVoltage",
}

ROUTINE_NAMES: dict[int, str] = {
    0xFF00: "eraseMemory",
    0xFF01: "checkProgrammingDependencies",
    0x0202: "checkMemory",
    0x0203: "checkProgrammingPreconditions",
}

SUBFUNCTIONS: dict[int, dict[int, str]] = {
    0x10: {1: "defaultSession", 2: "programmingSession", 3: "extendedDiagnosticSession"},
    0x11: {1: "hardReset", 2: "keyOffOnReset", 3: "softReset"},
    0x28: {
        0: "enableRxAndTx",
        1: "enableRxAndDisableTx",
        2: "disableRxAndEnableTx",
        3: "disableRxAndTx",
    },
    0x31: {1: "startRoutine", 2: "stopRoutine", 3: "requestRoutineResults"},
    0x3E: {0: "zeroSubFunction"},
    0x85: {1: "on", 2: "off"},
    0x19: {1: "reportNumberOfDTCByStatusMask", 2: "reportDTCByStatusMask"},
}

_HAS_SUBFUNCTION = frozenset({0x10, 0x11, 0x19, 0x27, 0x28, 0x31, 0x3E, 0x85})


def service_name(sid: int) -> str:
    """Name of a request service id (or a response id minus 0x40)."""
    return SERVICE_NAMES.get(sid, f"Service0x{sid:02X}")


def is_uds_payload(payload: bytes) -> bool:
    """True when the first byte is a known UDS request, positive response or 0x7F."""
    if not payload:
        return False
    sid = payload[0]
    return sid == 0x7F or sid in SERVICE_NAMES or (sid - 0x40) in SERVICE_NAMES


def _hex(data: bytes, limit: int = 16) -> str:
    text = data[:limit].hex(" ").upper()
    return text + (f" …(+{len(data) - limit})" if len(data) > limit else "")


def _subfunction(sid: int, sub: int) -> str:
    suppress = " (suppressPosRsp)" if sub & 0x80 else ""
    sub &= 0x7F
    if sid == 0x27:
        kind = "requestSeed" if sub % 2 else "sendKey"
        return f"{kind} level 0x{sub:02X}{suppress}"
    name = SUBFUNCTIONS.get(sid, {}).get(sub, f"0x{sub:02X}")
    return name + suppress


def _did(did: int, names: Mapping[int, str]) -> str:
    name = names.get(did) or DID_NAMES.get(did)
    return f"DID 0x{did:04X}" + (f" {name}" if name else "")


def describe_uds(payload: bytes, did_names: Mapping[int, str] | None = None) -> str:
    """One-line description of a UDS request or response payload."""
    names = did_names or {}
    if not payload:
        return "UDS (empty)"
    sid = payload[0]
    if sid == 0x7F:
        if len(payload) < 3:
            return f"UDS negative response (short) {_hex(payload)}"
        nrc = payload[2]
        return f"NEG {service_name(payload[1])} NRC 0x{nrc:02X} {nrc_name(nrc)}"
    response = sid not in SERVICE_NAMES and (sid - 0x40) in SERVICE_NAMES
    base = sid - 0x40 if response else sid
    head = ("POS " if response else "") + service_name(base)
    body = payload[1:]
    parts = [head]
    if base in _HAS_SUBFUNCTION and body:
        parts.append(_subfunction(base, body[0]))
        body = body[1:]
        if base == 0x31 and len(body) >= 2:
            rid = int.from_bytes(body[:2], "big")
            name = ROUTINE_NAMES.get(rid)
            parts.append(f"routine 0x{rid:04X}" + (f" {name}" if name else ""))
            body = body[2:]
        if base == 0x27 and body:
            parts.append(("seed " if response and payload[1] % 2 else "key ") + _hex(body))
            body = b""
    elif base in (0x22, 0x2E) and len(body) >= 2:
        parts.append(_did(int.from_bytes(body[:2], "big"), names))
        body = body[2:]
        if response and base == 0x22 and body:
            printable = body.isascii() and all(32 <= b < 127 for b in body)
            parts.append(repr(body.decode("ascii")) if printable else _hex(body))
            body = b""
    elif base == 0x36 and body:
        parts.append(f"block 0x{body[0]:02X}")
        if not response:
            parts.append(f"{len(body) - 1} bytes")
            body = b""
        else:
            body = body[1:]
    elif base == 0x34 and not response and len(body) >= 2:
        alfid = body[1]
        alen, slen = alfid & 0x0F, alfid >> 4
        addr = int.from_bytes(body[2 : 2 + alen], "big")
        size = int.from_bytes(body[2 + alen : 2 + alen + slen], "big")
        parts.append(f"addr 0x{addr:X} size {size}")
        body = b""
    elif base == 0x34 and response and body:
        lfid = body[0] >> 4
        parts.append(f"maxBlockLength {int.from_bytes(body[1 : 1 + lfid], 'big')}")
        body = b""
    if body:
        parts.append(_hex(body))
    return " ".join(parts)


@dataclass(frozen=True)
class UdsLine:
    """One summarised line: a message, or a collapsed TransferData burst."""

    first_index: int
    last_index: int
    text: str


def summarise_transfers(payloads: Sequence[bytes]) -> list[UdsLine]:
    """Describe payloads in order, collapsing runs of TransferData (0x36 / 0x76 / NRC 0x78 on
    0x36) into one line "TransferData ×N blocks 0x01..0x40, B bytes"."""
    lines: list[UdsLine] = []
    i = 0
    n = len(payloads)
    while i < n:
        p = payloads[i]
        if p[:1] in (b"\x36", b"\x76") or p[:2] == b"\x7f\x36":
            j = i
            blocks: list[int] = []
            nbytes = 0
            errors = 0
            while j < n and (
                payloads[j][:1] in (b"\x36", b"\x76") or payloads[j][:2] == b"\x7f\x36"
            ):
                q = payloads[j]
                if q[0] == 0x36 and len(q) >= 2:
                    blocks.append(q[1])
                    nbytes += len(q) - 2
                elif q[0] == 0x7F and q[2:3] != b"\x78":
                    errors += 1
                j += 1
            if j - i >= 3:
                rng = f"0x{blocks[0]:02X}..0x{blocks[-1]:02X}" if blocks else "-"
                err = f", {errors} negative" if errors else ""
                lines.append(
                    UdsLine(
                        i, j - 1, f"TransferData ×{len(blocks)} blocks {rng}, {nbytes} bytes{err}"
                    )
                )
                i = j
                continue
        lines.append(UdsLine(i, i, describe_uds(p)))
        i += 1
    return lines
