"""CANopen (CiA 301) frame decoding for the trace: NMT, SYNC, EMCY, heartbeat, SDO, PDO.

`describe_canopen(can_id, data)` explains one 11-bit frame; `SdoTracker` follows segmented
SDO transfers per node so the last segment reports the whole value; `ObjectNames` loads object
names from EDS files (e.g. resources/fota_tcu.eds) through the canopen library. Pure functions
and per-instance state; call from one thread at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

NMT_COMMANDS = {
    0x01: "start",
    0x02: "stop",
    0x80: "enter pre-operational",
    0x81: "reset node",
    0x82: "reset communication",
}
NMT_STATES = {0x00: "boot-up", 0x04: "stopped", 0x05: "operational", 0x7F: "pre-operational"}

SDO_ABORT_CODES: dict[int, str] = {
    0x05030000: "toggle bit not alternated",
    0x05040000: "SDO protocol timed out",
    0x05040001: "command specifier not valid or unknown",
    0x05040005: "out of memory",
    0x06010000: "unsupported access to an object",
    0x06010001: "attempt to read a write only object",
    0x06010002: "attempt to write a read only object",
    0x06020000: "object does not exist in the object dictionary",
    0x06040041: "object cannot be mapped to the PDO",
    0x06040043: "general parameter incompatibility",
    0x06060000: "access failed due to a hardware error",
    0x06070010: "data type does not match, length of service parameter does not match",
    0x06090011: "sub-index does not exist",
    0x06090030: "invalid value for parameter",
    0x06090031: "value of parameter written too high",
    0x06090032: "value of parameter written too low",
    0x08000000: "general error",
    0x08000020: "data cannot be transferred or stored to the application",
    0x08000021: "data cannot be transferred because of local control",
    0x08000022: "data cannot be transferred because of the present device state",
}

_PDO_BASES = {
    0x180: "TPDO1",
    0x200: "RPDO1",
    0x280: "TPDO2",
    0x300: "RPDO2",
    0x380: "TPDO3",
    0x400: "RPDO3",
    0x480: "TPDO4",
    0x500: "RPDO4",
}


class ObjectNames:
    """Object / sub-object names by (index, subindex), loaded from EDS/DCF files."""

    def __init__(self) -> None:
        self._names: dict[tuple[int, int | None], str] = {}

    def load_eds(self, path: Path | str, node_id: int | None = None) -> int:
        """Load names from an EDS/DCF file (canopen.import_od); returns objects added."""
        import canopen  # local: only needed when an EDS is loaded

        od = canopen.objectdictionary.import_od(str(path), node_id)
        added = 0
        for index in od:
            obj = od[index]
            self._names[(index, None)] = obj.name
            added += 1
            subs = getattr(obj, "subindices", None)
            if subs:
                for sub, var in subs.items():
                    self._names[(index, sub)] = f"{obj.name}.{var.name}"
        return added

    def name(self, index: int, sub: int) -> str:
        """`name.sub_name` when known, else ``."""
        return self._names.get((index, sub)) or self._names.get((index, None)) or ""


def _ix(index: int, sub: int, names: ObjectNames | None) -> str:
    text = f"{index:04X}:{sub:02X}"
    name = names.name(index, sub) if names else ""
    return f"{text} {name}" if name else text


def _value_text(data: bytes) -> str:
    if len(data) <= 4:
        return f"{int.from_bytes(data, 'little')} (0x{data[::-1].hex().upper() or '0'})"
    if data.isascii() and all(32 <= b < 127 or b in (9, 10, 13) for b in data):
        return repr(data.decode("ascii"))  # a text log (VISIBLE_STRING) reads as text
    return data.hex(" ").upper()


@dataclass
class _SdoTransfer:
    index: int
    sub: int
    upload: bool
    data: bytearray = field(default_factory=bytearray)


class SdoTracker:
    """Follows SDO transfers per node so segmented values can be shown when complete."""

    def __init__(self, names: ObjectNames | None = None) -> None:
        self.names = names
        self._open: dict[int, _SdoTransfer] = {}

    def feed(self, can_id: int, data: bytes) -> str | None:
        """Describe an SDO frame (client 0x600+n or server 0x580+n); None if not SDO."""
        if len(data) < 1 or not (0x581 <= can_id <= 0x5FF or 0x601 <= can_id <= 0x67F):
            return None
        data = bytes(data).ljust(8, b"\x00")
        node = can_id & 0x7F
        client = can_id >= 0x600
        cs = data[0] >> 5
        index = int.from_bytes(data[1:3], "little")
        sub = data[3]
        who = f"SDO {'req' if client else 'rsp'} node {node}"
        if cs == 4:
            code = int.from_bytes(data[4:8], "little")
            self._open.pop(node, None)
            reason = SDO_ABORT_CODES.get(code, "unknown abort code")
            return f"{who} ABORT {_ix(index, sub, self.names)} 0x{code:08X} {reason}"
        if (client and cs == 1) or (not client and cs == 2):  # initiate download / upload rsp
            where = f"{who} write" if client else who
            return self._initiate(node, index, sub, data, where, upload=not client)
        if client and cs == 2:
            return f"{who} read {_ix(index, sub, self.names)}"
        if not client and cs == 3:
            return f"{who} write {_ix(index, sub, self.names)} OK"
        if cs == 0:  # download segment (client) / upload segment response (server)
            toggle = (data[0] >> 4) & 1
            n = (data[0] >> 1) & 7
            last = data[0] & 1
            chunk = data[1 : 8 - n]
            transfer = self._open.get(node)
            if transfer is None:
                return f"{who} segment t={toggle} {chunk.hex(' ').upper()}"
            transfer.data += chunk
            if last:
                del self._open[node]
                return (
                    f"{who} segment t={toggle} last: "
                    f"{_ix(transfer.index, transfer.sub, self.names)}"
                    f" = {_value_text(bytes(transfer.data))}"
                )
            return f"{who} segment t={toggle} {len(transfer.data)} bytes so far"
        if client and cs == 3:
            return f"{who} upload segment request t={(data[0] >> 4) & 1}"
        if not client and cs == 1:
            return f"{who} segment ack t={(data[0] >> 4) & 1}"
        if cs in (5, 6):
            return f"{who} block transfer cs={cs} {_ix(index, sub, self.names)}"
        return f"{who} cs={cs} {data.hex(' ').upper()}"

    def _initiate(
        self, node: int, index: int, sub: int, data: bytes, lead: str, *, upload: bool
    ) -> str:
        """An initiate download request or upload response: the value when expedited, else the
        announced size (and the segmented transfer is followed from here)."""
        where = f"{lead} {_ix(index, sub, self.names)}"
        expedited, sized = data[0] & 0x02, data[0] & 0x01
        if expedited:
            n = (data[0] >> 2) & 3 if sized else 0
            return f"{where} = {_value_text(data[4 : 8 - n])}"
        size = int.from_bytes(data[4:8], "little") if sized else 0
        self._open[node] = _SdoTransfer(index, sub, upload=upload)
        return f"{where} segmented, {size} bytes"


def protocol_of(can_id: int, extended: bool) -> str:
    """CANopen function of an 11-bit COB-ID: NMT, SYNC, EMCY, TIME, PDO, SDO, HEARTBEAT, LSS."""
    if extended:
        return ""
    if can_id == 0x000:
        return "NMT"
    if can_id == 0x080:
        return "SYNC"
    if 0x081 <= can_id <= 0x0FF:
        return "EMCY"
    if can_id == 0x100:
        return "TIME"
    if 0x181 <= can_id <= 0x57F and (can_id & 0x7F):
        return "PDO"
    if 0x581 <= can_id <= 0x67F and (can_id & 0x7F) and can_id not in (0x600, 0x580):
        return "SDO"
    if 0x701 <= can_id <= 0x77F:
        return "HEARTBEAT"
    if can_id in (0x7E4, 0x7E5):
        return "LSS"
    return ""


def describe_canopen(
    can_id: int, data: bytes, sdo: SdoTracker | None = None, extended: bool = False
) -> str | None:
    """One-line description of a CANopen frame, or None when the ID is not a CANopen one."""
    kind = protocol_of(can_id, extended)
    if not kind:
        return None
    if kind == "NMT":
        if len(data) < 2:
            return "NMT (short)"
        target = "all nodes" if data[1] == 0 else f"node {data[1]}"
        return f"NMT {NMT_COMMANDS.get(data[0], f'0x{data[0]:02X}')} {target}"
    if kind == "SYNC":
        return "SYNC" + (f" counter {data[0]}" if data else "")
    if kind == "EMCY":
        node = can_id - 0x80
        if len(data) < 3:
            return f"EMCY node {node}"
        code = int.from_bytes(data[0:2], "little")
        text = "error reset / no error" if code == 0 else f"error 0x{code:04X}"
        return f"EMCY node {node} {text} reg 0x{data[2]:02X} {bytes(data[3:]).hex(' ').upper()}"
    if kind == "TIME":
        return "TIME"
    if kind == "HEARTBEAT":
        node = can_id - 0x700
        state = NMT_STATES.get(data[0] & 0x7F, f"0x{data[0]:02X}") if data else "?"
        return f"Heartbeat node {node} {state}" if state != "boot-up" else f"Boot-up node {node}"
    if kind == "SDO":
        return (sdo or SdoTracker()).feed(can_id, data)
    if kind == "PDO":
        base = can_id & 0x780
        return f"{_PDO_BASES.get(base, 'PDO')} node {can_id & 0x7F} {bytes(data).hex(' ').upper()}"
    return kind


def names_from_eds(paths: Iterable[Path]) -> ObjectNames:
    """ObjectNames from several EDS files; unreadable files are logged and skipped."""
    names = ObjectNames()
    for path in paths:
        try:
            names.load_eds(path)
        except Exception as exc:  # a broken EDS must not stop the trace
            log.warning("cannot load EDS %s: %s", path, exc)
    return names
