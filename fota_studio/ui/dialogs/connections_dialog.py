"""Connections dialog: edit the adapter settings of each logical CAN channel of the workspace.

Lists the logical channels (those saved, those the EA uses, and CAN1) and edits the selected
one: interface, adapter channel, bitrate, CAN FD data bitrate, sample points (enabled only for
interfaces that take a bit timing), listen-only and the interface's open options (slcan:
`sleep_after_open=0.1, tty_baudrate=115200`). The bitrate lists offer what the chosen
python-can interface can do (`protocols.bus.interface_limits`: slcan's fixed table, FD data
rates 2 or 5 Mbit/s, ...); CAN FD and listen-only are disabled where the interface has none;
every change is validated as it is typed: a value the interface cannot do is named in red and
OK is disabled, so it is refused before it is saved, not when the adapter opens. A line says
what the interface can report (bus state, error frames, ACK, hardware timestamps). "Check
connection…" opens the connection doctor on the settings as typed (the EA's first ECU on the
channel answers the peer check); "Use default" forgets the saved settings of the channel. OK
validates every channel (`infra.connections`) and saves them to the workspace. GUI thread only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import can
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.ea import ElectronicArchitecture
from fota_studio.core.errors import ConfigurationError
from fota_studio.infra.connections import (
    DEMO_LOGICAL_CHANNEL,
    ChannelConnection,
    default_connection,
    ea_bitrate_mismatches,
    ea_channels,
    load_connections,
    parse_option_text,
    save_connections,
)
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import interface_capabilities, interface_limits
from fota_studio.ui.dialogs.parts import (
    add_bitrate_rows,
    bitrate_combos,
    offer_rates,
    ok_cancel_buttons,
)
from fota_studio.ui.widgets.detected_adapters import DetectedAdapters
from fota_studio.ui.widgets.wheel_guard import guard_wheel

if TYPE_CHECKING:
    from fota_studio.ui.dialogs.doctor_dialog import DoctorDialog

#: Interfaces offered first in the combo box (any python-can interface can be typed).
COMMON_INTERFACES = ("virtual", "pcan", "kvaser", "vector", "ixxat", "socketcan", "slcan")


def _num(text: str, default: int) -> int:
    try:
        return int(float(text.strip().replace(",", "").replace("k", "e3").replace("M", "e6")))
    except ValueError:
        return default


def options_text(options: dict[str, object]) -> str:
    """`{"sleep_after_open": 0.1}` → `sleep_after_open=0.1` (the options field's format)."""
    return ", ".join(f"{k}={v}" for k, v in options.items())


def parse_options(interface: str, text: str) -> dict[str, object]:
    """The options field (`name=value, ...`) typed by the interface's option specs; raises
    ConfigurationError naming a bad one."""
    out: dict[str, object] = {}
    for part in text.replace(";", ",").split(","):
        if part.strip():
            name, value = parse_option_text(interface, part.strip())
            out[name] = value
    return out


class ConnectionsDialog(QDialog):
    """Edit and save the per-channel adapter settings of a workspace."""

    def showEvent(self, event: QShowEvent) -> None:
        """Guard the form's fields against the scroll wheel (widgets/wheel_guard)."""
        guard_wheel(self)
        super().showEvent(event)

    def __init__(
        self,
        ws: Workspace,
        parent: QWidget | None = None,
        *,
        ea: ElectronicArchitecture | None = None,
        detect: bool = False,
    ) -> None:
        """`detect`: list the adapters python-can sees at once (takes a few seconds in the
        background); otherwise on "Detect" only."""
        super().__init__(parent)
        self.setWindowTitle("CAN connections")
        self.ws = ws
        self.ea = ea
        self._saved = load_connections(ws)
        self._edited: dict[str, ChannelConnection] = dict(self._saved)
        names = list(self._saved)
        for name in [DEMO_LOGICAL_CHANNEL, *(ea_channels(ea) if ea else [])]:
            if name not in names:
                names.append(name)
        for name in names:
            self._edited.setdefault(name, default_connection(name, ea))
        self._current: str | None = None
        self._loading = False

        self.channels = QListWidget()
        self.channels.addItems(names)
        self.channels.currentTextChanged.connect(self._on_channels_current_text_changed)

        self.interface = QComboBox()
        self.interface.setEditable(True)
        others = sorted(set(can.interfaces.VALID_INTERFACES) - set(COMMON_INTERFACES))
        self.interface.addItems([*COMMON_INTERFACES, *others])
        self.adapter_channel = QLineEdit()
        self.bitrate, self.data_bitrate = bitrate_combos()
        self.fd = QCheckBox("CAN FD")
        self.sample_point = QDoubleSpinBox()
        self.data_sample_point = QDoubleSpinBox()
        for box in (self.sample_point, self.data_sample_point):
            box.setRange(0.0, 95.0)
            box.setDecimals(1)
            box.setSuffix(" %")
            box.setSpecialValueText("driver default")  # 0 = not set
        self.listen_only = QCheckBox("Listen only (never send, no ACK)")
        self.options = QLineEdit()
        self.options.setToolTip("Interface open options, name=value separated by commas")
        self.reports = QLabel("")
        self.reports.setWordWrap(True)
        self.ea_note = QLabel("")
        self.ea_note.setWordWrap(True)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828")

        self.interface.currentTextChanged.connect(self._on_form_changed)
        self.fd.toggled.connect(self._on_form_changed)
        for w in (self.adapter_channel,):
            w.textChanged.connect(self._on_form_changed)
        for combo in (self.bitrate, self.data_bitrate):
            combo.currentTextChanged.connect(self._on_form_changed)
        for box in (self.sample_point, self.data_sample_point):
            box.valueChanged.connect(self._on_form_changed)
        self.listen_only.toggled.connect(self._on_form_changed)
        self.options.textChanged.connect(self._on_form_changed)

        form = QFormLayout()
        form.addRow("Interface", self.interface)
        form.addRow("Adapter channel", self.adapter_channel)
        add_bitrate_rows(form, self.bitrate, self.fd, self.data_bitrate)
        form.addRow("Sample point", self.sample_point)
        form.addRow("Data sample point", self.data_sample_point)
        form.addRow("", self.listen_only)
        form.addRow("Options", self.options)
        form.addRow("Reports", self.reports)

        self.check_button = QPushButton("Check connection…")
        self.check_button.setToolTip("Run the connection doctor on this adapter")
        self.check_button.clicked.connect(self.open_doctor)
        self.default_button = QPushButton("Use default")
        self.default_button.setToolTip("Use the EA's default adapter for this logical channel")
        self.default_button.clicked.connect(self.use_default)
        actions = QHBoxLayout()
        actions.addWidget(self.check_button)
        actions.addWidget(self.default_button)
        actions.addStretch(1)

        # Detected adapters: picking one fills interface and adapter channel (issue 15).
        self.detected = DetectedAdapters(self, auto_detect=detect)
        if not detect:
            self.detected.detect_button.setText("Detect")
            self.detected.status.setText("Press Detect to list the adapters the drivers see.")
        self.detected.picked.connect(self._on_detected_picked)
        right = QVBoxLayout()
        right.addWidget(self.detected)
        right.addLayout(form)
        right.addWidget(self.ea_note)
        right.addLayout(actions)
        top = QHBoxLayout()
        top.addWidget(self.channels, 1)
        top.addLayout(right, 3)
        buttons = ok_cancel_buttons(self)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.doctor: DoctorDialog | None = None
        if names:
            self.channels.setCurrentRow(0)

    # -- editing -----------------------------------------------------------------------------

    def _on_detected_picked(self, interface: str, channel: str) -> None:
        """A detected adapter was picked: it becomes the selected channel's adapter."""
        self.interface.setCurrentText(interface)
        self.adapter_channel.setText(channel)

    def _on_channels_current_text_changed(self, name: str) -> None:
        if not name:
            return
        self._current = name
        self._load(self._edited[name])

    def _load(self, conn: ChannelConnection) -> None:
        self._loading = True
        try:
            self.interface.setCurrentText(conn.interface)
            self._offer_rates(conn.interface)
            self.adapter_channel.setText(conn.channel)
            self.bitrate.setCurrentText(str(conn.bitrate_bps))
            self.fd.setChecked(conn.fd)
            self.data_bitrate.setCurrentText(str(conn.data_bitrate_bps))
            self.sample_point.setValue(conn.sample_point_pct or 0.0)
            self.data_sample_point.setValue(conn.data_sample_point_pct or 0.0)
            self.listen_only.setChecked(conn.listen_only)
            self.options.setText(options_text(dict(conn.options)))
        finally:
            self._loading = False
        self._update_enabled(conn)
        self._check_form()

    def _offer_rates(self, interface: str) -> None:
        """Fill the bitrate lists with what `interface` can do (a typed value is validated)."""
        lim = offer_rates(self.bitrate, self.data_bitrate, interface)
        defaults = options_text(lim.option_defaults())
        self.options.setPlaceholderText(defaults or "this interface has no open options")
        self.options.setToolTip(
            "\n".join(f"{o.name} (default {o.default}): {o.help}" for o in lim.options)
            or "This interface has no open options"
        )
        self.reports.setText(interface_capabilities(interface).summary())

    def form_connection(self) -> ChannelConnection:
        """The selected channel's connection as currently typed (not validated; options that
        do not parse raise ConfigurationError)."""
        assert self._current is not None
        interface = self.interface.currentText().strip().lower()
        return ChannelConnection(
            logical_channel=self._current,
            interface=self.interface.currentText().strip().lower(),
            channel=self.adapter_channel.text().strip(),
            bitrate_bps=_num(self.bitrate.currentText(), 500_000),
            fd=self.fd.isChecked(),
            data_bitrate_bps=_num(self.data_bitrate.currentText(), 2_000_000),
            sample_point_pct=self.sample_point.value() or None,
            data_sample_point_pct=self.data_sample_point.value() or None,
            listen_only=self.listen_only.isChecked(),
            options=parse_options(interface, self.options.text()),
        )

    def _on_form_changed(self, *_args: object) -> None:
        if self._loading or self._current is None:
            return
        if self.sender() is self.interface:
            self._loading = True
            try:
                self._offer_rates(self.interface.currentText())
            finally:
                self._loading = False
        try:
            conn = self.form_connection()
        except ConfigurationError as exc:
            self.error.setText(str(exc))
            self.ok_button.setEnabled(False)
            return
        self._edited[self._current] = conn
        self._update_enabled(conn)
        self._check_form()

    def _check_form(self) -> None:
        """Validate what is typed now: name the problem and disable OK until it is fixed."""
        if self._current is None:
            return
        try:
            conn = self.form_connection()
            conn.validate()
            conn.bus_settings()
        except ConfigurationError as exc:
            self.error.setText(str(exc))
            self.ok_button.setEnabled(False)
            return
        self.error.setText("")
        self.ok_button.setEnabled(True)

    def _update_enabled(self, conn: ChannelConnection) -> None:
        lim = interface_limits(conn.interface)
        self.fd.setEnabled(lim.fd or conn.fd)
        self.listen_only.setEnabled(lim.listen_only or conn.listen_only)
        self.options.setEnabled(bool(lim.options) or bool(conn.options))
        self.data_bitrate.setEnabled(conn.fd)
        self.sample_point.setEnabled(conn.supports_sample_point)
        self.data_sample_point.setEnabled(conn.supports_sample_point and conn.fd)
        problems = ea_bitrate_mismatches(conn, self.ea) if self.ea is not None else []
        self.ea_note.setText(
            "" if not problems else "Differs from the EA: " + "; ".join(problems) + "."
        )

    def use_default(self) -> None:
        """Reset the selected channel to its default mapping (saved on OK)."""
        if self._current is None:
            return
        conn = default_connection(self._current, self.ea)
        self._edited[self._current] = conn
        self._load(conn)

    def connections(self) -> dict[str, ChannelConnection]:
        """Every channel's connection as edited."""
        return dict(self._edited)

    def open_doctor(self) -> None:
        """Run the connection doctor on the selected channel's settings as typed."""
        from fota_studio.ui.dialogs.doctor_dialog import DoctorDialog

        try:
            conn = self.form_connection()
            conn.validate()
            settings = conn.bus_settings()
        except ConfigurationError as exc:
            self.error.setText(str(exc))
            return
        expected = None
        ecus = []
        if self.ea is not None:
            ecus = [e for e in self.ea.ecus if e.connection.channel == conn.logical_channel]
            expected = ecus[0].connection.bitrate_bps if ecus else None
        doctor = DoctorDialog(
            settings,
            self,
            label=conn.describe(),
            expected_bitrate_bps=expected,
            ecu=ecus[0] if ecus else None,
        )
        self.doctor = doctor
        doctor.show()

    def accept(self) -> None:
        """Validate and save every channel that differs from its default (or was saved)."""
        to_save = []
        for name, conn in self._edited.items():
            if name in self._saved or conn != default_connection(name, self.ea):
                to_save.append(replace(conn, logical_channel=name))
        try:
            save_connections(self.ws, to_save)
        except ConfigurationError as exc:
            self.error.setText(str(exc))
            return
        super().accept()
