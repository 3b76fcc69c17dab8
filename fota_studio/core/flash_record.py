"""The flash record: a traceable account of one flash job (who, what, when, every step).

A `FlashRecord` holds the job's identity (machine, ECU, version, image hashes), every step with
its outcome and NRC, every UDS request/response with timestamps and 0x78 counts (TransferData
payloads are cut to their first bytes + length), byte counts, timing and the result. A run of
plain TransferData blocks (positive answer at once, nothing skipped) is one `ExchangeRecord`
with `blocks` > 1: the record says what happened, the job's bus log holds every frame (issue 21:
one entry per block made the record ~0.3 MiB per MiB flashed). It round
trips through JSON (`to_json` / `from_json`) so the workspace, the CLI (`--json`) and the UI
share one format. Pure data; built by the job's worker thread, read from any thread after.
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


@dataclass
class SegmentRecord:
    """One image segment as flashed."""

    address: int
    length: int
    blocks: int = 0
    max_block_length: int = 0


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
