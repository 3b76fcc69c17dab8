"""The Settings dialog: edits the user settings of `infra/settings.py` (OK saves, Cancel not).

The dialog only edits a copy; `value()` returns the new `Settings` and the caller (the main
window) saves and applies them, so the dialog is testable without touching any file. GUI thread
only.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from fota_studio.infra.settings import THEMES, ApprovalSettings, Settings
from fota_studio.ui.dialogs.parts import ok_cancel_buttons
from fota_studio.ui.widgets.wheel_guard import guard_wheel


class SettingsDialog(QDialog):
    """Form over `Settings`: theme, log panel size, approval timeouts, recent-list clearing."""

    def showEvent(self, event: QShowEvent) -> None:
        """Guard the form's fields against the scroll wheel (widgets/wheel_guard)."""
        guard_wheel(self)
        super().showEvent(event)

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._original = settings

        self.theme = QComboBox()
        self.theme.addItems(list(THEMES))
        self.theme.setCurrentText(settings.ui.theme)
        self.log_lines = QSpinBox()
        self.log_lines.setRange(1_000, 1_000_000)
        self.log_lines.setSingleStep(1_000)
        self.log_lines.setValue(settings.ui.log_panel_max_lines)
        self.log_lines.setSuffix(" lines")
        self.clear_recent = QCheckBox("Clear the recent workspace and log file lists")
        ui_box = QGroupBox("Interface")
        ui_form = QFormLayout(ui_box)
        ui_form.addRow("Theme", self.theme)
        ui_form.addRow("Log panel keeps", self.log_lines)
        ui_form.addRow(self.clear_recent)

        self.operator_timeout = _seconds_box(settings.approval.operator_timeout_s)
        self.verification_timeout = _seconds_box(settings.approval.verification_timeout_s)
        ap_box = QGroupBox("Update approval (defaults for new update requests)")
        ap_form = QFormLayout(ap_box)
        ap_form.addRow("Operator decision timeout (Checkpoint 1)", self.operator_timeout)
        ap_form.addRow("Health verification timeout (Checkpoint 2)", self.verification_timeout)

        buttons = ok_cancel_buttons(self)
        layout = QVBoxLayout(self)
        layout.addWidget(ui_box)
        layout.addWidget(ap_box)
        layout.addWidget(buttons)

    def value(self) -> Settings:
        """The settings as edited (unchanged fields are kept from the original)."""
        ui = replace(
            self._original.ui,
            theme=self.theme.currentText(),
            log_panel_max_lines=self.log_lines.value(),
        )
        if self.clear_recent.isChecked():
            ui = replace(ui, recent_workspaces=(), recent_log_files=())
        approval = ApprovalSettings(
            operator_timeout_s=self.operator_timeout.value(),
            verification_timeout_s=self.verification_timeout.value(),
        )
        return replace(self._original, ui=ui, approval=approval)


def _seconds_box(value_s: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(5.0, 86_400.0)
    box.setDecimals(0)
    box.setSuffix(" s")
    box.setValue(value_s)
    return box
