"""Connection doctor dialog: runs the adapter checks off the GUI thread and explains the result.

`DoctorDialog(settings)` starts `engine.doctor.run_doctor` through `run_in_background` (a
`fota-ui-io` worker; the checks block for about a second), lists each check as it finishes
with its status, and shows the plain-words advice of the selected check (the first failed one
by default, else the first one this interface cannot check: the verdict is then "not proven",
never "works"). "Run again" repeats the checks, "Copy report" puts the text report on the
clipboard. Closing the dialog cancels a running check at its next wait. GUI thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QPlainTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.ea import EcuDefinition
from fota_studio.engine.doctor import LISTEN_S, CheckResult, DoctorReport, Status, run_doctor
from fota_studio.protocols.bus import BusSettings
from fota_studio.ui.background import BackgroundTask, run_in_background
from fota_studio.ui.dialogs.parts import close_buttons

#: Checks a full run performs (for the progress fraction only).
EXPECTED_CHECKS = 4
_COLOURS = {
    Status.OK: "#2e7d32",
    Status.WARNING: "#b26a00",
    Status.ERROR: "#c62828",
    Status.SKIPPED: "#757575",
    Status.UNCHECKED: "#6a1b9a",
}


class DoctorDialog(QDialog):
    """Check one adapter end to end and explain each problem."""

    def __init__(
        self,
        settings: BusSettings,
        parent: QWidget | None = None,
        *,
        label: str = "",
        listen_s: float = LISTEN_S,
        send_probe: bool = True,
        expected_bitrate_bps: int | None = None,
        ecu: EcuDefinition | None = None,
        autostart: bool = True,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connection doctor")
        self.resize(640, 420)
        self.settings = settings
        self._label = label or settings.describe()
        self._listen_s = listen_s
        self._send_probe = send_probe
        self._expected = expected_bitrate_bps
        self._ecu = ecu
        self._cancel = threading.Event()
        self._live: list[CheckResult] = []  # appended by the worker, read on the GUI thread
        self._shown = 0
        self.report: DoctorReport | None = None
        self.task: BackgroundTask | None = None

        self.header = QLabel(f"Checking <b>{self._label}</b>")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.checks = QTreeWidget()
        self.checks.setColumnCount(3)
        self.checks.setHeaderLabels(["Check", "Result", "Summary"])
        self.checks.setRootIsDecorated(False)
        self.checks.setUniformRowHeights(True)
        self.checks.currentItemChanged.connect(self._on_checks_current_item_changed)
        self.advice = QPlainTextEdit()
        self.advice.setReadOnly(True)
        self.advice.setPlaceholderText("What to do appears here.")
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)

        buttons, (self.rerun_button, self.copy_button) = close_buttons(
            self,
            ("Run again", "Run every check again (after fixing cable, driver or settings)"),
            ("Copy report", "Copy the full report to the clipboard for a support ticket"),
        )
        self.rerun_button.clicked.connect(self.start)
        self.copy_button.clicked.connect(self.copy_report)

        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.checks, 2)
        layout.addWidget(QLabel("What to do"))
        layout.addWidget(self.advice, 1)
        layout.addWidget(self.verdict)
        layout.addWidget(buttons)
        if autostart:
            self.start()

    @property
    def running(self) -> bool:
        """True while the checks run."""
        return self.task is not None and not self.task.done

    def start(self) -> None:
        """(Re)run every check on a worker thread."""
        if self.running:
            return
        self._cancel.clear()
        self._live = []
        self._shown = 0
        self.report = None
        self.checks.clear()
        self.advice.clear()
        self.verdict.setText("Checking…")
        self.rerun_button.setEnabled(False)
        self.copy_button.setEnabled(False)
        live = self._live
        cancel = self._cancel
        settings = self.settings

        def work(progress: Callable[[float], None]) -> DoctorReport:
            def on_check(check: CheckResult) -> None:
                live.append(check)  # list.append is atomic; the GUI reads it on progress
                progress(min(0.99, len(live) / EXPECTED_CHECKS))

            return run_doctor(
                settings,
                label=self._label,
                listen_s=self._listen_s,
                send_probe=self._send_probe,
                expected_bitrate_bps=self._expected,
                ecu=self._ecu,
                cancel=cancel,
                on_check=on_check,
            )

        self.task = run_in_background(
            work,
            name="connection doctor",
            on_progress=self._on_task_progress_changed,
            on_success=self._on_task_succeeded,
            on_error=self._on_task_failed,
            parent=self,
        )

    def _add_rows(self, checks: list[CheckResult]) -> None:
        for check in checks[self._shown :]:
            item = QTreeWidgetItem([check.name, str(check.status).upper(), check.summary])
            item.setForeground(1, QBrush(QColor(_COLOURS[check.status])))
            item.setToolTip(2, check.summary)
            item.setData(0, Qt.ItemDataRole.UserRole, check)
            self.checks.addTopLevelItem(item)
        self._shown = len(checks)

    def _on_task_progress_changed(self, _fraction: float) -> None:
        self._add_rows(list(self._live))

    def _on_task_succeeded(self, report: DoctorReport) -> None:
        self.report = report
        self._add_rows(list(report.checks))
        target = report.first_error or next(
            (c for c in report.checks if c.status in (Status.UNCHECKED, Status.WARNING)), None
        )
        for i in range(self.checks.topLevelItemCount()):
            item = self.checks.topLevelItem(i)
            if (
                item is not None
                and target is not None
                and item.data(0, Qt.ItemDataRole.UserRole) == target
            ):
                self.checks.setCurrentItem(item)
                break
        if report.first_error is None and report.proven:
            self.verdict.setText(f"<b>The connection works.</b> {self._label}")
        elif report.first_error is None:
            names = ", ".join(c.name for c in report.unchecked)
            caps = report.capabilities.summary() if report.capabilities else ""
            self.verdict.setText(
                f"<b>Not proven:</b> nothing failed, but {names} cannot be checked on "
                f"{self.settings.interface} ({caps})."
            )
        else:
            self.verdict.setText(f"<b>Problem:</b> {report.first_error.summary}")
        self._finish()

    def _on_task_failed(self, exc: BaseException, _tb: str) -> None:
        self.verdict.setText(f"<b>The check itself failed:</b> {exc}")
        self._finish()

    def _finish(self) -> None:
        self.rerun_button.setEnabled(True)
        self.copy_button.setEnabled(self.report is not None)

    def _on_checks_current_item_changed(
        self, item: QTreeWidgetItem | None, _prev: QTreeWidgetItem | None = None
    ) -> None:
        if item is None:
            return
        check: CheckResult = item.data(0, Qt.ItemDataRole.UserRole)
        self.advice.setPlainText(check.advice or check.summary)

    def copy_report(self) -> None:
        """Put the text report on the clipboard (for a support ticket)."""
        if self.report is not None:
            QGuiApplication.clipboard().setText(self.report.to_text())

    def done(self, result: int) -> None:
        """Closing cancels the checks at their next wait (the worker ends on its own)."""
        self._cancel.set()
        super().done(result)
