"""The Electronic Architecture editor panel: tree of EAs/ECUs/machines beside a typed form.

The ECU form is built in `ecu_form.py`, its list tables in `list_table.py` and the cell text
codecs (no Qt) in `codecs.py`; this module holds the tree, the undo stack and the commands.

The panel edits working copies of the stored EAs. Every field edit is one `QUndoCommand` that
swaps a whole-EA snapshot (deep copies are cheap at this size and make undo of structural edits
— duplicate/add/remove ECU, reorder steps, import, revert — exactly as simple as a field edit).
After each change the EA is validated; problems show at the field (red border + tooltip) and in
the problem list, where clicking one selects the ECU, the tab and the field; the tree marks each
ECU that has problems (colour, icon, tooltip listing them by ECU name). Save stores through
`EaStore` (refused while there are errors) and emits `architecture_saved(name)`.

File dialogs and questions go through overridable attributes (`open_file_dialog`,
`save_file_dialog`, `ask_text`, `ask_save_discard_cancel`, `show_message`) so tests bypass them.
GUI thread only.

Why this size: the form, the list tables and the codecs already have their own modules; what is
left is one undo stack and one tree over the working copies of every EA, which every command
(new, add/duplicate/remove ECU, import, export, save, revert) edits through the same snapshot
command.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.ea import (
    BootloaderEntryFrame,
    ElectronicArchitecture,
    default_ecu,
    new_architecture,
)
from fota_studio.core.ea_format import (
    EaFileError,
    ea_to_dict,
    get_path,
    load_ea_file,
    save_ea_file,
    set_path,
)
from fota_studio.core.ea_problem_text import problem_text
from fota_studio.core.ea_validate import Problem, Severity, has_errors, validate
from fota_studio.core.errors import FotaError
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui.panels.ea.codecs import Column, unique_name
from fota_studio.ui.panels.ea.ecu_form import EcuForm, FieldBinder
from fota_studio.ui.panels.ea.list_table import PROBLEM_STYLE, ListTable
from fota_studio.ui.widgets.hex_edit import HexLineEdit

WARNING_STYLE = "border: 2px solid #f9a825;"
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
# On an ECU tree item: "error", "warning" or None — the worst problem the ECU has.
PROBLEM_SEVERITY_ROLE = Qt.ItemDataRole.UserRole + 2
_ECU_PATH = re.compile(r"^ecus\[(\d+)\](?:\.(.*))?$")


# -- undo ------------------------------------------------------------------------------------


_Snapshot = tuple[ElectronicArchitecture | None, tuple[Any, ...] | None]
"""A whole-EA snapshot (None = the EA does not exist) and the tree selection shown with it."""


class _SnapshotCommand(QUndoCommand):
    """Swap the `before` snapshot for the `after` one (one edit of EA `key`)."""

    def __init__(
        self, panel: ArchitecturePanel, key: int, text: str, before: _Snapshot, after: _Snapshot
    ) -> None:
        super().__init__(text)
        self._apply = functools.partial(panel._apply_snapshot, key)
        self._before = before
        self._after = after

    def redo(self) -> None:
        self._apply(*self._after)

    def undo(self) -> None:
        self._apply(*self._before)


# -- the panel -------------------------------------------------------------------------------


class ArchitecturePanel(QWidget):
    """Edit, validate, save, import and export Electronic Architectures; browse machines."""

    architecture_saved = Signal(str)

    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ws = ws
        self._store = EaStore(ws)
        self._working: dict[int, ElectronicArchitecture] = {}
        self._stored_name: dict[int, str | None] = {}
        self._stored_doc: dict[int, dict[str, Any] | None] = {}
        self._next_key = 1
        self._current: tuple[Any, ...] | None = None
        self._problems: list[Problem] = []
        self._read_only = False
        self._updating = False
        self._known_repos = self._store.known_repositories()
        # (suffix, widget, kind) for the EA page ("ea") and the ECU page ("ecu")
        self._binder = FieldBinder(self)
        # (suffix, widget, kind) for the EA page ("ea") and the ECU page ("ecu")
        self._bindings = self._binder.bindings
        self._tables: list[ListTable] = []
        self.undo_stack = QUndoStack(self)

        # Injectable dialogs: tests replace these attributes.
        self.open_file_dialog: Callable[[], str] = lambda: QFileDialog.getOpenFileName(
            self, "Import Electronic Architecture", "", "EA files (*.yaml *.yml);;All files (*)"
        )[0]
        self.save_file_dialog: Callable[[str], str] = lambda name: QFileDialog.getSaveFileName(
            self, "Export Electronic Architecture", f"{name}.ea.yaml", "EA files (*.yaml *.yml)"
        )[0]
        self.ask_text: Callable[[str, str, str], str | None] = self._ask_text_dialog
        self.ask_save_discard_cancel: Callable[[], str] = self._ask_save_dialog
        self.show_message: Callable[[str, str], None] = self._show_message_dialog

        self._build_ui()
        self._load_from_store()

    # -- building --------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.toolbar = QToolBar()
        self.action_new = self._action("New EA", self.new_architecture)
        self.action_add_ecu = self._action("Add ECU", self.add_ecu)
        self.action_duplicate = self._action("Duplicate ECU", self.duplicate_ecu)
        self.action_remove_ecu = self._action("Remove ECU", self.remove_ecu)
        self.toolbar.addSeparator()
        self.action_import = self._action("Import…", self.import_file)
        self.action_export = self._action("Export…", self.export_file)
        self.toolbar.addSeparator()
        self.action_save = self._action("Save", self.save, QKeySequence.StandardKey.Save)
        self.action_revert = self._action("Revert", self.revert)
        self.toolbar.addSeparator()
        self.action_undo = self.undo_stack.createUndoAction(self, "Undo")
        self.action_undo.setShortcut(QKeySequence.StandardKey.Undo)
        self.action_redo = self.undo_stack.createRedoAction(self, "Redo")
        self.action_redo.setShortcut(QKeySequence.StandardKey.Redo)
        for a in (self.action_undo, self.action_redo):
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(a)
            self.toolbar.addAction(a)
        for a, tip in (
            (self.action_new, "Create an Electronic Architecture (a machine type)"),
            (self.action_add_ecu, "Add an ECU with every default to the selected EA"),
            (self.action_duplicate, "Copy the selected ECU (then change its name and IDs)"),
            (self.action_remove_ecu, "Remove the selected ECU from its EA"),
            (self.action_import, "Read an EA from a YAML file"),
            (self.action_export, "Write the selected EA to a YAML file"),
            (self.action_save, "Save the EA to the workspace (refused while it has errors)"),
            (self.action_revert, "Throw away unsaved changes of the selected EA"),
        ):
            shortcut = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            a.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)

        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.currentItemChanged.connect(self._on_tree_current_item_changed)

        self.stack = QStackedWidget()
        self.empty_page = QLabel("Select an Electronic Architecture, an ECU or a machine.")
        self.empty_page.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.empty_page)
        self.ea_page = self._build_ea_page()
        self.stack.addWidget(self.ea_page)
        ecu_form = EcuForm(self._binder, self._table)
        # The ECU page is the form's tab widget; the tables tests reach through the panel.
        self.tabs = ecu_form.tabs
        self.sequence_table = ecu_form.sequence_table
        self.region_table = ecu_form.region_table
        self.protected_table = ecu_form.protected_table
        self.routine_precondition_table = ecu_form.routine_precondition_table
        self.stack.addWidget(self.tabs)
        self.machine_page = self._build_machine_page()
        self.stack.addWidget(self.machine_page)

        self.problem_list = QListWidget()
        self.problem_list.itemActivated.connect(self._on_problem_list_item_activated)
        self.problem_list.itemClicked.connect(self._on_problem_list_item_activated)
        self.status_label = QLabel("")
        problems_box = QGroupBox("Problems")
        pl = QVBoxLayout(problems_box)
        pl.addWidget(self.problem_list)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.stack)
        right.addWidget(problems_box)
        right.setStretchFactor(0, 4)
        right.setStretchFactor(1, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.tree)
        split.addWidget(right)
        split.setStretchFactor(1, 3)

        lay = QVBoxLayout(self)
        lay.addWidget(self.toolbar)
        lay.addWidget(split, 1)
        lay.addWidget(self.status_label)

    def _action(
        self, text: str, slot: Callable[[], Any], shortcut: QKeySequence.StandardKey | None = None
    ) -> QAction:
        a = QAction(text, self)
        a.triggered.connect(lambda _checked=False: slot())
        if shortcut is not None:
            a.setShortcut(shortcut)
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(a)
        self.toolbar.addAction(a)
        return a

    def _build_ea_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.addRow("Name", self._binder.bind("ea", "name", QLineEdit(), "text"))
        form.addRow("Description", self._binder.bind("ea", "description", QLineEdit(), "text"))
        form.addRow("Machine model", self._binder.bind("ea", "machine_model", QLineEdit(), "text"))
        self.ea_summary = QLabel("")
        form.addRow("ECUs", self.ea_summary)
        return page

    def _table(
        self,
        suffix: str,
        cols: list[Column],
        factory: Callable[[], Any] | None,
        *,
        reorder: bool = False,
    ) -> ListTable:
        t = ListTable(self, suffix, cols, factory, reorder=reorder)
        self._tables.append(t)
        return t

    def _build_machine_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        self.machine_label = QLabel("")
        lay.addWidget(self.machine_label)
        lay.addWidget(QLabel("Installed versions"))
        self.installed_table = QTableWidget(0, 2)
        self.installed_table.setHorizontalHeaderLabels(["ECU", "Version"])
        self.installed_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        lay.addWidget(self.installed_table)
        lay.addWidget(QLabel("History"))
        self.history_table = QTableWidget(0, 4)
        self.history_table.setHorizontalHeaderLabels(["When (UTC)", "ECU", "Version", "Source"])
        self.history_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.history_table)
        return page

    # -- model -----------------------------------------------------------------------------

    def set_workspace(self, ws: Workspace) -> None:
        """Re-point the panel at another workspace (File ▸ Open workspace…); drops edits."""
        self._ws = ws
        self._store = EaStore(ws)
        self._known_repos = self._store.known_repositories()
        self._current = None
        self._load_from_store()

    def _load_from_store(self) -> None:
        self._working.clear()
        self._stored_name.clear()
        self._stored_doc.clear()
        for name in self._store.names():
            ea = self._store.get(name)
            key = self._new_key()
            self._working[key] = ea
            self._stored_name[key] = name
            self._stored_doc[key] = ea_to_dict(ea)
        self.undo_stack.clear()
        self._rebuild_tree()

    def _new_key(self) -> int:
        k = self._next_key
        self._next_key += 1
        return k

    def _current_key(self) -> int | None:
        if self._current and self._current[0] in ("ea", "ecu"):
            return int(self._current[1])
        return None

    def _current_ecu_index(self) -> int | None:
        if self._current and self._current[0] == "ecu":
            return int(self._current[2])
        return None

    def current_architecture(self) -> ElectronicArchitecture | None:
        """The working copy of the selected EA (None when a machine or nothing is selected)."""
        key = self._current_key()
        return self._working.get(key) if key is not None else None

    def _key_of_name(self, name: str) -> int | None:
        for k, ea in self._working.items():
            if ea.name == name:
                return k
        return None

    def _edit(
        self,
        text: str,
        mutate: Callable[[ElectronicArchitecture], object],
        select_after: tuple[Any, ...] | None = None,
    ) -> bool:
        """Apply `mutate` to a copy of the current EA and push it as one undoable command."""
        if self._read_only:
            return False
        key = self._current_key()
        if key is None:
            return False
        before = copy.deepcopy(self._working[key])
        after = copy.deepcopy(before)
        mutate(after)
        if after == before:
            return False
        self.undo_stack.push(
            _SnapshotCommand(
                self, key, text, (before, self._current), (after, select_after or self._current)
            )
        )
        return True

    def _commit_scoped(self, scope: str, suffix: str, value: Any) -> None:
        if self._updating:
            return
        if scope == "ea":
            path = suffix
        else:
            i = self._current_ecu_index()
            if i is None:
                return
            path = f"ecus[{i}].{suffix}"
        self._commit_path(path, value)

    def _commit(self, suffix: str, value: Any) -> None:
        """Commit a value at a path relative to the current ECU (tables use this)."""
        self._commit_scoped("ecu", suffix, value)

    def _commit_path(self, path: str, value: Any) -> None:
        ea = self.current_architecture()
        if ea is None:
            return
        try:
            if get_path(ea, path) == value:
                return
        except (AttributeError, IndexError, KeyError, TypeError):
            return
        if not self._edit(f"Edit {path}", lambda e: set_path(e, path, value)):
            self._refresh_page()

    def _on_text_edited(self, scope: str, suffix: str, w: QLineEdit, kind: str) -> None:
        if self._updating:
            return
        if kind == "bytes":
            try:
                value: Any = bytes.fromhex(w.text().replace(" ", ""))
            except ValueError:
                self._status(f'"{w.text()}" is not hex bytes like "B0 07 00"')
                self._refresh_page()
                return
        elif kind == "optint":
            text = w.text().strip()
            try:
                value = int(text, 0) if text else None
            except ValueError:
                self._status(f'"{text}" is not a whole number (empty = unknown)')
                self._refresh_page()
                return
        else:
            value = w.text()
        self._commit_scoped(scope, suffix, value)

    def _on_entry_toggled(self, on: bool) -> None:
        if self._updating:
            return
        i = self._current_ecu_index()
        ea = self.current_architecture()
        if i is None or ea is None:
            return
        ext = ea.ecus[i].connection.id_bits == 29
        frame = BootloaderEntryFrame(can_id=0x18FF0000 if ext else 0x600, extended_id=ext)
        self._commit_path(f"ecus[{i}].bootloader_entry", frame if on else None)

    def _edit_ecu_list(self, suffix: str, text: str, change: Callable[[list[Any]], None]) -> None:
        i = self._current_ecu_index()
        if i is None:
            return
        path = f"ecus[{i}].{suffix}"
        self._edit(text, lambda e: change(get_path(e, path)))

    def _apply_snapshot(
        self, key: int, snap: ElectronicArchitecture | None, select: tuple[Any, ...] | None
    ) -> None:
        """Install a snapshot (from an undo command) and show it."""
        if snap is None:
            self._working.pop(key, None)
            if key not in self._working and self._stored_name.get(key) is None:
                self._stored_name.pop(key, None)
                self._stored_doc.pop(key, None)
            select = None
        else:
            self._working[key] = copy.deepcopy(snap)
            self._stored_name.setdefault(key, None)
            self._stored_doc.setdefault(key, None)
        if select and select[0] == "ecu" and snap is not None:
            n = len(snap.ecus)
            select = ("ecu", key, min(select[2], n - 1)) if n else ("ea", key)
        self._current = select
        self._rebuild_tree()

    # -- tree and pages --------------------------------------------------------------------

    def _rebuild_tree(self) -> None:
        self._updating = True
        try:
            self.tree.clear()
            eas_root = QTreeWidgetItem(["Electronic Architectures"])
            eas_root.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.tree.addTopLevelItem(eas_root)
            select_item: QTreeWidgetItem | None = None
            for key in sorted(self._working, key=lambda k: self._working[k].name.lower()):
                ea = self._working[key]
                dirty = "*" if self._is_dirty(key) else ""
                item = QTreeWidgetItem([f"{ea.name or '(unnamed)'}{dirty}"])
                item.setData(0, PATH_ROLE, ("ea", key))
                eas_root.addChild(item)
                if self._current == ("ea", key):
                    select_item = item
                for i, ecu in enumerate(ea.ecus):
                    child = QTreeWidgetItem([f"{ecu.name} — {ecu.brand} {ecu.model}".strip()])
                    child.setData(0, PATH_ROLE, ("ecu", key, i))
                    item.addChild(child)
                    if self._current == ("ecu", key, i):
                        select_item = child
                # Every EA's ECUs are marked, not only the selected one's (validation is cheap).
                self._mark_tree_ecus(item, ea, validate(ea, self._known_repos))
            machines_root = QTreeWidgetItem(["Machines"])
            machines_root.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.tree.addTopLevelItem(machines_root)
            for m in self._store.list_machines():
                item = QTreeWidgetItem([f"{m.serial} ({m.ea_name or 'unassigned'})"])
                item.setData(0, PATH_ROLE, ("machine", m.serial))
                machines_root.addChild(item)
                if self._current == ("machine", m.serial):
                    select_item = item
            self.tree.expandAll()
            if select_item is not None:
                self.tree.setCurrentItem(select_item)
            else:
                self._current = None
        finally:
            self._updating = False
        self._show_current()

    def _on_tree_current_item_changed(self, item: QTreeWidgetItem | None, _prev: Any) -> None:
        if self._updating:
            return
        data = item.data(0, PATH_ROLE) if item is not None else None
        self._current = tuple(data) if data else None
        self._show_current()

    def _show_current(self) -> None:
        cur = self._current
        if cur is None:
            self.stack.setCurrentWidget(self.empty_page)
        elif cur[0] == "ea":
            self.stack.setCurrentWidget(self.ea_page)
        elif cur[0] == "ecu":
            self.stack.setCurrentWidget(self.tabs)
        else:
            self.stack.setCurrentWidget(self.machine_page)
        self._refresh_page()
        self._update_actions()

    def _refresh_page(self) -> None:
        """Load the selected object's values into the form (no commands) and mark problems."""
        cur = self._current
        self._updating = True
        try:
            if cur is not None and cur[0] == "machine":
                self._refresh_machine(str(cur[1]))
            ea = self.current_architecture()
            if ea is not None:
                if cur is not None and cur[0] == "ea":
                    self._load_bindings("ea", ea, "")
                    self.ea_summary.setText(", ".join(e.name for e in ea.ecus) or "none")
                i = self._current_ecu_index()
                if i is not None and i < len(ea.ecus):
                    self._load_bindings("ecu", ea, f"ecus[{i}].")
                    for t in self._tables:
                        t.load(get_path(ea, f"ecus[{i}].{t.suffix}"))
        finally:
            self._updating = False
        self._revalidate()

    def _load_bindings(self, scope: str, ea: ElectronicArchitecture, base: str) -> None:
        for suffix, w, kind in self._bindings[scope]:
            try:
                value = get_path(ea, base + suffix)
                present = True
            except AttributeError:  # e.g. entry frame fields when there is no entry frame
                value, present = None, False
            if suffix.startswith("bootloader_entry."):
                w.setEnabled(present and not self._read_only)
            w.blockSignals(True)
            try:
                if kind == "hex":
                    assert isinstance(w, HexLineEdit)
                    w.setValue(value)
                elif kind in ("text", "optint"):
                    assert isinstance(w, QLineEdit)
                    w.setText("" if value is None else str(value))
                elif kind == "bytes":
                    assert isinstance(w, QLineEdit)
                    w.setText(bytes(value).hex(" ").upper() if value is not None else "")
                elif kind in ("int", "float"):
                    assert isinstance(w, QSpinBox | QDoubleSpinBox)
                    w.setValue(value if value is not None else 0)
                elif kind == "bool":
                    assert isinstance(w, QCheckBox)
                    w.setChecked(bool(value))
                elif kind == "entry":
                    assert isinstance(w, QCheckBox)
                    w.setChecked(value is not None)
                elif kind == "combo":
                    assert isinstance(w, QComboBox)
                    idx = w.findData(value)
                    if idx < 0 and value is not None:
                        w.addItem(f"{value} (invalid)", value)
                        idx = w.count() - 1
                    w.setCurrentIndex(idx)
            finally:
                w.blockSignals(False)

    def installed_changed(self) -> None:
        """A flash or an update request ended: re-read the shown machine's installed versions
        and history (nothing else of the page changes)."""
        cur = self._current
        if cur is not None and cur[0] == "machine":
            self._refresh_machine(str(cur[1]))

    def _refresh_machine(self, serial: str) -> None:
        m = self._store.find_machine(serial)
        if m is None:
            return
        self.machine_label.setText(
            f"<b>{m.serial}</b> {m.name} — EA: {m.ea_name or 'not assigned'}"
        )
        self.installed_table.setRowCount(len(m.installed))
        for r, (ecu, version) in enumerate(sorted(m.installed.items())):
            self.installed_table.setItem(r, 0, QTableWidgetItem(ecu))
            self.installed_table.setItem(r, 1, QTableWidgetItem(version or "unknown"))
        self.history_table.setRowCount(len(m.history))
        for r, h in enumerate(reversed(m.history)):
            for c, text in enumerate((h.at, h.ecu, h.version or "unknown", h.source)):
                self.history_table.setItem(r, c, QTableWidgetItem(text))

    # -- validation display ----------------------------------------------------------------

    def _revalidate(self) -> None:
        ea = self.current_architecture()
        self._problems = validate(ea, self._known_repos) if ea is not None else []
        self.problem_list.clear()
        for p in self._problems:
            item = QListWidgetItem(problem_text(p, ea))  # "VCU: …", not "ecus[0]…"
            item.setData(PATH_ROLE, p.path)
            item.setForeground(
                QColor("#b71c1c") if p.severity is Severity.ERROR else QColor("#8d6e00")
            )
            self.problem_list.addItem(item)
        by_path: dict[str, list[Problem]] = {}
        for p in self._problems:
            by_path.setdefault(p.path, []).append(p)
        i = self._current_ecu_index()
        for scope, base in (("ea", ""), ("ecu", f"ecus[{i}]." if i is not None else None)):
            for suffix, w, _kind in self._bindings[scope]:
                hits = by_path.get(base + suffix, []) if base is not None else []
                self._mark_widget(w, hits)
        for t in self._tables:
            t.mark(self._problems if i is not None else [], f"ecus[{i}]." if i is not None else "")
        key = self._current_key()
        ea_item = self._tree_item_of(("ea", key)) if key is not None else None
        if ea_item is not None and ea is not None:
            self._mark_tree_ecus(ea_item, ea, self._problems)
        if key is not None:
            n = sum(p.severity is Severity.ERROR for p in self._problems)
            self._status(f"{n} error(s), {len(self._problems) - n} warning(s)")

    def _tree_item_of(self, sel: tuple[Any, ...]) -> QTreeWidgetItem | None:
        root = self.tree.topLevelItem(0)  # "Electronic Architectures"
        if root is None:
            return None
        for j in range(root.childCount()):
            item = root.child(j)
            if item is not None and tuple(item.data(0, PATH_ROLE) or ()) == sel:
                return item
        return None

    def _mark_tree_ecus(
        self, ea_item: QTreeWidgetItem, ea: ElectronicArchitecture, problems: list[Problem]
    ) -> None:
        """Colour, icon and tooltip on each ECU item of `ea_item` that has problems; an ECU
        without problems gets its plain look back. The tooltip lists them by ECU name."""
        by_ecu: dict[int, list[Problem]] = {}
        for p in problems:
            m = _ECU_PATH.match(p.path)
            if m is not None:
                by_ecu.setdefault(int(m.group(1)), []).append(p)
        style = self.style()
        for i in range(ea_item.childCount()):
            child = ea_item.child(i)
            if child is None:
                continue
            hits = by_ecu.get(i, [])
            err = any(p.severity is Severity.ERROR for p in hits)
            if hits:
                child.setForeground(0, QColor("#b71c1c") if err else QColor("#8d6e00"))
                pixmap = (
                    QStyle.StandardPixmap.SP_MessageBoxCritical
                    if err
                    else QStyle.StandardPixmap.SP_MessageBoxWarning
                )
                child.setIcon(0, style.standardIcon(pixmap))
                child.setToolTip(0, "\n".join(problem_text(p, ea) for p in hits))
            else:
                child.setData(0, Qt.ItemDataRole.ForegroundRole, None)
                child.setIcon(0, QIcon())
                child.setToolTip(0, "")
            severity = ("error" if err else "warning") if hits else None
            child.setData(0, PROBLEM_SEVERITY_ROLE, severity)

    @staticmethod
    def _mark_widget(w: QWidget, hits: list[Problem]) -> None:
        if hits:
            err = any(p.severity is Severity.ERROR for p in hits)
            w.setStyleSheet(PROBLEM_STYLE if err else WARNING_STYLE)
            w.setToolTip("\n".join(p.message for p in hits))
        else:
            w.setStyleSheet("")
            w.setToolTip("")
        w.setProperty("has_problem", bool(hits))

    def problems(self) -> list[Problem]:
        """The problems of the selected EA, as shown in the list."""
        return list(self._problems)

    def _on_problem_list_item_activated(self, item: QListWidgetItem) -> None:
        self.go_to_path(str(item.data(PATH_ROLE)))

    def go_to_path(self, path: str) -> QWidget | None:
        """Select the ECU/EA of a problem path and focus its field; returns that widget."""
        widget = self.field_widget(path)
        if widget is not None:
            self._reveal(widget)
            widget.setFocus()
        return widget

    def field_widget(self, path: str) -> QWidget | None:
        """Select the ECU/EA a path belongs to and return the widget that edits it."""
        key = self._current_key()
        if key is None:
            return None
        m = _ECU_PATH.match(path)
        if m is None:
            self._select(("ea", key))
            return self._widget_for("ea", path)
        self._select(("ecu", key, int(m.group(1))))
        return self._widget_for("ecu", m.group(2) or "")

    def _widget_for(self, scope: str, suffix: str) -> QWidget | None:
        best: tuple[int, QWidget] | None = None
        for s, w, _k in self._bindings[scope]:
            if s == suffix:
                return w
            if suffix.startswith(s + ".") and (best is None or len(s) > best[0]):
                best = (len(s), w)
        if scope == "ecu":
            for t in self._tables:
                mt = re.match(re.escape(t.suffix) + r"(?:\[(\d+)\](?:\.([a-z_]+))?)?$", suffix)
                if mt is None:
                    mt = re.match(re.escape(t.suffix) + r"\[(\d+)\]\.([a-z_]+)", suffix)
                if mt is not None:
                    self._reveal(t)
                    if mt.group(1) is not None:
                        t.select(int(mt.group(1)), mt.group(2))
                    return t
        return best[1] if best else None

    def _reveal(self, w: QWidget) -> None:
        """Switch the ECU tabs to the page holding `w`."""
        p: QWidget | None = w
        while p is not None:
            idx = self.tabs.indexOf(p)
            if idx >= 0:
                self.tabs.setCurrentIndex(idx)
                break
            p = p.parentWidget()

    def _select(self, sel: tuple[Any, ...]) -> None:
        if self._current != sel:
            self._current = sel
            self._rebuild_tree()

    def select_architecture(self, name: str, ecu: str | None = None) -> None:
        """Select an EA (by name) or one of its ECUs in the tree."""
        key = self._key_of_name(name)
        if key is None:
            raise KeyError(name)
        if ecu is None:
            self._select(("ea", key))
        else:
            idx = [e.name for e in self._working[key].ecus].index(ecu)
            self._select(("ecu", key, idx))

    def _status(self, text: str) -> None:
        self.status_label.setText(text)

    # -- commands --------------------------------------------------------------------------

    def _is_dirty(self, key: int) -> bool:
        doc = self._stored_doc.get(key)
        return doc is None or doc != ea_to_dict(self._working[key])

    def has_unsaved_changes(self) -> bool:
        """True when any EA differs from what is stored (or was never saved)."""
        return any(self._is_dirty(k) for k in self._working)

    def save(self) -> bool:
        """Store the selected EA; refused (with a message) while it has errors."""
        key = self._current_key()
        if key is None:
            return False
        return self._save_key(key)

    def _save_key(self, key: int) -> bool:
        if self._read_only:
            return False
        ea = self._working[key]
        problems = validate(ea, self._known_repos)
        if has_errors(problems):
            lines = "\n".join(str(p) for p in problems if p.severity is Severity.ERROR)
            self.show_message("Cannot save", f'"{ea.name}" has errors:\n{lines}')
            return False
        old = self._stored_name.get(key)
        try:
            if old is not None and old != ea.name:
                self._store.rename(old, ea.name)
            self._store.save(ea, replace=old is not None)
        except FotaError as exc:
            self.show_message("Cannot save", str(exc))
            return False
        self._stored_name[key] = ea.name
        self._stored_doc[key] = ea_to_dict(ea)
        self._status(f'Saved "{ea.name}"')
        self._rebuild_tree()
        self.architecture_saved.emit(ea.name)
        return True

    def revert(self) -> None:
        """Go back to the stored version of the selected EA (undoable)."""
        key = self._current_key()
        if key is None:
            return
        name = self._stored_name.get(key)
        if name is None:
            # never saved: reverting removes it (undo brings it back)
            before = copy.deepcopy(self._working[key])
            self.undo_stack.push(
                _SnapshotCommand(self, key, "Discard new EA", (before, self._current), (None, None))
            )
            return
        stored = self._store.get(name)
        self._edit("Revert", lambda e: _replace(e, stored), select_after=("ea", key))

    def new_architecture(self) -> None:
        """Create an EA from the template (the default ECU); asks for its name."""
        if self._read_only:
            return
        name = self.ask_text("New Electronic Architecture", "Name:", "New EA")
        if not name:
            return
        if self._key_of_name(name) is not None:
            self.show_message("New EA", f'An EA named "{name}" already exists.')
            return
        key = self._new_key()
        self._stored_name[key] = None
        self._stored_doc[key] = None
        ea = new_architecture(name)
        self.undo_stack.push(
            _SnapshotCommand(self, key, f"New EA {name}", (None, self._current), (ea, ("ea", key)))
        )

    def add_ecu(self) -> None:
        """Append the template ECU to the selected EA."""
        ea = self.current_architecture()
        key = self._current_key()
        if ea is None or key is None:
            return
        name = unique_name([e.name for e in ea.ecus], "ECU")
        self._edit(
            "Add ECU",
            lambda e: e.ecus.append(default_ecu(name)),
            select_after=("ecu", key, len(ea.ecus)),
        )

    def duplicate_ecu(self) -> None:
        """Copy the selected ECU (inserted after it, with a new name)."""
        ea = self.current_architecture()
        i = self._current_ecu_index()
        key = self._current_key()
        if ea is None or i is None or key is None:
            return
        clone = copy.deepcopy(ea.ecus[i])
        clone.name = unique_name([e.name for e in ea.ecus], f"{clone.name} copy")
        self._edit(
            f"Duplicate {ea.ecus[i].name}",
            lambda e: e.ecus.insert(i + 1, clone),
            select_after=("ecu", key, i + 1),
        )

    def remove_ecu(self) -> None:
        """Remove the selected ECU (undoable)."""
        i = self._current_ecu_index()
        key = self._current_key()
        if i is None or key is None:
            return
        self._edit("Remove ECU", lambda e: e.ecus.pop(i), select_after=("ea", key))

    def import_file(self, path: str | None = None) -> bool:
        """Import an EA file (asks for it unless `path`); replaces a working EA of that name."""
        if self._read_only:
            return False
        path = path or self.open_file_dialog()
        if not path:
            return False
        try:
            loaded = load_ea_file(path)
        except EaFileError as exc:
            self.show_message("Cannot import", "\n".join(exc.problems))
            return False
        ea = loaded.ea
        key = self._key_of_name(ea.name)
        if key is None:
            key = self._new_key()
            self._stored_name[key] = None
            self._stored_doc[key] = None
            self.undo_stack.push(
                _SnapshotCommand(
                    self, key, f"Import {ea.name}", (None, self._current), (ea, ("ea", key))
                )
            )
        else:
            self._current = ("ea", key)
            self._edit(f"Import {ea.name}", lambda e: _replace(e, ea), select_after=("ea", key))
        self._status(f'Imported "{ea.name}" from {path} (not saved yet)')
        return True

    def export_file(self, path: str | None = None) -> bool:
        """Export the selected EA as YAML (asks for the file unless `path`)."""
        ea = self.current_architecture()
        if ea is None:
            return False
        path = path or self.save_file_dialog(ea.name)
        if not path:
            return False
        try:
            save_ea_file(ea, path)
        except OSError as exc:
            self.show_message("Cannot export", f"{path}: {exc.strerror}")
            return False
        self._status(f'Exported "{ea.name}" to {path}')
        return True

    def maybe_close(self) -> bool:
        """True when the panel may close: nothing unsaved, or the user saved/discarded."""
        if not self.has_unsaved_changes():
            return True
        answer = self.ask_save_discard_cancel()
        if answer == "cancel":
            return False
        if answer == "discard":
            return True
        return all(self._save_key(k) for k in list(self._working) if self._is_dirty(k))

    def set_read_only(self, read_only: bool) -> None:
        """Operator mode: show everything, change nothing (export stays available)."""
        self._read_only = read_only
        for scope in ("ea", "ecu"):
            for _s, w, _k in self._bindings[scope]:
                if isinstance(w, QLineEdit):
                    w.setReadOnly(read_only)
                else:
                    w.setEnabled(not read_only)
        for t in self._tables:
            t.set_read_only(read_only)
        self._update_actions()
        self._refresh_page()

    def is_read_only(self) -> bool:
        """True in operator mode."""
        return self._read_only

    def _update_actions(self) -> None:
        ro = self._read_only
        has_ea = self._current_key() is not None
        has_ecu = self._current_ecu_index() is not None
        self.action_new.setEnabled(not ro)
        self.action_import.setEnabled(not ro)
        self.action_add_ecu.setEnabled(not ro and has_ea)
        self.action_duplicate.setEnabled(not ro and has_ecu)
        self.action_remove_ecu.setEnabled(not ro and has_ecu)
        self.action_save.setEnabled(not ro and has_ea)
        self.action_revert.setEnabled(not ro and has_ea)
        self.action_export.setEnabled(has_ea)
        self.action_undo.setVisible(not ro)
        self.action_redo.setVisible(not ro)
        if ro:
            self.action_undo.setEnabled(False)
            self.action_redo.setEnabled(False)

    # -- default dialogs -------------------------------------------------------------------

    def _ask_text_dialog(self, title: str, label: str, default: str) -> str | None:
        text, ok = QInputDialog.getText(self, title, label, text=default)
        return text.strip() if ok and text.strip() else None

    def _show_message_dialog(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    def _ask_save_dialog(self) -> str:
        buttons = (
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel
        )
        answer = QMessageBox.question(
            self,
            "Unsaved Electronic Architecture",
            "Save the changes to the Electronic Architectures?",
            buttons,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return "save"
        if answer == QMessageBox.StandardButton.Discard:
            return "discard"
        return "cancel"


def _replace(target: ElectronicArchitecture, source: ElectronicArchitecture) -> None:
    """Overwrite every field of `target` with a copy of `source` (in place)."""
    src = copy.deepcopy(source)
    for f in ("name", "description", "machine_model", "ecus", "schema_version"):
        setattr(target, f, getattr(src, f))
