"""UDS (ISO 14229-1) client link over an `IsoTpLink`, configured from the EA `UdsProfile`.

`UdsLink` wraps a udsoncan `Client`: P2/P2* from the profile, no overall request timeout (an
erase may answer 0x78 for minutes, each within P2*), every 0x78 reported to an `on_busy`
callback ("ECU busy…"), 0x21 busyRepeatRequest retried a bounded number of times (ISO 14229-1
§7.5 allows repeating the request). udsoncan exceptions become our errors:
`UdsNegativeResponseError(step, service, nrc, nrc_name, request_hex)` and `TransferError`, each
with a hint saying what to do. `TesterPresentKeeper` is a thread `fota-tp-<ecu>` sending
`3E 80` every `tester_present_period_ms` on the link currently in use (so also while the ECU
answers 0x78 during a long erase) until stopped.

Every send is bounded (`isotp_link.SEND_TIMEOUT_S`, also under udsoncan through
`_BoundedConnection`); an adapter that refuses a frame (bus-off) ends the request at once with
`AdapterSendError` naming the python-can message, and the keeper survives it (counted, logged
once per streak, `last_error`).

A `UdsLink` is used by one engine worker thread; only the keeper sends from its own thread
(can-isotp's send queue is thread-safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import udsoncan.configs
from udsoncan.BaseService import BaseService
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpV2Connection
from udsoncan.exceptions import (
    InvalidResponseException,
    NegativeResponseException,
    TimeoutException,
    UnexpectedResponseException,
)
from udsoncan.Request import Request
from udsoncan.typing import ClientConfig

from fota_studio.core.ea import DidDefinition, StepKind, UdsProfile
from fota_studio.core.errors import FotaError, TransferError, UdsNegativeResponseError
from fota_studio.core.nrc import nrc_name, service_name
from fota_studio.protocols.isotp_link import SEND_TIMEOUT_S, AdapterSendError, IsoTpLink

log = logging.getLogger(__name__)

_SERVICES: dict[int, type[BaseService]] = {}

NRC_BUSY_REPEAT = 0x21
NRC_RESPONSE_PENDING = 0x78
#: How often and how fast a request answered with 0x21 busyRepeatRequest is repeated.
BUSY_REPEAT_MAX = 5
BUSY_REPEAT_DELAY_S = 0.05

#: What to do per NRC (appended to the error message as the hint).
NRC_HINTS: dict[int, str] = {
    0x10: "the ECU rejected the request; check the EA sequence and retry",
    0x11: "the ECU does not support this service; disable the step in the EA sequence",
    0x12: "the ECU does not support this sub-function; check the step parameters in the EA",
    0x13: "request length/format wrong; check addressAndLengthFormat and block length settings",
    0x22: "conditions not correct: check the preconditions (machine stationary, supply "
    "voltage, engine off) and the session order, then run the flash again",
    0x24: "request sequence error: the ECU expected another step first; check the EA sequence "
    "order and run the flash again from the start",
    0x31: "request out of range: the address/length or identifier is outside what the ECU "
    "accepts; check the EA memory regions against the image",
    0x33: "security access denied: unlock the required security level first (EA sequence)",
    0x35: "invalid key: check the seed/key algorithm, its parameters and secret for this level",
    0x36: "too many wrong keys: wait for the ECU's lockout delay (or power-cycle it), "
    "fix the seed/key settings, then retry",
    0x37: "the ECU's security lockout delay has not expired; wait and retry",
    0x70: "upload/download not accepted: check the memory region and data format",
    0x71: "transfer suspended: the data exceeded the requested size or the ECU aborted; "
    "run the flash again from the start",
    0x72: "general programming failure: the flash memory could not be written/erased; run "
    "the flash again; if it persists the ECU hardware may be faulty",
    0x73: "wrong block sequence counter: run the flash again from the start",
    0x7E: "sub-function not supported in the active session: check the session steps",
    0x7F: "service not supported in the active session: check the session steps",
}


#: Steps that only work inside the programming session the sequence opened: an NRC saying
#: "not in this session" there means the ECU LEFT that session.
PROGRAMMING_SESSION_STEPS = frozenset(
    k.value
    for k in (
        StepKind.SECURITY_LEVEL_1,
        StepKind.SECURITY_LEVEL_2,
        StepKind.FINGERPRINT,
        StepKind.ERASE,
        StepKind.REQUEST_DOWNLOAD,
        StepKind.TRANSFER_DATA,
        StepKind.TRANSFER_EXIT,
        StepKind.CHECK,
    )
)
SESSION_LOST_HINT = (
    "the ECU most likely left the programming session (it was reset, lost power, or its S3 "
    "timer expired because no request or TesterPresent reached it in time); the ECU stays in "
    "its bootloader — re-run the flash"
)


def hint_for_nrc(nrc: int, step: str = "") -> str:
    """What the user should do about a negative response code (at `step`, when known)."""
    if nrc in (0x7E, 0x7F) and step in PROGRAMMING_SESSION_STEPS:
        return SESSION_LOST_HINT
    return NRC_HINTS.get(nrc, "see the ECU's documentation for this NRC; run the flash again")


class _BoundedConnection(PythonIsoTpV2Connection):
    """udsoncan connection whose every send goes through `IsoTpLink.send` (bounded in time).

    udsoncan calls `send(payload)` without a timeout, and can-isotp's blocking send then waits
    for ever if the transmission never completes; the link bounds it and turns adapter errors
    into `AdapterSendError`.
    """

    def __init__(self, link: IsoTpLink, name: str) -> None:
        super().__init__(link.stack, name=name)
        self._link = link

    def specific_send(self, payload: bytes, timeout: float | None = None) -> None:
        """Send `payload` on the link, at most `timeout` (default `SEND_TIMEOUT_S`)."""
        self._link.send(payload, SEND_TIMEOUT_S if timeout is None else timeout)


@dataclass(frozen=True)
class Exchange:
    """One request/response pair as seen by the tester (for the flash record)."""

    step: str
    request: bytes
    response: bytes | None
    t_request: float  # time.time() when the request was sent
    t_response: float | None
    pending_count: int
    nrc: int | None = None


ExchangeSink = Callable[[Exchange], None]


def decode_did(defn: DidDefinition | None, raw: bytes) -> str:
    """Render a DID value with the EA's codec (ascii, hex, uint)."""
    if defn is not None and defn.length is not None:
        raw = raw[: defn.length]
    codec = defn.codec if defn is not None else "ascii"
    if codec == "uint":
        return str(int.from_bytes(raw, "big"))
    if codec == "hex":
        return raw.hex(" ").upper()
    return raw.rstrip(b"\x00 ").decode("ascii", errors="replace")


