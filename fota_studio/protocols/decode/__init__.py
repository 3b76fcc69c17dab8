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

from fota_studio.core.ea import ElectronicArchitecture
from fota_studio.core.frames import FLAG_EXTENDED
from fota_studio.protocols.decode.canopen import (
    ObjectNames,
    SdoTracker,
    describe_canopen,
    protocol_of,
)
from fota_studio.protocols.decode.dbc import DbcDecoder
from fota_studio.protocols.decode.frames import ByteColumn, FlagColumn, IdColumn, RowMask
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
    "MessageTracker",
    "TpFrame",
    "functional_ids_of",
    "isotp_pairs_of",
]

PROTOCOLS = ("UDS", "ISO-TP", "NMT", "SYNC", "EMCY", "SDO", "PDO", "HEARTBEAT", "other")
"""Protocol names for the protocol filter (UDS frames are a subset of ISO-TP frames)."""

CONVENTIONAL_FUNCTIONAL_IDS = (0x7DF, 0x18DB33F1)
"""OBD/UDS functional request IDs (ISO 15765-4), 11-bit and 29-bit normal-fixed."""

_UDS_SID_TABLE = np.array([is_uds_payload(bytes([b])) for b in range(256)], np.bool_)


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
        self._functional: set[int] = set()
        self.names = ObjectNames()
        self.dbc = DbcDecoder()
        self.did_names: dict[int, str] = {}
        #: (CAN ID, 29-bit) -> what the frame is, from the EA ("VCU heartbeat"): shown for
        #: frames no protocol decoder recognises.
        self.id_labels: dict[tuple[int, bool], str] = {}

    # -- configuration ----------------------------------------------------------------------
    def add_isotp_pair(self, request_id: int, response_id: int) -> None:
        """Follow an ISO-TP ID pair (e.g. from the EA)."""
        self._pairs.add((request_id, response_id))
        self._isotp_ids.update((request_id, response_id))

    def add_id_label(self, can_id: int, extended: bool, label: str) -> None:
        """Name the frames of one identifier (e.g. an ECU's heartbeat from the EA)."""
        self.id_labels[(can_id, extended)] = label

    def add_functional_id(self, can_id: int) -> None:
        """Follow a functional request ID (single frames to all ECUs, e.g. 0x7DF)."""
        self._functional.add(can_id)
        self._isotp_ids.add(can_id)

    @property
    def isotp_pairs(self) -> list[tuple[int, int]]:
        """The configured ID pairs."""
        return sorted(self._pairs)

    @property
    def reassembly_pairs(self) -> list[tuple[int, int]]:
        """Pairs handed to the reassembler: the configured ones, functional IDs (paired with
        themselves: single frames only) and, with auto-detect, the conventional functional IDs."""
        functional = set(self._functional)
        if self.auto_detect:
            functional.update(CONVENTIONAL_FUNCTIONAL_IDS)
        return sorted(self._pairs | {(f, f) for f in functional})

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

    def protocol_mask(self, ids: IdColumn, flags: FlagColumn, protocols: Iterable[str]) -> RowMask:
        """Vectorised protocol filter over id/flag columns (UDS counts as ISO-TP here: the
        payload check needs the bytes, so "UDS" selects the diagnostic identifiers)."""
        wanted = set(protocols)
        ext = (flags & FLAG_EXTENDED) != 0
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

    def uds_mask(self, ids: IdColumn, flags: FlagColumn, data: ByteColumn) -> RowMask:
        """Vectorised "UDS" protocol filter: single or first frames on diagnostic IDs whose
        payload starts with a UDS service id (request, positive response or 0x7F), from the
        first 8 data bytes (`data` has shape (n, 8)); consecutive/flow-control frames excluded."""
        on_isotp = self.protocol_mask(ids, flags, ("ISO-TP",))
        kind = data[:, 0] >> 4
        sf_len = data[:, 0] & 0x0F
        sid = np.where(
            kind == 0,
            np.where(sf_len == 0, data[:, 2], data[:, 1]),  # CAN FD SF escape: length in byte 1
            data[:, 2],  # FF: 12-bit length in bytes 0-1
        )
        mask: RowMask = on_isotp & ((kind == 0) | (kind == 1)) & _UDS_SID_TABLE[sid]
        return mask

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
        label = self.id_labels.get((can_id, extended))
        if label is not None:  # the EA knows this ID (not a CANopen object)
            return label
        text = describe_canopen(can_id, data, SdoTracker(self.names), extended)
        return text if text is not None else ""

    # -- multi-frame ------------------------------------------------------------------------
    def reassemble(self, frames: Sequence[TpFrame]) -> list[IsoTpMessage]:
        """ISO-TP messages on the configured pairs (plus auto-detected ones) in `frames`."""
        pairs = set(self.reassembly_pairs)
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
        return self.summarise_messages(self.reassemble(frames))

    def summarise_messages(self, messages: Sequence[IsoTpMessage]) -> list[DecodedLine]:
        """Lines for already reassembled messages, TransferData bursts collapsed."""
        lines: list[DecodedLine] = []
        for line in summarise_transfers([m.payload for m in messages]):
            group = messages[line.first_index : line.last_index + 1]
            seqs = tuple(s for m in group for s in m.frame_seqs)
            text = line.text
            if line.first_index == line.last_index:
                text = self.describe_message(group[0])
            elif group[0].flow_control is not None:
                text += f" [{group[0].flow_control.describe()}]"
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


