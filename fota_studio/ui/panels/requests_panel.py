"""The Update Requests panel: table with filters, step timeline, actions, history and reports.

The table lists every update request (newest first) filtered by machine, ECU and status; the
detail view shows the selected request's record as a timeline (every step with its time, the
Checkpoint 1 decision and who made it, the flash record, the Checkpoint 2 results, the final
status and the hash-chain verdict). Actions: create (machine → ECU → version, with the warnings
to confirm and the blocks that refuse), start, cancel (refused after approval), re-run, open the
record (export HTML/PDF). Starting needs a `RequestService` (engine + optional TCU node) that the
main window provides with `set_service`; the Checkpoint 1 approval dialog opens when a run asks.

GUI thread only. Workflow events reach it through `on_event` (connect EngineBridge.event_received
or DemoRunner.event_received); the table also refreshes on a 1 s timer. Nothing on the GUI thread
is proportional to the workspace's history (issue 21): the timer and the events read only the
requests changed since the last look (`RequestsStore.changed_since`, indexed) and update those
rows in place; the detail view (the record verdict, which re-hashes signatures and a bus log) is
built on a `fota-ui-io` worker through `ui/background.py` from the incremental verdict
(`RequestsStore.cached_verdict`), and shown when it arrives. A full reload happens only when the
user changes a filter or acts on a request.
"""

from __future__ import annotations

