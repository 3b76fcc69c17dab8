"""The real flash engine against the STRICT simulated bootloader: zero protocol violations.

Each demo ECU reboots for exactly its documented times (the EA's bootloader entry delay and
`uds.timing.reset_time_ms`), records every request it gets while rebooting, two requests
outstanding, TransferData out of sequence, a wrong fingerprint length and a sector erased twice
(refused here). A flash that a strict field bootloader would accept leaves the list empty.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fota_studio.core.ea import EcuDefinition, RoutinePrecondition
from fota_studio.engine.flash_job import FlashSession, flash_ecu
from fota_studio.sim.faults import Fault
from fota_studio.sim.uds_ecu import SimEcu, SimEcuOptions
from tests.fakes.flash import demo_ecu, flash_session, make_image, memory_matches, sim_ecu


def strict_options() -> SimEcuOptions:
    """Field-strict: documented reboot times (EA), re-erase refused, violations recorded."""
    return SimEcuOptions(
        strict=True,
        reerase="refuse",
        erase_ms_per_kib=0.5,
        erase_min_ms=20,
        pending_interval_ms=50,
    )


@contextlib.contextmanager
def strict_rig(
    ecu: EcuDefinition,
    version: str,
    can_channel: str,
    tmp_path: Path,
    options: SimEcuOptions | None = None,
) -> Iterator[tuple[SimEcu, FlashSession]]:
    """The strict simulated `ecu` (its own CAN mode) and a tester session that expects
    `version` after the flash and gives the application 3 s to boot."""
    fd = ecu.connection.fd
    with (
        sim_ecu(
            ecu, can_channel, tmp_path / "sim", fd=fd, options=options or strict_options()
        ) as sim,
        flash_session(ecu, can_channel, expected_version=version, boot_wait_s=3.0) as session,
    ):
        yield sim, session


@pytest.mark.parametrize("name", ["VCU", "HCU", "BCU"])
def test_demo_ecu_flashes_without_violations(name: str, can_channel: str, tmp_path: Path) -> None:
    ecu = demo_ecu(name)
    ecu.uds.timing.reset_time_ms = 200  # documented reset time (the sim is silent that long)
    # Two segments sharing erase sectors (0x10000-0x10900, 0x10C00-0x11100): erasing per
    # segment would erase sector 0x10000 twice, which this ECU refuses.
    image = make_image("3.3.0", sizes=(0x900, 0x500), gap=0x300)
    with strict_rig(ecu, "3.3.0", can_channel, tmp_path) as (sim, session):
        result = flash_ecu(session, image)
        assert result.ok, result.error
        assert memory_matches(sim, image)
        state = sim.state()
    assert result.version_after == "3.3.0"
    assert [str(v) for v in state.violations] == []
    assert state.boots == 2  # the bootloader entry reboot and the reset
    assert dict(state.region_erases) == {"application": 1}  # one erase of the region's union
    assert all(count == 1 for _, count in state.sector_erases)


@pytest.mark.parametrize("session_did", [None, 0xF186])
def test_rerun_inside_s3_after_a_failure_is_clean(
    session_did: int | None, can_channel: str, tmp_path: Path
) -> None:
    """A failed flash leaves the bootloader in its programming session; the re-run at once
    (well inside S3) starts from a known session and raises no violation (issue 13 point 7)."""
    ecu = demo_ecu("VCU")
    ecu.uds.timing.reset_time_ms = 200
    ecu.uds.active_session_did = session_did
    image = make_image("3.4.0", sizes=(0x900, 0x500), gap=0x300)
    with strict_rig(ecu, "3.4.0", can_channel, tmp_path) as (sim, session):
        sim.inject(Fault(step="check", kind="nrc", arg=0x72))
        failed = flash_ecu(session, image)
        assert not failed.ok
        state = sim.state()
        assert (state.mode, state.session) == ("bootloader", 2)
        sim.clear_violations()
        nrcs_before = dict(sim.state().nrcs_sent)
        again = flash_ecu(session, image)
        assert again.ok, again.error
        assert memory_matches(sim, image)
        assert [str(v) for v in sim.violations] == []
        nrcs_after = dict(sim.state().nrcs_sent)
        assert nrcs_after.get(0x22, 0) == nrcs_before.get(0x22, 0)  # no 10 03 inside 10 02
        assert nrcs_after == nrcs_before  # the re-run got no negative response at all


def test_routine_precondition_through_the_engine(can_channel: str, tmp_path: Path) -> None:
    """The EA's "check programming preconditions" routine (31 01 02 03): status 0 lets the
    flash go on; a non-zero status stops it before anything is erased."""
    ecu = demo_ecu("VCU")
    ecu.uds.timing.reset_time_ms = 200
    ecu.uds.routine_preconditions.append(RoutinePrecondition("Programming preconditions"))
    image = make_image("3.5.0", sizes=(0x900, 0x500), gap=0x300)
    with strict_rig(ecu, "3.5.0", can_channel, tmp_path) as (sim, session):
        sim.set_preconditions(0x05, "engine running")
        refused = flash_ecu(session, image)
        assert not refused.ok
        assert refused.record.failed_step == "preconditions"
        assert "status 0x05 'engine running'" in str(refused.error), refused.error
        assert sim.state().region_erases == () and sim.state().app_valid  # nothing touched
        sim.set_preconditions(0x00)
        done = flash_ecu(session, image)
        assert done.ok, done.error
        assert [str(v) for v in sim.violations] == []


def test_slow_erase_and_programming_without_violations(can_channel: str, tmp_path: Path) -> None:
    """An ECU that answers 0x78 while erasing (per sector) and while programming each block
    (beyond P2server), with S3 running meanwhile: still no violation, no session lost."""
    ecu = demo_ecu("HCU")
    ecu.uds.timing.reset_time_ms = 200
    ecu.uds.s3_ms = 1000  # the erase below lasts longer: only TesterPresent keeps the session
    ecu.uds.tester_present_period_ms = 500
    opts = strict_options()
    opts.erase_ms_per_sector = 700  # two sectors: 1.4 s of erase
    opts.programming_ms_per_kib = 80  # each 1 KiB block answers 0x78 first
    opts.pending_interval_ms = 200
    image = make_image("3.6.0", sizes=(0x900, 0x500), gap=0x300)
    with strict_rig(ecu, "3.6.0", can_channel, tmp_path, opts) as (sim, session):
        result = flash_ecu(session, image)
        assert result.ok, result.error
        assert memory_matches(sim, image)
        state = sim.state()
    assert [str(v) for v in state.violations] == []
    assert dict(state.region_erases) == {"application": 1}
