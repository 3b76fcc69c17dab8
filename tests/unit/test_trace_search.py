"""Trace queries over a store: text keys agree with the decoder, the free-text search finds
every match (no cap), filters and searches run segment by segment with progress."""

from __future__ import annotations

import numpy as np
import pytest

from fota_studio.core.errors import CancelledError
from fota_studio.core.frames import FLAG_ERROR, FLAG_EXTENDED, FLAG_REMOTE, FrameBatch
from fota_studio.engine.trace_search import ProtocolMask, TraceQuery, frame_text, text_keys
from fota_studio.engine.trace_store import TraceFilter, TraceStore
from fota_studio.protocols.decode import Decoder


def _random_frames(n: int, seed: int = 1) -> FrameBatch:
    """Frames over every identifier class the decoder knows, with random data and lengths."""
    rng = np.random.default_rng(seed)
    pool = np.array(
        [0x000, 0x080, 0x085, 0x100, 0x185, 0x205, 0x585, 0x605, 0x705, 0x7DF, 0x7E0, 0x7E8,
         0x123, 0x7E4, 0x18DA11F1, 0x18DB33F1, 0x1ABCDEF0, 0x3FF],
        np.uint32,
    )  # fmt: skip
    ids = pool[rng.integers(0, len(pool), n)]
    flags = np.where(ids > 0x7FF, FLAG_EXTENDED, 0).astype(np.uint16)
    special = rng.random(n)
    flags[special < 0.02] |= FLAG_REMOTE
    flags[(special >= 0.02) & (special < 0.03)] |= FLAG_ERROR
    length = rng.integers(0, 9, n).astype(np.uint8)
    data = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    # ISO-TP-like first bytes for a good share of the frames (SF, FF, CF, FC).
    pci = rng.integers(0, 4, n) << 4 | rng.integers(0, 16, n)
    data[:, 0] = np.where(rng.random(n) < 0.7, pci, data[:, 0])
    data[np.arange(8)[None, :] >= length[:, None]] = 0
    return FrameBatch(
        np.arange(n, dtype=np.float64) * 1e-3, ids, flags, length, np.zeros(n, np.uint8), data
    )


def test_frames_with_equal_text_keys_have_equal_text() -> None:
    decoder = Decoder([(0x7E0, 0x7E8)])
    decoder.add_id_label(0x3FF, False, "VCU heartbeat")
    batch = _random_frames(20_000)
    keys, _full = text_keys(decoder, batch.ids, batch.flags, batch.length, batch.data)
    texts: dict[bytes, str] = {}
    reduced = 0
    for i in range(len(batch)):
        text = frame_text(decoder, int(batch.ids[i]), int(batch.flags[i]), batch.payload(i))
        k = keys[i].tobytes()
        if k in texts:
            reduced += 1
            assert texts[k] == text, (hex(int(batch.ids[i])), batch.payload(i).hex(), text)
        texts[k] = text
    assert reduced > 5_000  # CFs, unknown IDs, error/remote frames collapse


