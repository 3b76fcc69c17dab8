"""Adapter faults and the Tx contract of the engine (engine/engine.py, engine/flash_job.py,
protocols/isotp_link.py, protocols/uds_link.py) on real virtual buses with the simulated ECU.

A python-can send error (bus-off) in the middle of a transfer ends the flash with a
`TransferError` naming the adapter's message, in bounded time, with the ECU still in its
bootloader and a re-run succeeding; the ISO-TP thread and the TesterPresent keeper survive the
error. Every frame the engine sends reaches the channel's listeners (trace, BLF bus log) once,
marked Tx, whether the bus echoes own frames or the engine fans them out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

from fota_studio.core.errors import TransferError
from fota_studio.engine.engine import Engine
from fota_studio.engine.flash_job import FlashResult
from fota_studio.engine.trace_capture import TraceCapture
from fota_studio.engine.trace_store import FLAG_TX, TraceStore
from fota_studio.protocols import uds_link
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.isotp_link import AdapterSendError, IsoTpLink
from fota_studio.protocols.uds_link import UdsLink
from fota_studio.sim.uds_ecu import BOOTLOADER
from tests.fakes import sim_rig
from tests.fakes.sim_rig import AdapterFaultBus
from tests.helpers.waiting import poll_until

#: Upper bound for a failing flash here; the defect was an endless wait.
FLASH_BOUND_S = 30.0


def test_bus_off_mid_transfer_fails_named_and_rerun_succeeds(
    can_channel: str, tmp_path: Path
) -> None:
    ecu = sim_rig.fast_ecu()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    engine = Engine()
    try:
        with (
            sim_rig.sim_ecu(ecu, can_channel, tmp_path / "sim") as sim,
            sim_rig.tester_bus(can_channel) as (bus, notifier),
        ):
            # Frame 80 of the tester falls into the TransferData of the first segment.
            faulty = AdapterFaultBus(bus, mode="bus_off", after_frames=80)
            engine.attach_channel("CAN1", faulty, notifier)
            handle = engine.submit_flash(
                "CAN1", ecu, image, expected_version=sim_rig.TARGET_VERSION, boot_wait_s=1.5
            )
            result: FlashResult = handle.result(FLASH_BOUND_S)
            assert faulty.fired
            assert not result.ok
            err = result.error
            assert isinstance(err, TransferError) and isinstance(err, AdapterSendError)
            assert err.step == "transfer_data" == result.record.failed_step
            text = str(err)
            assert "adapter error while sending TransferData block" in text
            assert "bus-off (injected adapter fault)" in text
            assert "re-run the flash" in text
            sim_rig.wait_until_settled(sim)
            assert sim.state().mode == BOOTLOADER
            faulty.shutdown()
            # Same ECU, a healthy adapter: the flash runs again from the start.
            again, _ = sim_rig.flash(ecu, can_channel, image)
            assert again.ok, again.error
            assert sim_rig.memory_matches(sim, image)
    finally:
        engine.shutdown()


@contextlib.contextmanager
def _faulty_link(channel: str, mode: str) -> Iterator[tuple[AdapterFaultBus, IsoTpLink]]:
    """An ISO-TP link to the fast VCU's bootloader IDs over an adapter failing (`mode`) from
    its first frame; the adapter wrapper is shut down on exit."""
    conn = sim_rig.fast_ecu().connection
    with sim_rig.tester_bus(channel) as (bus, notifier):
        faulty = AdapterFaultBus(bus, mode=mode, after_frames=0)
        try:
            yield faulty, IsoTpLink(faulty, notifier, conn, conn.bootloader)
        finally:
            faulty.shutdown()


def test_adapter_error_leaves_the_isotp_thread_running(can_channel: str) -> None:
    with _faulty_link(can_channel, "glitch") as (faulty, link):
        link.start()
        try:
            with pytest.raises(AdapterSendError) as info:
                link.send(b"\x3e\x00", timeout_s=2.0)
            assert "adapter error (injected, transient)" in str(info.value)
            assert link.adapter_error_count == 1
            assert link.stack.main_thread is not None and link.stack.main_thread.is_alive()
            link.send(b"\x3e\x00", timeout_s=2.0)  # the adapter is back: the frame goes out
            assert faulty.sent == 2
        finally:
            link.stop()


def test_tester_present_keeper_survives_adapter_errors(can_channel: str) -> None:
    with _faulty_link(can_channel, "bus_off") as (faulty, link):
        uds = UdsLink(link, sim_rig.fast_ecu().uds)
        uds.open()
        keeper = uds_link.TesterPresentKeeper("VCU", 0.05)
        keeper.set_link(uds)
        keeper.start()
        try:
            assert poll_until(lambda: keeper.failures >= 3)
            assert "bus-off" in keeper.last_error
            # The adapter recovers: TesterPresent goes out again from the same thread.
            faulty.mode = "stall"  # stall_s = 0: every frame passes
            assert poll_until(lambda: keeper.sent >= 2)
            assert keeper.last_error == ""
        finally:
            keeper.stop()
            uds.close()


def _tester_ids(ecu_name: str) -> set[int]:
    conn = sim_rig.fast_ecu(ecu_name).connection
    ids = {conn.application.request_id, conn.bootloader.request_id, conn.functional_id}
    if conn.bootloader_entry is not None:
        ids.add(conn.bootloader_entry.can_id)
    return ids


@pytest.mark.parametrize("echo", [True, False], ids=["bus-echo", "engine-fanout"])
def test_engine_tx_frames_reach_trace_and_bus_log_once(
    echo: bool, can_channel: str, tmp_path: Path
) -> None:
    ecu = sim_rig.fast_ecu()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    store = TraceStore(capacity_frames=100_000)
    capture = TraceCapture(store)
    sniffer = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    engine = Engine()
    own_bus: can.BusABC | None = None
    own_notifier: can.Notifier | None = None
    blf = tmp_path / "session.blf"
    try:
        with sim_rig.sim_ecu(ecu, can_channel, tmp_path / "sim"):
            if echo:
                bus, notifier = engine.open_channel(
                    "CAN1", BusSettings(interface="virtual", channel=can_channel)
                )
                assert engine.echoes_tx("CAN1")
            else:
                # A bus that cannot echo (like slcan): the engine fans its Tx frames out.
                own_bus = bus = can.Bus(
                    interface="virtual", channel=can_channel, ignore_config=True
                )
                own_notifier = notifier = can.Notifier(bus, [], timeout=0.05)
                engine.attach_channel("CAN1", bus, notifier)
                assert not engine.echoes_tx("CAN1")
            result = sim_rig.traced_flash(
                engine, capture, (bus, notifier), ecu, image, buslog_path=blf
            )
    finally:
        engine.shutdown()
        if own_notifier is not None:
            own_notifier.stop(timeout=0.1)
        if own_bus is not None:
            own_bus.shutdown()
    tester_ids = _tester_ids("VCU")
    sent = 0
    while (msg := sniffer.recv(0)) is not None:
        sent += msg.arbitration_id in tester_ids
    sniffer.shutdown()
    assert sent > 0
    flags = store.column("flags")
    traced_tx = int(((flags & FLAG_TX) != 0).sum())
    assert traced_tx == sent
    logged = list(can.BLFReader(str(blf)))
    logged_tx = [m for m in logged if not m.is_rx]
    assert len(logged_tx) == sent, "each Tx frame must be in the bus log exactly once"
    assert all(m.arbitration_id in tester_ids for m in logged_tx)
    assert result.record.buslog_frames == len(logged)


def test_open_channel_echoes_unless_told_not_to(can_channel: str) -> None:
    engine = Engine()
    try:
        engine.open_channel("A", BusSettings(interface="virtual", channel=can_channel))
        engine.open_channel(
            "B",
            BusSettings(
                interface="virtual",
                channel=can_channel,
                extra={"receive_own_messages": False},
            ),
        )
        assert engine.echoes_tx("A")
        assert not engine.echoes_tx("B")
        bus_a, _ = engine.bus_of("A")
        assert bus_a.receive_own_messages
    finally:
        engine.shutdown()


class _VanishingBus(can.BusABC):  # type: ignore[misc]
    """A bus whose device is gone after `ok_reads` receives: recv raises like pyserial's EIO."""

    def __init__(self, ok_reads: int = 3) -> None:
        super().__init__(channel="vanishing")
        self.ok_reads = ok_reads
        self.reads = 0

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        raise can.CanOperationError("Could not write to serial device")

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        self.reads += 1
        if self.reads <= self.ok_reads:
            time.sleep(timeout or 0)
            return None, False
        try:
            raise OSError(5, "Input/output error")
        except OSError as exc:
            raise can.CanOperationError("Could not read from serial device") from exc


def test_receive_errors_become_one_adapter_event_not_a_dead_thread(
    thread_deaths: list[str],
) -> None:

    from fota_studio.core.events import EngineEvent, LogLine

    events: list[EngineEvent] = []
    bus = _VanishingBus()
    engine = Engine(events.append)
    try:
        notifier = engine.attach_channel("CAN1", bus)
        assert poll_until(lambda: bus.reads > 10)  # the receive loop goes on, paced
        reads_then = bus.reads
        time.sleep(0.2)
        assert bus.reads - reads_then < 20  # about one try per receive timeout, not a spin
        faults = [e for e in events if isinstance(e, LogLine) and e.job_id == 0]
        assert len(faults) == 1
        assert (
            "vanished (device disconnected): Could not read from serial device: [Errno 5] "
            "Input/output error" in faults[0].text
        )
        assert "plug it in again" in faults[0].text
        assert notifier is not None
    finally:
        engine.shutdown()
        bus.shutdown()
    assert thread_deaths == []
