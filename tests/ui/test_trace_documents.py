"""Trace documents (issue 15 point 6 and "Trace documents", issue 19 part 3) under pytest-qt:
a log opens beside the live capture, an invalid one changes nothing, file frames are not live
traffic, Clear is not a drop, every tab honours the filters and writes times alike, the search
finds every match, plots use relative seconds, Follow survives a resize."""

from __future__ import annotations

from pathlib import Path

import can
import numpy as np
import pytest

from fota_studio.core.frames import FrameBatch
from fota_studio.engine.trace_capture import Appended
from fota_studio.engine.trace_store import CHUNK_FRAMES
from fota_studio.infra.tracefile import write_log
from fota_studio.protocols.bus import BusSettings, open_bus
from fota_studio.protocols.decode.frames import batch_from_messages
from fota_studio.ui.panels.trace_panel import TracePanel
from tests.fakes.frame_batches import classic_batch


@pytest.fixture
def panel(qtbot):
    widget = TracePanel(capacity_frames=2 * CHUNK_FRAMES)
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    errors: list[tuple[str, str]] = []
    widget.show_error = lambda _parent, title, text: errors.append((title, text))
    widget.errors = errors  # type: ignore[attr-defined]
    yield widget
    widget.close_all()


def feed_live(panel: TracePanel, batch: FrameBatch) -> None:
    """What the capture timer does with drained frames."""
    panel.live.appended(Appended(len(batch), panel.store.append_batch(batch)))


def _frames(n: int, can_id: int = 0x100, t0: float = 1_796_590_000.0) -> list[can.Message]:
    return [
        can.Message(
            timestamp=t0 + i * 1e-3,
            arbitration_id=can_id,
            data=bytes([i & 0xFF]),
            is_extended_id=False,
        )
        for i in range(n)
    ]


def _uds_exchange(t0: float) -> list[can.Message]:
    """TesterPresent on 0x7E0/0x7E8 and a DiagnosticSessionControl on 0x7E1/0x7E9."""
    pairs = [
        (0x7E0, b"\x02\x3e\x00"),
        (0x7E8, b"\x02\x7e\x00"),
        (0x7E1, b"\x02\x10\x02"),
        (0x7E9, b"\x06\x50\x02\x00\x19\x01\xf4"),
    ]
    return [
        can.Message(timestamp=t0 + k * 0.01, arbitration_id=i, data=d, is_extended_id=False)
        for k, (i, d) in enumerate(pairs)
    ]


def test_opening_an_invalid_log_keeps_the_live_trace(qtbot, panel, tmp_path: Path) -> None:
    feed_live(panel, batch_from_messages(_frames(50)))
    bad = tmp_path / "broken.blf"
    bad.write_bytes(b"this is not a BLF file at all" * 10)
    remembered: list[str] = []
    panel.log_file_opened.connect(remembered.append)
    panel.open_file(bad)
    qtbot.waitUntil(lambda: bool(panel.errors), timeout=10_000)
    title, text = panel.errors[0]
    assert "broken.blf" in title and "not a BLF file" in text and "unchanged" in text
    assert panel.documents == [panel.live] and panel.current_document() is panel.live
    assert len(panel.store) == 50 == panel.model.rowCount()
    assert not panel.progress.isVisible()
    assert not remembered  # not offered again under File ▸ Recent log files


