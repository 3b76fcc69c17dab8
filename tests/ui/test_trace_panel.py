"""Trace panel under pytest-qt offscreen: model contract, live capture, filters, pause, files."""

from __future__ import annotations

import threading
from pathlib import Path

import can
import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer

from fota_studio.core.frames import FLAG_ERROR, FrameBatch
from fota_studio.engine.trace_search import text_match_mask
from fota_studio.engine.trace_store import CHUNK_FRAMES, TraceFilter, TraceStore
from fota_studio.infra.tracefile import write_log
from fota_studio.protocols.bus import BusSettings, open_bus
from fota_studio.protocols.decode import Decoder
from fota_studio.protocols.decode.frames import batch_from_messages
from fota_studio.ui.models.trace_model import (
    ASYNC_TEXT_SEARCH_FRAMES,
    CHANGED_BYTE_COLOR,
    TraceModel,
    ViewFilter,
)
from fota_studio.ui.panels.trace_panel import TracePanel, parse_candump_frame
from tests.fakes.frame_batches import classic_batch, uds_batch
from tests.ui.dialog_helpers import connection_dialog


def ingest(model: TraceModel, batch: FrameBatch) -> None:
    """What the store's owner does: append (maybe trimming), then tell the view."""
    dropped = model.store.append_batch(batch)
    model.rows_dropped(dropped)
    model.rows_appended(len(batch))


def clear(model: TraceModel) -> None:
    """What the store's owner does on Clear."""
    model.store.clear()
    model.store_cleared()


def _batch(n: int, start: int = 0) -> FrameBatch:
    ids = (np.arange(start, start + n) % 0x800).astype(np.uint32)
    data = np.zeros((n, 8), np.uint8)
    data[:, 0] = 0x02
    data[:, 1] = 0x3E
    return classic_batch(np.arange(start, start + n, dtype=np.float64) * 1e-3, ids, data)


def test_model_contract_while_appending_and_trimming(qtmodeltester) -> None:
    chunk = 256  # small chunks: the model tester walks every row
    store = TraceStore(capacity_frames=2 * chunk, chunk_frames=chunk)
    model = TraceModel(store)
    qtmodeltester.check(model)
    pos = 0
    for size in (100, chunk, chunk, 50):
        ingest(model, _batch(size, pos))
        pos += size
    assert store.dropped == chunk
    assert model.rowCount() == len(store)
    model.set_filter(ViewFilter(TraceFilter(ids=(0x7E0,))))
    model.set_filter(ViewFilter(TraceFilter(ranges=((0x300, 0x3FF),))))
    ingest(model, _batch(chunk, pos))  # trims a chunk while filtered
    ids = store.column("ids")
    assert model.rowCount() == int(((ids >= 0x300) & (ids <= 0x3FF)).sum()) > 0
    qtmodeltester.check(model)


@pytest.fixture
def panel(qtbot):
    widget = TracePanel(capacity_frames=CHUNK_FRAMES * 2)
    qtbot.addWidget(widget)
    yield widget
    widget.close_all()


def test_capture_from_virtual_bus_shows_frames_and_tx(qtbot, panel, can_channel) -> None:
    name = panel.open_capture(BusSettings("virtual", can_channel), "CAN1")
    peer = open_bus(BusSettings("virtual", can_channel))
    try:
        for _ in range(100):
            peer.send(
                can.Message(
                    arbitration_id=0x7E8, data=bytes([0x02, 0x7E, 0x00]), is_extended_id=False
                )
            )
        panel.send(
            name, can.Message(arbitration_id=0x7E0, data=b"\x02\x3e\x00", is_extended_id=False)
        )
        qtbot.waitUntil(lambda: panel.model.rowCount() == 101, timeout=5000)
        texts = {panel.model.index(r, 2).data() for r in range(101)}
        assert texts == {"Rx", "Tx"}
        assert {panel.model.index(r, 3).data() for r in range(101)} == {"7E0", "7E8"}
        row = next(r for r in range(101) if panel.model.index(r, 3).data() == "7E8")
        assert "TesterPresent" in panel.model.index(row, 7).data()
        assert "CAN1" in panel.status.text() or panel.capture.channels == ["CAN1"]
    finally:
        peer.shutdown()


