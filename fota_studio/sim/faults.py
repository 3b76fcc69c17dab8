"""Fault injection for the simulated ECUs: what can go wrong at which reprogramming step.

A `Fault` names a step (a `StepKind` value or "bootloader_entry"), a kind (nrc, late,
no_answer, drop, corrupt, power_loss, refuse, wrong_key_algorithm, fail, pending), an optional
argument and how many times it fires. "pending:N" answers the step's request with N
responsePending (0x78) NRCs first and the real response one `pending_interval_ms` later.
`parse_fault("erase:nrc:0x22")` reads the CLI form `STEP:KIND[:ARG[:COUNT]]`. `FaultSet` is
the thread-safe list a simulated ECU consumes from; `FaultyBus` is the thin bus wrapper under the
ISO-TP stack that drops or corrupts the ECU's outgoing frames (a `SendWrapperBus`: it sends
through a bus it does not own and never receives). `FaultSet` may be used from any
thread; `FaultyBus.send` from the ISO-TP thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import can

from fota_studio.core.ea import StepKind
from fota_studio.core.errors import ConfigurationError

BOOTLOADER_ENTRY = "bootloader_entry"
STEPS = (*(k.value for k in StepKind), BOOTLOADER_ENTRY)
#: Fault kinds and whether they need an argument.
KINDS: dict[str, bool] = {
    "nrc": True,
    "late": True,
    "no_answer": False,
    "drop": True,
    "corrupt": True,
    "power_loss": True,
    "refuse": False,
    "wrong_key_algorithm": False,
    "fail": False,
    "pending": True,
}


@dataclass(frozen=True)
class Fault:
    """One injected fault: at `step`, do `kind` (with `arg`), `count` times (default once)."""

    step: str
    kind: str
    arg: int | None = None
    count: int = 1

    def __post_init__(self) -> None:
        """Reject unknown steps/kinds and missing arguments with a message naming them."""
        if self.step not in STEPS:
            raise ConfigurationError(
                f'fault step "{self.step}" is unknown', hint=f"use one of: {', '.join(STEPS)}"
            )
        if self.kind not in KINDS:
            raise ConfigurationError(
                f'fault kind "{self.kind}" is unknown', hint=f"use one of: {', '.join(KINDS)}"
            )
        if KINDS[self.kind] and self.arg is None:
            raise ConfigurationError(f'fault "{self.step}:{self.kind}" needs an argument')
        if self.count < 1:
            raise ConfigurationError(f'fault "{self.step}:{self.kind}": count must be >= 1')

    def __str__(self) -> str:
        """The CLI form of the fault."""
        arg = (
            "" if self.arg is None else f":{self.arg:#x}" if self.kind == "nrc" else f":{self.arg}"
        )
        count = f":{self.count}" if self.count != 1 else ""
        if count and not arg:
            arg = ":"
        return f"{self.step}:{self.kind}{arg}{count}"


def parse_fault(spec: str) -> Fault:
    """Parse `STEP:KIND[:ARG[:COUNT]]` (ARG may be hex, "0x22"); ConfigurationError if bad."""
    parts = spec.strip().split(":")
    if len(parts) < 2 or len(parts) > 4:
        raise ConfigurationError(
            f'fault "{spec}" is not STEP:KIND[:ARG[:COUNT]]', hint="e.g. erase:nrc:0x22"
        )
    step, kind = parts[0].strip(), parts[1].strip()
    try:
        arg = int(parts[2], 0) if len(parts) > 2 and parts[2].strip() else None
        count = int(parts[3], 0) if len(parts) > 3 and parts[3].strip() else 1
    except ValueError as exc:
        raise ConfigurationError(f'fault "{spec}": argument/count is not a number') from exc
    return Fault(step=step, kind=kind, arg=arg, count=count)


#: Services whose request belongs to one reprogramming step whatever follows the SID.
_SID_STEPS = {
    0x85: StepKind.DTC_OFF,
    0x28: StepKind.COMM_CONTROL_OFF,
    0x2E: StepKind.FINGERPRINT,
    0x34: StepKind.REQUEST_DOWNLOAD,
    0x36: StepKind.TRANSFER_DATA,
    0x37: StepKind.TRANSFER_EXIT,
    0x11: StepKind.RESET,
}


def request_step(
    data: bytes, *, level1: int, prog_level: int, routines: dict[int, StepKind]
) -> str | None:
    """The reprogramming step (a `Fault.step`) a UDS request belongs to, or None.

    `level1`/`prog_level`: the requestSeed sub-functions of the two security steps;
    `routines`: routine ID -> step (erase, check). A fault armed for a step fires on the
    request this returns that step for.
    """
    sid = data[0]
    sub = data[1] & 0x7F if len(data) > 1 else -1
    kind: StepKind | None = None
    if sid == 0x10:
        kind = {0x03: StepKind.EXTENDED_SESSION, 0x02: StepKind.PROGRAMMING_SESSION}.get(sub)
    elif sid == 0x27 and sub > 0:
        seed_sub = sub if sub % 2 else sub - 1
        kind = {level1: StepKind.SECURITY_LEVEL_1, prog_level: StepKind.SECURITY_LEVEL_2}.get(
            seed_sub
        )
    elif sid == 0x31 and len(data) >= 4:
        kind = routines.get(int.from_bytes(data[2:4], "big"))
    elif sid == 0x22 and len(data) >= 3:
        kind = StepKind.READ_VERSION if data[1:3] == b"\xf1\x95" else None
    else:
        kind = _SID_STEPS.get(sid)
    return kind.value if kind is not None else None


class FaultSet:
    """The armed faults of one simulated ECU; `take` consumes one firing."""

    def __init__(self) -> None:
        """Start with no faults."""
        self._lock = threading.Lock()
        self._left: list[tuple[Fault, int]] = []
        self.fired: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Arm a fault."""
        with self._lock:
            self._left.append((fault, fault.count))

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._left.clear()

    def armed(self) -> list[Fault]:
        """The faults that still have firings left."""
        with self._lock:
            return [f for f, _ in self._left]

    def peek(self, step: str, *kinds: str) -> Fault | None:
        """The first armed fault for `step` (of one of `kinds` if given), without consuming."""
        with self._lock:
            for fault, _ in self._left:
                if fault.step == step and (not kinds or fault.kind in kinds):
                    return fault
            return None

    def take(self, step: str, *kinds: str) -> Fault | None:
        """Consume one firing of the first armed fault for `step` (of `kinds`), or None."""
        with self._lock:
            for i, (fault, left) in enumerate(self._left):
                if fault.step == step and (not kinds or fault.kind in kinds):
                    if left <= 1:
                        del self._left[i]
                    else:
                        self._left[i] = (fault, left - 1)
                    self.fired.append(fault)
                    return fault
            return None