import bisect
import html
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import FotaError
from fota_studio.core.update_request import RequestStatus, UpdateRequest
from fota_studio.engine.workflow import (
    ApprovalRequested,
    RequestService,
    WorkflowEvent,
    WorkflowOptions,
    check_new_request,
    create_request,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.ui.background import BackgroundTask, run_in_background
from fota_studio.ui.dialogs.approval_dialog import ApprovalDialog
from fota_studio.ui.dialogs.error_dialog import show_error
from fota_studio.ui.dialogs.parts import ok_cancel_buttons
from fota_studio.ui.report import export_request_report, request_report_html
from fota_studio.ui.trace_link import request_from_href
from fota_studio.ui.widgets.buttons import push_button
from fota_studio.ui.widgets.column_model import ColumnTableModel
from fota_studio.ui.widgets.timers import periodic_timer
from fota_studio.ui.widgets.versions import fill_versions

_log = logging.getLogger(__name__)

REFRESH_MS = 1000
#: Action buttons per row (they wrap onto a second row in a narrow dock).
ACTION_COLUMNS = 3
#: The action buttons in grid order: caption and tooltip.
ACTIONS = (
    ("New request…", "Create an update request: machine, ECU and target version"),
    ("Start", "Run the selected request: Checkpoint 1 (approval), flash, Checkpoint 2"),
    ("Cancel", "Cancel the selected request (refused once the operator approved)"),
    ("Re-run", "Run a failed or cancelled request again as a new attempt"),
    ("Open record / export…", "Show the hash-chained record of the request and export it"),
    ("Bus log in trace", "Open the BLF bus log of this request's flash in the CAN trace"),
)
ALL = "(all)"
COLUMNS = ("#", "Machine", "ECU", "Version", "Status", "Step", "Attempt", "Created", "By")


class RequestsModel(ColumnTableModel):
    """The filtered request list."""

    columns = COLUMNS

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[UpdateRequest] = []

    def set_rows(self, rows: list[UpdateRequest]) -> None:
        """Replace the rows, newest (highest id) first (a full reset: filter changes only)."""
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def row_of(self, request_id: int) -> int | None:
        """The row showing `request_id` (binary search: rows are in descending id order)."""
        i = bisect.bisect_left(self.rows, -request_id, key=lambda r: -r.id)
        return i if i < len(self.rows) and self.rows[i].id == request_id else None

    def put(self, req: UpdateRequest, *, keep: bool) -> None:
        """Show the changed `req` in place (keep=True) or drop it (keep=False: the filter no
        longer matches); one row's signals, never a reset."""
        row = self.row_of(req.id)
        if row is not None and keep:
            self.rows[row] = req
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
        elif row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self.rows[row]
            self.endRemoveRows()
        elif keep:
            at = bisect.bisect_left(self.rows, -req.id, key=lambda r: -r.id)
            self.beginInsertRows(QModelIndex(), at, at)
            self.rows.insert(at, req)
            self.endInsertRows()

    def row_count(self) -> int:
        """The requests shown (after the filter)."""
        return len(self.rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        """Qt override (None for roles we do not serve: "" would draw a check box per cell)."""
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        r = self.rows[index.row()]
        values = (
            str(r.id),
            r.machine,
            r.ecu,
            r.version,
            r.status.value + (f" ({r.outcome})" if r.outcome and r.outcome != "success" else ""),
            r.step,
            str(r.attempt),
            r.created_at[:19].replace("T", " "),
            r.created_by,
        )
        return values[index.column()]


class CreateRequestDialog(QDialog):
    """Pick machine → ECU → version; shows warnings (to confirm) and blocks (refuse)."""

    def __init__(self, ws: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.setWindowTitle("New update request")
        self.machine_combo, self.ecu_combo, self.version_combo = (QComboBox() for _ in range(3))
        self.findings = QLabel("")
        self.findings.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Machine:", self.machine_combo)
        form.addRow("ECU:", self.ecu_combo)
        form.addRow("Version:", self.version_combo)
        form.addRow(self.findings)
        self.buttons = ok_cancel_buttons(self)
        form.addRow(self.buttons)
        self.issues: tuple[Any, ...] = ()
        eas = EaStore(ws)
        for m in eas.list_machines():
            if m.ea_name:
                self.machine_combo.addItem(f"{m.serial}", m.serial)
        self.machine_combo.currentIndexChanged.connect(self._fill_ecus)
        self.ecu_combo.currentIndexChanged.connect(self._fill_versions)
        self.version_combo.currentIndexChanged.connect(self._check)
        self._fill_ecus()

    def _fill_ecus(self) -> None:
        self.ecu_combo.clear()
        serial = self.machine_combo.currentData()
        if not serial:
            return
        eas = EaStore(self.ws)
        m = eas.get_machine(serial)
        for e in eas.get(m.ea_name or "").ecus:
            self.ecu_combo.addItem(f"{e.name} (installed {m.installed.get(e.name) or '?'})", e.name)

    def _fill_versions(self) -> None:
        self.version_combo.clear()
        serial, ecu_name = self.machine_combo.currentData(), self.ecu_combo.currentData()
        if not serial or not ecu_name:
            return
        eas = EaStore(self.ws)
        ecu = eas.get(eas.get_machine(serial).ea_name or "").ecu(ecu_name)
        try:
            versions = RepositoryStore(self.ws).list_versions(ecu.brand, ecu.model)
        except FotaError as exc:
            self.findings.setText(str(exc))
            return
        fill_versions(self.version_combo, versions, show_retired=True)

    def _check(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        version = self.version_combo.currentData()
        if not version:
            ok.setEnabled(False)
            return
        try:
            chk = check_new_request(
                self.ws, self.machine_combo.currentData(), self.ecu_combo.currentData(), version
            )
        except FotaError as exc:
            self.findings.setText(str(exc))
            ok.setEnabled(False)
            return
        self.issues = chk.issues
        self.findings.setText("\n".join(str(i) for i in chk.issues) or "No warnings.")
        ok.setEnabled(not chk.blocked)
        ok.setText("Create (confirm warnings)" if chk.warnings else "Create")

    def selection(self) -> tuple[str, str, str]:
        """(machine, ECU, version) chosen."""
        return (
            self.machine_combo.currentData(),
            self.ecu_combo.currentData(),
            self.version_combo.currentData(),
        )


class RequestsPanel(QWidget):
    """Update requests: list, filters, timeline, actions, reports."""

    bus_log_requested = Signal(int)  # flash record id whose BLF bus log should open in the trace
    #: A step's frames link in the record report was clicked (`ui/trace_link.FramesRequest`).
    frames_requested = Signal(object)

    def __init__(
        self, ws: Any, service: RequestService | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        self.store = RequestsStore(ws)
        self.service = service
        self.dialogs: list[ApprovalDialog] = []
        self._hidden_options = WorkflowOptions()
        self.store.recover_interrupted()
        # Change tracking for the 1 s refresh: requests updated at or after this mark are read.
        self._mark = ""
        # The detail view: what is shown, what is wanted, and the one worker building it.
        self._detail_shown: tuple[int, str] | None = None
        self._detail_wanted: tuple[int, str] | None = None
        self._detail_task: BackgroundTask | None = None
        self._detail_running: tuple[int, str] | None = None

        self.machine_filter = QComboBox()
        self.ecu_filter = QComboBox()
        self.status_filter = QComboBox()
        self.status_filter.addItem(ALL, "")
        for s in RequestStatus:
            self.status_filter.addItem(s.value, s.value)
        filters = QHBoxLayout()
        for label, combo in (
            ("Machine", self.machine_filter),
            ("ECU", self.ecu_filter),
            ("Status", self.status_filter),
        ):
            filters.addWidget(QLabel(label + ":"))
            filters.addWidget(combo)
            combo.currentIndexChanged.connect(self.refresh)
        filters.addStretch(1)

        self.model = RequestsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.detail = QTextBrowser()
        # A step's frames link opens them in the trace; other links are not followed here.
        self.detail.setOpenLinks(False)
        self.detail.anchorClicked.connect(self._on_detail_anchor_clicked)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.detail)
        self.table.setMinimumHeight(120)  # a few requests stay visible beside the timeline
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)

        buttons = [push_button(text, tip) for text, tip in ACTIONS]
        (
            self.create_button,
            self.start_button,
            self.cancel_button,
            self.rerun_button,
            self.report_button,
            self.buslog_button,
        ) = buttons
        self.create_button.clicked.connect(self._on_create_clicked)
        self.start_button.clicked.connect(self._on_start_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.rerun_button.clicked.connect(self._on_rerun_clicked)
        self.report_button.clicked.connect(self._on_report_clicked)
        self.buslog_button.clicked.connect(self._on_buslog_clicked)
        # Three per row at the top: in a narrow dock (1024×700 screens) they stay in view.
        actions = QGridLayout()
        for i, b in enumerate(buttons):
            actions.addWidget(b, i // ACTION_COLUMNS, i % ACTION_COLUMNS)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addLayout(actions)
        layout.addWidget(splitter, 1)
        layout.addWidget(self._build_run_options())
        self._fill_filters()
        self.refresh()
        self._timer = periodic_timer(self, REFRESH_MS, self.update_changed)

    # -- wiring ----------------------------------------------------------------------------

    # -- per-run options (Checkpoint 1 and 2 sources, timeouts) ---------------------------

    def _build_run_options(self) -> QGroupBox:
        box = QGroupBox("Run options")
        # Short labels (narrow docks); the tooltips say what each one is.
        self.approval_local_check = QCheckBox("Local dialog")
        self.approval_hmi_check = QCheckBox("Machine HMI")
        self.health_check = QCheckBox("Health checks")
        self.oem_check = QCheckBox("OEM node verdict")
        self.approval_timeout_spin = QSpinBox()
        self.verification_timeout_spin = QSpinBox()
        for spin in (self.approval_timeout_spin, self.verification_timeout_spin):
            spin.setRange(0, 65535)
            spin.setSuffix(" s")
            spin.setSpecialValueText("TCU setting")
        self.approval_local_check.setToolTip(
            "Checkpoint 1: approval in the local dialog (the operator approves here)"
        )
        self.approval_hmi_check.setToolTip(
            "Checkpoint 1: approval from the machine HMI (CANopen 0x5FF3 operator_decision); "
            "the first decision wins"
        )
        self.health_check.setToolTip(
            "Checkpoint 2: the built-in health checks the EA defines for the ECU (version DID, "
            "DTCs, heartbeat)"
        )
        self.oem_check.setToolTip(
            "Checkpoint 2: wait for the verdict of an OEM node on the bus (CANopen "
            "oem_verification)"
        )
        # Short labels, the timeout below: the box fits a narrow dock (1024×700 screens).
        grid = QGridLayout(box)
        rows = (
            ("Checkpoint 1", self.approval_local_check, self.approval_hmi_check),
            ("Checkpoint 2", self.health_check, self.oem_check),
        )
        spins = (self.approval_timeout_spin, self.verification_timeout_spin)
        for n, ((title, first, second), spin) in enumerate(zip(rows, spins, strict=True)):
            grid.addWidget(QLabel(title), 2 * n, 0)
            grid.addWidget(first, 2 * n, 1)
            grid.addWidget(second, 2 * n, 2)
            timeout = QHBoxLayout()
            timeout.addWidget(QLabel("timeout"))
            timeout.addWidget(spin)
            timeout.addStretch(1)
            grid.addLayout(timeout, 2 * n + 1, 1, 1, 2)
        grid.setColumnStretch(3, 1)
        self.options = WorkflowOptions()
        return box

    @property
    def options(self) -> WorkflowOptions:
        """The workflow options the next Start uses, as set in the Run options box."""
        return replace(
            self._hidden_options,
            approval_local=self.approval_local_check.isChecked(),
            approval_hmi=self.approval_hmi_check.isChecked(),
            approval_timeout_s=float(self.approval_timeout_spin.value()) or None,
            health_checks=self.health_check.isChecked(),
            oem_verification=self.oem_check.isChecked(),
            verification_timeout_s=float(self.verification_timeout_spin.value()) or None,
        )

    @options.setter
    def options(self, opts: WorkflowOptions) -> None:
        self._hidden_options = opts
        self.approval_local_check.setChecked(opts.approval_local)
        self.approval_hmi_check.setChecked(opts.approval_hmi)
        self.approval_timeout_spin.setValue(int(opts.approval_timeout_s or 0))
        self.health_check.setChecked(opts.health_checks)
        self.oem_check.setChecked(opts.oem_verification)
        self.verification_timeout_spin.setValue(int(opts.verification_timeout_s or 0))

    def set_workspace(self, ws: Any) -> None:
        """Follow File ▸ Open workspace…: the store, the interrupted-run recovery, the table."""
        self.ws = ws
        self.store = RequestsStore(ws)
        self.store.recover_interrupted()
        self._detail_shown = self._detail_wanted = None
        self._fill_filters()
        self.refresh()

    def shutdown(self) -> None:
        """Stop the refresh timer and wait for a detail view being built (the window calls this
        before the workspace closes)."""
        self._timer.stop()
        self._detail_wanted = None
        if self._detail_task is not None:
            self._detail_task.wait(5.0)

    def set_service(self, service: RequestService | None) -> None:
        """The service that starts runs (engine + TCU); None disables Start."""
        self.service = service
        self._update_actions()

    def on_event(self, event: object) -> None:
        """Handle engine/workflow events (GUI thread): open the approval dialog, refresh."""
        if isinstance(event, ApprovalRequested):
            self.show_approval(event.approval)
        if isinstance(event, WorkflowEvent):
            self.update_changed()

    def show_approval(self, approval: Any) -> ApprovalDialog:
        """Open the non-modal Checkpoint 1 dialog for `approval`."""
        dlg = ApprovalDialog(approval, self)
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [dlg]
        dlg.show()
        return dlg

    # -- data ------------------------------------------------------------------------------

    def _fill_filters(self) -> None:
        for combo, values in (
            (self.machine_filter, self.store.distinct("machine")),
            (self.ecu_filter, self.store.distinct("ecu")),
        ):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(ALL, "")
            for v in values:
                combo.addItem(v, v)
            i = combo.findData(current) if current else 0
            combo.setCurrentIndex(max(0, i))
            combo.blockSignals(False)

    def refresh(self) -> None:
        """Reload the table under the current filters (keeps the selection) and the detail view.

        A full read: for filter changes and after an action, not for the periodic refresh
        (`update_changed`).
        """
        selected = self.selected()
        self._mark = self.store.latest_update()
        rows = self.store.list(
            machine=self.machine_filter.currentData() or None,
            ecu=self.ecu_filter.currentData() or None,
            status=self.status_filter.currentData() or None,
        )
        rows.reverse()
        if [(r.id, r.updated_at) for r in rows] != [(r.id, r.updated_at) for r in self.model.rows]:
            self.model.set_rows(rows)
            if selected is not None:
                self.select(selected.id)
        self._show_detail()
        self._update_actions()

    def _matches(self, req: UpdateRequest) -> bool:
        for combo, value in (
            (self.machine_filter, req.machine),
            (self.ecu_filter, req.ecu),
            (self.status_filter, req.status.value),
        ):
            wanted = combo.currentData()
            if wanted and wanted != value:
                return False
        return True

    def update_changed(self) -> None:
        """The periodic refresh: read only the requests changed since the last look and update
        their rows in place (cost proportional to the changes, not to the history)."""
        changed = self.store.changed_since(self._mark)
        for req in changed:
            row = self.model.row_of(req.id)
            if row is not None and self.model.rows[row].updated_at == req.updated_at:
                continue  # seen at the mark already
            self.model.put(req, keep=self._matches(req))
            if self.machine_filter.findData(req.machine) < 0 or (
                self.ecu_filter.findData(req.ecu) < 0
            ):
                self._fill_filters()
        if changed:
            self._mark = max(self._mark, *(r.updated_at for r in changed))
        self._show_detail()
        self._update_actions()

    def selected(self) -> UpdateRequest | None:
        """The selected request (fresh from the model), or None."""
        idx = self.table.selectionModel().selectedRows()
        if not idx or idx[0].row() >= len(self.model.rows):
            return None
        return self.model.rows[idx[0].row()]

    def select(self, request_id: int) -> None:
        """Select the row of a request (after a filter/refresh)."""
        row = self.model.row_of(request_id)
        if row is not None:
            self.table.selectRow(row)

    def _on_selection(self, *args: object) -> None:
        self._show_detail()
        self._update_actions()

    def _show_detail(self) -> None:
        """Ask for the selected request's detail view; a worker builds it (the verdict checks
        signatures and re-hashes the bus log), the GUI thread only shows the finished HTML."""
        req = self.selected()
        if req is None:
            self._detail_wanted = self._detail_shown = None
            self.detail.setHtml("")
            return
        wanted = (req.id, req.updated_at)
        if wanted in (self._detail_shown, self._detail_running):
            self._detail_wanted = wanted
            return
        if self._detail_shown is None or self._detail_shown[0] != req.id:
            # Plain text: no HTML to parse on the GUI thread for a line seen for a moment.
            self.detail.setPlainText(f"Update request #{req.id}: verifying its record…")
            self._detail_shown = None
        self._detail_wanted = wanted
        self._start_detail()

    def _start_detail(self) -> None:
        if self._detail_task is not None or self._detail_wanted is None:
            return  # one worker at a time; a finished one starts the newest wish
        ws, key = self.ws, self._detail_wanted
        self._detail_running = key

        def work(progress: Any) -> tuple[Any, tuple[int, str], str]:
            return ws, key, request_report_html(ws, key[0], compact=True)

        self._detail_task = run_in_background(
            work,
            name=f"request #{key[0]} detail",
            on_success=self._on_detail_task_succeeded,
            on_error=self._on_detail_task_failed,
            on_finished=self._on_detail_task_finished,
            parent=self,
        )

    def _on_detail_task_succeeded(self, result: tuple[Any, tuple[int, str], str]) -> None:
        ws, key, text = result
        if ws is self.ws and self._detail_wanted is not None and key[0] == self._detail_wanted[0]:
            self.detail.setHtml(text)
            self._detail_shown = key

    def _on_detail_task_failed(self, exc: BaseException, details: str) -> None:
        key = self._detail_running
        _log.debug("request detail failed: %s\n%s", exc, details)
        if key is not None and self._detail_wanted is not None and key[0] == self._detail_wanted[0]:
            reason = html.escape(str(exc))
            self.detail.setHtml(
                f"<p>Update request #{key[0]}: the record cannot be read: {reason}</p>"
            )
            self._detail_shown = key

    def _on_detail_task_finished(self) -> None:
        self._detail_task = None
        self._detail_running = None
        if self._detail_wanted is not None and self._detail_wanted != self._detail_shown:
            self._start_detail()

    def detail_pending(self) -> bool:
        """True while the selected request's detail view is still being built (tests, status)."""
        return self._detail_task is not None or self._detail_wanted != self._detail_shown

    def _update_actions(self) -> None:
        req = self.selected()
        running = (
            self.service is not None
            and req is not None
            and self.service.running(req.id) is not None
        )
        self.start_button.setEnabled(
            req is not None
            and req.status is RequestStatus.PENDING
            and self.service is not None
            and not running
        )
        self.cancel_button.setEnabled(req is not None and req.cancellable)
        self.rerun_button.setEnabled(req is not None and req.rerunnable)
        self.report_button.setEnabled(req is not None)
        self.buslog_button.setEnabled(req is not None and req.flash_record_id is not None)

    # -- actions ---------------------------------------------------------------------------

    def _error(self, exc: Exception) -> None:
        show_error(self, "Update request", exc)

    def create(  # type: ignore[override]  # a request, not QWidget.create(window)
        self, machine: str, ecu: str, version: str, *, confirm: bool
    ) -> UpdateRequest:
        """Create a request (the dialog's path; also for tests and the main window)."""
        req = create_request(self.ws, machine, ecu, version, confirm=confirm)
        self._fill_filters()
        self.refresh()
        self.select(req.id)
        return req

    def _on_buslog_clicked(self) -> None:
        req = self.selected()
        if req is not None and req.flash_record_id is not None:
            self.bus_log_requested.emit(req.flash_record_id)

    def _on_detail_anchor_clicked(self, url: QUrl) -> None:
        request = request_from_href(self.ws, url.toString())
        if request is not None:
            self.frames_requested.emit(request)

    def _on_create_clicked(self) -> None:
        dlg = CreateRequestDialog(self.ws, self)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return
        try:
            self.create(*dlg.selection(), confirm=True)
        except FotaError as exc:
            self._error(exc)

    def _act_on_selected(self, action: Callable[[int], object]) -> None:
        """Run `action(request id)` on the selected request (none selected: nothing); a
        refusal (FotaError) is shown; the list is refreshed either way."""
        req = self.selected()
        if req is None:
            return
        try:
            action(req.id)
        except FotaError as exc:
            self._error(exc)
        self.refresh()

    def start_selected(self) -> None:
        """Start the selected Pending request on the service."""
        service = self.service
        if self.selected() is None or service is None:
            return
        opts = self.options
        if not (opts.approval_local or opts.approval_hmi):
            self._error(FotaError("choose at least one Checkpoint 1 approval source"))
            return
        if not (opts.health_checks or opts.oem_verification):
            self._error(FotaError("choose at least one Checkpoint 2 verification source"))
            return
        self._act_on_selected(lambda request_id: service.start(request_id, opts))

    def _on_start_clicked(self) -> None:
        self.start_selected()

    def cancel_selected(self) -> None:
        """Cancel the selected request (refused after Checkpoint 1 approval)."""
        self._act_on_selected(
            self.service.cancel if self.service is not None else self.store.cancel
        )

    def _on_cancel_clicked(self) -> None:
        self.cancel_selected()

    def _on_rerun_clicked(self) -> None:
        self._act_on_selected(self.store.rerun)

    def _on_report_clicked(self) -> None:
        req = self.selected()
        if req is None:
            return
        path, chosen = QFileDialog.getSaveFileName(
            self,
            "Export the request's record",
            f"update-request-{req.id}.pdf",
            "PDF (*.pdf);;HTML (*.html)",
        )
        if not path:
            return
        fmt = "html" if path.lower().endswith((".html", ".htm")) or "HTML" in chosen else "pdf"
        try:
            export_request_report(self.ws, req.id, path, fmt)
        except (FotaError, OSError) as exc:
            self._error(exc)
