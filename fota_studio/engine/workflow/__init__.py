"""The FOTA workflow: drives one update request from package check to the final status.

One room per job: `run.py` (`RequestRun`, the state machine and its options), `approval.py`
(Checkpoint 1: `Decision`, `ApprovalRequest`), `events.py` (the events below) and
`requests.py` (creating requests, `RequestService`). Import from this package.

`RequestRun` is the state machine of one attempt (domain file, "The workflow"): verify the
package (image hashes against the version row, the workspace's signature policy, memory regions,
Brand/Model) → offer it on the TCU node (update_available = 1, versions, expected downtime) →
**Checkpoint 1** (a future resolved by the local approval dialog and/or by an HMI writing
operator_decision over CANopen; a timeout is a rejection) → flash job on the engine's channel
worker (TCU status 0x01, progress_percent) which ends with the ECU reset and version read →
**Checkpoint 2** (status 0x02; built-in health checks and/or an OEM node writing oem_verification;
a timeout fails) → finalize (0x03/0x04..0x08, last_error, diagnostic_log, installed version).
Nothing is sent to the ECU before approval. Every step, the decision, the flash record and the
Checkpoint 2 results go to the request's append-only record (`infra/requests_store.py`).

Threads: `RequestRun.run()` blocks and must not run on the GUI thread; `start()` runs it on a
thread `fota-workflow-<id>`. The flash and the health checks run as jobs on the engine's worker
of the ECU's channel. `cancel()`, the `ApprovalRequest` methods and `RequestService` may be
called from any thread (the GUI included: none of them blocks). Events (frozen dataclasses below)
go to the sink from the workflow thread.
"""

from fota_studio.engine.workflow.approval import (
    DECISION_CANCEL,
    DECISION_HMI,
    DECISION_LOCAL,
    DECISION_TIMEOUT,
    WAIT_SLICE_S,
    ApprovalRequest,
    Decision,
)
from fota_studio.engine.workflow.events import (
    ApprovalRequested,
    ApprovalResolved,
    Checkpoint2Result,
    Sink,
    WorkflowEvent,
    WorkflowFinished,
    WorkflowProgress,
    WorkflowStep,
)
from fota_studio.engine.workflow.requests import (
    NewRequestCheck,
    RequestService,
    check_new_request,
    create_request,
)
from fota_studio.engine.workflow.run import (
    DEFAULT_APPROVAL_TIMEOUT_S,
    DEFAULT_VERIFICATION_TIMEOUT_S,
    RequestRun,
    WorkflowOptions,
)

__all__ = [
    "DECISION_CANCEL",
    "DECISION_HMI",
    "DECISION_LOCAL",
    "DECISION_TIMEOUT",
    "DEFAULT_APPROVAL_TIMEOUT_S",
    "DEFAULT_VERIFICATION_TIMEOUT_S",
    "WAIT_SLICE_S",
    "ApprovalRequest",
    "ApprovalRequested",
    "ApprovalResolved",
    "Checkpoint2Result",
    "Decision",
    "NewRequestCheck",
    "RequestRun",
    "RequestService",
    "Sink",
    "WorkflowEvent",
    "WorkflowFinished",
    "WorkflowOptions",
    "WorkflowProgress",
    "WorkflowStep",
    "check_new_request",
    "create_request",
]
