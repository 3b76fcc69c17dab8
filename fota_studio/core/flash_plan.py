"""Dry-run flash plan: which steps run, bytes/blocks/frames per segment, estimated duration.

`make_plan(ecu, segments, ...)` walks the EA's enabled sequence like the flash job does and
estimates, per image segment, the TransferData blocks (maxNumberOfBlockLength minus the 2-byte
SID+counter header), the ISO-TP frames (first/consecutive/flow-control frames, classic or CAN FD
frame length, addressing byte), the time on the wire from `core/can_timing` (nominal + data
bitrate, worst-case stuffing), and what the ECU adds, from the EA's timing facts
(`UdsProfile.timing`): erase ms per KiB / per sector over the ranges the erase policy covers,
programming ms per KiB, the ECU's block length, STmin and BS, the documented reset time and the
bootloader entry delay. When the workspace holds earlier successful flashes of the same ECU
model, their measured step times (`MeasuredFlash`, passed in by the caller) replace the EA-based
figure step by step (transfer and erase scaled per byte).

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

from collections.abc import Sequence
from dataclasses import dataclass, field

from fota_studio.core.can_timing import fd_payload_length, frame_bits
from fota_studio.core.ea import AddressingMode, Connection, EcuDefinition, StepKind

#: maxNumberOfBlockLength assumed when the ECU's is not known yet (a common bootloader value).
DEFAULT_MAX_BLOCK_CLASSIC = 0x402
DEFAULT_MAX_BLOCK_FD = 0xFFF
#: Erase speed assumed when the EA gives no erase time (typical NOR flash incl. verify).
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
    #: Erase requests the flash will send and the bytes they cover (by the erase policy).
    erase_count: int = 0
    erase_bytes: int = 0
    #: Earlier flashes of the same ECU model whose measured step times the estimate uses.
    measured_flashes: int = 0
    #: TransferData payload bytes on the wire (compressed size with `uds.compression`).
    bytes_on_wire: int = 0
    #: "zlib (method 0x1)" when the download is compressed, "" otherwise.
    compression: str = ""

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
        if self.compression:
            share = self.bytes_on_wire / self.bytes_total if self.bytes_total else 0.0
            lines.append(
                f"  compressed with {self.compression}: {self.bytes_on_wire} bytes on the wire "
                f"({share:.0%} of the image)"
            )
        if self.erase_count:
            lines.append(
                f"  {self.erase_count} erase(s) covering {self.erase_bytes} bytes "
                "(by the EA's erase policy)"
            )
        basis = (
            f"measured step times of {self.measured_flashes} earlier flash(es) of this ECU model"
            if self.measured_flashes
            else "the EA's timing facts (no earlier flash of this ECU model in the workspace)"
        )
        lines.append(
            f"  time on the wire ≈ {self.wire_time_s:.2f} s (worst-case bit stuffing, ECU "
            f"flow-control block size {self.ecu_block_size or 'unlimited'} assumed); "
            f"estimated total {self.estimated_s:.1f} s from {basis}"
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


@dataclass(frozen=True)
class MeasuredFlash:
    """What one earlier successful flash of the same ECU model took, step by step.

    `step_s`: step name -> (total seconds, occurrences) as the record's steps say (erase and
    the per-segment steps occur several times); `bytes_total`: bytes transferred;
    `erase_bytes`: bytes the erases covered (0 = unknown). Built by the caller from the
    workspace (engine/estimates.py), so this module stays pure.
    """

    bytes_total: int
    step_s: dict[str, tuple[float, int]]
    erase_bytes: int = 0


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class _Measured:
    """Medians over the measured flashes: per-occurrence step times and per-byte rates."""

    def __init__(self, flashes: Sequence[MeasuredFlash]) -> None:
        self.flashes = list(flashes)

    def per_step(self, step: str) -> float | None:
        """Median seconds of one occurrence of `step`, None when never measured."""
        vals = [f.step_s[step][0] / f.step_s[step][1] for f in self.flashes if step in f.step_s]
        return _median(vals) if vals else None

    def rate(self, step: str, per: str) -> float | None:
        """Median seconds per byte of `step` (per = "bytes_total" or "erase_bytes")."""
        vals = [
            f.step_s[step][0] / getattr(f, per)
            for f in self.flashes
            if step in f.step_s and getattr(f, per) > 0
        ]
        return _median(vals) if vals else None


def _region_sector(ecu: EcuDefinition, address: int) -> int:
    """The erase sector size of the memory region holding `address` (0 = unknown)."""
    for r in ecu.uds.memory_regions:
        if r.start <= address < r.end:
            return r.erase_sector_bytes
    return 0


def erase_seconds(ecu: EcuDefinition, start: int, length: int, ms_per_kib: float) -> float:
    """Seconds the ECU needs to erase `length` bytes at `start` (EA timing facts).

    `ms_per_kib` per KiB plus `timing.erase_ms_per_sector` per sector of the owning region.
    """
    sector = _region_sector(ecu, start)
    sectors = -(-length // sector) if sector > 0 else 0
    return (length / 1024 * ms_per_kib + sectors * ecu.uds.timing.erase_ms_per_sector) / 1000.0


def make_plan(
    ecu: EcuDefinition,
    segments: list[tuple[int, int]],
    *,
    max_block_length: int | None = None,
    erase_ms_per_kib: float | None = None,
    turnaround_s: float = DEFAULT_TURNAROUND_S,
    ecu_block_size: int | None = None,
    erase_ranges: Sequence[Sequence[tuple[int, int]]] | None = None,
    measured: Sequence[MeasuredFlash] = (),
    wire_lengths: Sequence[int] | None = None,
) -> FlashPlan:
    """Plan flashing `segments` [(address, length), ...] into `ecu`.

    The estimate uses the EA's timing facts (`uds.timing`: erase ms per KiB / per sector,
    programming ms per KiB, the ECU's block length, STmin and BS, the reset time) and the
    bootloader entry delay, plus the time on the wire. `max_block_length` / `ecu_block_size`
    override the ECU's block length / flow-control block size (None: `uds.timing`, else a common
    bootloader value / the EA's block_size). `erase_ranges`: per segment, the (start, length)
    erases the flash job will run (engine.flash_job.plan_erases, by the EA's erase policy);
    None = one erase of each segment's own bytes. `measured`: earlier successful flashes of the
    same ECU model; where they measured a step, its time (scaled per byte for the transfer and
    the erase) replaces the EA-based estimate. `wire_lengths`: per segment, the bytes the
    TransferData stream holds (the compressed size, `core.compression`, when the EA names a
    `uds.compression`); None = the segment's own length. Blocks, frames and wire time follow
    the stream; the ECU's programming time follows the uncompressed bytes.
    """
    conn = ecu.connection
    prof = ecu.uds
    timing = prof.timing
    mbl = (
        max_block_length
        or timing.ecu_max_block_length
        or (DEFAULT_MAX_BLOCK_FD if conn.fd else DEFAULT_MAX_BLOCK_CLASSIC)
    )
    payload = (mbl if conn.fd else min(mbl, 4095)) - 2
    bs = ecu_block_size if ecu_block_size is not None else timing.ecu_block_size
    if erase_ms_per_kib is None:
        has_fact = timing.erase_ms_per_kib > 0 or timing.erase_ms_per_sector > 0
        erase_ms_per_kib = timing.erase_ms_per_kib if has_fact else DEFAULT_ERASE_MS_PER_KIB
    stmin_s = (timing.ecu_stmin_ms or 0) / 1000.0
    known = _Measured(measured)
    plan = FlashPlan(
        ecu=ecu.name,
        block_payload_bytes=payload,
        ecu_block_size=conn.block_size if bs is None else bs,
        measured_flashes=len(measured),
    )
    # A typical request/response (session, routine, DID) fits one single frame each way.
    _, small_req_s = message_wire_s(6, conn)
    _, small_resp_s = response_wire_s(6, conn)
    request_s = small_req_s + small_resp_s + turnaround_s
    ack_frames, ack_s = response_wire_s(TRANSFER_RESPONSE_BYTES, conn)

    def add(step: str, detail: str, estimate_s: float) -> None:
        seen = known.per_step(step)
        plan.steps.append(PlanStep(step, detail, estimate_s if seen is None else seen))

    def block_s(size: int, expands: float = 1.0) -> tuple[int, float, float]:
        """(frames, wire seconds, total seconds) of one TransferData block of `size` data
        bytes (decoding to `expands` times as many) and its answer: wire time, STmin pacing,
        the ECU's programming time."""
        f, wire = message_wire_s(size + 2, conn, block_size=bs)
        frames, fcs = isotp_frames(size + 2, conn, block_size=bs)
        # STmin (ISO 15765-2 §9.6.5.4): the gap from the end of one consecutive frame to the
        # start of the next — not before the first one after a flow control. Each flow
        # control and the answer cost the ECU a turnaround; the answer also its programming.
        gaps = max(0, frames - 1 - fcs)
        pace = gaps * stmin_s
        programming = size * expands / 1024 * timing.programming_ms_per_kib / 1000.0
        wire += ack_s
        return f + ack_frames, wire, wire + pace + programming + (fcs + 1) * turnaround_s

    kinds = [s.kind for s in prof.sequence if s.enabled]
    checks = len(prof.preconditions) + len(prof.routine_preconditions)
    add(
        "preconditions",
        f"{len(prof.preconditions)} DID check(s), {len(prof.routine_preconditions)} routine(s)",
        request_s * (1 + checks),
    )
    if conn.bootloader_entry is not None:
        silent_ms = conn.bootloader_entry_delay_ms
        add(
            "bootloader_entry",
            f"frame 0x{conn.bootloader_entry.can_id:X}, silent {silent_ms} ms",
            silent_ms / 1000.0,
        )
        add("bootloader_ready", "probe until the bootloader answers", request_s)
    add("clean_start", "start from the default session", request_s)
    seg_done = False
    transfer_rate = known.rate(StepKind.TRANSFER_DATA.value, "bytes_total")
    erase_rate = known.rate(StepKind.ERASE.value, "erase_bytes")
    for step in prof.sequence:
        if not step.enabled:
            continue
        if step.kind in SEGMENT_STEPS:
            if seg_done:
                continue
            seg_done = True
            if prof.compression is not None and wire_lengths is not None:
                plan.compression = (
                    f"{prof.compression.codec} (method 0x{prof.compression.method_id:X})"
                )
            for index, (address, length) in enumerate(segments):
                on_wire = length
                if wire_lengths is not None and prof.compression is not None:
                    on_wire = wire_lengths[index]
                expands = length / on_wire if on_wire else 1.0
                blocks = -(-on_wire // payload) if on_wire else 0
                full, rest = divmod(on_wire, payload)
                frames = 0
                wire = 0.0
                data_s = 0.0
                for size, count in ((payload, full), (rest, 1 if rest else 0)):
                    if not count:
                        continue
                    f, w, sec = block_s(size, expands)
                    frames += f * count
                    wire += w * count
                    data_s += sec * count
                where = f"0x{address:08X} +0x{length:X}"
                erase_s = 0.0
                if StepKind.ERASE in kinds:
                    ranges = (
                        list(erase_ranges[index])
                        if erase_ranges is not None
                        else [(address, length)]
                    )
                    for e_start, e_len in ranges:
                        e_s = request_s + erase_seconds(ecu, e_start, e_len, erase_ms_per_kib)
                        if erase_rate is not None:
                            e_s = erase_rate * e_len
                        erase_s += e_s
                        plan.steps.append(PlanStep("erase", f"0x{e_start:08X} +0x{e_len:X}", e_s))
                        plan.erase_count += 1
                        plan.erase_bytes += e_len
                plan.segments.append(PlanSegment(address, length, blocks, frames, wire, erase_s))
                if StepKind.REQUEST_DOWNLOAD in kinds:
                    add("request_download", where, request_s)
                if StepKind.TRANSFER_DATA in kinds:
                    est = data_s if transfer_rate is None else transfer_rate * length
                    plan.steps.append(
                        PlanStep("transfer_data", f"{where}: {blocks} blocks, {frames} frames", est)
                    )
                if StepKind.TRANSFER_EXIT in kinds:
                    add("transfer_exit", where, request_s)
                plan.bytes_total += length
                plan.bytes_on_wire += on_wire
                plan.frames_total += frames
                plan.wire_time_s += wire
            continue
        detail = ", ".join(f"{k}={_param_text(k, v)}" for k, v in step.params.items())
        est = request_s
        if step.kind in (StepKind.SECURITY_LEVEL_1, StepKind.SECURITY_LEVEL_2):
            est *= 2
        add(step.kind.value, detail, est)
        if step.kind == StepKind.RESET:
            add(
                "application_start",
                f"silent {timing.reset_time_ms} ms (timing.reset_time_ms), then probe",
                timing.reset_time_ms / 1000.0 + request_s,
            )
    plan.estimated_s = sum(s.estimated_s for s in plan.steps)
    return plan
