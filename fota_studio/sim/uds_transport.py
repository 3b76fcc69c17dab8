"""The transport side of a simulated ECU: its ISO-TP stacks, silenced while the ECU reboots.

`EcuTransport` builds the (up to four) can-isotp stacks of one simulated ECU (application and
bootloader, physical and functional) on the SHARED notifier, and watches every frame of the bus
for two things: the bootloader entry frame (handed to the ECU) and request frames that arrive
while the ECU reboots. During a reboot (`silence`) the stacks do not see any frame, so they send
no flow control and queue no request, exactly like an ECU whose transport layer is not running
yet; each single or first frame addressed to the ECU is reported to `on_early_request`
instead (a request already queued when the reboot starts is dropped by the ECU's worker).
Silence is judged by the frame's bus timestamp (time.time clock), so a request the tester sends
after the documented time is never taken for an early one because a thread woke up late.

Threads: `start`/`stop`/`silence` run on the ECU's threads; `_on_frame` and the stacks' gate run
on the notifier thread and only read `silent_until_wall` (one float, assigned atomically).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import can
import isotp

from fota_studio.core.ea import EcuDefinition
from fota_studio.protocols.isotp_link import DirectNotifierStack, build_address, rx_only
from fota_studio.sim.uds_model import APPLICATION, BOOTLOADER, SimEcuOptions, Stack

log = logging.getLogger(__name__)


def wall_time(msg: can.Message) -> float:
    """When the frame was on the bus (time.time clock); now when the bus gave no usable stamp."""
    now = time.time()
    stamp = float(msg.timestamp or 0.0)
    return stamp if now - 1.0 <= stamp <= now else now


class _GatedStack(DirectNotifierStack):
    """A simulator ISO-TP stack that sees no frame while its ECU reboots (`gate` says no)."""

    gate: Callable[[can.Message], bool] | None = None

    @rx_only
    def _on_message_received(self, msg: can.Message) -> None:
        gate = self.gate
        if gate is not None and not gate(msg):
            return  # the ECU is rebooting: its transport layer does not exist yet
        super()._on_message_received(msg)


class EcuTransport:
    """The ISO-TP stacks of one simulated ECU, and the bus watch for entry frame and reboots."""

    def __init__(
        self,
        ecu: EcuDefinition,
        tx_bus: can.BusABC,
        notifier: can.Notifier,
        options: SimEcuOptions,
        *,
        max_block: int,
        thread_prefix: str,
        on_entry_frame: Callable[[can.Message], None],
        on_early_request: Callable[[str], None],
    ) -> None:
        """Nothing runs until `start`; the callbacks run on the notifier thread."""
        self.ecu = ecu
        self._tx_bus = tx_bus
        self._notifier = notifier
        self._options = options
        self._max_block = max_block
        self._thread_prefix = thread_prefix
        self._on_entry_frame = on_entry_frame
        self._on_early_request = on_early_request
        self.stacks: list[Stack] = []
        #: End of the current reboot (time.time clock); frames stamped before it are not seen.
        self.silent_until_wall = 0.0

    def start(self) -> None:
        """Create and start the stacks, then listen to the bus."""
        self._build_stacks()
        self._notifier.add_listener(self._on_frame)

    def stop(self) -> None:
        """Stop listening and stop every stack (idempotent)."""
        with contextlib.suppress(ValueError):
            self._notifier.remove_listener(self._on_frame)
        for entry in self.stacks:
            entry.stack.stop()
        self.stacks.clear()

    def silence(self, until_wall: float) -> None:
        """The ECU does not exist on the bus until `until_wall` (time.time clock)."""
        self.silent_until_wall = max(self.silent_until_wall, until_wall)

    @staticmethod
    def send_heartbeat(bus: can.BusABC, can_id: int, counter: int) -> None:
        """The application's periodic heartbeat frame (counter, state 0x01 = running)."""
        msg = can.Message(
            arbitration_id=can_id,
            is_extended_id=can_id > 0x7FF,
            data=bytes([counter & 0xFF, 0x01, 0, 0, 0, 0, 0, 0]),
        )
        with contextlib.suppress(can.CanError):
            bus.send(msg)

    def awake_for(self, msg: can.Message) -> bool:
        """Notifier thread: False while the ECU reboots (its stacks must not see the frame)."""
        return wall_time(msg) >= self.silent_until_wall

    def _isotp_params(self) -> dict[str, Any]:
        conn = self.ecu.connection
        block_size = self._options.block_size
        stmin = self._options.stmin_ms
        return {
            "blocksize": conn.block_size if block_size is None else block_size,
            "stmin": conn.stmin_ms if stmin is None else stmin,
            "tx_padding": conn.padding_byte,
            "tx_data_length": conn.fd_frame_length if conn.fd else 8,
            "can_fd": conn.fd,
            "bitrate_switch": conn.fd,
            "max_frame_size": max(0x10000, self._max_block + 16),
            "rx_flowcontrol_timeout": 1000,
            "rx_consecutive_frame_timeout": 1000,
        }

    def _build_stacks(self) -> None:
        conn = self.ecu.connection
        params = self._isotp_params()
        seen: set[tuple[Any, ...]] = set()
        wanted = [
            (APPLICATION, False, conn.application),
            (APPLICATION, True, conn.application),
            (BOOTLOADER, False, conn.bootloader),
            (BOOTLOADER, True, conn.bootloader),
        ]
        for mode, functional, addr in wanted:
            address = build_address(conn, addr, ecu_side=True, functional=functional)
            key = (functional, addr.request_id, addr.response_id, mode if functional else "")
            if key in seen:
                continue
            # Direct hand-over: each stack wakes only for frames addressed to it, not for every
            # frame of the bus (4 stacks x 2 threads competing for the GIL per frame).
            stack = _GatedStack(
                self._tx_bus,
                self._notifier,
                address=address,
                params=dict(params),
                error_handler=self._on_isotp_error,
            )
            stack.gate = self.awake_for
            stack.start()
            for attr, suffix in (("main_thread", "isotp"), ("relay_thread", "isotp-rx")):
                thread = getattr(stack, attr, None)
                if thread is not None:
                    thread.name = f"{self._thread_prefix}-{suffix}"
            seen.add(key)
            self.stacks.append(Stack(stack=stack, mode=mode, functional=functional))

    def _on_isotp_error(self, error: Exception) -> None:
        log.debug("%s: ISO-TP: %s", self.ecu.name, error)

    def _is_entry_frame(self, msg: can.Message) -> bool:
        entry = self.ecu.connection.bootloader_entry
        return (
            entry is not None
            and msg.arbitration_id == entry.can_id
            and bool(msg.is_extended_id) == bool(entry.extended_id or entry.can_id > 0x7FF)
            and bytes(msg.data) == bytes(entry.data)
        )

    def _on_frame(self, msg: can.Message) -> None:
        """Notifier thread: hand over the entry frame; report requests during a reboot."""
        if not msg.is_rx or msg.is_error_frame:
            return
        if self._is_entry_frame(msg):
            self._on_entry_frame(msg)
            return
        if self.awake_for(msg):
            return
        frame = isotp.CanMessage(
            arbitration_id=msg.arbitration_id,
            data=bytes(msg.data),
            extended_id=msg.is_extended_id,
            is_fd=msg.is_fd,
        )
        for stack in list(self.stacks):
            address = stack.stack.address
            if not address.is_for_me(frame):
                continue
            pci = frame.data[address.get_rx_prefix_size() :][:1]
            if pci and pci[0] >> 4 in (0, 1):  # single or first frame: a request starts
                left_ms = (self.silent_until_wall - wall_time(msg)) * 1000
                self._on_early_request(
                    f"{'functional' if stack.functional else 'physical'} request frame "
                    f"0x{msg.arbitration_id:X} [{bytes(msg.data[:8]).hex(' ')}] {left_ms:.0f} ms "
                    "before the ECU is up again: wait the EA's reset_time_ms / "
                    "bootloader_entry_delay_ms before the next request"
                )
            return
