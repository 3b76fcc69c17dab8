"""Several ECUs in one job (issue 18 §4): ECUs on different channels run in parallel, ECUs on
one bus interleaved (each with its own S3 kept alive); `after:` orders them; one failed ECU
does not stop the others unless the plan says so; the machine record holds every ECU."""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fota_studio.core.ea import EcuDefinition, IsoTpAddress
from fota_studio.core.errors import ConfigurationError
from fota_studio.core.events import EngineEvent
from fota_studio.core.flash_record import (
    PLAN_FAILED,
    PLAN_SKIPPED,
    PLAN_VERIFIED,
    FlashRecord,
    MachineFlashRecord,
)
from fota_studio.engine.flash_job import FlashSession
from fota_studio.engine.flash_plan_run import (
    PLAN_RUNNING,
    PlanEcuState,
    PlanTarget,
    flash_machine,
    plan_order,
)
from fota_studio.sim.faults import Fault
from fota_studio.sim.uds_ecu import SimEcu
from tests.fakes.flash import (
    fast_ecu,
    fast_sim_options,
    make_image,
    memory_matches,
    open_tester_bus,
    sim_ecu,
)
from tests.fakes.sim_rig import new_channel

VERSION = "8.0.0"


def second_vcu(name: str = "VCU2") -> EcuDefinition:
    """A copy of the fast VCU on other IDs (0x7E2/0x7EA), to share the VCU's bus."""
    ecu = fast_ecu("VCU")
    ecu.name = name
    ecu.connection.application = IsoTpAddress(0x7E2, 0x7EA)
    ecu.connection.bootloader = IsoTpAddress(0x7E3, 0x7EB)
    ecu.connection.bootloader_entry = None
    return ecu


@contextlib.contextmanager
def machine(
    ecus: list[EcuDefinition], channels: list[str], tmp: Path
) -> Iterator[tuple[dict[str, SimEcu], list[PlanTarget]]]:
    """One simulated ECU per entry on its channel, and the plan targets (one tester bus per
    channel, shared by the ECUs on it)."""
    with contextlib.ExitStack() as stack:
        sims: dict[str, SimEcu] = {}
        buses = {}
        for ecu, ch in zip(ecus, channels, strict=True):
            fd = ecu.connection.fd or any(
                e.connection.fd for e, c in zip(ecus, channels, strict=True) if c == ch
            )
            sims[ecu.name] = stack.enter_context(
                sim_ecu(ecu, ch, tmp / ecu.name, fd=fd, options=fast_sim_options())
            )
            if ch not in buses:
                buses[ch] = stack.enter_context(open_tester_bus(ch, fd))
        targets = []
        for job, (ecu, ch) in enumerate(zip(ecus, channels, strict=True), start=1):
            bus, notifier = buses[ch]
            session = FlashSession(
                ecu, bus, notifier, job, channel=ch, expected_version=VERSION, boot_wait_s=1.5
            )
            targets.append(PlanTarget(session, make_image(VERSION, (0x1800, 0x900))))
        yield sims, targets


def test_three_channels_in_parallel_one_failure_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    ecus = [fast_ecu("VCU"), fast_ecu("HCU"), fast_ecu("BCU")]
    channels = [new_channel() for _ in ecus]
    events: list[EngineEvent] = []
    with machine(ecus, channels, tmp_path) as (sims, targets):
        sims["HCU"].inject(Fault(step="erase", kind="fail"))
        result = flash_machine(targets, events.append, machine="X200-1")
        for name in ("VCU", "BCU"):
            assert memory_matches(sims[name], targets[0].image)
    rec = result.record
    assert not result.ok and result.failed == ["HCU"]
    assert rec.states == {"VCU": PLAN_VERIFIED, "HCU": PLAN_FAILED, "BCU": PLAN_VERIFIED}
    assert sorted(r.ecu for r in rec.ecus) == ["BCU", "HCU", "VCU"]
    hcu = rec.record_of("HCU")
    assert hcu is not None and hcu.failed_step == "erase" and "0x72" in hcu.error
    # Ran at the same time: each started before the others ended.
    spans = [(r.started_at, r.finished_at or 0.0) for r in rec.ecus]
    assert max(s for s, _ in spans) < min(e for _, e in spans)
    # One row per ECU: its own job id on its state events and on its progress.
    states = [e for e in events if isinstance(e, PlanEcuState)]
    assert {(e.ecu, e.job_id) for e in states} == {("VCU", 1), ("HCU", 2), ("BCU", 3)}
    assert {e.ecu for e in states if e.state == PLAN_RUNNING} == {"VCU", "HCU", "BCU"}
    again = MachineFlashRecord.from_dict(rec.to_dict())
    assert again.states == rec.states and len(again.ecus) == 3


