"""ISO-TP (ISO 15765-2) links built entirely from an EA `Connection`.

`IsoTpLink` wraps a can-isotp `NotifierBasedCanStack` on a SHARED bus + `can.Notifier` (the
trace and the simulator may listen on the same bus): addressing mode (normal 11/29-bit,
normal-fixed, extended, mixed), IDs, padding, CAN FD frame length + bitrate switch, the block
size / STmin we offer as a receiver, flow-control timeouts and `blocking_send=True` (udsoncan
starts its P2 timer when a request is queued, so the send must return only when the frames are
out — library-notes.md). Every frame the stack transmits also goes to an optional `tx_tap`
(the session's bus log). `DirectNotifierStack` (also used by the simulated ECU) hands the frames
addressed to a stack from the notifier thread straight to the stack's main thread: the
library's relay thread would add one thread hop (a GIL hand-over) to every flow control and
response, and every stack on a shared notifier would wake up for every frame on the bus.
`send_functional_single_frame` sends a functional request (always a single frame,
ISO 15765-2 §9.6.2) directly on the bus; for extended and mixed addressing its first byte is the
FUNCTIONAL address byte (`Connection.functional_target_address`, `functional_address_byte`).
`build_address` is the one EA → can-isotp address mapping, for the tester and (`ecu_side=True`)
for the simulated ECU, including the ECU's functional receiver.

Adapter errors: a python-can `send` that raises (bus-off, adapter unplugged, transmit buffer
full) inside can-isotp's transmit would end the stack's thread, and every later blocking send
would wait forever. The stack's transmit hook catches it instead, remembers it on the link
(`IsoTpLink.adapter_error`), ends the current transmission as failed, and the blocking send
returns at once; `IsoTpLink.send` then raises `AdapterSendError` (a `TransferError`) naming the
python-can message. Every send is bounded in time, and a stack thread that died anyway is
restarted on the next send.

Start/stop from the engine worker thread that owns the session; the stack's own threads are
started and stopped here only.

Why this size: one adapter over can-isotp: addressing, parameters, the direct notifier stack and
the tapped stack all configure or feed the same `IsoTpLink`, and the hot-path classes
(`_SliceFeeder`, `_TappedStack`) override library internals that test_library_internals.py
names; split apart they would have to reach into each other's privates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import can
import isotp

from fota_studio.core.ea import AddressingMode, Connection, IsoTpAddress
from fota_studio.core.errors import ConfigurationError, TransferError
from fota_studio.protocols.bus import (
    FaultKind,
    adapter_label,
    describe_adapter_fault,
    exception_chain_text,
)

log = logging.getLogger(__name__)

#: How long can-isotp waits for a flow control / the next consecutive frame (ISO 15765-2 N_Bs,
#: N_Cr are 1000 ms).
FLOW_CONTROL_TIMEOUT_MS = 1000
CONSECUTIVE_FRAME_TIMEOUT_MS = 1000
#: Upper bound on one blocking send (a 4 KiB TransferData on a slow 125 kbit/s bus takes < 1 s).
SEND_TIMEOUT_S = 10.0

#: Extra time added to every STmin wait, and how much of it is spun instead of slept.
STMIN_MARGIN_S = 0.00005
SPIN_WINDOW_S = 0.0005

#: CAN FD frame lengths an ISO-TP sender may pad to: DLC 8..15 through python-can's table.
_CAN_FD_LENGTHS = tuple(can.util.dlc2len(dlc) for dlc in range(8, 16))

#: What the user should do after the adapter refused a frame.
ADAPTER_ERROR_HINT = (
    "check the bus (bus-off?), cabling and termination; the ECU stays in its bootloader, "
    "re-run the flash"
)

#: After an adapter that vanished or failed in its driver: where the ECU is.
ADAPTER_ECU_STATE = (
    "the ECU stays where the flash left it (in its bootloader once programming began): re-run "
    "the flash through a working adapter"
)


def adapter_failure_words(bus: can.BusABC, exc: BaseException) -> tuple[str, str]:
    """(text, hint) for a frame the adapter refused: the adapter's name and its own cause
    (pyserial's "device disconnected", a driver's error) with the advice for that kind; a
    bus-off keeps the bus advice."""
    fault = describe_adapter_fault(exc, adapter_label(bus))
    if fault.kind is FaultKind.BUS_OFF:
        return fault.cause, ADAPTER_ERROR_HINT
    return fault.message(), f"{fault.advice}; {ADAPTER_ECU_STATE}"


TxTap = Callable[[can.Message], None]
TxErrorHook = Callable[[Exception], None]

#: Attribute that marks a notifier listener as "received frames only": it ignores the frames
#: its own side sent (`is_rx=False`), so a Tx fan-out need not call it (see `rx_only`).
RX_ONLY_ATTR = "fota_rx_only"

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def rx_only(fn: _Fn) -> _Fn:
    """Mark a notifier listener (function or method) as one that ignores our own Tx frames.

    The engine's Tx fan-out (buses that do not echo) skips such listeners: on a classic-CAN
    flash it otherwise calls every ISO-TP stack once per consecutive frame for nothing.
    """
    setattr(fn, RX_ONLY_ATTR, True)
    return fn


def wants_tx_frames(listener: Callable[[can.Message], Any]) -> bool:
    """False for listeners marked with `rx_only` (bound methods inherit the mark)."""
    return not getattr(listener, RX_ONLY_ATTR, False)


class LinkSilentError(TransferError):
    """No flow control came back for a multi-frame message: nothing of the ECU's transport
    layer reached us (a cable pulled, an adapter glitch, the ECU gone) — unlike an ECU that
    received the request and did not answer."""


class AdapterSendError(TransferError):
    """The CAN adapter refused a frame (python-can raised in `send`: bus-off, adapter error).

    `adapter_error` is the python-can message, so callers can rephrase the failure with their
    own context (which block) without losing the adapter's words.
    """

    def __init__(
        self,
        message: str,
        *,
        adapter_error: str,
        step: str | None = None,
        hint: str | None = ADAPTER_ERROR_HINT,
    ) -> None:
        self.adapter_error = adapter_error
        super().__init__(message, step=step, hint=hint)

    @classmethod
    def refused(
        cls, bus: can.BusABC, exc: BaseException, doing: str, *, step: str | None = None
    ) -> AdapterSendError:
        """The error for a frame `bus` refused (`exc`) while `doing` ("while sending ..."),
        in the adapter's words (`adapter_failure_words`)."""
        text, hint = adapter_failure_words(bus, exc)
        return cls(f"adapter error {doing}: {text}", adapter_error=text, step=step, hint=hint)


