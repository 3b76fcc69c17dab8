"""The can-isotp internals protocols/isotp_link.py relies on, each named, so that a library
upgrade that removes or changes one fails HERE, loudly, instead of as a hung or silently wrong
flash. Measured against can-isotp 2.0.7 (pyproject should keep an upper bound below the next
minor release, `can-isotp>=2.0.4,<2.1`, until this file passes on it).

Our overrides, and what each assumes of the library:

- `_SendRequest`, `_SliceFeeder` -> `TransportLayer.SendRequest`, `.generator`,
  `tools.FiniteByteGenerator`: `send()` builds `self.SendRequest(data=…,
  target_address_type=…)`; the state machine reads the payload only through
  `total_length / remaining_size / depleted / consume(size, enforce_exact)`, and a short read
  raises `errors.BadGeneratorError`.
- `DirectNotifierStack._on_message_received` -> `NotifierBasedCanStack.start/stop`,
  `buffered_reader`, `rx_relay_queue`: `start()` registers `self._on_message_received` with
  the notifier, `buffered_reader` is None outside start..stop, the main thread reads
  `rx_relay_queue`.
- `_TappedStack._make_tx_msg` -> `TransportLayer._make_tx_msg(arbitration_id, data)`,
  `_pad_message_data`: every frame is built there; only arbitration_id/data/dlc are read back.
- `_TappedStack._send_frame` -> `TransportLayer.txfn`: `process()` hands each frame to it.
- `_TappedStack._stop_sending` -> `_stop_sending(success)`, `active_send_request`, `tx_state`,
  `TxState.IDLE`, `rx_state`, `RxState.IDLE`, `_stop_receiving()`,
  `SendRequest.complete(success)`: a single frame is completed as successful (tx_state IDLE)
  BEFORE it reaches `txfn`.
- `IsoTpLink.start/ensure_running` -> `main_thread`, `relay_thread` (None when stopped).
- `_TappedStack.__init__` -> `params.can_fd`, `params.bitrate_switch`,
  `address.is_tx_29bits()`.

python-can: isotp_link.py uses only its public API (`Message`, `BusABC.send`, `Notifier`).
"""

from __future__ import annotations

import inspect
from typing import Any

import can
import isotp
import pytest

from fota_studio.core.ea import AddressingMode, Connection, IsoTpAddress
from fota_studio.protocols.isotp_link import (
    AdapterSendError,
    DirectNotifierStack,
    IsoTpLink,
    _SendRequest,
    _SliceFeeder,
)

IDS = IsoTpAddress(0x7E0, 0x7E8)
CONN = Connection(application=IDS, bootloader=IDS, addressing=AddressingMode.NORMAL)


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


@pytest.mark.parametrize(
    ("owner", "name", "params"),
    [
        (isotp.TransportLayer, "SendRequest", None),
        (isotp.TransportLayer.SendRequest, "complete", ["self", "success"]),
        (isotp.TransportLayer, "_stop_sending", ["self", "success"]),
        (isotp.TransportLayer, "_stop_receiving", ["self"]),
        (isotp.TransportLayer, "stop_sending", ["self"]),
        (isotp.TransportLayer, "_make_tx_msg", ["self", "arbitration_id", "data"]),
        (isotp.TransportLayer, "_pad_message_data", ["self", "msg_data"]),
        (isotp.TransportLayer, "TxState", None),
        (isotp.TransportLayer, "RxState", None),
        (isotp.NotifierBasedCanStack, "_on_message_received", ["self", "msg"]),
        (isotp.tools.FiniteByteGenerator, "total_length", ["self"]),
        (isotp.tools.FiniteByteGenerator, "remaining_size", ["self"]),
        (isotp.tools.FiniteByteGenerator, "depleted", ["self"]),
        (isotp.tools.FiniteByteGenerator, "consume", ["self", "size", "enforce_exact"]),
        (isotp.errors, "BadGeneratorError", None),
        (isotp, "BlockingSendTimeout", None),
    ],
)
def test_internal_exists_with_the_signature_we_override(
    owner: Any, name: str, params: list[str] | None
) -> None:
    assert hasattr(owner, name), f"can-isotp no longer has {owner.__name__}.{name}"
    if params is not None:
        assert _params(getattr(owner, name)) == params, f"{owner.__name__}.{name} changed"


