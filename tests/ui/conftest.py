"""pytest-qt set-up: Qt runs offscreen (set before any Qt import), and a modal dialog that a
test did not expect fails that test at once instead of blocking it until the CI timeout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from fota_studio.engine.engine import Engine  # never imports Qt
from fota_studio.protocols.bus import BusSettings

os.environ["QT_QPA_PLATFORM"] = "offscreen"


class UnexpectedModal(AssertionError):
    """A panel opened a modal dialog (nobody would answer it under test)."""


@pytest.fixture(autouse=True)
def _no_unanswered_modal(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Replace the blocking calls (QDialog.exec, QMessageBox's static boxes) with ones that
    record the dialog and raise: a modal nobody answers would otherwise hang the whole run
    (seen once in CI as a 240 s faulthandler dump inside the Qt event loop). Tests that expect
    a question replace the panel's `confirm`/`ask_*` hooks, which never reach these."""
    from PySide6.QtWidgets import QDialog, QMessageBox

    opened: list[str] = []

    def _exec(self: QDialog, *_a: Any, **_k: Any) -> int:
        opened.append(self.windowTitle())
        raise UnexpectedModal(f"modal dialog {self.windowTitle()!r} ({type(self).__name__})")

    def _box(kind: str) -> Any:
        def show(_parent: Any, title: str, text: str, *_a: Any, **_k: Any) -> Any:
            opened.append(title)
            raise UnexpectedModal(f"QMessageBox.{kind} {title!r}: {text[:200]}")

        return staticmethod(show)

    monkeypatch.setattr(QDialog, "exec", _exec)
    for kind in ("warning", "critical", "information", "question"):
        monkeypatch.setattr(QMessageBox, kind, _box(kind))
    yield opened


@pytest.fixture
def engine(can_channel: str) -> Iterator[Engine]:
    """An engine with CAN1 open on the test's private virtual channel; shut down afterwards."""
    eng = Engine()
    eng.open_channel("CAN1", BusSettings(interface="virtual", channel=can_channel))
    yield eng
    eng.shutdown()
