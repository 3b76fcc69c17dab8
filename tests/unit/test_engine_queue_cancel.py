"""Cancelling a flash while it is still queued: the caller gets a cancelled FlashResult (it used
to get None and crash on `.ok`), nothing is sent, no temp folder is left and the ECU's lock is
free again."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import can

from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.demo.catalog import APP_REGION_START, DEMO_MACHINES, app_header, demo_ecus
from fota_studio.demo.seed import ensure_demo
from fota_studio.engine.engine import Engine, JobContext
from fota_studio.engine.flash_job import FlashResult
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings


def _temp_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("fota-flash-*")}


def test_cancelled_queued_flash_yields_a_result(workspace_dir: Path, can_channel: str) -> None:
    ecu = next(e for e in demo_ecus() if e.name == "VCU")
    image = FirmwareImage((Segment(APP_REGION_START, app_header("9.0.0") + b"\x11" * 64),))
    release = threading.Event()
    results: list[FlashResult] = []
    before = _temp_folders()
    listener = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    with Workspace.open(workspace_dir) as ws, Engine() as engine:
        ensure_demo(ws)
        channel = ecu.connection.channel
        engine.open_channel(channel, BusSettings("virtual", can_channel))

        def block(ctx: JobContext) -> str:
            release.wait(10.0)
            return "done"

        first = engine.submit(channel, "hold the worker", block)
        queued = engine.submit_flash(
            channel,
            ecu,
            image,
            machine=DEMO_MACHINES[0],
            version="9.0.0",
            workspace=ws,
            on_result=results.append,
        )
        assert engine.cancel(queued.job_id, "operator changed their mind")
        release.set()
        assert first.result(timeout=10) == "done"
        result = queued.result(timeout=10)
        assert isinstance(result, FlashResult)
        assert result.cancelled and not result.ok and result.outcome == "cancelled"
        assert "operator changed their mind" in result.record.error
        assert result.record.result == "cancelled" and results == [result]
        assert listener.recv(timeout=0.2) is None  # nothing was sent
        # The ECU's lock is free again: the same flash may be queued (and cancelled) at once.
        again = engine.submit_flash(
            channel, ecu, image, machine=DEMO_MACHINES[0], version="9.0.0", workspace=ws
        )
        engine.cancel(again.job_id)
        again.result(timeout=30)
    listener.shutdown()
    assert _temp_folders() <= before
