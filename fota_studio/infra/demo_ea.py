"""Seeds the demo Electronic Architecture "Excavator-X200" and its machines (being written)."""

from __future__ import annotations

from fota_studio.infra.workspace import Workspace


def seed_demo_architecture(ws: Workspace) -> None:
    """Store the demo EA and assign the demo machines (filled in by the EA work)."""
    del ws