@dataclass(frozen=True)
class LinkConfig:
    """The resolved ISO-TP settings of one address pair (for logs, the plan and tests)."""

    addressing: isotp.AddressingMode
    txid: int | None
    rxid: int | None
    tx_data_length: int
    can_fd: bool
    params: dict[str, Any]


def _isotp_mode(conn: Connection) -> isotp.AddressingMode:
    """Map the EA addressing mode (+ ID length) to can-isotp's mode."""
    ext = conn.id_bits == 29
    mode = conn.addressing
    if mode == AddressingMode.NORMAL:
        return isotp.AddressingMode.Normal_29bits if ext else isotp.AddressingMode.Normal_11bits
    if mode == AddressingMode.NORMAL_FIXED:
        return isotp.AddressingMode.NormalFixed_29bits
    if mode == AddressingMode.EXTENDED:
        return isotp.AddressingMode.Extended_29bits if ext else isotp.AddressingMode.Extended_11bits
    if mode == AddressingMode.MIXED:
        return isotp.AddressingMode.Mixed_29bits if ext else isotp.AddressingMode.Mixed_11bits
    raise ConfigurationError(f"unknown ISO-TP addressing mode {mode!r}")


def build_address(
    conn: Connection, ids: IsoTpAddress, *, ecu_side: bool = False, functional: bool = False
) -> isotp.Address | isotp.AsymmetricAddress:
    """The can-isotp address of one request/response pair of `conn` — the one place that does it.

    Tester side (default): transmit requests, receive responses. `ecu_side=True`: the ECU's
    view (receive requests, transmit responses; TA/SA swapped), used by the simulated ECU and
    by tests. `functional=True` (ECU side only): the ECU's FUNCTIONAL receiver — it receives
    on `conn.functional_id` with the functional address byte (`functional_address_byte`) and
    answers physically on the response address, as ISO 14229-1 §7.2 / ISO 15765-2 §10.3
    want (one ECU answers a functional request on its own physical response ID).
    """
    if functional and not ecu_side:
        raise ValueError("a tester sends functional requests as raw single frames")
    mode = _isotp_mode(conn)
    try:
        if functional:
            return _ecu_functional_address(conn, ids, mode)
        return _address(mode, **_physical_fields(ids, ecu_side=ecu_side))
    except ValueError as exc:
        raise ConfigurationError(
            f"invalid ISO-TP address for {conn.addressing.value} "
            f"(request 0x{ids.request_id:X}, response 0x{ids.response_id:X}"
            + (f", functional 0x{conn.functional_id:X}" if functional else "")
            + f"): {exc}",
            hint="check the IDs and address bytes of the EA connection",
        ) from exc