def test_same_bus_interleaved(tmp_path: Path) -> None:
    """Two ECUs on one bus run interleaved and both end verified, without a violation (each
    kept its own S3 alive; no sector of one touched by the other's erase)."""
    ecus = [fast_ecu("VCU"), second_vcu()]
    ch = new_channel()
    with machine(ecus, [ch, ch], tmp_path) as (sims, targets):
        result = flash_machine(targets)
        for sim in sims.values():
            assert memory_matches(sim, targets[0].image)
            assert not sim.violations, [str(v) for v in sim.violations]
    assert result.ok, {n: str(r.error) for n, r in result.results.items()}
    spans = [(r.started_at, r.finished_at or 0.0) for r in result.record.ecus]
    assert max(s for s, _ in spans) < min(e for _, e in spans)
    assert result.record.channels == {ch: ["VCU", "VCU2"]}
    # The functional 28 went once for the bus, without positive responses (a stray 68 03 on
    # the other ECU's response ID was once taken as the answer to its next request).
    sent = [
        x.request_hex for r in result.record.ecus for x in r.exchanges if x.request_hex[:2] == "28"
    ]
    assert sent == ["288301"]
    details = [
        s.detail for r in result.record.ecus for s in r.steps if s.step == "comm_control_off"
    ]
    assert len(details) == 2 and all("sent once for the bus by" in d for d in details)


def test_after_orders_and_a_failed_predecessor_skips(tmp_path: Path) -> None:
    gateway = fast_ecu("VCU")
    follower = fast_ecu("HCU")
    follower.after = ["VCU"]
    channels = [new_channel(), new_channel()]
    with machine([follower, gateway], channels, tmp_path) as (sims, targets):
        assert plan_order(targets) == ["VCU", "HCU"]
        ok = flash_machine(targets)
        assert ok.ok
        vcu, hcu = ok.record.record_of("VCU"), ok.record.record_of("HCU")
        assert vcu is not None and hcu is not None and vcu.finished_at is not None
        assert hcu.started_at >= vcu.finished_at
        sims["VCU"].inject(Fault(step="check", kind="nrc", arg=0x72))
        bad = flash_machine(targets)
    assert bad.record.states == {"VCU": PLAN_FAILED, "HCU": PLAN_SKIPPED}
    assert "must follow VCU" in bad.record.skipped["HCU"]
    assert [r.ecu for r in bad.record.ecus] == ["VCU"]


def test_stop_on_failure_skips_the_rest(tmp_path: Path) -> None:
    first = fast_ecu("VCU")
    later = fast_ecu("HCU")
    later.after = ["BCU"]
    third = fast_ecu("BCU")
    third.after = ["VCU"]
    channels = [new_channel() for _ in range(3)]
    with machine([first, later, third], channels, tmp_path) as (sims, targets):
        sims["VCU"].inject(Fault(step="erase", kind="fail"))
        result = flash_machine(targets, stop_on_failure=True)
    assert result.record.states["VCU"] == PLAN_FAILED
    assert result.record.states["BCU"] == result.record.states["HCU"] == PLAN_SKIPPED


def test_cycle_is_refused_before_anything_is_sent() -> None:
    a, b = fast_ecu("VCU"), fast_ecu("HCU")
    a.after, b.after = ["HCU"], ["VCU"]
    targets = [
        PlanTarget(
            FlashSession(ecu=e, bus=None, notifier=None),  # type: ignore[arg-type]
            make_image(VERSION),
        )
        for e in (a, b)
    ]
    with pytest.raises(ConfigurationError, match="cycle"):
        flash_machine(targets)
    dup = [copy.copy(targets[0]), targets[0]]
    with pytest.raises(ConfigurationError, match="more than once"):
        plan_order(dup)


