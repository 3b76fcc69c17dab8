"""Error, About and Settings dialogs, the memory-map layout and the background runner."""

from __future__ import annotations

import threading
from dataclasses import replace
from importlib import metadata

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from fota_studio import __version__
from fota_studio.core.errors import CancelledError, ImageError
from fota_studio.infra.settings import Settings
from fota_studio.ui.background import THREAD_NAME, run_in_background
from fota_studio.ui.dialogs.about_dialog import LIBRARIES, AboutDialog, library_versions
from fota_studio.ui.dialogs.error_dialog import ErrorDialog, describe_error
from fota_studio.ui.dialogs.settings_dialog import SettingsDialog
from fota_studio.ui.widgets.memory_map import MemoryMapWidget, gaps_dominate, layout_pieces


def test_error_dialog_shows_what_and_what_to_do_and_copies_details(qtbot) -> None:
    err = ImageError(
        "bad checksum 0x12, expected 0x34", source="vcu.hex", line=17, hint="re-export"
    )
    dlg = ErrorDialog("Import failed", err, details="Traceback: ...")
    qtbot.addWidget(dlg)
    assert "vcu.hex:17: bad checksum" in dlg.message_label.text()
    assert dlg.what_to_do == "re-export"
    dlg.copy_details()
    copied = QGuiApplication.clipboard().text()
    assert "vcu.hex:17: bad checksum" in copied
    assert "re-export" in copied
    assert "Traceback: ..." in copied
    assert __version__ in copied
    assert not dlg.details_view.isVisibleTo(dlg)
    dlg.toggle_button.click()
    assert dlg.details_view.isVisibleTo(dlg)


def test_describe_unexpected_error_gives_generic_advice() -> None:
    what, todo = describe_error(ZeroDivisionError("division by zero"))
    assert what == "ZeroDivisionError: division by zero"
    assert "Copy the details" in todo


def test_about_lists_every_library_version(qtbot) -> None:
    dlg = AboutDialog()
    qtbot.addWidget(dlg)
    rows = dict(dlg.rows())
    assert rows["FOTA Studio"] == __version__
    assert rows["PySide6"]
    assert rows["Qt"]
    assert rows["Python"]
    for shown, dist in LIBRARIES:
        assert rows[shown] == metadata.version(dist), shown
    assert len(library_versions()) == 4 + len(LIBRARIES)


def test_settings_dialog_edits_a_copy(qtbot) -> None:
    original = Settings().with_recent_workspace("/w")
    dlg = SettingsDialog(original)
    qtbot.addWidget(dlg)
    dlg.theme.setCurrentText("dark")
    dlg.operator_timeout.setValue(60)
    dlg.clear_recent.setChecked(True)
    value = dlg.value()
    assert value.ui.theme == "dark"
    assert value.approval.operator_timeout_s == 60.0
    assert value.ui.recent_workspaces == ()
    assert original.ui.recent_workspaces == ("/w",)
    assert replace(value, ui=original.ui, approval=original.approval) == original


def test_memory_map_to_scale_and_broken_axis(qtbot) -> None:
    segs = [(0x10000, 0x1000), (0x80000, 0x1000), (0x90000, 0x800)]
    pieces = layout_pieces(segs, 1000)
    kinds = [p.kind for p in pieces]
    assert kinds == ["segment", "gap", "segment", "gap", "segment"]
    assert pieces[0].x0 == 0 and pieces[-1].x1 == pytest.approx(1000)
    # To scale: the big gap is much wider than the small one.
    assert (pieces[1].x1 - pieces[1].x0) > 5 * (pieces[3].x1 - pieces[3].x0)
    assert gaps_dominate(segs)
    broken = layout_pieces(segs, 1000, broken_axis=True)
    assert [p.kind for p in broken] == ["segment", "break", "segment", "break", "segment"]
    seg_width = sum(p.x1 - p.x0 for p in broken if p.kind == "segment")
    assert seg_width > 900  # the segments get the room the gaps had

    w = MemoryMapWidget()
    qtbot.addWidget(w)
    w.resize(600, 60)
    w.set_segments(segs)
    w.show()
    qtbot.waitExposed(w)
    first = w.pieces()[0]
    hit = w.piece_at((first.x0 + first.x1) / 2)
    assert hit is not None and hit.start == 0x10000
    assert "0x00010000" in hit.describe()
    w.grab()  # paints without error
    w.set_broken_axis(True)
    assert w.broken_axis()
    w.grab()


def test_background_runs_off_gui_thread_and_reports(qtbot) -> None:
    seen: dict[str, object] = {}

    def work(progress):
        seen["thread"] = threading.current_thread().name
        for i in range(101):
            progress(i / 100)
        return 42

    progresses: list[float] = []
    results: list[object] = []
    done: list[bool] = []
    task = run_in_background(
        work,
        on_success=results.append,
        on_progress=progresses.append,
        on_finished=lambda: done.append(True),
    )
    qtbot.waitUntil(lambda: done == [True], timeout=5000)
    assert task.done
    assert results == [42]
    assert seen["thread"] == THREAD_NAME
    assert progresses[0] == 0.0 and progresses[-1] == 1.0
    assert task.wait(2.0)


def test_background_error_reaches_gui(qtbot) -> None:
    errors: list[tuple[BaseException, str]] = []

    def work(progress):
        raise ImageError("bad record", source="x.hex", line=3)

    done: list[bool] = []
    task = run_in_background(
        work, on_error=lambda e, tb: errors.append((e, tb)), on_finished=lambda: done.append(True)
    )
    qtbot.waitUntil(lambda: done == [True], timeout=5000)
    assert str(errors[0][0]).startswith("x.hex:3: bad record")
    assert "Traceback" in errors[0][1]
    assert task.wait(2.0)


@pytest.mark.parametrize("ends_with", ["result", "error", "progress"])
def test_background_task_outliving_its_closed_window_ends_quietly(qtbot, ends_with: str) -> None:
    # A panel closed while its file job runs deletes the task with it: the worker must end
    # without an exception in its thread (before: "Signal source has been deleted").
    from shiboken6 import Shiboken

    from fota_studio.ui.background import running_tasks

    owner = QWidget()
    release = threading.Event()
    reached: list[str] = []

    def work(progress):
        release.wait(5.0)
        if ends_with == "error":
            raise ImageError("bad record", source="x.hex", line=3)
        if ends_with == "progress":
            try:
                progress(0.5)
            except CancelledError:
                reached.append("cancelled")
                raise
        return 42

    task = run_in_background(work, on_success=lambda _r: None, parent=owner)
    Shiboken.delete(owner)  # what closing a panel with WA_DeleteOnClose does to its children
    assert not Shiboken.isValid(task)
    release.set()
    assert task.wait(5.0)
    assert task not in running_tasks()
    if ends_with == "progress":
        assert reached == ["cancelled"]
