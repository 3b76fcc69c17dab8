"""UDS (ISO 14229-1) client link over an `IsoTpLink`, configured from the EA `UdsProfile`.

Every request of a `UdsLink` — `request` (any service, encoded by udsoncan's `Request`),
`transfer_data` (the flash hot path) and `functional_request` — goes through ONE private
exchange path, `_exchange`: stale responses are flushed, the request is sent (bounded,
`isotp_link.SEND_TIMEOUT_S`), the answer is awaited for P2; each 0x78 responsePending switches
the wait to P2* and is reported to `on_busy` ("ECU busy…") while the TesterPresent keeper goes
on; 0x21 busyRepeatRequest repeats the request a bounded number of times (ISO 14229-1 §7.5);
other NRCs raise `UdsNegativeResponseError(step, service, nrc, nrc_name, request_hex)` with a
hint; silence raises `TransferError` naming the step, the timer and what to do; every attempt
is recorded as an `Exchange`. There is no overall request timeout: an erase may answer 0x78
for minutes, each gap bounded by P2*.

Late answers and duplicates are recognised, not taken for the answer to the current request:
a positive TransferData response carrying the PREVIOUS block counter (the ECU answering a
repeated block once more, as ISO 14229-1 §14.4 allows, or a late answer to a copy sent after
a P2 timeout), any response to the previous request's service, and responses to TesterPresent
(the keeper's). Each is skipped, logged and counted (`Exchange.skipped`).

An adapter that refuses a frame (bus-off) ends the request at once with `AdapterSendError`
naming the python-can message; `TesterPresentKeeper` is a thread `fota-tp-<ecu>` sending
`3E 80` every `tester_present_period_ms` on the link currently in use (so also while the ECU
answers 0x78 during a long erase) until stopped; it survives adapter errors (counted, logged
once per streak, `last_error`).

A `UdsLink` is used by one engine worker thread; only the keeper sends from its own thread
(can-isotp's send queue is thread-safe).

Why this size: `UdsLink` is the ONE exchange path for UDS (0x7F, 0x78/P2*, timeouts, recording,
busy repeat), which `request`, `transfer_data` and `functional_request` share by design (issue
17); `TesterPresentKeeper` is the thread that path keeps alive during a job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from udsoncan.BaseService import BaseService
from udsoncan.Request import Request

from fota_studio.core.ea import DidDefinition, StepKind, UdsProfile
from fota_studio.core.errors import FotaError, TransferError, UdsNegativeResponseError
from fota_studio.core.nrc import nrc_name, service_name
from fota_studio.protocols.isotp_link import AdapterSendError, IsoTpLink

log = logging.getLogger(__name__)

_SERVICES: dict[int, type[BaseService]] = {}

NRC_BUSY_REPEAT = 0x21
NRC_RESPONSE_PENDING = 0x78
#: How often and how fast a request answered with 0x21 busyRepeatRequest is repeated.
BUSY_REPEAT_MAX = 5
BUSY_REPEAT_DELAY_S = 0.05
SID_TESTER_PRESENT = 0x3E
SID_TRANSFER_DATA = 0x36
NEGATIVE_RESPONSE = 0x7F
#: Positive response SID = request SID + 0x40 (ISO 14229-1 §8.2).
POSITIVE_OFFSET = 0x40

NO_RESPONSE_HINT = (
    "check that the ECU is powered, in the expected mode and on these IDs; the ECU stays in "
    "its bootloader — run the flash again"
)
FUNCTIONAL_NO_RESPONSE_HINT = (
    "the ECU did not answer on its response ID; check the functional ID and the functional "
    "address byte in the EA connection, or disable/suppress this step"
)
INVALID_RESPONSE_HINT = "frames were lost or corrupted on the bus; run the flash again"

#: What to do per NRC (appended to the error message as the hint).
NRC_HINTS: dict[int, str] = {
    0x10: "the ECU rejected the request; check the EA sequence and retry",
    0x11: "the ECU does not support this service; disable the step in the EA sequence",
    0x12: "the ECU does not support this sub-function; check the step parameters in the EA",
    0x13: "request length/format wrong; check addressAndLengthFormat and block length settings",
    0x21: "the ECU stayed busy (busyRepeatRequest) through every repeat; wait until it has "
    "finished its current job, then run the flash again",
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
    #: Responses skipped while waiting for this one: late answers to an earlier copy or
    #: request, duplicates (e.g. `76 <previous counter>`), the keeper's TesterPresent answers.
    skipped: tuple[bytes, ...] = ()


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
        self._opened = False
        self.last_request_t = 0.0
        #: The service of the previous exchange: its late answers are skipped, not failures.
        self._previous_sid: int | None = None
        #: Responses skipped as late answers/duplicates, and stale ones flushed before a send.
        self.skipped_responses = 0
        self.flushed_responses = 0

    def _on_nrc78(self) -> None:
        self._pending += 1
        if self._on_busy is not None:
            self._on_busy(self._current_step)

    def open(self) -> None:
        """Start the ISO-TP stack under the client (idempotent)."""
        if not self._opened:
            self.link.start()
            self._opened = True

    def close(self) -> None:
        """Stop the ISO-TP stack (idempotent)."""
        if self._opened:
            self._opened = False
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

        `data` follows the SID (and the sub-function byte when `subfunction` is given); the
        request is encoded by udsoncan's `Request` (suppressPosRspMsgIndicationBit included).
        """
        service = _SERVICES.get(sid)
        if service is None:
            # udsoncan looks services up by introspection (~0.1 ms): cache per SID.
            service = BaseService.from_request_id(sid)
            if service is not None:
                _SERVICES[sid] = service
        if service is None:
            raise TransferError(
                f"unknown UDS service 0x{sid:02X}",
                step=step,
                hint="check the service ID of this step in the EA sequence",
            )
        payload = Request(
            service,
            subfunction=subfunction,
            suppress_positive_response=suppress_response,
            data=data,
        ).get_payload()
        return self._exchange(
            step, payload, suppress_response=suppress_response, busy_retries=busy_retries
        )

    def transfer_data(
        self, step: str, counter: int, block: bytes, *, busy_retries: int = BUSY_REPEAT_MAX
    ) -> bytes:
        """TransferData (0x36) `counter` + `block`; return the positive response payload.

        The flash hot path (thousands of blocks): the request goes straight to the ISO-TP stack
        and the response is matched in `_exchange` without udsoncan's generic path, which costs
        a cross-thread round trip per request (its `empty_rxqueue` waits for the ISO-TP thread
        to reset its receiver) plus request/response objects (bench/flash.py measures it).
        A positive answer carrying the PREVIOUS counter is a duplicate or a late answer to a
        repeated block (ISO 14229-1 §14.4 lets the ECU acknowledge a repeat again): skipped.
        Any other counter is returned for the caller to judge.
        """
        counter &= 0xFF
        previous = (counter - 1) & 0xFF

        def answers_previous_block(resp: bytes) -> bool:
            return resp[1] == previous

        response = self._exchange(
            step,
            bytes((SID_TRANSFER_DATA, counter)) + block,
            what=f"TransferData counter 0x{counter:02X}",
            min_response_len=2,
            is_stale=answers_previous_block,
            busy_retries=busy_retries,
        )
        if response is None:  # pragma: no cover - only suppressed requests return None
            raise AssertionError("TransferData is never suppressed")
        return response

    def functional_request(
        self, step: str, payload: bytes, *, suppress_response: bool = False
    ) -> bytes | None:
        """Send a functional single-frame request; wait for OUR ECU's physical response.

        `payload` is the whole request (SID first, suppress bit already set when wanted). The
        frame carries the functional ID and, for extended/mixed addressing, the functional
        address byte (`isotp_link.functional_address_byte`).
        """
        return self._exchange(step, payload, functional=True, suppress_response=suppress_response)

    def send_tester_present(self) -> None:
        """Send `3E 80` (suppress positive response) on this link, without waiting."""
        self.link.send(b"\x3e\x80", timeout_s=2.0, what="TesterPresent")

    # -- the one exchange path ----------------------------------------------------------
    def _exchange(
        self,
        step: str,
        payload: bytes,
        *,
        what: str = "",
        functional: bool = False,
        suppress_response: bool = False,
        min_response_len: int = 1,
        is_stale: Callable[[bytes], bool] | None = None,
        busy_retries: int = BUSY_REPEAT_MAX,
    ) -> bytes | None:
        """Send `payload` and return its positive response (None when suppressed).

        Per attempt: flush stale responses, send (physically, or as a functional single
        frame), wait P2 (P2* after each 0x78), record the `Exchange`. 0x21 repeats the request
        up to `busy_retries` times; another NRC raises `UdsNegativeResponseError`; silence
        raises `TransferError`. `is_stale(resp)` marks positive responses of this service that
        answer something else (a previous block); `min_response_len` is the shortest valid
        positive response. `what` names the request in errors (default: service + hex).
        """
        sid = payload[0]
        attempt = 0
        while True:
            self._flush_stale(step)
            self._current_step = step
            self._pending = 0
            skipped: list[bytes] = []
            t0 = time.time()
            self.last_request_t = time.monotonic()
            adapter_errors = self.link.adapter_error_count
            response: bytes | None = None
            try:
                self._send(step, payload, what, functional)
                if suppress_response:
                    return None
                response = self._await_response(
                    step,
                    payload,
                    what,
                    functional,
                    adapter_errors,
                    min_response_len,
                    is_stale,
                    skipped,
                )
            finally:
                nrc = (
                    response[2]
                    if response is not None and response[0] == NEGATIVE_RESPONSE
                    else None
                )
                self._previous_sid = sid
                self._record(step, payload, response, t0, nrc, skipped)
            if nrc is None:
                return response
            if nrc == NRC_BUSY_REPEAT and attempt < busy_retries:
                attempt += 1
                log.info(
                    "%s: ECU busy (0x21), repeating %s (%d/%d)",
                    step,
                    _label(payload, what, functional),
                    attempt,
                    busy_retries,
                )
                time.sleep(BUSY_REPEAT_DELAY_S * attempt)
                continue
            raise UdsNegativeResponseError(
                step=step,
                service=sid,
                nrc=nrc,
                nrc_name=nrc_name(nrc),
                request_hex=_short_hex(payload),
                hint=hint_for_nrc(nrc, step),
            )

    def _flush_stale(self, step: str) -> None:
        """Drop responses that arrived after the previous exchange ended (the link's one flush).

        A late answer to an earlier (timed-out or suppressed) request must not be taken for the
        next one. Only the received queue is emptied: a response still being reassembled by the
        ISO-TP thread is left alone (resetting it would cost a cross-thread round trip) and, if
        it turns out stale, is skipped by `_await_response`.
        """
        stack = self.link.stack
        while stack.available():
            frame = stack.recv(block=False)
            if frame is None:
                break
            self.flushed_responses += 1
            log.debug("%s: discarding stale response %s", step, _short_hex(bytes(frame)))

    def _send(self, step: str, payload: bytes, what: str, functional: bool) -> None:
        """Send the request; adapter and ISO-TP failures become errors naming `step`."""
        try:
            if functional:
                self.link.send_functional_single_frame(payload)
            else:
                self.link.send(payload, what=what)
        except AdapterSendError as exc:
            raise _adapter_failure(exc, step, _label(payload, what, functional)) from exc
        except TransferError as exc:
            if exc.step:
                raise
            raise TransferError(exc.message, step=step, hint=exc.hint) from exc
        except FotaError:
            raise
        except Exception as exc:  # isotp send failures surface as plain exceptions
            raise TransferError(
                f"sending {_label(payload, what, functional)} failed: {exc}",
                step=step,
                hint="check the adapter and the bus; run the flash again",
            ) from exc

    def _await_response(
        self,
        step: str,
        payload: bytes,
        what: str,
        functional: bool,
        adapter_errors: int,
        min_response_len: int,
        is_stale: Callable[[bytes], bool] | None,
        skipped: list[bytes],
    ) -> bytes:
        """Wait for the final answer to `payload`: positive, or an NRC other than 0x78."""
        sid = payload[0]
        positive = (sid + POSITIVE_OFFSET) & 0xFF
        recv = self.link.stack.recv
        timeout = self.p2_s
        deadline = time.monotonic() + timeout
        while True:
            frame = recv(block=True, timeout=max(0.0, deadline - time.monotonic()))
            if frame is None:
                self._raise_if_adapter_failed(step, payload, adapter_errors)
                raise self._no_response(step, payload, what, functional, timeout)
            resp = bytes(frame)
            head = resp[0] if resp else -1
            if head == positive:
                if len(resp) < min_response_len:
                    raise TransferError(
                        f"invalid response to {_label(payload, what, functional)}: "
                        f"{_short_hex(resp)} (too short)",
                        step=step,
                        hint=INVALID_RESPONSE_HINT,
                    )
                if is_stale is None or not is_stale(resp):
                    return resp
            elif head == NEGATIVE_RESPONSE and len(resp) >= 3 and resp[1] == sid:
                if resp[2] != NRC_RESPONSE_PENDING:
                    return resp
                # ISO 14229-1 §10.2.2: each 0x78 restarts the wait, now bounded by P2*.
                self._on_nrc78()
                timeout = self.p2_star_s
                deadline = time.monotonic() + timeout
                continue
            elif not functional and not self._answers_other_request(resp, sid):
                raise TransferError(
                    f"invalid response to {_label(payload, what, functional)}: {_short_hex(resp)}",
                    step=step,
                    hint=INVALID_RESPONSE_HINT,
                )
            skipped.append(resp)
            self.skipped_responses += 1
            log.info(
                "%s: skipped %s while waiting for the answer to %s (a late answer or a duplicate)",
                step,
                _short_hex(resp),
                _label(payload, what, functional),
            )

    def _answers_other_request(self, resp: bytes, sid: int) -> bool:
        """True for a response to TesterPresent (the keeper's) or to the previous request."""
        if len(resp) >= 2 and resp[0] == NEGATIVE_RESPONSE:
            service = resp[1]
        elif resp:
            service = (resp[0] - POSITIVE_OFFSET) & 0xFF
        else:
            return False
        if service == sid:
            return False
        return service == SID_TESTER_PRESENT or service == self._previous_sid

    def _no_response(
        self, step: str, payload: bytes, what: str, functional: bool, timeout: float
    ) -> TransferError:
        """The error for silence: which request, which timer, what the ISO-TP layer saw."""
        which = "P2*" if self._pending else "P2"
        iso = "; ".join(self.link.errors[-2:])
        return TransferError(
            f"no response to {_label(payload, what, functional)} within {which} = "
            f"{timeout:.3f} s" + (f" (ISO-TP: {iso})" if iso else ""),
            step=step,
            hint=FUNCTIONAL_NO_RESPONSE_HINT if functional else NO_RESPONSE_HINT,
        )

    def _raise_if_adapter_failed(self, step: str, payload: bytes, errors_before: int) -> None:
        """After a timeout: blame the adapter when it refused a frame since the request began.

        A refused flow control (our side of a multi-frame response) surfaces only as a missing
        response; the adapter's message is the real cause.
        """
        adapter = self.link.adapter_error
        if self.link.adapter_error_count == errors_before or adapter is None:
            return
        doing = f"during {service_name(payload[0])} {_short_hex(payload)} (no complete response)"
        raise AdapterSendError.refused(self.link.bus, adapter, doing, step=step)

    def _record(
        self,
        step: str,
        req: bytes,
        resp: bytes | None,
        t0: float,
        nrc: int | None,
        skipped: list[bytes] | None = None,
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
                    skipped=tuple(skipped) if skipped else (),
                )
            )


def _label(payload: bytes, what: str, functional: bool) -> str:
    """How a request is named in messages: `what`, else its service and hex."""
    if what:
        return what
    text = f"{service_name(payload[0])} {_short_hex(payload)}"
    return f"functional {text}" if functional else text


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
