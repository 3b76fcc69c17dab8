"""The live CAN trace panel: capture, filter, decode, open/save logs, plots, transmit, replay.

`TracePanel` watches buses (`attach_bus` for the engine's buses on their existing Notifier;
`open_capture` for buses it opens itself; `close_all` stops what it started). Frames never
travel as signals: Notifier threads write them into the capture's staging columns, and a 50 ms
QTimer drains them into the store, inserting into the `TraceModel` (one insert per batch) at
most every 100 ms (SavvyCAN's pattern). Follow mode scrolls only when the view is already at the
bottom; Pause freezes the view while capture continues ("N new frames"); dropped frames are
shown in the status line. Tabs: Frames, Messages (reassembled ISO-TP/UDS, TransferData bursts
collapsed to one row), By ID (changed bytes coloured), Plots, Transmit (single/periodic frames,
replay with speed and loop). Log files are read and written on worker threads
(`fota-trace-io`), handed over through a queue the timer polls, with a progress bar and Cancel;
`open_bytes` / `open_flash_record` open a flash job's session bus log from the workspace.

Tx: frames the application sends show as Tx when python-can reports them with `is_rx=False`
(buses opened with `receive_own_messages=True`) or when sent through `TracePanel.send` /
`TraceCapture.record_tx` (the engine's Tx hook). GUI thread only.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path

import can
import numpy as np
from PySide6.QtCore import QItemSelection, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import FotaError
from fota_studio.core.resources import resource_path
from fota_studio.engine.trace_capture import TraceCapture, TraceReplay
from fota_studio.engine.trace_store import (
    FLAG_EXTENDED,
    FLAG_TX,
    FrameBatch,
    TraceFilter,
    TraceStore,
    parse_id_filter,
)
from fota_studio.infra.tracefile import (
    FORMATS,
    RotatingRecorder,
    WriteReport,
    read_log,
    scan_batch_loss,
    write_log,
)
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.decode import PROTOCOLS, Decoder, TpFrame, isotp_pairs_of
from fota_studio.ui.models.trace_model import (
    BYID_DATA_COLUMNS,
    BYID_FIRST_BYTE_COL,
    COLUMNS,
    TIME_MODES,
    ByIdModel,
    TraceModel,
    ViewFilter,
)
from fota_studio.ui.panels.trace_messages import MessagesModel
from fota_studio.ui.widgets.trace_view import TraceTableView

log = logging.getLogger(__name__)

DRAIN_INTERVAL_MS = 50
STATS_INTERVAL_S = 1.0
PLOT_INTERVAL_S = 0.25
VIEW_INTERVAL_S = 0.1
OPEN_BATCH_FRAMES = 50_000
"""Frames per batch while opening a file: one model insert (≈ a few ms) per timer tick."""
DEFAULT_ROTATE_MB = 100
ROW_HEIGHT_PX = 20
DETAILS_WINDOW_FRAMES = 4_000
"""Frames either side of the selection searched for the ISO-TP message / SDO transfer."""
DEFAULT_EDS = resource_path("fota_tcu.eds")
FILE_FILTER = "CAN logs (" + " ".join(f"*{s}" for s in FORMATS) + ")"


class TracePanel(QWidget):
    """Live trace panel (see module docstring)."""

    file_loaded = Signal(str, int)  # name, frames
    log_file_opened = Signal(str)  # full path of a log file the user opened (recent files)
    file_saved = Signal(str, int)
    capture_failed = Signal(str)

    def __init__(
        self,
        parent=None,
        *,
        capacity_frames: int = 5_000_000,
        workspace=None,
        isotp_pairs: list[tuple[int, int]] | None = None,
    ) -> None:
        """`workspace` (infra.workspace.Workspace): follow the ISO-TP pairs and DID names of
        every EA in it; `isotp_pairs`: (request, response) ID pairs to follow as well."""
        super().__init__(parent)
        self.store = TraceStore(capacity_frames)
        self.capture = TraceCapture(self.store)
        self.decoder = Decoder(isotp_pairs or ())
        self.model = TraceModel(self.store, self.decoder, self)
        self.model.search_finished.connect(self._on_search_finished)
        if DEFAULT_EDS.exists():  # names for the TCU's FOTA objects (0x5FF3) out of the box
            try:
                self.decoder.load_eds(DEFAULT_EDS)
            except Exception:
                log.warning("cannot load %s", DEFAULT_EDS, exc_info=True)
        self.byid_model = ByIdModel(self.store, self)
        self.messages_model = MessagesModel(self.store, self.decoder, self)
        self._last_plot = time.monotonic()
        self._last_view = 0.0
        self._temp_files: list[Path] = []
        self._io_active = False
        self._io_saving: Path | None = None  # the file a running save writes
        self._io_queue: queue.Queue[tuple[str, object, threading.Event]] = queue.Queue(maxsize=8)
        self._io_cancel = threading.Event()
        self._io_threads: list[threading.Thread] = []
        self._bitrates: dict[str, int] = {}
        self._last_stats = time.monotonic()
        self._last_stats_seq = self.store.end_seq
        self._rate_fps = 0.0
        self._periodic: dict[str, QTimer] = {}
        self._replay: TraceReplay | None = None
        self._build_ui()
        if workspace is not None:
            self.load_workspace(workspace)
        self.setAcceptDrops(True)
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_INTERVAL_MS)
        self._timer.timeout.connect(self._on_drain_timer_timeout)
        self._timer.start()

    # -- UI ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.connect_button = QPushButton("Connect…")
        self.connect_button.clicked.connect(self._on_connect_button_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.close_all)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.set_paused)
        self.follow_check = QCheckBox("Follow")
        self.follow_check.setChecked(True)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        self.time_combo = QComboBox()
        self.time_combo.addItems(TIME_MODES)
        self.time_combo.currentTextChanged.connect(self.model.set_time_mode)
        self.open_button = QPushButton("Open…")
        self.open_button.clicked.connect(self._on_open_button_clicked)
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(lambda: self._on_save_clicked(filtered=False))
        self.save_filtered_button = QPushButton("Save filtered…")
        self.save_filtered_button.clicked.connect(lambda: self._on_save_clicked(filtered=True))
        self.record_button = QPushButton("Record…")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record live traffic to a file while capturing")
        self.record_button.toggled.connect(self._on_record_button_toggled)
        self.rotate_spin = QSpinBox()
        self.rotate_spin.setRange(1, 100_000)
        self.rotate_spin.setValue(DEFAULT_ROTATE_MB)
        self.rotate_spin.setSuffix(" MB/file")
        self.rotate_spin.setToolTip(
            "Start a new record file when the current one reaches this size"
        )
        self.load_button = QPushButton("Load EDS/DBC…")
        self.load_button.clicked.connect(self._on_load_button_clicked)
        top = QHBoxLayout()
        for w in (
            self.connect_button,
            self.stop_button,
            self.pause_button,
            self.follow_check,
            self.clear_button,
            QLabel("Time"),
            self.time_combo,
            self.open_button,
            self.save_button,
            self.save_filtered_button,
            self.record_button,
            self.rotate_spin,
            self.load_button,
        ):
            top.addWidget(w)
        top.addStretch(1)

        self.id_filter = QLineEdit()
        self.id_filter.setPlaceholderText("IDs: 7E0 7E8, 100-1FF, 700/780, !123")
        self.dir_combo = QComboBox()
        self.dir_combo.addItems(["Rx+Tx", "Rx", "Tx"])
        self.type_combo = QComboBox()
        self.type_combo.addItems(["all types", "data", "remote", "error", "fd"])
        self.proto_combo = QComboBox()
        self.proto_combo.addItems(["all protocols", *PROTOCOLS])
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("search decoded text")
        self.id_filter.editingFinished.connect(self.apply_filter)
        self.search_edit.editingFinished.connect(self.apply_filter)
        for combo in (self.dir_combo, self.type_combo, self.proto_combo):
            combo.currentIndexChanged.connect(self.apply_filter)
        filters = QHBoxLayout()
        for w in (
            QLabel("Filter"),
            self.id_filter,
            self.dir_combo,
            self.type_combo,
            self.proto_combo,
            self.search_edit,
        ):
            filters.addWidget(w)

        self.view = TraceTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        vh = self.view.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(ROW_HEIGHT_PX)
        vh.setVisible(False)
        self.view.setWordWrap(False)
        self.view.setAlternatingRowColors(True)
        hh = self.view.horizontalHeader()
        for col, width in enumerate((130, 60, 35, 90, 60, 40, 200, 400)[: len(COLUMNS)]):
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            self.view.setColumnWidth(col, width)
        hh.setStretchLastSection(True)
        self.view.selectionModel().selectionChanged.connect(self._on_selection_changed)

        self.byid_view = QTableView()
        self.byid_view.setModel(self.byid_model)
        self.byid_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.byid_view.verticalHeader().setDefaultSectionSize(ROW_HEIGHT_PX)
        self.byid_view.horizontalHeader().setStretchLastSection(True)
        for col in range(BYID_FIRST_BYTE_COL, BYID_FIRST_BYTE_COL + BYID_DATA_COLUMNS):
            self.byid_view.setColumnWidth(col, 34)

        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumBlockCount(2000)

        self.messages_view = QTableView()
        self.messages_view.setModel(self.messages_model)
        self.messages_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.messages_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.messages_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.messages_view.verticalHeader().setDefaultSectionSize(ROW_HEIGHT_PX)
        self.messages_view.verticalHeader().setVisible(False)
        self.messages_view.setWordWrap(False)
        for col, width in enumerate((130, 90, 60)):
            self.messages_view.setColumnWidth(col, width)
        self.messages_view.horizontalHeader().setStretchLastSection(True)
        self.messages_view.selectionModel().selectionChanged.connect(
            self._on_messages_selection_changed
        )

        self.tabs = QTabWidget()
        self.tabs.addTab(self.view, "Frames")
        self.tabs.addTab(self.messages_view, "Messages (ISO-TP/UDS)")
        self.tabs.addTab(self.byid_view, "By ID")
        self.plots: QWidget | None = None
        try:
            from fota_studio.ui.panels.trace_plots import TracePlots

            self.plots = TracePlots(self.store, self.decoder)
            self.tabs.addTab(self.plots, "Plots")
        except Exception:  # plotting is optional; the trace must work without it
            log.warning("trace plots unavailable", exc_info=True)
        self.transmit_tab = self._build_transmit()
        self._transmit_allowed = True
        self.tabs.addTab(self.transmit_tab, "Transmit")
        self.tabs.currentChanged.connect(lambda _i: self._refresh_side_views(force=True))

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tabs)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)

        self.status = QLabel("No channel")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p %")
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_io)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)

    def _build_transmit(self) -> QWidget:
        box = QWidget()
        self.tx_channel = QComboBox()
        self.tx_frame = QLineEdit("7DF#0201050000000000")
        self.tx_frame.setToolTip("candump syntax: 123#DEADBEEF, 18DA11F1#… for 29-bit, 7E0##1… FD")
        self.tx_period = QSpinBox()
        self.tx_period.setRange(0, 60_000)
        self.tx_period.setSuffix(" ms (0 = once)")
        self.tx_send = QPushButton("Send")
        self.tx_send.clicked.connect(self._on_tx_send_clicked)
        self.tx_stop = QPushButton("Stop periodic")
        self.tx_stop.clicked.connect(self.stop_periodic)
        self.replay_speed = QComboBox()
        self.replay_speed.addItems(["0.5", "1", "2", "5", "10"])
        self.replay_speed.setCurrentText("1")
        self.replay_loop = QCheckBox("Loop")
        self.replay_button = QPushButton("Replay shown rows")
        self.replay_button.setCheckable(True)
        self.replay_button.toggled.connect(self._on_replay_button_toggled)
        row = QHBoxLayout(box)
        for w in (
            self.tx_channel,
            self.tx_frame,
            self.tx_period,
            self.tx_send,
            self.tx_stop,
            QLabel("Replay ×"),
            self.replay_speed,
            self.replay_loop,
            self.replay_button,
        ):
            row.addWidget(w)
        return box

    def set_transmit_allowed(self, allowed: bool) -> None:
        """Operator mode hides raw CAN transmit and replay (`AccessControl` decides; issue 14)
        and stops any periodic transmission or replay still running."""
        self._transmit_allowed = allowed
        self.tabs.setTabVisible(self.tabs.indexOf(self.transmit_tab), allowed)
        if not allowed:
            self.stop_periodic()
            self.stop_replay()

    def start_replay(self, name: str, *, speed: float = 1.0, loop: bool = False) -> TraceReplay:
        """Replay the rows currently shown (filter applied) onto channel `name` as Tx."""
        if not self._transmit_allowed:
            from fota_studio.infra.access import AccessDeniedError, Action

            raise AccessDeniedError(Action.RAW_TRANSMIT)
        self.stop_replay()
        snapshot = self.store.batch(self.model.visible_seqs())
        messages = list(snapshot.messages())
        self._replay = TraceReplay(
            messages, lambda m: self.capture.send(name, m), speed=speed, loop=loop
        )
        self._replay.start()
        return self._replay

    def stop_replay(self) -> None:
        """Stop a running replay."""
        if self._replay is not None:
            self._replay.stop()
            self._replay = None

    def _on_replay_button_toggled(self, on: bool) -> None:
        if not on:
            self.stop_replay()
            return
        name = self.tx_channel.currentText()
        if not name:
            self.status.setText("Replay: connect a channel first")
            self.replay_button.setChecked(False)
            return
        self.start_replay(
            name, speed=float(self.replay_speed.currentText()), loop=self.replay_loop.isChecked()
        )

    # -- public API -------------------------------------------------------------------------
    def attach_bus(
        self, name: str, bus: can.BusABC, notifier: can.Notifier, *, tx_echo: bool = False
    ) -> None:
        """Watch a bus owned by the engine (listener added to its existing Notifier);
        `tx_echo` = the engine's bus echoes its own frames (`Engine.echoes_tx(name)`)."""
        self.capture.attach(name, bus, notifier, tx_echo=tx_echo)
        self._channels_changed()

    def open_capture(self, settings: BusSettings, name: str | None = None) -> str:
        """Open a bus for the trace itself and start capturing; raises AdapterError."""
        opened = self.capture.open(settings, name)
        self._bitrates[opened] = settings.bitrate_bps
        self._channels_changed()
        return opened

    def close_all(self) -> None:
        """Stop every capture, periodic transmit, replay, recording and file job it started."""
        self.model.cancel_search()
        self.stop_periodic()
        self.stop_replay()
        if self.capture.recording:
            self.capture.stop_recording()
            self.record_button.blockSignals(True)
            self.record_button.setChecked(False)
            self.record_button.blockSignals(False)
        self.capture.close_all()
        self._io_cancel.set()
        for thread in self._io_threads:
            while thread.is_alive():
                self._drain_io_queue(discard=True)  # unblock a worker waiting on a full queue
                thread.join(0.05)
        self._io_threads.clear()
        self._io_cancel = threading.Event()
        self._drain_io_queue(discard=True)
        self._remove_temp_files()
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self._on_drain_timer_timeout()
        self._channels_changed()

    def set_paused(self, paused: bool) -> None:
        """Freeze / unfreeze the view; capture continues into the store meanwhile."""
        self.model.set_paused(paused)
        if self.pause_button.isChecked() != paused:
            self.pause_button.setChecked(paused)
        self._update_status()

    def apply_filter(self) -> None:
        """Read the filter widgets and apply them (bad ID syntax shows in the status line)."""
        try:
            ids = parse_id_filter(self.id_filter.text())
        except ValueError as exc:
            self.status.setText(f"Filter: {exc}")
            return
        direction = {"Rx": "rx", "Tx": "tx"}.get(self.dir_combo.currentText())
        types = (
            frozenset() if self.type_combo.currentIndex() == 0 else {self.type_combo.currentText()}
        )
        frames = TraceFilter(
            ids=ids.ids,
            ranges=ids.ranges,
            masks=ids.masks,
            exclude_ids=ids.exclude_ids,
            direction=direction,
            types=frozenset(types),
        )
        protocols = (
            frozenset()
            if self.proto_combo.currentIndex() == 0
            else {self.proto_combo.currentText()}
        )
        self.model.set_filter(
            ViewFilter(frames, frozenset(protocols), self.search_edit.text().strip())
        )
        self._update_status()

    def open_file(self, path: str | Path, *, display_name: str | None = None) -> None:
        """Load a log file on a worker thread; frames appear as batches arrive, the progress
        bar advances and Cancel stops it. `file_loaded(name, frames)` when done."""
        path = Path(path)
        name = display_name or path.name
        if display_name is None:
            self.log_file_opened.emit(str(path))
        self._abort_io()
        self.model.clear()
        self.messages_model.reset()
        self.status.setText(f"Opening {name}…")
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        cancel = self._io_cancel

        def progress(_frames: int, fraction: float) -> None:
            self._put_io(("progress", fraction), cancel)

        def work() -> None:
            total = 0
            try:
                for batch in read_log(
                    path,
                    channel_names=self.store.channel_names,
                    cancel=cancel,
                    progress=progress,
                    batch_frames=OPEN_BATCH_FRAMES,
                ):
                    total += len(batch)
                    self._put_io(("batch", batch), cancel)
                self._put_io(("loaded", (name, total)), cancel)
            except FotaError as exc:
                self._put_io(("error", str(exc)), cancel)

        self._start_io(work)

    def open_bytes(self, name: str, data: bytes, fmt: str = "blf") -> None:
        """Open a log held in memory (e.g. a flash job's session bus log from the workspace
        blob store) like a file: background load with progress. `fmt` is a FORMATS suffix."""
        suffix = "." + fmt.lower().lstrip(".")
        if suffix not in FORMATS:
            raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(FORMATS)}")
        self._abort_io()
        self._remove_temp_files()  # of an earlier log (a running worker only reads it)
        folder = Path(tempfile.mkdtemp(prefix="fota-trace-"))
        path = folder / f"buslog{suffix}"
        path.write_bytes(data)
        self._temp_files.append(path)
        self.open_file(path, display_name=name)

    def open_flash_record(self, ws, record_id: int) -> bool:
        """Open the session bus log of flash record `record_id` of workspace `ws` (one click
        from the update-record views); False (and a status message) when it has none."""
        from fota_studio.engine.records import load_buslog, load_flash_record

        try:
            record = load_flash_record(ws, record_id)
            data = load_buslog(ws, record)
        except FotaError as exc:
            self.status.setText(str(exc))
            return False
        if not data:
            self.status.setText(f"Flash record {record_id} has no bus log")
            return False
        self.open_bytes(f"flash record {record_id} bus log", data, "blf")
        return True

    def cancel_io(self) -> None:
        """Cancel a running open (the frames already loaded stay) or save (nothing is written;
        a file that was there keeps its old content)."""
        saving = self._io_saving
        running = self._abort_io()
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        if running and saving is not None:
            self.status.setText(f"Save cancelled; {saving.name} was not written")
        elif running:
            self.status.setText(f"Cancelled; {len(self.store):,} frames loaded")
        self._remove_temp_files()

    def _abort_io(self) -> bool:
        """Tell running file workers to stop (their queued items are ignored from now on);
        True when one was running."""
        running = self._io_active
        self._io_active = False
        self._io_saving = None
        self._io_cancel.set()
        self._io_cancel = threading.Event()
        return running

    def _remove_temp_files(self) -> None:
        for path in self._temp_files:
            shutil.rmtree(path.parent, ignore_errors=True)
        self._temp_files.clear()

    def load_workspace(self, ws) -> int:
        """Follow the ISO-TP pairs (application and bootloader), DID names and heartbeat IDs of
        every EA in workspace `ws` (infra.workspace.Workspace); returns the number of pairs
        added."""
        from fota_studio.infra.ea_store import EaStore

        store = EaStore(ws)
        pairs: list[tuple[int, int]] = []
        for summary in store.list():
            try:
                ea = store.get(summary.name)
            except FotaError as exc:
                log.warning("trace: EA %s skipped: %s", summary.name, exc)
                continue
            pairs.extend(isotp_pairs_of(ea))
            for ecu in ea.ecus:
                for did in ecu.uds.dids:
                    self.decoder.did_names.setdefault(did.did, did.name)
                hb = ecu.connection.heartbeat_id
                if hb is not None:
                    # An 11-bit-sized ID of a 29-bit ECU may come either way: name both.
                    for extended in {hb > 0x7FF, ecu.connection.id_bits == 29}:
                        self.decoder.add_id_label(hb, extended, f"{ecu.name} heartbeat")
        self.add_isotp_pairs(pairs)
        return len(pairs)

    def clear(self) -> None:
        """Forget every frame and message (capture continues)."""
        self.model.clear()
        self.messages_model.reset()

    def save_file(
        self, path: str | Path, *, filtered: bool = False, allow_loss: bool | None = None
    ) -> bool:
        """Save the whole trace or the filtered rows on a worker thread (snapshot first).

        When the chosen format cannot hold every frame (TRC: error frames; CSV: FD frames,
        direction, channels …), the user is asked first (`confirm_loss`, replaceable in tests)
        unless `allow_loss` says it; declining saves nothing. Returns False when not started.
        """
        path = Path(path)
        seqs = (
            self.model.visible_seqs()
            if filtered
            else np.arange(self.store.first_seq, self.store.end_seq, dtype=np.int64)
        )
        snapshot = self.store.batch(seqs)  # vectorised copy: the store may trim meanwhile
        try:
            plan = scan_batch_loss(path, snapshot)
        except FotaError as exc:
            self.status.setText(str(exc))
            return False
        if not plan.lossless:
            if allow_loss is None:
                allow_loss = self.confirm_loss(plan)
            if not allow_loss:
                self.status.setText(f"Not saved: {path.name} {plan.loss_text()}")
                return False
        self._abort_io()  # one file job at a time (an open in progress stops here)
        cancel = self._io_cancel
        total = max(1, len(snapshot))

        def progress(count: int) -> None:
            self._put_io(("progress", count / total), cancel)

        def work() -> None:
            try:
                report = write_log(
                    path,
                    snapshot.messages(self.store.channel_names),
                    progress=progress,
                    cancel=cancel,
                    allow_loss=bool(allow_loss),
                )
                self._put_io(("saved", (str(path), report)), cancel)
            except FotaError as exc:
                self._put_io(("error", str(exc)), cancel)

        self.status.setText(f"Saving {len(snapshot):,} frames to {path.name}…")
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self._io_saving = path
        self._start_io(work)
        return True

    def confirm_loss(self, plan: WriteReport) -> bool:
        """Ask before saving into a format that cannot hold every frame (tests replace it)."""
        answer = QMessageBox.question(
            self,
            "Format cannot hold every frame",
            f"{FORMATS[plan.path.suffix.lower()]} {plan.loss_text()}.\n\n"
            f"Save {plan.written:,} of {plan.total:,} frames anyway? Choose BLF, ASC or MF4 to "
            "keep everything.",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Save

    def add_isotp_pairs(self, pairs: list[tuple[int, int]]) -> None:
        """Follow ISO-TP ID pairs (request, response), e.g. every ECU of the loaded EA."""
        for request_id, response_id in pairs:
            self.decoder.add_isotp_pair(request_id, response_id)
        self.model.invalidate_decoding()
        self.messages_model.rebuild()

    def send(self, name: str, msg: can.Message) -> None:
        """Send a frame on a watched channel; it shows as Tx."""
        self.capture.send(name, msg)

    def stop_periodic(self) -> None:
        """Stop every periodic transmission."""
        for timer in self._periodic.values():
            timer.stop()
            timer.deleteLater()
        self._periodic.clear()

    # -- timer ------------------------------------------------------------------------------
    def _on_drain_timer_timeout(self) -> None:
        sb = self.view.verticalScrollBar()
        at_bottom = sb.value() >= sb.maximum() - 1
        now = time.monotonic()
        # Drain every tick (staging stays small), but insert into the view and follow at most
        # every VIEW_INTERVAL_S: each insert relayouts and repaints the whole viewport (~8 ms of
        # Python model calls that compete for the GIL with the Notifier threads; the live stall
        # measured by bench/trace.py), and 10 Hz is as fast as anyone reads.
        show = now - self._last_view >= VIEW_INTERVAL_S
        batch = self.capture.drain()
        if len(batch):
            self.model.ingest(batch, show=False)
        self._drain_io_queue()
        if show:
            self._last_view = now
            self.model.show_new()
            if self.follow_check.isChecked() and at_bottom and not self.model.paused:
                self.view.scrollToBottom()
        if self.messages_model.backlog and self.tabs.currentWidget() is self.messages_view:
            self.messages_model.refresh()  # catching up, one chunk per tick
        if self.plots is not None and now - self._last_plot >= PLOT_INTERVAL_S:
            self._last_plot = now
            if self.tabs.currentWidget() is self.plots:
                self._update_plots()
        if now - self._last_stats >= STATS_INTERVAL_S:
            self._rate_fps = (self.store.end_seq - self._last_stats_seq) / (now - self._last_stats)
            self._last_stats, self._last_stats_seq = now, self.store.end_seq
            self._refresh_side_views()
            self._update_status()

    def _refresh_side_views(self, force: bool = False) -> None:
        current = self.tabs.currentWidget()
        if current is self.byid_view:
            self.byid_model.refresh()
        elif current is self.messages_view:
            self.messages_model.refresh()
        elif self.plots is not None and (current is self.plots or force):
            self._update_plots()

    def _update_plots(self) -> None:
        assert self.plots is not None
        for i, name in enumerate(self.store.channel_names):
            self.plots.bitrates_bps[i] = self._bitrates.get(name, 500_000)
        self.plots.update_plots()

    def _on_search_finished(self, _rows: int) -> None:
        self._update_status()

    def _update_status(self) -> None:
        channels = ", ".join(self.capture.channels) or "no channel"
        dropped = self.store.dropped + self.capture.staging_dropped
        text = (
            f"{channels} | {len(self.store):,} frames | {self._rate_fps:,.0f} frames/s"
            f" | dropped {dropped:,}"
        )
        if self.model.paused:
            text += f" | PAUSED: {self.model.pending_rows():,} new frames"
        if self.model.searching:
            text += f" | searching the decoded text… {self.model.rowCount():,} new shown so far"
        elif not self.model.view_filter.is_empty():
            text += f" | filter: {self.model.rowCount():,} shown"
        if self.capture.recording:
            text += " | REC"
        lost_messages = self.messages_model.skipped + self.messages_model.tracker.forgotten
        if lost_messages:
            text += f" | messages view: {lost_messages:,} not decoded/kept"
        self.status.setText(text)

    # -- worker threads ---------------------------------------------------------------------
    def _start_io(self, work) -> None:
        self._io_active = True  # until its "loaded"/"saved"/"error" item is handled
        self._io_threads = [t for t in self._io_threads if t.is_alive()]
        thread = threading.Thread(target=work, name="fota-trace-io", daemon=True)
        self._io_threads.append(thread)
        thread.start()

    def _put_io(self, item: tuple[str, object], cancel: threading.Event) -> None:
        """Worker side: hand an item to the GUI, waiting while the queue is full (backpressure).
        Items carry the job's cancel event so the GUI ignores those of a cancelled job."""
        while not cancel.is_set():
            try:
                self._io_queue.put((item[0], item[1], cancel), timeout=0.05)
                return
            except queue.Full:
                continue

    def _drain_io_queue(self, discard: bool = False) -> None:
        # At most two batches per tick keeps each tick short while a big file streams in.
        for _ in range(2 if not discard else 1_000):
            try:
                kind, payload, job_cancel = self._io_queue.get_nowait()
            except queue.Empty:
                return
            if discard or job_cancel.is_set():
                continue
            if kind == "batch":
                assert isinstance(payload, FrameBatch)
                self.model.ingest(payload)
            elif kind == "progress":
                self.progress.setValue(int(1000 * float(payload)))  # type: ignore[arg-type]
            elif kind == "loaded":
                self._io_active = False
                name, total = payload  # type: ignore[misc]
                self.progress.setValue(1000)
                self.progress.setVisible(False)
                self.cancel_button.setVisible(False)
                self._remove_temp_files()
                self.messages_model.refresh()
                self.status.setText(f"Loaded {total:,} frames from {name}")
                self.file_loaded.emit(name, total)
            elif kind == "saved":
                self._io_active = False
                self._io_saving = None
                self.progress.setVisible(False)
                self.cancel_button.setVisible(False)
                path, report = payload  # type: ignore[misc]
                text = report.summary().replace("wrote", "Saved", 1)
                self.status.setText(f"{text} to {Path(path).name}")
                self.file_saved.emit(path, report.written)
            elif kind == "error":
                self._io_active = False
                self._io_saving = None
                self.progress.setVisible(False)
                self.cancel_button.setVisible(False)
                self._remove_temp_files()
                self.status.setText(str(payload))
                log.warning("trace file: %s", payload)

    # -- details ----------------------------------------------------------------------------
    def _on_selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        seq = self.model.seq_at(indexes[0].row())
        self.details.setPlainText(self.details_text(seq))

    def _on_messages_selection_changed(
        self, selected: QItemSelection, _deselected: QItemSelection
    ) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        line = self.messages_model.line(indexes[0].row())
        seqs = [s for s in line.frame_seqs if s >= self.store.first_seq]
        text = [f"{line.text}", f"{len(line.frame_seqs)} frames"]
        if seqs:
            text.append("")
            text.append(self.details_text(seqs[0]))
        else:
            text.append("(its frames were dropped from the store)")
        self.details.setPlainText("\n".join(text))

    def show_frame(self, seq: int) -> bool:
        """Switch to the frames table and select frame `seq` (False when not shown)."""
        row = self.model.row_of_seq(seq)
        if row is None:
            return False
        self.tabs.setCurrentWidget(self.view)
        self.view.selectRow(row)
        self.view.scrollTo(self.model.index(row, 0))
        return True

    def details_text(self, seq: int) -> str:
        """Bytes, decoding and the ISO-TP message / SDO transfer a frame belongs to."""
        rec = self.store.record(seq)
        ext = bool(rec.flags & FLAG_EXTENDED)
        lines = [
            f"Frame #{seq}  t={rec.timestamp:.6f}  {'Tx' if rec.flags & FLAG_TX else 'Rx'}",
            f"ID 0x{rec.arbitration_id:X} ({'29' if ext else '11'}-bit)  len {rec.length}",
            "Bytes: " + rec.data.hex(" ").upper(),
            "Decoded: " + self.model.decoded(seq),
        ]
        lo = max(self.store.first_seq, seq - DETAILS_WINDOW_FRAMES)
        hi = min(self.store.end_seq, seq + DETAILS_WINDOW_FRAMES)
        protocol = self.decoder.protocol(rec.arbitration_id, ext, rec.data)
        if protocol in ("UDS", "ISO-TP"):
            peer_ids = {rec.arbitration_id, *self._peers(rec.arbitration_id, ext)}
            seqs = self.store.filter(TraceFilter(ids=tuple(peer_ids)), lo, hi)
            frames = [
                TpFrame(r.seq, r.timestamp, r.arbitration_id, r.data)
                for r in self.store.records(seqs)
            ]
            for msg in self.decoder.reassemble(frames):
                if seq in msg.frame_seqs:
                    lines.append(
                        f"ISO-TP message 0x{msg.can_id:X}, {len(msg.payload)} bytes, "
                        f"frames #{msg.first_seq}..#{msg.last_seq}"
                    )
                    lines.append("  " + self.decoder.describe_message(msg))
                    lines.append("  " + msg.payload[:256].hex(" ").upper())
                    break
        elif protocol == "SDO":
            node = rec.arbitration_id & 0x7F
            seqs = self.store.filter(TraceFilter(ids=(0x580 + node, 0x600 + node)), lo, seq + 1)
            frames = [
                TpFrame(r.seq, r.timestamp, r.arbitration_id, r.data)
                for r in self.store.records(seqs)
            ]
            sdo = self.decoder.sdo_lines(frames)
            if sdo:
                lines.append("SDO context: " + sdo[-1].text)
        return "\n".join(lines)

    def _peers(self, can_id: int, extended: bool) -> list[int]:
        peers = [b if a == can_id else a for a, b in self.decoder.isotp_pairs if can_id in (a, b)]
        if extended and (can_id >> 16) in (0x18DA, 0x18DB):
            peers.append(0x18DA0000 | ((can_id & 0xFF) << 8) | ((can_id >> 8) & 0xFF))
        elif 0x7E0 <= can_id <= 0x7E7:
            peers.append(can_id + 8)
        elif 0x7E8 <= can_id <= 0x7EF:
            peers.append(can_id - 8)
        return peers

    # -- buttons ----------------------------------------------------------------------------
    def _on_connect_button_clicked(self) -> None:
        from fota_studio.ui.dialogs.connection_dialog import ConnectionDialog

        dialog = ConnectionDialog(self)
        if dialog.exec() != ConnectionDialog.DialogCode.Accepted:
            return
        try:
            self.open_capture(dialog.settings(), dialog.display_name())
        except FotaError as exc:
            self.capture_failed.emit(str(exc))
            from fota_studio.ui.dialogs.error_dialog import show_error

            show_error(
                self,
                "Cannot open CAN channel",
                exc,
                what_to_do="Check the adapter and driver with CAN ▸ Connection doctor….",
            )

    def _on_open_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open CAN log", "", FILE_FILTER)
        if path:
            self.open_file(path)

    def _on_save_clicked(self, filtered: bool) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save CAN log", "trace.blf", FILE_FILTER)
        if path:
            self.save_file(path, filtered=filtered)

    def _on_record_button_toggled(self, on: bool) -> None:
        if not on:
            self.capture.stop_recording()
            self._update_status()
            return
        path, _ = QFileDialog.getSaveFileName(self, "Record to", "record.blf", FILE_FILTER)
        if not path:
            self.record_button.setChecked(False)
            return
        self.start_recording(path, self.rotate_spin.value() * 1024 * 1024)

    def start_recording(self, path: str | Path, max_bytes: int = 100 * 1024 * 1024) -> None:
        """Record live traffic of every channel to `path`, rotating files at `max_bytes`
        (python-can's SizedRotatingLogger numbers the files)."""
        try:
            self.capture.start_recording(RotatingRecorder(path, max_bytes))
        except FotaError as exc:
            self.status.setText(str(exc))
            self.record_button.setChecked(False)
        self._update_status()

    def _on_load_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load EDS or DBC", "", "Descriptions (*.eds *.dcf *.dbc)"
        )
        if path:
            self.load_description(path)

    def load_description(self, path: str | Path) -> None:
        """Load an EDS/DCF (CANopen names) or DBC (signals) into the decoder."""
        path = Path(path)
        try:
            if path.suffix.lower() == ".dbc":
                self.decoder.load_dbc(path)
            else:
                self.decoder.load_eds(path)
        except Exception as exc:
            self.status.setText(f"{path.name}: {exc}")
            return
        self.model.invalidate_decoding()
        if self.plots is not None:
            self.plots.refresh_signals()

    def _on_tx_send_clicked(self) -> None:
        if not self._transmit_allowed:
            self.status.setText("Transmit: not allowed in operator mode")
            return
        name = self.tx_channel.currentText()
        if not name:
            self.status.setText("Transmit: connect a channel first")
            return
        try:
            msg = parse_candump_frame(self.tx_frame.text())
        except ValueError as exc:
            self.status.setText(f"Transmit: {exc}")
            return
        period = self.tx_period.value()
        if period == 0:
            self._send_safe(name, msg)
            return
        timer = QTimer(self)
        timer.setInterval(period)
        timer.timeout.connect(lambda: self._send_safe(name, msg))
        timer.start()
        self._periodic[f"{name}:{len(self._periodic)}"] = timer

    def _send_safe(self, name: str, msg: can.Message) -> None:
        try:
            self.send(name, msg)
        except (can.CanError, KeyError) as exc:
            self.status.setText(f"Transmit on {name} failed: {exc}")

    def _channels_changed(self) -> None:
        self.tx_channel.clear()
        self.tx_channel.addItems(self.capture.channels)
        self._update_status()

    # -- drag & drop ------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if any(Path(u.toLocalFile()).suffix.lower() in FORMATS for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in FORMATS:
                self.open_file(path)
                event.acceptProposedAction()
                return

    def closeEvent(self, event) -> None:
        self.close_all()
        super().closeEvent(event)