def _physical_fields(ids: IsoTpAddress, *, ecu_side: bool) -> dict[str, int | None]:
    """`_address` arguments of the physical pair seen from one side: the tester sends on the
    request ID to the ECU's TA; the ECU sends on the response ID back to the tester (TA/SA swap)."""
    txid, rxid = ids.request_id, ids.response_id
    target, source = ids.target_address, ids.source_address
    if ecu_side:
        txid, rxid, target, source = rxid, txid, source, target
    return {
        "txid": txid,
        "rxid": rxid,
        "target_address": target,
        "source_address": source,
        "address_extension": ids.address_extension,
    }


def _address(
    mode: isotp.AddressingMode,
    *,
    txid: int | None = None,
    rxid: int | None = None,
    target_address: int | None = None,
    source_address: int | None = None,
    address_extension: int | None = None,
    **kw: Any,
) -> isotp.Address:
    """An isotp.Address for `mode` given only what that mode uses (the IDs or the TA/SA; the
    others may be left out)."""
    if mode == isotp.AddressingMode.NormalFixed_29bits:
        if target_address is None or source_address is None:
            raise ConfigurationError(
                "normal-fixed addressing needs target_address and source_address",
                hint="set the ECU's TA/SA bytes in the EA connection",
            )
        return isotp.Address(
            mode, target_address=target_address, source_address=source_address, **kw
        )
    if mode == isotp.AddressingMode.Mixed_29bits:
        return isotp.Address(
            mode,
            target_address=target_address,
            source_address=source_address,
            address_extension=address_extension,
            **kw,
        )
    if mode in (isotp.AddressingMode.Extended_11bits, isotp.AddressingMode.Extended_29bits):
        return isotp.Address(
            mode,
            txid=txid,
            rxid=rxid,
            target_address=target_address,
            source_address=source_address,
            **kw,
        )
    if mode == isotp.AddressingMode.Mixed_11bits:
        return isotp.Address(mode, txid=txid, rxid=rxid, address_extension=address_extension, **kw)
    return isotp.Address(mode, txid=txid, rxid=rxid, **kw)


def _ecu_functional_address(
    conn: Connection, ids: IsoTpAddress, mode: isotp.AddressingMode
) -> isotp.Address | isotp.AsymmetricAddress:
    """The ECU's functional receiver: functional ID + address byte in, physical answer out."""
    fid = conn.functional_id
    byte = functional_address_byte(conn, ids)
    if mode in (isotp.AddressingMode.Normal_11bits, isotp.AddressingMode.Normal_29bits):
        return isotp.Address(mode, txid=ids.response_id, rxid=fid)
    physical = _physical_fields(ids, ecu_side=True)
    physical["rxid"] = None  # transmit only: the answers go out physically
    tx = _address(mode, tx_only=True, **physical)
    if mode == isotp.AddressingMode.NormalFixed_29bits:
        # Functional ID 0x18DB<TA><SA>; any other 29-bit ID is taken as it is.
        rx = isotp.Address(isotp.AddressingMode.Normal_29bits, rxid=fid, rx_only=True)
    elif mode == isotp.AddressingMode.Mixed_29bits:
        # Functional ID 0x18CD<TA><SA> (ISO 15765-2 §10.3.5), first data byte = the AE.
        rx = isotp.Address(
            mode,
            target_address=fid & 0xFF,
            source_address=(fid >> 8) & 0xFF,
            address_extension=byte,
            functional_id=fid,
            rx_only=True,
        )
    else:  # extended (first byte = the functional target address) or mixed 11-bit (the AE)
        rx = _address(mode, rxid=fid, source_address=byte, address_extension=byte, rx_only=True)
    return isotp.AsymmetricAddress(tx_addr=tx, rx_addr=rx)


