"""Protocol fuzzing: the flash engine against the chaos ECU (sim/chaos.py: well-framed but wrong
UDS answers) and random SDO frames at the TCU node (0x67A) — no crash, no hang, no false
success, the ECU re-flashable, the TCU answering with its state intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.sim.chaos import MUTATIONS, ChaosEcu
from reliability.protocol_fuzz import chaos_flashes, sdo_fuzz
from tests.fakes import sim_rig


def test_chaos_mutations_keep_framing_and_are_reproducible(tmp_path: Path) -> None:
    ecu = sim_rig.fast_ecu()
    channel = sim_rig.new_channel()
    payloads = [bytes([0x76, 0x05]), bytes([0x7F, 0x31, 0x78]), bytes([0x71, 0x01, 0xFF, 0x00])]
    seen: list[list[bytes]] = []
    for _ in range(2):
        with sim_rig.sim_ecu(ecu, channel, tmp_path / "s", cls=ChaosEcu, seed=3) as sim:
            assert isinstance(sim, ChaosEcu)
            seen.append([b"".join(sim.mutate(p)) for p in payloads * 20])
            kinds = {m[0] for m in sim.mutations}
    assert seen[0] == seen[1]
    assert kinds <= set(MUTATIONS) and len(kinds) >= 4
    assert all(seen[0])


def test_flash_against_chaos_ecu_never_crashes_or_lies() -> None:
    stats = chaos_flashes(4, seed=21)
    assert stats.flashes == 4 and stats.responses_mutated > 0
    assert stats.false_success == 0
    assert stats.hangs == 0
    assert stats.crashes == []
    assert stats.unnamed_errors == []
    assert stats.rerun_failures == []


@pytest.mark.parametrize("seed", [1, 2])
def test_random_sdo_frames_do_not_break_the_tcu(seed: int, tmp_path: Path) -> None:
    stats = sdo_fuzz(400, seed=seed, folder=tmp_path)
    assert stats.frames == 400
    assert stats.answers > 100
    assert stats.violations == []


def test_chaos_rate_validation(tmp_path: Path) -> None:
    ecu = sim_rig.fast_ecu()
    with (
        pytest.raises(ValueError, match="rate"),
        sim_rig.sim_ecu(ecu, sim_rig.new_channel(), tmp_path, cls=ChaosEcu, rate=1.5),
    ):
        pass
