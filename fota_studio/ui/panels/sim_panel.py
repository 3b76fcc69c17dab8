"""Engineering panel for the simulated machine: start/stop it, watch its ECUs, inject faults.

The panel opens its own bus (any python-can interface through `protocols.bus.open_bus`, or the
paced `fota_sim` bus when "model wire timing" is ticked), owns that bus's notifier and runs a
`SimMachine` of the chosen EA on it. Starting and stopping run on a background thread
(`ui.background`), because creating/joining ISO-TP threads takes longer than a GUI frame; the
ECU table is refreshed from `SimEcu.state()` snapshots by a timer. Faults are armed through
`SimEcu.inject`. GUI thread only (the background callables touch no widget).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.ea import ElectronicArchitecture
from fota_studio.core.errors import FotaError
from fota_studio.demo import catalog as demo_catalog
from fota_studio.demo.bench import demo_installed_images
from fota_studio.sim.faults import KINDS, STEPS, Fault
from fota_studio.sim.machine import SimMachine
from fota_studio.ui.background import run_in_background
from fota_studio.ui.widgets.buttons import button_row, push_button
from fota_studio.ui.widgets.timers import periodic_timer

log = logging.getLogger(__name__)

REFRESH_INTERVAL_MS = 250
NOTIFIER_STOP_TIMEOUT_S = 0.1
#: Buses with nothing physical behind them: the simulator may run there in operator mode.
SOFTWARE_BUSES = frozenset({"virtual", "fota_sim"})
COLUMNS = (
    "ECU",
    "Mode",
    "Session",
    "Security",
    "App valid",
    "Version",
    "Bytes written",
    "Last NRC",
    "Armed faults",
)


@dataclass
class _Running:
    bus: can.BusABC
    notifier: can.Notifier
    machine: SimMachine


def _open_bus(interface: str, channel: str, timing: bool, fd: bool) -> can.BusABC:
    if timing and interface == "virtual":
        from fota_studio.sim.paced_bus import PacedVirtualBus

        return PacedVirtualBus(channel=channel, bitrate=500_000, fd=fd)
    from fota_studio.protocols.bus import BusSettings, open_bus

    return open_bus(BusSettings(interface=interface, channel=channel, fd=fd))


class SimPanel(QWidget):
    """Start/stop the simulated machine, show each ECU's state, arm and clear faults."""

    running_changed = Signal(bool)
    failed = Signal(str)

    def set_default_state_dir(self, workspace_root: Path | None) -> None:
        """Use the simulated-machine folder of this workspace when the field is left empty
        (the one `fota-studio sim` and `flash --simulate` use too); shown as placeholder."""
        from fota_studio.infra.paths import sim_state_dir

        self._default_state_dir: Path | None = sim_state_dir(workspace_root)
        self.state_dir_edit.setPlaceholderText(f"default: {self._default_state_dir}")

    def default_state_dir(self) -> Path:
        """The folder used when the State folder field is empty."""
        assert self._default_state_dir is not None
        return self._default_state_dir

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        state_dir: Path | None = None,
        ea: ElectronicArchitecture | None = None,
        images: dict[str, list[tuple[int, bytes]]] | None = None,
    ) -> None:
        """Build the panel; `ea`/`images` default to the demo machine and its installed images."""
        super().__init__(parent)
        self._ea = ea or demo_catalog.demo_architecture()
        self._images = images
        self._state_dir = state_dir
        self._default_state_dir = None
        self._running: _Running | None = None
        self._busy = False

        self.machine_edit = QComboBox()
        self.machine_edit.setEditable(True)
        self.machine_edit.addItems(list(demo_catalog.DEMO_MACHINES))
        self.interface_edit = QLineEdit("virtual")
        self.channel_edit = QLineEdit(demo_catalog.DEMO_CHANNEL)
        self.state_dir_edit = QLineEdit(str(state_dir) if state_dir else "")
        self.timing_check = QCheckBox("model wire timing (paced virtual bus)")
        self.fd_check = QCheckBox("CAN FD")
        self.fd_check.setChecked(any(e.connection.fd for e in self._ea.ecus))
        self.start_button = push_button(
            "Start", "Start the simulated machine (UDS bootloader ECUs) on the chosen bus"
        )
        self.stop_button = push_button("Stop", "Stop the simulated machine")
        self.status_label = QLabel("stopped")

        form = QFormLayout()
        form.addRow("Machine", self.machine_edit)
        form.addRow("Interface", self.interface_edit)
        form.addRow("Channel", self.channel_edit)
        form.addRow("State folder", self.state_dir_edit)
        self.set_default_state_dir(None)
        form.addRow("", self.timing_check)
        form.addRow("", self.fd_check)
        buttons = button_row(self.start_button, self.stop_button)
        buttons.addWidget(self.status_label, 1)
        form.addRow(buttons)
        machine_box = QGroupBox("Simulated machine")
        machine_box.setLayout(form)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)

        self.fault_ecu = QComboBox()
        self.fault_ecu.addItems([e.name for e in self._ea.ecus])
        self.fault_step = QComboBox()
        self.fault_step.addItems(list(STEPS))
        self.fault_kind = QComboBox()
        self.fault_kind.addItems(list(KINDS))
        self.fault_arg = QLineEdit()
        self.fault_arg.setPlaceholderText("argument, e.g. 0x22, 400, 4096")
        self.fault_count = QSpinBox()
        self.fault_count.setRange(1, 10_000)
        self.inject_button = push_button(
            "Inject",
            "Arm the chosen fault in the simulated ECU (NRC, late or no answer, dropped or"
            " corrupted frames, power loss…)",
        )
        self.clear_button = push_button("Clear faults", "Remove every injected fault")
        fault_form = QFormLayout()
        fault_form.addRow("ECU", self.fault_ecu)
        fault_form.addRow("Step", self.fault_step)
        fault_form.addRow("Kind", self.fault_kind)
        fault_form.addRow("Argument", self.fault_arg)
        fault_form.addRow("Count", self.fault_count)
        fault_form.addRow(button_row(self.inject_button, self.clear_button))
        fault_box = QGroupBox("Fault injection")
        fault_box.setLayout(fault_form)
        self.fault_box = fault_box
        self._faults_allowed = True
        self._real_buses_allowed = True

        top = QHBoxLayout()
        top.addWidget(machine_box, 1)
        top.addWidget(fault_box, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)

        self._timer = periodic_timer(self, REFRESH_INTERVAL_MS, self.refresh, start=False)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.inject_button.clicked.connect(self._on_inject_clicked)
        self.clear_button.clicked.connect(self._on_clear_clicked)
        self._update_buttons()

    # -- state ---------------------------------------------------------------------------
    @property
    def machine(self) -> SimMachine | None:
        """The running simulated machine, or None."""
        return self._running.machine if self._running else None

    def is_running(self) -> bool:
        """True while the simulated machine runs."""
        return self._running is not None

    def _update_buttons(self) -> None:
        running = self._running is not None
        self.start_button.setEnabled(not running and not self._busy)
        self.stop_button.setEnabled(running and not self._busy)
        self.inject_button.setEnabled(running)
        self.clear_button.setEnabled(running)
        for w in (self.machine_edit, self.interface_edit, self.channel_edit, self.state_dir_edit):
            w.setEnabled(not running and not self._busy)

    # -- start / stop ----------------------------------------------------------------------
    def start(self) -> None:
        """Open the bus and start the simulated machine in the background."""
        if self._running is not None or self._busy:
            return
        name = self.machine_edit.currentText().strip() or demo_catalog.DEMO_MACHINES[0]
        interface = self.interface_edit.text().strip() or "virtual"
        if not self._real_buses_allowed and interface.lower() not in SOFTWARE_BUSES:
            # Simulated ECUs answering on a real machine's bus would impersonate its ECUs.
            self.status_label.setText(
                f"Operator mode: the simulator runs on virtual buses only, not on {interface} "
                "(engineering mode for an adapter)"
            )
            return
        channel = self.channel_edit.text().strip() or demo_catalog.DEMO_CHANNEL
        state_text = self.state_dir_edit.text().strip()
        state_dir = Path(state_text) if state_text else self.default_state_dir()
        timing = self.timing_check.isChecked()
        fd = self.fd_check.isChecked()
        ea = self._ea
        images = self._images if self._images is not None else demo_installed_images()

        def work(progress: Any) -> _Running:
            del progress
            bus = _open_bus(interface, channel, timing, fd)
            notifier = can.Notifier(bus, [], timeout=0.05)
            machine = SimMachine(
                ea, bus, name=name, state_dir=state_dir, notifier=notifier, initial_images=images
            )
            try:
                machine.start()
            except BaseException:
                machine.stop()
                notifier.stop(timeout=NOTIFIER_STOP_TIMEOUT_S)
                bus.shutdown()
                raise
            return _Running(bus, notifier, machine)

        self._busy = True
        self.status_label.setText("starting…")
        self._update_buttons()
        run_in_background(
            work,
            name="sim-start",
            on_success=self._on_started,
            on_error=self._on_error,
            parent=self,
        )

    def _on_started(self, running: _Running) -> None:
        self._busy = False
        self._running = running
        self.status_label.setText(f'running "{running.machine.name}"')
        self.table.setRowCount(len(running.machine.ecus))
        self._timer.start()
        self.refresh()
        self._update_buttons()
        self.running_changed.emit(True)

    def _on_error(self, exc: BaseException, trace: str) -> None:
        del trace
        self._busy = False
        message = str(exc) if isinstance(exc, FotaError) else f"{type(exc).__name__}: {exc}"
        self.status_label.setText(f"error: {message}")
        log.warning("simulator: %s", message)
        self._update_buttons()
        self.failed.emit(message)

    def stop(self) -> None:
        """Stop the simulated machine and close its bus in the background."""
        running, self._running = self._running, None
        if running is None:
            return
        self._timer.stop()
        self._busy = True
        self.status_label.setText("stopping…")
        self._update_buttons()

        def work(progress: Any) -> None:
            del progress
            _shutdown(running)

        run_in_background(
            work,
            name="sim-stop",
            on_success=lambda _result: self._on_stopped(),
            on_error=self._on_error,
            parent=self,
        )

    def _on_stopped(self) -> None:
        self._busy = False
        self.status_label.setText("stopped")
        self._update_buttons()
        self.running_changed.emit(False)

    def shutdown(self) -> None:
        """Stop synchronously (application exit); safe when not running."""
        self._timer.stop()
        running, self._running = self._running, None
        if running is not None:
            _shutdown(running)

    # -- table -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw the ECU table from fresh snapshots."""
        machine = self.machine
        if machine is None:
            return
        states = machine.states()
        self.table.setRowCount(len(states))
        for row, snap in enumerate(states.values()):
            cells = (
                snap.name,
                snap.mode,
                f"0x{snap.session:02X}",
                f"0x{snap.security_level:02X}" if snap.security_level else "locked",
                "yes" if snap.app_valid else "no",
                snap.software_version,
                str(snap.bytes_written),
                "" if snap.last_nrc is None else f"0x{snap.last_nrc:02X}",
                ", ".join(snap.armed_faults),
            )
            for col, text in enumerate(cells):
                item = self.table.item(row, col)
                if item is None:
                    self.table.setItem(row, col, QTableWidgetItem(text))
                elif item.text() != text:
                    item.setText(text)

    # -- faults ----------------------------------------------------------------------------
    def set_real_buses_allowed(self, allowed: bool) -> None:
        """Operator mode keeps the simulator off real adapters (`AccessControl` decides):
        Start refuses an interface other than a software bus and says why."""
        self._real_buses_allowed = allowed

    def set_fault_injection_allowed(self, allowed: bool) -> None:
        """Operator mode hides fault injection (`AccessControl` decides; issue 14)."""
        self._faults_allowed = allowed
        self.fault_box.setVisible(allowed)

    def _on_inject_clicked(self) -> None:
        if not self._faults_allowed:
            return
        machine = self.machine
        if machine is None:
            return
        text = self.fault_arg.text().strip()
        try:
            arg = int(text, 0) if text else None
            fault = Fault(
                step=self.fault_step.currentText(),
                kind=self.fault_kind.currentText(),
                arg=arg,
                count=self.fault_count.value(),
            )
            machine.inject(self.fault_ecu.currentText(), fault)
        except (ValueError, FotaError, KeyError) as exc:
            self.status_label.setText(f"fault not armed: {exc}")
            return
        self.status_label.setText(f"armed {fault} on {self.fault_ecu.currentText()}")
        self.refresh()

    def _on_clear_clicked(self) -> None:
        machine = self.machine
        if machine is None:
            return
        for ecu in machine.ecus.values():
            ecu.clear_faults()
        self.refresh()


def _shutdown(running: _Running) -> None:
    """Stop machine, notifier and bus (any thread)."""
    running.machine.stop()
    running.notifier.stop(timeout=NOTIFIER_STOP_TIMEOUT_S)
    running.bus.shutdown()