def functional_address_byte(conn: Connection, ids: IsoTpAddress) -> int | None:
    """The first data byte of a functional request frame, None where the mode has none.

    extended: the functional target address (`Connection.functional_target_address`, e.g.
    0xDF); mixed: the functional address extension (the same field). When the EA leaves it
    unset, the physical byte (`ids.target_address` / `ids.address_extension`) is used, as
    ISO 15765-2 allows for an ECU that takes both on one byte.
    """
    if conn.addressing == AddressingMode.EXTENDED:
        chosen = conn.functional_target_address
        return ids.target_address if chosen is None else chosen
    if conn.addressing == AddressingMode.MIXED:
        chosen = conn.functional_target_address
        return ids.address_extension if chosen is None else chosen
    return None


def precise_wait(delay_s: float) -> None:
    """Wait at least `delay_s` + a small margin, with sub-millisecond accuracy.

    can-isotp calls this between consecutive frames when the receiver asked for an STmin. It
    starts the STmin timer before the previous frame is really on the bus (library-notes.md), so
    a margin keeps strict ECUs from seeing a frame early; the final stretch is a short spin
    because `time.sleep` alone can overshoot by a scheduler tick under load.
    """
    deadline = time.perf_counter() + delay_s + STMIN_MARGIN_S
    coarse = deadline - time.perf_counter() - SPIN_WINDOW_S
    if coarse > 0:
        time.sleep(coarse)
    while time.perf_counter() < deadline:
        time.sleep(0)


def build_params(conn: Connection, *, blocking_send: bool = True) -> dict[str, Any]:
    """The can-isotp parameters for `conn` (padding, FD, BS/STmin offered, timeouts)."""
    tx_len = 8
    if conn.fd:
        tx_len = conn.fd_frame_length
        if tx_len not in _CAN_FD_LENGTHS:
            raise ConfigurationError(
                f"CAN FD frame length {tx_len} is not a valid FD data length",
                hint=f"use one of {', '.join(map(str, _CAN_FD_LENGTHS))}",
            )
    return {
        "stmin": int(conn.stmin_ms),
        "blocksize": int(conn.block_size),
        "tx_padding": conn.padding_byte,
        "tx_data_length": tx_len,
        "tx_data_min_length": 8 if conn.padding_byte is not None else None,
        "can_fd": bool(conn.fd),
        "bitrate_switch": bool(conn.fd),
        "rx_flowcontrol_timeout": FLOW_CONTROL_TIMEOUT_MS,
        "rx_consecutive_frame_timeout": CONSECUTIVE_FRAME_TIMEOUT_MS,
        "max_frame_size": 0xFFFF_FFFF if conn.fd else 4095,
        "blocking_send": blocking_send,
        "wftmax": 0,
        "wait_func": precise_wait,
        # rate_limit_enable would reproduce the wire limit but burns a whole core
        # (library-notes.md); the real adapter or the fota_sim bus paces the frames instead.
        "rate_limit_enable": False,
    }


def _rx_arbitration_ids(address: Any) -> frozenset[int] | None:
    """The CAN IDs `address.is_for_me` can accept (physical + functional), None if unknown."""
    try:
        return frozenset(
            int(address.get_rx_arbitration_id(kind))
            for kind in (isotp.TargetAddressType.Physical, isotp.TargetAddressType.Functional)
        )
    except Exception:  # partial/asymmetric addresses: fall back to is_for_me alone
        return None


class _SliceFeeder:
    """The payload of one ISO-TP send, handed out in slices (can-isotp's FiniteByteGenerator
    interface). The library wraps bytes in a per-byte generator; a 4 KiB TransferData then
    costs ~4000 generator steps, this costs one slice per frame."""

    __slots__ = ("_pos", "_view")

    def __init__(self, data: bytes | bytearray) -> None:
        self._view = memoryview(bytes(data))
        self._pos = 0

    def total_length(self) -> int:
        return len(self._view)

    def remaining_size(self) -> int:
        return len(self._view) - self._pos

    def depleted(self) -> bool:
        return self._pos >= len(self._view)

    def consume(self, size: int, enforce_exact: bool = True) -> bytearray:
        chunk = bytearray(self._view[self._pos : self._pos + size])
        self._pos += len(chunk)
        if enforce_exact and len(chunk) < size:
            raise isotp.errors.BadGeneratorError(
                f"Did not read the requested amount of data. Tried to read {size}, got {len(chunk)}"
            )
        return chunk


