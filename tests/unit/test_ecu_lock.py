"""One flash per (machine, ECU) across processes (issue 14): the lock names its live holder,
a killed holder's lock is released as stale, `flash` refuses while another process flashes the
ECU or while an update request for it is open, and a request run refuses while a flash holds the
ECU. Real processes, real file locks, the real `flash --simulate`."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import pytest

from fota_studio.cli import main
from fota_studio.core.update_request import RequestStatus
from fota_studio.engine.engine import Engine
from fota_studio.engine.workflow import RequestRun
from fota_studio.infra.locks import EcuLock, EcuLockedError, ecu_busy
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace
from tests.fakes.processes import child_env, end_child, python_child
from tests.helpers.cli import cli, cli_command
from tests.helpers.waiting import poll_until

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs fork/SIGKILL")

MACHINE, ECU = "Unit #1001", "VCU"
HOLDER = textwrap.dedent(
    """
    import sys
    from fota_studio.infra.locks import EcuLock
    lock = EcuLock(sys.argv[1], sys.argv[2], sys.argv[3])
    lock.acquire("flash VCU 9.9.9 (holder test)")
    print("locked", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def holder(workspace_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the (machine, ECU) lock of the workspace."""
    proc = python_child(HOLDER, str(workspace_dir), MACHINE, ECU, stdin=PIPE, stdout=PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    end_child(proc)


def test_second_holder_is_refused_with_the_holders_name(
    workspace_dir: Path, holder: subprocess.Popen[str]
) -> None:
    lock = EcuLock(workspace_dir, MACHINE, ECU)
    with pytest.raises(EcuLockedError) as info:
        lock.acquire("flash VCU 1.0")
    text = str(info.value)
    assert f"pid {holder.pid}" in text and "holder test" in text and "VCU" in text
    assert ecu_busy(workspace_dir, MACHINE, ECU) is not None
    assert ecu_busy(workspace_dir, MACHINE, "HCU") is None  # other ECUs are free


def test_killed_holder_is_detected_and_its_lock_released(
    workspace_dir: Path, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert ecu_busy(workspace_dir, MACHINE, ECU) is None
    lock = EcuLock(workspace_dir, MACHINE, ECU)
    lock.acquire("flash VCU 1.0")
    try:
        assert lock.stale is not None and lock.stale.pid == holder.pid
    finally:
        lock.release()
    again = EcuLock(workspace_dir, MACHINE, ECU)
    again.acquire("flash VCU 1.1")  # a clean release leaves no stale description
    assert again.stale is None
    again.release()


def test_flash_command_refuses_while_another_process_flashes(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two real `flash` processes on one machine and ECU: the second is refused at once and
    names the first; the first still flashes and verifies (before: both ran, one NRC 0x72)."""
    args = ["--workspace", str(workspace_dir), "flash"]
    args += ["--machine", MACHINE, "--ecu", ECU, "--version", "3.2.0", "--simulate"]
    with Workspace.open(workspace_dir) as ws:  # seed the demo before two processes race
        from fota_studio.demo.seed import ensure_demo

        ensure_demo(ws)
    command = cli_command(*args, "--no-progress")
    first = subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True, env=child_env())
    try:
        taken_or_ended = poll_until(
            lambda: ecu_busy(workspace_dir, MACHINE, ECU) is not None or first.poll() is not None,
            timeout_s=60,
        )
        assert first.poll() is None, first.communicate()
        assert taken_or_ended, "the first flash never took the ECU"
        code = cli(None, *args)
        err = capsys.readouterr().err
        assert code == 1
        assert "is being flashed" in err and f"pid {first.pid}" in err, err
        out, err1 = first.communicate(timeout=120)
        assert first.returncode == 0, err1
        assert "verified" in out
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()


def test_flash_command_refuses_when_an_update_request_is_open(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(workspace_dir) as ws:
        from fota_studio.demo.seed import ensure_demo

        ensure_demo(ws)
        brand = ws.read("SELECT brand, model FROM repositories ORDER BY id LIMIT 1")[0]
        req = RequestsStore(ws).create(
            machine=MACHINE, ecu=ECU, brand=brand["brand"], model=brand["model"], version="3.2.0"
        )
    args = ["--workspace", str(workspace_dir), "flash", "--machine", MACHINE, "--ecu", ECU]
    code = main([*args, "--version", "3.2.0", "--simulate", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"open update request #{req.id}" in err, err


def test_request_run_refuses_while_a_flash_holds_the_ecu(
    workspace_dir: Path, holder: subprocess.Popen[str]
) -> None:
    with Workspace.open(workspace_dir) as ws:
        store = RequestsStore(ws)
        req = store.create(machine=MACHINE, ecu=ECU, brand="B", model="M", version="1.0")
        with Engine() as engine:
            run = RequestRun(ws, engine, req.id)
            with pytest.raises(EcuLockedError, match=f"pid {holder.pid}"):
                run.run()
        assert store.get(req.id).status == RequestStatus.PENDING  # no attempt consumed


def test_engine_releases_the_ecu_after_a_failed_or_never_started_job(
    workspace_dir: Path, can_channel: str
) -> None:
    """The lock is taken at submit (so a second submit is refused at once) and released when
    the job ends however it ends: a loader that fails, a job cancelled before it ran."""
    import threading

    from fota_studio.core.errors import ImageError
    from fota_studio.demo.catalog import demo_architecture
    from fota_studio.protocols.bus import BusSettings

    ecu = next(e for e in demo_architecture().ecus if e.name == ECU)

    def broken_loader() -> object:
        raise ImageError("not a firmware file", source="x.hex", line=1)

    with Workspace.open(workspace_dir) as ws, Engine() as engine:
        engine.open_channel(ecu.connection.channel, BusSettings("virtual", can_channel))
        gate = threading.Event()
        blocker = engine.submit(ecu.connection.channel, "busy", lambda _ctx: gate.wait(10))
        first = engine.submit_flash(
            ecu.connection.channel, ecu, None, loader=broken_loader, machine=MACHINE, workspace=ws
        )
        assert ecu_busy(workspace_dir, MACHINE, ECU) is not None
        with pytest.raises(EcuLockedError):
            engine.submit_flash(
                ecu.connection.channel,
                ecu,
                None,
                loader=broken_loader,
                machine=MACHINE,
                workspace=ws,
            )
        engine.cancel(first.job_id)
        gate.set()
        blocker.result(10)
        first.result(10)  # cancelled before start: never ran
        assert ecu_busy(workspace_dir, MACHINE, ECU) is None
        second = engine.submit_flash(
            ecu.connection.channel, ecu, None, loader=broken_loader, machine=MACHINE, workspace=ws
        )
        with pytest.raises(ImageError):
            second.result(10)
        assert ecu_busy(workspace_dir, MACHINE, ECU) is None