def test_attach_engine_bus_and_filter_and_pause(qtbot, panel, can_channel) -> None:
    bus = open_bus(BusSettings("virtual", can_channel, extra={"receive_own_messages": True}))
    notifier = can.Notifier(bus, [], timeout=0.05)
    try:
        panel.attach_bus("engine", bus, notifier)
        bus.send(can.Message(arbitration_id=0x18DA11F1, is_extended_id=True, data=b"\x02\x10\x02"))
        qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=5000)
        assert panel.model.index(0, 2).data() == "Tx"  # the engine's own frame, echoed
        assert panel.model.index(0, 3).data() == "18DA11F1x"

        panel.id_filter.setText("123")
        panel.apply_filter()
        assert panel.model.rowCount() == 0
        panel.id_filter.setText("")
        panel.apply_filter()
        assert panel.model.rowCount() == 1

        panel.set_paused(True)
        bus.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01"))
        qtbot.waitUntil(lambda: panel.model.pending_rows() == 1, timeout=5000)
        assert panel.model.rowCount() == 1
        panel._update_status()
        assert "1 new frames" in panel.status.text()
        panel.set_paused(False)
        assert panel.model.rowCount() == 2
        panel.close_all()
        assert not bus._is_shutdown  # the engine's bus stays open
    finally:
        notifier.stop(timeout=0.1)
        bus.shutdown()


def test_details_show_the_isotp_message(qtbot, panel) -> None:
    # (time, CAN ID, data): a request, then a 16-byte response as FF + FC + 2 CFs.
    rows = (
        (1.0, 0x7E0, "0322F195"),
        (1.1, 0x7E8, "101062F195414243"),
        (1.2, 0x7E0, "300800"),
        (1.3, 0x7E8, "2144454647484950"),
        (1.4, 0x7E8, "22515253"),
    )
    frames = [
        can.Message(
            timestamp=t, arbitration_id=can_id, is_extended_id=False, data=bytes.fromhex(data)
        )
        for t, can_id, data in rows
    ]
    ingest(panel.model, batch_from_messages(frames))
    text = panel.details_text(3)
    assert "ISO-TP message 0x7E8, 16 bytes" in text
    assert "ReadDataByIdentifier DID 0xF195" in text


def test_open_log_in_background_keeps_window_responsive(qtbot, panel, tmp_path: Path) -> None:
    path = tmp_path / "big.blf"
    write_log(
        path,
        (
            can.Message(
                timestamp=i * 1e-4, arbitration_id=i & 0x7FF, is_extended_id=False, data=b"\x00" * 8
            )
            for i in range(150_000)
        ),
    )
    ticks = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    with qtbot.waitSignal(panel.file_loaded, timeout=30_000) as blocker:
        panel.open_file(path)
    timer.stop()
    assert blocker.args[1] == 150_000
    doc = panel.current_document()
    assert doc is not panel.live and doc.name == "big.blf"
    # A file keeps every frame (the live capacity, 2 chunks, does not apply to it) ...
    assert len(doc.store) == 150_000 == doc.model.rowCount() and doc.store.dropped == 0
    # ... and never enters the live capture.
    assert len(panel.store) == 0 and panel.model.rowCount() == 0
    assert ticks  # the event loop kept running while the file was read


def test_save_round_trip_and_candump_parser(qtbot, panel, tmp_path: Path) -> None:
    ingest(panel.model, _batch(500))
    path = tmp_path / "out.asc"
    with qtbot.waitSignal(panel.file_saved, timeout=10_000):
        panel.save_file(path)
    assert sum(1 for _ in can.ASCReader(str(path))) == 500
    msg = parse_candump_frame("18DA11F1#0322F195")
    assert msg.is_extended_id and msg.data == bytes.fromhex("0322F195")
    assert parse_candump_frame("7E0##1" + "00" * 12).is_fd