class UdsLink:
    """A UDS client on one ISO-TP link; raises FOTA errors that name the step and request."""

    def __init__(
        self,
        link: IsoTpLink,
        profile: UdsProfile,
        *,
        on_busy: Callable[[str], None] | None = None,
        on_exchange: ExchangeSink | None = None,
    ) -> None:
        self.link = link
        self.profile = profile
        self._on_busy = on_busy
        self._on_exchange = on_exchange
        self._current_step = ""
        self._pending = 0
        self.p2_s = profile.p2_timeout_ms / 1000.0
        self.p2_star_s = profile.p2_star_timeout_ms / 1000.0
        self._conn = _BoundedConnection(link, name=f"uds-{link.name}")
        config: dict[str, Any] = dict(udsoncan.configs.default_client_config)
        config.update(
            {
                "p2_timeout": self.p2_s,
                "p2_star_timeout": self.p2_star_s,
                # An erase may take minutes of 0x78s; each gap is bounded by P2* instead.
                "request_timeout": None,
                # The profile is the contract; an ECU's session timing must not loosen it.
                "use_server_timing": False,
                "exception_on_negative_response": True,
                "nrc78_callback": self._on_nrc78,
            }
        )
        self.client = Client(self._conn, config=cast(ClientConfig, config))
        self._opened = False
        self.last_request_t = 0.0

    def _on_nrc78(self) -> None:
        self._pending += 1
        if self._on_busy is not None:
            self._on_busy(self._current_step)

    def open(self) -> None:
        """Start the ISO-TP stack under the client (idempotent)."""
        if not self._opened:
            self.link.start()
            self._conn.opened = True
            self._opened = True

    def close(self) -> None:
        """Stop the ISO-TP stack (idempotent)."""
        if self._opened:
            self._opened = False
            self._conn.opened = False
            self.link.stop()

    def request(
        self,
        step: str,
        sid: int,
        data: bytes = b"",
        *,
        subfunction: int | None = None,
        suppress_response: bool = False,
        busy_retries: int = BUSY_REPEAT_MAX,
    ) -> bytes | None:
        """Send one request; return the positive response payload (None when suppressed).

        `data` follows the SID (and the sub-function byte when `subfunction` is given).
        """
        service = _SERVICES.get(sid)
        if service is None:
            # udsoncan looks services up by introspection (~0.1 ms): cache per SID.
            service = BaseService.from_request_id(sid)
            if service is not None:
                _SERVICES[sid] = service
        if service is None:
            raise TransferError(f"unknown UDS service 0x{sid:02X}", step=step)
        req = Request(
            service,
            subfunction=subfunction,
            suppress_positive_response=suppress_response,
            data=data,
        )
        for attempt in range(busy_retries + 1):
            try:
                return self._send(step, req)
            except UdsNegativeResponseError as exc:
                if exc.nrc != NRC_BUSY_REPEAT or attempt >= busy_retries:
                    raise
                log.info("%s: ECU busy (0x21), repeating the request", step)
                time.sleep(BUSY_REPEAT_DELAY_S * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, step: str, req: Request) -> bytes | None:
        payload = req.get_payload()
        self._current_step = step
        self._pending = 0
        t0 = time.time()
        self.last_request_t = time.monotonic()
        adapter_errors = self.link.adapter_error_count
        response_payload: bytes | None = None
        nrc: int | None = None
        try:
            resp = self.client.send_request(req)
            if resp is not None and resp.original_payload is not None:
                response_payload = bytes(resp.original_payload)
            return response_payload
        except NegativeResponseException as exc:
            response_payload = bytes(exc.response.original_payload or b"")
            nrc = int(exc.response.code or 0)
            raise UdsNegativeResponseError(
                step=step,
                service=payload[0],
                nrc=nrc,
                nrc_name=nrc_name(nrc),
                request_hex=_short_hex(payload),
                hint=hint_for_nrc(nrc, step),
            ) from None
        except TimeoutException as exc:
            self._raise_if_adapter_failed(step, payload, adapter_errors)
            which = "P2*" if self._pending else "P2"
            limit = self.p2_star_s if self._pending else self.p2_s
            iso = "; ".join(self.link.errors[-2:])
            raise TransferError(
                f"no response to {service_name(payload[0])} {_short_hex(payload)} within "
                f"{which} = {limit:.3f} s" + (f" (ISO-TP: {iso})" if iso else ""),
                step=step,
                hint="check that the ECU is powered, in the expected mode and on these IDs; "
                "the ECU stays in its bootloader — run the flash again",
            ) from exc
        except (InvalidResponseException, UnexpectedResponseException) as exc:
            raise TransferError(
                f"invalid response to {_short_hex(payload)}: {exc}",
                step=step,
                hint="frames were lost or corrupted on the bus; run the flash again",
            ) from exc
        except AdapterSendError as exc:
            raise _adapter_failure(
                exc, step, f"{service_name(payload[0])} {_short_hex(payload)}"
            ) from exc
        except TransferError as exc:
            if exc.step:
                raise
            raise TransferError(exc.message, step=step, hint=exc.hint) from exc
        except FotaError:
            raise
        except Exception as exc:  # isotp send failures surface as plain exceptions
            raise TransferError(
                f"sending {_short_hex(payload)} failed: {exc}",
                step=step,
                hint="check the adapter and the bus; run the flash again",
            ) from exc
        finally:
            self._record(step, payload, response_payload, t0, nrc)

    def transfer_data(
        self, step: str, counter: int, block: bytes, *, busy_retries: int = BUSY_REPEAT_MAX
    ) -> bytes:
        """TransferData (0x36) `counter` + `block`; return the positive response payload.

        The fast path of the flash loop (thousands of blocks): the request goes straight to
        the ISO-TP stack and the response is matched here, with the same rules and errors as
        `request` (0x78 extends the wait to P2*, 0x21 repeats, NRCs raise
        `UdsNegativeResponseError`, silence raises `TransferError`). udsoncan's generic path
        costs a cross-thread round trip per request (its `empty_rxqueue` waits for the ISO-TP
        thread to reset its receiver) plus request/response object building.
        """
        payload = bytes((0x36, counter & 0xFF)) + block
        what = f"TransferData counter 0x{counter & 0xFF:02X}"
        for attempt in range(busy_retries + 1):
            try:
                return self._raw_exchange(step, payload, min_response_len=2, what=what)
            except UdsNegativeResponseError as exc:
                if exc.nrc != NRC_BUSY_REPEAT or attempt >= busy_retries:
                    raise
                log.info("%s: ECU busy (0x21), repeating the request", step)
                time.sleep(BUSY_REPEAT_DELAY_S * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _raw_exchange(
        self, step: str, payload: bytes, *, min_response_len: int = 1, what: str = ""
    ) -> bytes:
        """Send `payload` physically and wait for its response (see `transfer_data`).

        A positive response shorter than `min_response_len` is invalid, like udsoncan's
        InvalidResponseException (76 + the echoed counter for TransferData).
        """
        sid = payload[0]
        stack = self.link.stack
        # A late answer to an earlier (timed-out) request must not be taken for this one.
        while stack.available():
            stack.recv(block=False)
        self._current_step = step
        self._pending = 0
        t0 = time.time()
        self.last_request_t = time.monotonic()
        adapter_errors = self.link.adapter_error_count
        response: bytes | None = None
        nrc: int | None = None
        try:
            try:
                self.link.send(payload, what=what)
            except AdapterSendError as exc:
                raise _adapter_failure(exc, step, what or service_name(sid)) from exc
            except TransferError as exc:
                raise TransferError(exc.message, step=step, hint=exc.hint) from exc
            timeout = self.p2_s
            while True:
                frame = stack.recv(block=True, timeout=timeout)
                if frame is None:
                    self._raise_if_adapter_failed(step, payload, adapter_errors)
                    which = "P2*" if self._pending else "P2"
                    iso = "; ".join(self.link.errors[-2:])
                    raise TransferError(
                        f"no response to {service_name(sid)} {_short_hex(payload)} within "
                        f"{which} = {timeout:.3f} s" + (f" (ISO-TP: {iso})" if iso else ""),
                        step=step,
                        hint="check that the ECU is powered, in the expected mode and on these "
                        "IDs; the ECU stays in its bootloader — run the flash again",
                    )
                resp = bytes(frame)
                if len(resp) >= 3 and resp[0] == 0x7F and resp[1] == sid:
                    if resp[2] == NRC_RESPONSE_PENDING:
                        self._on_nrc78()
                        timeout = self.p2_star_s
                        continue
                    response, nrc = resp, resp[2]
                    raise UdsNegativeResponseError(
                        step=step,
                        service=sid,
                        nrc=nrc,
                        nrc_name=nrc_name(nrc),
                        request_hex=_short_hex(payload),
                        hint=hint_for_nrc(nrc, step),
                    )
                if len(resp) >= min_response_len and resp[0] == sid + 0x40:
                    response = resp
                    return resp
                raise TransferError(
                    f"invalid response to {_short_hex(payload)}: {_short_hex(resp)}",
                    step=step,
                    hint="frames were lost or corrupted on the bus; run the flash again",
                )
        finally:
            self._record(step, payload, response, t0, nrc)

    def functional_request(
        self, step: str, payload: bytes, *, suppress_response: bool = False
    ) -> bytes | None:
        """Send a functional single-frame request; wait for OUR ECU's physical response."""
        self._current_step = step
        self._pending = 0
        t0 = time.time()
        self.last_request_t = time.monotonic()
        self._conn.empty_rxqueue()
        try:
            self.link.send_functional_single_frame(payload)
        except AdapterSendError as exc:
            self._record(step, payload, None, t0, None)
            raise _adapter_failure(exc, step, f"functional {service_name(payload[0])}") from exc
        if suppress_response:
            self._record(step, payload, None, t0, None)
            return None
        timeout = self.p2_s
        while True:
            frame = self.link.stack.recv(block=True, timeout=timeout)
            if frame is None:
                self._record(step, payload, None, t0, None)
                raise TransferError(
                    f"no response to functional request {_short_hex(payload)} within "
                    f"{timeout:.3f} s",
                    step=step,
                    hint="the ECU did not answer on its response ID; check the functional ID "
                    "in the EA, or disable/suppress this step",
                )
            resp = bytes(frame)
            if len(resp) >= 3 and resp[0] == 0x7F and resp[1] == payload[0]:
                if resp[2] == NRC_RESPONSE_PENDING:
                    self._on_nrc78()
                    timeout = self.p2_star_s
                    continue
                self._record(step, payload, resp, t0, resp[2])
                raise UdsNegativeResponseError(
                    step=step,
                    service=payload[0],
                    nrc=resp[2],
                    nrc_name=nrc_name(resp[2]),
                    request_hex=_short_hex(payload),
                    hint=hint_for_nrc(resp[2], step),
                )
            if resp and resp[0] == payload[0] + 0x40:
                self._record(step, payload, resp, t0, None)
                return resp
            log.debug("%s: ignoring unrelated response %s", step, resp.hex(" "))

    def _raise_if_adapter_failed(self, step: str, payload: bytes, errors_before: int) -> None:
        """After a timeout: blame the adapter when it refused a frame since the request began.

        A refused flow control (our side of a multi-frame response) surfaces only as a missing
        response; the adapter's message is the real cause.
        """
        adapter = self.link.adapter_error
        if self.link.adapter_error_count == errors_before or adapter is None:
            return
        text = str(adapter).strip() or type(adapter).__name__
        raise AdapterSendError(
            f"adapter error during {service_name(payload[0])} {_short_hex(payload)} "
            f"(no complete response): {text}",
            adapter_error=text,
            step=step,
        )

    def _record(
        self, step: str, req: bytes, resp: bytes | None, t0: float, nrc: int | None
    ) -> None:
        if self._on_exchange is not None:
            self._on_exchange(
                Exchange(
                    step=step,
                    request=req,
                    response=resp,
                    t_request=t0,
                    t_response=time.time() if resp is not None else None,
                    pending_count=self._pending,
                    nrc=nrc,
                )
            )

    def send_tester_present(self) -> None:
        """Send `3E 80` (suppress positive response) on this link, without waiting."""
        self.link.send(b"\x3e\x80", timeout_s=2.0, what="TesterPresent")


def _adapter_failure(exc: AdapterSendError, step: str, what: str) -> AdapterSendError:
    """`exc` re-worded for a UDS step: which request the adapter refused, and its message."""
    return AdapterSendError(
        f"adapter error while sending {what}: {exc.adapter_error}",
        adapter_error=exc.adapter_error,
        step=step,
        hint=exc.hint,
    )


def _short_hex(payload: bytes, limit: int = 16) -> str:
    """Hex of a request, cut after `limit` bytes (a TransferData block is kilobytes)."""
    text = payload[:limit].hex(" ").upper()
    return text + f" … ({len(payload)} bytes)" if len(payload) > limit else text


class TesterPresentKeeper:
    """Thread `fota-tp-<ecu>`: sends 3E 80 every period on the current link until stopped."""

    def __init__(self, ecu: str, period_s: float) -> None:
        self.ecu = ecu
        self.period_s = max(0.05, period_s)
        self._link: UdsLink | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failures = 0
        #: The last failure of a TesterPresent send ("" after a success).
        self.last_error = ""

    def set_link(self, link: UdsLink | None) -> None:
        """Switch the link TesterPresent goes to (None pauses it)."""
        with self._lock:
            self._link = link

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"fota-tp-{self.ecu}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=3.0)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            with self._lock:
                link = self._link
            if link is None or not link.link.started:
                continue
            # Any request resets S3 on the ECU; skip when the job itself talked recently.
            if time.monotonic() - link.last_request_t < self.period_s * 0.5:
                continue
            try:
                link.send_tester_present()
                self.sent += 1
                self.last_error = ""
            except Exception as exc:  # keep going: the job reports the real failure
                self.failures += 1
                # The first failure of a streak is worth a warning (the ECU's S3 timer is
                # running out); repeating it every period during a bus-off would flood the log.
                level = logging.DEBUG if self.last_error else logging.WARNING
                self.last_error = str(exc) or type(exc).__name__
                log.log(level, "TesterPresent to %s failed: %s", self.ecu, exc)