class _SendRequest(isotp.TransportLayer.SendRequest):
    """can-isotp's send request with the payload served by `_SliceFeeder` (bytes only)."""

    def __init__(self, data: Any, target_address_type: isotp.TargetAddressType) -> None:
        super().__init__(data=b"", target_address_type=target_address_type)
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.generator = _SliceFeeder(bytes(data))  # type: ignore[assignment]  # duck-typed feeder
        else:  # (generator, size) tuples keep the library's own wrapper
            super().__init__(data=data, target_address_type=target_address_type)


class DirectNotifierStack(isotp.NotifierBasedCanStack):
    """NotifierBasedCanStack that feeds the frames addressed to it directly to its main thread.

    The library puts every frame of the bus into a BufferedReader that a relay thread copies
    into the main thread's queue. Here the notifier thread filters by address (`is_for_me`,
    the same test the stack applies itself) and enqueues into that queue directly; the idle
    relay thread only polls an empty reader. Frame order and the stack's state machine are
    unchanged.
    """

    _rx_ids: frozenset[int] | None = None
    SendRequest = _SendRequest

    def start(self) -> None:
        """Resolve the receive IDs for the cheap pre-filter, then start as the library does."""
        self._rx_ids = _rx_arbitration_ids(self.address)
        super().start()

    @rx_only
    def _on_message_received(self, msg: can.Message) -> None:
        # Notifier thread. buffered_reader is None outside start()..stop() (library contract).
        # is_rx=False: our own frame, echoed by the bus (receive_own_messages) or fanned out by
        # the engine so the trace sees it; a stack must never take it for the peer's.
        if (
            self.buffered_reader is None
            or not msg.is_rx
            or msg.is_error_frame
            or msg.is_remote_frame
        ):
            return
        rx_ids = self._rx_ids
        if rx_ids is not None and msg.arbitration_id not in rx_ids:
            return  # most frames on a shared bus: skip the conversion
        frame = isotp.CanMessage(
            arbitration_id=msg.arbitration_id,
            data=bytes(msg.data),
            extended_id=msg.is_extended_id,
            is_fd=msg.is_fd,
            bitrate_switch=msg.bitrate_switch,
        )
        if self.address.is_for_me(frame):
            self.rx_relay_queue.put(frame)


def _adapter_error_text(exc: BaseException) -> str:
    """The python-can message of an adapter error with its causes (pyserial's words are in
    the cause of python-can's "Could not write to serial device"), never empty."""
    return exception_chain_text(exc)


