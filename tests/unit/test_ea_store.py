"""EaStore on a real SQLite workspace: EAs, machines, history; the demo seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.errors import ArchitectureError
from fota_studio.demo.catalog import DEMO_EA_NAME, DEMO_REPOSITORIES, demo_architecture
from fota_studio.demo.seed import seed_demo_architecture
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace


@pytest.fixture
def ws(workspace_dir: Path) -> Workspace:
    w = Workspace.open(workspace_dir)
    yield w
    w.close()


def test_save_get_list_persist_across_reopen(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        store = EaStore(ws)
        assert store.names() == []
        store.save(demo_architecture())
        assert store.get(DEMO_EA_NAME) == demo_architecture()
    with Workspace.open(workspace_dir) as ws:
        store = EaStore(ws)
        assert store.get(DEMO_EA_NAME) == demo_architecture()
        (summary,) = store.list()
        assert summary.ecu_names == ("VCU", "HCU", "BCU")
        assert summary.machine_model == "X200"


def test_save_refuses_invalid_and_duplicates(ws: Workspace) -> None:
    store = EaStore(ws)
    ea = demo_architecture()
    ea.ecus[2].connection.bootloader.request_id = 0x7E0
    with pytest.raises(ArchitectureError, match=r"ecus\[2\].bootloader.request_id: 0x7E0 is also"):
        store.save(ea)
    assert store.names() == []
    store.save(demo_architecture())
    with pytest.raises(ArchitectureError, match="already exists"):
        store.save(demo_architecture(), replace=False)


def test_get_unknown_names_the_known(ws: Workspace) -> None:
    store = EaStore(ws)
    store.save(demo_architecture())
    with pytest.raises(ArchitectureError, match="known: Excavator-X200"):
        store.get("Nope")


def test_rename_moves_machines_and_delete_guards_them(ws: Workspace) -> None:
    store = EaStore(ws)
    store.save(demo_architecture())
    store.assign("M1", DEMO_EA_NAME)
    store.rename(DEMO_EA_NAME, "X200-v2")
    assert store.names() == ["X200-v2"]
    assert store.get("X200-v2").name == "X200-v2"
    assert store.get_machine("M1").ea_name == "X200-v2"
    with pytest.raises(ArchitectureError, match="assigned to M1"):
        store.delete("X200-v2")
    store.assign("M1", None)
    store.delete("X200-v2")
    assert store.names() == []


def test_machines_assign_and_installed_history(ws: Workspace) -> None:
    store = EaStore(ws)
    store.save(demo_architecture())
    with pytest.raises(ArchitectureError, match='no Electronic Architecture "Other"'):
        store.assign("M1", "Other")
    m = store.assign("M1", DEMO_EA_NAME, name="First")
    assert (m.serial, m.name, m.installed) == ("M1", "First", {})
    store.set_installed("M1", "VCU", "3.1.0", "manual")
    store.set_installed("M1", "VCU", "3.2.0", "update request 7")
    store.set_installed("M1", "HCU", None, "manual")
    m = store.get_machine("M1")
    assert m.installed == {"VCU": "3.2.0", "HCU": None}
    assert [(h.ecu, h.version, h.source) for h in m.history] == [
        ("VCU", "3.1.0", "manual"),
        ("VCU", "3.2.0", "update request 7"),
        ("HCU", None, "manual"),
    ]
    with pytest.raises(ArchitectureError, match="no machine"):
        store.set_installed("M9", "VCU", "1")


def test_seed_demo_architecture_is_idempotent(ws: Workspace) -> None:
    seed_demo_architecture(ws)
    store = EaStore(ws)
    store.set_installed("Unit #1001", "VCU", "3.2.1", "update request 1")
    seed_demo_architecture(ws)
    assert store.names() == [DEMO_EA_NAME]
    machines = store.list_machines()
    assert [m.serial for m in machines] == ["Unit #1001", "Unit #1002"]
    assert all(m.ea_name == DEMO_EA_NAME for m in machines)
    want = {
        e: r.installed_version
        for e, r in zip(("VCU", "HCU", "BCU"), DEMO_REPOSITORIES, strict=True)
    }
    assert machines[1].installed == want
    assert machines[0].installed == {**want, "VCU": "3.2.1"}
    assert len(store.get_machine("Unit #1002").history) == 3