def _flash_log(n: int, testers_every: int) -> tuple[FrameBatch, int]:
    """A flash bus log where every data frame differs: TransferData CFs on 0x7E0 with counting
    data, a FF every 585 frames, flow control from 0x7E8, and a TesterPresent every
    `testers_every` frames. Returns the batch and the number of TesterPresent frames."""
    rows = np.arange(n, dtype=np.int64)
    data = np.zeros((n, 8), np.uint8)
    data[:, 1:5] = rows.astype("<u4").view(np.uint8).reshape(n, 4)  # distinct per frame
    data[:, 5:8] = ((rows * 2_654_435_761) >> 7).astype("<u4").view(np.uint8).reshape(n, 4)[:, :3]
    data[:, 0] = 0x20 | ((rows % 585) & 0x0F)
    ids = np.full(n, 0x7E0, np.uint32)
    ff = rows % 585 == 0
    data[ff, 0], data[ff, 1], data[ff, 2] = 0x1F, 0xFF, 0x36
    fc = rows % 585 == 1
    ids[fc] = 0x7E8
    data[fc] = [0x30, 0, 0, 0, 0, 0, 0, 0]
    tp = (rows % testers_every == testers_every // 2) & ~ff & ~fc
    data[tp] = [0x02, 0x3E, 0x00, 0, 0, 0, 0, 0]
    batch = FrameBatch(
        rows.astype(np.float64) * 1e-4,
        ids,
        np.zeros(n, np.uint16),
        np.full(n, 8, np.uint8),
        np.zeros(n, np.uint8),
        data,
    )
    return batch, int(tp.sum())


def test_text_search_finds_every_match_in_a_large_all_distinct_log() -> None:
    """Issue 19: the old search looked at the newest 200,000 distinct frames only and found 0
    of 1,000 TesterPresent frames in a 1 M-frame flash log."""
    store = TraceStore(capacity_frames=None, chunk_frames=16_384)
    batch, present = _flash_log(300_000, 300)
    store.append_batch(batch)
    reported: list[float] = []
    found = TraceQuery(text="testerpresent").select(
        store.segments(), Decoder([(0x7E0, 0x7E8)]), reported.append
    )
    assert present > 900
    assert found.shape[0] == present
    assert all(store.record(int(s)).data[1] == 0x3E for s in found[:50])
    assert found[0] < 1_000  # the oldest ones too
    assert reported[-1] == 1.0 and len(reported) == len(store.segments())


def test_query_combines_ids_protocols_and_text_and_cancels_at_progress() -> None:
    store = TraceStore(capacity_frames=None, chunk_frames=4_096)
    batch, _present = _flash_log(20_000, 100)
    store.append_batch(batch)
    decoder = Decoder([(0x7E0, 0x7E8)])
    only_fc = TraceQuery(frames=TraceFilter(ids=(0x7E8,)))
    fc = only_fc.select(store.segments(), decoder)
    assert fc.shape[0] == int((batch.ids == 0x7E8).sum())
    uds = TraceQuery(protocols=frozenset({"UDS"}), text="transferdata").select(
        store.segments(), decoder
    )
    assert uds.shape[0] == int((batch.data[:, 0] == 0x1F).sum())  # the FFs only

    def cancel(fraction: float) -> None:
        if fraction < 1.0:
            raise CancelledError("stop")

    with pytest.raises(CancelledError):
        TraceQuery(text="x").select(store.segments(), decoder, cancel)


def test_unbounded_store_keeps_everything_and_clear_is_not_a_drop() -> None:
    store = TraceStore(capacity_frames=None, chunk_frames=1_024)
    batch, _ = _flash_log(10_000, 100)
    for _ in range(5):
        assert store.append_batch(batch) == 0
    assert len(store) == 50_000 and store.dropped == 0 and not store.bounded
    bounded = TraceStore(capacity_frames=2_048, chunk_frames=1_024)
    bounded.append_batch(batch.slice(0, 2_000))
    assert bounded.append_batch(batch.slice(2_000, 3_000)) == 1_024
    assert bounded.dropped == 1_024
    bounded.clear()
    assert bounded.dropped == 1_024 and bounded.cleared == 3_000 - 1_024 and len(bounded) == 0


@pytest.mark.parametrize(
    "protocols",
    [{"UDS"}, {"ISO-TP"}, {"UDS", "ISO-TP"}, {"SDO", "PDO"}, {"other"}, {"UDS", "HEARTBEAT"}],
)
def test_protocol_filter_table_agrees_with_the_decoder(protocols: set[str]) -> None:
    """The 11-bit lookup table and the UDS pre-check give exactly the decoder's own masks."""
    decoder = Decoder([(0x7E0, 0x7E8), (0x18DA11F1, 0x18DAF111)])
    b = _random_frames(30_000, seed=7)
    got = ProtocolMask(decoder, frozenset(protocols)).mask(b)
    others = set(protocols) - {"UDS"}
    want = decoder.protocol_mask(b.ids, b.flags, others)
    if "UDS" in protocols and "ISO-TP" not in protocols:
        want |= decoder.uds_mask(b.ids, b.flags, b.data)
    elif "UDS" in protocols:
        want |= decoder.protocol_mask(b.ids, b.flags, ("ISO-TP",))
    assert (got == want).all()
    assert want.any()
