"""The Software Repository panel: browse, import, export and retire firmware versions.

A filterable tree (Brand / Model → versions, newest first) beside a details pane (metadata,
hashes, signature, notes and a memory-map strip). Import and export run off the GUI thread
through `ui.background` with an inline progress bar, so a large HEX never freezes the window;
errors (with the store's `file:line: …` message) go to the error dialog, duplicate-image
warnings to a message box. The import form takes the version from a package's manifest or
from the user (a plain image must be given one), links Model to Brand (known pairs), creates a
repository only when asked to (unticked by default), and comes back with what was typed and
the error when an import fails; before anything is stored the image is checked for its
version where the EA says it lives (`engine/image_version`). Every dialog the panel opens is
an attribute holding a callable (`ask_import`, `ask_new_repository`, `ask_export`, `confirm`,
`show_error`, `show_warnings`) so tests and scripts can replace them. GUI thread only; the
store calls made here on the GUI thread are single small SQL queries.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import (
    QItemSelectionModel,
    QMimeData,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QDragEnterEvent, QDragMoveEvent, QDropEvent, QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QToolBar,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.errors import CancelledError, FotaError
from fota_studio.core.firmware import binary_needs_confirmation
from fota_studio.core.pdx import is_container_name
from fota_studio.core.resources import resource_path
from fota_studio.infra.repository import (
    EXPORT_FORMATS,
    ImportOptions,
    ImportResult,
    ProgressCallback,
    RepositoryInfo,
    RepositoryStore,
    VersionInfo,
)
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.background import BackgroundTask, run_in_background
from fota_studio.ui.dialogs.error_dialog import show_error as _default_show_error
from fota_studio.ui.dialogs.parts import ok_cancel_buttons
from fota_studio.ui.models.repository_model import (
    INFO_ROLE,
    SEARCH_ROLE,
    RepositoryModel,
    index_for_key,
    persistent_key,
)
from fota_studio.ui.panels.repository_pdx import start_container_import
from fota_studio.ui.widgets.flash_widgets import ask_question
from fota_studio.ui.widgets.memory_map import MemoryMapWidget, format_size, gaps_dominate

_log = logging.getLogger(__name__)

ICON_DIR = resource_path("icons")
IMAGE_FILE_FILTER = (
    "Firmware files (*.hex *.ihex *.s19 *.s28 *.s37 *.srec *.mot *.bin *.zip *.fpkg *.pdx "
    "*.odx-f);;ODX-F / PDX flash containers (*.pdx *.odx-f);;All files (*)"
)
IMPORT_FORMATS = ("auto", "hex", "srec", "bin")
_VERSION_IN_NAME = re.compile(r"(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)")


def _icon(name: str) -> QIcon:
    path = ICON_DIR / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


#: Up to this many repositories the tree opens fully expanded (above it, collapsed).
EXPAND_ALL_MAX_REPOSITORIES = 200


@dataclass(frozen=True)
class ImportRequest:
    """What the import form collects; empty brand/model/version means "from the package"."""

    path: Path | None = None
    brand: str = ""
    model: str = ""
    version: str = ""
    notes: str = ""
    base_address: int | None = None
    fmt: str | None = None  # None = detect from content/name
    create_repository: bool = False  # an explicit choice, never the default
    error: str = ""  # why the previous attempt failed (the form shows it)

    def store_options(self) -> ImportOptions:
        """The options of `RepositoryStore.prepare_import` the form chose."""
        return ImportOptions(
            notes=self.notes,
            base_address=self.base_address,
            fmt=self.fmt,
            create_repository=self.create_repository,
        )


def guess_version(filename: str) -> str:
    """A version found in a file name ("vcu_3.2.1.hex" → "3.2.1"), else ""."""
    m = _VERSION_IN_NAME.search(filename)
    return m.group(1) if m else ""


def is_package_file(path: Path) -> bool:
    """True when `path` is a firmware package (a zip: its manifest names the version)."""
    try:
        with path.open("rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def parse_address(text: str) -> int | None:
    """Parse "0x10000", "10000h" or decimal; None for empty; ValueError when malformed."""
    t = text.strip().lower().replace("_", "")
    if not t:
        return None
    if t.endswith("h"):
        return int(t[:-1], 16)
    return int(t, 0)


class ImportDialog(QDialog):
    """The import form: file, Brand/Model (known ones offered), version, notes, base address."""

    def __init__(
        self,
        request: ImportRequest,
        known: list[tuple[str, str]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import firmware version")
        self.path_edit = QLineEdit(str(request.path) if request.path else "")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_clicked)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        self._known = sorted(set(known))
        self.brand_edit = QComboBox()
        self.brand_edit.setEditable(True)
        self.brand_edit.addItems(sorted({b for b, _ in known}))
        self.brand_edit.setCurrentText(request.brand)
        self.model_edit = QComboBox()
        self.model_edit.setEditable(True)
        self._fill_models(request.brand, request.model)
        # Brand and Model are linked: a Brand offers its own Models only.
        self.brand_edit.currentTextChanged.connect(self._on_brand_edit_changed)
        self.model_edit.currentTextChanged.connect(self._update_create_hint)
        self.version_edit = QLineEdit(request.version)
        self.version_edit.setPlaceholderText("e.g. 3.3.0 (semantic version)")
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(IMPORT_FORMATS))
        self.format_combo.setCurrentText(request.fmt or "auto")
        self.base_edit = QLineEdit(f"0x{request.base_address:X}" if request.base_address else "")
        self.base_edit.setPlaceholderText("only for raw .bin files, e.g. 0x10000")
        self.notes_edit = QPlainTextEdit(request.notes)
        self.notes_edit.setFixedHeight(80)
        self.create_check = QCheckBox("Create a new repository for this Brand / Model")
        self.create_check.setChecked(request.create_repository)
        self.create_check.toggled.connect(self._update_create_hint)
        self.create_hint = QLabel()
        self.create_hint.setWordWrap(True)
        self.error_label = QLabel(request.error)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828")
        form = QFormLayout()
        form.addRow("File", path_row)
        form.addRow("Brand", self.brand_edit)
        form.addRow("Model", self.model_edit)
        form.addRow("Version", self.version_edit)
        form.addRow("Format", self.format_combo)
        form.addRow("Base address", self.base_edit)
        form.addRow("Release notes", self.notes_edit)
        form.addRow(self.create_check)
        form.addRow(self.create_hint)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        buttons.accepted.connect(self._on_accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.resize(520, 0)
        self._update_create_hint()

    def _models_of(self, brand: str) -> list[str]:
        return sorted(m for b, m in self._known if b == brand)

    def _fill_models(self, brand: str, model: str) -> None:
        models = self._models_of(brand) if brand else sorted({m for _, m in self._known})
        self.model_edit.blockSignals(True)
        self.model_edit.clear()
        self.model_edit.addItems(models)
        self.model_edit.setCurrentText(model if model or not models else models[0])
        self.model_edit.blockSignals(False)

    def _on_brand_edit_changed(self, brand: str) -> None:
        models = self._models_of(brand.strip())
        current = self.model_edit.currentText().strip()
        # A known Brand: its Models, keeping the typed one when it is one of them.
        keep = current if current in models or not models else models[0]
        self._fill_models(brand.strip(), keep)
        self._update_create_hint()

    def is_new_repository(self) -> bool:
        """True when Brand / Model (both given) name no repository yet."""
        brand = self.brand_edit.currentText().strip()
        model = self.model_edit.currentText().strip()
        return bool(brand and model) and (brand, model) not in self._known

    def _update_create_hint(self, *_: object) -> None:
        new = self.is_new_repository()
        self.create_check.setEnabled(new or self.create_check.isChecked())
        if new and not self.create_check.isChecked():
            self.create_hint.setText(
                f"There is no repository {self.brand_edit.currentText().strip()} / "
                f"{self.model_edit.currentText().strip()}: tick the box above to create it, "
                "or choose a known Brand and Model."
            )
        else:
            self.create_hint.setText("")
        self.create_hint.setVisible(bool(self.create_hint.text()))

    def _on_browse_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Firmware file", self.path_edit.text(), IMAGE_FILE_FILTER
        )
        if path:
            self.path_edit.setText(path)
            if not self.version_edit.text():
                self.version_edit.setText(guess_version(Path(path).name))

    def problem(self) -> str:
        """What is wrong with the form ("" when it can be submitted)."""
        if not self.path_edit.text().strip():
            return "Choose a firmware file."
        if not Path(self.path_edit.text().strip()).is_file():
            return f"{self.path_edit.text().strip()}: no such file."
        try:
            parse_address(self.base_edit.text())
        except ValueError:
            return f"Base address {self.base_edit.text()!r} is not a number (use e.g. 0x10000)."
        path = Path(self.path_edit.text().strip())
        if is_package_file(path) or is_container_name(path.name):
            return ""  # Brand, Model and version come from the package's manifest
        if not self.version_edit.text().strip():
            return (
                "Enter the version: a HEX, S-record or binary file has no manifest that names "
                "it (the image is checked for it where the EA says it lives)."
            )
        if not (self.brand_edit.currentText().strip() and self.model_edit.currentText().strip()):
            return "Choose the Brand and the Model of the ECU this firmware is for."
        if self.is_new_repository() and not self.create_check.isChecked():
            return self.create_hint.text()
        return ""

    def _on_accept(self) -> None:
        msg = self.problem()
        self.error_label.setText(msg)
        if not msg:
            self.accept()

    def value(self) -> ImportRequest:
        """The request as entered (call after `exec()` returned Accepted)."""
        fmt = self.format_combo.currentText()
        return ImportRequest(
            path=Path(self.path_edit.text().strip()),
            brand=self.brand_edit.currentText().strip(),
            model=self.model_edit.currentText().strip(),
            version=self.version_edit.text().strip(),
            notes=self.notes_edit.toPlainText().strip(),
            base_address=parse_address(self.base_edit.text()),
            fmt=None if fmt == "auto" else fmt,
            create_repository=self.create_check.isChecked(),
        )


class NewRepositoryDialog(QDialog):
    """Brand, Model and description of a new repository."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New Software Repository")
        self.brand_edit = QLineEdit()
        self.model_edit = QLineEdit()
        self.description_edit = QLineEdit()
        form = QFormLayout(self)
        form.addRow("Brand", self.brand_edit)
        form.addRow("Model", self.model_edit)
        form.addRow("Description", self.description_edit)
        form.addRow(ok_cancel_buttons(self))

    def value(self) -> tuple[str, str, str]:
        """(brand, model, description)."""
        return (
            self.brand_edit.text().strip(),
            self.model_edit.text().strip(),
            self.description_edit.text().strip(),
        )


