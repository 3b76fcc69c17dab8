"""Checkpoint 1: the operator's decision and the approval request the dialog resolves.

`ApprovalRequest.future` is resolved by the local dialog (`approve`/`reject`, any thread, never
blocking) or by the HMI over CANopen; the first decision wins and a timeout is a rejection."""

from __future__ import annotations

import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from fota_studio.infra.user import current_user

#: How often the Checkpoint 1 wait looks at the cancel token.
WAIT_SLICE_S = 0.05

DECISION_LOCAL = "local"
DECISION_HMI = "hmi"
DECISION_TIMEOUT = "timeout"
DECISION_CANCEL = "cancel"


@dataclass(frozen=True)
class Decision:
    """The Checkpoint 1 decision and who made it (operator name, "HMI over CANopen ...")."""

    approved: bool
    by: str
    source: str  # DECISION_LOCAL | DECISION_HMI | DECISION_TIMEOUT | DECISION_CANCEL


@dataclass
class ApprovalRequest:
    """What the approval dialog shows, and the future it resolves (first decision wins)."""

    request_id: int
    machine: str
    ecu: str
    installed_version: str
    offered_version: str
    expected_downtime_s: int
    preconditions: tuple[str, ...]
    timeout_s: float
    deadline: float  # time.monotonic() when the approval times out
    future: Future[Decision] = field(default_factory=Future)

    def remaining_s(self) -> float:
        """Seconds left before the approval times out (0 when expired)."""
        return max(0.0, self.deadline - time.monotonic())

    def resolve(self, decision: Decision) -> bool:
        """Set the decision; False when another one was already made."""
        try:
            self.future.set_result(decision)
        except InvalidStateError:
            return False
        return True

    def approve(self, by: str = "") -> bool:
        """The local operator approves (from the dialog)."""
        return self.resolve(Decision(True, by or current_user(), DECISION_LOCAL))

    def reject(self, by: str = "") -> bool:
        """The local operator rejects (from the dialog)."""
        return self.resolve(Decision(False, by or current_user(), DECISION_LOCAL))

    @property
    def done(self) -> bool:
        """True once decided (any way)."""
        return self.future.done()
