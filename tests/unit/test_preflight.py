"""engine/preflight: from → to uses what the ECU reported, not the record; downgrade and
re-flash are named; preconditions that cannot be read and are not skippable block the start."""

from __future__ import annotations

from pathlib import Path

from fota_studio.core.flash_record import FlashRecord, StepRecord
from fota_studio.demo.catalog import DEMO_MACHINES, demo_ecus
from fota_studio.demo.seed import ensure_demo
from fota_studio.engine.ecu_info import EcuInfo, PreconditionReading
from fota_studio.engine.preflight import (
    CHANGE_DOWNGRADE,
    CHANGE_REFLASH,
    CHANGE_UNKNOWN,
    CHANGE_UPGRADE,
    build_preflight,
    left_in_bootloader,
)
from fota_studio.infra.workspace import Workspace

MACHINE = DEMO_MACHINES[0]


def _info(version: str | None, *readings: PreconditionReading, boot: bool = False) -> EcuInfo:
    return EcuInfo(
        ecu="VCU",
        application_answers=version is not None,
        in_bootloader=boot,
        version=version,
        version_did=0xF195,
        preconditions=readings,
    )


def test_from_version_is_the_ecus_answer(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    try:
        ensure_demo(ws)
        vcu = next(e for e in demo_ecus() if e.name == "VCU")
        # The record says 3.1.0 (seeded); the ECU says 3.2.1: flashing 3.2.0 is a downgrade.
        pre = build_preflight(ws, MACHINE, vcu, "3.2.0", _info("3.2.1"))
        assert pre.recorded == "3.1.0" and pre.on_ecu == "3.2.1"
        assert pre.change == CHANGE_DOWNGRADE and pre.record_disagrees
        text = pre.confirm_text()
        assert "3.2.1 → 3.2.0" in text and "DOWNGRADE" in text and "recorded 3.1.0" in text
        assert build_preflight(ws, MACHINE, vcu, "3.2.1", _info("3.2.1")).change == CHANGE_REFLASH
        assert build_preflight(ws, MACHINE, vcu, "3.2.1", _info("3.1.0")).change == CHANGE_UPGRADE
        boot = build_preflight(ws, MACHINE, vcu, "3.2.1", _info(None, boot=True))
        assert boot.change == CHANGE_UNKNOWN and "bootloader" in boot.from_version
        assert pre.estimated_s > 0 and pre.bytes_total > 0
    finally:
        ws.close()


def test_unreadable_precondition_blocks_and_skippable_does_not(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    try:
        ensure_demo(ws)
        vcu = next(e for e in demo_ecus() if e.name == "VCU")
        silent = "the application does not answer"
        info = _info(
            None,
            PreconditionReading("Machine stationary", "", None, silent),
            PreconditionReading(
                "Supply voltage", "", None, silent, skippable=True, skip_reason="bench supply"
            ),
        )
        pre = build_preflight(ws, MACHINE, vcu, "3.2.1", info)
        assert not pre.can_start
        assert pre.blocking == (f"Machine stationary cannot be checked: {silent}",)
        ok = build_preflight(
            ws, MACHINE, vcu, "3.2.1", _info("3.1.0", PreconditionReading("Speed", "0 km/h", True))
        )
        assert ok.can_start
    finally:
        ws.close()


def test_left_in_bootloader_follows_the_steps() -> None:
    def rec(*steps: tuple[str, bool | None]) -> FlashRecord:
        return FlashRecord(ecu="VCU", steps=[StepRecord(n, 0.0, ok=ok) for n, ok in steps])

    assert not left_in_bootloader(None)
    assert not left_in_bootloader(rec(("preconditions", False)))
    assert left_in_bootloader(rec(("preconditions", True), ("bootloader_entry", True)))
    assert left_in_bootloader(rec(("preconditions", True), ("transfer_data", False)))
    assert not left_in_bootloader(
        rec(("bootloader_entry", True), ("reset", True), ("application_start", True))
    )
