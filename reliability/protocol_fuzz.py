"""Protocol fuzzing: the flash engine against a "chaos ECU", and random SDO traffic at the TCU.

`chaos_flashes(n, seed)` flashes `n` times against `sim.chaos.ChaosEcu` (well-framed but wrong
UDS responses: SIDs, lengths, counters, NRCs, stray 0x78, duplicates) and checks that no flash
crashes the engine (an "internal error" is a crash), hangs, or reports a false success, and that
the ECU can be re-flashed cleanly afterwards. `sdo_fuzz(n, seed)` sends `n` random SDO frames at
0x600+node (biased to the FOTA object 0x5FF3) to a running `TcuNode` and checks the node keeps
answering, its read-only objects are unchanged and its command objects hold only allowed values.
Main thread of a script or test.
"""

from __future__ import annotations

import random
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can

from fota_studio.engine.flash_job import FlashResult
from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.tcu_node import TcuNode
from fota_studio.sim.chaos import ChaosEcu
from tests.fakes import sim_rig

#: A chaos flash that has not ended after this long is a hang.
CHAOS_DEADLINE_S = 30.0
#: How long the TCU may take to answer one SDO request.
SDO_ANSWER_S = 2.0


@dataclass
class ChaosStats:
    """Outcome counts of the chaos-ECU flashes."""

    flashes: int = 0
    responses_mutated: int = 0
    succeeded: int = 0
    failed: int = 0
    false_success: int = 0
    crashes: list[str] = field(default_factory=list)
    hangs: int = 0
    rerun_failures: list[str] = field(default_factory=list)
    unnamed_errors: list[str] = field(default_factory=list)


def _flash_bounded(fn: Any, deadline_s: float) -> tuple[FlashResult, Any] | None:
    box: list[tuple[FlashResult, Any]] = []
    thread = threading.Thread(target=lambda: box.append(fn()), name="chaos-flash", daemon=True)
    thread.start()
    thread.join(deadline_s)
    return box[0] if box else None


def chaos_flashes(
    n: int, seed: int = 7, rates: tuple[float, ...] = (0.01, 0.03, 0.08)
) -> ChaosStats:
    """`n` flashes against chaos ECUs (seeded `seed + i`, mutation rate cycling through `rates`),
    each followed by a clean re-run."""
    stats = ChaosStats()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    with tempfile.TemporaryDirectory(prefix="fota-chaos-") as tmp:
        for i in range(n):
            ecu = sim_rig.fast_ecu()
            channel = sim_rig.new_channel()
            with sim_rig.sim_ecu(
                ecu,
                channel,
                Path(tmp) / f"ecu-{i}",
                cls=ChaosEcu,
                rate=rates[i % len(rates)],
                seed=seed + i,
            ) as sim:
                assert isinstance(sim, ChaosEcu)
                boot_before = sim_rig.protected_bytes(sim)
                done = _flash_bounded(
                    lambda e=ecu, c=channel: sim_rig.flash(e, c, image), CHAOS_DEADLINE_S
                )
                stats.flashes += 1
                stats.responses_mutated += len(sim.mutations)
                sim.enabled = False
                sim_rig.wait_until_settled(sim)
                if done is None:
                    stats.hangs += 1
                    continue
                result = done[0]
                state = sim.state()
                real = sim_rig.memory_matches(sim, image) and state.app_valid
                err = str(result.error or "")
                if result.ok:
                    stats.succeeded += 1
                    if not real:
                        stats.false_success += 1
                else:
                    stats.failed += 1
                    if "internal error" in err:
                        stats.crashes.append(f"seed {seed + i}: {err[:200]}")
                    elif not result.record.failed_step or len(err) < 20:
                        stats.unnamed_errors.append(f"seed {seed + i}: {err[:200]}")
                again = _flash_bounded(
                    lambda e=ecu, c=channel: sim_rig.flash(e, c, image), CHAOS_DEADLINE_S
                )
                ok = again is not None and again[0].ok and sim_rig.memory_matches(sim, image)
                if not ok or sim_rig.protected_bytes(sim) != boot_before:
                    why = "hang" if again is None else str(again[0].error)
                    stats.rerun_failures.append(f"seed {seed + i}: {why[:200]}")
    return stats


# -- SDO fuzzing of the TCU node -------------------------------------------------------------

#: SDO command specifiers (CiA 301 §7.2.4.3): download/upload initiate and segment, abort,
#: block download/upload, plus reserved ones.
SDO_COMMANDS = (0x20, 0x21, 0x22, 0x23, 0x27, 0x2B, 0x2F, 0x40, 0x60, 0x70, 0x00, 0x10)
SDO_COMMANDS_MORE = (0x80, 0xA0, 0xA4, 0xA1, 0xC0, 0xC4, 0xC6, 0xE0, 0xFF, 0x41, 0x43)


@dataclass
class SdoStats:
    """Outcome of the SDO fuzzing."""

    frames: int = 0
    answers: int = 0
    decisions: int = 0  # 1 when a random frame was a valid operator decision (accepted)
    violations: list[str] = field(default_factory=list)


