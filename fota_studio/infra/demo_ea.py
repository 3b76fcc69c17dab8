"""Seeds the demo Electronic Architecture "Excavator-X200" and its machines into a workspace.

Idempotent: the EA is stored only when missing, and each demo machine is created (assigned to
the demo EA, with the installed versions of `DEMO_REPOSITORIES`) only when it does not exist, so
a machine the user has since updated keeps its versions. Called from the demo seeding and tests;
any thread (it goes through the workspace's transactions).
"""

from __future__ import annotations

from fota_studio.core.demo_catalog import (
    DEMO_EA_NAME,
    DEMO_MACHINES,
    DEMO_REPOSITORIES,
    demo_architecture,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.workspace import Workspace

DEMO_SOURCE = "demo"


def seed_demo_architecture(ws: Workspace) -> None:
    """Store the demo EA and assign the demo machines "Unit #1001", "Unit #1002" to it."""
    store = EaStore(ws)
    ea = demo_architecture()
    if not store.exists(DEMO_EA_NAME):
        store.save(ea)
    for serial in DEMO_MACHINES:
        if store.find_machine(serial) is not None:
            continue
        store.assign(serial, DEMO_EA_NAME, name=f"Demo excavator {serial.split('#')[-1]}")
        # ECUs are VCU, HCU, BCU in the order of DEMO_REPOSITORIES
        for ecu, repo in zip(ea.ecus, DEMO_REPOSITORIES, strict=True):
            store.set_installed(serial, ecu.name, repo.installed_version, DEMO_SOURCE)