def test_save_shows_progress_and_cancel_writes_nothing(qtbot, tmp_path: Path) -> None:
    """Saving a long trace shows the progress bar and Cancel; cancelling leaves no file (and
    no temporary file) behind, and the status line says so."""
    panel = TracePanel(capacity_frames=CHUNK_FRAMES * 16)
    qtbot.addWidget(panel)
    try:
        for i in range(8):
            ingest(panel.model, _batch(100_000, i * 100_000))
        path = tmp_path / "big.blf"
        panel.save_file(path)
        assert panel.progress.isVisibleTo(panel) and panel.cancel_button.isVisibleTo(panel)
        qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=20_000)  # 50k written
        panel.cancel_button.click()
        assert not panel.progress.isVisibleTo(panel)
        assert panel.status.text() == "Save cancelled; big.blf was not written"
        assert panel.wait_io(10.0)
        assert list(tmp_path.iterdir()) == []
        # A save that runs to the end hides the progress again.
        small = tmp_path / "small.asc"
        clear(panel.model)
        ingest(panel.model, _batch(1000))
        with qtbot.waitSignal(panel.file_saved, timeout=10_000):
            panel.save_file(small)
        assert not panel.cancel_button.isVisibleTo(panel)
        assert [p.name for p in tmp_path.iterdir()] == ["small.asc"]
    finally:
        panel.close_all()


def test_connection_dialog_settings(qtbot) -> None:
    dialog = connection_dialog(qtbot, "pcan", "PCAN_USBBUS1", "250000")
    dialog.fd.setChecked(True)
    dialog.data_bitrate.setCurrentText("4000000")
    dialog.listen_only.setChecked(True)
    assert dialog.settings() == BusSettings(
        "pcan", "PCAN_USBBUS1", 250_000, True, 4_000_000, listen_only=True
    )
    assert dialog.display_name() == "pcan:PCAN_USBBUS1"


def test_open_capture_bad_adapter_raises_adapter_error(panel) -> None:
    from fota_studio.core.errors import AdapterError

    with pytest.raises(AdapterError, match="pcan"):
        panel.open_capture(BusSettings("pcan", "PCAN_USBBUS1"))
    assert panel.capture.channels == []


def test_multi_data_matches_data(qtbot) -> None:
    from PySide6.QtCore import QModelRoleData, QModelRoleDataSpan, Qt

    store = TraceStore()
    model = TraceModel(store)
    ingest(
        model,
        batch_from_messages(
            [
                can.Message(
                    arbitration_id=0x7E0, data=b"\x02\x3e\x00", is_extended_id=False, is_rx=False
                ),
                can.Message(arbitration_id=0x18DA11F1, data=b"\x01", is_extended_id=True),
            ]
        ),
    )
    roles = [
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.BackgroundRole,
        Qt.ItemDataRole.FontRole,
        Qt.ItemDataRole.TextAlignmentRole,
    ]
    for row in range(2):
        for col in range(model.columnCount()):
            index = model.index(row, col)
            for role in roles:
                role_data = QModelRoleData(int(role))
                model.multiData(index, QModelRoleDataSpan(role_data))
                assert role_data.data() == index.data(role), (row, col, role)


def test_by_id_view_and_plots_refresh(qtbot, panel) -> None:
    msgs = [
        can.Message(
            timestamp=i * 0.01,
            arbitration_id=0x100 + (i % 2),
            is_extended_id=False,
            data=bytes([i & 0xFF, 0]),
        )
        for i in range(10)
    ]
    ingest(panel.model, batch_from_messages(msgs))
    panel.byid_model.refresh()
    assert panel.byid_model.rowCount() == 2
    row = [panel.byid_model.index(0, c).data() for c in range(panel.byid_model.columnCount())]
    assert row[0] == "100" and row[2] == "5" and row[3] == "20.00"
    assert row[6:8] == ["08", "00"]
    # byte 0 changed since the previous frame of this ID: highlighted in colour, byte 1 not
    bg = Qt.ItemDataRole.BackgroundRole
    assert panel.byid_model.index(0, 6).data(bg) == CHANGED_BYTE_COLOR
    assert panel.byid_model.index(0, 7).data(bg) is None
    assert panel.byid_model.row(0).data_text() == "08* 00"
    if panel.plots is not None:
        panel.tabs.setCurrentWidget(panel.plots)
        panel._refresh_side_views()
        panel._refresh_side_views()


