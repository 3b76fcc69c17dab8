"""Trace decoding facade (no Qt): ISO-TP, UDS, CANopen and DBC behind one `Decoder`.

`Decoder.describe_frame` explains ONE frame without context (fast; the trace model calls it
lazily for visible rows and caches by row); `Decoder.reassemble` / `Decoder.summarise` follow
ISO-TP ID pairs over a sequence of frames (for the details pane or offline analysis) and
collapse TransferData bursts. `protocol_mask` classifies whole id columns with numpy for the
protocol filter. A Decoder is configured (pairs, EDS, DBC) from one thread and then read from
one thread at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fota_studio.protocols.decode.canopen import (
    ObjectNames,
    SdoTracker,
    describe_canopen,
    protocol_of,
)
from fota_studio.protocols.decode.dbc import DbcDecoder
from fota_studio.protocols.decode.isotp import (
    FF,
    SF,
    IsoTpMessage,
    IsoTpReassembler,
    TpFrame,
    detect_pairs,
    parse_pci,
)
from fota_studio.protocols.decode.uds import describe_uds, is_uds_payload, summarise_transfers

__all__ = [
    "PROTOCOLS",
    "DecodedLine",
    "Decoder",
    "IsoTpMessage",
    "TpFrame",
]

PROTOCOLS = ("UDS", "ISO-TP", "NMT", "SYNC", "EMCY", "SDO", "PDO", "HEARTBEAT", "other")
"""Protocol names for the protocol filter (UDS frames are a subset of ISO-TP frames)."""

_EXTENDED_FLAG = 0x0001  # trace_store.FLAG_EXTENDED (engine layer; duplicated to keep layers)


@dataclass(frozen=True)
class DecodedLine:
    """One summarised line of a diagnostics exchange and the frames behind it."""

    can_id: int
    text: str
    frame_seqs: tuple[int, ...]
    timestamp: float


def _is_auto_isotp(can_id: int, extended: bool) -> bool:
    """Conventional diagnostic IDs: 0x7E0..0x7EF (11-bit) and 0x18DA/0x18DB xxxx (29-bit)."""
    if extended:
        return (can_id >> 16) in (0x18DA, 0x18DB)
    return 0x7DF <= can_id <= 0x7EF


class Decoder:
    """Decodes frames for the trace; see the module docstring."""

    def __init__(
        self, isotp_pairs: Iterable[tuple[int, int]] = (), auto_detect: bool = True
    ) -> None:
        self._pairs: set[tuple[int, int]] = set()
        self._isotp_ids: set[int] = set()
        for a, b in isotp_pairs:
            self.add_isotp_pair(a, b)
        self.auto_detect = auto_detect
        self.names = ObjectNames()
        self.dbc = DbcDecoder()
        self.did_names: dict[int, str] = {}

    # -- configuration ----------------------------------------------------------------------
    def add_isotp_pair(self, request_id: int, response_id: int) -> None:
        """Follow an ISO-TP ID pair (e.g. from the EA)."""
        self._pairs.add((request_id, response_id))
        self._isotp_ids.update((request_id, response_id))

    @property
    def isotp_pairs(self) -> list[tuple[int, int]]:
        """The configured ID pairs."""
        return sorted(self._pairs)

    def load_eds(self, path: Path | str) -> int:
        """Load CANopen object names from an EDS file; returns objects added."""
        return self.names.load_eds(path)

    def load_dbc(self, path: Path | str) -> int:
        """Load a DBC file (raises ConfigurationError); returns messages added."""
        return self.dbc.load(path)

    # -- classification ---------------------------------------------------------------------
    def is_isotp_id(self, can_id: int, extended: bool) -> bool:
        """True for a configured or (auto-detect) conventional diagnostic identifier."""
        return can_id in self._isotp_ids or (self.auto_detect and _is_auto_isotp(can_id, extended))

    def protocol(self, can_id: int, extended: bool, data: bytes) -> str:
        """Protocol of one frame: one of PROTOCOLS (or "DBC")."""
        if self.is_isotp_id(can_id, extended):
            pci = parse_pci(data)
            if pci is not None:
                if pci.kind in (SF, FF) and is_uds_payload(pci.payload):
                    return "UDS"
                return "ISO-TP"
        if self.dbc.knows(can_id, extended):
            return "DBC"
        kind = protocol_of(can_id, extended)
        if kind and kind not in ("TIME", "LSS"):
            return kind
        return "other"

    def protocol_mask(
        self,
        ids: npt.NDArray[np.uint32],
        flags: npt.NDArray[np.uint16],
        protocols: Iterable[str],
    ) -> npt.NDArray[np.bool_]:
        """Vectorised protocol filter over id/flag columns (UDS counts as ISO-TP here: the
        payload check needs the bytes, so "UDS" selects the diagnostic identifiers)."""
        wanted = set(protocols)
        ext = (flags & _EXTENDED_FLAG) != 0
        std = ~ext
        isotp = np.isin(ids, np.fromiter(self._isotp_ids, np.uint32, len(self._isotp_ids)))
        if self.auto_detect:
            hi = ids >> 16
            isotp |= ext & ((hi == 0x18DA) | (hi == 0x18DB))
            isotp |= std & (ids >= 0x7DF) & (ids <= 0x7EF)
        low = ids & 0x7F
        func = ids & 0x780
        kinds = {
            "NMT": std & (ids == 0),
            "SYNC": std & (ids == 0x80),
            "EMCY": std & (ids > 0x80) & (ids <= 0xFF),
            "PDO": std & (ids >= 0x181) & (ids <= 0x57F) & (low != 0),
            "SDO": std & (((func == 0x580) | (func == 0x600)) & (low != 0)),
            "HEARTBEAT": std & (ids >= 0x701) & (ids <= 0x77F),
        }
        out = np.zeros(ids.shape[0], np.bool_)
        if wanted & {"UDS", "ISO-TP"}:
            out |= isotp
        canopen_any = np.zeros(ids.shape[0], np.bool_)
        for name, mask in kinds.items():
            canopen_any |= mask
            if name in wanted:
                out |= mask & ~isotp
        if "other" in wanted:
            out |= ~isotp & ~canopen_any
        return out

    # -- per-frame text ---------------------------------------------------------------------
    def describe_frame(self, can_id: int, extended: bool, data: bytes) -> str:
        """Context-free text for one frame (ISO-TP PCI + UDS of SF/FF, DBC, CANopen)."""
        if self.is_isotp_id(can_id, extended):
            pci = parse_pci(data)
            if pci is not None:
                if pci.kind == SF:
                    return f"SF: {describe_uds(pci.payload, self.did_names)}"
                if pci.kind == FF:
                    head = describe_uds(pci.payload, self.did_names)
                    return f"FF len={pci.length}: {head}"
                return pci.describe()
        if self.dbc:  # a loaded DBC knows its frames better than the CANopen ID ranges
            dbc_text = self.dbc.describe(can_id, extended, data)
            if dbc_text is not None:
                return dbc_text
        text = describe_canopen(can_id, data, SdoTracker(self.names), extended)
        return text if text is not None else ""

    # -- multi-frame ------------------------------------------------------------------------
    def reassemble(self, frames: Sequence[TpFrame]) -> list[IsoTpMessage]:
        """ISO-TP messages on the configured pairs (plus auto-detected ones) in `frames`."""
        pairs = set(self._pairs)
        if self.auto_detect:
            pairs.update(detect_pairs(frames))
        return IsoTpReassembler(pairs).feed_all(frames)

    def describe_message(self, message: IsoTpMessage) -> str:
        """UDS text for a reassembled message (with the flow control seen)."""
        text = describe_uds(message.payload, self.did_names)
        if message.flow_control is not None:
            text += f" [{message.flow_control.describe()}]"
        if not message.complete:
            text += f" [incomplete: {message.error}]"
        return text

    def summarise(self, frames: Sequence[TpFrame]) -> list[DecodedLine]:
        """Reassembled UDS exchange as lines, TransferData bursts collapsed to one line each."""
        messages = self.reassemble(frames)
        lines: list[DecodedLine] = []
        for line in summarise_transfers([m.payload for m in messages]):
            group = messages[line.first_index : line.last_index + 1]
            seqs = tuple(s for m in group for s in m.frame_seqs)
            text = line.text
            if line.first_index == line.last_index:
                text = self.describe_message(group[0])
            lines.append(DecodedLine(group[0].can_id, text, seqs, group[0].timestamp))
        return lines

    def sdo_lines(self, frames: Sequence[TpFrame]) -> list[DecodedLine]:
        """CANopen text for frames in order, following segmented SDO transfers."""
        tracker = SdoTracker(self.names)
        out = []
        for f in frames:
            text = describe_canopen(f.can_id, f.data, tracker)
            if text is not None:
                out.append(DecodedLine(f.can_id, text, (f.seq,), f.timestamp))
        return out
