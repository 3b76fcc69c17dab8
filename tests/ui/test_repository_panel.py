"""The Software Repository panel on a real demo workspace: tree, details, import, errors, retire."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer

from fota_studio.core.firmware import FirmwareImage, Segment, to_hex
from fota_studio.demo.catalog import APP_REGION_START, DEMO_REPOSITORIES
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.models.repository_model import INFO_ROLE, RepositoryModel
from fota_studio.ui.panels.repository_panel import ImportRequest, RepositoryPanel
from tests.ui.repository_fixtures import drop_file, repository_fixtures

BRAND, MODEL = DEMO_REPOSITORIES[0].brand, DEMO_REPOSITORIES[0].model


ws_fixture, panel_fixture = repository_fixtures()


def _hex_file(tmp_path: Path, name: str, payload: bytes, gap: int = 0x4000) -> Path:
    image = FirmwareImage(
        (
            Segment(APP_REGION_START, payload),
            Segment(APP_REGION_START + len(payload) + gap, payload[::-1]),
        )
    )
    path = tmp_path / name
    path.write_bytes(to_hex(image))
    return path


def test_model_passes_qt_model_tester(qtmodeltester, ws: Workspace) -> None:
    from fota_studio.infra.repository import RepositoryStore

    model = RepositoryModel(RepositoryStore(ws))
    qtmodeltester.check(model)


def test_tree_shows_demo_repositories_newest_version_first(panel: RepositoryPanel) -> None:
    model = panel.model
    labels = [model.index(r, 0).data() for r in range(model.rowCount())]
    for repo in DEMO_REPOSITORIES:
        assert f"{repo.brand} / {repo.model}" in labels
    top = model.repository_index(BRAND, MODEL)
    versions = [model.index(r, 0, top).data() for r in range(model.rowCount(top))]
    assert versions == list(reversed(DEMO_REPOSITORIES[0].versions))
    # The full name in the tooltip (a narrow dock cuts it); pre-releases marked.
    assert (
        model.index(top.row(), 0).data(Qt.ItemDataRole.ToolTipRole).startswith(f"{BRAND} / {MODEL}")
    )
    danfoss = next(r for r in DEMO_REPOSITORIES if r.brand == "Danfoss")
    top = model.repository_index(danfoss.brand, danfoss.model)
    newest = model.index(0, 0, top)
    assert newest.data() == "2.2.0-rc.1  (pre-release)"
    assert newest.data(Qt.ItemDataRole.ToolTipRole).startswith("2.2.0-rc.1 (pre-release)")


def test_selecting_a_version_shows_details_and_memory_map(panel: RepositoryPanel) -> None:
    version = DEMO_REPOSITORIES[0].versions[-1]
    assert panel.select(BRAND, MODEL, version)
    v = panel.selected_version()
    assert v is not None and v.version == version
    text = panel.details_text()
    assert v.sha256 in text
    assert v.file_sha256 in text
    assert f"0x{v.crc32:08X}" in text
    assert v.signature_state in text
    assert v.notes.splitlines()[0] in text
    assert panel.memory_map.segments() == v.segments
    assert len(v.segments) >= 2
    assert [p.kind for p in panel.memory_map.pieces()].count("segment") == len(v.segments)
    assert panel.export_action.isEnabled() and panel.retire_action.isEnabled()


def test_filter_hides_other_repositories(qtbot, panel: RepositoryPanel) -> None:
    other = DEMO_REPOSITORIES[1]
    panel.filter_edit.setText(other.model.lower())
    assert panel.proxy.rowCount() == 1
    top = panel.proxy.index(0, 0)
    assert top.data() == f"{other.brand} / {other.model}"
    assert panel.proxy.rowCount(top) == len(other.versions)  # children of a match stay
    panel.filter_edit.setText(DEMO_REPOSITORIES[0].versions[0])
    labels = [panel.proxy.index(r, 0).data() for r in range(panel.proxy.rowCount())]
    assert f"{BRAND} / {MODEL}" in labels


def test_import_via_form_adds_and_selects_the_version(qtbot, panel, tmp_path) -> None:
    path = _hex_file(tmp_path, "vcu_9.0.0.hex", bytes(range(256)) * 64)
    asked: list[ImportRequest] = []

    def fill(req: ImportRequest) -> ImportRequest:
        asked.append(req)
        return ImportRequest(path=path, brand=BRAND, model=MODEL, version="9.0.0", notes="n")

    panel.ask_import = fill
    panel.select(BRAND, MODEL)
    with qtbot.waitSignal(panel.import_finished, timeout=20_000) as blocker:
        task = panel.import_file(path)
        assert task is not None
        assert panel.is_busy() and not panel.import_action.isEnabled()
    assert asked[0].brand == BRAND and asked[0].version == "9.0.0"  # pre-filled from the name
    result = blocker.args[0]
    assert result.version.version == "9.0.0"
    v = panel.selected_version()
    assert v is not None and (v.brand, v.model, v.version) == (BRAND, MODEL, "9.0.0")
    top = panel.model.repository_index(BRAND, MODEL)
    assert panel.model.index(0, 0, top).data() == "9.0.0"  # newest first
    assert panel.errors == []
    qtbot.waitUntil(lambda: not panel.is_busy())
    assert task.wait(5)


def test_large_import_runs_off_the_gui_thread(qtbot, panel, tmp_path) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB per segment, 2 MiB image
    path = _hex_file(tmp_path, "big.hex", payload)
    ticks: list[int] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    progress_seen: list[int] = []
    panel.busy_changed.connect(lambda busy: progress_seen.append(panel.progress.isVisible()))
    with qtbot.waitSignal(panel.import_finished, timeout=60_000):
        task = panel.start_import(
            ImportRequest(path=path, brand=BRAND, model=MODEL, version="8.0.0")
        )
        assert task is not None and task.worker_thread.name == "fota-ui-io"
    timer.stop()
    assert progress_seen[0] is True  # the inline progress bar was shown
    assert ticks  # the GUI event loop kept running while the file was parsed and stored
    assert panel.selected_version().size == 2 * len(payload)
    qtbot.waitUntil(lambda: not panel.is_busy())
    assert not panel.progress.isVisible()


def test_same_image_again_shows_a_warning(qtbot, panel, tmp_path) -> None:
    path = _hex_file(tmp_path, "a.hex", b"\x11" * 4096)
    for version in ("9.1.0", "9.1.1"):
        with qtbot.waitSignal(panel.import_finished, timeout=20_000):
            panel.start_import(ImportRequest(path=path, brand=BRAND, model=MODEL, version=version))
        qtbot.waitUntil(lambda: not panel.is_busy())
    identical = [w for _t, items in panel.warnings for w in items if "identical" in w]
    assert len(identical) == 1 and "9.1.0" in identical[0]


def test_bad_hex_shows_file_line_error_and_adds_nothing(qtbot, panel, ws, tmp_path) -> None:
    good = _hex_file(tmp_path, "good.hex", b"\x22" * 64).read_text().splitlines()
    bad_line = good[2]
    # Break the checksum of the third line.
    good[2] = bad_line[:-2] + f"{(int(bad_line[-2:], 16) + 1) & 0xFF:02X}"
    path = tmp_path / "broken.hex"
    path.write_text("\n".join(good) + "\n")
    before = ws.read("SELECT COUNT(*) AS n FROM versions")[0]["n"]
    blobs_before = set(ws.blobs.all_hashes())
    with qtbot.waitSignal(panel.import_failed, timeout=20_000) as blocker:
        panel.start_import(ImportRequest(path=path, brand=BRAND, model=MODEL, version="9.9.9"))
    assert "broken.hex:3" in blocker.args[0]
    assert len(panel.errors) == 1
    title, err, _details = panel.errors[0]
    assert title == "Import failed"
    assert "broken.hex:3" in str(err)
    assert ws.read("SELECT COUNT(*) AS n FROM versions")[0]["n"] == before
    assert set(ws.blobs.all_hashes()) == blobs_before
    assert not panel.model.version_index(BRAND, MODEL, "9.9.9").isValid()
    qtbot.waitUntil(lambda: not panel.is_busy())


def test_retire_keeps_selection_and_strikes_out(qtbot, panel) -> None:
    version = DEMO_REPOSITORIES[0].versions[0]
    panel.select(BRAND, MODEL, version)
    panel.confirm = lambda title, text: False
    assert not panel.retire_selected()
    panel.confirm = lambda title, text: True
    assert panel.retire_selected()
    v = panel.selected_version()
    assert v is not None and v.version == version and v.retired
    idx = panel.model.version_index(BRAND, MODEL, version)
    assert idx.data(Qt.ItemDataRole.FontRole).strikeOut()
    assert idx.data(INFO_ROLE).retired
    assert not panel.retire_action.isEnabled()


def test_export_writes_the_file(qtbot, panel, tmp_path) -> None:
    version = DEMO_REPOSITORIES[0].versions[-1]
    panel.select(BRAND, MODEL, version)
    out = tmp_path / "out.s19"
    panel.ask_export = lambda v: ("s19", out)
    with qtbot.waitSignal(panel.export_finished, timeout=20_000):
        panel.export_selected()
    assert out.read_bytes().startswith(b"S0")
    qtbot.waitUntil(lambda: not panel.is_busy())


def test_new_repository(panel) -> None:
    panel.ask_new_repository = lambda: ("Acme", "X1", "test ECU")
    panel.new_repository()
    info = panel.selected_info()
    assert (info.brand, info.model) == ("Acme", "X1")


def test_drop_opens_the_prefilled_form(qtbot, panel, tmp_path) -> None:
    path = _hex_file(tmp_path, "ttc_4.0.0.hex", b"\x33" * 128)
    panel.select(BRAND, MODEL)
    asked: list[ImportRequest] = []
    panel.ask_import = lambda req: asked.append(req)  # cancel the form
    drop_file(panel, path)
    assert asked == [ImportRequest(path=path, brand=BRAND, model=MODEL, version="4.0.0")]


def test_cancelled_import_stores_nothing(qtbot, panel, ws, tmp_path) -> None:
    """Cancel stops the import at its next safe point (before the commit): no version, no blob."""
    from fota_studio.infra.repository import RepositoryStore

    payload = bytes(range(256)) * 4096 * 4  # 4 MiB per segment: parsing outlasts the click
    path = _hex_file(tmp_path, "huge.hex", payload)
    blobs_before = set(ws.blobs.all_hashes())
    with qtbot.waitSignal(panel.import_failed, timeout=60_000) as failed:
        task = panel.start_import(
            ImportRequest(path=path, brand=BRAND, model=MODEL, version="8.8.8")
        )
        assert panel.cancel_task_button.isVisible()
        panel.cancel_task()
    assert "cancelled" in failed.args[0]
    assert task is not None and task.wait(10)
    versions = [v.version for v in RepositoryStore(ws).list_versions(BRAND, MODEL)]
    assert "8.8.8" not in versions
    assert set(ws.blobs.all_hashes()) == blobs_before
    assert panel.errors == []  # a cancel is not an error dialog
    qtbot.waitUntil(lambda: not panel.is_busy())
    assert not panel.cancel_task_button.isVisible()


def test_import_form_links_brand_and_model_and_never_creates_by_default(qtbot, panel) -> None:
    from fota_studio.ui.panels.repository_panel import ImportDialog

    known = [(r.brand, r.model) for r in panel.model.repositories()]
    dlg = ImportDialog(ImportRequest(path=None, brand=BRAND, model=MODEL), known, panel)
    qtbot.addWidget(dlg)
    assert not dlg.create_check.isChecked()  # creating a repository is an explicit choice
    other_brand, other_model = next((b, m) for b, m in known if b != BRAND)
    dlg.brand_edit.setCurrentText(other_brand)
    models = [dlg.model_edit.itemText(i) for i in range(dlg.model_edit.count())]
    assert dlg.model_edit.currentText() == other_model and MODEL not in models
    dlg.brand_edit.setCurrentText("Acme")
    dlg.model_edit.setCurrentText("X1")
    assert dlg.is_new_repository() and not dlg.create_check.isChecked()
    assert "no repository Acme / X1" in dlg.create_hint.text()


def test_import_form_asks_for_the_version_of_a_plain_image(qtbot, panel, tmp_path) -> None:
    from fota_studio.ui.panels.repository_panel import ImportDialog

    path = _hex_file(tmp_path, "vcu.hex", b"\x33" * 64)
    known = [(r.brand, r.model) for r in panel.model.repositories()]
    dlg = ImportDialog(ImportRequest(path=path, brand=BRAND, model=MODEL), known, panel)
    qtbot.addWidget(dlg)
    assert "Enter the version" in dlg.problem()
    dlg.version_edit.setText("9.4.0")
    assert dlg.problem() == ""
    dlg.brand_edit.setCurrentText("Acme")
    dlg.model_edit.setCurrentText("X1")
    assert "tick the box" in dlg.problem()
    dlg.create_check.setChecked(True)
    assert dlg.problem() == ""


def test_image_of_another_version_is_refused_and_the_form_comes_back(
    qtbot, panel, ws, tmp_path
) -> None:
    from fota_studio.core.reference_ecu import app_header

    path = _hex_file(tmp_path, "vcu_9.5.0.hex", app_header("3.2.1") + b"\x44" * 512)
    asked: list[ImportRequest] = []
    typed = ImportRequest(path=path, brand=BRAND, model=MODEL, version="9.5.0", notes="typed")

    def fill(req: ImportRequest) -> ImportRequest | None:
        asked.append(req)
        return typed if len(asked) == 1 else None  # the second time: the user closes it

    panel.ask_import = fill
    before = ws.read("SELECT COUNT(*) AS n FROM versions")[0]["n"]
    with qtbot.waitSignal(panel.import_failed, timeout=20_000) as failed:
        panel.import_file(path)
    assert "says it is version '3.2.1'" in failed.args[0]
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=5_000)
    again = asked[1]
    assert (again.path, again.brand, again.model, again.version, again.notes) == (
        path,
        BRAND,
        MODEL,
        "9.5.0",
        "typed",
    )
    assert "3.2.1" in again.error
    assert panel.errors == []  # the error is in the form, not in a separate box
    assert ws.read("SELECT COUNT(*) AS n FROM versions")[0]["n"] == before


def test_image_without_its_version_string_imports_with_a_warning(qtbot, panel, tmp_path) -> None:
    from fota_studio.core.reference_ecu import app_header

    plain = _hex_file(tmp_path, "plain.hex", b"\x55" * 512)
    with qtbot.waitSignal(panel.import_finished, timeout=20_000) as done:
        panel.start_import(ImportRequest(path=plain, brand=BRAND, model=MODEL, version="9.6.0"))
    assert any("cannot be checked" in w for w in done.args[0].warnings)
    qtbot.waitUntil(lambda: not panel.is_busy())
    good = _hex_file(tmp_path, "good.hex", app_header("9.7.0") + b"\x66" * 512)
    with qtbot.waitSignal(panel.import_finished, timeout=20_000) as done:
        panel.start_import(ImportRequest(path=good, brand=BRAND, model=MODEL, version="9.7.0"))
    assert done.args[0].warnings == ()