class MessageTracker:
    """Incremental ISO-TP reassembly for a live trace: `feed` only the frames that arrived since
    the last call (frames on diagnostic IDs); pairs come from the decoder (EA) and are
    auto-detected from each fed chunk. Keeps at most `max_messages` (oldest forgotten, counted
    in `forgotten`). One thread at a time (the GUI timer)."""

    def __init__(self, decoder: Decoder, max_messages: int = 200_000) -> None:
        self.decoder = decoder
        self.max_messages = max_messages
        self.messages: list[IsoTpMessage] = []
        self.forgotten = 0
        self._reassembler = IsoTpReassembler(decoder.reassembly_pairs)
        self._pairs: set[tuple[int, int]] = set(decoder.reassembly_pairs)

    def feed(self, frames: Sequence[TpFrame]) -> int:
        """Reassemble `frames` (in order, after the previous ones); returns messages added."""
        if not frames:
            return 0
        new_pairs = set(self.decoder.reassembly_pairs)
        if self.decoder.auto_detect:
            new_pairs.update(detect_pairs(frames))
        for a, b in new_pairs - self._pairs:
            self._reassembler.add_pair(a, b)
        self._pairs |= new_pairs
        added = self._reassembler.feed_all(frames)
        self.messages.extend(added)
        excess = len(self.messages) - self.max_messages
        if excess > 0:
            del self.messages[:excess]
            self.forgotten += excess
        return len(added)

    def lines(self) -> list[DecodedLine]:
        """The messages as summarised lines (TransferData bursts collapsed)."""
        return self.decoder.summarise_messages(self.messages)

    def clear(self) -> None:
        """Forget every message and partial state (after the trace was cleared)."""
        self.messages.clear()
        self.forgotten = 0
        self._reassembler = IsoTpReassembler(self._pairs)


def functional_ids_of(ea: ElectronicArchitecture) -> list[int]:
    """Functional request IDs of the ECUs of an EA."""
    return sorted({ecu.connection.functional_id for ecu in ea.ecus})


def isotp_pairs_of(ea: ElectronicArchitecture) -> list[tuple[int, int]]:
    """(request, response) ID pairs of every ECU of an EA, application and bootloader."""
    pairs: list[tuple[int, int]] = []
    for ecu in ea.ecus:
        for addr in (ecu.connection.application, ecu.connection.bootloader):
            pair = (addr.request_id, addr.response_id)
            if pair not in pairs:
                pairs.append(pair)
    return pairs
