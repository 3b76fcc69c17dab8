"""Item model of the Software Repositories: "Brand / Model" rows, each with its versions.

A real `QAbstractItemModel` over plain snapshots (`RepositoryInfo`, `VersionInfo`) read from
`RepositoryStore`; versions are listed newest first (semantic-version order from the store,
reversed), retired versions greyed and struck out. Indexes carry an integer id in
`internalId()` (0 for a repository row, repository row + 1 for a version row) instead of Python
object pointers, so no Python reference has to be kept alive for Qt. `reload()` reads the
store on the calling thread — fast (a few small SQL queries); GUI thread only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

from fota_studio.core.versions import is_prerelease
from fota_studio.infra.repository import RepositoryInfo, RepositoryStore, VersionInfo
from fota_studio.ui.widgets.memory_map import format_size

#: Custom roles: the snapshot behind a row, and its kind ("repository" | "version").
INFO_ROLE = Qt.ItemDataRole.UserRole + 1
KIND_ROLE = Qt.ItemDataRole.UserRole + 2
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 3

COLUMNS = ("Repository / version", "Size", "Imported", "Signature")


@dataclass
class _RepoNode:
    info: RepositoryInfo
    versions: list[VersionInfo]  # newest first


class RepositoryModel(QAbstractItemModel):
    """Two-level tree: repositories (Brand / Model) → versions, newest first."""

    def __init__(self, store: RepositoryStore | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._repos: list[_RepoNode] = []
        self._rows: dict[tuple[str, str], int] = {}
        if store is not None:
            self.reload()

    # -- loading --------------------------------------------------------------------------------

    def set_store(self, store: RepositoryStore | None) -> None:
        """Point the model at another store (new workspace) and reload."""
        self._store = store
        self.reload()

    def reload(self) -> None:
        """Re-read every repository and version from the store (one model reset).

        Two queries in all (repositories, then every version grouped by repository), never one
        per repository: the cost is linear in repositories + versions.
        """
        repos: list[_RepoNode] = []
        if self._store is not None:
            grouped = self._store.versions_by_repository()
            for info in self._store.list_repositories():
                repos.append(_RepoNode(info, list(reversed(grouped.get(info.id, ())))))
        self.beginResetModel()
        self._repos = repos
        self._rows = {(n.info.brand, n.info.model): row for row, n in enumerate(repos)}
        self.endResetModel()

    # -- lookups --------------------------------------------------------------------------------

    def repository_index(self, brand: str, model: str) -> QModelIndex:
        """Index (column 0) of a repository row, invalid when unknown."""
        row = self._rows.get((brand, model))
        return QModelIndex() if row is None else self.index(row, 0)

    def versions_of(self, brand: str, model: str) -> list[VersionInfo]:
        """The loaded VersionInfo rows of a repository, oldest first (no query)."""
        row = self._rows.get((brand, model))
        return [] if row is None else list(reversed(self._repos[row].versions))

    def version_index(self, brand: str, model: str, version: str) -> QModelIndex:
        """Index (column 0) of a version row, invalid when unknown."""
        parent = self.repository_index(brand, model)
        if not parent.isValid():
            return QModelIndex()
        for row, v in enumerate(self._repos[parent.row()].versions):
            if v.version == version:
                return self.index(row, 0, parent)
        return QModelIndex()

    def info(
        self, index: QModelIndex | QPersistentModelIndex
    ) -> RepositoryInfo | VersionInfo | None:
        """The RepositoryInfo or VersionInfo behind an index (None when invalid)."""
        if not index.isValid():
            return None
        ident = index.internalId()
        if ident == 0:
            return self._repos[index.row()].info
        return self._repos[ident - 1].versions[index.row()]

    def repositories(self) -> list[RepositoryInfo]:
        """The RepositoryInfo snapshots, in row order."""
        return [n.info for n in self._repos]

    # -- QAbstractItemModel ---------------------------------------------------------------------

    def index(
        self,
        row: int,
        column: int,
        parent: QModelIndex | QPersistentModelIndex = QModelIndex(),  # noqa: B008
    ) -> QModelIndex:
        """Qt override: ids instead of pointers (see module docstring)."""
        if column < 0 or column >= len(COLUMNS) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            if row >= len(self._repos):
                return QModelIndex()
            return self.createIndex(row, column, 0)
        if parent.internalId() != 0:
            return QModelIndex()  # versions have no children
        repo_row = parent.row()
        if repo_row >= len(self._repos) or row >= len(self._repos[repo_row].versions):
            return QModelIndex()
        return self.createIndex(row, column, repo_row + 1)

    def parent(  # type: ignore[override]  # the model's parent(index), not QObject.parent()
        self,
        index: QModelIndex | QPersistentModelIndex = QModelIndex(),  # noqa: B008
    ) -> QModelIndex:
        """Qt override: a version's parent is its repository row."""
        if not index.isValid():
            return QModelIndex()
        ident = index.internalId()
        if ident == 0:
            return QModelIndex()
        return self.createIndex(ident - 1, 0, 0)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Qt override."""
        if not parent.isValid():
            return len(self._repos)
        if parent.column() != 0 or parent.internalId() != 0:
            return 0
        return len(self._repos[parent.row()].versions)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Qt override."""
        del parent
        return len(COLUMNS)

    def hasChildren(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008
        """Qt override (cheaper than rowCount for the view's expand arrows)."""
        return self.rowCount(parent) > 0

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        """Qt override: column titles."""
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(COLUMNS)
        ):
            return COLUMNS[section]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        """Qt override: selectable, not editable."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        """Qt override: text per column; grey + strike-out for retired versions."""
        if not index.isValid():
            return None
        ident = index.internalId()
        col = index.column()
        if ident == 0:
            node = self._repos[index.row()]
            info = node.info
            if role in _ITEM_ROLES:
                return _item_data(
                    role, info, "repository", info.brand, info.model, info.description
                )
            return self._repo_data(node, col, role)
        v = self._repos[ident - 1].versions[index.row()]
        if role in _ITEM_ROLES:
            return _item_data(role, v, "version", v.version, v.notes, v.source_name)
        return self._version_data(v, col, role)

    def _repo_data(self, node: _RepoNode, col: int, role: int) -> Any:
        info = node.info
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return f"{info.brand} / {info.model}"
            if col == 1:
                n = len(node.versions)
                return f"{n} version{'s' if n != 1 else ''}"
            return ""
        if role == Qt.ItemDataRole.ToolTipRole:
            # The whole name too: a narrow dock cuts "Bosch Rexroth / BODAS RC5-6/40".
            name = f"{info.brand} / {info.model}"
            return f"{name}\n{info.description}" if info.description else name
        if role == Qt.ItemDataRole.FontRole and col == 0:
            font = QFont()
            font.setBold(True)
            return font
        return None

    def _version_data(self, v: VersionInfo, col: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                marks = "  (pre-release)" if is_prerelease(v.version) else ""
                marks += "  (retired)" if v.retired else ""
                return v.version + marks
            if col == 1:
                return format_size(v.size)
            if col == 2:
                return v.imported_at[:16].replace("T", " ")
            if col == 3:
                return v.signature_state + (f" ({v.signer})" if v.signer else "")
            return ""
        if role == Qt.ItemDataRole.ForegroundRole and v.retired:
            app = QApplication.instance()
            color = (
                QApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
                if app is not None
                else QColor(Qt.GlobalColor.gray)
            )
            return QBrush(color)
        if role == Qt.ItemDataRole.FontRole and v.retired:
            font = QFont()
            font.setStrikeOut(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            pre = " (pre-release)" if is_prerelease(v.version) else ""
            head = f"{v.version}{pre}" + (" — retired" if v.retired else "")
            return f"{head}\n{v.notes}" if v.notes else head
        return None


#: The roles every row answers the same way (`_item_data`).
_ITEM_ROLES = (INFO_ROLE, KIND_ROLE, SEARCH_ROLE)


def _item_data(role: int, item: Any, kind: str, *words: str) -> Any:
    """INFO_ROLE: the row's info object; KIND_ROLE: its kind; SEARCH_ROLE: its words, lower
    case, for the filter."""
    if role == INFO_ROLE:
        return item
    if role == KIND_ROLE:
        return kind
    return " ".join(words).lower()


def persistent_key(model: RepositoryModel, index: QModelIndex) -> tuple[str, ...] | None:
    """A key that survives a reload: (brand, model) or (brand, model, version)."""
    info = model.info(index)
    if info is None:
        return None
    if hasattr(info, "version") and hasattr(info, "sha256"):
        return (info.brand, info.model, info.version)
    return (info.brand, info.model)


def index_for_key(model: RepositoryModel, key: tuple[str, ...] | None) -> QModelIndex:
    """The index of a `persistent_key` after a reload (invalid when gone)."""
    if not key:
        return QModelIndex()
    if len(key) == 3:
        return model.version_index(*key)
    return model.repository_index(key[0], key[1])


__all__ = [
    "COLUMNS",
    "INFO_ROLE",
    "KIND_ROLE",
    "SEARCH_ROLE",
    "RepositoryModel",
    "index_for_key",
    "persistent_key",
]