class _TappedStack(DirectNotifierStack):
    """DirectNotifierStack whose transmit function feeds the bus log and survives adapter errors.

    `_send_frame` runs on the stack's main thread inside `process()`. When the bus refuses a
    frame it reports the error to `on_tx_error` and ends the transmission in progress as failed
    (`_stop_sending(success=False)` completes the blocking send with `success=False`, so
    `send()` raises `BlockingSendFailure` at once); the thread keeps running, so the next
    request (a retry, TesterPresent) is tried on the bus again instead of queueing forever.

    can-isotp 2.0.7 completes a SINGLE-frame request as successful before it hands the frame to
    the transmit function; `_stop_sending` holds that completion back until `_send_frame` knows
    whether the bus took the frame, so a refused single frame fails its send too.
    """

    def __init__(
        self,
        bus: can.BusABC,
        notifier: can.Notifier,
        tx_tap: TxTap | None,
        on_tx_error: TxErrorHook | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bus, notifier, **kwargs)
        self._bus = bus
        self._tx_tap = tx_tap
        self._on_tx_error = on_tx_error
        self._unconfirmed: isotp.TransportLayer.SendRequest | None = None
        self._tx_29bits = bool(self.address.is_tx_29bits())
        self._tx_fd = bool(self.params.can_fd)
        self._tx_brs = bool(self.params.bitrate_switch)
        # Replace the library's tx function so we see exactly the frames that went out (it
        # receives the python-can frames `_make_tx_msg` builds, not isotp.CanMessage).
        self.txfn = self._send_frame  # type: ignore[assignment]  # takes can.Message

    def _stop_sending(self, success: bool) -> None:
        # Main thread. Success while still IDLE = a single frame about to go to txfn.
        req = self.active_send_request
        if success and req is not None and self.tx_state == self.TxState.IDLE:
            self.active_send_request = None
            super()._stop_sending(success)
            self._unconfirmed = req
            return
        super()._stop_sending(success)

    def _confirm(self, success: bool) -> None:
        req, self._unconfirmed = self._unconfirmed, None
        if req is not None:
            req.complete(success)

    def _make_tx_msg(self, arbitration_id: int, data: bytes) -> Any:
        # Build the python-can frame here instead of an isotp.CanMessage that `_send_frame`
        # would copy into one: one object per frame instead of two on the flash hot path.
        # Same padding and DLC rules as the library (tests/unit/test_isotp_link.py compares
        # both for every length); can-isotp only reads arbitration_id/data/dlc back.
        return can.Message(
            arbitration_id=arbitration_id,
            data=self._pad_message_data(data),
            is_extended_id=self._tx_29bits,
            is_fd=self._tx_fd,
            bitrate_switch=self._tx_brs,
            is_rx=False,
        )

    def _send_frame(self, frame: can.Message) -> None:
        try:
            self._bus.send(frame)
        except Exception as exc:
            # python-can raises CanError (bus-off, adapter error); vendor wrappers also leak
            # OSError/ValueError. Letting any of them escape would end can-isotp's thread.
            if self._on_tx_error is not None:
                self._on_tx_error(exc)
            self._confirm(False)
            self._stop_sending(success=False)
            if self.rx_state != self.RxState.IDLE:
                # A flow control we owe could not be sent: the sender will not go on.
                self._stop_receiving()
            return
        if self._tx_tap is not None:
            # Before the confirmation: the trace then shows the request before its response.
            try:
                self._tx_tap(frame)
            except Exception:  # a broken log must neither fail the send nor end the thread
                log.exception("ISO-TP Tx tap failed")
        if self._unconfirmed is not None:
            self._confirm(True)


