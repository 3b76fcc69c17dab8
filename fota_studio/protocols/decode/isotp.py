"""ISO-TP (ISO 15765-2) frame parsing and message reassembly for the trace, without Qt.

`parse_pci` classifies one CAN frame as SF/FF/CF/FC and extracts its protocol control info;
`IsoTpReassembler` follows one or more ID pairs (given, e.g. from the EA, or auto-detected by
`detect_pairs`) and yields complete `IsoTpMessage`s with the flow-control parameters seen.
Pure functions and per-instance state: call from one thread at a time (a decode worker or the
GUI thread for a small selection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SF, FF, CF, FC = "SF", "FF", "CF", "FC"
FC_STATUS = {0: "CTS", 1: "WAIT", 2: "OVFLW"}


@dataclass(frozen=True)
class Pci:
    """Protocol control info of one ISO-TP frame."""

    kind: str  # SF / FF / CF / FC
    length: int = 0  # SF/FF: message length
    sn: int = 0  # CF: sequence number 0..15
    fc_status: int = 0
    block_size: int = 0
    stmin_raw: int = 0
    payload: bytes = b""

    def describe(self) -> str:
        """Short text such as `FF len=1026` or `FC CTS bs=8 stmin=0ms`."""
        if self.kind == SF:
            return f"SF len={self.length}"
        if self.kind == FF:
            return f"FF len={self.length}"
        if self.kind == CF:
            return f"CF sn={self.sn}"
        return (
            f"FC {FC_STATUS.get(self.fc_status, f'?{self.fc_status}')} bs={self.block_size} "
            f"stmin={stmin_text(self.stmin_raw)}"
        )


def stmin_text(raw: int) -> str:
    """STmin byte as text (0..0x7F ms, 0xF1..0xF9 = 100..900 µs; ISO 15765-2 §9.6.5.4)."""
    if raw <= 0x7F:
        return f"{raw}ms"
    if 0xF1 <= raw <= 0xF9:
        return f"{(raw - 0xF0) * 100}us"
    return f"reserved(0x{raw:02X})"


def parse_pci(data: bytes, offset: int = 0) -> Pci | None:
    """Parse the PCI at `offset` (1 with extended/mixed addressing); None if not ISO-TP-like."""
    if len(data) <= offset:
        return None
    b0 = data[offset]
    kind = b0 >> 4
    rest = data[offset + 1 :]
    if kind == 0:
        length = b0 & 0x0F
        if length == 0:  # CAN FD single frame escape: length in the next byte
            if not rest or rest[0] == 0 or len(rest) - 1 < rest[0]:
                return None
            return Pci(SF, length=rest[0], payload=bytes(rest[1 : 1 + rest[0]]))
        if length > len(rest):
            return None
        return Pci(SF, length=length, payload=bytes(rest[:length]))
    if kind == 1:
        if not rest:
            return None
        length = ((b0 & 0x0F) << 8) | rest[0]
        body = rest[1:]
        if length == 0:  # > 4095 bytes: 32-bit length escape
            if len(rest) < 5:
                return None
            length = int.from_bytes(rest[1:5], "big")
            body = rest[5:]
        if length <= 7:
            return None
        return Pci(FF, length=length, payload=bytes(body))
    if kind == 2:
        return Pci(CF, sn=b0 & 0x0F, payload=bytes(rest))
    if kind == 3:
        status = b0 & 0x0F
        if status > 2 or len(rest) < 2:
            return None
        return Pci(FC, fc_status=status, block_size=rest[0], stmin_raw=rest[1])
    return None


@dataclass
class IsoTpMessage:
    """A reassembled (or single-frame) ISO-TP message and the frames it came from."""

    can_id: int
    payload: bytes
    first_seq: int
    last_seq: int
    frame_seqs: list[int] = field(default_factory=list)
    timestamp: float = 0.0
    flow_control: Pci | None = None
    complete: bool = True
    error: str = ""


@dataclass
class _Partial:
    expected: int
    data: bytearray
    next_sn: int
    seqs: list[int]
    timestamp: float
    flow_control: Pci | None = None


@dataclass(frozen=True)
class TpFrame:
    """The minimal frame view the reassembler needs (seq, timestamp, id, data)."""

    seq: int
    timestamp: float
    can_id: int
    data: bytes


class IsoTpReassembler:
    """Reassembles ISO-TP messages on the given ID pairs (request_id, response_id)."""

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        self._peer: dict[int, int] = {}
        for a, b in pairs:
            self.add_pair(a, b)
        self._partial: dict[int, _Partial] = {}

    def add_pair(self, request_id: int, response_id: int) -> None:
        """Follow one ID pair (the FC of one direction travels on the other ID)."""
        self._peer[request_id] = response_id
        self._peer[response_id] = request_id

    @property
    def ids(self) -> set[int]:
        """Every identifier followed."""
        return set(self._peer)

    def feed(self, frame: TpFrame) -> IsoTpMessage | None:
        """Process one frame; returns a message when one completes (or a sequence error)."""
        if frame.can_id not in self._peer:
            return None
        pci = parse_pci(frame.data)
        if pci is None:
            return None
        if pci.kind == SF:
            self._partial.pop(frame.can_id, None)
            return IsoTpMessage(
                frame.can_id, pci.payload, frame.seq, frame.seq, [frame.seq], frame.timestamp
            )
        if pci.kind == FF:
            self._partial[frame.can_id] = _Partial(
                pci.length, bytearray(pci.payload), 1, [frame.seq], frame.timestamp
            )
            return None
        if pci.kind == FC:
            partial = self._partial.get(self._peer[frame.can_id])
            if partial is not None:
                partial.flow_control = pci
                partial.seqs.append(frame.seq)
            return None
        partial = self._partial.get(frame.can_id)
        if partial is None:
            return None
        if pci.sn != partial.next_sn:
            del self._partial[frame.can_id]
            return IsoTpMessage(
                frame.can_id,
                bytes(partial.data),
                partial.seqs[0],
                frame.seq,
                [*partial.seqs, frame.seq],
                partial.timestamp,
                partial.flow_control,
                complete=False,
                error=f"wrong sequence number {pci.sn}, expected {partial.next_sn}",
            )
        partial.data += pci.payload
        partial.seqs.append(frame.seq)
        partial.next_sn = (partial.next_sn + 1) & 0x0F
        if len(partial.data) >= partial.expected:
            del self._partial[frame.can_id]
            return IsoTpMessage(
                frame.can_id,
                bytes(partial.data[: partial.expected]),
                partial.seqs[0],
                frame.seq,
                partial.seqs,
                partial.timestamp,
                partial.flow_control,
            )
        return None

    def feed_all(self, frames: Iterable[TpFrame]) -> list[IsoTpMessage]:
        """Feed many frames; return the completed messages in order."""
        out = []
        for frame in frames:
            msg = self.feed(frame)
            if msg is not None:
                out.append(msg)
        return out


def detect_pairs(frames: Sequence[TpFrame]) -> list[tuple[int, int]]:
    """Auto-detect ISO-TP ID pairs: an FF on one ID answered by an FC on another within 5 frames,
    plus the conventional 0x7E0..7E7/0x7E8..7EF and 0x18DA<TA><SA>/0x18DA<SA><TA> pairs seen."""
    pairs: set[tuple[int, int]] = set()
    seen = {f.can_id for f in frames}
    for i, frame in enumerate(frames):
        pci = parse_pci(frame.data)
        if pci is None or pci.kind != FF:
            continue
        for later in frames[i + 1 : i + 6]:
            lp = parse_pci(later.data)
            if later.can_id != frame.can_id and lp is not None and lp.kind == FC:
                pairs.add((frame.can_id, later.can_id))
                break
    for can_id in seen:
        if 0x7E0 <= can_id <= 0x7E7 and can_id + 8 in seen:
            pairs.add((can_id, can_id + 8))
        if (can_id >> 16) & 0x1FFF == 0x18DA:
            ta, sa = (can_id >> 8) & 0xFF, can_id & 0xFF
            peer = 0x18DA0000 | (sa << 8) | ta
            if peer in seen and (peer, can_id) not in pairs:
                pairs.add((can_id, peer))
    return sorted(pairs)