class RepositoryPanel(QWidget):
    """Repositories tree + details + memory map; import/export off the GUI thread."""

    version_selected = Signal(object)  # VersionInfo or None
    import_finished = Signal(object)  # ImportResult
    import_failed = Signal(str)  # the error message
    export_finished = Signal(object)  # Path
    busy_changed = Signal(bool)
    #: A PDX import's flash parameters were accepted into this EA (`repository_pdx`).
    ea_profile_changed = Signal(str)

    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._ws = ws
        self.store = RepositoryStore(ws)
        self._task: BackgroundTask | None = None
        self._read_only = False
        #: The form's request of the running import, and the one to show again after a failure.
        self._form_request: ImportRequest | None = None
        self._reopen: ImportRequest | None = None

        # Replaceable dialogs (tests inject plain functions).
        self.ask_import = self._ask_import_dialog
        self.ask_new_repository = self._ask_new_repository_dialog
        self.ask_export = self._ask_export_dialog
        self.confirm = self._confirm_dialog
        self.show_error = self._show_error_dialog
        self.show_warnings = self._show_warnings_dialog

        self.model = RepositoryModel(self.store, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterRole(SEARCH_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setAutoAcceptChildRows(True)

        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QTreeView.SelectionMode.SingleSelection)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setStretchLastSection(False)
        self.tree.selectionModel().currentChanged.connect(self._on_tree_current_changed)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter brand, model, version, notes…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAcceptDrops(False)
        self.filter_edit.textChanged.connect(self._on_filter_edit_text_changed)

        self.toolbar = QToolBar()
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.new_action = QAction(_icon("new"), "New repository…", self)
        self.import_action = QAction(_icon("import"), "Import…", self)
        self.export_action = QAction(_icon("export"), "Export…", self)
        self.retire_action = QAction(_icon("retire"), "Retire", self)
        self.refresh_action = QAction(_icon("refresh"), "Refresh", self)
        self.import_action.setToolTip(
            "Import a HEX, S-record, binary, package or PDX / ODX-F file (or drop one here)"
        )
        self.retire_action.setToolTip("Mark the selected version retired (kept, not offered)")
        self.new_action.setToolTip("Create a Software Repository for one ECU Brand/Model")
        self.export_action.setToolTip("Write the selected version as HEX, S-record or binary")
        self.refresh_action.setToolTip("Re-read the repositories from the workspace")
        for act in (
            self.new_action,
            self.import_action,
            self.export_action,
            self.retire_action,
            self.refresh_action,
        ):
            self.toolbar.addAction(act)
        self.new_action.triggered.connect(self.new_repository)
        self.import_action.triggered.connect(lambda: self.import_file())
        self.export_action.triggered.connect(self.export_selected)
        self.retire_action.triggered.connect(self.retire_selected)
        self.refresh_action.triggered.connect(self.refresh)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.progress_label = QLabel()
        self.progress_label.setVisible(False)
        self.cancel_task_button = QPushButton("Cancel")
        self.cancel_task_button.setToolTip(
            "Stop the import at its next safe point; nothing is stored"
        )
        self.cancel_task_button.setVisible(False)
        self.cancel_task_button.clicked.connect(self.cancel_task)

        self.details = QTextBrowser()
        self.details.setAcceptDrops(False)
        self.details.setOpenLinks(False)
        self.memory_map = MemoryMapWidget()
        self.memory_map.setToolTip("Segments (blue) and gaps along the address axis")
        self.compress_check = QCheckBox("Compress large gaps")
        self.compress_check.setToolTip("Draw gaps larger than 5 % of the span as breaks (⫽)")
        self.compress_check.toggled.connect(self.memory_map.set_broken_axis)
        self.memory_map.broken_axis_changed.connect(self.compress_check.setChecked)
        self.map_label = QLabel("Memory map")

        left = QWidget()
        left_l = QVBoxLayout(left)
        left_l.setContentsMargins(0, 0, 0, 0)
        left_l.addWidget(self.filter_edit)
        left_l.addWidget(self.tree, 1)
        right = QWidget()
        right_l = QVBoxLayout(right)
        right_l.setContentsMargins(0, 0, 0, 0)
        right_l.addWidget(self.details, 1)
        map_bar = QHBoxLayout()
        map_bar.addWidget(self.map_label, 1)
        map_bar.addWidget(self.compress_check)
        right_l.addLayout(map_bar)
        right_l.addWidget(self.memory_map)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        # Brand / Model and version labels must stay readable when the dock is narrow.
        left.setMinimumWidth(240)

        busy_row = QHBoxLayout()
        busy_row.addWidget(self.progress_label)
        busy_row.addWidget(self.progress, 1)
        busy_row.addWidget(self.cancel_task_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.toolbar)
        layout.addLayout(busy_row)
        layout.addWidget(self.splitter, 1)

        self.model.modelReset.connect(self._on_model_reset)
        self._on_model_reset()
        self._show_details(None)
        self._update_actions()
        self._select_first_version()

    def _on_model_reset(self) -> None:
        # A big workspace starts collapsed: expanding 4,000 repositories (12,000 rows) took
        # about half a second of every start and scrolled past what anyone reads; selecting
        # or searching a version still opens its repository.
        if self.model.rowCount() <= EXPAND_ALL_MAX_REPOSITORIES:
            self.tree.expandAll()
        # Fit the short columns once per reload (never on live data; this model is static).
        for col in range(1, self.model.columnCount()):
            self.tree.resizeColumnToContents(col)

    def _select_first_version(self) -> None:
        """Start with the newest version of the first repository selected (details visible)."""
        for repo in self.model.repositories():
            top = self.model.repository_index(repo.brand, repo.model)
            if self.model.rowCount(top):
                v = self.model.info(self.model.index(0, 0, top))
                if isinstance(v, VersionInfo):
                    self.select(v.brand, v.model, v.version)
                return

    # -- workspace ------------------------------------------------------------------------------

    def set_workspace(self, ws: Workspace) -> None:
        """Show another workspace's repositories (called by the main window on File ▸ Open)."""
        self._ws = ws
        self.store = RepositoryStore(ws)
        self.model.set_store(self.store)
        self._show_details(None)
        self._select_first_version()
        self._update_actions()

    def is_busy(self) -> bool:
        """True while an import or export runs in the background."""
        return self._task is not None

    def background_task(self) -> BackgroundTask | None:
        """The running import/export task, if any."""
        return self._task

    # -- selection ------------------------------------------------------------------------------

    def selected_info(self) -> RepositoryInfo | VersionInfo | None:
        """The RepositoryInfo or VersionInfo of the current row (None when nothing)."""
        idx = self.tree.currentIndex()
        return (
            cast("RepositoryInfo | VersionInfo | None", idx.data(INFO_ROLE))
            if idx.isValid()
            else None
        )

    def selected_version(self) -> VersionInfo | None:
        """The VersionInfo of the current row, or None when a repository/nothing is selected."""
        info = self.selected_info()
        return info if isinstance(info, VersionInfo) else None

    def select(self, brand: str, model: str, version: str | None = None) -> bool:
        """Make a repository or version current (clears a filter that hides it)."""
        key = (brand, model, version) if version else (brand, model)
        src = index_for_key(self.model, key)
        if not src.isValid():
            return False
        idx = self.proxy.mapFromSource(src)
        if not idx.isValid():
            self.filter_edit.clear()
            idx = self.proxy.mapFromSource(src)
        if idx.parent().isValid():
            self.tree.expand(idx.parent())
        self.tree.selectionModel().setCurrentIndex(
            idx,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.tree.scrollTo(idx)
        return True

    def refresh(self) -> None:
        """Re-read the store, keeping the current selection (by Brand/Model/version)."""
        src = self.proxy.mapToSource(self.tree.currentIndex())
        key = persistent_key(self.model, src)
        self.model.reload()
        if not key or not self.select(*key):
            self._show_details(None)

    def details_text(self) -> str:
        """The details pane as plain text (tests, copy)."""
        return self.details.toPlainText()

    # -- actions --------------------------------------------------------------------------------

    def new_repository(self) -> None:
        """Ask Brand/Model/description and create the repository."""
        answer = self.ask_new_repository()
        if not answer:
            return
        brand, model, description = answer
        try:
            self.store.create_repository(brand, model, description)
        except FotaError as exc:
            self.show_error("Cannot create the repository", exc, None)
            return
        _log.info("created repository %s / %s", brand, model)
        self.model.reload()
        self.select(brand, model)

    def import_file(self, path: str | Path | None = None) -> BackgroundTask | None:
        """Open the import form (pre-filled with `path` and the selection) and start the import."""
        if self._read_only:
            return None
        if path and is_container_name(Path(path).name):
            # A PDX / ODX-F container names its ECU and version itself: no form to fill.
            return cast(BackgroundTask | None, start_container_import(self, Path(path)))
        request = ImportRequest(path=Path(path) if path else None)
        info = self.selected_info()
        if info is not None:
            request = replace(request, brand=info.brand, model=info.model)
        if request.path is not None:
            request = replace(request, version=guess_version(request.path.name))
        answer = self.ask_import(request)
        if answer is None:
            return None
        task = self.start_import(answer)
        # A failed import brings the form back with what was typed (`_on_import_failed`).
        self._form_request = answer if task is not None else None
        return task

    def start_import(self, request: ImportRequest) -> BackgroundTask | None:
        """Run the import of `request` on a background thread; results arrive as signals."""
        if self._task is not None:
            self.show_error(
                "Import not started", "Another import or export is still running.", None
            )
            return None
        if request.path is not None and is_container_name(request.path.name):
            return cast(
                BackgroundTask | None,
                start_container_import(
                    self, request.path, create_repository=request.create_repository
                ),
            )
        store = self.store
        ws = self._ws

        def work(progress: ProgressCallback) -> ImportResult:
            from fota_studio.core.errors import RepositoryError
            from fota_studio.engine.image_version import check_image_version

            path = Path(cast(Path, request.path))  # the form does not accept without a file
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise RepositoryError(f"{path}: cannot read ({exc.strerror})") from exc
            # Empty brand/model/version: the package's manifest names them.
            names = (request.brand or None, request.model or None, request.version or None)
            options = request.store_options()
            options["progress"] = progress
            item = store.prepare_import(*names, data, source_name=path.name, **options)
            # Before anything is stored: does the image say it is this version?
            found = check_image_version(
                ws, item.brand, item.model, item.version, item.image, source=path.name
            )
            result = store.commit_imports([item])[0]
            progress(1.0)
            return replace(result, warnings=(*result.warnings, *found))

        name = request.path.name if request.path else "file"
        _log.info("importing %s", request.path)
        return self._start(
            f"Importing {name}…", work, self._on_import_succeeded, self._on_import_failed
        )

    def export_selected(self) -> BackgroundTask | None:
        """Ask format and output file, then export the selected version in the background."""
        v = self.selected_version()
        if v is None:
            return None
        answer = self.ask_export(v)
        if not answer:
            return None
        fmt, output = answer
        return self.start_export(v, fmt, Path(output))

    def start_export(self, v: VersionInfo, fmt: str, output: Path) -> BackgroundTask | None:
        """Export version `v` as `fmt` to `output` in the background."""
        if self._task is not None:
            return None
        store = self.store
        span = (v.segments[-1][0] + v.segments[-1][1] - v.segments[0][0]) if v.segments else 0
        # Asked here, on the GUI thread, from the recorded segments: the file would hold the
        # gaps too (the export itself streams it, so memory is not the question; disk is).
        if (
            fmt == "bin"
            and binary_needs_confirmation(span, v.size)
            and not self.confirm(
                "Large binary file",
                f"A binary export of {v.version} writes {format_size(span)} ({span:,} bytes) for "
                f"{format_size(v.size)} of data: the gaps between its {len(v.segments)} segments "
                "are filled with 0xFF. HEX or S-record keep the gaps out. Write it anyway?",
            )
        ):
            return None

        def work(progress: ProgressCallback) -> Path:
            progress(0.0)
            return store.export(
                v.brand, v.model, v.version, fmt, output, confirm_size=lambda _f, _d: True
            )

        return self._start(
            f"Exporting {v.version} as {fmt}…",
            work,
            self._on_export_succeeded,
            self._on_export_failed,
        )

    def retire_selected(self) -> bool:
        """Retire the selected version after confirmation; True when retired."""
        v = self.selected_version()
        if v is None or v.retired:
            return False
        if not self.confirm(
            "Retire version",
            f"Retire {v.brand} / {v.model} {v.version}?\n\nIt stays in the repository (and in "
            "existing records) but is no longer offered for new updates. This cannot be undone.",
        ):
            return False
        try:
            self.store.retire(v.brand, v.model, v.version)
        except FotaError as exc:
            self.show_error("Cannot retire the version", exc, None)
            return False
        _log.info("retired %s / %s %s", v.brand, v.model, v.version)
        self.refresh()
        return True

    # -- background plumbing --------------------------------------------------------------------

    def _start(
        self,
        label: str,
        work: Callable[[ProgressCallback], Any],
        on_success: Callable[[Any], None],
        on_error: Callable[[BaseException, str], None],
    ) -> BackgroundTask:
        self.progress_label.setText(label)
        self.progress.setValue(0)
        self.progress_label.setVisible(True)
        self.progress.setVisible(True)
        self.cancel_task_button.setVisible(True)
        self.cancel_task_button.setEnabled(True)
        task = run_in_background(
            work,
            name=label,
            on_success=on_success,
            on_error=on_error,
            on_progress=self._on_task_progress_changed,
            on_finished=self._on_task_finished,
            parent=self,
        )
        self._task = task
        self._update_actions()
        self.busy_changed.emit(True)
        return task

    def cancel_task(self) -> None:
        """Cancel the running import/export at its next safe point."""
        if self._task is not None:
            self._task.cancel()
            self.cancel_task_button.setEnabled(False)
            self.progress_label.setText("Cancelling…")

    def _on_task_progress_changed(self, fraction: float) -> None:
        self.progress.setValue(int(fraction * 1000))

    def _on_task_finished(self) -> None:
        self._task = None
        self.progress.setVisible(False)
        self.progress_label.setVisible(False)
        self.cancel_task_button.setVisible(False)
        self._update_actions()
        self.busy_changed.emit(False)
        if self._reopen is not None:
            QTimer.singleShot(0, self._reopen_form)

    def _on_import_succeeded(self, result: ImportResult) -> None:
        self._form_request = None
        v = result.version
        _log.info("imported %s / %s %s (%s)", v.brand, v.model, v.version, format_size(v.size))
        self.model.reload()
        self.select(v.brand, v.model, v.version)
        if result.warnings:
            for w in result.warnings:
                _log.warning("%s", w)
            self.show_warnings(f"Imported {v.version} with warnings", list(result.warnings))
        self.import_finished.emit(result)

    def _on_import_failed(self, exc: BaseException, details: str) -> None:
        if isinstance(exc, CancelledError):
            _log.info("import cancelled; nothing was stored")
            self.import_failed.emit(str(exc))
            return
        _log.warning("import failed: %s", exc)
        request, self._form_request = self._form_request, None
        self.import_failed.emit(str(exc))
        if request is not None:
            # The form comes back with everything typed and the error in it (once the task
            # has ended, `_on_task_finished`).
            self._reopen = replace(request, error=f"Import failed: {exc}")
            return
        self.show_error("Import failed", exc, details)

    def _reopen_form(self) -> None:
        request, self._reopen = self._reopen, None
        if request is None:
            return
        again = self.ask_import(request)
        if again is not None:
            task = self.start_import(again)
            self._form_request = again if task is not None else None

    def _on_export_succeeded(self, path: Path) -> None:
        _log.info("exported to %s", path)
        self.export_finished.emit(path)

    def _on_export_failed(self, exc: BaseException, details: str) -> None:
        _log.warning("export failed: %s", exc)
        self.show_error("Export failed", exc, details)

    # -- default dialogs ------------------------------------------------------------------------

    def _ask_import_dialog(self, request: ImportRequest) -> ImportRequest | None:
        known = [(r.brand, r.model) for r in self.model.repositories()]
        dlg = ImportDialog(request, known, self)
        if request.path is None:
            dlg._on_browse_clicked()
        return dlg.value() if dlg.exec() == QDialog.DialogCode.Accepted else None

    def _ask_new_repository_dialog(self) -> tuple[str, str, str] | None:
        dlg = NewRepositoryDialog(self)
        return dlg.value() if dlg.exec() == QDialog.DialogCode.Accepted else None

    def _ask_export_dialog(self, v: VersionInfo) -> tuple[str, Path] | None:
        formats = [f for f in EXPORT_FORMATS if f != "srec"]
        ext = {"hex": "hex", "s19": "s19", "bin": "bin", "package": "zip"}
        filters = ";;".join(f"{f} (*.{ext[f]})" for f in formats)
        default_fmt = "s19" if v.source_format == "srec" else v.source_format
        default_filter = next((x for x in filters.split(";;") if x.startswith(default_fmt)), "")
        stem = f"{v.model}_{v.version}".replace(" ", "_").replace("/", "_")
        path, chosen = QFileDialog.getSaveFileName(
            self,
            f"Export {v.brand} / {v.model} {v.version}",
            str(Path.home() / f"{stem}.{ext.get(default_fmt, 'hex')}"),
            filters,
            default_filter,
        )
        if not path:
            return None
        fmt = chosen.split(" ", 1)[0] if chosen else default_fmt
        return fmt, Path(path)

    def _confirm_dialog(self, title: str, text: str) -> bool:
        return ask_question(self, title, text, QMessageBox.StandardButton.Cancel)

    def _show_error_dialog(
        self, title: str, error: BaseException | str, details: str | None
    ) -> None:
        _default_show_error(self, title, error, details=details)

    def _show_warnings_dialog(self, title: str, warnings: list[str]) -> None:
        QMessageBox.warning(self, title, "\n\n".join(warnings))

    # -- handlers -------------------------------------------------------------------------------

    def _on_filter_edit_text_changed(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip().lower())
        self.tree.expandAll()

    def _on_tree_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        del previous
        info = current.data(INFO_ROLE) if current.isValid() else None
        self._show_details(info)
        self._update_actions()
        self.version_selected.emit(info if info is not None and hasattr(info, "sha256") else None)

    def set_read_only(self, read_only: bool) -> None:
        """Operator mode: browse and export only; no import, new repository or retire."""
        self._read_only = read_only
        self._update_actions()

    def _update_actions(self) -> None:
        v = self.selected_version()
        busy = self._task is not None
        edit = not busy and not self._read_only
        self.import_action.setEnabled(edit)
        self.new_action.setEnabled(edit)
        self.export_action.setEnabled(v is not None and not busy)
        self.retire_action.setEnabled(v is not None and not v.retired and edit)

    def _show_details(self, info: RepositoryInfo | VersionInfo | None) -> None:
        if info is None:
            self.details.setHtml(
                "<p style='color:gray'>Select a repository or a version. Drop a HEX, S-record, "
                "binary or package file here to import it.</p>"
            )
            self.memory_map.set_segments(())
            self.map_label.setText("Memory map")
            return
        if isinstance(info, RepositoryInfo):
            # The model already holds this repository's versions: no query per click.
            versions = self.model.versions_of(info.brand, info.model)
            live = [v for v in versions if not v.retired]
            latest = live[-1].version if live else "—"
            self.details.setHtml(
                f"<h3>{_h(info.brand)} / {_h(info.model)}</h3>"
                f"<p>{_h(info.description)}</p>"
                + _table(
                    [
                        ("Versions", f"{len(versions)} ({len(versions) - len(live)} retired)"),
                        ("Latest", latest),
                        ("Created", info.created_at[:19].replace("T", " ")),
                    ]
                )
            )
            self.memory_map.set_segments(())
            self.map_label.setText("Memory map")
            return
        v = info
        segs = ", ".join(f"0x{a:08X}+{format_size(n)}" for a, n in v.segments)
        gaps = v.gaps() if hasattr(v, "gaps") else []
        state = v.signature_state + (f" by {v.signer}" if v.signer else "")
        rows = [
            ("Version", v.version + ("  (RETIRED)" if v.retired else "")),
            ("Size", f"{v.size:,} bytes ({format_size(v.size)})"),
            ("Segments", f"{len(v.segments)}: {segs}"),
            ("Gaps", ", ".join(f"0x{a:08X}–0x{b - 1:08X}" for a, b in gaps) or "none"),
            ("Image SHA-256", v.sha256),
            ("CRC32", f"0x{v.crc32:08X}"),
            ("File SHA-256", v.file_sha256),
            ("Signature", state),
            ("Source", f"{v.source_name} ({v.source_format})"),
            ("Imported", f"{v.imported_at[:19].replace('T', ' ')} by {v.imported_by}"),
        ]
        notes = _h(v.notes).replace("\n", "<br>") if v.notes else "<i>no release notes</i>"
        self.details.setHtml(
            f"<h3>{_h(v.brand)} / {_h(v.model)} {_h(v.version)}</h3>"
            + _table(rows)
            + f"<p><b>Release notes</b><br>{notes}</p>"
        )
        self.memory_map.set_segments(v.segments)
        span = (v.segments[-1][0] + v.segments[-1][1] - v.segments[0][0]) if v.segments else 0
        self.map_label.setText(
            f"Memory map — {len(v.segments)} segment(s) over {format_size(span)}"
            + ("; gaps dominate, try compressing them" if gaps_dominate(v.segments) else "")
        )

    # -- drag & drop ----------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept a single local file."""
        if (
            self._dropped_path(event.mimeData()) is not None
            and self._task is None
            and not self._read_only
        ):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        """Keep accepting while over the panel."""
        self.dragEnterEvent(cast(QDragEnterEvent, event))  # the same test (a move is an enter)

    def dropEvent(self, event: QDropEvent) -> None:
        """Open the import form pre-filled with the dropped file."""
        path = self._dropped_path(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_file(path)

    @staticmethod
    def _dropped_path(mime: QMimeData | None) -> Path | None:
        if mime is None or not mime.hasUrls():
            return None
        urls = [u for u in mime.urls() if u.isLocalFile()]
        if len(urls) != 1:
            return None
        p = Path(urls[0].toLocalFile())
        return p if p.is_file() else None


def _h(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(
        f"<tr><td style='padding-right:12px;color:gray'>{_h(k)}</td>"
        f"<td style='font-family:monospace'>{_h(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table cellspacing='2'>{body}</table>"
