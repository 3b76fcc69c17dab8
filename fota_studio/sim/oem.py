"""Scripted OEM logic: answers Checkpoint 2 by writing `oem_verification` to the TCU.

`ScriptedOemLogic` stands in for the OEM's health-check node on the machine: on its own thread
(`fota-oem-<node>`) it waits until the TCU's `update_status` becomes 0x02 (waiting for OEM
verification), optionally runs a health-check callable, waits a delay and writes the verdict
(healthy/unhealthy, or nothing to provoke a verification timeout). start()/stop() may be called
from any thread; the health check runs on the OEM thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fota_studio.protocols.fota_client import FotaClient, FotaState
from fota_studio.protocols.fota_objects import (
    STATUS_WAITING_VERIFICATION,
    VERDICT_HEALTHY,
    VERDICT_UNHEALTHY,
)
from fota_studio.sim.scripted import ScriptedNode

#: Returns VERDICT_HEALTHY / VERDICT_UNHEALTHY, or None to write nothing.
HealthCheck = Callable[[], int | None]


@dataclass(frozen=True)
class OemVerdict:
    """One verification round: request id, verdict written (None = none), accepted by the TCU."""

    request_id: int
    verdict: int | None
    accepted: bool
    error: str | None = None


class ScriptedOemLogic(ScriptedNode[OemVerdict, int]):
    """Background OEM node writing the Checkpoint 2 verdict when status becomes 0x02."""

    role = "oem"
    reads = "request_id"
    answer_name = "verdict"

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
        super().__init__(client, delay_s=delay_s, once=once)
        self.verdict = verdict
        self.health_check = health_check

    @property
    def verdicts(self) -> list[OemVerdict]:
        """A copy of the verdicts written so far, oldest first."""
        return self._recorded()

    def wait_verdicts(self, count: int, timeout_s: float) -> list[OemVerdict]:
        """Block until at least `count` verdicts were recorded (or timeout); returns them."""
        return self._wait_recorded(count, timeout_s)

    def _due(self, state: FotaState) -> bool:
        return state.update_status == STATUS_WAITING_VERIFICATION

    def _read_round(self) -> tuple[int, int]:
        request_id = self._client.read_request_id()
        return request_id, request_id

    def _answer(self, request_id: int) -> bool:
        if self._stop.wait(self.delay_s):
            return False
        verdict = self.health_check() if self.health_check is not None else self.verdict
        if verdict is None:
            self._record(OemVerdict(request_id, None, accepted=False))
        else:
            self._write_recorded(
                self._client.write_oem_verification,
                verdict,
                lambda accepted, error: OemVerdict(request_id, verdict, accepted, error),
            )
        return True
