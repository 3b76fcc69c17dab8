"""The CAN trace panel: live capture and opened log files as documents, filters, I/O, transmit.

`TracePanel` shows one tab per trace document (`trace_document.TraceDocument`): "Live" (the
capture, never discarded implicitly) and one per opened log file (closable). The live
document's store is fed below the UI: Notifier threads write frames into the capture's staging
columns, and a 50 ms QTimer has `TraceCapture.feed_store()` append them to the live store
(trimmed there, at a capacity the status line states), then tells the document's views what
changed (`rows_dropped`, `rows_appended`; inserts at most every 100 ms, SavvyCAN's pattern).
Only live frames count as traffic (frames/s, dropped); a file's frames never do. Clear
forgets frames without counting them as dropped.

The filter bar applies to the current document, in every tab (Frames, Messages, By ID).
Log files are opened and saved through `ui/background.py` (`fota-ui-io`): the file is read
into its own store, and only a complete read becomes a document; an unreadable file shows a
dialog (`show_error`, replaceable in tests) and changes nothing. The Transmit tab (live only)
holds a transmit list (`trace_transmit.TransmitList`) and replay; operator mode hides it.
`open_bytes` / `open_flash_record` open a flash job's session bus log from the workspace.

Tx: frames the application sends show as Tx when python-can reports them with `is_rx=False`
(buses opened with `receive_own_messages=True`) or when sent through `TracePanel.send` /
`TraceCapture.record_tx` (the engine's Tx hook). GUI thread only.

Why ~900 lines: this module is the one place that wires the live capture, the documents, the
filter bar, the file jobs and the transmit list together (and keeps the names the workbench
and tests use); each piece with a job of its own lives beside it (`trace_document`,
`trace_files`, `trace_transmit`, `trace_messages`, `trace_plots`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, overload

import can
import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import CancelledError, FotaError
from fota_studio.core.resources import resource_path
from fota_studio.engine.trace_capture import CaptureFault, TraceCapture, TraceReplay
from fota_studio.engine.trace_search import TraceQuery
from fota_studio.engine.trace_store import (
    DEFAULT_CAPACITY_FRAMES,
    TraceFilter,
    TraceStore,
    parse_id_filter,
)
from fota_studio.infra.tracefile import (
    FORMATS,
    RotatingRecorder,
    WriteReport,
    scan_batch_loss,
)
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.decode import PROTOCOLS, Decoder, isotp_pairs_of
from fota_studio.protocols.decode.frames import batch_messages
from fota_studio.ui.models.trace_model import TIME_MODES, ByIdModel, TraceModel, ViewFilter
from fota_studio.ui.panels.trace_document import TraceDocument
from fota_studio.ui.panels.trace_files import FileJobs, open_work, save_work
from fota_studio.ui.panels.trace_messages import MessagesModel
from fota_studio.ui.panels.trace_transmit import TransmitList, parse_candump_frame
from fota_studio.ui.widgets.timers import periodic_timer
from fota_studio.ui.widgets.trace_view import TraceTableView

if TYPE_CHECKING:
    from PySide6.QtWidgets import QPlainTextEdit, QTableView

    from fota_studio.infra.workspace import Workspace
    from fota_studio.ui.panels.trace_plots import TracePlots

__all__ = [
    "TracePanel",
    "ViewFilter",
    "configure_gc_for_live_capture",
    "parse_candump_frame",
]

log = logging.getLogger(__name__)


_T = TypeVar("_T")


class _Forward(Generic[_T]):
    """A read-only attribute that reads `attribute` (default: its own name) of the object in
    the instance's attribute `holder`: the panel's names for its live document's parts."""

    def __init__(self, holder: str, doc: str, attribute: str = "") -> None:
        self._holder = holder
        self._attribute = attribute
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = self._attribute or name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> _Forward[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...
    def __get__(self, instance: object, owner: type | None = None) -> _T | _Forward[_T]:
        if instance is None:  # read on the class (help(), inspect): the descriptor, as a property
            return self
        value: _T = getattr(getattr(instance, self._holder), self._attribute)
        return value

    def __set__(self, instance: object, value: object) -> None:
        raise AttributeError(f"{self._attribute} is read-only (like a property without setter)")


DRAIN_INTERVAL_MS = 50
STATS_INTERVAL_S = 1.0
PLOT_INTERVAL_S = 0.25
VIEW_INTERVAL_S = 0.1
DEFAULT_ROTATE_MB = 100
DEFAULT_EDS = resource_path("fota_tcu.eds")
FILE_FILTER = "CAN logs (" + " ".join(f"*{s}" for s in FORMATS) + ")"
LIVE_TAB = "Live"


def _show_error_dialog(parent: QWidget, title: str, text: str) -> None:
    """The default `TracePanel.show_error`: a modal warning box."""
    QMessageBox.warning(parent, title, text)


class TracePanel(QWidget):
    """Trace panel with live and file documents (see module docstring)."""

    file_loaded = Signal(str, int)  # name, frames
    log_file_opened = Signal(str)  # full path of a log file the user opened (recent files)
    file_saved = Signal(str, int)
    capture_failed = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        capacity_frames: int = DEFAULT_CAPACITY_FRAMES,
        workspace: Workspace | None = None,
        isotp_pairs: list[tuple[int, int]] | None = None,
    ) -> None:
        """`capacity_frames`: frames the live capture keeps (the newest; stated in the status
        line); `workspace` (infra.workspace.Workspace): follow the ISO-TP pairs and DID names
        of every EA in it; `isotp_pairs`: (request, response) ID pairs to follow as well."""
        super().__init__(parent)
        self.decoder = Decoder(isotp_pairs or ())
        if DEFAULT_EDS.exists():  # names for the TCU's FOTA objects (0x5FF3) out of the box
            try:
                self.decoder.load_eds(DEFAULT_EDS)
            except Exception:
                log.warning("cannot load %s", DEFAULT_EDS, exc_info=True)
        self.live = TraceDocument(
            TraceStore(capacity_frames), self.decoder, name=LIVE_TAB, live=True
        )
        self.capture = TraceCapture(self.live.store)
        self.show_error: Callable[[QWidget, str, str], None] = _show_error_dialog
        """Shows a failure the user must see (tests replace it)."""
        self._bitrates: dict[str, int] = {}
        self._last_stats = time.monotonic()
        self._last_stats_seq = self.live.store.end_seq
        self._rate_fps = 0.0
        self._last_plot = time.monotonic()
        self._last_view = 0.0
        self._replay: TraceReplay | None = None
        self._transmit_allowed = True
        self._build_ui()
        if workspace is not None:
            self.load_workspace(workspace)
        self.setAcceptDrops(True)
        self._timer = periodic_timer(self, DRAIN_INTERVAL_MS, self._on_drain_timer_timeout)

    # -- the live document (what the engine's channels feed) ------------------------------------
    # Its parts under the names tests and the workbench use.
    store: _Forward[TraceStore] = _Forward("live", "The live capture's store.")
    model: _Forward[TraceModel] = _Forward("live", "The live capture's frame table model.")
    byid_model: _Forward[ByIdModel] = _Forward("live", "The live capture's By ID model.")
    messages_model: _Forward[MessagesModel] = _Forward("live", "The live capture's Messages model.")
    view: _Forward[TraceTableView] = _Forward("live", "The live capture's frame table.")
    messages_view: _Forward[QTableView] = _Forward("live", "The live capture's Messages table.")
    byid_view: _Forward[QTableView] = _Forward("live", "The live capture's By ID table.")
    plots: _Forward[TracePlots | None] = _Forward(
        "live", "The live capture's plots (None without pyqtgraph)."
    )
    tabs: _Forward[QTabWidget] = _Forward(
        "live", "The live document's tabs (Frames, Messages, By ID, Plots, Transmit)."
    )
    details: _Forward[QPlainTextEdit] = _Forward("live", "The live document's details pane.")

    @property
    def documents(self) -> list[TraceDocument]:
        """Every open document, the live one first."""
        widgets = (self.doc_tabs.widget(i) for i in range(self.doc_tabs.count()))
        return [w for w in widgets if isinstance(w, TraceDocument)]

    def current_document(self) -> TraceDocument:
        """The document whose tab is shown."""
        doc = self.doc_tabs.currentWidget()
        return doc if isinstance(doc, TraceDocument) else self.live

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
        self.follow_check.toggled.connect(self._on_follow_check_toggled)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget the frames of the live capture (capture continues)")
        self.clear_button.clicked.connect(self.clear)
        self.time_combo = QComboBox()
        self.time_combo.addItems(TIME_MODES)
        self.time_combo.currentTextChanged.connect(self._on_time_combo_changed)
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open a log file in its own tab beside the live capture")
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
        self.search_edit.setPlaceholderText("search decoded text (every frame)")
        self.id_filter.editingFinished.connect(self.apply_filter)
        self.search_edit.editingFinished.connect(self.apply_filter)
        for combo in (self.dir_combo, self.type_combo, self.proto_combo):
            combo.currentIndexChanged.connect(self.apply_filter)
        filters = QHBoxLayout()
        for filter_widget in (
            QLabel("Filter"),
            self.id_filter,
            self.dir_combo,
            self.type_combo,
            self.proto_combo,
            self.search_edit,
        ):
            filters.addWidget(filter_widget)

        self.transmit_tab = TransmitList(self._send_safe, self.status_message)
        self.transmit_tab.replay_button.toggled.connect(self._on_replay_button_toggled)
        self.live.tabs.addTab(self.transmit_tab, "Transmit")
        self._connect_document(self.live)

        self.doc_tabs = QTabWidget()
        self.doc_tabs.setTabsClosable(True)
        self.doc_tabs.setDocumentMode(True)
        self.doc_tabs.addTab(self.live, LIVE_TAB)
        self.doc_tabs.tabBar().setTabButton(
            0, self.doc_tabs.tabBar().ButtonPosition.RightSide, None
        )
        self.doc_tabs.tabCloseRequested.connect(self._on_doc_tabs_close_requested)
        self.doc_tabs.currentChanged.connect(self._on_doc_tabs_current_changed)

        self.status = QLabel("No channel")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p %")
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_io)
        self.files = FileJobs(self.progress, self.cancel_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(self.doc_tabs, 1)
        layout.addLayout(bottom)

    # Compatibility names for the transmit widgets (tests, workbench).
    tx_channel: _Forward[QComboBox] = _Forward(
        "transmit_tab", "The transmit list's channel box.", "channel"
    )
    replay_button: _Forward[QPushButton] = _Forward(
        "transmit_tab", "Replay the shown rows of the live capture."
    )
    replay_speed: _Forward[QComboBox] = _Forward("transmit_tab", "Replay speed factor.")
    replay_loop: _Forward[QCheckBox] = _Forward("transmit_tab", "Replay in a loop.")

    def _connect_document(self, doc: TraceDocument) -> None:
        doc.model.search_finished.connect(lambda _n: self._on_search_finished(doc))
        doc.model.query_progress.connect(lambda f: self._on_query_progress(doc, f))

    def status_message(self, text: str) -> None:
        """Show a one-line message in the status line (replaced by the next statistics)."""
        self.status.setText(text)

    def set_transmit_allowed(self, allowed: bool) -> None:
        """Operator mode hides raw CAN transmit and replay (`AccessControl` decides; issue 14)
        and stops any periodic transmission or replay still running."""
        self._transmit_allowed = allowed
        self.tabs.setTabVisible(self.tabs.indexOf(self.transmit_tab), allowed)
        if not allowed:
            self.stop_periodic()
            self.stop_replay()

    def start_replay(self, name: str, *, speed: float = 1.0, loop: bool = False) -> TraceReplay:
        """Replay the rows currently shown in the live capture (filter applied) onto channel
        `name` as Tx."""
        if not self._transmit_allowed:
            from fota_studio.infra.access import AccessDeniedError, Action

            raise AccessDeniedError(Action.RAW_TRANSMIT)
        self.stop_replay()
        snapshot = self.store.batch(self.model.visible_seqs())
        messages = list(batch_messages(snapshot))
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
        """Stop every capture, periodic transmit, replay, recording, query and file job it
        started (file documents stay open)."""
        for doc in self.documents:
            doc.model.cancel_search()
        self.stop_periodic()
        self.stop_replay()
        if self.capture.recording:
            self.capture.stop_recording()
            self.record_button.blockSignals(True)
            self.record_button.setChecked(False)
            self.record_button.blockSignals(False)
        self.capture.close_all()
        self.files.abort(wait=True)
        self.files.remove_temp_files()
        self._on_drain_timer_timeout()
        self._channels_changed()

    def set_paused(self, paused: bool) -> None:
        """Freeze / unfreeze the live view; capture continues into the store meanwhile."""
        self.model.set_paused(paused)
        if self.pause_button.isChecked() != paused:
            self.pause_button.setChecked(paused)
        self._update_status()

    def query(self) -> TraceQuery | None:
        """The filter widgets as a query (None, with the reason in the status line, when the
        ID filter does not parse)."""
        try:
            ids = parse_id_filter(self.id_filter.text())
        except ValueError as exc:
            self.status.setText(f"Filter: {exc}")
            return None
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
        return TraceQuery(frames, frozenset(protocols), self.search_edit.text().strip())

    def apply_filter(self) -> None:
        """Apply the filter widgets to every document, in every tab."""
        query = self.query()
        if query is None:
            return
        for doc in self.documents:
            doc.apply_query(query)
        self._update_status()

    def open_file(
        self,
        path: str | Path,
        *,
        display_name: str | None = None,
        produce: Callable[[], bytes] | None = None,
    ) -> None:
        """Read a log file on a background worker into a document of its own; the progress
        bar advances and Cancel stops it. On success the file opens in a new tab beside the
        live capture and `file_loaded(name, frames)` follows; an unreadable file shows a dialog
        and changes nothing."""
        path = Path(path)
        name = display_name or path.name
        store = TraceStore(capacity_frames=None)

        def loaded(total: object) -> None:
            assert isinstance(total, int)
            self._add_document(store, name, path)
            if display_name is None:  # a file of the user's (recent files), not a temp copy
                self.log_file_opened.emit(str(path))
            self.status.setText(f"Opened {total:,} frames from {name}")
            self.file_loaded.emit(name, total)

        def failed(exc: BaseException) -> None:
            if isinstance(exc, CancelledError):
                self.status.setText(f"Cancelled; {name} was not opened")
                return
            self.status.setText(f"Not opened: {exc}")
            log.warning("trace file: %s", exc)
            self.show_error(self, f"Cannot open {name}", f"{exc}\n\nThe live capture is unchanged.")

        self.files.start(open_work(path, store, produce), loaded, failed, name=f"open {name}")
        self.status.setText(f"Opening {name}…")

    def _add_document(self, store: TraceStore, name: str, path: Path | None) -> TraceDocument:
        doc = TraceDocument(store, self.decoder, name=name, live=False)
        doc.model.rows_appended(len(store))
        self._connect_document(doc)
        query = self.query()
        if query is not None and not query.is_empty():
            doc.apply_query(query)
        doc.set_time_mode(self.time_combo.currentText())
        index = self.doc_tabs.addTab(doc, name)
        self.doc_tabs.setTabToolTip(index, str(path) if path is not None else name)
        self.doc_tabs.setCurrentIndex(index)  # its Messages tab decodes when first shown
        return doc

    def close_document(self, doc: TraceDocument) -> None:
        """Close a file document (the live one is never closed)."""
        if doc is self.live:
            return
        doc.model.cancel_search()
        index = self.doc_tabs.indexOf(doc)
        if index >= 0:
            self.doc_tabs.removeTab(index)
        doc.deleteLater()

    def _on_doc_tabs_close_requested(self, index: int) -> None:
        doc = self.doc_tabs.widget(index)
        if isinstance(doc, TraceDocument):
            self.close_document(doc)

    def _on_doc_tabs_current_changed(self, _index: int) -> None:
        self.current_document().refresh_side_views(force=True)
        self._update_status()

    def open_bytes(self, name: str, data: bytes | Callable[[], bytes], fmt: str = "blf") -> None:
        """Open a log held in memory (e.g. a flash job's session bus log from the workspace
        blob store) like a file: background load with progress. `fmt` is a FORMATS suffix.
        `data` may be a function that makes the bytes: it runs on the worker too (a flash
        record's bus log is restored from its image there, never on the GUI thread)."""
        suffix = "." + fmt.lower().lstrip(".")
        if suffix not in FORMATS:
            raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(FORMATS)}")
        self.files.abort()  # a running job may still read the previous temporary copy
        if callable(data):
            path = self.files.temp_copy(None, suffix)
            self.open_file(path, display_name=name, produce=data)
        else:
            self.open_file(self.files.temp_copy(data, suffix), display_name=name)

    def open_flash_record(self, ws: Workspace, record_id: int) -> bool:
        """Open the session bus log of flash record `record_id` of workspace `ws` (one click
        from the update-record views); False (and a status message) when it has none."""
        from fota_studio.engine.records import load_buslog, load_flash_record

        try:
            record = load_flash_record(ws, record_id)
        except FotaError as exc:
            self.status.setText(str(exc))
            return False
        sha = record.buslog_sha256
        if not sha or not ws.blobs.exists(sha):
            missing = "" if not sha else f" (blob {sha[:12]}… is missing from the workspace)"
            self.status.setText(f"Flash record {record_id} has no bus log{missing}")
            return False

        def restored() -> bytes:
            return load_buslog(ws, record) or b""

        self.open_bytes(f"flash record {record_id} bus log", restored, "blf")
        return True

    def cancel_io(self) -> None:
        """Cancel a running open (nothing opens) or save (nothing is written; a file that was
        there keeps its old content)."""
        saving = self.files.saving
        if not self.files.abort():
            return
        if saving is not None:
            self.status.setText(f"Save cancelled; {saving.name} was not written")
        else:
            self.status.setText("Cancelled; the file was not opened")
        self.files.remove_temp_files()

    def wait_io(self, timeout_s: float = 10.0) -> bool:
        """Join the file workers started so far (shutdown and tests); True when all ended."""
        return self.files.wait(timeout_s)

    @property
    def _temp_files(self) -> list[Path]:
        return self.files.temp_files

    def load_workspace(self, ws: Workspace) -> int:
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
        """Forget every frame and message of the live capture (capture continues; the cleared
        frames are not counted as dropped)."""
        self.live.clear()
        self._last_stats_seq = self.store.end_seq
        self._update_status()

    def save_file(
        self, path: str | Path, *, filtered: bool = False, allow_loss: bool | None = None
    ) -> bool:
        """Save the current document (or its filtered rows) on a worker (snapshot first).

        When the chosen format cannot hold every frame (TRC: error frames; CSV: FD frames,
        direction, channels …), the user is asked first (`confirm_loss`, replaceable in tests)
        unless `allow_loss` says it; declining saves nothing. Returns False when not started.
        """
        path = Path(path)
        doc = self.current_document()
        store = doc.store
        seqs = (
            doc.model.visible_seqs()
            if filtered
            else np.arange(store.first_seq, store.end_seq, dtype=np.int64)
        )
        snapshot = store.batch(seqs)  # vectorised copy: the store may trim meanwhile
        names = list(store.channel_names)
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

        def saved(result: object) -> None:
            assert isinstance(result, WriteReport)
            text = result.summary().replace("wrote", "Saved", 1)
            self.status.setText(f"{text} to {path.name}")
            self.file_saved.emit(str(path), result.written)

        def failed(exc: BaseException) -> None:
            if not isinstance(exc, CancelledError):
                self.status.setText(str(exc))
                log.warning("trace file: %s", exc)

        work = save_work(path, snapshot, names, bool(allow_loss))
        self.files.start(work, saved, failed, name=f"save {path.name}", saving=path)
        self.status.setText(f"Saving {len(snapshot):,} frames to {path.name}…")
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
        for doc in self.documents:
            doc.model.invalidate_decoding()
            doc.messages_model.rebuild()

    def send(self, name: str, msg: can.Message) -> None:
        """Send a frame on a watched channel; it shows as Tx."""
        self.capture.send(name, msg)

    def _send_safe(self, name: str, msg: can.Message) -> None:
        if not self._transmit_allowed:
            raise KeyError("transmit is not allowed in operator mode")
        self.send(name, msg)

    def stop_periodic(self) -> None:
        """Stop every periodic transmission of the transmit list."""
        self.transmit_tab.stop_all()

    def show_frame(self, seq: int) -> bool:
        """Select frame `seq` of the live capture in its frames table (False when not shown)."""
        self.doc_tabs.setCurrentWidget(self.live)
        return self.live.show_frame(seq)

    def details_text(self, seq: int) -> str:
        """Bytes, decoding and ISO-TP message / SDO transfer of a live frame."""
        return self.live.details_text(seq)

    # -- timer ------------------------------------------------------------------------------
    def _on_drain_timer_timeout(self) -> None:
        now = time.monotonic()
        # Feed every tick (staging stays small), but insert into the view and follow at most
        # every VIEW_INTERVAL_S: each insert relayouts and repaints the whole viewport (~8 ms of
        # Python model calls that compete for the GIL with the Notifier threads; the live stall
        # measured by bench/trace.py), and 10 Hz is as fast as anyone reads.
        change = self.capture.feed_store()
        self.live.model.rows_dropped(change.dropped)  # gone from the store: remove at once
        if new_faults := self.capture.take_faults():  # an adapter fault streak: say so at once
            self._update_status(new_faults=new_faults)
        if now - self._last_view >= VIEW_INTERVAL_S:
            self._last_view = now
            self.live.model.rows_appended(self.live.model.pending_rows())
            if self.follow_check.isChecked():
                self.live.follow()
        doc = self.current_document()
        doc.catch_up()
        plots = doc.plots_if_built  # the Plots tab is built when first opened
        if plots is not None and now - self._last_plot >= PLOT_INTERVAL_S:
            self._last_plot = now
            if doc.tabs.currentWidget() is plots:
                self._update_plots(doc)
        if now - self._last_stats >= STATS_INTERVAL_S:
            # Only live frames count as traffic (a file's frames never do).
            self._rate_fps = (self.store.end_seq - self._last_stats_seq) / (now - self._last_stats)
            self._last_stats, self._last_stats_seq = now, self.store.end_seq
            doc.refresh_side_views()
            self._update_status()

    def _refresh_side_views(self, force: bool = False) -> None:
        self.current_document().refresh_side_views(force)

    def _update_plots(self, doc: TraceDocument | None = None) -> None:
        doc = doc or self.current_document()
        if doc.plots is None:
            return
        for i, name in enumerate(doc.store.channel_names):
            doc.plots.bitrates_bps[i] = self._bitrates.get(name, 500_000)
        doc.plots.update_plots()

    def _on_search_finished(self, _doc: TraceDocument) -> None:
        self._update_status()

    def _on_query_progress(self, doc: TraceDocument, fraction: float) -> None:
        if doc is self.current_document():
            self._update_status(query_fraction=fraction)

    def _on_follow_check_toggled(self, on: bool) -> None:
        if on:
            self.live.following = True
            self.live.follow()

    def _on_time_combo_changed(self, mode: str) -> None:
        for doc in self.documents:
            doc.set_time_mode(mode)

    def _update_status(
        self,
        query_fraction: float | None = None,
        new_faults: list[CaptureFault] | None = None,
    ) -> None:
        doc = self.current_document()
        if doc is self.live:
            channels = ", ".join(self.capture.channels) or "no channel"
            dropped = self.store.dropped + self.capture.staging_dropped
            text = (
                f"{channels} | {len(self.store):,} frames | {self._rate_fps:,.0f} frames/s"
                f" | dropped {dropped:,}"
            )
            if self.store.capacity_frames is not None:
                text += f" (keeps the newest {self.store.capacity_frames:,})"
            if self.model.paused:
                text += f" | PAUSED: {self.model.pending_rows():,} new frames"
            # A new streak is shown even if a good frame already ended it; an active one stays
            # until the channel's next good frame.
            faults = [*(new_faults or ()), *self.capture.active_faults()]
            faults = list({f.channel: f for f in faults}.values())
            for fault in faults:
                text += f" | ADAPTER FAULT {fault.text()}"
            self.status.setToolTip("\n".join(f"{f.channel}: {f.fault.advice}" for f in faults))
        else:
            store = doc.store
            span = 0.0
            if len(store) > 1:
                span = store.timestamp(store.end_seq - 1) - store.timestamp(store.first_seq)
            text = f"{doc.name} | {len(store):,} frames | {span:,.3f} s"
        if doc.model.searching:
            done = f" {query_fraction * 100:.0f} %" if query_fraction is not None else ""
            text += f" | searching{done}… {doc.model.rowCount():,} new shown so far"
        elif not doc.model.view_filter.is_empty():
            text += f" | filter: {doc.model.rowCount():,} shown"
        if self.capture.recording:
            text += " | REC"
        mm = doc.messages_model
        lost_messages = mm.skipped + mm.tracker.forgotten
        if lost_messages:
            text += f" | messages view: {lost_messages:,} not decoded/kept"
        self.status.setText(text)

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
        for doc in self.documents:
            doc.model.invalidate_decoding()
            if doc.plots_if_built is not None:  # one built later lists the signals itself
                doc.plots_if_built.refresh_signals()

    def _channels_changed(self) -> None:
        self.tx_channel.clear()
        self.tx_channel.addItems(self.capture.channels)
        self._update_status()

    # -- drag & drop ------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if any(Path(u.toLocalFile()).suffix.lower() in FORMATS for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in FORMATS:
                self.open_file(path)
                event.acceptProposedAction()
                return

    def closeEvent(self, event: QCloseEvent) -> None:
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
