"""Issue 21: the Requests panel keeps the record verification off the GUI thread and its refresh
proportional to what changed.

The verifier functions the report calls are wrapped (the real ones still run and decide) so the
test can see on which thread they run; the model's signals show whether a tick reset the table
or touched only the changed rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fota_studio.core.update_request import RequestStatus
from fota_studio.infra import record_verify
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from fota_studio.ui import report
from fota_studio.ui.panels.requests_panel import RequestsPanel


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    w = Workspace.open(workspace_dir)
    store = RequestsStore(w)
    for i in range(12):
        store.create(
            machine=f"Unit #{1000 + i % 3}",
            ecu=("VCU", "HCU")[i % 2],
            brand="Acme",
            model="X",
            version=f"1.{i}.0",
            created_by="test",
        )
    yield w
    w.close()


@pytest.fixture
def verifier_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Wrap the record verifiers the report uses; record the thread of every call."""
    calls: dict[str, list[str]] = {"request_verdict": [], "verify_workspace": []}

    def spy(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name].append(threading.current_thread().name)
            return real(*args, **kwargs)

        return wrapper

    for module in (report, record_verify):
        for name in calls:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, spy(name, getattr(module, name)))
    return calls


def _wait_detail(qtbot: Any, panel: RequestsPanel, request_id: int) -> None:
    qtbot.waitUntil(
        lambda: not panel.detail_pending() and f"#{request_id}" in panel.detail.toPlainText(),
        timeout=10_000,
    )


def test_detail_and_refresh_never_verify_on_the_gui_thread(
    qtbot: Any, ws: Workspace, verifier_threads: dict[str, list[str]]
) -> None:
    gui = threading.current_thread().name
    panel = RequestsPanel(ws)
    qtbot.addWidget(panel)
    ids = [r.id for r in panel.model.rows]
    for rid in (ids[0], ids[5], ids[-1]):
        panel.select(rid)
        _wait_detail(qtbot, panel, rid)
        assert "Record chain" in panel.detail.toPlainText()
    # A running update changes the selected request; the tick and the events pick it up.
    RequestsStore(ws).update(ids[-1], status=RequestStatus.IN_PROGRESS, step="erase")
    panel._timer.timeout.emit()
    qtbot.waitUntil(lambda: panel.selected().step == "erase", timeout=5_000)
    _wait_detail(qtbot, panel, ids[-1])
    panel.shutdown()
    assert verifier_threads["request_verdict"], "the detail view never asked for a verdict"
    called = verifier_threads["request_verdict"] + verifier_threads["verify_workspace"]
    assert gui not in called, called
    assert set(called) == {"fota-ui-io"}


def test_refresh_tick_updates_only_changed_rows(qtbot: Any, ws: Workspace) -> None:
    panel = RequestsPanel(ws)
    qtbot.addWidget(panel)
    model = panel.model
    resets: list[int] = []
    changed: list[tuple[int, int]] = []
    inserted: list[tuple[int, int]] = []
    model.modelReset.connect(lambda: resets.append(1))
    model.dataChanged.connect(lambda a, b, *_: changed.append((a.row(), b.row())))
    model.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
    store = RequestsStore(ws)
    target = model.rows[4].id
    store.update(target, status=RequestStatus.IN_PROGRESS, step="transfer_data")
    panel._timer.timeout.emit()
    assert resets == [] and changed == [(4, 4)] and inserted == []
    assert model.rows[4].step == "transfer_data"
    panel._timer.timeout.emit()  # nothing changed since: nothing touched
    assert changed == [(4, 4)]
    new = store.create(
        machine="Unit #2000", ecu="VCU", brand="Acme", model="X", version="2.0.0", created_by="t"
    )
    panel._timer.timeout.emit()
    assert resets == [] and inserted == [(0, 0)] and model.rows[0].id == new.id
    assert panel.machine_filter.findData("Unit #2000") >= 0  # the filter list learned it
    # Under a status filter a request that stops matching leaves the table, row by row.
    panel.status_filter.setCurrentIndex(panel.status_filter.findData("In progress"))
    assert [r.id for r in model.rows] == [target]
    resets.clear()
    store.update(target, status=RequestStatus.SUCCESSFUL, step="finalize", outcome="success")
    panel._timer.timeout.emit()
    assert resets == [] and model.rows == []
    panel.shutdown()
