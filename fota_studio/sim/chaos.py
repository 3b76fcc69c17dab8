"""A "chaos ECU": a simulated ECU that sometimes answers with well-framed but wrong UDS responses.

`ChaosEcu` is a `SimEcu` whose every outgoing UDS response passes through a seeded random mutator
before it is sent: with probability `rate` the response is replaced by a wrong service ID, a
truncated or over-long payload, a wrong TransferData block counter, a random negative response
code (to the right or a wrong service), a stray "response pending" or a duplicated answer. The
ISO-TP framing stays correct, so the tester's UDS layer (not the transport) has to notice. It is
used to fuzz the flash engine's response handling (tests/unit/test_fuzz_*.py, reliability/). The
mutations are reproducible from `seed`; `mutations` lists what was done. Thread rules are those
of `SimEcu`: the mutator runs on the simulator worker thread; `mutations` may be read from any
thread after `stop()`.

`LateAnswers` adds a timing mode (independent of `rate`): TransferData answers that come late
and twice, the way a busy bootloader behind a slow adapter produces them (issue 13 point 8).
A *held* block's answer is not sent (the ECU is still programming; its 0x78 is lost on the way),
so the tester times out on P2 and repeats the block; the ECU answers that copy with 0x21
busyRepeatRequest (or 0x78, then answers it after the held one) and sends the held answer when
the next copy arrives or `hold_ms` has passed. The answer to a repeated block (same counter, ISO
14229-1 §14.4) and, with `duplicate_rate`, any block's answer, is sent (again) later: right
before the answer to the tester's next request, or after `late_ms`. Every step is listed in
`mutations`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can
import isotp

from fota_studio.core.ea import EcuDefinition
from fota_studio.sim.uds_ecu import SimEcu, SimEcuOptions

#: Mutation names, in the order `ChaosEcu` draws them from.
MUTATIONS = (
    "wrong_sid",
    "truncate",
    "extend",
    "wrong_counter",
    "random_nrc",
    "nrc_wrong_service",
    "pending_only",
    "duplicate",
)
#: NRCs the mutator picks from (ISO 14229-1 Annex A), including 0x78 and reserved values.
CHAOS_NRCS = (0x10, 0x11, 0x12, 0x13, 0x14, 0x21, 0x22, 0x24, 0x25, 0x26, 0x31, 0x33, 0x35)
CHAOS_NRCS_MORE = (0x36, 0x37, 0x70, 0x71, 0x72, 0x73, 0x78, 0x7E, 0x7F, 0x93, 0x00, 0xFF)

SID_TRANSFER_DATA = 0x36
SID_TESTER_PRESENT = 0x3E
POSITIVE_TRANSFER_DATA = 0x76
#: What `LateAnswers` records in `ChaosEcu.mutations`.
LATE_STEPS = (
    "held",  # a block's answer held back (its 0x78 lost): the tester times out on P2
    "busy_repeat",  # a copy of the block answered 0x21 while the held answer is pending
    "pending_repeat",  # ... or answered 0x78, processed once the held answer is out
    "released",  # the held answer sent (late)
    "late_repeat",  # the answer to a repeated block, sent late
    "duplicate",  # a block's answer sent a second time, late
)


@dataclass(frozen=True)
class LateAnswers:
    """The chaos ECU's late-and-duplicate mode for TransferData answers (see module docstring).

    `hold_counters`: block counters whose FIRST copy is held (reproduces one exact sequence);
    `hold_rate`, `duplicate_rate`, `pending_rate` in [0, 1]: shares of blocks held, of answers
    duplicated, of busy answers given as 0x78 instead of 0x21. `hold_ms`: longest hold (the
    next copy usually ends it first); `late_ms`: longest delay of a late or duplicate answer
    (keep it below the tester's P2 so a tester waiting for it is not timed out).
    """

    hold_counters: frozenset[int] = field(default_factory=frozenset)
    hold_rate: float = 0.0
    duplicate_rate: float = 0.0
    pending_rate: float = 0.0
    hold_ms: float = 1000.0
    late_ms: float = 100.0

    def __post_init__(self) -> None:
        for name in ("hold_rate", "duplicate_rate", "pending_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"LateAnswers.{name} {value} is not within 0..1")


@dataclass
class _Owed:
    """An answer the chaos ECU still has to send, and when at the latest."""

    stack: Any
    payload: bytes
    due: float


class ChaosEcu(SimEcu):
    """A `SimEcu` that mutates a share (`rate`) of its responses, reproducibly from `seed`."""

    def __init__(
        self,
        ecu: EcuDefinition,
        bus: can.BusABC,
        notifier: can.Notifier,
        *,
        state_dir: Path,
        machine: str = "chaos",
        options: SimEcuOptions | None = None,
        initial_image: Sequence[tuple[int, bytes]] | None = None,
        rate: float = 0.2,
        seed: int = 0,
        mutations: Sequence[str] = MUTATIONS,
        late: LateAnswers | None = None,
    ) -> None:
        """Like `SimEcu`; `rate` in [0, 1] is the share of responses mutated; `late` adds the
        late-and-duplicate TransferData mode."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"chaos rate {rate} is not within 0..1")
        unknown = set(mutations) - set(MUTATIONS)
        if unknown:
            raise ValueError(f"unknown chaos mutation(s): {', '.join(sorted(unknown))}")
        super().__init__(
            ecu,
            bus,
            notifier,
            machine=machine,
            state_dir=state_dir,
            options=options,
            initial_image=initial_image,
        )
        self.rate = rate
        self._rng = random.Random(seed)
        self._kinds = tuple(mutations)
        self._log_lock = threading.Lock()
        self._mutations: list[tuple[str, str, str]] = []
        self.enabled = True
        self.late = late
        # LateAnswers state, worker thread only (under the SimEcu lock).
        self._late_rng = random.Random(seed + 1)
        self._late_held: _Owed | None = None
        self._late_busy_given = False
        self._late_queued: list[tuple[bytes, Any]] = []
        self._late_owed: list[_Owed] = []
        self._late_capture: str | None = None
        self._late_acked: int | None = None
        self._late_held_once: set[int] = set()

    @property
    def mutations(self) -> list[tuple[str, str, str]]:
        """(mutation, original response hex, sent response hex) for every mutated response."""
        with self._log_lock:
            return list(self._mutations)

    def mutate(self, payload: bytes) -> list[bytes]:
        """The responses to send instead of `payload` (usually one; empty never)."""
        rng = self._rng
        kind = rng.choice(self._kinds)
        sid = payload[0]
        out: list[bytes]
        if kind == "wrong_sid":
            wrong = rng.choice([b for b in range(0x100) if b not in (sid, 0x7F)])
            out = [bytes([wrong]) + payload[1:]]
        elif kind == "truncate" and len(payload) > 1:
            out = [payload[: rng.randrange(1, len(payload))]]
        elif kind == "extend":
            out = [payload + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))]
        elif kind == "wrong_counter" and sid == 0x76 and len(payload) >= 2:
            out = [bytes([0x76, (payload[1] + rng.randrange(1, 256)) & 0xFF]) + payload[2:]]
        elif kind == "random_nrc":
            req_sid = payload[1] if sid == 0x7F and len(payload) > 1 else (sid - 0x40) & 0xFF
            out = [bytes([0x7F, req_sid, rng.choice(CHAOS_NRCS + CHAOS_NRCS_MORE)])]
        elif kind == "nrc_wrong_service":
            out = [bytes([0x7F, rng.randrange(256), rng.choice(CHAOS_NRCS)])]
        elif kind == "pending_only":
            req_sid = payload[1] if sid == 0x7F and len(payload) > 1 else (sid - 0x40) & 0xFF
            out = [bytes([0x7F, req_sid, 0x78])]
        elif kind == "duplicate":
            out = [payload, payload]
        else:  # the drawn mutation does not apply to this response: flip the SID instead
            kind = "wrong_sid"
            out = [bytes([sid ^ 0x01]) + payload[1:]]
        with self._log_lock:
            self._mutations.append((kind, payload.hex(), b"|".join(out).hex()))
        return out

    def _respond(self, stack: isotp.TransportLayer, payload: bytes, functional: bool) -> None:
        """Send `payload`, or (with probability `rate`) its mutations; `late` may hold it."""
        if self.late is not None and len(payload) >= 2 and payload[0] == POSITIVE_TRANSFER_DATA:
            self._late_acked = payload[1]
            if self._late_capture is not None and self._capture_answer(stack, payload):
                return
        if not self.enabled or not payload or self._rng.random() >= self.rate:
            super()._respond(stack, payload, functional)
            return
        del functional  # a mutated answer is sent even where a real ECU would stay silent
        for sent in self.mutate(payload):
            # Sent directly: the base class inspects NRC bytes that a mutation may have removed.
            stack.send(sent)

    # -- LateAnswers -------------------------------------------------------------------------
    def _log(self, kind: str, original: bytes, sent: bytes) -> None:
        with self._log_lock:
            self._mutations.append((kind, original.hex(), sent.hex()))

    def _handle(self, data: bytes, entry: Any) -> None:
        """Apply `late` around the simulator's request handling (worker thread)."""
        plan = self.late
        if plan is None or not self.enabled or not data or data[0] == SID_TESTER_PRESENT:
            super()._handle(data, entry)
            return
        held = self._late_held
        if held is not None:
            if data[0] == SID_TRANSFER_DATA and not self._late_busy_given:
                # Still programming the held block: tell the tester to repeat / wait.
                self._late_busy_given = True
                if self._late_rng.random() < plan.pending_rate:
                    answer = bytes((0x7F, SID_TRANSFER_DATA, 0x78))
                    self._late_queued.append((data, entry))
                    held.due = min(held.due, time.monotonic() + plan.late_ms / 1000.0)
                    self._log("pending_repeat", data[:2], answer)
                else:
                    answer = bytes((0x7F, SID_TRANSFER_DATA, 0x21))
                    self._log("busy_repeat", data[:2], answer)
                entry.stack.send(answer)
                return
            self._release_held()
        self._send_owed(None)
        self._process(data, entry, after_release=held is not None)

    def _tick(self, now: float) -> None:
        """The simulator's tick, then the held / owed answers that are due."""
        super()._tick(now)
        held = self._late_held
        if held is not None and now >= held.due:
            self._release_held()
        if self._late_owed:
            self._send_owed(now)

    def _release_held(self) -> None:
        held, self._late_held = self._late_held, None
        if held is None:
            return
        held.stack.send(held.payload)
        self._log("released", held.payload, held.payload)
        queued, self._late_queued = self._late_queued, []
        for data, entry in queued:
            self._process(data, entry, after_release=True)

    def _send_owed(self, now: float | None) -> None:
        """Send the owed answers (all of them, or those due at `now`)."""
        keep: list[_Owed] = []
        for owed in self._late_owed:
            if now is None or now >= owed.due:
                owed.stack.send(owed.payload)
            else:
                keep.append(owed)
        self._late_owed = keep

    def _process(self, data: bytes, entry: Any, *, after_release: bool = False) -> None:
        """Let the simulator handle `data`, deciding first what happens to its answer."""
        plan = self.late
        assert plan is not None
        capture: str | None = None
        if data[0] == SID_TRANSFER_DATA and len(data) >= 2:
            counter = data[1]
            rng = self._late_rng
            if counter == self._late_acked:
                # A repeat: answered (again) late; right after a release the tester already
                # has its answer, so this one waits for its next request.
                capture = "late_repeat_next" if after_release else "late_repeat"
            elif (counter in plan.hold_counters and counter not in self._late_held_once) or (
                plan.hold_rate and rng.random() < plan.hold_rate
            ):
                self._late_held_once.add(counter)
                capture = "held"
            elif plan.duplicate_rate and rng.random() < plan.duplicate_rate:
                capture = "duplicate"
        else:
            self._late_acked = None  # a new download restarts the counters
        self._late_capture = capture
        try:
            super()._handle(data, entry)
        finally:
            self._late_capture = None

    def _capture_answer(self, stack: Any, payload: bytes) -> bool:
        """Hold/defer the answer being produced per `_late_capture`; True when not to send now."""
        capture, self._late_capture = self._late_capture, None
        plan = self.late
        assert plan is not None
        now = time.monotonic()
        if capture == "held":
            self._late_held = _Owed(stack, payload, now + plan.hold_ms / 1000.0)
            self._late_busy_given = False
            self._log("held", payload, b"")
            return True
        if capture in ("late_repeat", "late_repeat_next"):
            # After a release the tester has its answer: this one comes before the next answer.
            due = float("inf") if capture == "late_repeat_next" else now + plan.late_ms / 1000.0
            self._late_owed.append(_Owed(stack, payload, due))
            self._log("late_repeat", payload, payload)
            return True
        if capture == "duplicate":
            self._late_owed.append(_Owed(stack, payload, now + plan.late_ms / 1000.0))
            self._log("duplicate", payload, payload + payload)
        return False
