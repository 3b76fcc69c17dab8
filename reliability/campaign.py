"""The whole reliability campaign behind `make reliability`.

Runs, in order: the fault matrix (table printed), file fuzzing (per-target counts), the chaos-ECU
flashes and the TCU SDO fuzzing, the soak (200 updates) with the two-machine parallel check, and
the SIGKILL durability campaign (100 kills). The last line printed is one JSON object with the
headline figures (`fault_cells`, `false_success`, `unrecoverable`, `fuzz_inputs`,
`fuzz_crashes`, `soak_updates`, `soak_mem_growth`, `kill_runs`, `kill_corruptions`,
`tamper_cases`, `tamper_detected`, `hostile_cases`, `hostile_passed`, ...). The hostile cases
(reliability/hostile.py) are issue 14's concurrency, kill, storage and text attacks.
Sizes can be lowered for a quick run: `python -m reliability.campaign --small`. Main thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from reliability import (
    access_attacks,
    crash,
    fault_matrix,
    fuzz,
    hostile,
    protocol_fuzz,
    soak,
    tamper,
)


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything; exit 1 when any invariant was violated."""
    parser = argparse.ArgumentParser(description="FOTA Studio reliability campaign")
    parser.add_argument("--small", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on any violation")
    args = parser.parse_args(argv)
    small = args.small
    # The engine and the simulators log every fault at INFO/ERROR; the tables say it all.
    logging.disable(logging.CRITICAL)
    t0 = time.monotonic()
    figures: dict[str, Any] = {}

    _write("== Fault matrix (every step x every fault; each cell re-run without the fault)")
    cells = fault_matrix.build_cells(quick=small)
    results = fault_matrix.run_matrix(cells)
    _write(fault_matrix.format_table(results))
    summary = fault_matrix.summarize(results)
    _write(f"fault matrix: {summary}")
    figures.update(summary)
    for r in results:
        if r.false_success or r.unrecoverable or r.hang or not r.names_step_and_cause:
            _write(f"  VIOLATION {r.step} {r.fault}: {r.outcome} {r.error[:120]}")

    _write("\n== Fuzzing of file readers (inputs per target: seeds + crafted + mutations)")
    stats = fuzz.run_campaign(200 if small else None)  # full: per-target fuzz.FULL_INPUTS
    for s in stats:
        _write(
            f"{s.name:<12} inputs {s.inputs:>6}  accepted {s.accepted:>5}  rejected "
            f"{s.rejected:>6}  crashes {len(s.crashes):>3}  slowest {s.max_seconds * 1000:.0f} ms"
        )
        for c in s.crashes[:3]:
            _write(f"    crash: {c}")
    chaos = protocol_fuzz.chaos_flashes(10 if small else 60)
    _write(
        f"chaos ECU    flashes {chaos.flashes}, {chaos.responses_mutated} responses mutated: "
        f"{chaos.succeeded} ok, {chaos.failed} failed, false success {chaos.false_success}, "
        f"crashes {len(chaos.crashes)}, hangs {chaos.hangs}, re-run failures "
        f"{len(chaos.rerun_failures)}, unnamed errors {len(chaos.unnamed_errors)}"
    )
    for c in (chaos.crashes + chaos.rerun_failures + chaos.unnamed_errors)[:5]:
        _write(f"    {c}")
    sdo = protocol_fuzz.sdo_fuzz(500 if small else 5000)
    _write(f"TCU SDO      frames {sdo.frames}, answers {sdo.answers}, violations {sdo.violations}")
    figures["fuzz_inputs"] = sum(s.inputs for s in stats) + chaos.flashes + sdo.frames
    figures["fuzz_crashes"] = (
        sum(len(s.crashes) + len(s.slow) for s in stats)
        + len(chaos.crashes)
        + chaos.hangs
        + len(sdo.violations)
    )
    figures["fuzz_inputs_per_target"] = {s.name: s.inputs for s in stats} | {
        "chaos_ecu_flashes": chaos.flashes,
        "tcu_sdo_frames": sdo.frames,
    }
    figures["chaos_false_success"] = chaos.false_success

    _write("\n== Soak (consecutive updates, ~20 % with a fault, trace capturing)")
    rep = soak.soak(20 if small else 200)
    _write(
        f"soak: {rep.updates} updates ({rep.faulted} with a fault): {rep.succeeded} ok, "
        f"{rep.failed} failed; {len(rep.inconsistent)} inconsistent records; threads "
        f"{rep.threads}, fds {rep.fds}, buses {rep.buses}; RSS {rep.rss_mib[0]:.1f} -> "
        f"{rep.rss_mib[1]:.1f} MiB ({rep.mem_growth:+.1%}); trace {rep.trace_frames} frames "
        f"({rep.trace_dropped} dropped; bus logs hold {rep.buslog_frames}); integrity "
        f"{rep.integrity}; repo verify {rep.repo_problems or 'ok'}; records verify "
        f"{rep.chain_problems or 'ok'}; {rep.seconds:.0f} s"
    )
    for line in rep.inconsistent[:5]:
        _write(f"    {line}")
    par = soak.parallel()
    _write(
        f"parallel: faulty machine ok={par.faulty_ok}, healthy machine ok={par.healthy_ok} "
        f"(retries {par.healthy_retries}), workers {sorted(par.workers)}, overlapped "
        f"{par.overlapped}"
    )
    figures["soak_updates"] = rep.updates
    figures["soak_mem_growth"] = round(rep.mem_growth, 4)
    figures["soak_leaks"] = rep.leaks
    figures["parallel_independent"] = par.healthy_ok and not par.faulty_ok and par.overlapped

    _write("\n== Record tampering (issue 14's attacks on a workspace, then `records verify`)")
    tam = tamper.campaign()
    for case in tam.results:
        said = case.crash or (case.problems[0] if case.problems else "NOT DETECTED")
        _write(f"{case.name:<28} {'detected' if case.detected else 'MISSED':<9} {said[:110]}")
    _write(f"tamper: {tam.detected} of {tam.cases} attacks detected")
    figures["tamper_cases"] = tam.cases
    figures["tamper_detected"] = tam.detected
    # issue 14's Roles / Signing keys attacks count as tamper cases too (refused = detected)
    acc = access_attacks.campaign()
    for res in acc.results:
        said = res.crash.strip().splitlines()[-1] if res.crash else ""
        _write(f"{res.name:<28} {'refused' if res.refused else 'ALLOWED':<9} {said[:110]}")
    _write(f"access: {acc.refused} of {acc.cases} role/trust/policy attacks refused")
    figures["tamper_cases"] += acc.cases
    figures["tamper_detected"] += acc.refused

    _write("\n== Hostile conditions (issue 14: two flashes, kills, full/read-only disk, text)")
    hostile_results = hostile.run_cases()
    for case in hostile_results:
        mark = "skipped" if case.skipped else ("ok" if case.ok else "FAILED")
        _write(f"{case.name:<28} {mark:<8} {case.detail[:110]}")
    figures["hostile_cases"] = len(hostile_results)
    figures["hostile_passed"] = sum(1 for c in hostile_results if c.ok)
    figures["hostile_skipped"] = sum(1 for c in hostile_results if c.skipped)
    _write(f"hostile: {figures['hostile_passed']} of {figures['hostile_cases']} cases ok")

    _write("\n== Crash durability (SIGKILL during imports, record writes, EA saves, requests)")
    kills = crash.kill_campaign(10 if small else 100)
    _write(
        f"crash: {kills.kills} kills, {kills.committed} committed operations, "
        f"{kills.interrupted_marked} interrupted updates marked, {kills.flashes_interrupted} "
        f"killed flash jobs marked interrupted, last op before kill "
        f"{kills.last_ops}, problems {kills.corruptions[:5]}"
    )
    figures["kill_runs"] = kills.kills
    figures["kill_corruptions"] = len(kills.corruptions)
    figures["kill_flashes_interrupted"] = kills.flashes_interrupted
    figures["seconds"] = round(time.monotonic() - t0)
    _write(json.dumps(figures))
    bad = (
        figures["false_success"]
        or figures["unrecoverable"]
        or figures["fuzz_crashes"]
        or figures["kill_corruptions"]
        or figures["soak_leaks"]
        or figures["hangs"]
        or figures["tamper_detected"] != figures["tamper_cases"]
        or figures["hostile_passed"] != figures["hostile_cases"]
    )
    return 1 if bad and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
