"""The machine-side SDO client of the TCU's FOTA objects: what an HMI or OEM-logic node runs.

`FotaClient` talks to the TCU exactly as an integrator on the machine would: a canopen
`RemoteNode` built from the same EDS, SDO reads and writes of the 0x5FF3 sub-objects by name,
a segmented SDO upload for `diagnostic_log`, TPDO1 for `update_available`/`update_status` on
change, and a polling fallback (about once a second, as the interface recommends) for TCUs
whose TPDO is not configured. All methods may be called from any thread: SDO transfers are
serialised by one lock because canopen's SDO client handles one transfer at a time. TPDOs are
decoded on the CAN receive thread; state listeners run there or on the poll thread
(`fota-client-poll-<id>`), so they must not block.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Unpack

import can
import canopen
from canopen.sdo.exceptions import SdoAbortedError, SdoCommunicationError

from fota_studio.core.errors import TransferError
from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.fota_endpoint import EndpointOptions, FotaEndpoint, Listeners

_log = logging.getLogger(__name__)

SDO_TIMEOUT_S = 0.5
POLL_PERIOD_S = 1.0
THREAD_JOIN_TIMEOUT_S = 2.0


class TcuAccessError(TransferError):
    """An SDO transfer with the TCU failed: aborted (keeps the abort code) or no answer."""

    def __init__(self, message: str, *, abort_code: int | None = None, hint: str | None = None):
        self.abort_code = abort_code
        super().__init__(message, step="TCU SDO", hint=hint)


@dataclass(frozen=True)
class FotaState:
    """The two objects a client watches, and where the values came from ("tpdo" or "poll")."""

    update_available: int
    update_status: int
    source: str

    def describe(self) -> str:
        """Human text, e.g. 'update available, idle'."""
        avail = "update available" if self.update_available == 1 else "no update"
        return f"{avail}, {fo.describe_status(self.update_status)}"


@dataclass(frozen=True)
class UpdateOffer:
    """What the HMI shows the operator before Checkpoint 1."""

    request_id: int
    target_ecu: str
    installed_version: str
    offered_version: str
    expected_downtime_s: int


StateListener = Callable[[FotaState], None]


def _int_reader(name: str, doc: str) -> Callable[[FotaClient], int]:
    """A FotaClient method reading the integer sub-object `name` (SDO upload)."""

    def read_int(client: FotaClient) -> int:
        return int(client.read(name))

    read_int.__doc__ = doc
    return read_int


class FotaClient(FotaEndpoint):
    """SDO client of the TCU node: HMI operations, OEM operations and state tracking."""

    def __init__(
        self,
        bus: can.BusABC,
        *,
        sdo_timeout_s: float = SDO_TIMEOUT_S,
        poll_period_s: float | None = POLL_PERIOD_S,
        **where: Unpack[EndpointOptions],
    ) -> None:
        super().__init__(bus, **where)
        self._sdo_timeout_s = sdo_timeout_s
        self._poll_period_s = poll_period_s
        self._sdo_lock = threading.Lock()
        self._cond = threading.Condition()
        self._state: FotaState | None = None
        self._tpdo_count = 0
        # Writes started so far, and how many had started when `_state` was observed: a state
        # seen before our last write may be stale (the write can change it), so `wait_state`
        # acts only on one seen on the TPDO or read after the last write.
        self._writes = 0
        self._state_writes = 0
        self._listeners: Listeners[[FotaState]] = Listeners()
        self._remote: canopen.RemoteNode | None = None
        self._stop = threading.Event()
        self._poll_thread: threading.Thread | None = None
        self.last_poll_error: TcuAccessError | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Attach to the bus, listen to the TPDO and start polling (if enabled)."""
        if self._network is not None:
            return
        network = canopen.Network(self._bus)
        remote = canopen.RemoteNode(self.node_id, self.layout.od)
        remote.sdo.RESPONSE_TIMEOUT = self._sdo_timeout_s
        network.add_node(remote)
        network.subscribe(self.layout.tpdo.cob_id, self._on_tpdo)
        self._hook_up(network, f"FOTA client of node 0x{self.node_id:02X}")
        self._remote = remote
        self._stop.clear()
        if self._poll_period_s is not None:
            self._poll_thread = threading.Thread(
                target=self._poll_loop,
                name=f"fota-client-poll-{self.node_id:02x}",
                daemon=True,
            )
            self._poll_thread.start()

    def stop(self) -> None:
        """Stop polling and detach from the bus (the bus stays open). Idempotent."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._poll_thread is not None:
            self._poll_thread.join(THREAD_JOIN_TIMEOUT_S)
            self._poll_thread = None
        remote, self._remote = self._remote, None
        network = self._unhook()
        if network is not None:
            network.unsubscribe(self.layout.tpdo.cob_id, self._on_tpdo)
            if remote is not None:
                del network[self.node_id]

    # ----------------------------------------------------------------- generic access

    def read(self, name: str) -> Any:
        """SDO upload of one sub-object by name: int, str (VISIBLE_STRING) or bytes (DOMAIN).

        An empty string or log reads as ""/b"" (our TCU sends a zero-length upload; other
        servers may abort with 'no data available', which is read the same way).
        """
        obj = self.layout.object(name)
        try:
            with self._sdo_lock:
                return self._sdo_var(name).raw
        except SdoAbortedError as exc:
            if exc.code == fo.ABORT_NO_DATA and (obj.is_string or obj.is_bytes):
                return "" if obj.is_string else b""
            raise self._abort_error("read", name, exc) from exc
        except SdoCommunicationError as exc:
            raise self._comm_error("read", name, exc) from exc

    def write(self, name: str, value: Any) -> None:
        """SDO download of one sub-object by name; TcuAccessError(abort_code) if refused."""
        self.layout.object(name)
        with self._cond:
            self._writes += 1
        try:
            with self._sdo_lock:
                self._sdo_var(name).raw = value
        except SdoAbortedError as exc:
            raise self._abort_error("write", name, exc) from exc
        except SdoCommunicationError as exc:
            raise self._comm_error("write", name, exc) from exc

    # ----------------------------------------------------------------- HMI operations

    read_update_available = _int_reader(
        fo.UPDATE_AVAILABLE, "update_available: 1 = an update waits for approval."
    )
    read_update_status = _int_reader(fo.UPDATE_STATUS, "update_status (STATUS_* codes).")
    read_expected_downtime_s = _int_reader(
        fo.EXPECTED_DOWNTIME_S, "Expected downtime of the update in seconds."
    )
    read_progress_percent = _int_reader(fo.PROGRESS_PERCENT, "Flash progress 0..100.")
    read_last_error = _int_reader(
        fo.LAST_ERROR, "last_error code (see fota_objects.describe_error)."
    )
    read_request_id = _int_reader(fo.REQUEST_ID, "Id of the update request in progress.")

    def read_versions(self) -> tuple[str, str]:
        """(installed_version, offered_version)."""
        return str(self.read(fo.INSTALLED_VERSION)), str(self.read(fo.OFFERED_VERSION))

    def read_timeouts_s(self) -> tuple[int, int]:
        """(approval_timeout_s, verification_timeout_s)."""
        return int(self.read(fo.APPROVAL_TIMEOUT_S)), int(self.read(fo.VERIFICATION_TIMEOUT_S))

    def write_timeouts_s(
        self, *, approval_timeout_s: int | None = None, verification_timeout_s: int | None = None
    ) -> None:
        """Write the approval and/or verification timeout (1..65535 s)."""
        if approval_timeout_s is not None:
            self.write(fo.APPROVAL_TIMEOUT_S, approval_timeout_s)
        if verification_timeout_s is not None:
            self.write(fo.VERIFICATION_TIMEOUT_S, verification_timeout_s)

    def read_offer(self) -> UpdateOffer:
        """Everything the operator sees at Checkpoint 1."""
        installed, offered = self.read_versions()
        return UpdateOffer(
            request_id=self.read_request_id(),
            target_ecu=str(self.read(fo.TARGET_ECU)),
            installed_version=installed,
            offered_version=offered,
            expected_downtime_s=self.read_expected_downtime_s(),
        )

    def write_operator_decision(self, decision: int) -> None:
        """Checkpoint 1: write 1 approve / 2 reject; aborted 0x08000022 if nothing is offered."""
        self.write(fo.OPERATOR_DECISION, decision)

    def approve(self) -> None:
        """Checkpoint 1: approve the offered update."""
        self.write_operator_decision(fo.DECISION_APPROVE)

    def reject(self) -> None:
        """Checkpoint 1: reject the offered update."""
        self.write_operator_decision(fo.DECISION_REJECT)

    # ----------------------------------------------------------------- OEM operations

    def write_oem_verification(self, verdict: int) -> None:
        """Checkpoint 2: write 1 healthy / 2 unhealthy; aborted 0x08000022 unless status 2."""
        self.write(fo.OEM_VERIFICATION, verdict)

    def report_healthy(self, healthy: bool) -> None:
        """Checkpoint 2 verdict from a boolean."""
        self.write_oem_verification(fo.VERDICT_HEALTHY if healthy else fo.VERDICT_UNHEALTHY)

    def read_diagnostic_log(self) -> str:
        """The TCU's text log of the last update (segmented SDO upload)."""
        data = self.read(fo.DIAGNOSTIC_LOG)
        return bytes(data).decode("utf-8", "replace")

    # ----------------------------------------------------------------- state tracking

    @property
    def state(self) -> FotaState | None:
        """The last known update_available/update_status, or None before the first one."""
        with self._cond:
            return self._state

    def add_state_listener(self, callback: StateListener) -> None:
        """Call `callback(state)` whenever update_available or update_status changes.

        Runs on the CAN receive thread (TPDO) or the poll thread; must not block.
        """
        self._listeners.add(callback)

    def remove_state_listener(self, callback: StateListener) -> None:
        """Undo add_state_listener (no error if it was not added)."""
        self._listeners.remove(callback)

    def poll_once(self) -> FotaState:
        """Read update_available and update_status now and update the tracked state."""
        with self._cond:
            tpdo_before = self._tpdo_count
            writes_before = self._writes
        available = self.read_update_available()
        status = self.read_update_status()
        state = FotaState(available, status, "poll")
        with self._cond:
            # A TPDO that arrived during the two reads is newer than what we read, and a write
            # made meanwhile may have changed what we read: keep the tracked state then.
            if self._tpdo_count != tpdo_before or self._writes != writes_before:
                return self._state if self._state is not None else state
        self._update_state(state, writes_before)
        return state

    def wait_state(
        self,
        predicate: Callable[[FotaState], bool],
        timeout_s: float,
        cancel: threading.Event | None = None,
    ) -> FotaState | None:
        """Block until the tracked state satisfies `predicate`; None on timeout/cancel/stop.

        Only a state seen on the TPDO or read after this client's last write counts: a status
        polled before a write (e.g. "waiting for verification" just before our verdict) is not
        acted on again.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                fresh = self._state_writes == self._writes
                if self._state is not None and fresh and predicate(self._state):
                    return self._state
                if self._stop.is_set() or (cancel is not None and cancel.is_set()):
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.05) if cancel is not None else remaining)

    # ----------------------------------------------------------------- internals

    def _sdo_var(self, name: str) -> Any:
        if self._remote is None:
            raise TcuAccessError(
                f"FOTA client of node 0x{self.node_id:02X} is not started",
                hint="call start() first",
            )
        return self._remote.sdo[self.layout.index][name]

    def _abort_error(self, op: str, name: str, exc: SdoAbortedError) -> TcuAccessError:
        return TcuAccessError(
            f"TCU node 0x{self.node_id:02X} aborted the {op} of {name} "
            f"(0x{self.layout.index:04X}): {exc}",
            abort_code=int(exc.code),
        )

    def _comm_error(self, op: str, name: str, exc: Exception) -> TcuAccessError:
        return TcuAccessError(
            f"no SDO answer from TCU node 0x{self.node_id:02X} to the {op} of {name}: {exc}",
            hint="check the node-ID, the bitrate and that the TCU is powered and on this bus",
        )

    def _on_tpdo(self, can_id: int, data: bytearray, timestamp: float) -> None:
        """canopen subscriber (CAN thread): TPDO1 carries update_available and update_status."""
        values = self.layout.tpdo.decode(bytes(data))
        if fo.UPDATE_AVAILABLE not in values or fo.UPDATE_STATUS not in values:
            return
        with self._cond:
            self._tpdo_count += 1
            writes = self._writes
        state = FotaState(values[fo.UPDATE_AVAILABLE], values[fo.UPDATE_STATUS], "tpdo")
        self._update_state(state, writes)

    def _update_state(self, state: FotaState, writes_seen: int) -> None:
        with self._cond:
            old = self._state
            self._state = state
            self._state_writes = writes_seen
            self._cond.notify_all()
            changed = old is None or (old.update_available, old.update_status) != (
                state.update_available,
                state.update_status,
            )
            listeners = self._listeners.snapshot() if changed else []
        for callback in listeners:
            try:
                callback(state)
            except Exception:  # a listener bug must not stop TPDO handling or polling
                _log.exception("FOTA client state listener failed")

    def _poll_loop(self) -> None:
        period_s = self._poll_period_s or POLL_PERIOD_S
        while not self._stop.is_set():
            try:
                self.poll_once()
                self.last_poll_error = None
            except TcuAccessError as exc:
                if self.last_poll_error is None:
                    _log.warning("FOTA client: polling the TCU failed: %s", exc)
                self.last_poll_error = exc
            self._stop.wait(period_s)
