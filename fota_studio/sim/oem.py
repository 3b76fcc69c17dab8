"""Scripted OEM logic: answers Checkpoint 2 by writing `oem_verification` to the TCU.

`ScriptedOemLogic` stands in for the OEM's health-check node on the machine: on its own thread
(`fota-oem-<node>`) it waits until the TCU's `update_status` becomes 0x02 (waiting for OEM
verification), optionally runs a health-check callable, waits a delay and writes the verdict
(healthy/unhealthy, or nothing to provoke a verification timeout). start()/stop() may be called
from any thread; the health check runs on the OEM thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fota_studio.protocols.fota_client import FotaClient, FotaState, TcuAccessError
from fota_studio.protocols.fota_objects import (
    STATUS_WAITING_VERIFICATION,
    VERDICT_HEALTHY,
    VERDICT_UNHEALTHY,
)
from fota_studio.sim.scripted import IDLE_WAIT_S, RETRY_DELAY_S, ScriptedNode

_log = logging.getLogger(__name__)


#: Returns VERDICT_HEALTHY / VERDICT_UNHEALTHY, or None to write nothing.
HealthCheck = Callable[[], int | None]


@dataclass(frozen=True)
class OemVerdict:
    """One verification round: request id, verdict written (None = none), accepted by the TCU."""

    request_id: int
    verdict: int | None
    accepted: bool
    error: str | None = None


class ScriptedOemLogic(ScriptedNode[OemVerdict]):
    """Background OEM node writing the Checkpoint 2 verdict when status becomes 0x02."""

    role = "oem"

    def __init__(
        self,
        client: FotaClient,
        *,
        verdict: int | None = VERDICT_HEALTHY,
        delay_s: float = 0.2,
        health_check: HealthCheck | None = None,
        once: bool = False,
    ) -> None:
        if verdict not in (VERDICT_HEALTHY, VERDICT_UNHEALTHY, None):
            raise ValueError(f"verdict must be healthy (1), unhealthy (2) or None, not {verdict}")
        super().__init__(client)
        self.verdict = verdict
        self.delay_s = delay_s
        self.health_check = health_check
        self.once = once

    @property
    def verdicts(self) -> list[OemVerdict]:
        """A copy of the verdicts written so far, oldest first."""
        return self._recorded()

    def wait_verdicts(self, count: int, timeout_s: float) -> list[OemVerdict]:
        """Block until at least `count` verdicts were recorded (or timeout); returns them."""
        return self._wait_recorded(count, timeout_s)

    def _run(self) -> None:
        armed = True  # a new round is one seen after the status left 0x02
        last_request: int | None = None
        while not self._stop.is_set():
            state = self._client.wait_state(_waiting, IDLE_WAIT_S, cancel=self._stop)
            if state is None:
                current = self._client.state
                if current is not None and current.update_status != STATUS_WAITING_VERIFICATION:
                    armed = True
                continue
            try:
                request_id = self._client.read_request_id()
            except TcuAccessError as exc:
                _log.warning("OEM: cannot read request_id: %s", exc)
                self._stop.wait(RETRY_DELAY_S)
                continue
            if not armed and request_id == last_request:
                self._stop.wait(IDLE_WAIT_S)  # already answered this round
                continue
            armed = False
            last_request = request_id
            if self._stop.wait(self.delay_s):
                return
            verdict = self.health_check() if self.health_check is not None else self.verdict
            if verdict is None:
                self._record(OemVerdict(request_id, None, accepted=False))
            else:
                try:
                    self._client.write_oem_verification(verdict)
                    self._record(OemVerdict(request_id, verdict, accepted=True))
                except TcuAccessError as exc:
                    _log.info("OEM: verdict refused: %s", exc)
                    self._record(OemVerdict(request_id, verdict, accepted=False, error=str(exc)))
            if self.once:
                return


def _waiting(state: FotaState) -> bool:
    return state.update_status == STATUS_WAITING_VERIFICATION
