"""From a flash step to its frames and back (issue 19 part 2), under pytest-qt: after a flash of
the simulated ECU, clicking a TransferData step (or one of its blocks) in the Flash panel opens
the session bus log in the trace with exactly those frames selected; selecting a UDS exchange in
the trace's Messages tab selects its step in the Flash panel."""

from __future__ import annotations

from pathlib import Path

import can
from PySide6.QtCore import QItemSelectionModel, QPoint, Qt

from fota_studio.engine.engine import Engine
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.engine_bridge import EngineBridge
from fota_studio.ui.panels.flash_panel import FlashPanel
from fota_studio.ui.panels.trace_panel import TracePanel
from fota_studio.ui.trace_link import TraceLink
from tests.fakes.flash import (
    fast_ecu,
    fast_sim_options,
    make_image,
    sim_ecu,
)


def _selected_seqs(doc) -> list[int]:  # type: ignore[no-untyped-def]
    rows = sorted(i.row() for i in doc.view.selectionModel().selectedRows())
    return [doc.model.seq_at(r) for r in rows]


def _click(qtbot, tree, item) -> None:  # type: ignore[no-untyped-def]
    tree.scrollToItem(item)
    rect = tree.visualItemRect(item)
    # On the step's name (the row is wider than a narrow viewport).
    pos = QPoint(rect.left() + 30, rect.center().y())
    assert tree.itemAt(pos) is item
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_click_transfer_step_selects_exactly_its_frames(
    qtbot,
    engine: Engine,
    can_channel: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    ecu = fast_ecu("VCU")
    image = make_image("7.3.0", (0x3000, 0x1000))
    ws = Workspace.open(tmp_path / "ws")
    panel = FlashPanel(engine, EngineBridge(engine), ws)
    trace = TracePanel(capacity_frames=400_000)
    for w in (panel, trace):
        qtbot.addWidget(w)
        w.resize(1000, 700)
        w.show()
    link = TraceLink(trace, lambda: ws)
    panel.frames_requested.connect(link.open_frames)
    link.step_activated.connect(lambda _r, i, b: panel.record_steps.select_step(i, b))
    try:
        with (
            sim_ecu(ecu, can_channel, tmp_path / "sim", options=fast_sim_options()),
            qtbot.waitSignal(panel.flash_finished, timeout=60_000),
        ):
            panel.start_flash(
                ecu, image, version="7.3.0", expected_version="7.3.0", boot_wait_s=1.5
            )
        record = panel.last_result.record
        tree = panel.record_steps
        assert tree.isVisible() and tree.topLevelItemCount() == len(record.steps)
        index = next(i for i, s in enumerate(record.steps) if s.step == "transfer_data")
        st = record.steps[index]
        assert st.frame_first is not None and st.frame_last is not None
        blf = tmp_path / "check.blf"
        blf.write_bytes(ws.blobs.get(record.buslog_sha256))
        with can.BLFReader(str(blf)) as reader:
            frames = list(reader)
        req_id = ecu.connection.bootloader.request_id

        # The TransferData step: exactly its frames, nothing else.
        with qtbot.waitSignal(link.frames_shown, timeout=20_000):
            _click(qtbot, tree, tree.topLevelItem(index))

        doc = trace.current_document()
        base = doc.store.end_seq - len(frames)
        assert _selected_seqs(doc) == list(range(base + st.frame_first, base + st.frame_last + 1))

        # One block of it: exactly that block's frames, starting with its TransferData request.
        block = 1
        first, last = st.block_range(block)
        item = tree.item_for(index, block)
        assert item is not None
        with qtbot.waitSignal(link.frames_shown, timeout=20_000):
            _click(qtbot, tree, item)
        doc = trace.current_document()
        base = doc.store.end_seq - len(frames)
        assert _selected_seqs(doc) == list(range(base + first, base + last + 1))
        head = frames[first]
        assert head.arbitration_id == req_id and bytes(head.data[2:4]) == bytes([0x36, block + 1])
        assert "block 2" in trace.status.text()

        # Back from the trace: an exchange in the Messages tab selects its step in the panel.
        tree.clearSelection()
        tree.setCurrentItem(None)
        model = doc.messages_model
        doc.tabs.setCurrentWidget(doc.messages_view)  # the engineer opens the Messages tab
        qtbot.waitUntil(lambda: model.rowCount() > 0, timeout=10_000)
        row = next(
            r
            for r in range(model.rowCount())
            if (found := link.step_of_line(doc, r)) is not None and found[1] == index
        )
        with qtbot.waitSignal(link.step_activated, timeout=5_000):
            doc.messages_view.selectionModel().select(
                model.index(row, 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
        current = tree.currentItem()
        assert current is not None
        assert current is tree.topLevelItem(index) or current.parent() is tree.topLevelItem(index)
        assert "Flash step: transfer_data" in doc.details.toPlainText()
    finally:
        trace.close_all()
        ws.close()


def test_report_step_link_opens_its_frames(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The record report's frames link of a step (and the request panel's click on it) names
    exactly that step's frames of the stored record."""
    from PySide6.QtCore import QUrl

    from fota_studio.core.flash_record import FlashRecord, StepRecord
    from fota_studio.engine.records import save_flash_record
    from fota_studio.ui.panels.requests_panel import RequestsPanel
    from fota_studio.ui.report import _frames_cell
    from fota_studio.ui.trace_link import frames_href, parse_frames_href, request_from_href

    blf = tmp_path / "s.blf"
    with can.BLFWriter(str(blf)) as writer:
        for i in range(15):  # 15 ReadDataByIdentifier exchanges, 30 frames
            for can_id, data in ((0x7E0, [3, 0x22, 0xF1, i]), (0x7E8, [4, 0x62, 0xF1, i, 0])):
                writer.on_message_received(
                    can.Message(
                        timestamp=1.0 + i + (can_id & 1) * 0.01,
                        arbitration_id=can_id,
                        is_extended_id=False,
                        data=bytes(data),
                    )
                )
    steps = [
        StepRecord("extended_session", 1.0, 2.0, True, frame_first=0, frame_last=3),
        StepRecord(
            "transfer_data", 2.0, 3.0, True, frame_first=4, frame_last=29, block_frames=[4, 18]
        ),
    ]
    ws = Workspace.open(tmp_path / "ws")
    try:
        rid = save_flash_record(ws, FlashRecord(ecu="VCU", steps=steps), blf, keep_file=True)
        assert parse_frames_href(frames_href(rid, 1, 0)) == (rid, 1, 0)
        assert parse_frames_href("https://example.org") is None
        cell = _frames_cell(rid, 1, steps[1])
        assert frames_href(rid, 1) in cell and "4–29" in cell
        req = request_from_href(ws, frames_href(rid, 1, 1))
        assert req is not None and (req.first, req.last, req.block) == (18, 29, 1)
        assert request_from_href(ws, frames_href(rid, 7)) is None
        panel = RequestsPanel(ws)
        qtbot.addWidget(panel)
        with qtbot.waitSignal(panel.frames_requested, timeout=2_000) as got:
            panel.detail.anchorClicked.emit(QUrl(frames_href(rid, 0)))
        request = got.args[0]
        assert (request.first, request.last, request.label) == (0, 3, "extended_session #1")
        trace = TracePanel(capacity_frames=10_000)
        qtbot.addWidget(trace)
        trace.show()
        link = TraceLink(trace, lambda: ws)
        with qtbot.waitSignal(link.frames_shown, timeout=10_000):
            assert link.open_frames(req)
        doc = trace.current_document()
        base = doc.store.end_seq - 30
        assert _selected_seqs(doc) == list(range(base + 18, base + 30))
        # A whole bus log opened from the record ("Bus log" of a request) links back too.
        with qtbot.waitSignal(trace.file_loaded, timeout=10_000):
            assert trace.open_flash_record(ws, rid)
        doc = trace.current_document()
        model = doc.messages_model
        doc.tabs.setCurrentWidget(doc.messages_view)  # the engineer opens the Messages tab
        qtbot.waitUntil(lambda: model.rowCount() > 0, timeout=10_000)
        base = doc.store.end_seq - 30
        by_frame = {
            model.line(r).frame_seqs[0] - base: link.step_of_line(doc, r)
            for r in range(model.rowCount())
        }
        assert by_frame[2] is not None and by_frame[2][1:] == (0, None)
        assert by_frame[20] is not None and by_frame[20][1:] == (1, 1)
        trace.close_all()
        panel.shutdown()
    finally:
        ws.close()
