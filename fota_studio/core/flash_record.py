"""The flash record: a traceable account of one flash job (who, what, when, every step).

A `FlashRecord` holds the job's identity (machine, ECU, version, image hashes), every step with
its outcome and NRC, every UDS request/response with timestamps and 0x78 counts (TransferData
payloads are cut to their first bytes + length), byte counts, timing and the result. A run of
plain TransferData blocks (positive answer at once, nothing skipped) is one `ExchangeRecord`
with `blocks` > 1: the record says what happened, the job's bus log holds every frame (issue 21:
one entry per block made the record ~0.3 MiB per MiB flashed). It round
trips through JSON (`to_json` / `from_json`) so the workspace, the CLI (`--json`) and the UI
share one format. Each step (and each TransferData block) also names its range of frames in the
job's bus log (`StepRecord.frame_first/frame_last/block_frames`), so a step opens its frames in
the trace and a frame finds its step (`step_at_frame`). Pure data; built by the job's worker
thread, read from any thread after.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

RECORD_FORMAT_VERSION = 1

RESULT_SUCCESS = "success"
RESULT_FAILED = "failed"
RESULT_CANCELLED = "cancelled"

#: FlashRecord.verification after a completed flash: the version read equals the expected one
#: (VERIFIED), or the version was not read / nothing was expected (NOT_VERIFIED). "" = failed.
VERIFICATION_VERIFIED = "verified"
VERIFICATION_NOT_VERIFIED = "not_verified"


@dataclass
class ExchangeRecord:
    """One UDS request and its response (or none) as the tester saw it."""

    step: str
    request_hex: str
    request_len: int
    response_hex: str | None
    t_request: float  # UNIX time, seconds
    t_response: float | None
    pending_count: int = 0
    nrc: int | None = None
    nrc_name: str = ""
    #: How many consecutive plain exchanges of this step this record stands for (TransferData
    #: blocks answered at once): request_hex/response_hex are the first block's, request_len
    #: is the total, t_request the first request and t_response the last response.
    blocks: int = 1

    @property
    def duration_s(self) -> float | None:
        """Response time in seconds (None when no response); of all `blocks` when summarised."""
        return None if self.t_response is None else self.t_response - self.t_request


@dataclass
class StepRecord:
    """One step of the sequence with its outcome."""

    step: str
    started_at: float
    finished_at: float | None = None
    ok: bool | None = None
    detail: str = ""
    nrc: int | None = None
    nrc_name: str = ""
    #: Frames of the job's bus log this step spans (0-based indexes into the BLF, inclusive;
    #: None without a bus log or when the step sent and received nothing).
    frame_first: int | None = None
    frame_last: int | None = None
    #: TransferData: the bus-log index of each block's first frame (block k spans
    #: block_frames[k] .. block_frames[k+1]-1, the last one up to frame_last).
    block_frames: list[int] = field(default_factory=list)

    def block_range(self, block: int) -> tuple[int, int] | None:
        """(first, last) bus-log frame of TransferData block `block` (0-based) of this step."""
        if not 0 <= block < len(self.block_frames) or self.frame_last is None:
            return None
        last = self.block_frames[block + 1] - 1 if block + 1 < len(self.block_frames) else None
        return self.block_frames[block], self.frame_last if last is None else last


def step_at_frame(steps: list[StepRecord], frame: int) -> tuple[int, int | None] | None:
    """(step index, TransferData block index or None) of the step whose frames hold bus-log
    frame `frame`; None when the frame lies between steps (e.g. a TesterPresent)."""
    import bisect

    for index, st in enumerate(steps):
        if st.frame_first is None or st.frame_last is None:
            continue
        if st.frame_first <= frame <= st.frame_last:
            if st.block_frames and frame >= st.block_frames[0]:
                return index, bisect.bisect_right(st.block_frames, frame) - 1
            return index, None
    return None


@dataclass
class SegmentRecord:
    """One image segment as flashed."""

    address: int
    length: int
    blocks: int = 0
    max_block_length: int = 0
    #: Bytes of the TransferData stream (compressed size; = length when sent as is).
    wire_length: int = 0


@dataclass
class FlashRecord:
    """Everything about one flash job; `result` is success, failed or cancelled."""

    ecu: str
    machine: str = ""
    version: str = ""
    expected_version: str = ""
    image_sha256: str = ""
    image_crc32: int = 0
    bytes_total: int = 0
    bytes_sent: int = 0
    started_at: float = 0.0
    finished_at: float | None = None
    result: str = RESULT_FAILED
    error: str = ""
    failed_step: str = ""
    nrc: int | None = None
    nrc_name: str = ""
    tester: str = ""
    interface: str = ""
    channel: str = ""
    block_retries: int = 0
    pending_responses: int = 0
    version_before: str = ""
    version_after: str = ""
    #: VERIFICATION_VERIFIED, VERIFICATION_NOT_VERIFIED or "" (failed/cancelled).
    verification: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    exchanges: list[ExchangeRecord] = field(default_factory=list)
    segments: list[SegmentRecord] = field(default_factory=list)
    buslog_frames: int = 0
    buslog_sha256: str | None = None
    #: The stored image file the bus log's elided TransferData payload comes from:
    #: {"file_sha256", "format", "base_address", "image_sha256"}; None when nothing is elided.
    buslog_image: dict[str, Any] | None = None
    #: Runs of TransferData payload kept by reference, not in the bus log: [frame, can_id,
    #: extended, prefix, address, length, crc32] (`protocols/buslog_elision.py`). Every
    #: reader of the log goes through `infra/buslog_store.restore_buslog`.
    buslog_elided: list[list[int]] = field(default_factory=list)
    #: "method 0xN codec" of a compressed download, "" when the data went as is.
    compression: str = ""
    #: TransferData payload bytes actually sent (compressed, only the changed sectors).
    bytes_on_wire: int = 0
    #: Image bytes not sent because the ECU already held them (sector checksums): delta + resume.
    bytes_skipped: int = 0
    #: Sectors (of `UdsProfile.sector_checksum`) found correct in the ECU and not rewritten.
    sectors_skipped: int = 0
    #: Sectors compared with the ECU's sector checksums (0: no sector-checksum routine used).
    sectors_compared: int = 0
    #: Times the link was lost mid-transfer and the transfer resumed in the session (the same
    #: block counter repeated until the ECU answered, within S3).
    link_outages: int = 0
    format_version: int = RECORD_FORMAT_VERSION

    @property
    def duration_s(self) -> float | None:
        """Job duration in seconds (None while running)."""
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def succeeded(self) -> bool:
        """True when the sequence completed (see `verified` for the version check)."""
        return self.result == RESULT_SUCCESS

    @property
    def verified(self) -> bool:
        """True only when the flash completed AND the version read equals the expected one."""
        return self.succeeded and self.verification == VERIFICATION_VERIFIED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def to_json(self, *, indent: int | None = None) -> str:
        """Serialise to JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlashRecord:
        """Rebuild a record from `to_dict` output (unknown keys are ignored)."""
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["steps"] = [StepRecord(**s) for s in data.get("steps", [])]
        kwargs["exchanges"] = [ExchangeRecord(**e) for e in data.get("exchanges", [])]
        kwargs["segments"] = [SegmentRecord(**s) for s in data.get("segments", [])]
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> FlashRecord:
        """Parse JSON text produced by `to_json`."""
        return cls.from_dict(json.loads(text))


