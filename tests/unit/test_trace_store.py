"""Trace store: append, trim by chunk, drop counter, vectorised filters; capture from a bus."""

from __future__ import annotations

import threading

import can
import numpy as np

from fota_studio.engine.trace_capture import TraceCapture
from fota_studio.engine.trace_store import (
    CHUNK_FRAMES,
    FLAG_EXTENDED,
    FLAG_FD,
    FLAG_TX,
    FrameBatch,
    TraceFilter,
    TraceStore,
    parse_id_filter,
)
from fota_studio.protocols.bus import BusSettings, open_bus
from fota_studio.protocols.decode.frames import batch_from_messages


def _batch(n: int, start: int = 0, can_id: int | None = None) -> FrameBatch:
    ids = (
        np.full(n, can_id, np.uint32)
        if can_id is not None
        else (np.arange(n) % 0x800).astype(np.uint32)
    )
    data = np.zeros((n, 8), np.uint8)
    data[:, 0] = np.arange(start, start + n) & 0xFF
    return FrameBatch(
        np.arange(start, start + n, dtype=np.float64) * 1e-3,
        ids,
        np.zeros(n, np.uint16),
        np.full(n, 8, np.uint8),
        np.zeros(n, np.uint8),
        data,
    )


def test_append_and_read_back() -> None:
    store = TraceStore()
    msgs = [
        can.Message(arbitration_id=0x18DA11F1, is_extended_id=True, data=b"\x02\x10\x03"),
        can.Message(
            arbitration_id=0x7E8,
            is_extended_id=False,
            data=bytes(range(64)),
            is_fd=True,
            bitrate_switch=True,
            is_rx=False,
        ),
        can.Message(arbitration_id=0x100, is_extended_id=False, is_remote_frame=True, dlc=4),
    ]
    store.append_messages(msgs)
    assert len(store) == 3
    a, b, c = store.records(range(3))
    assert a.arbitration_id == 0x18DA11F1 and a.flags & FLAG_EXTENDED and a.data == b"\x02\x10\x03"
    assert b.data == bytes(range(64)) and b.flags & FLAG_FD and b.flags & FLAG_TX
    assert c.length == 4 and c.data == b""
    back = b.to_message()
    assert back.data == bytes(range(64)) and back.is_fd and not back.is_rx


def test_full_store_drops_oldest_chunk_and_counts() -> None:
    store = TraceStore(capacity_frames=2 * CHUNK_FRAMES)
    store.append_batch(_batch(2 * CHUNK_FRAMES))
    assert store.dropped == 0
    assert store.frames_to_drop(10) == CHUNK_FRAMES
    dropped = store.append_batch(_batch(10, start=2 * CHUNK_FRAMES))
    assert dropped == CHUNK_FRAMES and store.dropped == CHUNK_FRAMES
    assert len(store) == CHUNK_FRAMES + 10
    assert store.first_seq == CHUNK_FRAMES
    assert store.record(store.first_seq).data[0] == CHUNK_FRAMES & 0xFF
    assert store.record(store.end_seq - 1).timestamp == (2 * CHUNK_FRAMES + 9) * 1e-3


def test_filter_by_id_list_range_mask_direction() -> None:
    store = TraceStore()
    store.append_batch(_batch(CHUNK_FRAMES + 100))
    seqs = store.filter(TraceFilter(ids=(0x7E0, 0x7E8)))
    ids = store.column("ids")
    assert set(ids[seqs - store.first_seq].tolist()) == {0x7E0, 0x7E8}
    assert len(seqs) == int(np.isin(ids, [0x7E0, 0x7E8]).sum())
    rng = store.filter(TraceFilter(ranges=((0x100, 0x1FF),)))
    assert len(rng) and all(0x100 <= ids[s] <= 0x1FF for s in rng[:50])
    masked = store.filter(TraceFilter(masks=((0x700, 0x700),)))
    assert all(ids[s] & 0x700 == 0x700 for s in masked[:50])
    assert len(store.filter(TraceFilter(direction="tx"))) == 0
    assert len(store.filter(TraceFilter(direction="rx"))) == len(store)
    assert len(store.filter(TraceFilter(), start_seq=10, end_seq=20)) == 10


def test_capture_from_virtual_bus(can_channel: str) -> None:
    store = TraceStore()
    capture = TraceCapture(store)
    name = capture.open(BusSettings("virtual", can_channel), name="CAN1")
    peer = open_bus(BusSettings("virtual", can_channel))
    try:
        for i in range(50):
            peer.send(can.Message(arbitration_id=0x100 + i, data=bytes([i]), is_extended_id=False))
        capture.send(
            name, can.Message(arbitration_id=0x7E0, data=b"\x02\x3e\x00", is_extended_id=False)
        )
        got = 0
        done = threading.Event()
        for _ in range(200):
            got += capture.drain_into_store()
            if got >= 51:
                break
            done.wait(0.01)
        assert got == 51
        tx = store.filter(TraceFilter(direction="tx"))
        assert len(tx) == 1 and store.record(int(tx[0])).arbitration_id == 0x7E0
        assert store.channel_names == ["CAN1"]
    finally:
        capture.close_all()
        peer.shutdown()


