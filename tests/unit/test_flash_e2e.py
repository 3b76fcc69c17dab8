"""End-to-end: the flash engine against the simulated ECUs (11-bit, 29-bit, CAN FD)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.events import EngineEvent, Progress, StepFinished
from fota_studio.engine.flash_job import flash_ecu
from fota_studio.sim.faults import Fault
from tests.fakes.flash import (
    demo_ecu,
    fast_ecu,
    fast_sim,
    flash_image,
    flash_session,
    make_image,
    memory_matches,
    sim_ecu,
)


@pytest.mark.parametrize("name", ["VCU", "HCU", "BCU"])
def test_flash_demo_ecu(name: str, can_channel: str, tmp_path: Path) -> None:
    ecu = demo_ecu(name)
    fd = ecu.connection.fd
    image = make_image("3.2.0")
    events: list[EngineEvent] = []
    with sim_ecu(ecu, can_channel, tmp_path / "sim", fd=fd) as sim:
        result = flash_image(
            ecu,
            can_channel,
            image,
            events.append,
            fd=fd,
            expected_version="3.2.0",
            boot_wait_s=2.0,
            buslog_path=tmp_path / "bus.blf",
        )
        assert result.ok, result.error
        assert memory_matches(sim, image)
        assert sim.state().app_valid
        # The strict bootloader saw no request during a reboot, no second one outstanding, no
        # sector erased twice, a fingerprint of the length it wants.
        assert not sim.violations, [str(v) for v in sim.violations]
    assert result.verified and result.record.verification == "verified"
    assert result.version_after == "3.2.0"
    assert result.record.version_before == "0.9.0"
    assert any(isinstance(e, Progress) and e.bytes_done == e.bytes_total for e in events)
    steps = [e.step for e in events if isinstance(e, StepFinished) and e.ok]
    assert "erase" in steps and "read_version" in steps
    assert result.record.buslog_frames > 0


def test_flash_without_bootloader_entry_frame(can_channel: str, tmp_path: Path) -> None:
    """No entry frame: start on the application IDs, switch after the programming session."""
    ecu = fast_ecu("HCU")
    ecu.connection.bootloader_entry = None
    image = make_image("1.6.0")
    with (
        fast_sim(ecu, can_channel, tmp_path / "sim") as sim,
        flash_session(ecu, can_channel, expected_version="1.6.0") as session,
    ):
        result = flash_ecu(session, image)
        assert result.ok, result.error
        assert memory_matches(sim, image)
        # A failed run leaves the ECU in its bootloader; the re-run (application IDs silent)
        # continues on the bootloader IDs and succeeds.
        sim.inject(Fault(step="check", kind="nrc", arg=0x72))
        failed = flash_ecu(session, image)
        assert not failed.ok and sim.state().mode == "bootloader"
        again = flash_ecu(session, image)
        assert again.ok, again.error
