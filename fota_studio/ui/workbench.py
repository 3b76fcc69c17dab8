"""The GUI's wiring: engine + bridge, CAN channels, the TCU node, panels, menus and the demo.

`Workbench` is built by `app.py` once the main window exists. It owns the application `Engine`
(with its `EngineBridge`), opens the workspace's logical CAN channels on the engine (software
buses such as `virtual` at start, real adapters on CAN ▸ Connect), watches every engine bus in
the trace, puts the TCU's CANopen FOTA node on the first channel so update requests can offer
updates to a machine HMI, and gives the window its panels and menus (update requests, flash,
HMI, OEM logic, TCU bench, simulator, connections, doctor, operator/engineering mode, the
one-click demo). It also owns the technician's conveniences: the main actions with their
shortcuts and tooltips (File ▸ Import firmware, Flash ▸ Start/Cancel, Window ▸ Find in trace,
Ctrl+1…9 for the panels), log files from File ▸ Open log file / Recent log files opened in the
trace, the first-run welcome (`maybe_show_welcome`, Help ▸ Welcome), and the status bar's channel
states, bus load and mode (`channel_statuses` feeds `widgets.status_bar.BusStatusWidget`).
GUI thread only; nothing here blocks on CAN I/O for long (opening a virtual bus is immediate, a
real adapter is opened on demand).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import can
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence

from fota_studio.core.errors import FotaError
from fota_studio.core.events import JobFinished
from fota_studio.engine.engine import Engine
from fota_studio.engine.tcu_lease import REQUEST_REASON, QuietRequestService, TcuOnDemand
from fota_studio.engine.workflow import RequestService, WorkflowFinished
from fota_studio.infra.access import AccessControl, Action
from fota_studio.infra.connections import DEMO_LOGICAL_CHANNEL, bus_settings_for, load_connections
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings, open_bus
from fota_studio.protocols.tcu_node import TcuNode
from fota_studio.ui.dialogs.error_dialog import show_error
from fota_studio.ui.engine_bridge import EngineBridge
from fota_studio.ui.widgets.status_bar import (
    STATE_CLOSED,
    STATE_ERROR,
    STATE_OPEN,
    BusStatusWidget,
    ChannelStatus,
)

_log = logging.getLogger(__name__)

#: Interfaces opened at start without asking (software buses; nothing physical to connect).
SOFTWARE_INTERFACES = frozenset({"virtual", "fota_sim", "udp_multicast"})
#: The TCU-node holder of CAN ▸ TCU node on the bus.
USER_TCU_REASON = "switched on by the user"
#: Window menu order: Ctrl+1 … Ctrl+9.
PANEL_SHORTCUT_ORDER = [
    "repository",
    "ea",
    "requests",
    "flash",
    "hmi",
    "trace",
    "log",
    "sim",
    "oem",
]


class _MenuAction(NamedTuple):
    """One Workbench menu action: the attribute it is kept in, its menu (created on first use),
    text, slot method, shortcut, tooltip, and whether a separator goes before it."""

    attr: str
    menu: str
    text: str
    slot: str
    shortcut: str | None
    tip: str
    separated: bool = False


#: The Workbench's menu actions in menu order (the menus are created in this order too).
MENU_ACTIONS = (
    _MenuAction(
        "action_import",
        "&File",
        "&Import firmware…",
        "import_firmware",
        "Ctrl+I",
        "Import a HEX/S-record/binary/package into the selected Software Repository",
    ),
    _MenuAction(
        "action_connect",
        "&CAN",
        "&Connect adapters",
        "connect_all",
        "Ctrl+Shift+C",
        "Open every configured CAN channel, real adapters included",
    ),
    _MenuAction(
        "action_connections",
        "&CAN",
        "Adapter &settings…",
        "open_connections",
        "Ctrl+Shift+A",
        "Choose the adapter (interface, channel, bitrate) of each logical CAN channel",
    ),
    _MenuAction(
        "action_doctor",
        "&CAN",
        "Connection &doctor…",
        "open_doctor",
        "Ctrl+Shift+D",
        "Check the adapter step by step: driver, channel, bitrate, traffic, ECU answers",
    ),
    _MenuAction(
        "action_tcu_on",
        "&CAN",
        "&TCU node on the bus",
        "_on_action_tcu_on_triggered",
        None,
        "Keep the TCU's CANopen node (boot-up, heartbeat, SDO) on the first channel "
        "between update requests; off, the app sends nothing unasked",
        separated=True,
    ),
    _MenuAction(
        "action_hmi_bus",
        "&CAN",
        "Attach machine &HMI to a bus…",
        "attach_hmi_to_bus",
        None,
        "Let the HMI and OEM panels act as machine-side nodes on an adapter",
    ),
    _MenuAction(
        "action_start_flash",
        "F&lash",
        "&Start flash",
        "start_flash",
        "Ctrl+Shift+F",
        "Flash the version chosen in the Flash panel to the chosen ECU",
    ),
    _MenuAction(
        "action_cancel_flash",
        "F&lash",
        "&Cancel flash",
        "cancel_flash",
        "Ctrl+Shift+X",
        "Cancel the running flash at the next safe point (between blocks)",
    ),
    _MenuAction(
        "action_find",
        "&Window",
        "&Find in trace",
        "find_in_trace",
        "Ctrl+F",
        "Search the decoded text of the CAN trace",
        separated=True,
    ),
    _MenuAction(
        "action_demo",
        "&Demo",
        "&Run demo update",
        "run_demo",
        "F5",
        "Run the whole update flow on a simulated machine (approve it on the machine HMI)",
    ),
    _MenuAction(
        "action_cancel_demo",
        "&Demo",
        "&Cancel demo",
        "cancel_demo",
        "Shift+F5",
        "Cancel the running demo request (refused once the operator approved)",
    ),
    _MenuAction(
        "action_reset_demo",
        "&Demo",
        "R&eset demo",
        "reset_demo",
        None,
        "A fresh simulated machine on the demo's own starting version: the next run "
        "offers the demo's pinned update again (never a downgrade)",
    ),
    _MenuAction(
        "action_presentation",
        "&Demo",
        "&Presentation HMI…",
        "open_presentation",
        "F11",
        "The machine display in its own large window for a customer (F11 in it: full screen)",
        separated=True,
    ),
    _MenuAction(
        "action_mode",
        "&Mode",
        "Operator / engineering &mode…",
        "open_mode_dialog",
        "Ctrl+Shift+M",
        "Operator mode locks repositories and EAs; engineering mode needs the passphrase",
    ),
    _MenuAction(
        "action_trust",
        "&Mode",
        "Signing &keys…",
        "open_trust_dialog",
        None,
        "Trusted package-signing keys by fingerprint, revocations, the signing policy",
    ),
    _MenuAction(
        "action_welcome", "&Help", "&Welcome…", "show_welcome", None, "The first-run welcome"
    ),
)


def _with_shortcut(tip: str, action: QAction) -> str:
    """`tip (Ctrl+I)`: tooltips name the shortcut so people learn it."""
    keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    return f"{tip} ({keys})" if keys and keys not in tip else tip


class Workbench(QObject):
    """Engine, channels, TCU node and every engine-facing panel of one main window."""

    # Made by _build_menus from MENU_ACTIONS.
    action_import: QAction
    action_connect: QAction
    action_connections: QAction
    action_doctor: QAction
    action_tcu_on: QAction
    action_hmi_bus: QAction
    action_start_flash: QAction
    action_cancel_flash: QAction
    action_find: QAction
    action_demo: QAction
    action_cancel_demo: QAction
    action_reset_demo: QAction
    action_presentation: QAction
    action_mode: QAction
    action_trust: QAction
    action_welcome: QAction

    def __init__(self, window: Any, ws: Workspace) -> None:
        super().__init__(window)
        from fota_studio.ui.panels.ea_panel import ArchitecturePanel
        from fota_studio.ui.panels.flash_panel import FlashPanel
        from fota_studio.ui.panels.hmi_panel import HmiPanel
        from fota_studio.ui.panels.oem_panel import OemPanel, TcuBenchPanel
        from fota_studio.ui.panels.requests_panel import RequestsPanel
        from fota_studio.ui.panels.sim_panel import SimPanel
        from fota_studio.ui.panels.trace_panel import TracePanel
        from fota_studio.ui.technician.technician_view import TechnicianView

        self.window = window
        self.ws = ws
        self.engine = Engine()
        self.bridge = EngineBridge(self.engine, self)
        window.engine = self.engine
        # Quiet by default: the TCU node transmits only while a request runs or the user
        # switched it on (CAN ▸ TCU node on the bus), never just because a channel opened.
        self.tcu_on_demand = TcuOnDemand(self._tcu_bus, state_file=ws.root / "tcu-state.json")
        self.service: RequestService | None = None
        self.last_report: Any = None
        self.connections_dialog: Any = None
        self._reacquire_user_tcu = False
        self.access = AccessControl(ws)
        self.demo: Any = None
        self.presentation: Any = None
        self._pending_channels: dict[str, BusSettings] = {}
        self._machine_buses: list[Any] = []
        # What the status bar shows per logical channel: the adapter opened, or why it failed.
        self.channel_settings: dict[str, BusSettings] = {}
        self.channel_errors: dict[str, str] = {}
        self.welcome: Any = None

        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        self.ea_panel = ArchitecturePanel(ws)
        self.requests_panel = RequestsPanel(ws)
        self.flash_panel = FlashPanel(self.engine, self.bridge, ws)
        self.technician_view = TechnicianView(self.engine, self.bridge, ws)
        self.hmi_panel = HmiPanel()
        self.oem_panel = OemPanel()
        self.tcu_bench_panel = TcuBenchPanel()
        self.sim_panel = SimPanel()
        self.sim_panel.set_default_state_dir(ws.root)
        self.trace_panel = TracePanel(workspace=ws)
        window.add_panel("ea", "Electronic Architectures", self.ea_panel, tabify_with="repository")
        window.add_panel(
            "requests", "Update Requests", self.requests_panel, area=left, tabify_with="repository"
        )
        window.add_panel("flash", "Flash", self.flash_panel, area=right)
        window.add_panel(
            "technician", "Technician", self.technician_view, area=right, tabify_with="flash"
        )
        window.add_panel(
            "hmi", "Machine HMI (demo)", self.hmi_panel, area=right, tabify_with="flash"
        )
        window.add_panel("oem", "OEM Logic", self.oem_panel, area=right, tabify_with="flash")
        window.add_panel(
            "tcu_bench", "TCU Bench", self.tcu_bench_panel, area=right, tabify_with="flash"
        )
        window.add_panel("sim", "Simulator", self.sim_panel, area=right, tabify_with="flash")
        window.add_panel("trace", "CAN Trace", self.trace_panel, area=bottom)
        log_dock = window.dock("log")
        if log_dock is not None:
            window.tabifyDockWidget(window.dock("trace"), log_dock)
        window.dock("trace").raise_()
        window.dock("repository").raise_()
        window.dock("flash").raise_()
        # An imported version is offered at once by the Flash panel and the technician view.
        window.repository_panel.import_finished.connect(self._on_versions_changed)

        self.requests_panel.bus_log_requested.connect(self._open_bus_log)
        # A flash step opens its frames in the trace; the trace's Messages tab links back.
        from fota_studio.ui.trace_link import TraceLink

        self.trace_link = TraceLink(
            self.trace_panel,
            lambda: self.ws,
            raise_trace=lambda: self.window.dock("trace").raise_(),
            parent=self,
        )
        self.flash_panel.frames_requested.connect(self.trace_link.open_frames)
        self.requests_panel.frames_requested.connect(self.trace_link.open_frames)
        # A PDX's flash parameters accepted into an EA: the EA panel re-reads the saved EAs
        # (it keeps its own unsaved edits instead of dropping them).
        window.repository_panel.ea_profile_changed.connect(self._on_ea_profile_changed)
        self.trace_link.step_activated.connect(
            lambda record, index, block: (
                self.flash_panel.record_steps.record is record
                and self.flash_panel.record_steps.select_step(index, block)
            )
        )
        self.hmi_panel.presentation_requested.connect(self.open_presentation)
        self.trace_panel.log_file_opened.connect(self.window.remember_log_file)
        # ISO-TP pairs and DID names of the trace decoder follow the saved EAs.
        self.ea_panel.architecture_saved.connect(lambda _name: self.trace_panel.load_workspace(ws))
        self.bridge.event_received.connect(self.requests_panel.on_event)
        self.bridge.event_received.connect(self.oem_panel.on_event)
        self.bridge.event_received.connect(self._on_installed_event)
        self.access.add_listener(lambda _mode: self._apply_mode())
        self._build_menus()
        self._apply_mode()
        self._add_tooltips()
        window.log_file_requested.connect(self.open_log_file)
        # One approval timeout: Settings ▸ operator approval (and verification) timeout.
        self._apply_timeouts(window.settings)
        window.settings_changed.connect(self._apply_timeouts)
        window.workspace_changed.connect(self._on_window_workspace_changed)
        self._point_simulator_at_demo_channel()
        self.connect_channels(software_only=True)
        self.status_widget = BusStatusWidget(
            self.channel_statuses, self.trace_panel.store, lambda: self.access.mode.value
        )
        window.statusBar().addPermanentWidget(self.status_widget)

    # -- menus -------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        win = self.window
        win.set_panel_shortcuts(PANEL_SHORTCUT_ORDER)
        bar = win.menuBar()
        menus = {"&File": win.file_menu, "&Window": win.goto_menu, "&Help": win.help_menu}
        for spec in MENU_ACTIONS:
            if spec.menu not in menus:
                menus[spec.menu] = bar.addMenu(spec.menu)  # menus are created in table order
            menu = menus[spec.menu]
            if spec.separated:
                menu.addSeparator()
            action = self._action(
                menu, spec.text, getattr(self, spec.slot), spec.shortcut, spec.tip
            )
            setattr(self, spec.attr, action)
        self.action_tcu_on.setCheckable(True)
        win.file_menu.insertAction(win._file_quit_separator, self.action_import)
        self.action_open_log = win.open_log_action
        # Keep Help last, with the welcome at its top.
        bar.removeAction(win.help_menu.menuAction())
        bar.addAction(win.help_menu.menuAction())
        win.help_menu.insertAction(win.help_menu.actions()[0], self.action_welcome)
        toolbar = win.addToolBar("Main")
        toolbar.setObjectName("toolbar_main")
        for action in (
            self.action_demo,
            self.action_connect,
            self.action_doctor,
            self.action_open_log,
            self.action_import,
            self.action_start_flash,
            win.technician_action,
        ):
            toolbar.addAction(action)
        self.toolbar = toolbar

    def _action(
        self,
        menu: Any,
        text: str,
        slot: Any,
        shortcut: str | None = None,
        tip: str | None = None,
    ) -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setToolTip(_with_shortcut(tip, action))
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _add_tooltips(self) -> None:
        """Toolbar tooltips name the shortcut ("… (F5)"), like the menus do."""
        open_log = self.window.open_log_action
        open_log.setToolTip(_with_shortcut(open_log.toolTip(), open_log))

    # -- main actions ----------------------------------------------------------------------

    def import_firmware(self) -> None:
        """File ▸ Import firmware…: the repository panel's import form (progress inline)."""
        self.window.focus_panel("repository")
        self.window.repository_panel.import_file()

    def start_flash(self) -> None:
        """Flash ▸ Start flash: what the Flash panel's Start button does."""
        self.window.focus_panel("flash")
        if self.flash_panel.start_button.isEnabled():
            self.flash_panel.start_button.click()

    def cancel_flash(self) -> None:
        """Flash ▸ Cancel flash: what the Flash panel's Cancel button does."""
        if self.flash_panel.cancel_button.isEnabled():
            self.flash_panel.cancel_button.click()

    def find_in_trace(self) -> None:
        """Window ▸ Find in trace: raise the trace and put the cursor in its search box."""
        self.window.focus_panel("trace")
        self.trace_panel.search_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.trace_panel.search_edit.selectAll()

    def open_log_file(self, path: str) -> None:
        """Open a CAN log in the trace (background load, progress, Cancel) and remember it."""
        if not Path(path).is_file():
            show_error(
                self.window,
                "Cannot open the log file",
                FotaError(f"{path} does not exist (moved or deleted?)"),
                what_to_do="Pick the file again with File ▸ Open log file….",
            )
            return
        self.window.focus_panel("trace")
        self.trace_panel.open_file(path)  # log_file_opened → remember_log_file

    # -- welcome ---------------------------------------------------------------------------

    def maybe_show_welcome(self) -> Any:
        """Show the welcome unless the user asked not to; returns the dialog or None."""
        if self.window.settings.ui.welcome_shown:
            return None
        return self.show_welcome()

    def show_welcome(self) -> Any:
        """Help ▸ Welcome…: the three ways in (non-modal; the choice runs the menu action)."""
        from fota_studio.ui.dialogs.welcome_dialog import WelcomeDialog

        dlg = WelcomeDialog(self.window, dont_show_again=self.window.settings.ui.welcome_shown)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.demo_requested.connect(self.run_demo)
        dlg.connect_requested.connect(self.open_connections)
        dlg.open_log_requested.connect(self.window.open_log_action.trigger)
        dlg.finished.connect(lambda _result: self._on_welcome_finished(dlg.dont_show_again()))
        self.welcome = dlg
        dlg.open()
        return dlg

    def _on_welcome_finished(self, dont_show_again: bool) -> None:
        self.welcome = None
        settings = self.window.settings
        if settings.ui.welcome_shown != dont_show_again:
            ui = replace(settings.ui, welcome_shown=dont_show_again)
            self.window.update_settings(replace(settings, ui=ui))

    # -- status ----------------------------------------------------------------------------

    def channel_statuses(self) -> list[ChannelStatus]:
        """The state of every logical channel the status bar shows (cheap: no I/O)."""
        open_now = set(self.engine.channels())
        out: list[ChannelStatus] = []
        names = list(self.channel_settings)
        names += [n for n in self.channel_errors if n not in self.channel_settings]
        names += [n for n in self._pending_channels if n not in names]
        for name in names:
            if name in open_now:
                settings = self.channel_settings.get(name)
                state, detail = self._bus_state(name)
                detail = detail or (settings.describe() if settings is not None else "")
            else:
                # Not open: show the adapter it WOULD open (the saved settings), not the old one.
                settings = self._pending_channels.get(name) or self.channel_settings.get(name)
                if name in self.channel_errors:
                    state, detail = STATE_ERROR, self.channel_errors[name]
                else:
                    state, detail = STATE_CLOSED, "not connected (CAN ▸ Connect adapters)"
            interface = settings.interface if settings is not None else ""
            adapter = settings.channel if settings is not None else ""
            bitrate = settings.bitrate_bps if settings is not None else 500_000
            if name == self._tcu_channel() and self.tcu_on_demand.running:
                detail += " · TCU node on the bus"
            out.append(ChannelStatus(name, state, interface, bitrate, detail, adapter))
        if self.demo is not None and self.demo.busy and self.demo.bench is not None:
            out.append(
                ChannelStatus("demo", STATE_OPEN, "virtual", 500_000, "the demo machine", "private")
            )
        return out

    def _bus_state(self, name: str) -> tuple[str, str]:
        fault = self.engine.adapter_fault(name)
        if fault:
            return STATE_ERROR, fault
        try:
            bus, _notifier = self.engine.bus_of(name)
            bus_state = bus.state
        except Exception:  # not every python-can interface reports a state; assume active
            return STATE_OPEN, ""
        if bus_state == can.BusState.ERROR:
            return STATE_ERROR, "bus-off / error state reported by the adapter"
        if bus_state == can.BusState.PASSIVE:
            return STATE_OPEN, "error-passive (listen-only or many errors)"
        return STATE_OPEN, ""

    # -- CAN channels ----------------------------------------------------------------------

    def logical_channels(self) -> dict[str, BusSettings]:
        """Every logical channel an EA of the workspace uses, with the adapter to open."""
        store = EaStore(self.ws)
        channels: dict[str, BusSettings] = {}
        for name in store.names():
            ea = store.get(name)
            for ecu in ea.ecus:
                ch = ecu.connection.channel
                if ch not in channels:
                    channels[ch] = bus_settings_for(self.ws, ch, ea)
        return channels

    def connect_channels(self, *, software_only: bool) -> list[str]:
        """Open the logical channels on the engine; returns the problems (one line each)."""
        problems: list[str] = []
        opened = set(self.engine.channels())
        channels = self.logical_channels()
        self._pending_channels = {n: c for n, c in channels.items() if n not in opened}
        for name, settings in channels.items():
            if name in opened or (software_only and settings.interface not in SOFTWARE_INTERFACES):
                continue
            # The engine opens the bus so its own frames reach the trace (echo or hand-over).
            problem = self._open_channel(name, settings)
            if problem:
                problems.append(f"{name}: {problem}")
            else:
                self.channel_errors.pop(name, None)
        return problems

    def connect_all(self) -> list[str]:
        """CAN ▸ Connect adapters: open every configured channel, real adapters included, and
        report what was done per channel (opened, already open, failed and why)."""
        before = set(self.engine.channels())
        problems = self.connect_channels(software_only=False)
        lines: list[str] = []
        for name, settings in self.logical_channels().items():
            adapter = settings.describe()
            if name in before:
                lines.append(f"{name}: already open on {adapter}")
            elif name in self.engine.channels():
                lines.append(f"{name}: opened on {adapter}")
            else:
                lines.append(f"{name}: NOT opened — {self.channel_errors.get(name, adapter)}")
        if not lines:
            lines.append(
                "No Electronic Architecture of this workspace uses a CAN channel: nothing to open."
            )
        title = "Some CAN channels could not be opened" if problems else "CAN adapters connected"
        self._report(title, lines, ok=not problems)
        return lines

    def apply_connections(self) -> list[str]:
        """Make saved adapter settings take effect now: every open channel whose adapter
        changed is closed and reopened on the new one (never while a job or an update request
        uses it: then it says so and keeps the old adapter until applied again); returns and
        shows one line per changed channel."""
        lines: list[str] = []
        failed = False
        wanted = self.logical_channels()
        open_now = set(self.engine.channels())
        tcu_channel = self._tcu_channel()
        for name, settings in wanted.items():
            current = self.channel_settings.get(name)
            if name in open_now and current == settings:
                continue
            if (
                name not in open_now
                and name not in self.channel_errors
                and (settings.interface not in SOFTWARE_INTERFACES)
            ):
                self._pending_channels[name] = settings
                lines.append(
                    f"{name}: will open on {settings.describe()} with CAN ▸ Connect adapters"
                )
                continue
            if name in open_now:
                busy = self._busy_reason(name, tcu_channel)
                if busy:
                    failed = True
                    old = current.describe() if current is not None else "the old adapter"
                    lines.append(f"{name}: NOT changed — {busy}; still on {old}")
                    continue
                user_tcu = name == tcu_channel and self.tcu_on_demand.held_by(USER_TCU_REASON)
                if name == tcu_channel:
                    self.tcu_on_demand.stop()
                self.trace_panel.capture.detach(name)
                self.engine.close_channel(name)
                self.channel_settings.pop(name, None)
                _log.info("CAN channel %s closed to reopen on %s", name, settings.describe())
                if user_tcu:
                    self._reacquire_user_tcu = True
            self.channel_errors.pop(name, None)
            self._pending_channels[name] = settings
            problems = self._open_channel(name, settings)
            if problems:
                failed = True
                lines.append(f"{name}: NOT opened — {problems}")
            else:
                lines.append(f"{name}: now on {settings.describe()}")
        if self._reacquire_user_tcu:
            # The user had the TCU node on: it follows its channel onto the new adapter.
            self._reacquire_user_tcu = False
            try:
                self.tcu_on_demand.acquire(USER_TCU_REASON)
                lines.append(f"TCU node back on the bus on {self._tcu_channel()}")
            except FotaError as exc:
                self.action_tcu_on.setChecked(False)
                failed = True
                lines.append(f"TCU node switched off: {exc}")
        self._point_simulator_at_demo_channel()
        if not lines:
            lines.append("No open channel changed its adapter.")
        title = "Adapter settings not fully applied" if failed else "Adapter settings applied"
        self._report(title, lines, ok=not failed)
        self.status_widget.refresh()
        return lines

    def _busy_reason(self, name: str, tcu_channel: str | None) -> str:
        """Why channel `name` must stay open now ("" when it may close)."""
        if self.engine.channel_busy(name):
            return "a flash or another job is running on it"
        if name == tcu_channel and self.tcu_on_demand.held_by(REQUEST_REASON):
            return "an update request is running on it"
        return ""

    def _open_channel(self, name: str, settings: BusSettings) -> str:
        """Open one channel on the engine and the trace; "" or the problem."""
        try:
            bus, notifier = self.engine.open_channel(name, settings)
        except FotaError as exc:
            self.channel_errors[name] = str(exc)
            return str(exc)
        self.channel_settings[name] = settings
        self._pending_channels.pop(name, None)
        self.trace_panel.attach_bus(name, bus, notifier, tx_echo=self.engine.echoes_tx(name))
        self._ensure_service()
        _log.info("CAN channel %s open on %s", name, settings.describe())
        return ""

    def _report(self, title: str, lines: list[str], *, ok: bool) -> Any:
        """A non-modal message box saying what an adapter action did (kept as last_report)."""
        from PySide6.QtWidgets import QMessageBox

        if self.last_report is not None:
            with contextlib.suppress(RuntimeError):  # already closed and deleted
                self.last_report.close()
        icon = QMessageBox.Icon.Information if ok else QMessageBox.Icon.Warning
        box = QMessageBox(icon, title, "\n".join(lines), parent=self.window)
        if not ok:
            box.setInformativeText(
                "Check CAN ▸ Adapter settings… and run CAN ▸ Connection doctor…."
            )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_report = box
        self.window.statusBar().showMessage(f"{title}: " + "; ".join(lines), 15000)
        return box

    @property
    def tcu(self) -> TcuNode | None:
        """The app's TCU node while it is on the bus (None while quiet)."""
        return self.tcu_on_demand.node

    def _tcu_channel(self) -> str | None:
        """The channel the TCU node sits on: CAN1 (the demo's) if open, else the first open."""
        names = self.engine.channels()
        if DEMO_LOGICAL_CHANNEL in names:
            return DEMO_LOGICAL_CHANNEL
        return names[0] if names else None

    def _tcu_bus(self) -> tuple[Any, Any] | None:
        name = self._tcu_channel()
        return self.engine.bus_of(name) if name is not None else None

    def _ensure_service(self) -> None:
        """Once a channel is open, update requests can run (they start the TCU node)."""
        if self.service is None:
            self.service = QuietRequestService(
                self.ws, self.engine, tcu=self.tcu_on_demand, sink=self.bridge
            )
            self.requests_panel.set_service(self.service)

    def _on_action_tcu_on_triggered(self) -> None:
        self.set_tcu_on_bus(self.action_tcu_on.isChecked())

    def _on_ea_profile_changed(self, _name: str) -> None:
        """A PDX's flash parameters went into an EA: re-read the saved EAs (unless the EA
        panel holds unsaved edits, which it keeps)."""
        if not self.ea_panel.has_unsaved_changes():
            self.ea_panel.set_workspace(self.ws)

    def set_tcu_on_bus(self, on: bool) -> bool:
        """CAN ▸ TCU node on the bus: keep the TCU node transmitting between requests (for a
        machine HMI to find it); False (and a message) when it cannot start."""
        if on == self.tcu_on_demand.held_by(USER_TCU_REASON):
            return True
        if not on:
            self.tcu_on_demand.release(USER_TCU_REASON)
            self.window.statusBar().showMessage("TCU node off the bus (quiet)", 5000)
            return True
        try:
            node = self.tcu_on_demand.acquire(USER_TCU_REASON)
        except FotaError as exc:
            self.action_tcu_on.setChecked(False)
            self._report("The TCU node cannot start", [str(exc)], ok=False)
            return False
        self.window.statusBar().showMessage(
            f"TCU node 0x{node.node_id:02X} on {self._tcu_channel()}: boot-up sent, "
            "heartbeat every second",
            5000,
        )
        return True

    def _point_simulator_at_demo_channel(self) -> None:
        """Make the simulator panel join the adapter the demo's CAN1 maps to."""
        conns = load_connections(self.ws)
        settings = self.logical_channels().get("CAN1")
        if settings is None or ("CAN1" in conns and settings.interface != "virtual"):
            return
        self.sim_panel.interface_edit.setText(settings.interface)
        self.sim_panel.channel_edit.setText(settings.channel)

    def attach_hmi_to_bus(self) -> None:
        """Let the HMI and OEM panels act as machine-side nodes on an adapter the user picks."""
        from fota_studio.ui.dialogs.connection_dialog import ConnectionDialog

        dlg = ConnectionDialog(self.window)
        if not dlg.exec():
            return
        try:
            bus = open_bus(dlg.settings())
        except FotaError as exc:
            show_error(self.window, "Cannot open the adapter", exc)
            return
        self._machine_buses.append(bus)
        self.hmi_panel.attach_bus(bus)
        self.window.dock("hmi").raise_()

    def open_connections(self) -> None:
        """CAN ▸ Adapter settings…"""
        from fota_studio.ui.dialogs.connections_dialog import ConnectionsDialog

        store = EaStore(self.ws)
        names = store.names()
        ea = store.get(names[0]) if names else None
        dlg = ConnectionsDialog(self.ws, self.window, ea=ea, detect=True)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        # OK saved the settings: they take effect at once (the channel is reopened).
        dlg.accepted.connect(self.apply_connections)
        self.connections_dialog = dlg
        dlg.open()

    def open_doctor(self) -> None:
        """CAN ▸ Connection doctor… on the first logical channel's adapter."""
        from fota_studio.ui.dialogs.doctor_dialog import DoctorDialog

        channels = self.logical_channels()
        if not channels:
            show_error(
                self.window,
                "Nothing for the connection doctor to check",
                "No Electronic Architecture of this workspace uses a CAN channel.",
                what_to_do="Add an ECU to an EA in the Electronic Architectures panel, or check "
                "any adapter from CAN ▸ Adapter settings… ▸ Check connection….",
            )
            return
        name, settings = next(iter(channels.items()))
        DoctorDialog(settings, self.window, label=name).exec()

    def _open_bus_log(self, record_id: int) -> None:
        """Show a flash's session bus log (BLF kept with its record) in the trace."""
        if self.trace_panel.open_flash_record(self.ws, record_id):
            self.window.dock("trace").raise_()

    def _apply_timeouts(self, settings: Any) -> None:
        """Settings ▸ approval timeouts become the Checkpoint timeouts every request runs with
        (the Run options show them) and the demo's; the TCU's own objects are not consulted."""
        self.requests_panel.options = replace(
            self.requests_panel.options,
            approval_timeout_s=settings.approval.operator_timeout_s,
            verification_timeout_s=settings.approval.verification_timeout_s,
        )

    def _on_versions_changed(self, *_: object) -> None:
        """An import ended: the version lists of the Flash panel and technician view refill."""
        self.flash_panel.versions_changed()
        self.technician_view.versions_changed()

    def _on_installed_event(self, event: object) -> None:
        """A flash job or an update request ended: the machines' installed versions may have
        changed (the engine/workflow wrote them); the panels that show them re-read."""
        if isinstance(event, JobFinished | WorkflowFinished):
            self.flash_panel.installed_changed()
            self.ea_panel.installed_changed()

    # -- demo and modes --------------------------------------------------------------------

    def run_demo(self) -> None:
        """Demo ▸ Run demo update: the whole flow on a private simulated machine."""
        from fota_studio.ui.demo_runner import DemoRunner

        if self.demo is not None and self.demo.busy:
            return
        if self.demo is not None:
            self.demo.shutdown()
        self.demo = DemoRunner(
            self.ws,
            hmi_panel=self.hmi_panel,
            approval_timeout_s=self.window.settings.approval.operator_timeout_s,
            parent=self,
        )
        self.demo.event_received.connect(self.requests_panel.on_event)
        self.demo.event_received.connect(self.oem_panel.on_event)
        self.demo.event_received.connect(self._on_installed_event)
        self.demo.started.connect(self._on_demo_started)
        self.demo.finished.connect(self._on_demo_finished)
        self.demo.failed.connect(self._on_demo_failed)
        self.window.dock("hmi").raise_()
        self.window.statusBar().showMessage("Demo: starting the simulated machine…", 5000)
        self.demo.run()
        if self.presentation is not None:
            self.presentation.set_demo_busy(True)

    def reset_demo(self) -> list[str]:
        """Demo ▸ Reset demo: cancel the demo's open request and put the demo machine back
        on the catalog's starting version (refused while a demo runs); says what it did."""
        from fota_studio.demo.run import reset_demo

        if self.demo is not None and self.demo.busy:
            self.window.statusBar().showMessage(
                "Demo: reset refused while the demo runs (Demo ▸ Cancel demo first)", 8000
            )
            return []
        try:
            done = reset_demo(self.ws, reason="demo reset by the user")
        except FotaError as exc:
            self._report("The demo cannot be reset", [str(exc)], ok=False)
            return []
        self.hmi_panel.detach()
        self.hmi_panel.reset_screen()
        self.requests_panel.refresh()
        self.flash_panel.installed_changed()
        self.ea_panel.installed_changed()
        text = "; ".join(done) if done else "the demo machine was already fresh"
        self.window.statusBar().showMessage(f"Demo reset: {text}", 10000)
        return done

    def open_presentation(self) -> Any:
        """Demo ▸ Presentation HMI…: the machine display in its own window (F11 full screen)."""
        from fota_studio.ui.panels.presentation_hmi import PresentationHmi

        if self.presentation is None:
            win = PresentationHmi(self.hmi_panel, self.window)
            win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            win.run_demo_requested.connect(self.run_demo)
            win.reset_demo_requested.connect(self.reset_demo)
            win.destroyed.connect(lambda _obj=None: setattr(self, "presentation", None))
            win.set_caption(
                "Demo machine: simulated excavator, its VCU updated over CANopen by the TCU"
            )
            self.presentation = win
        self.presentation.set_demo_busy(self.demo is not None and self.demo.busy)
        self.presentation.show()
        self.presentation.raise_()
        self.presentation.activateWindow()
        return self.presentation

    def _on_demo_started(self, request_id: int) -> None:
        bench = self.demo.bench if self.demo is not None else None
        if bench is not None and bench.engine is not None:
            channel = bench.engine.channels()[0]
            bus, notifier = bench.engine.bus_of(channel)
            self.trace_panel.attach_bus(
                "demo", bus, notifier, tx_echo=bench.engine.echoes_tx(channel)
            )
        self.requests_panel.refresh()
        self.requests_panel.select(request_id)
        self.window.statusBar().showMessage(
            f"Demo: update request {request_id} offered — approve it on the machine HMI", 10000
        )

    def _on_demo_failed(self, text: str) -> None:
        if self.presentation is not None:
            self.presentation.set_demo_busy(False)
        show_error(self.window, "The demo could not start", FotaError(text))

    def _on_demo_finished(self, status: str, error: str) -> None:
        self.requests_panel.refresh()
        if self.presentation is not None:
            self.presentation.set_demo_busy(False)
        text = f"Demo finished: {status}" + (f" — {error}" if error else "")
        self.window.statusBar().showMessage(text, 15000)

    def cancel_demo(self) -> None:
        """Demo ▸ Cancel demo: cancel the running demo request (refused after approval)."""
        if self.demo is None or not self.demo.busy:
            self.window.statusBar().showMessage("No demo is running", 5000)
            return
        self.demo.cancel()
        self.window.statusBar().showMessage("Demo: cancel requested", 5000)

    def _on_window_workspace_changed(self, ws: Workspace) -> None:
        """File ▸ Open workspace…: follow the new workspace (access mode, trace, channels)."""
        self.ws = ws
        self.sim_panel.set_default_state_dir(ws.root)
        self.access = AccessControl(ws)
        self.access.add_listener(lambda _mode: self._apply_mode())
        self._apply_mode()
        self.trace_panel.load_workspace(ws)
        self.tcu_on_demand.stop()
        self.action_tcu_on.setChecked(False)
        self.tcu_on_demand = TcuOnDemand(self._tcu_bus, state_file=ws.root / "tcu-state.json")
        if self.service is not None:
            self.service.shutdown()
            self.service = None
            if self.engine.channels():
                self._ensure_service()
        self._point_simulator_at_demo_channel()
        self.connect_channels(software_only=True)

    def open_mode_dialog(self) -> None:
        """Mode ▸ Operator / engineering mode…"""
        from fota_studio.ui.dialogs.mode_dialog import ModeDialog

        ModeDialog(self.access, self.window).exec()

    def open_trust_dialog(self) -> None:
        """Mode ▸ Signing keys…"""
        from fota_studio.ui.dialogs.trust_dialog import TrustDialog

        TrustDialog(self.ws, self.access, self.window).exec()

    def _apply_mode(self) -> None:
        ro = self.access.read_only
        if ro:
            # Operator mode opens on the technician view (View ▸ Technician view leaves it).
            self.window.set_technician_view(True)
        self.ea_panel.set_read_only(ro)
        self.window.repository_panel.set_read_only(ro)
        # Operator mode is a lockdown (issues 14, 15): what sends on the bus by hand (raw
        # transmit, the TCU bench, a manual OEM verdict, the TCU switch, a machine HMI on an
        # adapter, the simulator on a real adapter), fault injection and the adapter settings
        # need engineering mode.
        raw = self.access.allows(Action.RAW_TRANSMIT)
        self.trace_panel.set_transmit_allowed(raw)
        self.sim_panel.set_fault_injection_allowed(self.access.allows(Action.FAULT_INJECTION))
        self.tcu_bench_panel.set_allowed(raw)
        self.oem_panel.set_manual_allowed(raw)
        self.sim_panel.set_real_buses_allowed(raw)
        if hasattr(self, "action_tcu_on"):  # menus are built after the first call
            self.action_tcu_on.setEnabled(raw)
            self.action_hmi_bus.setEnabled(raw)
            self.action_connections.setEnabled(self.access.allows(Action.SETTINGS))
            if not raw and self.tcu_on_demand.held_by(USER_TCU_REASON):
                self.action_tcu_on.setChecked(False)
                self.tcu_on_demand.release(USER_TCU_REASON)

    # -- shutdown --------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the demo, the TCU node and machine-side buses (the window stops the engine)."""
        if self.presentation is not None:
            self.presentation.close()
            self.presentation = None
        if self.demo is not None:
            self.demo.shutdown()
            self.demo = None
        if self.service is not None:
            self.service.shutdown()
        self.hmi_panel.shutdown()
        self.oem_panel.shutdown()
        self.tcu_bench_panel.stop()
        self.tcu_on_demand.stop()
        for bus in self._machine_buses:
            bus.shutdown()
        self._machine_buses.clear()