def test_tcu_eds_names_and_isotp_pairs(panel) -> None:
    frames = [
        can.Message(
            arbitration_id=0x67A,
            is_extended_id=False,
            data=bytes.fromhex("2F F3 5F 01 01 00 00 00".replace(" ", "")),
        ),
        can.Message(
            arbitration_id=0x600 + 0x11, is_extended_id=False, data=bytes.fromhex("0322F195")
        ),
    ]
    ingest(panel.model, batch_from_messages(frames))
    assert "5FF3:01" in panel.model.decoded(0)
    if Path(__file__).resolve().parents[2].joinpath("resources", "fota_tcu.eds").exists():
        assert "update_available" in panel.model.decoded(0)
    assert panel.model.decoded(1).startswith("SDO")  # 0x611 is an SDO ID until told otherwise
    panel.add_isotp_pairs([(0x611, 0x619)])
    assert panel.model.decoded(1).startswith("SF: ReadDataByIdentifier")


class _GatedDecoder(Decoder):
    """A real decoder whose free-text decoding waits for the test to open a gate, so the test
    can look at the view while the background search is still running."""

    def __init__(self) -> None:
        super().__init__([(0x7E0, 0x7E8)])
        self.gate = threading.Event()

    def describe_frame(self, can_id: int, extended: bool, data: bytes) -> str:
        if threading.current_thread().name == "fota-ui-io":
            self.gate.wait(10.0)
        return super().describe_frame(can_id, extended, data)