GC_THRESHOLDS = (50_000, 20, 100)
"""Cyclic-GC thresholds for live capture: python-can allocates a Message per frame (20k/s; the
capture converts and drops each one on the Notifier thread), so the default gen-0 threshold
(700) runs the collector ~30 times a second, and its full collections showed up as 100-130 ms
GUI stalls in bench/trace.py. With these settings no collection ran during a 15 s live run."""


def configure_gc_for_live_capture() -> None:
    """Freeze start-up objects out of the cyclic GC and raise its thresholds (process-wide:
    call once from app.py after the main window is built, GUI thread)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def parse_candump_frame(text: str) -> can.Message:
    """`123#11223344` (11-bit), `18DA11F1#…` (29-bit: 8 hex digits), `123#R` remote,
    `123##1AABB…` CAN FD with BRS flag nibble. Raises ValueError."""
    text = text.strip()
    if "#" not in text:
        raise ValueError("use ID#DATA, e.g. 7DF#0201050000000000")
    id_text, rest = text.split("#", 1)
    can_id = int(id_text, 16)
    extended = len(id_text) > 3 or can_id > 0x7FF
    if rest.startswith("#"):
        flags = int(rest[1], 16)
        data = bytes.fromhex(rest[2:])
        return can.Message(
            arbitration_id=can_id,
            is_extended_id=extended,
            data=data,
            is_fd=True,
            bitrate_switch=bool(flags & 1),
        )
    if rest.upper().startswith("R"):
        dlc = int(rest[1:] or "0")
        return can.Message(
            arbitration_id=can_id, is_extended_id=extended, is_remote_frame=True, dlc=dlc
        )
    data = bytes.fromhex(rest.replace(".", ""))
    if len(data) > 8:
        raise ValueError("more than 8 bytes: use ID##<flags>DATA for CAN FD")
    return can.Message(arbitration_id=can_id, is_extended_id=extended, data=data)
