"""The workflow's events: frozen dataclasses the run hands to its sink (workflow thread);
`ui/engine_bridge.py` turns them into Qt signals. Any thread may read them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fota_studio.core.events import EngineEvent
from fota_studio.engine.health import CheckResult
from fota_studio.engine.workflow.approval import ApprovalRequest, Decision

Sink = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class WorkflowEvent(EngineEvent):
    """Base of the workflow's events; `request_id` names the update request."""

    request_id: int


@dataclass(frozen=True)
class WorkflowStep(WorkflowEvent):
    """A workflow step started, passed or failed (state "started" | "ok" | "failed")."""

    step: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class ApprovalRequested(WorkflowEvent):
    """Checkpoint 1 waits: show `approval` (the dialog resolves it; never block on it)."""

    approval: ApprovalRequest


@dataclass(frozen=True)
class ApprovalResolved(WorkflowEvent):
    """Checkpoint 1 ended with `decision`."""

    decision: Decision


@dataclass(frozen=True)
class WorkflowProgress(WorkflowEvent):
    """Flash progress of the request in percent (what the TCU reports in progress_percent)."""

    percent: int


@dataclass(frozen=True)
class Checkpoint2Result(WorkflowEvent):
    """Checkpoint 2 results: built-in checks and the OEM verdict (None = none/not asked)."""

    checks: tuple[CheckResult, ...]
    oem_verdict: int | None
    healthy: bool


@dataclass(frozen=True)
class WorkflowFinished(WorkflowEvent):
    """The attempt ended with `status`; `outcome` says how, `error` why it failed."""

    status: str
    outcome: str
    error: str = ""
