"""The EA editor's list table: one list of the current ECU (security levels, steps, regions,
DIDs, preconditions) as an editable `QTableWidget` with add/remove/move buttons.

Cells are read and written through the codecs in `codecs.py`; every change goes back to the
panel as one undoable edit (`ListTableHost`), problems from the validator colour the cells they
point at. GUI thread only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.ea import StepKind
from fota_studio.core.ea_validate import Problem
from fota_studio.ui.panels.ea.codecs import (
    Column,
    format_cell,
    format_step_params,
    parse_cell,
    parse_step_params,
    step_params_help,
)

PROBLEM_STYLE = "border: 2px solid #d32f2f;"
PROBLEM_CELL_COLOR = QColor(255, 205, 210)


class ListTableHost(Protocol):
    """What a list table needs from the panel that owns it (the EA editor)."""

    def _commit(self, suffix: str, value: Any) -> None: ...

    def _status(self, text: str) -> None: ...

    def _refresh_page(self) -> None: ...

    def _edit_ecu_list(
        self, suffix: str, text: str, change: Callable[[list[Any]], None]
    ) -> None: ...


class ListTable(QWidget):
    """A list of dataclasses of the current ECU as an editable table with add/remove/move."""

    def __init__(
        self,
        panel: ListTableHost,
        suffix: str,
        cols: list[Column],
        factory: Callable[[], Any] | None,
        *,
        reorder: bool = False,
    ) -> None:
        super().__init__()
        self.panel = panel
        self.suffix = suffix
        self.cols = cols
        self.factory = factory
        self.table = QTableWidget(0, len(cols))
        self.table.setHorizontalHeaderLabels([c.title for c in cols])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setDefaultSectionSize(22)
        for c, col in enumerate(cols):
            self.table.setColumnWidth(c, 40 if col.kind == "bool" else 160)
        self.table.itemChanged.connect(self._on_table_item_changed)
        self.buttons: list[QPushButton] = []
        row = QHBoxLayout()
        if factory is not None:
            self._button(row, "Add", self._on_add_clicked)
            self._button(row, "Remove", self._on_remove_clicked)
        if reorder:
            self._button(row, "Up", lambda: self._on_move_clicked(-1))
            self._button(row, "Down", lambda: self._on_move_clicked(+1))
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table)
        lay.addLayout(row)
        self._loading = False
        self._read_only = False

    def _button(self, layout: QHBoxLayout, text: str, slot: Callable[[], None]) -> None:
        b = QPushButton(text)
        b.clicked.connect(slot)
        layout.addWidget(b)
        self.buttons.append(b)

    def load(self, rows: list[Any]) -> None:
        """Show the rows (no signals)."""
        self._loading = True
        self.table.blockSignals(True)
        try:
            self.table.setRowCount(len(rows))
            for r, obj in enumerate(rows):
                for c, col in enumerate(self.cols):
                    value = getattr(obj, col.key)
                    item = QTableWidgetItem()
                    if col.kind == "bool":
                        item.setFlags(
                            Qt.ItemFlag.ItemIsUserCheckable
                            | Qt.ItemFlag.ItemIsEnabled
                            | Qt.ItemFlag.ItemIsSelectable
                        )
                        item.setCheckState(
                            Qt.CheckState.Checked if value else Qt.CheckState.Unchecked
                        )
                    elif col.kind == "step_params":
                        item.setText(format_step_params(obj.kind, value))
                        # the schema stays the tooltip when no problem is shown (see mark)
                        item.setData(Qt.ItemDataRole.UserRole, step_params_help(obj.kind))
                        item.setToolTip(step_params_help(obj.kind))
                    else:
                        item.setText(format_cell(col.kind, value))
                        if col.kind == "ro":
                            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                    self.table.setItem(r, c, item)
        finally:
            self.table.blockSignals(False)
            self._loading = False

    def set_read_only(self, ro: bool) -> None:
        """Disable editing (operator mode)."""
        self._read_only = ro
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.NoEditTriggers
            if ro
            else QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        for b in self.buttons:
            b.setEnabled(not ro)

    def mark(self, problems: list[Problem], base: str) -> None:
        """Colour the cells (and the frame) that problems point at."""
        whole: list[str] = []
        cells: dict[tuple[int, int], list[str]] = {}
        prefix = f"{base}{self.suffix}"
        for p in problems:
            if p.path == prefix:
                whole.append(p.message)
                continue
            m = re.match(re.escape(prefix) + r"\[(\d+)\](?:\.([a-z_]+))?", p.path)
            if not m:
                continue
            r = int(m.group(1))
            keys = [c.key for c in self.cols]
            cols = [keys.index(m.group(2))] if m.group(2) in keys else range(len(self.cols))
            for c in cols:
                cells.setdefault((r, c), []).append(p.message)
        self.table.blockSignals(True)
        for r in range(self.table.rowCount()):
            for c in range(self.table.columnCount()):
                item = self.table.item(r, c)
                if item is None:
                    continue
                msgs = cells.get((r, c))
                item.setBackground(PROBLEM_CELL_COLOR if msgs else QColor(0, 0, 0, 0))
                base = item.data(Qt.ItemDataRole.UserRole) or ""
                item.setToolTip("\n".join([*msgs, base] if base else msgs) if msgs else base)
        self.table.blockSignals(False)
        self.setProperty("has_problem", bool(whole or cells))
        self.table.setStyleSheet(PROBLEM_STYLE if (whole or cells) else "")
        self.table.setToolTip("\n".join(whole))

    def select(self, row: int, key: str | None) -> None:
        """Select a cell and focus the table."""
        keys = [c.key for c in self.cols]
        col = keys.index(key) if key in keys else 0
        if 0 <= row < self.table.rowCount():
            self.table.setCurrentCell(row, col)
        self.table.setFocus()

    def _on_table_item_changed(self, item: QTableWidgetItem) -> None:
        if self._loading:
            return
        if self._read_only:
            self.panel._refresh_page()
            return
        col = self.cols[item.column()]
        path = f"{self.suffix}[{item.row()}].{col.key}"
        if col.kind == "bool":
            value: Any = item.checkState() == Qt.CheckState.Checked
        else:
            try:
                if col.kind == "step_params":
                    kind_item = self.table.item(
                        item.row(), [c.key for c in self.cols].index("kind")
                    )
                    assert kind_item is not None
                    value = parse_step_params(StepKind(kind_item.text()), item.text())
                else:
                    value = parse_cell(col.kind, item.text())
            except ValueError as exc:
                self.panel._status(f"{col.title}: {exc}")
                self.panel._refresh_page()
                return
        self.panel._commit(path, value)

    def _on_add_clicked(self) -> None:
        if self.factory is None:
            return
        factory = self.factory
        self.panel._edit_ecu_list(self.suffix, "Add row", lambda lst: lst.append(factory()))

    def _on_remove_clicked(self) -> None:
        r = self.table.currentRow()
        if r < 0:
            return
        self.panel._edit_ecu_list(self.suffix, "Remove row", lambda lst: lst.pop(r))

    def _on_move_clicked(self, delta: int) -> None:
        r = self.table.currentRow()
        n = self.table.rowCount()
        if r < 0 or not 0 <= r + delta < n:
            return

        def move(lst: list[Any]) -> None:
            lst[r], lst[r + delta] = lst[r + delta], lst[r]

        self.panel._edit_ecu_list(self.suffix, "Move step", move)
        self.table.setCurrentCell(r + delta, self.table.currentColumn())
