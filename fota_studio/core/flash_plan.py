"""Dry-run flash plan: which steps run, bytes/blocks/frames per segment, estimated duration.

`make_plan(ecu, segments, ...)` walks the EA's enabled sequence like the flash job does and
estimates, per image segment, the TransferData blocks (maxNumberOfBlockLength minus the 2-byte
SID+counter header), the ISO-TP frames (first/consecutive/flow-control frames, classic or CAN FD
frame length, addressing byte), the time on the wire from `core/can_timing` (nominal + data
bitrate, worst-case stuffing), the erase time and a per-request turnaround. Used by
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
            f"  time on the wire ≥ {self.wire_time_s:.2f} s; estimated total "
            f"{self.estimated_s:.1f} s"
        )
        return "\n".join(lines)


def _prefix_bytes(conn: Connection) -> int:
    """Bytes of each frame taken by the extended/mixed address byte."""
    return 1 if conn.addressing in (AddressingMode.EXTENDED, AddressingMode.MIXED) else 0


def isotp_frames(length: int, conn: Connection) -> tuple[int, int]:
    """(frames from the sender, flow-control frames from the receiver) for one message."""
    frame_len = conn.fd_frame_length if conn.fd else 8
    pre = _prefix_bytes(conn)
    sf_max = (7 if frame_len == 8 else frame_len - 2) - pre
    if length <= sf_max:
        return 1, 0
    ff_data = frame_len - (2 if length <= 4095 else 6) - pre
    cf_data = frame_len - 1 - pre
    cfs = -(-(length - ff_data) // cf_data)
    bs = conn.block_size
    fcs = 1 + ((cfs - 1) // bs if bs > 0 else 0)
    return 1 + cfs, fcs


def _frame_s(payload: int, conn: Connection) -> float:
    ext = conn.id_bits == 29
    length = fd_payload_length(payload) if conn.fd else 8
    nominal, data = frame_bits(length, extended_id=ext, fd=conn.fd)
    if conn.fd:
        return nominal / conn.bitrate_bps + data / conn.data_bitrate_bps
    return (nominal + data) / conn.bitrate_bps


def message_wire_s(length: int, conn: Connection) -> tuple[int, float]:
    """(frames both ways, seconds on the wire) for one request message + its flow control."""
    frames, fcs = isotp_frames(length, conn)
    frame_len = conn.fd_frame_length if conn.fd else 8
    full = _frame_s(frame_len, conn)
    # Padding fills every frame to the full length (classic) or the configured FD length.
    return frames + fcs, frames * full + fcs * _frame_s(8, conn)


def make_plan(
    ecu: EcuDefinition,
    segments: list[tuple[int, int]],
    *,
    max_block_length: int | None = None,
    erase_ms_per_kib: float = DEFAULT_ERASE_MS_PER_KIB,
    turnaround_s: float = DEFAULT_TURNAROUND_S,
) -> FlashPlan:
    """Plan flashing `segments` [(address, length), ...] into `ecu`."""
    conn = ecu.connection
    prof = ecu.uds
    mbl = max_block_length or (DEFAULT_MAX_BLOCK_FD if conn.fd else DEFAULT_MAX_BLOCK_CLASSIC)
    payload = (mbl if conn.fd else min(mbl, 4095)) - 2
    plan = FlashPlan(ecu=ecu.name, block_payload_bytes=payload)
    small_frames, small_s = message_wire_s(8, conn)
    request_s = small_s * 2 + turnaround_s  # request + response single frames
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
                    f, s = message_wire_s(size + 2, conn)
                    frames += (f + small_frames) * count
                    wire += (s + small_s) * count
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
        detail = ", ".join(f"{k}={v}" for k, v in step.params.items())
        est = request_s
        if step.kind == StepKind.READ_VERSION:
            est += float(step.param("boot_wait_s")) / 2
        if step.kind in (StepKind.SECURITY_LEVEL_1, StepKind.SECURITY_LEVEL_2):
            est *= 2
        plan.steps.append(PlanStep(step.kind.value, detail, est))
    plan.estimated_s = sum(s.estimated_s for s in plan.steps)
    return plan