def test_a_log_opens_beside_the_live_capture_and_its_frames_are_not_live(
    qtbot, panel, can_channel, tmp_path: Path
) -> None:
    log = tmp_path / "drive.blf"
    write_log(log, _frames(100_000, 0x200))
    panel.open_capture(BusSettings("virtual", can_channel), "CAN1")
    peer = open_bus(BusSettings("virtual", can_channel))
    try:
        with qtbot.waitSignal(panel.file_loaded, timeout=30_000):
            panel.open_file(log)
        doc = panel.current_document()
        assert doc is not panel.live and doc.name == "drive.blf"
        assert [d.name for d in panel.documents] == ["Live", "drive.blf"]
        assert len(doc.store) == 100_000
        # Live frames keep going to the live document only.
        for i in range(20):
            peer.send(can.Message(arbitration_id=0x7E8, data=bytes([i]), is_extended_id=False))
        qtbot.waitUntil(lambda: panel.model.rowCount() == 20, timeout=5_000)
        assert len(doc.store) == 100_000 == doc.model.rowCount()
        # The file's 100,000 frames (read in well under a second) are not live traffic.
        panel._last_stats -= 2.0  # the next tick computes the rate
        panel._on_drain_timer_timeout()
        assert panel._rate_fps < 1_000
        panel.doc_tabs.setCurrentWidget(panel.live)
        assert "dropped 0" in panel.status.text()
        assert "keeps the newest 131,072" in panel.status.text()  # the live limit is stated
        if doc.plots is not None:  # bus load of the file from its own time axis
            doc.tabs.setCurrentWidget(doc.plots)
            panel.doc_tabs.setCurrentWidget(doc)
            panel._update_plots(doc)
            curve = doc.plots._curves[0][1]
            x, y = curve.getData()
            assert x[0] == 0.0 and x[-1] < 101  # relative seconds, not 1.79659e+09
            assert 0 < y.max() < 100  # 1,000 frames/s of one byte on 500 kbit/s
            assert doc.plots.load_plot.getAxis("bottom").labelText == "time"
        # Closing the file's tab never touches the live capture.
        panel.close_document(doc)
        assert panel.documents == [panel.live] and panel.model.rowCount() == 20
    finally:
        peer.shutdown()


def test_clear_does_not_count_as_dropped(qtbot, panel) -> None:
    feed_live(panel, batch_from_messages(_frames(3 * CHUNK_FRAMES)))  # over the capacity
    assert panel.store.dropped == CHUNK_FRAMES
    panel.clear()
    assert panel.model.rowCount() == 0 and len(panel.store) == 0
    assert panel.store.dropped == CHUNK_FRAMES  # unchanged by Clear
    panel._update_status()
    assert f"dropped {CHUNK_FRAMES:,}" in panel.status.text()
    feed_live(panel, batch_from_messages(_frames(10)))
    assert panel.model.rowCount() == 10 and panel.store.dropped == CHUNK_FRAMES


def test_messages_tab_honours_the_filters_and_writes_times_like_the_frames_tab(
    qtbot, panel
) -> None:
    t0 = 1_796_590_000.0  # an epoch stamp: shown as wall-clock time, never raw
    feed_live(panel, batch_from_messages(_uds_exchange(t0)))
    panel.tabs.setCurrentWidget(panel.messages_view)
    panel._refresh_side_views()
    mm = panel.messages_model
    assert mm.rowCount() == 4
    frame_times = {panel.model.index(r, 0).data() for r in range(panel.model.rowCount())}
    message_times = {mm.index(r, 0).data() for r in range(mm.rowCount())}
    assert message_times == frame_times
    assert all(":" in t for t in message_times)  # HH:MM:SS.ffffff, not 1796590000.000000
    panel.time_combo.setCurrentText("relative")
    assert mm.index(1, 0).data() == panel.model.index(1, 0).data() == "0.010000"
    # The ID filter applies to the Messages tab too (it ignored it before).
    panel.id_filter.setText("7E1 7E9")
    panel.apply_filter()
    assert panel.model.rowCount() == 2
    assert mm.rowCount() == 2
    assert {mm.index(r, 1).data() for r in range(mm.rowCount())} == {"7E1", "7E9"}
    panel.id_filter.setText("")
    panel.search_edit.setText("testerpresent")
    panel.apply_filter()
    assert mm.rowCount() == 2 == panel.model.rowCount()
    # ... and to By ID.
    panel.search_edit.setText("")
    panel.id_filter.setText("7E0")
    panel.apply_filter()
    panel.byid_model.refresh()
    assert [panel.byid_model.row(r).can_id for r in range(panel.byid_model.rowCount())] == [0x7E0]
    # ... and to the per-ID plot (bus load and frames/s per channel still count every frame).
    if panel.plots is not None:
        feed_live(panel, batch_from_messages(_uds_exchange(t0 + 1.0)))
        panel._update_plots(panel.live)
        assert panel.plots.id_curve_ids == [0x7E0]


