"""The first-run welcome: shown until "Don't show again", back from Help ▸ Welcome, and its
three buttons run the demo, open the adapter settings and open a log file in the trace."""

from __future__ import annotations

from pathlib import Path

import can
from PySide6.QtCore import Qt

from fota_studio.infra.settings import load_settings
from fota_studio.infra.tracefile import write_log
from fota_studio.ui.dialogs.welcome_dialog import WelcomeDialog
from tests.ui.app_fixtures import app_fixtures

ws_fixture, window_fixture = app_fixtures("wel")


def test_buttons_emit_their_signal_and_close(qtbot) -> None:
    dlg = WelcomeDialog()
    qtbot.addWidget(dlg)
    assert dlg.demo_button.isDefault()  # Enter runs the demo, the safe first step
    for button, signal in (
        (dlg.demo_button, dlg.demo_requested),
        (dlg.connect_button, dlg.connect_requested),
        (dlg.open_log_button, dlg.open_log_requested),
    ):
        dlg.show()
        with qtbot.waitSignal(signal, timeout=1000):
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert not dlg.isVisible()
    assert all(b.toolTip() for b in (dlg.demo_button, dlg.connect_button, dlg.open_log_button))


def test_first_start_shows_it_until_dont_show_again(qtbot, window, tmp_path: Path) -> None:
    w, bench = window
    dlg = bench.maybe_show_welcome()
    assert dlg is not None and dlg.isVisible()
    dlg.dont_show_check.setChecked(True)
    dlg.reject()
    assert w.settings.ui.welcome_shown
    assert load_settings(tmp_path / "s.json").ui.welcome_shown  # persisted
    assert bench.maybe_show_welcome() is None
    # Help ▸ Welcome… still brings it, with the box ticked; unticking turns it back on.
    assert bench.action_welcome in w.help_menu.actions()
    bench.action_welcome.trigger()
    again = bench.welcome
    assert again is not None and again.dont_show_check.isChecked()
    again.dont_show_check.setChecked(False)
    again.reject()
    assert not w.settings.ui.welcome_shown


def test_open_log_button_opens_the_file_in_the_trace(qtbot, window, tmp_path: Path) -> None:
    w, bench = window
    log = tmp_path / "bench.asc"
    write_log(
        log,
        [can.Message(arbitration_id=0x123, data=bytes([i]), timestamp=float(i)) for i in range(20)],
    )
    w.ask_log_file = lambda: log
    dlg = bench.show_welcome()
    with qtbot.waitSignal(bench.trace_panel.file_loaded, timeout=10_000) as loaded:
        qtbot.mouseClick(dlg.open_log_button, Qt.MouseButton.LeftButton)
    assert loaded.args == ["bench.asc", 20]
    assert w.settings.ui.recent_log_files[0] == str(log.resolve())
    # File ▸ Recent log files lists it and opens it again.
    w._fill_recent_logs_menu()
    entry = w.recent_logs_menu.actions()[0]
    assert entry.text() == str(log.resolve())
    with qtbot.waitSignal(bench.trace_panel.file_loaded, timeout=10_000):
        entry.trigger()


def test_demo_button_starts_the_demo(qtbot, window) -> None:
    _, bench = window
    dlg = bench.show_welcome()
    with qtbot.waitSignal(bench.hmi_panel.offer_shown, timeout=30_000):
        qtbot.mouseClick(dlg.demo_button, Qt.MouseButton.LeftButton)
    assert bench.demo is not None and bench.demo.busy
    bench.cancel_demo()
    qtbot.waitUntil(lambda: not bench.demo.busy, timeout=30_000)
