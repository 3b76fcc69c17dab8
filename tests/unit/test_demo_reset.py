"""Demo ▸ Reset demo (`demo.run.reset_demo`, issue 15): the demo's open request is cancelled
and the machine goes back to the catalog's starting version, so the next demo request is the
pinned upgrade again; a fresh demo is left alone."""

from __future__ import annotations

from pathlib import Path

from fota_studio.core.update_request import RequestStatus
from fota_studio.demo.catalog import DEMO_MACHINES, DEMO_REPOSITORIES
from fota_studio.demo.run import demo_target, prepare_demo, reset_demo
from fota_studio.demo.seed import ensure_demo
from fota_studio.engine.workflow import create_request
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace

VCU = DEMO_REPOSITORIES[0]
MACHINE = DEMO_MACHINES[0]


def test_reset_cancels_the_open_request_and_restores_the_starting_version(
    workspace_dir: Path,
) -> None:
    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
        assert reset_demo(ws) == []  # a fresh demo: nothing to do
        eas = EaStore(ws)
        eas.set_installed(MACHINE, "VCU", VCU.demo_version, "an earlier demo run")
        open_req = create_request(ws, MACHINE, "VCU", VCU.demo_version, confirm=True)
        done = reset_demo(ws, reason="demo reset by the user")
        assert done == [
            f"update request #{open_req.id} cancelled",
            f"{MACHINE} VCU back on {VCU.installed_version}",
        ]
        cancelled = RequestsStore(ws).get(open_req.id)
        assert cancelled.status is RequestStatus.CANCELLED
        assert eas.get_machine(MACHINE).installed["VCU"] == VCU.installed_version
        assert reset_demo(ws) == []
        # The next demo request is the pinned upgrade, never a downgrade.
        req = prepare_demo(ws, demo_target(ws))
        assert (req.installed_before, req.version) == (VCU.installed_version, VCU.demo_version)