def _flash_batch(n: int, tester_every: int) -> tuple[FrameBatch, int]:
    """A flash bus log with all-distinct data (TransferData CFs) and rare TesterPresents."""
    rows = np.arange(n, dtype=np.int64)
    data = np.zeros((n, 8), np.uint8)
    data[:, 0] = 0x20 | (rows & 0x0F)
    data[:, 1:5] = rows.astype("<u4").view(np.uint8).reshape(n, 4)
    tp = rows % tester_every == 7
    data[tp] = [0x02, 0x3E, 0x00, 0, 0, 0, 0, 0]
    return classic_batch(rows * 1e-4, np.full(n, 0x7E0, np.uint32), data), int(tp.sum())


def test_search_finds_every_match_in_a_large_all_distinct_trace(qtbot) -> None:
    """Issue 19: 0 of 1,000 TesterPresents were found in a 1 M-frame flash log (only the newest
    200,000 distinct frames were searched). 300k frames here, every match found, off the GUI
    thread with progress."""
    panel = TracePanel(capacity_frames=400_000, isotp_pairs=[(0x7E0, 0x7E8)])
    qtbot.addWidget(panel)
    try:
        batch, present = _flash_batch(300_000, 300)
        feed_live(panel, batch)
        progress: list[float] = []
        panel.model.query_progress.connect(progress.append)
        panel.search_edit.setText("TesterPresent")
        panel.apply_filter()
        assert panel.model.searching and "searching" in panel.status.text()
        with qtbot.waitSignal(panel.model.search_finished, timeout=60_000):
            pass
        assert present == 1_000
        assert panel.model.rowCount() == present  # recall 1.0
        seqs = panel.model.visible_seqs()
        assert int(seqs[0]) == 7  # the oldest ones too
        assert all("TesterPresent" in panel.model.decoded(int(s)) for s in seqs[:20])
        assert progress and progress[-1] == 1.0
        assert f"filter: {present:,} shown" in panel.status.text()
    finally:
        panel.close_all()


def test_follow_keeps_following_after_a_resize(qtbot, panel) -> None:
    feed_live(panel, batch_from_messages(_frames(2_000)))
    panel._on_drain_timer_timeout()
    sb = panel.view.verticalScrollBar()
    qtbot.waitUntil(lambda: sb.value() == sb.maximum() > 0, timeout=2_000)
    panel.resize(900, 400)  # smaller: the range grows, the bar is no longer at the bottom
    qtbot.wait(50)
    panel.resize(1300, 900)
    qtbot.wait(50)
    feed_live(panel, batch_from_messages(_frames(500, t0=1_796_590_010.0)))
    panel._last_view = 0.0
    panel._on_drain_timer_timeout()
    assert panel.live.following
    qtbot.waitUntil(lambda: sb.value() == sb.maximum(), timeout=2_000)
    # A user scroll up stops following; scrolling back to the bottom resumes it.
    sb.triggerAction(sb.SliderAction.SliderToMinimum)
    assert not panel.live.following
    sb.triggerAction(sb.SliderAction.SliderToMaximum)
    assert panel.live.following


def test_an_asc_log_opens_whole_as_a_document_and_saves_from_it(
    qtbot, panel, tmp_path: Path
) -> None:
    log = tmp_path / "bench.asc"
    write_log(log, _frames(3 * CHUNK_FRAMES // 2, 0x321))
    with qtbot.waitSignal(panel.file_loaded, timeout=60_000) as loaded:
        panel.open_file(log)
    assert loaded.args == ["bench.asc", 3 * CHUNK_FRAMES // 2]
    doc = panel.current_document()
    assert doc.model.rowCount() == 3 * CHUNK_FRAMES // 2 and doc.store.dropped == 0
    assert "bench.asc" in panel.status.text() and "frames/s" not in panel.status.text()
    # Save works on the document shown (here the file), filtered by the ID filter.
    panel.id_filter.setText("!321")
    panel.apply_filter()
    assert doc.model.rowCount() == 0
    out = tmp_path / "none.blf"
    with qtbot.waitSignal(panel.file_saved, timeout=10_000) as saved:
        panel.save_file(out, filtered=True)
    assert saved.args[1] == 0