#: States of one ECU in a machine-level flash (MachineFlashRecord.states).
PLAN_VERIFIED = "verified"
PLAN_NOT_VERIFIED = "not_verified"
PLAN_FAILED = "failed"
PLAN_CANCELLED = "cancelled"
PLAN_SKIPPED = "skipped"
#: How the error of a plan's ECU that was never flashed (skipped) begins; the reason follows.
NOT_FLASHED = "not flashed: "


def was_skipped(record: FlashRecord) -> bool:
    """True for the record of a plan's ECU that was skipped: nothing was sent to it."""
    return record.error.startswith(NOT_FLASHED) and not record.exchanges


@dataclass
class MachineFlashRecord:
    """One machine-level flash of several ECUs: each ECU's own record, and what was not run.

    `order`: the ECUs in the plan's order; `states`: ECU -> one of the PLAN_* states;
    `skipped`: ECU -> why it was not flashed (an ECU it must follow failed, the plan stopped);
    `ecus`: the FlashRecord of every ECU that ran (failed ones included).
    """

    machine: str
    order: list[str] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float | None = None
    states: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    ecus: list[FlashRecord] = field(default_factory=list)
    #: Bus channel -> the ECUs flashed on it (ECUs sharing one run interleaved).
    channels: dict[str, list[str]] = field(default_factory=dict)
    stop_on_failure: bool = False

    @property
    def succeeded(self) -> bool:
        """True when every ECU of the plan completed its sequence."""
        return bool(self.order) and all(
            self.states.get(n) in (PLAN_VERIFIED, PLAN_NOT_VERIFIED) for n in self.order
        )

    def record_of(self, ecu: str) -> FlashRecord | None:
        """The FlashRecord of `ecu`, None when it was not run."""
        return next((r for r in self.ecus if r.ecu == ecu), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MachineFlashRecord:
        """Rebuild from `to_dict` output (unknown keys are ignored)."""
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["ecus"] = [FlashRecord.from_dict(r) for r in data.get("ecus", [])]
        return cls(**kwargs)