def test_large_text_search_runs_in_the_background(qtbot) -> None:
    """A free-text search over many frames returns at once (the GUI stays live), keeps the
    matching frames that arrive meanwhile, and then shows every earlier match."""
    n = ASYNC_TEXT_SEARCH_FRAMES + 5000
    store = TraceStore(capacity_frames=4 * n)
    decoder = _GatedDecoder()
    model = TraceModel(store, decoder)
    ingest(model, uds_batch(n, 0))
    model.set_filter(ViewFilter(text="testerpresent"))
    assert model.searching and model.rowCount() == 0
    ingest(model, uds_batch(100, n))  # live frames while searching: filtered synchronously
    assert model.rowCount() == 10
    with qtbot.waitSignal(model.search_finished, timeout=20_000) as finished:
        decoder.gate.set()
    assert not model.searching
    assert finished.args == [(n + 100) // 10] == [model.rowCount()]
    seqs = model.visible_seqs()
    assert (np.diff(seqs) > 0).all() and (seqs % 10 == 0).all()  # in order, all TesterPresent
    assert "TesterPresent" in model.decoded(int(seqs[0]))


def test_new_filter_or_clear_drops_a_running_search(qtbot) -> None:
    n = ASYNC_TEXT_SEARCH_FRAMES
    store = TraceStore(capacity_frames=4 * n)
    decoder = _GatedDecoder()
    model = TraceModel(store, decoder)
    ingest(model, uds_batch(n, 0))
    model.set_filter(ViewFilter(text="testerpresent"))
    assert model.searching
    model.set_filter(ViewFilter(TraceFilter(ids=(0x7E0,))))  # replaces the search
    assert not model.searching and model.rowCount() == n
    model.set_filter(ViewFilter(text="readdatabyidentifier"))
    assert model.searching
    clear(model)
    assert not model.searching
    decoder.gate.set()
    with qtbot.assertNotEmitted(model.search_finished, wait=500):
        pass
    assert model.rowCount() == 0


def test_text_match_mask_is_pure_and_never_breaks_on_a_decoder_error() -> None:
    batch = uds_batch(1000, 0)
    batch.flags[5] = FLAG_ERROR  # error and remote frames have no decoded text
    decoder = Decoder([(0x7E0, 0x7E8)])

    def mask_of(needle: str, dec: Decoder) -> np.ndarray:
        b = batch
        return text_match_mask(b.ids, b.flags, b.length, b.data, b.ext, needle, dec)

    mask = mask_of("testerpresent", decoder)
    assert mask.sum() == 100 and mask[0] and not mask[1]
    assert not mask[5]

    class Broken(Decoder):
        def describe_frame(self, can_id: int, extended: bool, data: bytes) -> str:
            raise ValueError("bad DBC")

    broken_mask = mask_of("decode error: bad dbc", Broken())
    assert broken_mask.sum() == len(batch) - 1  # not the error frame


def test_panel_status_tells_a_search_is_running(qtbot, panel) -> None:
    n = ASYNC_TEXT_SEARCH_FRAMES
    gate = threading.Event()
    plain = panel.decoder.describe_frame

    def gated(can_id: int, extended: bool, data: bytes) -> str:
        if threading.current_thread().name == "fota-ui-io":
            gate.wait(10.0)
        return plain(can_id, extended, data)

    panel.decoder.describe_frame = gated  # type: ignore[method-assign]
    panel.add_isotp_pairs([(0x7E0, 0x7E8)])
    ingest(panel.model, uds_batch(n, 0))
    panel.search_edit.setText("testerpresent")
    panel.apply_filter()
    assert "searching" in panel.status.text()
    with qtbot.waitSignal(panel.model.search_finished, timeout=20_000):
        gate.set()
    assert "searching" not in panel.status.text()
    assert f"filter: {n // 10:,} shown" in panel.status.text()


def test_save_to_a_lossy_format_asks_and_reports_the_count_in_the_file(
    qtbot, panel, tmp_path: Path
) -> None:
    """The field report: saving FD frames to TRC/CSV said "wrote 3" while the file held 0.
    Now the panel asks first, declining writes nothing, and the status/signal carry the count
    that is really in the file."""
    from fota_studio.protocols.decode.frames import FLAG_FD, FLAG_TX

    batch = _batch(10)
    batch.flags[:3] = FLAG_FD  # three FD frames (8 bytes each)
    batch.flags[3] = FLAG_TX
    ingest(panel.model, batch)
    asked: list[str] = []

    def decline(plan) -> bool:
        asked.append(plan.loss_text())
        return False

    panel.confirm_loss = decline  # type: ignore[method-assign]
    csv_path = tmp_path / "out.csv"
    assert panel.save_file(csv_path) is False
    assert asked and "3 CAN FD frames" in asked[0] and "direction" in asked[0]
    assert not csv_path.exists()
    assert panel.status.text().startswith("Not saved: out.csv left out: 3 CAN FD frames")

    panel.confirm_loss = lambda plan: True  # type: ignore[method-assign]
    with qtbot.waitSignal(panel.file_saved, timeout=10_000) as blocker:
        assert panel.save_file(csv_path)
    in_file = sum(1 for _ in can.CSVReader(str(csv_path)))
    assert blocker.args[1] == in_file == 7
    assert panel.status.text().startswith("Saved 7 of 10 frames (left out: 3 CAN FD frames")

    # TRC holds FD frames (our 2.1 writer): no question, every frame in the file.
    asked.clear()
    panel.confirm_loss = decline  # type: ignore[method-assign]
    trc = tmp_path / "out.trc"
    with qtbot.waitSignal(panel.file_saved, timeout=10_000) as blocker:
        assert panel.save_file(trc)
    assert not asked
    assert blocker.args[1] == sum(1 for _ in can.TRCReader(str(trc))) == 10
