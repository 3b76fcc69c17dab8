"""A flat Qt table model with a fixed header: the panels' list models derive from it.

`ColumnTableModel` answers Qt's `rowCount`, `columnCount` and `headerData` from its
`columns` titles and its `row_count()`; a subclass adds `data` and its own rows. GUI thread
only.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt


class ColumnTableModel(QAbstractTableModel):
    """A table without a tree: `columns` are the horizontal header's titles."""

    columns: tuple[str, ...] = ()
    """The header titles, one a column (a subclass sets them)."""

    def row_count(self) -> int:
        """Rows shown now (a subclass answers)."""
        raise NotImplementedError

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Qt override."""
        return 0 if parent.isValid() else self.row_count()

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Qt override."""
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        """Qt override: the column titles (no vertical header text)."""
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return None
