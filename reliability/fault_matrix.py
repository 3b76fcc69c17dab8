"""Fault matrix: every reprogramming step × every fault the simulator (or the adapter) can inject.

Each cell starts a fresh simulated ECU (real ISO-TP/UDS on a python-can `virtual` bus), arms one
fault, flashes with the real engine and records: whether the job reported success, whether that
success is real (memory, application valid, version), the error shown (which must name the step
and the cause), the ECU state afterwards, whether the protected bootloader bytes are unchanged,
and the result of a re-run without the fault (which must succeed in every cell). Faults come from
`sim.faults` (NRC, late answer past P2/P2*, no answer, dropped/corrupted frames, power loss at
several byte offsets, refused bootloader entry, wrong key, erase failure) and from the tester's
adapter (`sim_rig.AdapterFaultBus`: bus-off and a transient adapter error raised by python-can
mid-transfer, a stalled tester that lets the ECU's S3 timer expire).

Run `python -m reliability.fault_matrix [--quick] [--json]`; tests import `build_cells`,
`run_cell` and `summarize`. Runs on the main thread; every cell is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fota_studio.core.ea import CompressionSettings, SectorChecksum, StepKind
from fota_studio.core.errors import FotaError
from fota_studio.engine.flash_job import FlashResult
from fota_studio.sim.faults import BOOTLOADER_ENTRY, Fault
from tests.fakes import sim_rig

#: NRCs every step is tried with (ISO 14229-1 Annex A): generalReject, serviceNotSupported,
#: subFunctionNotSupported, conditionsNotCorrect, requestOutOfRange, serviceNotSupportedInSession.
COMMON_NRCS = (0x10, 0x11, 0x12, 0x22, 0x31, 0x7F)
#: Step-specific NRCs on top of the common ones.
STEP_NRCS: dict[str, tuple[int, ...]] = {
    StepKind.SECURITY_LEVEL_1.value: (0x24, 0x35, 0x36, 0x37),
    StepKind.SECURITY_LEVEL_2.value: (0x24, 0x33, 0x35, 0x36, 0x37),
    StepKind.FINGERPRINT.value: (0x33, 0x72),
    StepKind.ERASE.value: (0x21, 0x24, 0x33, 0x72, 0x78),
    StepKind.REQUEST_DOWNLOAD.value: (0x21, 0x33, 0x70, 0x78),
    StepKind.TRANSFER_DATA.value: (0x24, 0x71, 0x72, 0x73, 0x92, 0x93),
    StepKind.TRANSFER_EXIT.value: (0x24, 0x72),
    StepKind.CHECK.value: (0x24, 0x72, 0x78),
    StepKind.RESET.value: (0x21,),
}
#: Transferred-byte offsets at which power is lost (of the 0xE00-byte test image).
POWER_LOSS_OFFSETS = (0, 1, 0x3FE, 0x400, 0x8FF, 0x900, 0xDFF)
#: Tester frames after which the adapter fails (bus-off / glitch / stall), spread over the flash.
ADAPTER_FAULT_FRAMES = (3, 12, 30, 80, 200, 330)
#: A flash (with its fault) that has not ended after this long is a hang, never a timeout.
FLASH_DEADLINE_S = 20.0
#: Steps of the quick (CI) subset.
QUICK = (
    ("security_level_2", "nrc", 0x35),
    ("erase", "no_answer", None),
    ("transfer_data", "power_loss", 0x400),
    ("transfer_exit", "corrupt", 1),
    ("check", "nrc", 0x72),
    ("adapter", "bus_off", 80),
    ("adapter", "stall", 30),
)
#: Cells run again on an ECU with a compressed download and the sector-checksum routine (delta
#: + resume on), so neither path can end in a false success (issue 18).
PACKED = "compressed+delta"
PACKED_CELLS = (
    ("transfer_data", "power_loss", 0x400),
    ("transfer_data", "corrupt", 1),
    ("transfer_data", "nrc", 0x72),
    ("check", "nrc", 0x72),
    ("adapter", "glitch", 80),
)


@dataclass(frozen=True)
class Cell:
    """One matrix cell: a fault at a step (step "adapter": a tester-side adapter fault)."""

    step: str
    kind: str
    arg: int | None = None
    #: "" = the plain ECU; PACKED = compressed download + sector checksums (delta, resume).
    variant: str = ""

    @property
    def label(self) -> str:
        """Short text for the table."""
        if self.kind == "nrc" and self.arg is not None:
            text = f"nrc 0x{self.arg:02X}"
        else:
            text = self.kind if self.arg is None else f"{self.kind} {self.arg}"
        return f"{text} [{self.variant}]" if self.variant else text


@dataclass
class CellResult:
    """What happened in one cell."""

    step: str
    fault: str
    outcome: str  # "failed" | "succeeded" (fault absorbed, verified) | "FALSE SUCCESS" | "HANG"
    fired: bool
    error: str
    failed_step: str
    names_step_and_cause: bool
    ecu_state: str
    bootloader_intact: bool
    rerun_ok: bool
    rerun_error: str
    seconds: float
    #: Protocol violations the strict simulated ECU recorded during the re-run (must be none).
    rerun_violations: tuple[str, ...] = ()

    @property
    def false_success(self) -> bool:
        """The job said "Successful" but the ECU does not run the image."""
        return self.outcome == "FALSE SUCCESS"

    @property
    def hang(self) -> bool:
        """The flash job never ended (an engine defect: the user would wait forever)."""
        return self.outcome == "HANG"

    @property
    def unrecoverable(self) -> bool:
        """The bootloader was touched or the ECU could not be re-flashed."""
        return not (self.bootloader_intact and self.rerun_ok)


def build_cells(quick: bool = False) -> list[Cell]:
    """Every cell of the matrix (or the CI subset)."""
    packed = [Cell(s, k, a, PACKED) for s, k, a in PACKED_CELLS]
    if quick:
        return [Cell(s, k, a) for s, k, a in QUICK] + packed[:2]
    ecu = sim_rig.fast_ecu()
    p2_ms, p2_star_ms = ecu.uds.p2_timeout_ms, ecu.uds.p2_star_timeout_ms
    cells: list[Cell] = []
    for step in (s.kind.value for s in ecu.uds.sequence if s.enabled):
        for nrc in (*COMMON_NRCS, *STEP_NRCS.get(step, ())):
            cells.append(Cell(step, "nrc", nrc))
        cells.append(Cell(step, "late", p2_ms + 200))
        cells.append(Cell(step, "late", p2_star_ms + 300))
        cells.append(Cell(step, "no_answer"))
        cells.append(Cell(step, "drop", 1))
        cells.append(Cell(step, "corrupt", 1))
        if step in (StepKind.SECURITY_LEVEL_1.value, StepKind.SECURITY_LEVEL_2.value):
            cells.append(Cell(step, "wrong_key_algorithm"))
    cells.append(Cell(StepKind.ERASE.value, "fail"))
    cells += [Cell(StepKind.TRANSFER_DATA.value, "power_loss", o) for o in POWER_LOSS_OFFSETS]
    cells += [Cell(BOOTLOADER_ENTRY, "refuse"), Cell(BOOTLOADER_ENTRY, "no_answer")]
    for mode in ("bus_off", "glitch", "stall"):
        cells += [Cell("adapter", mode, n) for n in ADAPTER_FAULT_FRAMES]
    return cells + packed


def _names_step_and_cause(error: FotaError | None, failed_step: str) -> bool:
    if error is None or not failed_step:
        return False
    text = str(error)
    step_words = {failed_step, failed_step.replace("_", " ")}
    # The cause is whatever follows the step: it must say something beyond the step name.
    return any(w in text for w in step_words) and len(text) > len(failed_step) + 10


def _with_deadline(
    fn: Callable[[], tuple[FlashResult, Any]], deadline_s: float
) -> tuple[FlashResult, Any] | None:
    """Run `fn` on a daemon thread; None when it has not returned within `deadline_s`.

    A hung flash cannot be interrupted from outside, so its thread (and its tester bus) is
    abandoned; the cell then records a HANG and re-runs on a new tester bus.
    """
    box: list[tuple[FlashResult, Any]] = []
    thread = threading.Thread(target=lambda: box.append(fn()), name="matrix-flash", daemon=True)
    thread.start()
    thread.join(deadline_s)
    return box[0] if box else None


def run_cell(cell: Cell, workdir: Path) -> CellResult:
    """Run one cell in `workdir` (a fresh folder) and check every invariant."""
    t0 = time.monotonic()
    ecu = sim_rig.fast_ecu()
    if cell.variant == PACKED:
        ecu.uds.compression = CompressionSettings(method_id=1, codec="zlib")
        ecu.uds.sector_checksum = SectorChecksum(routine_id=0xFF02, sector_bytes=0x400)
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    channel = sim_rig.new_channel()
    opts: dict[str, Any] = {}
    adapter: dict[str, Any] | None = None
    if cell.step == "adapter":
        adapter = {"mode": cell.kind, "after_frames": int(cell.arg or 0)}
        if cell.kind == "stall":
            # The ECU forgets the programming session after 400 ms of silence (S3 expiry).
            opts["s3_ms"] = 400
            adapter["stall_s"] = 0.7
    with sim_rig.sim_ecu(ecu, channel, workdir, options=sim_rig.fast_options(**opts)) as sim:
        boot_before = sim_rig.protected_bytes(sim)
        if adapter is None:
            sim.inject(Fault(step=cell.step, kind=cell.kind, arg=cell.arg))
        done = _with_deadline(
            lambda: sim_rig.flash(ecu, channel, image, adapter_fault=adapter), FLASH_DEADLINE_S
        )
        result, wrapper = done if done is not None else (None, None)
        fired = (
            bool(sim.faults_fired)
            if adapter is None
            else done is None or (wrapper is not None and wrapper.fired)
        )
        sim_rig.wait_until_settled(sim)
        state = sim.state()
        real = (
            sim_rig.memory_matches(sim, image)
            and state.app_valid
            and state.software_version == sim_rig.TARGET_VERSION
        )
        if result is None:
            outcome = "HANG"
        elif result.ok:
            outcome = "succeeded" if real else "FALSE SUCCESS"
        else:
            outcome = "failed"
        ecu_state = f"{state.mode}, app {'valid' if state.app_valid else 'invalid'}"
        sim.clear_faults()
        sim.clear_violations()  # the faulty run may cause some; the re-run must cause none
        again = _with_deadline(lambda: sim_rig.flash(ecu, channel, image), FLASH_DEADLINE_S)
        rerun = None if again is None else again[0]
        sim_rig.wait_until_settled(sim)
        rerun_violations = tuple(str(v) for v in sim.violations)
        rerun_ok = (
            rerun is not None
            and rerun.ok
            and sim_rig.memory_matches(sim, image)
            and sim.state().app_valid
        )
        intact = sim_rig.protected_bytes(sim) == boot_before
    return CellResult(
        step=cell.step,
        fault=cell.label,
        outcome=outcome,
        fired=fired,
        error=_error_text(result),
        failed_step="" if result is None else result.record.failed_step,
        names_step_and_cause=result is not None
        and (result.ok or _names_step_and_cause(result.error, result.record.failed_step)),
        ecu_state=ecu_state,
        bootloader_intact=intact,
        rerun_ok=rerun_ok,
        rerun_error=_error_text(rerun),
        seconds=time.monotonic() - t0,
        rerun_violations=rerun_violations,
    )


def _error_text(result: FlashResult | None) -> str:
    if result is None:
        return f"(no result: the flash job did not end within {FLASH_DEADLINE_S:.0f} s)"
    return "" if result.error is None else str(result.error)


def run_matrix(cells: Iterable[Cell], workdir: Path | None = None) -> list[CellResult]:
    """Run every cell, each in its own folder under `workdir` (a temp folder when None)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="fota-matrix-") as tmp:
        base = workdir or Path(tmp)
        for i, cell in enumerate(cells):
            results.append(run_cell(cell, base / f"cell-{i:03d}"))
    return results


