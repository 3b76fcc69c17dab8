"""Update requests: statuses, the transition table, workflow steps and checks of a new request.

An update request deploys one firmware version to ONE ECU of ONE machine (domain file,
"Objects"). Its status is one of the five of the domain file; which status may follow which is
the `TRANSITIONS` table, the only place that rule lives (the store and the workflow call
`check_transition`). `validate_new_request` turns what is known about a request before it is
created (installed version, other pending requests, image layout, Brand/Model) into warnings the
user must confirm and blocks that forbid it. Pure data and functions; safe from any thread.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.errors import FotaError
from fota_studio.core.image_fit import image_fit_problems
from fota_studio.core.versions import compare_versions


class RequestStateError(FotaError):
    """An action is not allowed in the request's current status (e.g. cancel after approval)."""


class RequestStatus(enum.StrEnum):
    """The five statuses of the domain file, spelled as users see them."""

    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


#: Allowed status changes. Failed/Cancelled -> Pending is a re-run (a new attempt of the same
#: request, history kept); Successful is final.
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.PENDING: frozenset(
        {RequestStatus.IN_PROGRESS, RequestStatus.CANCELLED, RequestStatus.FAILED}
    ),
    RequestStatus.IN_PROGRESS: frozenset(
        {RequestStatus.SUCCESSFUL, RequestStatus.FAILED, RequestStatus.CANCELLED}
    ),
    RequestStatus.SUCCESSFUL: frozenset(),
    RequestStatus.FAILED: frozenset({RequestStatus.PENDING}),
    RequestStatus.CANCELLED: frozenset({RequestStatus.PENDING}),
}

#: Statuses in which a request is still to run or running (blocks later requests of its ECU).
OPEN_STATUSES = frozenset({RequestStatus.PENDING, RequestStatus.IN_PROGRESS})
#: Statuses a request can be re-run from.
RERUNNABLE_STATUSES = frozenset({RequestStatus.FAILED, RequestStatus.CANCELLED})


class Step(enum.StrEnum):
    """The workflow steps of one attempt, in order (domain file, "The workflow")."""

    VERIFY_PACKAGE = "verify_package"
    OFFER_UPDATE = "offer_update"
    CHECKPOINT_1 = "checkpoint_1"
    FLASH = "flash"  # bootloader transition + UDS reprogramming + reset + version read
    CHECKPOINT_2 = "checkpoint_2"
    FINALIZE = "finalize"


STEP_TITLES: dict[Step, str] = {
    Step.VERIFY_PACKAGE: "Verify package (SHA-256, signature, memory layout, Brand/Model)",
    Step.OFFER_UPDATE: "Signal update available (TCU object 0x5FF3)",
    Step.CHECKPOINT_1: "Checkpoint 1: operator approval",
    Step.FLASH: "Bootloader transition, UDS reprogramming, ECU reset",
    Step.CHECKPOINT_2: "Checkpoint 2: ECU health verification",
    Step.FINALIZE: "Finalize",
}


class Outcome(enum.StrEnum):
    """Why a request ended (the status says whether; this says how)."""

    NONE = ""
    SUCCESS = "success"
    PACKAGE_INVALID = "package_invalid"
    REJECTED = "rejected"
    APPROVAL_TIMEOUT = "approval_timeout"
    CANCELLED = "cancelled"
    FLASH_FAILED = "flash_failed"
    VERIFICATION_FAILED = "verification_failed"
    VERIFICATION_TIMEOUT = "verification_timeout"
    INTERRUPTED = "interrupted"
    INTERNAL_ERROR = "internal_error"


def check_transition(old: RequestStatus, new: RequestStatus, *, request_id: int = 0) -> None:
    """Raise RequestStateError when `old -> new` is not in TRANSITIONS."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[old])) or "none (final)"
        raise RequestStateError(
            f"update request {request_id}: status {old.value} cannot change to {new.value} "
            f"(allowed: {allowed})"
        )


@dataclass(frozen=True)
class UpdateRequest:
    """One stored update request (the latest state of its latest attempt)."""

    id: int
    machine: str
    ecu: str
    brand: str
    model: str
    version: str
    created_at: str
    created_by: str
    status: RequestStatus
    attempt: int = 1
    step: str = ""  # last workflow step reached (a Step value) in the current attempt
    approved: bool = False  # operator approved at Checkpoint 1 in the current attempt
    outcome: str = ""  # an Outcome value
    error: str = ""
    updated_at: str = ""
    installed_before: str | None = None
    flash_record_id: int | None = None

    @property
    def label(self) -> str:
        """Short text: "#3 VCU 3.2.0 on Unit #1001"."""
        return f"#{self.id} {self.ecu} {self.version} on {self.machine}"

    @property
    def cancellable(self) -> bool:
        """True while a cancel is allowed: before the operator approved at Checkpoint 1."""
        return self.status in OPEN_STATUSES and not self.approved

    @property
    def rerunnable(self) -> bool:
        """True when a new attempt may be started."""
        return self.status in RERUNNABLE_STATUSES


@dataclass(frozen=True)
class RequestIssue:
    """A finding about a new request: `block` forbids it, otherwise it needs a confirmation."""

    code: str
    message: str
    block: bool = False

    def __str__(self) -> str:
        return ("BLOCKED: " if self.block else "warning: ") + self.message


def validate_new_request(
    ecu: EcuDefinition,
    *,
    version: str,
    brand: str,
    model: str,
    segments: Sequence[tuple[int, int]],
    installed_version: str | None,
    open_requests: Sequence[UpdateRequest] = (),
    retired: bool = False,
) -> list[RequestIssue]:
    """Findings for a new request of `version` (of repository brand/model) into `ecu`.

    Blocks: image outside the ECU's memory regions, Brand/Model mismatch. Warnings: another
    request open for the ECU, downgrade, same version as installed, retired version.
    """
    issues: list[RequestIssue] = []
    if (brand, model) != (ecu.brand, ecu.model):
        issues.append(
            RequestIssue(
                "brand_model",
                f'firmware is for {brand} / {model} but ECU "{ecu.name}" is '
                f"{ecu.brand} / {ecu.model}",
                block=True,
            )
        )
    for problem in image_fit_problems(ecu.uds, segments, ecu_name=ecu.name):
        issues.append(RequestIssue("layout", problem.message, block=True))
    for other in open_requests:
        issues.append(
            RequestIssue(
                "pending",
                f"request #{other.id} ({other.version}, {other.status.value}) is already open "
                f'for ECU "{ecu.name}" on {other.machine}; this one will run after it',
            )
        )
    if installed_version:
        cmp = compare_versions(version, installed_version)
        if cmp < 0:
            issues.append(
                RequestIssue(
                    "downgrade", f"{version} is older than the installed {installed_version}"
                )
            )
        elif cmp == 0:
            issues.append(
                RequestIssue("same_version", f"{version} is already installed on {ecu.name}")
            )
    if retired:
        issues.append(RequestIssue("retired", f"version {version} is retired"))
    return issues


def has_blocks(issues: Sequence[RequestIssue]) -> bool:
    """True when any issue forbids the request."""
    return any(i.block for i in issues)
