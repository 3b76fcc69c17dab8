"""Time a CAN / CAN FD frame needs on the wire, for the bus timing model and bus-load figures.

`wire_time_s` counts the bits of a data frame (ISO 11898-1) at the nominal bitrate and, for
CAN FD frames with bit rate switch, the data phase at the data bitrate, plus the 3-bit
interframe space. Stuff bits are the WORST-CASE estimate (Tindell/Davis: one stuff bit per 4
stuffable bits after the first, `(n - 1) // 4`), so a figure is an upper bound that a real bus
with random payloads undercuts by up to ~10 %. Works on any object with the attributes of a
python-can `Message` (duck-typed: core must not import python-can). Pure; safe from any thread.
"""

from __future__ import annotations

from typing import Protocol

#: Valid CAN FD payload lengths (ISO 11898-1 DLC 9..15 map to 12..64 bytes). The one table in
#: core (core may not import python-can); below core, python-can's `can.util.dlc2len`/`len2dlc`.
FD_LENGTHS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)
#: The CAN FD frame lengths an ISO-TP sender may pad to (TX_DL, ISO 15765-2): 8..64.
FD_FRAME_LENGTHS = tuple(n for n in FD_LENGTHS if n >= 8)
INTERFRAME_BITS = 3


class FrameLike(Protocol):
    """The attributes of a python-can Message that the frame length depends on."""

    is_extended_id: bool
    is_fd: bool
    bitrate_switch: bool
    is_remote_frame: bool
    dlc: int
    data: bytearray


def fd_payload_length(length: int) -> int:
    """Round a payload length up to the next valid CAN FD length (a frame is padded to it)."""
    for valid in FD_LENGTHS:
        if valid >= length:
            return valid
    raise ValueError(f"CAN FD payload of {length} bytes exceeds 64 bytes")


def _stuff_bits(stuffable: int) -> int:
    """Worst-case number of dynamic stuff bits over `stuffable` bits."""
    return max(0, (stuffable - 1) // 4)


def frame_bits(
    length: int, *, extended_id: bool, fd: bool = False, remote: bool = False
) -> tuple[int, int]:
    """Return (arbitration-phase bits, data-phase bits) of one frame incl. stuffing and IFS.

    For a classic frame every bit is in the first number. For CAN FD the second number is the
    part sent at the data bitrate when the bit rate switch is on (ESI .. CRC delimiter).
    """
    if not fd:
        n = 0 if remote else min(length, 8)
        # SOF + ID(11) + RTR + IDE + r0 + DLC(4) + data + CRC(15) -> stuffable
        stuffable = 1 + 11 + 1 + 1 + 1 + 4 + 8 * n + 15
        if extended_id:
            stuffable += 18 + 2  # ID extension + SRR + r1
        fixed = 1 + 2 + 7 + INTERFRAME_BITS  # CRC delimiter, ACK slot+delimiter, EOF, IFS
        return stuffable + _stuff_bits(stuffable) + fixed, 0
    n = fd_payload_length(length)
    # Arbitration phase: SOF + ID(11) + RRS + IDE + FDF + res + BRS (+ ID ext 18 + SRR).
    arb = 1 + 11 + 1 + 1 + 1 + 1 + 1 + (19 if extended_id else 0)
    # Data phase: ESI + DLC(4) + data, then stuff count(4) + CRC(17/21) + fixed stuff bits.
    data = 1 + 4 + 8 * n
    crc = 17 if n <= 16 else 21
    dynamic = _stuff_bits(arb + data)
    arb_stuff = dynamic * arb // (arb + data)
    data_stuff = dynamic - arb_stuff
    crc_field = 4 + crc + (crc + 4) // 4  # fixed stuff bit every 4 bits of SBC + CRC
    data_bits = data + data_stuff + crc_field + 1  # + CRC delimiter
    tail = 2 + 7 + INTERFRAME_BITS  # ACK slot + delimiter, EOF, IFS at the nominal rate
    return arb + arb_stuff + tail, data_bits


def wire_time_s(msg: FrameLike, bitrate_bps: int, data_bitrate_bps: int | None = None) -> float:
    """Seconds `msg` occupies the bus (worst-case stuffing, incl. the 3-bit interframe space)."""
    if bitrate_bps <= 0:
        raise ValueError(f"bitrate must be positive, got {bitrate_bps}")
    length = len(msg.data) if msg.data is not None else msg.dlc
    if msg.is_remote_frame:
        length = 0
    nominal, data = frame_bits(
        length, extended_id=msg.is_extended_id, fd=msg.is_fd, remote=msg.is_remote_frame
    )
    if msg.is_fd and msg.bitrate_switch and data_bitrate_bps:
        return nominal / bitrate_bps + data / data_bitrate_bps
    return (nominal + data) / bitrate_bps
