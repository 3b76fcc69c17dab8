"""Regenerate the user manual's screenshots (docs/images/*.png) from the real application.

`make screenshots` runs this script. It builds what `app.py` builds — `MainWindow` + `Workbench`
on a fresh temporary workspace seeded with the demo data — renders every widget offscreen with
`QWidget.grab()` (QT_QPA_PLATFORM=offscreen: no X server, same pixels on every machine that has
the same fonts), drives the app to each state (first start, the one-click demo waiting for the
operator, the demo finished, the trace with the demo's bus log open as a file document beside
the live capture, the EA editor, the connection doctor) and saves one PNG
per shot, reduced to a 256-colour palette so each stays well under ~150 KB. Settings, the dock
layout and the CAN channel are private to the run (a unique `virtual` channel), so a running
FOTA Studio is never disturbed. Runs on its own main thread, which becomes the Qt GUI thread;
`take_screenshots()` is the core the test suite calls with a single shot.

    .venv/bin/python docs/tools/screenshots.py [--out docs/images] [--only main_window ...]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# Before Qt loads: offscreen rendering is deterministic and needs no display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QAbstractItemView, QApplication, QWidget  # noqa: E402

_log = logging.getLogger("screenshots")

OUT_DIR = ROOT / "docs" / "images"
WINDOW_SIZE = (1400, 860)
#: The technician view is shown at a small laptop's size (what it is designed for).
TECHNICIAN_SIZE = (1024, 700)
DIALOG_WIDTH_PX = 640
TRACE_DOCK_HEIGHT_PX = 560
DEMO_OFFER_TIMEOUT_S = 60.0
DEMO_FINISH_TIMEOUT_S = 120.0
DOCTOR_TIMEOUT_S = 30.0
#: Every shot, in the order they are taken (later shots build on the state of earlier ones).
SHOTS = (
    "welcome",
    "main_window",
    "ea_editor",
    "doctor",
    "technician_view",
    "demo_offer",
    "demo_presentation",
    "demo_done",
    "trace",
)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Run the Qt event loop until `condition()` holds; RuntimeError naming `what` on timeout."""
    app = QApplication.instance()
    assert app is not None
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"screenshots: timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.02)  # a script, not the GUI: let the worker threads run
    app.processEvents()


def settle(seconds: float = 0.3) -> None:
    """Let timers (trace drain, status bar, layout) run for a moment before a grab."""
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, seconds + 5.0, "the GUI to settle")