class SendWrapperBus(can.BusABC):
    """A bus that only sends, through `inner`, which it does not own; receiving stays on the
    inner bus's notifier. Subclasses decide in `send` what happens to a frame."""

    def __init__(self, inner: can.BusABC, *, label: str, **kwargs: Any) -> None:
        """Wrap `inner` (not owned: shutting the wrapper down leaves `inner` open); `label`
        starts its `channel_info` ("<label> over <inner's>")."""
        self._inner = inner
        self._lock = threading.Lock()
        self.channel_info = f"{label} over {getattr(inner, 'channel_info', inner)}"
        super().__init__(channel=str(getattr(inner, "channel", "") or "faulty"), **kwargs)

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        """Never receives: the ISO-TP stack reads through the shared notifier."""
        del timeout
        return None, False

    def shutdown(self) -> None:
        """Mark the wrapper shut down; the inner bus stays open (its owner closes it)."""
        if not self._is_shutdown:
            super().shutdown()


class FaultyBus(SendWrapperBus):
    """Send-only wrapper that drops or corrupts the next N frames; everything else passes."""

    def __init__(self, inner: can.BusABC, **kwargs: Any) -> None:
        """Wrap `inner` (not owned: shutting the wrapper down leaves `inner` open)."""
        self._drop = 0
        self._corrupt = 0
        self.dropped = 0
        self.corrupted = 0
        super().__init__(inner, label="fault wrapper", **kwargs)

    def arm(self, *, drop: int = 0, corrupt: int = 0) -> None:
        """Drop the next `drop` and corrupt the next `corrupt` outgoing frames."""
        with self._lock:
            self._drop += drop
            self._corrupt += corrupt

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Send through the inner bus unless this frame is to be dropped or corrupted."""
        with self._lock:
            if self._drop > 0:
                self._drop -= 1
                self.dropped += 1
                return
            if self._corrupt > 0 and len(msg.data) > 1:
                self._corrupt -= 1
                self.corrupted += 1
                data = bytearray(msg.data)
                # Byte 1 is the first payload byte after the ISO-TP PCI (normal addressing):
                # inverting it gives the tester a wrong SID/NRC rather than a silently lost frame.
                data[1] ^= 0xFF
                msg = can.Message(
                    arbitration_id=msg.arbitration_id,
                    is_extended_id=msg.is_extended_id,
                    is_fd=msg.is_fd,
                    bitrate_switch=msg.bitrate_switch,
                    data=bytes(data),
                )
        self._inner.send(msg, timeout)
