"""Typed engine events: frozen dataclasses the engine emits to its sink callable.

The engine (worker threads) creates these and hands them to one sink; the UI's EngineBridge
turns them into Qt signals on the GUI thread, the CLI prints them. No untyped dicts travel
between threads. Pure data; safe to create and read from any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class EngineEvent:
    """Base of every engine event; `job_id` names the job it belongs to (0 = engine itself)."""

    job_id: int


@dataclass(frozen=True)
class JobQueued(EngineEvent):
    """A job entered the queue of a channel worker."""

    channel: str
    description: str


@dataclass(frozen=True)
class JobStarted(EngineEvent):
    """A channel worker started running the job."""

    channel: str
    description: str


@dataclass(frozen=True)
class StepStarted(EngineEvent):
    """A sequence step (a `StepKind` value or an engine step name) started."""

    step: str
    detail: str = ""


@dataclass(frozen=True)
class StepFinished(EngineEvent):
    """A sequence step ended; on failure `nrc`/`nrc_name` carry the negative response, if any."""

    step: str
    ok: bool
    detail: str = ""
    nrc: int | None = None
    nrc_name: str = ""


@dataclass(frozen=True)
class Progress(EngineEvent):
    """Transfer progress, throttled at the source (first, last, every ~0.5 % or 100 ms)."""

    bytes_done: int
    bytes_total: int
    rate_bps: float
    eta_s: float | None
    message: str = ""

    @property
    def fraction(self) -> float:
        """Done fraction 0..1 (1 when there is nothing to transfer)."""
        return 1.0 if self.bytes_total <= 0 else min(1.0, self.bytes_done / self.bytes_total)


@dataclass(frozen=True)
class EcuBusy(EngineEvent):
    """The ECU answered NRC 0x78 (response pending) during `step`; the engine keeps waiting."""

    step: str
    count: int = 1


@dataclass(frozen=True)
class JobFinished(EngineEvent):
    """A job completed successfully; `result` is the job's result object (e.g. FlashResult)."""

    result: object


@dataclass(frozen=True)
class JobFailed(EngineEvent):
    """A job failed or was cancelled; `error` is the user message, `step` where it happened."""

    error: str
    step: str = ""
    cancelled: bool = False
    hint: str = ""


@dataclass(frozen=True)
class LogLine(EngineEvent):
    """A line for the live log of a job."""

    level: LogLevel
    text: str
