"""Checkpoint 2 built-in health checks: version DID, no active DTCs, application heartbeat.

`run_health_checks` runs the EA's `HealthChecks` of one ECU after its reset, on the application
IDs: ReadDataByIdentifier of the software-version DID must equal the offered version,
ReadDTCInformation 0x19 02 with the EA's status mask must report no DTC, and a frame with the
connection's `heartbeat_id` must be seen within `heartbeat_within_s`. Each check yields a
`CheckResult`; the ECU is healthy when every enabled check passed. It runs on the engine worker
thread of the ECU's bus (submitted as a job by the workflow) and blocks for at most the
heartbeat window plus a few UDS round trips.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import can

from fota_studio.core.ea import EcuDefinition, HealthChecks
from fota_studio.core.errors import FotaError
from fota_studio.engine.cancel import CancelToken
from fota_studio.protocols.isotp_link import IsoTpLink
from fota_studio.protocols.uds_link import UdsLink, decode_did

#: Retries of the first request while the new application may still be starting.
FIRST_REQUEST_WAIT_S = 3.0
RETRY_INTERVAL_S = 0.1


@dataclass(frozen=True)
class CheckResult:
    """One health check: its name, whether it passed, and what was observed."""

    name: str
    ok: bool
    detail: str


@dataclass
class HealthReport:
    """All checks run for one ECU; `healthy` when every one passed."""

    ecu: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when there is at least one check and all passed."""
        return bool(self.results) and all(r.ok for r in self.results)

    def summary(self) -> str:
        """One line per check."""
        return "; ".join(
            f"{r.name}: {'ok' if r.ok else 'FAILED'} ({r.detail})" for r in self.results
        )


class _HeartbeatWatch:
    """Notifier listener remembering when the heartbeat ID was last seen."""

    def __init__(self, can_id: int) -> None:
        self.can_id = can_id
        self.seen = threading.Event()
        self.count = 0

    def __call__(self, msg: can.Message) -> None:
        if msg.arbitration_id == self.can_id and not msg.is_error_frame:
            self.count += 1
            self.seen.set()


def _request_with_retry(
    uds: UdsLink,
    step: str,
    sid: int,
    data: bytes,
    cancel: CancelToken,
    wait_s: float,
    subfunction: int | None = None,
) -> bytes | None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return uds.request(step, sid, data, subfunction=subfunction)
        except FotaError:
            if time.monotonic() >= deadline or cancel.wait(RETRY_INTERVAL_S):
                raise


def run_health_checks(
    ecu: EcuDefinition,
    bus: can.BusABC,
    notifier: can.Notifier,
    expected_version: str,
    *,
    checks: HealthChecks | None = None,
    cancel: CancelToken | None = None,
) -> HealthReport:
    """Run the ECU's Checkpoint 2 checks; never raises for a failed check."""
    hc = checks or ecu.uds.health
    token = cancel or CancelToken()
    report = HealthReport(ecu.name)
    conn = ecu.connection
    watch: _HeartbeatWatch | None = None
    started = time.monotonic()
    if hc.check_heartbeat and conn.heartbeat_id is not None:
        watch = _HeartbeatWatch(conn.heartbeat_id)
        notifier.add_listener(watch)
    link = IsoTpLink(bus, notifier, conn, conn.application, name=f"{ecu.name}-health")
    uds = UdsLink(link, ecu.uds)
    try:
        uds.open()
        wait_first = FIRST_REQUEST_WAIT_S
        if hc.check_version:
            try:
                raw = _request_with_retry(
                    uds,
                    "health_version",
                    0x22,
                    hc.version_did.to_bytes(2, "big"),
                    token,
                    wait_first,
                )
                defn = next((d for d in ecu.uds.dids if d.did == hc.version_did), None)
                version = decode_did(defn, (raw or b"")[3:])
                ok = version == expected_version
                report.results.append(
                    CheckResult(
                        "software version",
                        ok,
                        f"DID 0x{hc.version_did:04X} = {version!r}, expected {expected_version!r}",
                    )
                )
            except FotaError as exc:
                report.results.append(CheckResult("software version", False, str(exc)))
            wait_first = 0.0
        if hc.check_no_active_dtcs:
            try:
                raw = _request_with_retry(
                    uds,
                    "health_dtcs",
                    0x19,
                    bytes([hc.dtc_status_mask]),
                    token,
                    wait_first,
                    subfunction=0x02,
                )
                body = (raw or b"")[3:]  # 59 02 <availability mask> then 4 bytes per DTC
                dtcs = [
                    f"{int.from_bytes(body[i : i + 3], 'big'):06X}/{body[i + 3]:02X}"
                    for i in range(0, len(body) - 3, 4)
                ]
                report.results.append(
                    CheckResult(
                        "no active DTCs",
                        not dtcs,
                        f"mask 0x{hc.dtc_status_mask:02X}: "
                        + (", ".join(dtcs) if dtcs else "none active"),
                    )
                )
            except FotaError as exc:
                report.results.append(CheckResult("no active DTCs", False, str(exc)))
        if watch is not None:
            remaining = max(0.0, hc.heartbeat_within_s - (time.monotonic() - started))
            deadline = time.monotonic() + remaining
            while not watch.seen.is_set() and time.monotonic() < deadline:
                if token.wait(0.05):
                    break
            report.results.append(
                CheckResult(
                    "application heartbeat",
                    watch.seen.is_set(),
                    f"ID 0x{watch.can_id:X}: "
                    + (
                        f"{watch.count} frame(s) seen"
                        if watch.seen.is_set()
                        else f"not seen within {hc.heartbeat_within_s:g} s"
                    ),
                )
            )
    finally:
        uds.close()
        if watch is not None:
            try:
                notifier.remove_listener(watch)
            except ValueError:
                pass
    return report
