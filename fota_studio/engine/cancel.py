"""Cooperative cancellation for engine jobs.

A `CancelToken` is set from any thread (GUI, CLI signal handler, `Engine.shutdown`) and checked
by the job only at safe points (between steps and between TransferData blocks), so a cancelled
flash never leaves a half-sent block. Safe from any thread.
"""

from __future__ import annotations

import threading

from fota_studio.core.errors import CancelledError


class CancelToken:
    """A thread-safe cancel flag with a reason; jobs call `check(where)` at safe points."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = ""

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Request cancellation (idempotent; the first reason wins)."""
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested."""
        return self._event.is_set()

    @property
    def reason(self) -> str:
        """Why the job was cancelled ("" while not cancelled)."""
        return self._reason

    @property
    def event(self) -> threading.Event:
        """The underlying event (for waits that should wake up on cancel)."""
        return self._event

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s`, waking early on cancel; True when cancelled."""
        return self._event.wait(timeout_s)

    def check(self, where: str) -> None:
        """Raise CancelledError naming the safe point when cancellation was requested."""
        if self._event.is_set():
            raise CancelledError(
                f"{where}: job cancelled ({self._reason})",
                hint="the ECU stays in its bootloader; run the flash again to complete it",
            )