def test_state_names_we_compare_with() -> None:
    assert isotp.TransportLayer.TxState.IDLE and isotp.TransportLayer.RxState.IDLE
    # The SendRequest constructor our subclass calls.
    assert _params(isotp.TransportLayer.SendRequest.__init__) == [
        "self",
        "data",
        "target_address_type",
    ]


def test_our_payload_feeder_serves_the_library_interface() -> None:
    """`_SliceFeeder` answers exactly like the library's FiniteByteGenerator."""
    data = bytes(range(20))
    ours = _SliceFeeder(data)
    ref = isotp.tools.FiniteByteGenerator((b for b in data), len(data))
    for size in (7, 6, 5):
        assert (ours.total_length(), ours.remaining_size(), ours.depleted()) == (
            ref.total_length(),
            ref.remaining_size(),
            ref.depleted(),
        )
        assert ours.consume(size) == ref.consume(size)
    assert ours.consume(9, enforce_exact=False) == ref.consume(9, enforce_exact=False)
    assert ours.depleted() and ref.depleted()
    with pytest.raises(isotp.errors.BadGeneratorError):
        _SliceFeeder(b"\x01").consume(2)


def test_send_builds_our_send_request_and_reads_attributes_we_set(can_channel: str) -> None:
    """`TransportLayer.send` instantiates `self.SendRequest` (our `_SendRequest`) and queues
    it on `tx_queue`; `start()` registers `_on_message_received` and `buffered_reader`."""
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    notifier = can.Notifier(bus, [], timeout=0.05)
    address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E0, rxid=0x7E8)
    stack = DirectNotifierStack(bus, notifier, address=address, params={"blocking_send": False})
    try:
        assert stack.buffered_reader is None and stack.main_thread is None
        stack.send(b"\x36\x01" + bytes(100))
        queued = stack.tx_queue.get_nowait()
        assert isinstance(queued, _SendRequest) and isinstance(queued.generator, _SliceFeeder)
        assert queued.generator.total_length() == 102
        stack.start()
        assert stack.buffered_reader is not None
        assert stack._on_message_received in notifier.listeners
        assert stack.main_thread is not None and stack.relay_thread is not None
        assert hasattr(stack, "rx_relay_queue") and stack.active_send_request is None
        assert stack.params.can_fd is False and stack.params.bitrate_switch is False
        assert stack.address.is_tx_29bits() is False
    finally:
        stack.stop()
        notifier.stop(timeout=0.1)
        bus.shutdown()
    assert stack._on_message_received not in notifier.listeners


class _RefusingBus(can.BusABC):  # type: ignore[misc]
    """Sends always fail like a bus-off adapter; receiving is done by another bus."""

    def __init__(self) -> None:
        super().__init__(channel="refusing")
        self.attempts = 0

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        self.attempts += 1
        raise can.CanOperationError("bus-off (test)")

    def _recv_internal(self, timeout: float | None) -> tuple[None, bool]:
        return None, False


def test_single_frame_is_completed_before_txfn(can_channel: str) -> None:
    """can-isotp marks a single frame sent before `txfn` runs; our `_stop_sending` override
    holds that back, so a refused single frame fails its send (and the thread lives on)."""
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    notifier = can.Notifier(bus, [], timeout=0.05)
    refusing = _RefusingBus()
    link = IsoTpLink(refusing, notifier, CONN, IDS)
    link.start()
    try:
        for payload in (b"\x3e\x00", bytes(40)):  # a single frame, then a first frame
            with pytest.raises(AdapterSendError, match="bus-off"):
                link.send(payload, timeout_s=2.0)
        assert refusing.attempts == 2
        assert link.stack.main_thread is not None and link.stack.main_thread.is_alive()
    finally:
        link.stop()
        refusing.shutdown()
        notifier.stop(timeout=0.1)
        bus.shutdown()
