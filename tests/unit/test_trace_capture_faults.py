"""Adapter faults in the live trace (engine/trace_capture.py, issue 20) on real virtual buses.

A watched bus whose receive fails like a vanished slcan device (python-can's
`CanOperationError("Could not read from serial device")` from pyserial's EIO) gives ONE named
`CaptureFault` per streak — the trace's channel, the adapter `interface:channel` and the
driver's cause — not one per failed receive and never a dead Notifier thread; the next good
frame ends the streak, so a later failure is a new event. The same on the emulated slcan
adapter (tests/fakes/slcan_device.py) pulled out while the trace watches it."""

from __future__ import annotations

import threading

import can
import pytest

from fota_studio.engine.trace_capture import TraceCapture
from fota_studio.engine.trace_store import TraceStore
from fota_studio.protocols.bus import BusSettings, FaultKind, open_bus
from tests.fakes.slcan_device import SlcanDevice
from tests.fakes.unplugged_adapter import UNPLUGGED_CAUSE, unplug_while_set
from tests.helpers.waiting import poll_until


def test_receive_fault_streak_is_one_named_event_reset_by_a_good_frame(
    can_channel: str, monkeypatch: pytest.MonkeyPatch, thread_deaths: list[str]
) -> None:
    capture = TraceCapture(TraceStore(capacity_frames=1_000))
    peer = open_bus(BusSettings("virtual", can_channel))
    gone = threading.Event()
    try:
        name = capture.open(BusSettings("virtual", can_channel), "CAN1")
        unplug_while_set(capture.bus(name), gone, monkeypatch)
        listener = capture._watched[name].listener
        gone.set()
        assert poll_until(lambda: listener.errors >= 5)  # the receive loop goes on, paced
        faults = capture.take_faults()
        assert len(faults) == 1, "one event per streak, not one per failed receive"
        fault = faults[0]
        assert fault.channel == "CAN1"
        assert fault.fault.adapter == f"virtual:{can_channel}"
        assert fault.fault.kind is FaultKind.VANISHED
        assert UNPLUGGED_CAUSE in fault.fault.cause
        assert fault.text().startswith(f"CAN1: adapter virtual:{can_channel} vanished")
        assert capture.active_faults() == [fault]
        assert capture.take_faults() == []

        gone.clear()  # plugged in again: the next good frame ends the streak
        peer.send(can.Message(arbitration_id=0x7E8, data=b"\x02\x7e\x00", is_extended_id=False))
        assert poll_until(lambda: capture.pending() == 1)
        assert capture.active_faults() == []
        assert listener.errors == 0

        gone.set()  # fails again: a new streak, a new event
        assert poll_until(lambda: len(capture.active_faults()) == 1)
        assert len(capture.take_faults()) == 1
    finally:
        gone.clear()
        capture.close_all()
        peer.shutdown()
    assert thread_deaths == []
    assert capture.active_faults() == []


def test_unplugged_slcan_adapter_is_one_event_with_pyserials_cause(
    can_channel: str,
    thread_deaths: list[str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    capture = TraceCapture(TraceStore(capacity_frames=1_000))
    with SlcanDevice(can_channel) as dev:
        try:
            name = capture.open(BusSettings("slcan", dev.port), "CAN1")
            listener = capture._watched[name].listener
            dev.unplug()
            assert poll_until(lambda: listener.errors >= 3)
            faults = capture.take_faults()
        finally:
            capture.close_all()
    assert thread_deaths == []
    assert len(faults) == 1, faults
    assert faults[0].text().startswith(f"CAN1: adapter slcan:{dev.port} vanished")
    assert "device disconnected" in faults[0].fault.cause  # pyserial's own words, kept
    assert "Traceback" not in capfd.readouterr().err
