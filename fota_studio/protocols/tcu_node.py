"""The TCU's CANopen FOTA server node: object 0x5FF3 over SDO, heartbeat, TPDO1, persistence.

`TcuNode` is a canopen `LocalNode` on its own `canopen.Network` bound to a given python-can
bus. It serves the FOTA record (layout from the EDS, addressed by name) to HMI and OEM clients,
enforces the interface's write rules with the documented SDO abort codes, sends TPDO1 when
`update_available`/`update_status` change, produces the heartbeat and keeps the persistent
objects in a JSON state file. The public API (offer_update, set_status, wait_operator_decision,
...) may be called from any thread, typically the engine's worker thread; SDO requests are served
on the CAN receive thread (the Notifier's). One lock guards the object values, so both sides see
consistent state.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Unpack

import can
import canopen
from canopen.sdo.constants import SDO_STRUCT
from canopen.sdo.exceptions import SdoAbortedError
from canopen.sdo.server import SdoServer

from fota_studio.core.errors import AdapterError, ConfigurationError
from fota_studio.protocols.fota_endpoint import EndpointOptions, FotaEndpoint, Listeners
from fota_studio.protocols.fota_objects import (
    ABORT_DEVICE_STATE,
    ABORT_INVALID_VALUE,
    ABORT_VALUE_TOO_HIGH,
    ABORT_VALUE_TOO_LOW,
    ALLOWED_WRITE_VALUES,
    DECISION_NONE,
    DEFAULT_NODE_ID,
    DIAGNOSTIC_LOG,
    ERROR_NONE,
    EXPECTED_DOWNTIME_S,
    INSTALLED_VERSION,
    LAST_ERROR,
    OEM_VERIFICATION,
    OFFERED_VERSION,
    OPERATOR_DECISION,
    PROGRESS_PERCENT,
    REQUEST_ID,
    STATUS_IDLE,
    STATUS_WAITING_VERIFICATION,
    TARGET_ECU,
    UPDATE_AVAILABLE,
    UPDATE_NONE,
    UPDATE_STATUS,
    UPDATE_WAITING_APPROVAL,
    VERDICT_NONE,
    FotaObject,
)

# canopen ships no annotations: calls into it carry `type: ignore[no-untyped-call]`.
_log = logging.getLogger(__name__)

#: The diagnostic log keeps its newest bytes; an SDO upload of 64 KiB takes ~10k segments.
LOG_MAX_BYTES = 64 * 1024
#: How often blocked waits look at their cancel event.
CANCEL_POLL_S = 0.05
#: Receive timeout of the Notifier this node creates when it is not given one.
STATE_FILE_VERSION = 1

# NMT command codes (CiA 301 §7.2.8.3.1) used to walk the node through its boot-up.
_NMT_RESET_NODE = 0x81
_NMT_ENTER_PRE_OPERATIONAL = 0x80
_NMT_START = 0x01

DecisionListener = Callable[[str, int], None]

#: SDO initiate-upload response, segmented, size indicated (scs=2, e=0, s=1: CiA 301 §7.2.4.3.3).
_UPLOAD_SIZE_SPECIFIED = 0x41


class _TcuSdoServer(SdoServer):
    """canopen's SDO server, with a block upload request answered as CiA 301 allows.

    canopen's LocalNode does not implement block upload and always falls back to a normal upload
    response, which CiA 301 §7.2.4.3.9 permits only when the client's protocol switch threshold
    (pst) is at least the data size; otherwise the client cannot parse the answer. So: switch
    protocol when allowed, abort 0x05040001 (invalid command specifier) when not.
    """

    def init_upload(self, request: bytes) -> None:
        """Initiate an upload; an empty string/DOMAIN is a zero-length segmented upload.

        canopen's server aborts an empty value with 0x08000024 (no data available), which a
        machine HMI reading `target_ecu` or `diagnostic_log` while idle takes for an error.
        CiA 301 §7.2.4.3.3 allows a segmented upload with size indicated 0, answered by one last
        segment carrying no data: the client reads "" and no abort is ever sent for it.
        """
        _, index, subindex = SDO_STRUCT.unpack_from(request)
        self._index = index  # an abort raised below names this object
        self._subindex = subindex
        data = self._node.get_data(index, subindex, check_readable=True)
        if len(data):
            super().init_upload(request)  # type: ignore[no-untyped-call]
            return
        self._buffer = bytearray()
        self._toggle = 0
        response = bytearray(8)
        SDO_STRUCT.pack_into(response, 0, _UPLOAD_SIZE_SPECIFIED, index, subindex)
        # bytes 4..7: size 0 (little-endian), already zero
        self.send_response(response)  # type: ignore[no-untyped-call]

    def block_upload(self, data: bytes) -> None:
        command, index, subindex = SDO_STRUCT.unpack_from(data)
        self._index = index
        self._subindex = subindex
        if command & 0x03 != 0:  # only "initiate" can start a block upload we are not in
            raise SdoAbortedError(0x0504_0001)
        pst = data[5] if len(data) > 5 else 0
        size = len(self._node.get_data(index, subindex, check_readable=True))
        if 0 < size <= pst:
            self.init_upload(data)
            return
        raise SdoAbortedError(0x0504_0001)


class TcuNode(FotaEndpoint):
    """CANopen server exposing object 0x5FF3 (layout from the EDS) as the TCU would."""

    def __init__(
        self,
        bus: can.BusABC,
        *,
        state_file: Path | None = None,
        heartbeat_period_ms: int = 1000,
        **where: Unpack[EndpointOptions],
    ) -> None:
        node_id = where.get("node_id", DEFAULT_NODE_ID)
        if not 1 <= node_id <= 0x7F:
            raise ConfigurationError(f"TCU node-ID 0x{node_id:X} is outside 1..0x7F")
        if not 0 <= heartbeat_period_ms <= 0xFFFF:
            raise ConfigurationError(f"heartbeat period {heartbeat_period_ms} ms is not 0..65535")
        super().__init__(bus, **where)
        self._state_file = Path(state_file) if state_file is not None else None
        self._heartbeat_period_ms = heartbeat_period_ms
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._listeners: Listeners[[str, int]] = Listeners()
        self._values: dict[str, Any] = {o.name: _default(o) for o in self.layout.objects()}
        self._persistent = self.layout.persistent_names()
        self._tpdo_names = frozenset(f.name for f in self.layout.tpdo.fields)
        self._node: canopen.LocalNode | None = None
        self._running = False
        self._stopped = False
        self._load_state()

    # ----------------------------------------------------------------- lifecycle

    @property
    def tpdo_cob_id(self) -> int:
        """COB-ID of the TPDO carrying update_available/update_status."""
        return self.layout.tpdo.cob_id

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._running

    def start(self) -> None:
        """Attach to the bus, send the boot-up message, go operational, start the heartbeat."""
        with self._lock:
            if self._running:
                return
            network = canopen.Network(self._bus)
            node = canopen.LocalNode(self.node_id, self.layout.od)
            # Replace the SDO server before the node subscribes it to the network.
            node.sdo = _TcuSdoServer(0x600 + self.node_id, 0x580 + self.node_id, node)  # type: ignore[no-untyped-call]
            node.add_read_callback(self._on_sdo_read)  # type: ignore[no-untyped-call]
            node.add_write_callback(self._on_sdo_write)  # type: ignore[no-untyped-call]
            # 0x1017 is read by NmtSlave when it enters pre-operational; store it directly so
            # that the write callback does not start the heartbeat before the boot-up message.
            node.data_store.setdefault(0x1017, {})[0] = struct.pack("<H", self._heartbeat_period_ms)
            network.add_node(node)
            # One bus, one Notifier: not Network.connect(), which would start a second loop.
            self._hook_up(network, f"TCU node 0x{self.node_id:02X}")
            self._node = node
            self._running = True
            self._stopped = False
            try:
                node.nmt.send_command(_NMT_RESET_NODE)  # boot-up message 0x700+id [00]
                node.nmt.send_command(_NMT_ENTER_PRE_OPERATIONAL)  # heartbeat starts here
                node.nmt.send_command(_NMT_START)
            except can.CanError as exc:
                self._teardown_locked()
                raise AdapterError(
                    f"TCU node 0x{self.node_id:02X}: cannot send on the bus ({exc})"
                ) from exc
            # Clients that start after us learn the (possibly restored) state without polling.
            self._send_tpdo_locked()
        _log.info(
            "TCU node 0x%02X started (heartbeat %d ms)", self.node_id, self._heartbeat_period_ms
        )

    def stop(self) -> None:
        """Stop heartbeat and SDO service, detach from the bus (left open). Idempotent."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            if not self._running:
                return
            self._teardown_locked()
        _log.info("TCU node 0x%02X stopped", self.node_id)

    def _teardown_locked(self) -> None:
        self._running = False
        node, self._node = self._node, None
        if node is not None:
            node.nmt.stop_heartbeat()  # type: ignore[no-untyped-call]
        network = self._unhook()
        if network is not None and node is not None:
            del network[self.node_id]

    # ----------------------------------------------------------------- workflow API

    def offer_update(
        self,
        *,
        request_id: int,
        target_ecu: str,
        installed_version: str,
        offered_version: str,
        expected_downtime_s: int,
    ) -> None:
        """Signal an update waiting for approval: update_available=1, status idle, log cleared."""
        self._set_many(
            {
                REQUEST_ID: request_id,
                TARGET_ECU: target_ecu,
                INSTALLED_VERSION: installed_version,
                OFFERED_VERSION: offered_version,
                EXPECTED_DOWNTIME_S: expected_downtime_s,
                UPDATE_STATUS: STATUS_IDLE,
                PROGRESS_PERCENT: 0,
                LAST_ERROR: ERROR_NONE,
                DIAGNOSTIC_LOG: b"",
                OPERATOR_DECISION: DECISION_NONE,
                OEM_VERIFICATION: VERDICT_NONE,
                UPDATE_AVAILABLE: UPDATE_WAITING_APPROVAL,
            }
        )

    def clear_offer(self) -> None:
        """Withdraw the offer (update_available=0) and drop an unconsumed decision."""
        self._set_many({UPDATE_AVAILABLE: UPDATE_NONE, OPERATOR_DECISION: DECISION_NONE})

    def set_status(self, code: int) -> None:
        """Set update_status (STATUS_* constants); a change is sent in TPDO1."""
        self.set(UPDATE_STATUS, code)

    def set_progress(self, percent: int) -> None:
        """Set progress_percent, clamped to 0..100."""
        self.set(PROGRESS_PERCENT, max(0, min(100, int(percent))))

    def set_last_error(self, code: int) -> None:
        """Set last_error (ERROR_* codes, error_code_for_nrc)."""
        self.set(LAST_ERROR, code)

    def append_log(self, line: str) -> None:
        """Append one line to diagnostic_log (UTF-8); the oldest lines go beyond LOG_MAX_BYTES."""
        with self._lock:
            log = bytes(self._values.get(DIAGNOSTIC_LOG, b""))
            log += line.rstrip("\n").encode("utf-8", "replace") + b"\n"
            if len(log) > LOG_MAX_BYTES:
                cut = log.find(b"\n", len(log) - LOG_MAX_BYTES)
                log = log[cut + 1 :] if cut >= 0 else log[-LOG_MAX_BYTES:]
            self._set_many({DIAGNOSTIC_LOG: log})

    def get(self, name: str) -> Any:
        """The current value of a FOTA sub-object by name (int, str or bytes)."""
        self.layout.object(name)  # ConfigurationError for an unknown name
        with self._lock:
            return self._values[name]

    def set(self, name: str, value: Any) -> None:
        """Set a FOTA sub-object by name (local side: no SDO write rules apply)."""
        self._set_many({name: value})

    def add_decision_listener(self, callback: DecisionListener) -> None:
        """Call `callback(name, value)` on accepted operator_decision/oem_verification writes.

        Called on the CAN receive thread: keep it short and never block.
        """
        self._listeners.add(callback)

    def remove_decision_listener(self, callback: DecisionListener) -> None:
        """Undo add_decision_listener (no error if it was not added)."""
        self._listeners.remove(callback)

    def wait_operator_decision(
        self, timeout_s: float, cancel: threading.Event | None = None
    ) -> int | None:
        """Block until an HMI writes operator_decision; 1 approve, 2 reject, None timeout/cancel.

        The decision is consumed (cleared to 0) when returned.
        """
        return self._wait_consume(OPERATOR_DECISION, timeout_s, cancel)

    def wait_oem_verification(
        self, timeout_s: float, cancel: threading.Event | None = None
    ) -> int | None:
        """Block until OEM logic writes oem_verification; 1 healthy, 2 unhealthy, None timeout.

        The verdict is consumed (cleared to 0) when returned.
        """
        return self._wait_consume(OEM_VERIFICATION, timeout_s, cancel)

    # ----------------------------------------------------------------- internals

    def _wait_consume(
        self, name: str, timeout_s: float, cancel: threading.Event | None
    ) -> int | None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                value = int(self._values[name])
                if value != 0:
                    self._values[name] = 0
                    return value
                if self._stopped or (cancel is not None and cancel.is_set()):
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                # Short slices because a threading.Event cannot be waited on together with us.
                self._cond.wait(min(remaining, CANCEL_POLL_S) if cancel else remaining)

    def _set_many(self, updates: dict[str, Any]) -> None:
        coerced = {name: _coerce(self.layout.object(name), v) for name, v in updates.items()}
        with self._cond:
            changed = {n for n, v in coerced.items() if self._values.get(n) != v}
            self._values.update(coerced)
            if changed & self._persistent:
                self._save_state_locked()
            if changed & self._tpdo_names:
                self._send_tpdo_locked()
            self._cond.notify_all()

    def _send_tpdo_locked(self) -> None:
        # PDOs are only sent in OPERATIONAL (CiA 301 §7.3.2); sent under the lock so that
        # frames leave in the order the values changed.
        if not self._running or self._node is None or self._network is None:
            return
        if self._node.nmt.state != "OPERATIONAL":
            return
        payload = self.layout.tpdo.encode(self._values)
        try:
            self._network.send_message(self.layout.tpdo.cob_id, payload)
        except can.CanError as exc:
            _log.warning("TCU node 0x%02X: TPDO not sent: %s", self.node_id, exc)

    def _on_sdo_read(self, *, index: int, subindex: int, od: Any) -> Any:
        """canopen read callback (CAN thread): serve FOTA objects from our values."""
        if index != self.layout.index:
            return None
        obj = self.layout.object_at(subindex)
        if obj is None or subindex == 0:
            return None
        with self._lock:
            value = self._values[obj.name]
        if obj.is_string:
            # VISIBLE_STRING is ASCII (CiA 301 §7.1.6.3); never let an odd name abort the read.
            return str(value).encode("ascii", "replace")
        return value

    def _on_sdo_write(self, *, index: int, subindex: int, od: Any, data: bytes) -> None:
        """canopen write callback (CAN thread): apply the interface's write rules."""
        if index != self.layout.index:
            return
        obj = self.layout.object_at(subindex)
        if obj is None or subindex == 0:
            return
        value: Any
        if obj.is_string:
            value = bytes(data).decode("ascii", "replace")
        elif obj.is_bytes:
            value = bytes(data)
        else:
            value = int.from_bytes(bytes(data), "little")
            allowed = ALLOWED_WRITE_VALUES.get(obj.name)
            if allowed is not None and value not in allowed:
                raise SdoAbortedError(ABORT_INVALID_VALUE)
            if obj.min_value is not None and value < obj.min_value:
                raise SdoAbortedError(ABORT_VALUE_TOO_LOW)
            if obj.max_value is not None and value > obj.max_value:
                raise SdoAbortedError(ABORT_VALUE_TOO_HIGH)
        notify = False
        with self._cond:
            if obj.name == OPERATOR_DECISION:
                if self._values[UPDATE_AVAILABLE] != UPDATE_WAITING_APPROVAL:
                    raise SdoAbortedError(ABORT_DEVICE_STATE)
                self._values[OPERATOR_DECISION] = value
                # The decision answers the offer: it is no longer waiting for approval.
                self._values[UPDATE_AVAILABLE] = UPDATE_NONE
                self._save_state_locked()
                self._send_tpdo_locked()
                notify = True
            elif obj.name == OEM_VERIFICATION:
                if self._values[UPDATE_STATUS] != STATUS_WAITING_VERIFICATION:
                    raise SdoAbortedError(ABORT_DEVICE_STATE)
                self._values[OEM_VERIFICATION] = value
                notify = True
            else:
                changed = self._values.get(obj.name) != value
                self._values[obj.name] = value
                if changed and obj.persistent:
                    self._save_state_locked()
            self._cond.notify_all()
            listeners = self._listeners.snapshot() if notify else []
        for callback in listeners:
            try:
                callback(obj.name, int(value))
            except Exception:  # a listener bug must not turn into an SDO abort
                _log.exception("TCU decision listener failed for %s", obj.name)

    # ----------------------------------------------------------------- persistence

    def _load_state(self) -> None:
        path = self._state_file
        if path is None or not path.exists():
            return
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            stored = doc["values"]
            if not isinstance(stored, dict):
                raise TypeError("'values' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.warning("TCU state file %s unreadable, starting from defaults: %s", path, exc)
            return
        for name, raw in stored.items():
            if name not in self._persistent:
                continue
            obj = self.layout.object(name)
            try:
                if obj.is_bytes:
                    value: Any = bytes.fromhex(raw["hex"])
                else:
                    value = _coerce(obj, raw)
            except (TypeError, ValueError, KeyError) as exc:
                _log.warning("TCU state file %s: ignoring %s=%r (%s)", path, name, raw, exc)
                continue
            self._values[name] = value

    def _save_state_locked(self) -> None:
        """Write the persistent objects atomically: temp file, fsync, rename."""
        path = self._state_file
        if path is None:
            return
        values: dict[str, Any] = {}
        for name in sorted(self._persistent):
            value = self._values[name]
            values[name] = {"hex": value.hex()} if isinstance(value, bytes) else value
        doc = {"version": STATE_FILE_VERSION, "node_id": self.node_id, "values": values}
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            # Losing persistence must not stop an update in progress; say so loudly.
            _log.error("TCU state not saved to %s: %s", path, exc)


def _default(obj: FotaObject) -> Any:
    if obj.is_string:
        return str(obj.default or "")
    if obj.is_bytes:
        return bytes(obj.default or b"")
    return int(obj.default or 0)


def _coerce(obj: FotaObject, value: Any) -> Any:
    """Check and convert a value for an object's data type (local API side)."""
    if obj.is_string:
        return str(value)
    if obj.is_bytes:
        if isinstance(value, str):
            return value.encode("utf-8")
        return bytes(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"FOTA object '{obj.name}' needs an int, got {value!r}")
    bits = {0x05: 8, 0x06: 16, 0x07: 32, 0x1B: 64}.get(obj.data_type, 32)
    if not 0 <= value < (1 << bits):
        raise ValueError(f"FOTA object '{obj.name}': {value} does not fit UNSIGNED{bits}")
    return value
