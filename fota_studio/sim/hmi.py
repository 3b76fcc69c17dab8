"""A scripted machine HMI: watches the TCU's FOTA objects and answers Checkpoint 1 by itself.

`ScriptedHmi` stands in for the operator panel on the machine: on its own thread
(`fota-hmi-<node>`) it waits until the TCU signals `update_available = 1` (TPDO or polling,
through a `FotaClient`), reads the offer as an HMI would show it, waits a configurable delay
("the operator thinks") and writes `operator_decision` (approve, reject, or nothing at all to
provoke an approval timeout). Used by `demo --headless` and the tests. start()/stop() may be
called from any thread; the decisions made are readable from any thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fota_studio.protocols.fota_client import FotaClient, FotaState, UpdateOffer
from fota_studio.protocols.fota_objects import DECISION_APPROVE, DECISION_REJECT
from fota_studio.sim.scripted import ScriptedNode

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HmiDecision:
    """One offer the HMI saw and what it did: decision None = it let the approval time out."""

    offer: UpdateOffer
    decision: int | None
    accepted: bool
    error: str | None = None


class ScriptedHmi(ScriptedNode[HmiDecision, UpdateOffer]):
    """Background HMI that approves or rejects every offered update after `delay_s`."""

    role = "hmi"
    reads = "the offer"
    answer_name = "decision"

    def __init__(
        self,
        client: FotaClient,
        *,
        decision: int | None = DECISION_APPROVE,
        delay_s: float = 0.5,
        once: bool = False,
    ) -> None:
        if decision not in (DECISION_APPROVE, DECISION_REJECT, None):
            raise ValueError(f"decision must be approve (1), reject (2) or None, not {decision}")
        super().__init__(client, delay_s=delay_s, once=once)
        self.decision = decision

    @property
    def decisions(self) -> list[HmiDecision]:
        """A copy of the decisions made so far, oldest first."""
        return self._recorded()

    def wait_decisions(self, count: int, timeout_s: float) -> list[HmiDecision]:
        """Block until at least `count` decisions were recorded (or timeout); returns them."""
        return self._wait_recorded(count, timeout_s)

    def _due(self, state: FotaState) -> bool:
        return state.update_available == 1

    def _read_round(self) -> tuple[int, UpdateOffer]:
        offer = self._client.read_offer()
        return offer.request_id, offer

    def _answer(self, offer: UpdateOffer) -> bool:
        _log.info(
            "HMI: update for %s %s -> %s (downtime %d s), request %d",
            offer.target_ecu,
            offer.installed_version,
            offer.offered_version,
            offer.expected_downtime_s,
            offer.request_id,
        )
        decision = self.decision
        if decision is None:
            self._record(HmiDecision(offer, None, accepted=False))
        elif self._stop.wait(self.delay_s):
            return False
        else:
            self._write_recorded(
                self._client.write_operator_decision,
                decision,
                lambda accepted, error: HmiDecision(offer, decision, accepted, error),
            )
        return True
