"""An slcan (Lawicel) USB-CAN adapter on a pseudo-terminal, bridged to a python-can virtual bus.

`SlcanDevice(can_channel)` opens a pty; its slave path (`device.port`, e.g. `/dev/pts/7`) is
what python-can's slcan interface opens, exactly like `/dev/ttyACM0` of a CANable. The device
thread (`fota-test-slcan-…`) speaks the ASCII protocol byte-exact: `V`/`v`/`N` (versions,
serial number), `S0`..`S9` (python-can's bitrate table), `Y2`/`Y5` (CAN FD data rate), `s`
(BTR), `O`/`L` (open, listen-only), `C` (close), `F` (status), `Z` (timestamps), and
`t`/`T`/`r`/`R`/`d`/`D`/`b`/`B` frames (each answered `z`/`Z` like a Lawicel CAN232); a
command the state does not allow is answered BEL. While open, frames go both ways between the
serial line and a python-can `virtual` bus on `can_channel`, where the simulated machine lives.

Fault modes: `mode="silent"` (reads everything, never answers or bridges: a port with nothing
slcan behind it), `mode="refuse_open"` (BEL to `O`/`L`: an adapter that cannot go on the bus),
`mode="quiet"` (firmware like the original CANable's: answers `V` with its own text, never
acknowledges a command with CR/BEL, bridges frames once opened),
and `unplug()` / `unplug_after_tx_frames=N` (closes the pty master like a pulled USB cable:
the tester's port then fails with EIO). Start/stop from the test's thread.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
import uuid

import can

#: Lawicel bitrate commands (python-can slcanBus._BITRATES).
_BITRATES = {
    "S0": 10_000,
    "S1": 20_000,
    "S2": 50_000,
    "S3": 100_000,
    "S4": 125_000,
    "S5": 250_000,
    "S6": 500_000,
    "S7": 750_000,
    "S8": 1_000_000,
    "S9": 83_300,
}
_DATA_BITRATES = {"Y2": 2_000_000, "Y5": 5_000_000}
_FD_LENGTHS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)
OK = b"\r"
BEL = b"\a"


class SlcanDevice:
    """A Lawicel/slcan adapter on a pty with the simulated bus behind it (see module doc)."""

    def __init__(
        self,
        can_channel: str,
        *,
        mode: str = "healthy",
        fd: bool = False,
        version: str = "1013",
        serial_number: str = "FS42",
        unplug_after_tx_frames: int | None = None,
    ) -> None:
        if mode not in ("healthy", "silent", "refuse_open", "quiet"):
            raise ValueError(f"unknown slcan device mode {mode!r}")
        self.mode = mode
        self.version = version
        self.serial_number = serial_number
        self.unplug_after_tx_frames = unplug_after_tx_frames
        self.commands: list[str] = []  # every command line received (frames counted apart)
        self.tx_frames = 0  # frames the tester sent onto the bus through us
        self.first_tx_at: float | None = None  # time.monotonic() of the first of them
        self.rx_frames = 0  # frames from the bus written to the tester
        self.bitrate_bps: int | None = None
        self.data_bitrate_bps: int | None = None
        self.is_open = False
        self.listen_only = False
        self.unplugged = threading.Event()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        # The tester opens the slave by name, like /dev/ttyACM0. We keep our own slave fd open
        # until stop(): with no slave open, reading the master fails (EIO) before it is opened.
        self.port = os.ttyname(self._slave)
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._bus = can.Bus(interface="virtual", channel=can_channel, fd=fd, ignore_config=True)
        tag = uuid.uuid4().hex[:6]
        self._serial_thread = threading.Thread(
            target=self._serial_loop, name=f"fota-test-slcan-{tag}", daemon=True
        )
        self._bus_thread = threading.Thread(
            target=self._bus_loop, name=f"fota-test-slcan-bus-{tag}", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SlcanDevice:
        """Start answering on the pty and bridging the bus."""
        self._serial_thread.start()
        self._bus_thread.start()
        return self

    def unplug(self) -> None:
        """Pull the cable: close the pty master (the tester's reads and writes fail with EIO)."""
        if self.unplugged.is_set():
            return
        self.unplugged.set()
        self.is_open = False
        with self._write_lock, contextlib.suppress(OSError):
            os.close(self._master)

    def stop(self) -> None:
        """Stop the threads, close the pty and the bus (idempotent)."""
        self._stop.set()
        for thread in (self._serial_thread, self._bus_thread):
            if thread.is_alive():
                thread.join(2.0)
        self.unplug()
        with contextlib.suppress(OSError):
            os.close(self._slave)
        self._bus.shutdown()

    def __enter__(self) -> SlcanDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serial side -----------------------------------------------------------------------

    def _reply(self, data: bytes) -> None:
        if self.mode == "silent" or self.unplugged.is_set():
            return
        if self.mode == "quiet" and data in (OK, BEL, b"z\r", b"Z\r"):
            return  # this firmware acknowledges nothing
        with self._write_lock:
            if self.unplugged.is_set():
                return
            with contextlib.suppress(OSError):
                os.write(self._master, data)

    def _serial_loop(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set() and not self.unplugged.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                chunk = os.read(self._master, 4096)
            except (OSError, ValueError):
                return  # unplugged
            if not chunk:
                continue
            buffer.extend(chunk)
            while b"\r" in buffer:
                line, _, rest = bytes(buffer).partition(b"\r")
                buffer[:] = rest
                self._handle(line.decode("ascii", "replace"))

    def _handle(self, line: str) -> None:
        if self.mode == "silent":
            self.commands.append(line)
            return
        if not line:
            return  # an empty command (python-can writes one for "no FD data rate")
        cmd = line[0]
        if cmd in "tTrRdDbB":
            self._frame_from_tester(line)
            return
        self.commands.append(line)
        if cmd == "V" and self.mode == "quiet":
            self._reply(b"fw-quiet 1.0\r")
        elif cmd == "V":
            self._reply(f"V{self.version}\r".encode())
        elif cmd == "v":
            self._reply(b"vFOTA\r")
        elif cmd == "N" and self.mode != "quiet":
            self._reply(f"N{self.serial_number}\r".encode())
        elif cmd == "S" and line in _BITRATES and not self.is_open:
            self.bitrate_bps = _BITRATES[line]
            self._reply(OK)
        elif cmd == "Y" and line in _DATA_BITRATES and not self.is_open:
            self.data_bitrate_bps = _DATA_BITRATES[line]
            self._reply(OK)
        elif cmd == "s" and len(line) == 5 and not self.is_open:
            self._reply(OK)
        elif cmd in "OL":
            if self.mode == "refuse_open" or self.is_open or self.bitrate_bps is None:
                self._reply(BEL)
            else:
                self.is_open = True
                self.listen_only = cmd == "L"
                self._reply(OK)
        elif cmd == "C":
            self.is_open = False
            self._reply(OK)
        elif cmd == "F":
            self._reply(b"F00\r" if self.is_open else BEL)
        elif cmd == "Z" and len(line) == 2:
            self._reply(OK)
        else:
            self._reply(BEL)

    def _frame_from_tester(self, line: str) -> None:
        if not self.is_open or self.listen_only:
            self._reply(BEL)
            return
        try:
            msg = _decode(line)
        except (ValueError, IndexError):
            self._reply(BEL)
            return
        self._bus.send(msg)
        if self.first_tx_at is None:
            self.first_tx_at = time.monotonic()
        self.tx_frames += 1
        self._reply(b"Z\r" if msg.is_extended_id else b"z\r")
        limit = self.unplug_after_tx_frames
        if limit is not None and self.tx_frames >= limit:
            self.unplug()

    # -- bus side --------------------------------------------------------------------------

    def _bus_loop(self) -> None:
        while not self._stop.is_set():
            msg = self._bus.recv(0.05)
            if msg is None or not self.is_open or self.mode == "silent":
                continue
            if msg.is_error_frame:
                continue  # python-can's slcan driver has no error frames: nor do we
            self.rx_frames += 1
            self._reply(_encode(msg).encode())


def _decode(line: str) -> can.Message:
    """One slcan frame line (without CR) → a python-can message."""
    kind = line[0]
    ext = kind in "TRDB"
    id_len = 8 if ext else 3
    arb = int(line[1 : 1 + id_len], 16)
    dlc_char = line[1 + id_len]
    body = line[2 + id_len :]
    if kind in "rR":
        return can.Message(
            arbitration_id=arb, is_extended_id=ext, is_remote_frame=True, dlc=int(dlc_char)
        )
    if kind in "dDbB":
        length = _FD_LENGTHS[int(dlc_char, 16)]
        data = bytes.fromhex(body[: length * 2])
        if len(data) != length:
            raise ValueError("short FD frame")
        return can.Message(
            arbitration_id=arb,
            is_extended_id=ext,
            is_fd=True,
            bitrate_switch=kind in "bB",
            data=data,
        )
    length = int(dlc_char)
    data = bytes.fromhex(body[: length * 2])
    if len(data) != length:
        raise ValueError("short frame")
    return can.Message(arbitration_id=arb, is_extended_id=ext, data=data)


def _encode(msg: can.Message) -> str:
    """A python-can message → one slcan line (with CR), as the adapter sends it."""
    arb = f"{msg.arbitration_id:08X}" if msg.is_extended_id else f"{msg.arbitration_id:03X}"
    if msg.is_remote_frame:
        return ("R" if msg.is_extended_id else "r") + arb + f"{msg.dlc:d}\r"
    if msg.is_fd:
        kind = ("B" if msg.is_extended_id else "b") if msg.bitrate_switch else "D"
        if not msg.is_extended_id and not msg.bitrate_switch:
            kind = "d"
        dlc = _FD_LENGTHS.index(len(msg.data))
        return kind + arb + f"{dlc:X}" + msg.data.hex().upper() + "\r"
    kind = "T" if msg.is_extended_id else "t"
    return kind + arb + f"{len(msg.data):d}" + msg.data.hex().upper() + "\r"
