"""What a trace view shows: the frame filter, the protocol filter and the free-text search, run
segment by segment over zero-copy views of a `TraceStore` (any thread; a background task).

`TraceQuery.select(segments, decoder, progress)` returns the sequence numbers of EVERY frame
that passes: no cap, no sampling. The free-text search compares the needle with the decoded
text of each frame; the text of a frame depends only on (ID, 29-bit, error/remote, length,
data), and for most traffic on far less: an ISO-TP consecutive frame reads "CF sn=N" whatever
its 7 data bytes are, an identifier no decoder knows reads the same for any data. `text_keys`
reduces each frame to the bytes its text depends on (checked against the decoder by
tests/unit/test_trace_search.py), so a flash bus log where every data frame is different
decodes a few hundred distinct keys per 65,536-frame segment instead of every frame. Frames
whose whole payload shows in the text (PDOs, DBC messages, SF/FF) are decoded once per
distinct payload. Temporary memory is one segment's keys plus a bounded cache of decoded keys
(≈ 1-2 bytes per frame at 10 M frames); the result holds 8 bytes per match.

The decoder is only read (`describe_frame`, `protocol_mask`, `uds_mask`); configure it on the
owning thread before starting a query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fota_studio.core.frames import FLAG_ERROR, FLAG_EXTENDED, FLAG_REMOTE, FrameBatch, IntArray
from fota_studio.engine.trace_store import Segment, TraceFilter, filter_segments
from fota_studio.protocols.decode import Decoder
from fota_studio.protocols.decode.canopen import protocol_of

Describe = Callable[[int, bool, bytes], str]

TEXT_CACHE_KEYS = 200_000
"""Decoded keys remembered across segments (cleared when full: memory stays bounded)."""

# How much of a frame's data its decoded text depends on (per identifier class).
_KEEP_ALL, _KEEP_NONE, _KEEP_BYTE0, _KEEP_TWO = 0, 1, 2, 3

_KEY_FLAGS = FLAG_EXTENDED | FLAG_ERROR | FLAG_REMOTE


def describe_safely(describe: Describe, can_id: int, extended: bool, data: bytes) -> str:
    """`describe(...)`, or the decoder's error as text: a decoder bug never breaks the view."""
    try:
        return describe(can_id, extended, data)
    except Exception as exc:
        return f"(decode error: {exc})"


def frame_text(decoder: Decoder, can_id: int, flags: int, data: bytes) -> str:
    """The decoded text of one frame as the trace shows it ("" for error and remote frames)."""
    if flags & (FLAG_ERROR | FLAG_REMOTE):
        return ""
    return describe_safely(decoder.describe_frame, can_id, bool(flags & FLAG_EXTENDED), data)


def _id_class(decoder: Decoder, can_id: int, extended: bool) -> int:
    """Which data bytes the text of this identifier's non-ISO-TP frames depends on (mirrors
    `Decoder.describe_frame`: DBC, then EA labels, then CANopen)."""
    if decoder.dbc and decoder.dbc.knows(can_id, extended):
        return _KEEP_ALL
    if (can_id, extended) in decoder.id_labels:
        return _KEEP_NONE
    kind = protocol_of(can_id, extended)
    if kind in ("", "TIME", "LSS"):
        return _KEEP_NONE
    if kind in ("HEARTBEAT", "SYNC"):
        return _KEEP_BYTE0
    if kind == "NMT":
        return _KEEP_TWO
    return _KEEP_ALL  # EMCY, SDO, PDO show their bytes