def test_attach_to_existing_notifier_keeps_owner_running(can_channel: str) -> None:
    store = TraceStore()
    capture = TraceCapture(store)
    bus = open_bus(BusSettings("virtual", can_channel))
    notifier = can.Notifier(bus, [], timeout=0.05)
    peer = open_bus(BusSettings("virtual", can_channel))
    try:
        capture.attach("engine", bus, notifier)
        peer.send(can.Message(arbitration_id=0x1, data=b"", is_extended_id=False))
        for _ in range(200):
            if capture.pending():
                break
            threading.Event().wait(0.01)
        capture.close_all()
        assert capture.drain_into_store() == 1
        assert not bus._is_shutdown  # the owner's bus stays open
    finally:
        notifier.stop(timeout=0.1)
        bus.shutdown()
        peer.shutdown()


def test_delta_per_id_across_batches() -> None:
    store = TraceStore()
    ids = np.array([1, 2, 1, 1], np.uint32)
    ts = np.array([0.0, 0.5, 1.0, 3.0])
    n = len(ids)
    z8 = np.zeros(n, np.uint8)
    store.append_batch(
        FrameBatch(ts, ids, np.zeros(n, np.uint16), z8, z8, np.zeros((n, 8), np.uint8))
    )
    store.append_batch(
        FrameBatch(
            np.array([4.0]),
            np.array([2], np.uint32),
            np.zeros(1, np.uint16),
            np.zeros(1, np.uint8),
            np.zeros(1, np.uint8),
            np.zeros((1, 8), np.uint8),
        )
    )
    assert [store.delta(s) for s in range(5)] == [0.0, 0.0, 1.0, 2.0, 3.5]


def test_parse_id_filter() -> None:
    flt = parse_id_filter("7E0 7E8, 100-1FF 700/780 !123 18DA11F1x")
    assert flt.ids == (0x7E0, 0x7E8, 0x18DA11F1)
    assert flt.ranges == ((0x100, 0x1FF),) and flt.masks == ((0x700, 0x780),)
    assert flt.exclude_ids == (0x123,)
    try:
        parse_id_filter("zz")
    except ValueError as exc:
        assert "zz" in str(exc)
    else:
        raise AssertionError("no error")


def test_replay_sends_frames_as_tx(can_channel: str) -> None:
    from fota_studio.engine.trace_capture import TraceReplay

    store = TraceStore()
    capture = TraceCapture(store)
    name = capture.open(BusSettings("virtual", can_channel), name="CAN1")
    peer = open_bus(BusSettings("virtual", can_channel))
    msgs = [
        can.Message(
            timestamp=i * 0.001, arbitration_id=0x200 + i, data=b"\x01", is_extended_id=False
        )
        for i in range(20)
    ]
    replay = TraceReplay(msgs, lambda m: capture.send(name, m), speed=10.0)
    try:
        replay.start()
        received = [peer.recv(2.0) for _ in range(20)]
        replay.stop()
        assert [m.arbitration_id for m in received if m] == [0x200 + i for i in range(20)]
        capture.drain_into_store()
        assert len(store.filter(TraceFilter(direction="tx"))) == 20
    finally:
        replay.stop()
        capture.close_all()
        peer.shutdown()


def test_batch_of_seqs_matches_the_records_in_any_order() -> None:
    """`batch(seqs)` (filtered selections, the text-search snapshot) gives the same frames as
    `record(seq)` for contiguous, gappy, reversed and shuffled selections across chunks,
    CAN FD tails included."""
    store = TraceStore(capacity_frames=64 * 8, chunk_frames=64)
    store.append_batch(_batch(100, 0))
    fd = [
        can.Message(
            arbitration_id=0x100 + i, data=bytes(range(i, i + 24)), is_fd=True, timestamp=1.0
        )
        for i in range(10)
    ]
    store.append_batch(batch_from_messages(fd))
    store.append_batch(_batch(150, 110))
    all_seqs = np.arange(store.first_seq, store.end_seq, dtype=np.int64)
    rng = np.random.default_rng(7)
    selections = [
        all_seqs,
        all_seqs[::3],
        all_seqs[95:115],
        all_seqs[::-1].copy(),
        rng.permutation(all_seqs),
        all_seqs[:0],
    ]
    for seqs in selections:
        batch = store.batch(seqs)
        assert len(batch) == len(seqs)
        for row, seq in enumerate(seqs.tolist()):
            rec = store.record(seq)
            data = batch.data[row, : min(8, int(batch.length[row]))].tobytes()
            data += batch.ext.get(row, b"")
            assert (int(batch.ids[row]), data, float(batch.timestamp[row])) == (
                rec.arbitration_id,
                rec.data,
                rec.timestamp,
            )