def save_png(widget: QWidget, path: Path) -> Path:
    """Grab `widget` (offscreen rendering of the real widget) and save it as a small PNG."""
    image = widget.grab().toImage()
    # A 256-colour palette keeps UI screenshots sharp at a third of the size.
    small = image.convertToFormat(
        QImage.Format.Format_Indexed8, Qt.ImageConversionFlag.ThresholdDither
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not small.save(str(path), "PNG", 0):  # 0 = smallest file (zlib level 9)
        raise RuntimeError(f"screenshots: cannot write {path}")
    _log.info("%s: %d x %d, %.0f KB", path.name, image.width(), image.height(), _kb(path))
    return path


def _kb(path: Path) -> float:
    return path.stat().st_size / 1024


class _Session:
    """The real app objects on a private temporary workspace (torn down by `close`)."""

    def __init__(self, tmp: Path) -> None:
        from fota_studio.app import open_workspace
        from fota_studio.infra.connections import ChannelConnection, set_connection
        from fota_studio.ui.main_window import MainWindow, apply_theme
        from fota_studio.ui.workbench import Workbench

        app = QApplication.instance()
        assert isinstance(app, QApplication)
        apply_theme(app, "light")  # the same look whatever the OS of the machine says
        self.ws = open_workspace(tmp / "workspace")
        # A private channel: a FOTA Studio running on this machine never sees these frames.
        set_connection(
            self.ws,
            ChannelConnection(
                logical_channel="CAN1", interface="virtual", channel=f"shots-{uuid.uuid4().hex[:8]}"
            ),
        )
        qsettings = QSettings(str(tmp / "layout.ini"), QSettings.Format.IniFormat)
        self.window = MainWindow(
            self.ws,
            settings_path=tmp / "settings.json",
            qsettings=qsettings,
            open_workspace=open_workspace,
        )
        self.bench = Workbench(self.window, self.ws)
        self.window.shutdown_hooks.append(self.bench.shutdown)
        self.window.resize(*WINDOW_SIZE)
        self.window.show()
        settle(0.5)

    def close(self) -> None:
        self.window.close()
        self.window.ws.close()
        self.window.deleteLater()
        QApplication.processEvents()


def _shot_welcome(s: _Session, out: Path) -> Path:
    from fota_studio.ui.dialogs.welcome_dialog import WelcomeDialog

    dlg = WelcomeDialog(s.window)
    dlg.resize(DIALOG_WIDTH_PX, dlg.sizeHint().height())
    dlg.show()
    settle(0.2)
    try:
        return save_png(dlg, out)
    finally:
        dlg.close()
        dlg.deleteLater()


def _shot_main_window(s: _Session, out: Path) -> Path:
    s.window.focus_panel("repository")
    s.window.focus_panel("flash")
    settle(1.2)  # one status-bar refresh
    return save_png(s.window, out)


def _shot_ea_editor(s: _Session, out: Path) -> Path:
    s.window.focus_panel("ea")
    from fota_studio.infra.ea_store import EaStore

    # The demo EA's VCU: the ECU form shows connection, UDS profile and sequence.
    s.bench.ea_panel.select_architecture(EaStore(s.ws).names()[0], "VCU")
    settle(0.3)
    return save_png(s.window.dock("ea"), out)


def _shot_doctor(s: _Session, out: Path) -> Path:
    from fota_studio.ui.dialogs.doctor_dialog import DoctorDialog

    name, settings = next(iter(s.bench.logical_channels().items()))
    dlg = DoctorDialog(settings, s.window, label=name, listen_s=0.5)
    dlg.show()
    try:
        wait_until(lambda: not dlg.running, DOCTOR_TIMEOUT_S, "the connection doctor")
        if dlg.checks.topLevelItemCount():
            dlg.checks.setCurrentItem(dlg.checks.topLevelItem(0))
        settle(0.2)
        return save_png(dlg, out)
    finally:
        dlg.close()
        dlg.deleteLater()


def _shot_technician_view(s: _Session, out: Path) -> Path:
    """The technician view at 1024×700 after "Check the ECU" read the simulated VCU."""
    sim = s.bench.sim_panel
    sim.start_button.click()  # the simulated machine joins the demo channel
    wait_until(lambda: sim.stop_button.isEnabled(), DOCTOR_TIMEOUT_S, "the simulator")
    s.window.resize(*TECHNICIAN_SIZE)
    s.window.set_technician_view(True)
    view = s.bench.technician_view
    view.ecu_combo.setCurrentIndex(view.ecu_combo.findData("VCU"))
    view.check_button.click()
    try:
        wait_until(view.start_button.isEnabled, DOCTOR_TIMEOUT_S, "the pre-flight check")
        settle(0.5)
        return save_png(s.window, out)
    finally:
        s.window.set_technician_view(False)
        sim.stop_button.click()
        s.window.resize(*WINDOW_SIZE)
        settle(0.3)


def _shot_demo_offer(s: _Session, out: Path) -> Path:
    hmi = s.bench.hmi_panel
    s.bench.action_demo.trigger()
    wait_until(lambda: hmi.approve_button.isEnabled(), DEMO_OFFER_TIMEOUT_S, "the demo offer")
    s.window.focus_panel("requests")
    s.window.focus_panel("hmi")
    settle(1.2)
    return save_png(s.window, out)


def _shot_demo_presentation(s: _Session, out: Path) -> Path:
    """The presentation HMI (Demo ▸ Presentation HMI…) showing the demo offer to a customer."""
    if s.bench.demo is None or not s.bench.hmi_panel.approve_button.isEnabled():
        _shot_demo_offer(s, out.with_name("demo_offer.png"))
    pres = s.bench.open_presentation()
    pres.resize(*WINDOW_SIZE)
    settle(0.8)
    try:
        return save_png(pres, out)
    finally:
        pres.hide()  # the demo goes on in the main window (demo_done approves it there)


def _shot_demo_done(s: _Session, out: Path) -> Path:
    bench = s.bench
    if bench.demo is None or not bench.hmi_panel.approve_button.isEnabled():
        _shot_demo_offer(s, out)
    finished: list[str] = []
    assert bench.demo is not None
    bench.demo.finished.connect(lambda status, _error: finished.append(status))
    bench.hmi_panel.approve_button.click()
    wait_until(lambda: bool(finished), DEMO_FINISH_TIMEOUT_S, "the demo to finish")
    s.window.focus_panel("requests")
    s.window.focus_panel("hmi")
    settle(1.5)
    return save_png(s.window, out)


def _shot_trace(s: _Session, out: Path) -> Path:
    """The demo flash's bus log opened as a file document (its own tab) beside the live
    capture, on its reassembled ISO-TP/UDS messages — what "Bus log in trace" shows."""
    from fota_studio.engine.records import list_flash_records

    logged = [r for r in list_flash_records(s.ws) if r.buslog_sha256]
    if not logged:  # `--only trace`: run the demo first, it leaves a flash record with a log
        _shot_demo_done(s, out.with_name("demo_done.png"))
        logged = [r for r in list_flash_records(s.ws) if r.buslog_sha256]
    if not logged:
        raise RuntimeError("screenshots: the demo left no flash record with a bus log")
    trace = s.bench.trace_panel
    trace.tabs.setCurrentWidget(trace.messages_view)  # the live capture's tab, when switched to
    loaded: list[int] = []
    trace.file_loaded.connect(lambda _name, frames: loaded.append(frames))
    if not trace.open_flash_record(s.ws, logged[0].id):
        raise RuntimeError(f"screenshots: cannot open the bus log: {trace.status.text()}")
    wait_until(lambda: bool(loaded), DOCTOR_TIMEOUT_S, "the bus log to open in the trace")
    doc = trace.current_document()
    assert doc is not trace.live and len(trace.documents) == 2
    doc.tabs.setCurrentWidget(doc.messages_view)
    dock = s.window.focus_panel("trace")
    # Taller than the default layout gives it: more of the file's messages in the shot.
    s.window.resizeDocks([dock], [TRACE_DOCK_HEIGHT_PX], Qt.Orientation.Vertical)
    settle(0.3)
    # Scroll to the flash itself (erase, RequestDownload, TransferData), past the reads.
    model = doc.messages_model
    rows = [
        r
        for r in range(model.rowCount())
        if "RequestDownload" in str(model.index(r, model.columnCount() - 1).data())
    ]
    if rows:
        doc.messages_view.scrollTo(
            model.index(max(rows[0] - 3, 0), 0), QAbstractItemView.ScrollHint.PositionAtTop
        )
    settle(0.5)
    return save_png(dock, out)


_SHOT_FUNCS: dict[str, Callable[[_Session, Path], Path]] = {
    "welcome": _shot_welcome,
    "main_window": _shot_main_window,
    "ea_editor": _shot_ea_editor,
    "doctor": _shot_doctor,
    "technician_view": _shot_technician_view,
    "demo_offer": _shot_demo_offer,
    "demo_presentation": _shot_demo_presentation,
    "demo_done": _shot_demo_done,
    "trace": _shot_trace,
}


def take_screenshots(out_dir: Path = OUT_DIR, only: Iterable[str] | None = None) -> list[Path]:
    """Take the shots named in `only` (default: all of `SHOTS`) into `out_dir`; returns the
    PNG paths. Creates the QApplication when there is none (and leaves it for the caller)."""
    wanted = list(SHOTS if only is None else only)
    unknown = [n for n in wanted if n not in _SHOT_FUNCS]
    if unknown:
        raise ValueError(f"unknown shot(s) {', '.join(unknown)}; known: {', '.join(SHOTS)}")
    from fota_studio.ui.main_window import apply_theme

    app: Any = QApplication.instance() or QApplication(["fota-studio-screenshots"])
    saved = (app.applicationName(), app.organizationName(), getattr(app, "_fota_theme", None))
    app.setApplicationName("FOTA Studio")
    # Any QSettings() a panel opens by default lands here, not in the user's FOTA Studio.
    app.setOrganizationName("FOTA Studio screenshots")
    paths: list[Path] = []
    try:
        with tempfile.TemporaryDirectory(prefix="fota-shots-") as tmp:
            session = _Session(Path(tmp))
            try:
                for name in (n for n in SHOTS if n in wanted):
                    paths.append(_SHOT_FUNCS[name](session, out_dir / f"{name}.png"))
            finally:
                session.close()
    finally:
        app.setApplicationName(saved[0])
        app.setOrganizationName(saved[1])
        apply_theme(app, saved[2] or "system")
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line: take the screenshots, log each file and its size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    parser.add_argument("--only", nargs="+", choices=SHOTS, help="take only these shots")
    args = parser.parse_args(argv)
    # Only this script's lines; the app's and the CAN libraries' INFO logging is noise here.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    _log.setLevel(logging.INFO)
    paths = take_screenshots(args.out, args.only)
    _log.info("%d screenshot(s) in %s", len(paths), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