def text_keys(
    decoder: Decoder,
    batch_ids: npt.NDArray[np.uint32],
    flags: npt.NDArray[np.uint16],
    length: npt.NDArray[np.uint8],
    data: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """(keys, full): a (n, 16) uint8 key per frame such that frames with equal keys have equal
    decoded text, and a mask of the frames whose text may depend on an FD tail beyond byte 8."""
    n = batch_ids.shape[0]
    key = np.zeros((n, 16), np.uint8)
    key[:, 0:4] = batch_ids.astype("<u4").view(np.uint8).reshape(n, 4)
    key_flags = flags & _KEY_FLAGS
    key[:, 4:6] = key_flags.astype("<u2").view(np.uint8).reshape(n, 2)
    key[:, 6] = length
    key[:, 8:16] = data
    keep = np.full(n, _KEEP_ALL, np.int8)
    special = (key_flags & (FLAG_ERROR | FLAG_REMOTE)) != 0
    ext = (flags & FLAG_EXTENDED) != 0
    isotp = decoder.protocol_mask(batch_ids, flags, ("ISO-TP",))
    # ISO-TP consecutive frames: "CF sn=N" (parse_pci: first nibble 2, any length >= 1).
    cf = isotp & (length >= 1) & ((data[:, 0] >> 4) == 2)
    keep[cf] = _KEEP_BYTE0
    others = ~isotp
    if others.any():
        pairs = batch_ids[others].astype(np.uint64) | (ext[others].astype(np.uint64) << 32)
        uniq, inverse = np.unique(pairs, return_inverse=True)
        classes = np.array(
            [_id_class(decoder, int(p) & 0xFFFFFFFF, bool(int(p) >> 32)) for p in uniq.tolist()],
            np.int8,
        )
        keep[others] = classes[inverse.reshape(-1)]
    keep[special] = _KEEP_NONE  # error / remote frames have no text
    none = keep == _KEEP_NONE
    key[none, 6] = 0
    key[none, 8:16] = 0
    byte0 = keep == _KEEP_BYTE0
    key[byte0, 6] = np.minimum(length[byte0], 1)
    key[byte0, 9:16] = 0
    two = keep == _KEEP_TWO
    key[two, 6] = np.minimum(length[two], 2)
    key[two, 10:16] = 0
    return key, keep == _KEEP_ALL


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F], np.uint64)


def _hash_keys(key: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """A 64-bit mix of each 16-byte key (collisions are detected by the caller)."""
    words = key.view("<u8").reshape(-1, 2)
    with np.errstate(over="ignore"):
        h = words[:, 0] * _MIX[0]
        h ^= h >> np.uint64(29)
        h += words[:, 1] * _MIX[1]
        h ^= h >> np.uint64(32)
    out: npt.NDArray[np.uint64] = h
    return out


def text_match_mask(
    batch_ids: npt.NDArray[np.uint32],
    flags: npt.NDArray[np.uint16],
    length: npt.NDArray[np.uint8],
    data: npt.NDArray[np.uint8],
    fd_tails: dict[int, bytes],
    needle: str,
    decoder: Decoder,
    cache: dict[bytes, bool] | None = None,
) -> npt.NDArray[np.bool_]:
    """Which frames' decoded text contains `needle` (lower case): every frame is answered, each
    distinct text key decoded once (see module docstring). Pure; any thread."""
    n = batch_ids.shape[0]
    if n == 0:
        return np.zeros(0, np.bool_)
    cache = {} if cache is None else cache
    key, full = text_keys(decoder, batch_ids, flags, length, data)
    hashes = _hash_keys(key)
    _u, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)

    def match(row: int) -> bool:
        payload = data[row, : min(8, int(length[row]))].tobytes() + fd_tails.get(row, b"")
        text = frame_text(decoder, int(batch_ids[row]), int(flags[row]), payload)
        return needle in text.lower()

    hits = np.zeros(first.shape[0], np.bool_)
    for k, row in enumerate(first.tolist()):
        kb = key[row].tobytes()
        hit = cache.get(kb)
        if hit is None:
            if len(cache) >= TEXT_CACHE_KEYS:
                cache.clear()
            hit = cache[kb] = match(row)
        hits[k] = hit
    out = hits[inverse]
    # A hash collision (two different keys, one hash): answer those rows one by one.
    collided = np.nonzero((key[first[inverse]] != key).any(axis=1))[0]
    for row in collided.tolist():
        out[row] = match(row)
    for row in fd_tails:  # long FD frames whose text may show the tail
        if full[row]:
            out[row] = match(row)
    return out


