"""Shared set-up of the flash UI tests (Flash panel, technician view): the demo workspace and
demo ECUs with short timings stored in it (so the views flash with them); the engine with CAN1
is tests/ui/conftest.py's `engine` fixture. Main thread of a test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fota_studio.core.ea import EcuDefinition
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """The app's demo workspace (closed after). Use in a test module as
    `ws = flash_rig.ws` (pytest finds the fixture by its name)."""
    from fota_studio.app import open_workspace

    workspace = open_workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


def fast_demo_ecu(ws: Workspace, name: str = "VCU") -> EcuDefinition:
    """The workspace's ECU `name` with short timings, stored in its EA."""
    store = EaStore(ws)
    ea = store.get(store.names()[0])
    ecu = ea.ecu(name)
    ecu.uds.p2_timeout_ms = 300
    ecu.uds.tester_present_period_ms = 200
    ecu.connection.bootloader_entry_delay_ms = 80
    ecu.uds.timing.reset_time_ms = 40
    ecu.uds.timing.bootloader_ready_timeout_ms = 1000
    store.save(ea)
    return ecu
