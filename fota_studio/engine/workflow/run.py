"""`RequestRun`: one attempt of one update request, from package check to the final status
(the state machine the package docstring describes). `run()` blocks: never on the GUI thread.

Why this size: `RequestRun` is one sequence (verify → offer → Checkpoint 1 →
flash → Checkpoint 2 → finish) whose steps share the run's state (the request row, the TCU
node, the cancel token, the flash record); its pure pieces already live elsewhere (targets,
estimates, health checks, approval, events). Splitting its methods across files would scatter
one state machine without making any part reusable.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.errors import (
    ArchitectureError,
    ConfigurationError,
    FotaError,
    PreconditionError,
)
from fota_studio.core.errors import SecurityAccessError as _SecurityAccessError
from fota_studio.core.events import EngineEvent, Progress
from fota_studio.core.flash_outcome import not_verified_reason
from fota_studio.core.flash_record import FlashRecord
from fota_studio.core.image_fit import ImageLayoutError
from fota_studio.core.update_request import (
    Outcome,
    RequestStateError,
    RequestStatus,
    Step,
    UpdateRequest,
)
from fota_studio.engine.cancel import CancelToken
from fota_studio.engine.engine import Engine, JobContext
from fota_studio.engine.estimates import estimate_flash
from fota_studio.engine.flash_job import FlashResult, flash_ecu
from fota_studio.engine.health import CheckResult, HealthReport, run_health_checks
from fota_studio.engine.targets import (
    BrandModelMismatchError,
    resolve_flash_target,
)
from fota_studio.engine.workflow import approval as ap
from fota_studio.engine.workflow.approval import ApprovalRequest, Decision
from fota_studio.engine.workflow.events import (
    ApprovalRequested,
    ApprovalResolved,
    Checkpoint2Result,
    Sink,
    WorkflowFinished,
    WorkflowProgress,
    WorkflowStep,
)
from fota_studio.infra.buslog_store import image_reference
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.flash_journal import begin_flash_record, finish_flash_record
from fota_studio.infra.locks import EcuLock
from fota_studio.infra.requests_store import (
    ENTRY_CHECKPOINT2,
    ENTRY_DECISION,
    ENTRY_FINAL,
    ENTRY_FLASH,
    ENTRY_STEP,
    RequestsStore,
)
from fota_studio.infra.trust import NotFlashableError
from fota_studio.infra.user import current_user
from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.tcu_node import TcuNode

log = logging.getLogger(__name__)

#: Approval / verification timeouts when neither the options nor a TCU node give one (the EDS
#: defaults of approval_timeout_s / verification_timeout_s).
DEFAULT_APPROVAL_TIMEOUT_S = 3600.0
DEFAULT_VERIFICATION_TIMEOUT_S = 300.0


@dataclass
class WorkflowOptions:
    """Per-run choices: approval and verification sources, timeouts, test overrides."""

    approval_local: bool = True
    approval_hmi: bool = True
    approval_timeout_s: float | None = None  # None: the TCU's approval_timeout_s object
    health_checks: bool = True
    oem_verification: bool = False
    verification_timeout_s: float | None = None  # None: the TCU's verification_timeout_s
    boot_wait_s: float | None = None  # override the EA's boot wait (tests, demo)
    heartbeat_within_s: float | None = None  # override the EA's heartbeat window


class _Failure(Exception):
    """Ends the attempt: status, outcome, TCU status and last_error."""

    def __init__(
        self, status: RequestStatus, outcome: Outcome, tcu_status: int, code: int, message: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.tcu_status = tcu_status
        self.code = code


def _error_code(result: FlashResult) -> int:
    rec = result.record
    if rec.nrc is not None:
        return fo.error_code_for_nrc(rec.nrc)
    if isinstance(result.error, PreconditionError):
        return fo.ERROR_PRECONDITION
    if isinstance(result.error, _SecurityAccessError):
        return fo.ERROR_SECURITY_ACCESS
    return fo.ERROR_NO_RESPONSE


class RequestRun:
    """One attempt of one update request; `run()` blocks until its final status."""

    def __init__(
        self,
        ws: Any,
        engine: Engine,
        request_id: int,
        *,
        tcu: TcuNode | None = None,
        options: WorkflowOptions | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.ws = ws
        self.engine = engine
        self.request_id = request_id
        self.tcu = tcu
        self.options = options or WorkflowOptions()
        self._sink: Sink = sink or engine.emit
        self.store = RequestsStore(ws)
        self.cancel_token = CancelToken()
        self._lock = threading.Lock()
        self._approved = False
        self.approval: ApprovalRequest | None = None
        self.future: Future[UpdateRequest] = Future()
        self._thread: threading.Thread | None = None
        self.health: HealthReport | None = None
        self.flash_result: FlashResult | None = None

    # -- control (any thread) ------------------------------------------------------------------

    def start(self) -> Future[UpdateRequest]:
        """Run on a thread `fota-workflow-<id>`; the future yields the final request."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._thread_main, name=f"fota-workflow-{self.request_id}", daemon=True
            )
            self._thread.start()
        return self.future

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the thread started by `start()` (not for the GUI thread)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _thread_main(self) -> None:
        try:
            self.future.set_result(self.run())
        except BaseException as exc:  # the future carries it to whoever waits
            self.future.set_exception(exc)

    @property
    def approved(self) -> bool:
        """True once the operator approved at Checkpoint 1."""
        with self._lock:
            return self._approved

    def cancel(self, reason: str = "cancelled by the user", by: str = "") -> None:
        """Cancel before Checkpoint 1 approval; RequestStateError after it."""
        who = by or current_user()
        with self._lock:
            if self._approved:
                raise RequestStateError(
                    f"update request #{self.request_id} cannot be cancelled: the operator already "
                    "approved it at Checkpoint 1; it runs to an end"
                )
            approval = self.approval
            if approval is not None and not approval.resolve(
                Decision(False, who, ap.DECISION_CANCEL)
            ):
                decided = approval.future.result()
                if decided.approved:
                    raise RequestStateError(
                        f"update request #{self.request_id} cannot be cancelled: "
                        f"{decided.by} approved it at Checkpoint 1"
                    )
            self.cancel_token.cancel(f"{reason} ({who})")

    # -- helpers -------------------------------------------------------------------------------

    def _emit(self, event: EngineEvent) -> None:
        try:
            self._sink(event)
        except Exception:
            log.exception("workflow sink failed on %s", type(event).__name__)

    def _tcu(self, fn: Callable[[TcuNode], None]) -> None:
        if self.tcu is not None:
            try:
                fn(self.tcu)
            except Exception:  # the TCU objects are a report channel; never fail the run on it
                log.exception("TCU node update failed")

    def _tlog(self, line: str) -> None:
        self._tcu(lambda t: t.append_log(time.strftime("%H:%M:%S ") + line))

    def _step(self, step: Step, state: str, detail: str = "") -> None:
        if state == "started":
            self.store.update(
                self.request_id,
                step=step.value,
                entry=(ENTRY_STEP, {"step": step.value, "state": state, "detail": detail}),
            )
        else:
            self.store.append(
                self.request_id, ENTRY_STEP, {"step": step.value, "state": state, "detail": detail}
            )
        # Announced once recorded: whoever reacts to it (a kill, a UI) sees the stored step.
        self._emit(WorkflowStep(0, self.request_id, step.value, state, detail))
        self._tlog(f"{step.value}: {state}" + (f" - {detail}" if detail else ""))

    # -- the state machine -----------------------------------------------------------------------

    def run(self) -> UpdateRequest:
        """Drive the request to its final status; returns the stored request."""
        req = self.store.get(self.request_id)
        if req.status != RequestStatus.PENDING:
            raise RequestStateError(
                f"update request #{req.id} is {req.status.value}; only Pending requests start",
                hint="re-run a Failed or Cancelled request to start a new attempt",
            )
        older = self.store.open_for_ecu(req.machine, req.ecu, before=req.id)
        if older:
            raise RequestStateError(
                f"update request #{req.id}: request #{older[0].id} for {req.ecu} on "
                f"{req.machine} was created earlier and is {older[0].status.value}",
                hint="requests for one ECU run in creation order; run or cancel that one first",
            )
        # One flash per (machine, ECU) across processes: a `flash` command or the GUI's Flash
        # panel flashing this ECU refuses the run (EcuLockedError names who), and vice versa.
        lock = EcuLock(self.ws.root, req.machine, req.ecu)
        lock.acquire(f"update request #{req.id} ({req.version})")
        try:
            return self._run_locked(req)
        finally:
            lock.release()

    def _run_locked(self, req: UpdateRequest) -> UpdateRequest:
        """`run` while holding the ECU's lock."""
        if self.cancel_token.cancelled:
            return self.store.cancel(req.id, reason=self.cancel_token.reason)
        req = self.store.update(
            req.id,
            status=RequestStatus.IN_PROGRESS,
            approved=False,
            owner_pid=os.getpid(),
            expect=frozenset({RequestStatus.PENDING}),
        )
        try:
            final = self._run(req)
        except _Failure as f:
            final = self._finish(f.status, f.outcome, str(f), tcu_status=f.tcu_status, code=f.code)
        except FotaError as exc:
            final = self._finish(
                RequestStatus.FAILED,
                Outcome.INTERNAL_ERROR,
                str(exc),
                tcu_status=fo.STATUS_FAILED,
                code=fo.ERROR_INTERNAL,
            )
        except Exception as exc:
            log.exception("workflow of request %d crashed", self.request_id)
            final = self._finish(
                RequestStatus.FAILED,
                Outcome.INTERNAL_ERROR,
                f"internal error {type(exc).__name__}: {exc}",
                tcu_status=fo.STATUS_FAILED,
                code=fo.ERROR_INTERNAL,
            )
        return final

    def _run(self, req: UpdateRequest) -> UpdateRequest:
        ecu, image, installed = self._verify(req)
        downtime_s = self._offer(req, ecu, image, installed)
        self._checkpoint1(req, ecu, installed, downtime_s)
        self._flash(req, ecu, image)
        self._checkpoint2(req, ecu)
        self._step(Step.FINALIZE, "started")
        EaStore(self.ws).set_installed(
            req.machine, req.ecu, req.version, source=f"update request {req.id}"
        )
        # 0x5FF3 installed_version follows the machine (persistent, read by the HMI).
        self._tcu(lambda t: t.set(fo.INSTALLED_VERSION, req.version))
        return self._finish(
            RequestStatus.SUCCESSFUL,
            Outcome.SUCCESS,
            "",
            tcu_status=fo.STATUS_SUCCESSFUL,
            code=fo.ERROR_NONE,
        )

    def _finish(
        self, status: RequestStatus, outcome: Outcome, error: str, *, tcu_status: int, code: int
    ) -> UpdateRequest:
        self._tcu(lambda t: t.clear_offer())
        self._tcu(lambda t: t.set_last_error(code))
        self._tcu(lambda t: t.set_status(tcu_status))
        self._tlog(f"final: {status.value}" + (f" ({outcome.value}: {error})" if error else ""))
        final = self.store.update(
            self.request_id,
            status=status,
            outcome=outcome.value,
            error=error,
            owner_pid=None,
            entry=(
                ENTRY_FINAL,
                {
                    "status": status.value,
                    "outcome": outcome.value,
                    "error": error,
                    "tcu_status": tcu_status,
                    "last_error": code,
                },
            ),
        )
        self._emit(WorkflowFinished(0, self.request_id, status.value, outcome.value, error))
        return final

    # 1. package -------------------------------------------------------------------------------

    def _verify(self, req: UpdateRequest) -> tuple[EcuDefinition, Any, str]:
        self._step(Step.VERIFY_PACKAGE, "started")
        fail = RequestStatus.FAILED, Outcome.PACKAGE_INVALID, fo.STATUS_FAILED
        try:  # the one resolver: machine, EA, ECU, Brand/Model, version, policy, image, fit
            target = resolve_flash_target(
                self.ws, req.machine, req.ecu, req.version, brand=req.brand, model=req.model
            )
        except BrandModelMismatchError as exc:
            raise _Failure(*fail, fo.ERROR_BRAND_MODEL_MISMATCH, f"package: {exc}") from exc
        except ImageLayoutError as exc:
            raise _Failure(*fail, fo.ERROR_IMAGE_LAYOUT, str(exc)) from exc
        except (NotFlashableError, ConfigurationError, ArchitectureError) as exc:
            raise _Failure(*fail, fo.ERROR_PACKAGE_VERIFICATION, str(exc)) from exc
        except FotaError as exc:
            raise _Failure(*fail, fo.ERROR_PACKAGE_VERIFICATION, f"package: {exc}") from exc
        version = target.version
        assert version is not None
        self._step(
            Step.VERIFY_PACKAGE,
            "ok",
            f"{version.label}: sha256 {version.sha256[:16]}…, {version.size} bytes in "
            f"{len(target.image.segments)} segment(s), {version.signature_state}",
        )
        return target.ecu, target.image, target.installed_version or ""

    # 2. offer ---------------------------------------------------------------------------------

    def _offer(self, req: UpdateRequest, ecu: EcuDefinition, image: Any, installed: str) -> int:
        self._step(Step.OFFER_UPDATE, "started")
        segments = [(s.address, len(s.data)) for s in image.segments]
        # the same estimate as `flash --dry-run`: EA timing facts, erase plan, measured flashes
        estimate_s = estimate_flash(ecu, segments, self.ws).estimated_s
        downtime_s = max(1, math.ceil(estimate_s))
        self._tcu(
            lambda t: t.offer_update(
                request_id=req.id,
                target_ecu=req.ecu,
                installed_version=installed,
                offered_version=req.version,
                expected_downtime_s=min(downtime_s, 0xFFFF),
            )
        )
        self._step(
            Step.OFFER_UPDATE,
            "ok",
            f"update_available=1, {installed or '?'} -> {req.version}, "
            f"expected downtime {downtime_s} s",
        )
        return downtime_s

    # 3. Checkpoint 1 --------------------------------------------------------------------------

    def _timeout_s(self, option: float | None, tcu_object: str, default_s: float) -> float:
        """A Checkpoint timeout: the run's option, else the TCU node's object, else the EDS
        default."""
        if option is not None:
            return float(option)
        if self.tcu is not None:
            return float(self.tcu.get(tcu_object))
        return default_s

    def _approval_timeout_s(self) -> float:
        return self._timeout_s(
            self.options.approval_timeout_s, fo.APPROVAL_TIMEOUT_S, DEFAULT_APPROVAL_TIMEOUT_S
        )

    def _checkpoint1(
        self, req: UpdateRequest, ecu: EcuDefinition, installed: str, downtime_s: int
    ) -> None:
        self._step(Step.CHECKPOINT_1, "started")
        opts = self.options
        use_hmi = opts.approval_hmi and self.tcu is not None
        if not opts.approval_local and not use_hmi:
            raise ConfigurationError(
                "Checkpoint 1 has no approval source",
                hint="enable the local approval dialog or an HMI on the TCU node",
            )
        timeout_s = self._approval_timeout_s()
        pre = tuple(
            f"{p.name}: {'' if p.minimum is None else p.minimum}"
            f"..{'' if p.maximum is None else p.maximum} {p.unit}".rstrip()
            for p in ecu.uds.preconditions
        )
        approval = ApprovalRequest(
            request_id=req.id,
            machine=req.machine,
            ecu=req.ecu,
            installed_version=installed,
            offered_version=req.version,
            expected_downtime_s=downtime_s,
            preconditions=pre,
            timeout_s=timeout_s,
            deadline=time.monotonic() + timeout_s,
        )
        node_id = self.tcu.node_id if self.tcu is not None else 0

        def on_decision(name: str, value: int) -> None:  # CAN thread: never block
            if name == fo.OPERATOR_DECISION:
                approval.resolve(
                    Decision(
                        value == fo.DECISION_APPROVE,
                        f"HMI over CANopen (SDO to TCU node 0x{node_id:02X})",
                        ap.DECISION_HMI,
                    )
                )

        with self._lock:
            if self.cancel_token.cancelled:
                approval.resolve(Decision(False, self.cancel_token.reason, ap.DECISION_CANCEL))
            self.approval = approval
        if use_hmi and self.tcu is not None:
            self.tcu.add_decision_listener(on_decision)
            # A decision written between the offer and the listener is not lost.
            early = int(self.tcu.get(fo.OPERATOR_DECISION))
            if early:
                on_decision(fo.OPERATOR_DECISION, early)
        if opts.approval_local:
            self._emit(ApprovalRequested(0, req.id, approval))
        try:
            decision = self._wait_decision(approval)
        finally:
            if use_hmi and self.tcu is not None:
                self.tcu.remove_decision_listener(on_decision)
            self._tcu(lambda t: t.clear_offer())
        with self._lock:
            if decision.approved:
                self._approved = True
        self._emit(ApprovalResolved(0, req.id, decision))
        verdict = {
            (True, ap.DECISION_LOCAL): "approved",
            (True, ap.DECISION_HMI): "approved",
        }.get((decision.approved, decision.source), decision.source)
        if decision.source in (ap.DECISION_LOCAL, ap.DECISION_HMI) and not decision.approved:
            verdict = "rejected"
        self.store.update(
            req.id,
            approved=decision.approved,
            entry=(
                ENTRY_DECISION,
                {
                    "decision": verdict,
                    "by": decision.by,
                    "source": decision.source,
                    "timeout_s": timeout_s,
                },
            ),
        )
        if decision.approved:
            self._step(Step.CHECKPOINT_1, "ok", f"approved by {decision.by}")
            return
        self._step(Step.CHECKPOINT_1, "failed", f"{verdict} ({decision.by})")
        # Not approved: the request is cancelled either way; outcome, TCU status and
        # last_error say how.
        if decision.source == ap.DECISION_TIMEOUT:
            end = (Outcome.APPROVAL_TIMEOUT, fo.STATUS_APPROVAL_TIMEOUT, fo.ERROR_APPROVAL_TIMEOUT)
            why = f"no operator decision within {timeout_s:g} s (approval timeout = rejection)"
        elif decision.source == ap.DECISION_CANCEL:
            end = (Outcome.CANCELLED, fo.STATUS_CANCELLED, fo.ERROR_CANCELLED)
            why = f"cancelled before approval ({decision.by})"
        else:
            end = (Outcome.REJECTED, fo.STATUS_REJECTED, fo.ERROR_REJECTED)
            why = f"rejected at Checkpoint 1 by {decision.by}"
        raise _Failure(RequestStatus.CANCELLED, *end, f"{why}; the ECU was not touched")

    def _wait_decision(self, approval: ApprovalRequest) -> Decision:
        while True:
            try:
                return approval.future.result(timeout=min(ap.WAIT_SLICE_S, approval.remaining_s()))
            except FutureTimeout:
                pass
            if self.cancel_token.cancelled:
                approval.resolve(Decision(False, self.cancel_token.reason, ap.DECISION_CANCEL))
            elif approval.remaining_s() <= 0:
                approval.resolve(Decision(False, "approval timeout", ap.DECISION_TIMEOUT))

    # 4. flash ---------------------------------------------------------------------------------

    def _flash(self, req: UpdateRequest, ecu: EcuDefinition, image: Any) -> None:
        self._step(Step.FLASH, "started", f"channel {ecu.connection.channel}")
        self._tcu(lambda t: t.set_progress(0))
        self._tcu(lambda t: t.set_status(fo.STATUS_FLASHING))
        # The flash record is started and the bus log streams into the workspace before the
        # first frame: a killed run leaves an interrupted record with its partial bus log.
        started = FlashRecord(
            ecu=req.ecu, machine=req.machine, version=req.version, expected_version=req.version
        )
        rid, buslog = begin_flash_record(self.ws, started)
        last_pct = [-1]

        def report(ctx: JobContext) -> Callable[[EngineEvent], None]:
            def tee(event: EngineEvent) -> None:
                ctx.emit(event)
                if isinstance(event, Progress):
                    pct = int(event.fraction * 100)
                    if pct != last_pct[0]:
                        last_pct[0] = pct
                        self._tcu(lambda t: t.set_progress(pct))
                        self._emit(WorkflowProgress(0, req.id, pct))

            return tee

        def job(ctx: JobContext) -> FlashResult:
            session = self.engine.flash_session(
                ctx,
                ecu,
                machine=req.machine,
                version=req.version,
                expected_version=req.version,
                buslog_path=buslog,
                buslog_image=image_reference(self.ws, image),
                boot_wait_s=self.options.boot_wait_s,
            )
            return flash_ecu(session, image, report(ctx), ctx.cancel)

        handle = self.engine.submit(
            ecu.connection.channel, f"request #{req.id}: flash {ecu.name} {req.version}", job
        )
        result: FlashResult = handle.result()
        self.flash_result = result
        try:
            finish_flash_record(self.ws, rid, result.record, buslog)
        finally:
            with contextlib.suppress(OSError):
                buslog.unlink()
        self.store.update(
            req.id,
            flash_record_id=rid,
            entry=(
                ENTRY_FLASH,
                {
                    "flash_record_id": rid,
                    "result": result.record.result,
                    "error": result.record.error,
                    "failed_step": result.record.failed_step,
                    "bytes": result.record.bytes_total,
                    "version_after": result.version_after,
                    "verification": result.record.verification,
                    "buslog_sha256": result.record.buslog_sha256,
                    "buslog_frames": result.record.buslog_frames,
                },
            ),
        )
        if not result.ok:
            self._step(Step.FLASH, "failed", result.record.error)
            raise _Failure(
                RequestStatus.FAILED,
                Outcome.FLASH_FAILED,
                fo.STATUS_FAILED,
                _error_code(result),
                f"flash failed at {result.record.failed_step or 'start'}: "
                f"{result.error or result.record.error}",
            )
        self._tcu(lambda t: t.set_progress(100))
        self._step(
            Step.FLASH,
            "ok",
            f"{result.record.bytes_total} bytes, ECU reset, "
            + (
                f"verified version {result.version_after}"
                if result.record.verified
                else f"NOT verified: {not_verified_reason(result.record)}"
            ),
        )

    # 5. Checkpoint 2 --------------------------------------------------------------------------

    def _verification_timeout_s(self) -> float:
        return self._timeout_s(
            self.options.verification_timeout_s,
            fo.VERIFICATION_TIMEOUT_S,
            DEFAULT_VERIFICATION_TIMEOUT_S,
        )

    def _checkpoint2(self, req: UpdateRequest, ecu: EcuDefinition) -> None:
        self._step(Step.CHECKPOINT_2, "started")
        self._tcu(lambda t: t.set_status(fo.STATUS_WAITING_VERIFICATION))
        opts = self.options
        checks: tuple[CheckResult, ...] = ()
        healthy = True
        if opts.health_checks:
            hc = ecu.uds.health
            if opts.heartbeat_within_s is not None:
                from dataclasses import replace

                hc = replace(hc, heartbeat_within_s=opts.heartbeat_within_s)

            def job(ctx: JobContext) -> HealthReport:
                return run_health_checks(
                    ecu, ctx.bus, ctx.notifier, req.version, checks=hc, cancel=ctx.cancel
                )

            handle = self.engine.submit(
                ecu.connection.channel, f"request #{req.id}: health checks {ecu.name}", job
            )
            report: HealthReport = handle.result()
            self.health = report
            checks = tuple(report.results)
            healthy = report.healthy
            for c in checks:
                self._tlog(f"check {c.name}: {'ok' if c.ok else 'FAILED'} ({c.detail})")
        verdict: int | None = None
        timed_out = False
        use_oem = opts.oem_verification and self.tcu is not None
        timeout_s = self._verification_timeout_s()
        if use_oem and self.tcu is not None:
            verdict = self.tcu.wait_oem_verification(timeout_s, cancel=self.cancel_token.event)
            timed_out = verdict is None
            healthy = healthy and verdict == fo.VERDICT_HEALTHY
        self._emit(Checkpoint2Result(0, req.id, checks, verdict, healthy))
        verdict_text = {
            None: "timeout" if timed_out else "not asked",
            fo.VERDICT_HEALTHY: "healthy",
            fo.VERDICT_UNHEALTHY: "unhealthy",
        }.get(verdict, str(verdict))
        self.store.append(
            req.id,
            ENTRY_CHECKPOINT2,
            {
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
                "oem_verdict": verdict_text,
                "healthy": healthy,
                "timeout_s": timeout_s if use_oem else None,
            },
        )
        if timed_out:
            self._step(Step.CHECKPOINT_2, "failed", f"no OEM verdict within {timeout_s:g} s")
            raise _Failure(
                RequestStatus.FAILED,
                Outcome.VERIFICATION_TIMEOUT,
                fo.STATUS_VERIFICATION_TIMEOUT,
                fo.ERROR_VERIFICATION_TIMEOUT,
                f"Checkpoint 2: no OEM verdict within {timeout_s:g} s (timeout = failure)",
            )
        if not healthy:
            failed = [c.name for c in checks if not c.ok]
            if verdict == fo.VERDICT_UNHEALTHY:
                failed.append("OEM verdict unhealthy")
            self._step(Step.CHECKPOINT_2, "failed", ", ".join(failed))
            raise _Failure(
                RequestStatus.FAILED,
                Outcome.VERIFICATION_FAILED,
                fo.STATUS_FAILED,
                fo.ERROR_UNHEALTHY,
                "Checkpoint 2: ECU health verification failed: " + ", ".join(failed),
            )
        self._step(
            Step.CHECKPOINT_2,
            "ok",
            f"{len(checks)} check(s) passed" + (f", OEM verdict {verdict_text}" if use_oem else ""),
        )