def summarize(results: Sequence[CellResult]) -> dict[str, Any]:
    """Counts for the campaign's JSON line."""
    return {
        "fault_cells": len(results),
        "fault_cells_fired": sum(r.fired for r in results),
        "false_success": sum(r.false_success for r in results),
        "hangs": sum(r.hang for r in results),
        "unrecoverable": sum(r.unrecoverable for r in results),
        "unnamed_errors": sum(not r.names_step_and_cause for r in results),
        "bootloader_touched": sum(not r.bootloader_intact for r in results),
    }


def format_table(results: Sequence[CellResult], error_width: int = 70) -> str:
    """The matrix as a fixed-width text table."""
    head = ("step", "fault", "outcome", "error shown", "ECU state after", "boot", "re-run")
    rows = [head]
    for r in results:
        err = r.error if len(r.error) <= error_width else r.error[: error_width - 1] + "…"
        rerun = "ok" if r.rerun_ok else f"FAILED: {r.rerun_error[:40]}"
        outcome = r.outcome + ("" if r.fired else " (not fired)")
        boot = "intact" if r.bootloader_intact else "TOUCHED"
        rows.append((r.step, r.fault, outcome, err or "-", r.ecu_state, boot, rerun))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the matrix and print the table and the summary; exit 1 on any violated invariant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the CI subset only")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    results = run_matrix(build_cells(args.quick))
    out = sys.stdout
    out.write(format_table(results) + "\n")
    summary = summarize(results)
    out.write(json.dumps(summary) + "\n" if args.json else f"{summary}\n")
    bad = [asdict(r) for r in results if r.false_success or r.unrecoverable]
    return 1 if bad or summary["unnamed_errors"] or summary["hangs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
