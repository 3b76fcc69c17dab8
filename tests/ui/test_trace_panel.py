"""Trace panel under pytest-qt offscreen: model contract, live capture, filters, pause, files."""

from __future__ import annotations

from pathlib import Path

import can
import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer

from fota_studio.engine.trace_store import CHUNK_FRAMES, FrameBatch, TraceFilter, TraceStore
from fota_studio.infra.tracefile import write_log
from fota_studio.protocols.bus import BusSettings, open_bus
from fota_studio.ui.models.trace_model import CHANGED_BYTE_COLOR, TraceModel, ViewFilter
from fota_studio.ui.panels.trace_panel import TracePanel, parse_candump_frame


def _batch(n: int, start: int = 0) -> FrameBatch:
    ids = (np.arange(start, start + n) % 0x800).astype(np.uint32)
    data = np.zeros((n, 8), np.uint8)
    data[:, 0] = 0x02
    data[:, 1] = 0x3E
    return FrameBatch(
        np.arange(start, start + n, dtype=np.float64) * 1e-3,
        ids,
        np.zeros(n, np.uint16),
        np.full(n, 8, np.uint8),
        np.zeros(n, np.uint8),
        data,
    )


def test_model_contract_while_appending_and_trimming(qtmodeltester) -> None:
    chunk = 256  # small chunks: the model tester walks every row
    store = TraceStore(capacity_frames=2 * chunk, chunk_frames=chunk)
    model = TraceModel(store)
    qtmodeltester.check(model)
    pos = 0
    for size in (100, chunk, chunk, 50):
        model.ingest(_batch(size, pos))
        pos += size
    assert store.dropped == chunk
    assert model.rowCount() == len(store)
    model.set_filter(ViewFilter(TraceFilter(ids=(0x7E0,))))
    model.set_filter(ViewFilter(TraceFilter(ranges=((0x300, 0x3FF),))))
    model.ingest(_batch(chunk, pos))  # trims a chunk while filtered
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
    frames = [
        can.Message(
            timestamp=1.0,
            arbitration_id=0x7E0,
            is_extended_id=False,
            data=bytes.fromhex("0322F195"),
        ),
        can.Message(
            timestamp=1.1,
            arbitration_id=0x7E8,
            is_extended_id=False,
            data=bytes.fromhex("1010 62F195 414243".replace(" ", "")),
        ),
        can.Message(
            timestamp=1.2, arbitration_id=0x7E0, is_extended_id=False, data=bytes.fromhex("300800")
        ),
        can.Message(
            timestamp=1.3,
            arbitration_id=0x7E8,
            is_extended_id=False,
            data=bytes.fromhex("2144454647484950"),
        ),
        can.Message(
            timestamp=1.4,
            arbitration_id=0x7E8,
            is_extended_id=False,
            data=bytes.fromhex("22515253"),
        ),
    ]
    panel.model.ingest(FrameBatch.from_messages(frames))
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
    assert panel.store.end_seq == 150_000  # every frame arrived (the oldest chunk was trimmed)
    assert panel.model.rowCount() == len(panel.store)
    assert ticks  # the event loop kept running while the file was read


def test_save_round_trip_and_candump_parser(qtbot, panel, tmp_path: Path) -> None:
    panel.model.ingest(_batch(500))
    path = tmp_path / "out.asc"
    with qtbot.waitSignal(panel.file_saved, timeout=10_000):
        panel.save_file(path)
    assert sum(1 for _ in can.ASCReader(str(path))) == 500
    msg = parse_candump_frame("18DA11F1#0322F195")
    assert msg.is_extended_id and msg.data == bytes.fromhex("0322F195")
    assert parse_candump_frame("7E0##1" + "00" * 12).is_fd


def test_connection_dialog_settings(qtbot) -> None:
    from fota_studio.ui.dialogs.connection_dialog import ConnectionDialog

    dialog = ConnectionDialog(detect=False)
    qtbot.addWidget(dialog)
    dialog.interface.setCurrentText("pcan")
    dialog.channel.setText("PCAN_USBBUS1")
    dialog.bitrate.setCurrentText("250000")
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
    model.ingest(
        FrameBatch.from_messages(
            [
                can.Message(
                    arbitration_id=0x7E0, data=b"\x02\x3e\x00", is_extended_id=False, is_rx=False
                ),
                can.Message(arbitration_id=0x18DA11F1, data=b"\x01", is_extended_id=True),
            ]
        )
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
    panel.model.ingest(FrameBatch.from_messages(msgs))
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
    panel.model.ingest(FrameBatch.from_messages(frames))
    assert "5FF3:01" in panel.model.decoded(0)
    if Path(__file__).resolve().parents[2].joinpath("resources", "fota_tcu.eds").exists():
        assert "update_available" in panel.model.decoded(0)
    assert panel.model.decoded(1).startswith("SDO")  # 0x611 is an SDO ID until told otherwise
    panel.add_isotp_pairs([(0x611, 0x619)])
    assert panel.model.decoded(1).startswith("SF: ReadDataByIdentifier")