def _random_sdo(rng: random.Random, subs: list[int]) -> bytes:
    cmd = rng.choice(SDO_COMMANDS + SDO_COMMANDS_MORE) | rng.choice((0, 0, 0, rng.randrange(16)))
    index = fo.FOTA_INDEX if rng.random() < 0.7 else rng.choice((0x1000, 0x1017, 0x2000, 0xFFFF))
    sub = rng.choice(subs) if rng.random() < 0.8 else rng.randrange(256)
    tail = bytes(rng.randrange(256) for _ in range(4))
    if rng.random() < 0.3:
        tail = struct.pack("<I", rng.choice((0, 1, 2, 3, 0xFF, 0xFFFFFFFF, 0x80000000)))
    frame = bytes([cmd & 0xFF]) + struct.pack("<H", index) + bytes([sub]) + tail
    if rng.random() < 0.1:
        frame = frame[: rng.randrange(0, 8)]  # short frames (DLC < 8)
    return frame


def _upload_ok(client: can.BusABC, node_id: int, subindex: int) -> bool:
    """Send an upload request for 0x5FF3/subindex; True when the TCU answers at all."""
    for _ in range(10_000):  # bounded: heartbeats may keep arriving
        if client.recv(0) is None:
            break
    req = bytes([0x40]) + struct.pack("<H", fo.FOTA_INDEX) + bytes([subindex, 0, 0, 0, 0])
    client.send(can.Message(arbitration_id=0x600 + node_id, data=req, is_extended_id=False))
    deadline = time.monotonic() + SDO_ANSWER_S
    while time.monotonic() < deadline:
        msg = client.recv(0.1)
        if msg is not None and msg.arbitration_id == 0x580 + node_id:
            return True
    return False


def sdo_fuzz(n: int, seed: int = 11, folder: Path | None = None) -> SdoStats:
    """Send `n` random SDO frames to a TCU node with a standing offer; check it survives."""
    stats = SdoStats()
    rng = random.Random(seed)
    channel = sim_rig.new_channel()
    layout = fo.FotaLayout.load()
    subs = [o.subindex for o in layout.objects()]
    read_only = [o.name for o in layout.objects() if not o.writable]
    with tempfile.TemporaryDirectory(prefix="fota-sdo-") as tmp:
        state_file = (folder or Path(tmp)) / "tcu.json"
        node_bus = can.Bus(interface="virtual", channel=channel, ignore_config=True)
        client = can.Bus(interface="virtual", channel=channel, ignore_config=True)
        node = TcuNode(node_bus, heartbeat_period_ms=0, state_file=state_file)
        try:
            node.start()
            node.offer_update(
                request_id=42,
                target_ecu="VCU",
                installed_version="1.0.0",
                offered_version="2.0.0",
                expected_downtime_s=60,
            )
            before = {name: node.get(name) for name in read_only}
            status_sub = layout.object(fo.UPDATE_STATUS).subindex
            for i in range(n):
                data = _random_sdo(rng, subs)
                client.send(
                    can.Message(
                        arbitration_id=0x600 + node.node_id, data=data, is_extended_id=False
                    )
                )
                stats.frames += 1
                # Bounded drain: a fuzzed write to 0x1017 may legitimately make the node send
                # heartbeats every millisecond, so "until the bus is quiet" may never come.
                until = time.monotonic() + (0.005 if i % 50 else 0.05)
                while (left := until - time.monotonic()) > 0:
                    msg = client.recv(left)
                    if msg is not None and msg.arbitration_id == 0x580 + node.node_id:
                        stats.answers += 1
                        break
                if i % 100 == 99 and not _upload_ok(client, node.node_id, status_sub):
                    stats.violations.append(f"no answer to a valid upload after {i + 1} frames")
                    break
            # Abort whatever transfer the random frames left open, then check the node answers.
            abort = bytes([0x80]) + struct.pack("<H", fo.FOTA_INDEX) + bytes([0, 0, 0, 0, 0])
            client.send(
                can.Message(arbitration_id=0x600 + node.node_id, data=abort, is_extended_id=False)
            )
            if not _upload_ok(client, node.node_id, status_sub):
                stats.violations.append("the node no longer answers a valid SDO upload")
            if not node.running:
                stats.violations.append("the node stopped")
            decided = node.get(fo.OPERATOR_DECISION) != fo.DECISION_NONE
            stats.decisions = int(decided)
            for name in read_only:
                if name == fo.DIAGNOSTIC_LOG:
                    continue
                if name == fo.UPDATE_AVAILABLE and decided:
                    continue  # a valid decision answers the offer: update_available drops to 0
                if node.get(name) != before[name]:
                    stats.violations.append(
                        f"read-only {name} changed: {before[name]!r} -> {node.get(name)!r}"
                    )
            for name, allowed in fo.ALLOWED_WRITE_VALUES.items():
                value = node.get(name)
                if value not in allowed | {fo.DECISION_NONE}:
                    stats.violations.append(f"{name} holds a value never allowed: {value!r}")
        finally:
            node.stop()
            client.shutdown()
            node_bus.shutdown()
    return stats