def test_cli_flashes_every_ecu_of_a_machine(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`flash --machine M --all --simulate --json`: every ECU of the demo machine, its newest
    version, one record per ECU in the workspace and the machine record on stdout."""
    from fota_studio.cli import main
    from fota_studio.demo.seed import ensure_demo
    from fota_studio.engine.records import list_flash_records
    from fota_studio.infra.workspace import Workspace

    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
    args = ["--workspace", str(workspace_dir), "--log-level", "WARNING", "flash"]
    args += ["--machine", "Unit #1001", "--all", "--simulate", "--no-progress", "--json"]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    rec = MachineFlashRecord.from_dict(json.loads(out))
    assert rec.order == ["VCU", "HCU", "BCU"]
    assert set(rec.states.values()) == {PLAN_VERIFIED}
    assert len(rec.ecus) == 3 and rec.channels == {"CAN1": ["VCU", "HCU", "BCU"]}
    with Workspace.open(workspace_dir) as ws:
        stored = {r.ecu for r in list_flash_records(ws, limit=10)}
    assert stored == {"VCU", "HCU", "BCU"}


def test_validator_checks_after() -> None:
    from fota_studio.core.ea_validate import Severity, validate
    from fota_studio.demo.catalog import demo_architecture

    ea = demo_architecture()
    ea.ecus[0].after = ["HCU"]
    ea.ecus[1].after = ["VCU"]
    ea.ecus[2].after = ["BCU", "ECM"]
    errors = [str(p) for p in validate(ea) if p.severity is Severity.ERROR]
    assert any("cycle" in e for e in errors), errors
    assert any('ecus[2].after: "BCU" cannot come after itself' in e for e in errors), errors
    assert any('"ECM" is not an ECU of this EA' in e for e in errors), errors
    ea.ecus[0].after, ea.ecus[2].after = [], []
    assert not [p for p in validate(ea) if p.severity is Severity.ERROR]


def _transfer_span(record: FlashRecord) -> tuple[float, float]:
    """When the ECU's TransferData ran: its first request to its last answer."""
    blocks = [x for x in record.exchanges if x.request_hex[:2] == "36"]
    assert blocks, f"{record.ecu}: no TransferData in its record"
    return min(x.t_request for x in blocks), max(x.t_response or 0.0 for x in blocks)


def _cli_plan(workspace_dir: Path, *extra: str) -> list[str]:
    from fota_studio.demo.seed import ensure_demo
    from fota_studio.infra.workspace import Workspace

    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
    args = ["--workspace", str(workspace_dir), "--log-level", "WARNING", "flash"]
    return [*args, "--machine", "Unit #1001", "--simulate", "--no-progress", "--json", *extra]


def test_cli_two_ecus_of_one_bus_run_in_one_job_interleaved(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`flash --machine M --ecu VCU --ecu HCU --simulate`: both on CAN1, flashed by ONE plan
    job — their TransferData overlapped in time (one after the other on the channel's worker,
    as before submit_plan, would fail this)."""
    from fota_studio.cli import main

    code = main(_cli_plan(workspace_dir, "--ecu", "VCU", "--ecu", "HCU"))
    out, err = capsys.readouterr()
    assert code == 0, err
    rec = MachineFlashRecord.from_dict(json.loads(out))
    assert rec.states == {"VCU": PLAN_VERIFIED, "HCU": PLAN_VERIFIED}
    assert rec.channels == {"CAN1": ["VCU", "HCU"]}
    vcu, hcu = (rec.record_of(n) for n in ("VCU", "HCU"))
    assert vcu is not None and hcu is not None
    (v0, v1), (h0, h1) = _transfer_span(vcu), _transfer_span(hcu)
    assert v0 < h1 and h0 < v1, f"TransferData did not overlap: VCU {v0}-{v1}, HCU {h0}-{h1}"
    # One line per ECU on stderr.
    assert "VCU: " in err and "HCU: " in err


def test_cli_plan_with_one_failure_names_it_and_the_other_is_verified(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulated HCU fails its erase: VCU (same bus, same job) still verified; exit code 1,
    the JSON record says HCU failed at erase and why."""
    from fota_studio.cli import main
    from fota_studio.sim.machine import SimMachine

    start = SimMachine.start

    def start_with_fault(self: SimMachine) -> None:
        start(self)
        self.inject("HCU", Fault(step="erase", kind="fail"))

    monkeypatch.setattr(SimMachine, "start", start_with_fault)
    code = main(_cli_plan(workspace_dir, "--ecu", "VCU", "--ecu", "HCU"))
    out, err = capsys.readouterr()
    assert code == 1, err
    rec = MachineFlashRecord.from_dict(json.loads(out))
    assert rec.states == {"VCU": PLAN_VERIFIED, "HCU": PLAN_FAILED}
    hcu = rec.record_of("HCU")
    assert hcu is not None and hcu.failed_step == "erase" and "0x72" in hcu.error
    assert "HCU: error:" in err and "plan: VCU verified, HCU failed" in err


@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT to a child process")
def test_ctrl_c_stops_a_multi_ecu_cli_run_at_a_safe_point(workspace_dir: Path) -> None:
    """Ctrl-C (SIGINT) to a real `flash --machine M --ecu VCU --ecu HCU --simulate` process at
    ~30 %: it ends by itself with exit code 3 (cancelled), names each ECU, and both records are
    stored as cancelled (not left "started"), so the next workspace open finds nothing
    interrupted and the ECU locks are free."""
    import signal
    import subprocess

    from fota_studio.engine.records import list_flash_records
    from fota_studio.infra.flash_journal import RESULT_STARTED
    from fota_studio.infra.locks import ecu_busy
    from fota_studio.infra.workspace import Workspace
    from tests.fakes.processes import child_env, signal_at_percent
    from tests.helpers.cli import cli_command

    args = _cli_plan(workspace_dir, "--ecu", "VCU", "--ecu", "HCU")
    args.remove("--no-progress")
    args.remove("--json")
    proc = subprocess.Popen(
        cli_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env()
    )
    reached, tail = signal_at_percent(proc, 30.0, signal.SIGINT)
    err = tail.decode(errors="replace")
    assert 30.0 <= reached < 100.0
    assert proc.returncode == 3, (proc.returncode, err[-1500:])
    assert "plan: VCU cancelled, HCU cancelled" in err, err[-1500:]
    assert "VCU: cancelled:" in err and "HCU: cancelled:" in err and "Ctrl-C" in err
    assert "stays in its bootloader" in err  # where the ECU was left
    with Workspace.open(workspace_dir) as ws:
        rows = list_flash_records(ws)
        assert {r.ecu: r.result for r in rows} == {"VCU": "cancelled", "HCU": "cancelled"}
        assert all(r.result != RESULT_STARTED for r in rows)
        for name in ("VCU", "HCU"):
            assert ecu_busy(ws.root, "Unit #1001", name) is None
