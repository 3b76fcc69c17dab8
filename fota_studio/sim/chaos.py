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
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from pathlib import Path

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
    ) -> None:
        """Like `SimEcu`; `rate` in [0, 1] is the share of responses mutated."""
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
        """Send `payload`, or (with probability `rate`) its mutations."""
        if not self.enabled or not payload or self._rng.random() >= self.rate:
            super()._respond(stack, payload, functional)
            return
        del functional  # a mutated answer is sent even where a real ECU would stay silent
        for sent in self.mutate(payload):
            # Sent directly: the base class inspects NRC bytes that a mutation may have removed.
            stack.send(sent)