@dataclass(frozen=True)
class TraceQuery:
    """What a view shows: frames (ID/direction/type/channel), protocols and a free text."""

    frames: TraceFilter = field(default_factory=TraceFilter)
    protocols: frozenset[str] = frozenset()
    text: str = ""

    def is_empty(self) -> bool:
        """True when every frame passes."""
        return self.frames.is_empty() and not self.protocols and not self.text

    def column_mask(
        self, seg: Segment, decoder: Decoder, protocols: ProtocolMask | None = None
    ) -> npt.NDArray[np.bool_]:
        """Frame and protocol criteria over one segment (vectorised)."""
        b = seg.batch
        mask = self.frames.mask(b.ids, b.flags, b.channel)
        if self.protocols:
            mask &= (protocols or ProtocolMask(decoder, self.protocols)).mask(b)
        return mask

    def segment_mask(
        self,
        seg: Segment,
        decoder: Decoder,
        cache: dict[bytes, bool] | None = None,
        protocols: ProtocolMask | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Every criterion over one segment; the text only for rows the columns let through."""
        mask = self.column_mask(seg, decoder, protocols)
        needle = self.text.lower()
        if not needle:
            return mask
        rows = np.nonzero(mask)[0]
        if rows.shape[0] == 0:
            return mask
        b = seg.batch
        if rows.shape[0] == mask.shape[0]:
            text = text_match_mask(b.ids, b.flags, b.length, b.data, b.ext, needle, decoder, cache)
        else:
            tails: dict[int, bytes] = {}
            for r, tail in b.ext.items():
                i = int(np.searchsorted(rows, r))
                if i < rows.shape[0] and int(rows[i]) == r:
                    tails[i] = tail
            sub = text_match_mask(
                b.ids[rows],
                b.flags[rows],
                b.length[rows],
                b.data[rows],
                tails,
                needle,
                decoder,
                cache,
            )
            text = np.zeros(mask.shape[0], np.bool_)
            text[rows] = sub
        return mask & text

    def select(
        self,
        segments: Sequence[Segment],
        decoder: Decoder,
        progress: Callable[[float], None] | None = None,
    ) -> IntArray:
        """Sequence numbers of every frame of `segments` passing the query, in order;
        `progress(fraction)` after each segment (may raise CancelledError there)."""
        cache: dict[bytes, bool] = {}
        protocols = ProtocolMask(decoder, self.protocols) if self.protocols else None
        return filter_segments(
            segments, lambda s: self.segment_mask(s, decoder, cache, protocols), progress
        )


class ProtocolMask:
    """The protocol filter over segments, fast: the protocol of a frame depends on its
    identifier (`Decoder.protocol_mask`), so 11-bit frames are classified by a 2,048-entry
    table built once per query; 29-bit frames go through the decoder. "UDS" (a payload check)
    asks `Decoder.uds_mask` only for single/first frames on diagnostic IDs."""

    def __init__(self, decoder: Decoder, protocols: frozenset[str]) -> None:
        self.decoder = decoder
        self.others = frozenset(protocols - {"UDS"})
        self.uds_payload = "UDS" in protocols and "ISO-TP" not in protocols
        if "UDS" in protocols and not self.uds_payload:
            self.others |= {"ISO-TP"}
        ids = np.arange(2048, dtype=np.uint32)
        flags = np.zeros(2048, np.uint16)
        self.std = decoder.protocol_mask(ids, flags, self.others)
        self.std_isotp = decoder.protocol_mask(ids, flags, ("ISO-TP",))

    def mask(self, b: FrameBatch) -> npt.NDArray[np.bool_]:
        """Frames of `b` of the wanted protocols."""
        slow = ((b.flags & FLAG_EXTENDED) != 0) | (b.ids > 0x7FF)
        std_ids = b.ids & 0x7FF
        out: npt.NDArray[np.bool_] = self.std[std_ids] & ~slow
        rows = np.nonzero(slow)[0]
        if rows.shape[0]:
            out[rows] = self.decoder.protocol_mask(b.ids[rows], b.flags[rows], self.others)
        if self.uds_payload:
            isotp = self.std_isotp[std_ids] & ~slow
            if rows.shape[0]:
                isotp[rows] = self.decoder.protocol_mask(b.ids[rows], b.flags[rows], ("ISO-TP",))
            # Only single (0x0_) and first (0x1_) frames can carry a UDS service id.
            cand = np.nonzero(isotp & ((b.data[:, 0] >> 4) <= 1))[0]
            if cand.shape[0]:
                out[cand] |= self.decoder.uds_mask(b.ids[cand], b.flags[cand], b.data[cand])
        return out