class IsoTpLink:
    """One ISO-TP channel (request/response pair) of an ECU on a shared bus."""

    def __init__(
        self,
        bus: can.BusABC,
        notifier: can.Notifier,
        conn: Connection,
        ids: IsoTpAddress,
        *,
        tx_tap: TxTap | None = None,
        name: str = "",
    ) -> None:
        self.conn = conn
        self.ids = ids
        self.bus = bus
        self.name = name or f"0x{ids.request_id:X}"
        self._tx_tap = tx_tap
        self.errors: list[str] = []
        self.flow_control_timeouts = 0
        #: The last adapter error of a send on this link (python-can exception) and how many
        #: sends the adapter refused so far; written by the ISO-TP and sending threads.
        self.adapter_error: Exception | None = None
        self.adapter_error_count = 0
        self.params = build_params(conn)
        self.address = build_address(conn, ids)
        self.stack = _TappedStack(
            bus,
            notifier,
            tx_tap,
            self._on_tx_error,
            address=self.address,
            params=self.params,
            error_handler=self._on_error,
        )
        self._started = False

    def _on_error(self, error: Exception) -> None:
        # Called from can-isotp's thread: keep the last errors for the failure message.
        self.errors.append(f"{type(error).__name__}: {error}")
        del self.errors[:-10]
        if isinstance(error, isotp.FlowControlTimeoutError):
            self.flow_control_timeouts += 1
        log.debug("ISO-TP %s: %s", self.name, error)

    def _on_tx_error(self, exc: Exception) -> None:
        # Called from can-isotp's thread (or the sender's, for raw frames): the first refused
        # frame of a streak is worth a warning, the rest would flood the log during bus-off.
        self.adapter_error = exc
        self.adapter_error_count += 1
        self.errors.append(f"adapter error: {_adapter_error_text(exc)}")
        del self.errors[:-10]
        level = logging.WARNING if self.adapter_error_count == 1 else logging.DEBUG
        text = _adapter_error_text(exc)
        log.log(level, "ISO-TP %s: the adapter refused a frame: %s", self.name, text)

    def config(self) -> LinkConfig:
        """The resolved settings (what was actually configured)."""
        return LinkConfig(
            addressing=_isotp_mode(self.conn),
            txid=self.address.get_tx_arbitration_id(),
            rxid=self.address.get_rx_arbitration_id(),
            tx_data_length=int(self.params["tx_data_length"]),
            can_fd=bool(self.params["can_fd"]),
            params=dict(self.params),
        )

    def start(self) -> None:
        """Start the stack's threads (idempotent)."""
        if not self._started:
            self.stack.start()
            self._started = True
            # Name the library's threads so leak checks and thread dumps can tell them apart.
            for role in ("main", "relay"):
                thread = getattr(self.stack, f"{role}_thread", None)
                if thread is not None:
                    thread.name = f"fota-isotp-{self.name}-{role}"

    def stop(self) -> None:
        """Stop the stack's threads and detach from the notifier (idempotent)."""
        if self._started:
            self._started = False
            self.stack.stop()

    @property
    def started(self) -> bool:
        """True between start() and stop()."""
        return self._started

    def ensure_running(self) -> None:
        """Restart the stack if its main thread ended unexpectedly (never during normal use).

        can-isotp ends its thread on any exception from the transmit hook or a listener; the
        hook catches adapter errors, so this only guards against the unforeseen: without it
        every later send on the link would wait for a thread that is gone.
        """
        if not self._started:
            return
        thread = getattr(self.stack, "main_thread", None)
        if thread is not None and not thread.is_alive():
            log.warning("ISO-TP %s: the stack's thread had stopped; restarting it", self.name)
            self.stack.stop()
            self._started = False
            self.start()

    def send(self, payload: bytes, timeout_s: float = SEND_TIMEOUT_S, *, what: str = "") -> None:
        """Send one ISO-TP message (blocks until the frames are out, at most `timeout_s`).

        Raises `AdapterSendError` when the adapter refused a frame of it, `TransferError` when
        the transmission failed otherwise (no flow control from the ECU, overflow, timeout).
        `what` names the message in the error ("TransferData block 17"; default: its size).
        """
        self.ensure_running()
        seen = self.adapter_error_count
        silent = self.flow_control_timeouts
        label = what or f"{len(payload)} bytes"
        try:
            self.stack.send(payload, send_timeout=timeout_s)
        except Exception as exc:  # can-isotp raises BlockingSendFailure / BlockingSendTimeout
            adapter = self.adapter_error
            if self.adapter_error_count != seen and adapter is not None:
                doing = f"while sending {label} on {self.name}"
                raise AdapterSendError.refused(self.bus, adapter, doing) from adapter
            if isinstance(exc, isotp.BlockingSendTimeout):
                # The frames did not leave in time: the transmission must not go on later.
                self.stack.stop_sending()
            kind = LinkSilentError if self.flow_control_timeouts != silent else TransferError
            raise kind(
                f"ISO-TP send of {label} on {self.name} failed: {exc}"
                + (f" (ISO-TP: {self.errors[-1]})" if self.errors else ""),
                hint="check the adapter, bitrate and that the ECU answers flow control",
            ) from exc

    def send_functional_single_frame(self, payload: bytes) -> None:
        """Send `payload` (≤ 6 or 7 bytes) as one single frame on the functional ID."""
        byte = functional_address_byte(self.conn, self.ids)
        prefix = b"" if byte is None else bytes([byte])
        body = prefix + bytes([len(payload)]) + payload
        if len(body) > 8:
            raise ConfigurationError(
                f"functional request {payload.hex(' ')} does not fit one single frame"
            )
        pad = self.conn.padding_byte
        if pad is not None:
            body = body.ljust(8, bytes([pad]))
        frame = can.Message(
            arbitration_id=self.conn.functional_id,
            data=body,
            is_extended_id=self.conn.id_bits == 29 or self.conn.functional_id > 0x7FF,
            is_fd=self.conn.fd,
            bitrate_switch=self.conn.fd,
            is_rx=False,
        )
        self.send_raw(frame)

    def send_raw(self, frame: can.Message) -> None:
        """Send one raw CAN frame on the bus (logged to the tap)."""
        try:
            self.bus.send(frame)
        except (can.CanError, OSError) as exc:
            self._on_tx_error(exc)
            doing = f"while sending frame 0x{frame.arbitration_id:X}"
            raise AdapterSendError.refused(self.bus, exc, doing) from exc
        if self._tx_tap is not None:
            self._tx_tap(frame)
