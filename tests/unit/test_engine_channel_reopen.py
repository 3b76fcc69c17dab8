"""A channel can be closed and reopened on other settings (adapter settings take effect at
once, issue 15), never while a job runs on it, and a job on a channel whose last open failed
names the adapter and the cause instead of failing later at the ECU."""

from __future__ import annotations

import threading

import can
import pytest

from fota_studio.core.errors import ConfigurationError, FotaError
from fota_studio.engine.engine import Engine
from fota_studio.protocols.bus import BusSettings


def test_close_and_reopen_on_another_adapter(can_channel: str) -> None:
    engine = Engine()
    try:
        bus, _ = engine.open_channel("CAN1", BusSettings(interface="virtual", channel=can_channel))
        engine.close_channel("CAN1")
        assert engine.channels() == []
        assert not any(t.name == "fota-bus-CAN1" for t in threading.enumerate())
        with pytest.raises(can.CanOperationError):
            bus.send(can.Message(arbitration_id=1, data=b"x"))  # the old bus is shut down
        other = can_channel + "-b"
        bus2, _ = engine.open_channel("CAN1", BusSettings(interface="virtual", channel=other))
        assert bus2.channel_info.endswith(other) or other in str(bus2.channel_info)
        engine.close_channel("nope")  # unknown: ignored
    finally:
        engine.shutdown()


def test_close_is_refused_while_a_job_runs(can_channel: str) -> None:
    engine = Engine()
    release = threading.Event()
    try:
        engine.open_channel("CAN1", BusSettings(interface="virtual", channel=can_channel))
        handle = engine.submit("CAN1", "wait", lambda ctx: release.wait(5))
        assert engine.channel_busy("CAN1")
        with pytest.raises(ConfigurationError, match="cannot close while a job runs"):
            engine.close_channel("CAN1")
        release.set()
        handle.result(5)
        for _ in range(100):
            if not engine.channel_busy("CAN1"):
                break
            threading.Event().wait(0.01)
        engine.close_channel("CAN1")
        assert engine.channels() == []
    finally:
        release.set()
        engine.shutdown()


def test_a_job_on_a_channel_that_failed_to_open_names_the_adapter() -> None:
    engine = Engine()
    try:
        with pytest.raises(FotaError):
            engine.open_channel("CAN1", BusSettings(interface="socketcan", channel="can-nope0"))
        assert "can-nope0" in (engine.open_error("CAN1") or "")
        with pytest.raises(ConfigurationError, match="can-nope0"):
            engine.submit("CAN1", "flash", lambda ctx: None)
    finally:
        engine.shutdown()
