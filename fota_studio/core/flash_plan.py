"""Dry-run flash plan: which steps run, bytes/blocks/frames per segment, estimated duration.

`make_plan(ecu, segments, ...)` walks the EA's enabled sequence like the flash job does and
estimates, per image segment, the TransferData blocks (maxNumberOfBlockLength minus the 2-byte
SID+counter header), the ISO-TP frames (first/consecutive/flow-control frames, classic or CAN FD
frame length, addressing byte), the time on the wire from `core/can_timing` (nominal + data
bitrate, worst-case stuffing), the erase time and a per-request turnaround.

The wire time is counted frame by frame, each frame at the length that really goes on the bus:
the tester's frames as our ISO-TP link sends them (classic: padded to 8 with a padding byte, else
as long as needed; CAN FD: the next valid FD length, at least 8 with padding — so the last
consecutive frame is usually short), the ECU's flow controls and single-frame responses as an
ISO 15765-2 ECU sends them (classic: padded to 8 with padding; CAN FD: the next valid length, 3
bytes for a flow control or a TransferData response). The flow-control count depends on the
block size the ECU offers, unknown before the flash: the EA's `block_size` is the best guess
(it is what the tester offers, and what ECUs configured from the same EA offer). Used by
`fota-studio flash --dry-run` and the flash panel's pre-flight summary. Pure; safe from any
thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fota_studio.core.can_timing import fd_payload_length, frame_bits
from fota_studio.core.ea import AddressingMode, Connection, EcuDefinition, StepKind

#: maxNumberOfBlockLength assumed when the ECU's is not known yet (a common bootloader value).
DEFAULT_MAX_BLOCK_CLASSIC = 0x402
DEFAULT_MAX_BLOCK_FD = 0xFFF
#: Erase speed assumed for the estimate (typical NOR flash incl. verify).
DEFAULT_ERASE_MS_PER_KIB = 2.0
#: ECU turnaround per request (P2 is a maximum; bootloaders answer in ~1 ms).
DEFAULT_TURNAROUND_S = 0.001
SEGMENT_STEPS = (
    StepKind.ERASE,
    StepKind.REQUEST_DOWNLOAD,
    StepKind.TRANSFER_DATA,
    StepKind.TRANSFER_EXIT,
)


@dataclass(frozen=True)
class PlanStep:
    """One step as it will run (segment steps appear once per segment)."""

    step: str
    detail: str
    estimated_s: float


@dataclass(frozen=True)
class PlanSegment:
    """One image segment: where, how many bytes, blocks and CAN frames."""

    address: int
    length: int
    blocks: int
    frames: int
    wire_s: float
    erase_s: float


@dataclass
class FlashPlan:
    """The dry-run plan of one flash."""

    ecu: str
    steps: list[PlanStep] = field(default_factory=list)
    segments: list[PlanSegment] = field(default_factory=list)
    bytes_total: int = 0
    frames_total: int = 0
    wire_time_s: float = 0.0
    estimated_s: float = 0.0
    block_payload_bytes: int = 0
    #: The block size the ECU is assumed to offer in its flow controls (EA value by default).
    ecu_block_size: int = 0

    def to_text(self) -> str:
        """A human-readable plan (CLI `--dry-run`)."""
        lines = [f"Flash plan for {self.ecu}:"]
        for i, st in enumerate(self.steps, 1):
            lines.append(f"  {i:2d}. {st.step:<20} {st.detail}")
        lines.append(
            f"  {self.bytes_total} bytes in {len(self.segments)} segment(s), "
            f"{sum(s.blocks for s in self.segments)} blocks of ≤ {self.block_payload_bytes} "
            f"bytes, {self.frames_total} CAN frames"
        )
        lines.append(
            f"  time on the wire ≈ {self.wire_time_s:.2f} s (worst-case bit stuffing, ECU "
            f"flow-control block size {self.ecu_block_size or 'unlimited'} assumed); "
            f"estimated total {self.estimated_s:.1f} s"
        )
        return "\n".join(lines)


def _prefix_bytes(conn: Connection) -> int:
    """Bytes of each frame taken by the extended/mixed address byte."""
    return 1 if conn.addressing in (AddressingMode.EXTENDED, AddressingMode.MIXED) else 0


#: Bytes of a flow control (FS, BS, STmin; ISO 15765-2 §9.6.5) and a TransferData positive
#: response (0x76 + counter) — both single CAN frames.
FLOW_CONTROL_BYTES = 3
TRANSFER_RESPONSE_BYTES = 2


def _tx_data_length(conn: Connection) -> int:
    """The longest frame the link sends (classic 8, CAN FD the EA's frame length)."""
    return conn.fd_frame_length if conn.fd else 8


def tester_frame_bytes(pdu_bytes: int, conn: Connection) -> int:
    """Data bytes on the bus of one tester frame carrying `pdu_bytes` (PCI + data + address).

    Mirrors our ISO-TP link's settings (isotp_link.build_params): classic frames are padded to
    8 when the EA has a padding byte; CAN FD frames to the next valid FD length, at least 8
    with padding.
    """
    if not conn.fd:
        return 8 if conn.padding_byte is not None else pdu_bytes
    length = fd_payload_length(pdu_bytes)
    return max(8, length) if conn.padding_byte is not None else length


def ecu_frame_bytes(pdu_bytes: int, conn: Connection) -> int:
    """Data bytes on the bus of one ECU frame carrying `pdu_bytes` (ISO 15765-2 §10.4.2).

    Classic: padded to 8 with padding, else as long as needed; CAN FD: the next valid FD length
    (a flow control is 3 bytes, not 8).
    """
    if not conn.fd:
        return 8 if conn.padding_byte is not None else pdu_bytes
    return fd_payload_length(pdu_bytes)


def message_frame_bytes(length: int, conn: Connection) -> list[int]:
    """Data bytes of each frame the sender puts on the bus for one `length`-byte message."""
    frame_len = _tx_data_length(conn)
    pre = _prefix_bytes(conn)
    short_pci = length + pre <= 7
    if length <= frame_len - (1 if short_pci else 2) - pre:
        return [pre + (1 if short_pci else 2) + length]  # single frame
    ff_pci = 2 if length <= 4095 else 6
    frames = [frame_len]  # the first frame is always full
    left = length - (frame_len - ff_pci - pre)
    cf_data = frame_len - 1 - pre
    while left > 0:
        chunk = min(left, cf_data)
        frames.append(pre + 1 + chunk)
        left -= chunk
    return frames


def isotp_frames(
    length: int, conn: Connection, *, block_size: int | None = None
) -> tuple[int, int]:
    """(frames from the sender, flow-control frames from the receiver) for one message.

    `block_size`: the block size the receiver offers in its flow control (None: the EA's
    `block_size`, the best guess before the flash; 0 = no further flow control).
    """
    frames = len(message_frame_bytes(length, conn))
    if frames == 1:
        return 1, 0
    cfs = frames - 1
    bs = conn.block_size if block_size is None else block_size
    fcs = 1 + ((cfs - 1) // bs if bs > 0 else 0)
    return frames, fcs


def frame_wire_s(data_bytes: int, conn: Connection) -> float:
    """Seconds one frame with `data_bytes` of data occupies the bus (can_timing's model)."""
    nominal, data = frame_bits(data_bytes, extended_id=conn.id_bits == 29, fd=conn.fd)
    if conn.fd:
        # Our links and ISO 15765-2 CAN FD ECUs send with bit rate switch.
        return nominal / conn.bitrate_bps + data / conn.data_bitrate_bps
    return (nominal + data) / conn.bitrate_bps


def message_wire_s(
    length: int, conn: Connection, *, block_size: int | None = None
) -> tuple[int, float]:
    """(frames both ways, seconds on the wire) for one tester request message + the ECU's
    flow controls (without the response; see `response_wire_s`)."""
    sizes = message_frame_bytes(length, conn)
    _, fcs = isotp_frames(length, conn, block_size=block_size)
    seconds = sum(frame_wire_s(tester_frame_bytes(n, conn), conn) for n in sizes)
    fc_bytes = ecu_frame_bytes(_prefix_bytes(conn) + FLOW_CONTROL_BYTES, conn)
    return len(sizes) + fcs, seconds + fcs * frame_wire_s(fc_bytes, conn)


def response_wire_s(length: int, conn: Connection) -> tuple[int, float]:
    """(frames both ways, seconds on the wire) of an ECU response of `length` bytes (+ the
    tester's flow controls when it needs more than one frame)."""
    sizes = message_frame_bytes(length, conn)
    seconds = sum(frame_wire_s(ecu_frame_bytes(n, conn), conn) for n in sizes)
    _, fcs = isotp_frames(length, conn)  # the tester offers the EA's block size
    fc_bytes = tester_frame_bytes(_prefix_bytes(conn) + FLOW_CONTROL_BYTES, conn)
    return len(sizes) + fcs, seconds + fcs * frame_wire_s(fc_bytes, conn)


def _param_text(key: str, value: object) -> str:
    """Identifiers (DIDs, routine IDs) read in hex, as in the EA file and the standard."""
    if isinstance(value, int) and not isinstance(value, bool) and key in ("did", "routine_id"):
        return f"0x{value:04X}"
    return str(value)


def make_plan(
    ecu: EcuDefinition,
    segments: list[tuple[int, int]],
    *,
    max_block_length: int | None = None,
    erase_ms_per_kib: float = DEFAULT_ERASE_MS_PER_KIB,
    turnaround_s: float = DEFAULT_TURNAROUND_S,
    ecu_block_size: int | None = None,
) -> FlashPlan:
    """Plan flashing `segments` [(address, length), ...] into `ecu`.

    `max_block_length` / `ecu_block_size`: what the ECU will offer in its RequestDownload
    response / flow controls, when known (None: a common bootloader value / the EA's
    block_size — both are only known during the flash).
    """
    conn = ecu.connection
    prof = ecu.uds
    mbl = max_block_length or (DEFAULT_MAX_BLOCK_FD if conn.fd else DEFAULT_MAX_BLOCK_CLASSIC)
    payload = (mbl if conn.fd else min(mbl, 4095)) - 2
    plan = FlashPlan(
        ecu=ecu.name,
        block_payload_bytes=payload,
        ecu_block_size=conn.block_size if ecu_block_size is None else ecu_block_size,
    )
    # A typical request/response (session, routine, DID) fits one single frame each way.
    _, small_req_s = message_wire_s(6, conn)
    _, small_resp_s = response_wire_s(6, conn)
    request_s = small_req_s + small_resp_s + turnaround_s
    ack_frames, ack_s = response_wire_s(TRANSFER_RESPONSE_BYTES, conn)
    kinds = [s.kind for s in prof.sequence if s.enabled]
    plan.steps.append(
        PlanStep(
            "preconditions",
            f"{len(prof.preconditions)} DID check(s)",
            request_s * (1 + len(prof.preconditions)),
        )
    )
    if conn.bootloader_entry is not None:
        plan.steps.append(
            PlanStep(
                "bootloader_entry",
                f"frame 0x{conn.bootloader_entry.can_id:X}, wait "
                f"{conn.bootloader_entry_delay_ms} ms",
                conn.bootloader_entry_delay_ms / 1000.0,
            )
        )
    seg_done = False
    for step in prof.sequence:
        if not step.enabled:
            continue
        if step.kind in SEGMENT_STEPS:
            if seg_done:
                continue
            seg_done = True
            for address, length in segments:
                blocks = -(-length // payload) if length else 0
                frames = 0
                wire = 0.0
                full, rest = divmod(length, payload)
                for size, count in ((payload, full), (rest, 1 if rest else 0)):
                    f, s = message_wire_s(size + 2, conn, block_size=ecu_block_size)
                    frames += (f + ack_frames) * count
                    wire += (s + ack_s) * count
                erase_s = (
                    length / 1024 * erase_ms_per_kib / 1000.0 if StepKind.ERASE in kinds else 0.0
                )
                seg = PlanSegment(address, length, blocks, frames, wire, erase_s)
                plan.segments.append(seg)
                where = f"0x{address:08X} +0x{length:X}"
                if StepKind.ERASE in kinds:
                    plan.steps.append(PlanStep("erase", where, erase_s + request_s))
                if StepKind.REQUEST_DOWNLOAD in kinds:
                    plan.steps.append(PlanStep("request_download", where, request_s))
                if StepKind.TRANSFER_DATA in kinds:
                    plan.steps.append(
                        PlanStep(
                            "transfer_data",
                            f"{where}: {blocks} blocks, {frames} frames",
                            wire + blocks * turnaround_s,
                        )
                    )
                if StepKind.TRANSFER_EXIT in kinds:
                    plan.steps.append(PlanStep("transfer_exit", where, request_s))
                plan.bytes_total += length
                plan.frames_total += frames
                plan.wire_time_s += wire
            continue
        detail = ", ".join(f"{k}={_param_text(k, v)}" for k, v in step.params.items())
        est = request_s
        if step.kind == StepKind.READ_VERSION:
            est += float(step.param("boot_wait_s")) / 2
        if step.kind in (StepKind.SECURITY_LEVEL_1, StepKind.SECURITY_LEVEL_2):
            est *= 2
        plan.steps.append(PlanStep(step.kind.value, detail, est))
    plan.estimated_s = sum(s.estimated_s for s in plan.steps)
    return plan
