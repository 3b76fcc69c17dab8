"""CI subset of the fault matrix (reliability/fault_matrix.py): a fault at a step or in the
adapter never yields a false "Successful", leaves the bootloader bytes unchanged, shows an error
naming the step and the cause, and a re-run without the fault succeeds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reliability.fault_matrix import Cell, build_cells, run_cell, summarize

ROOT = Path(__file__).resolve().parents[2]
CI_CELLS = build_cells(quick=True)


@pytest.mark.parametrize("cell", CI_CELLS, ids=lambda c: f"{c.step}-{c.label}")
def test_fault_cell_never_false_success_and_recovers(cell: Cell, tmp_path: Path) -> None:
    result = run_cell(cell, tmp_path)
    assert result.fired, "the fault never fired: the cell tests nothing"
    assert result.outcome in ("failed", "succeeded"), result
    assert not result.false_success
    assert result.bootloader_intact
    assert result.rerun_ok, result.rerun_error
    assert result.rerun_violations == (), result.rerun_violations  # strict simulated ECU
    if result.outcome == "failed":
        assert result.names_step_and_cause, result.error
        assert result.failed_step in result.error


def test_matrix_covers_every_step_and_fault_kind() -> None:
    cells = build_cells()
    steps = {c.step for c in cells}
    kinds = {c.kind for c in cells}
    assert {"erase", "transfer_data", "security_level_2", "bootloader_entry", "adapter"} <= steps
    needed = {"nrc", "late", "no_answer", "drop", "corrupt", "power_loss", "bus_off", "stall"}
    assert needed <= kinds
    assert len(cells) > 150
    assert summarize([])["fault_cells"] == 0


def test_adapter_bus_off_mid_transfer_fails_with_named_error(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import reliability.fault_matrix as fm
        fm.FLASH_DEADLINE_S = 10.0
        r = fm.run_cell(fm.Cell("adapter", "bus_off", 80), Path({str(tmp_path)!r}))
        print(r.outcome, r.failed_step, r.error, sep="|")
        sys.exit(0 if r.outcome == "failed" and r.names_step_and_cause and r.rerun_ok else 1)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-500:]
