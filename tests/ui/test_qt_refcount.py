"""REQUIRED regression guard: PySide6 must not drop references to None/True it does not own.

PySide6 6.12.0 on CPython 3.11 loses one reference to `None` for every `QModelIndex.data()` that
returns None and one to `True` for every `Signal.emit()`; after a few thousand calls the process
dies with `Fatal Python error: none_dealloc` (see README). Short GUI tests pass anyway, so only a
loop like this one catches a bad PySide6 before users do. On Python >= 3.12 None/True are
immortal and their refcount is meaningless, so the checks are skipped there.
"""

from __future__ import annotations

import gc
import sys
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QObject, QStringListModel, Qt, Signal

from fota_studio.ui.models.repository_model import RepositoryModel

CALLS = 20_000
TOLERANCE = 100  # other threads and the GC may move the count a little; the bug moves it 20,000

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="None/True are immortal on Python >= 3.12"
)


def _stable_refcount(obj: object) -> int:
    gc.collect()
    return sys.getrefcount(obj)


class _Store:
    """Just enough of RepositoryStore for the model: one repository with one version."""

    def list_repositories(self):
        return [SimpleNamespace(brand="B", model="M", description="", created_at="", id=1)]

    def versions_by_repository(self):
        return {1: self.list_versions("B", "M")}

    def list_versions(self, brand, model, include_retired=True):
        del brand, model, include_retired
        return [
            SimpleNamespace(
                version="1.0.0",
                retired=False,
                size=1,
                imported_at="",
                signature_state="unsigned",
                signer="",
                notes="",
                source_name="",
                sha256="0" * 64,
            )
        ]


def test_model_data_returning_none_keeps_none_refcount(qapp) -> None:
    del qapp
    model = RepositoryModel(_Store())
    version_index = model.index(0, 0, model.index(0, 0))
    assert version_index.isValid()
    # A role our Python data() answers with None, called through Qt (QModelIndex.data).
    role = Qt.ItemDataRole.DecorationRole
    assert version_index.data(role) is None
    before = _stable_refcount(None)
    for _ in range(CALLS):
        version_index.data(role)
    after = _stable_refcount(None)
    assert abs(after - before) < TOLERANCE, f"None refcount moved by {after - before}"


def test_cpp_model_invalid_variant_keeps_none_refcount(qapp) -> None:
    del qapp
    model = QStringListModel(["a", "b"])
    index = model.index(0, 0)
    assert index.data(Qt.ItemDataRole.UserRole) is None
    before = _stable_refcount(None)
    for _ in range(CALLS):
        index.data(Qt.ItemDataRole.UserRole)
    after = _stable_refcount(None)
    assert abs(after - before) < TOLERANCE, f"None refcount moved by {after - before}"


class _Emitter(QObject):
    fired = Signal()
    flag = Signal(bool)


def test_signal_emit_keeps_true_refcount(qapp) -> None:
    del qapp
    emitter = _Emitter()
    seen: list[bool] = []
    emitter.flag.connect(seen.append)
    emitter.fired.connect(lambda: None)
    before = _stable_refcount(True)
    for _ in range(CALLS):
        emitter.fired.emit()
        emitter.flag.emit(True)
    seen.clear()
    after = _stable_refcount(True)
    assert abs(after - before) < TOLERANCE, f"True refcount moved by {after - before}"
