"""Progress reporting throttled at the source.

`ProgressReporter` is fed by the flash job after every block and forwards a `Progress` event
only for the first update, the last one, and whenever ~0.5 % of the bytes or 100 ms have
passed since the previous event, so a 1 MiB flash emits a few hundred events, not thousands.
Rate is a smoothed bytes/s over a sliding window. Called from the job's worker thread only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from fota_studio.core.events import Progress

PROGRESS_MIN_INTERVAL_S = 0.1
PROGRESS_MIN_FRACTION = 0.005
RATE_WINDOW_S = 2.0


class ProgressReporter:
    """Turns byte counts into throttled `Progress` events for one job."""

    def __init__(
        self,
        job_id: int,
        bytes_total: int,
        emit: Callable[[Progress], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        min_interval_s: float = PROGRESS_MIN_INTERVAL_S,
        min_fraction: float = PROGRESS_MIN_FRACTION,
    ) -> None:
        self.job_id = job_id
        self.bytes_total = bytes_total
        self._emit = emit
        self._clock = clock
        self._min_interval_s = min_interval_s
        self._min_step_bytes = max(1, int(bytes_total * min_fraction))
        self._last_emit_t: float | None = None
        self._last_emit_bytes = -1
        self._samples: deque[tuple[float, int]] = deque()
        self._start_t: float | None = None
        self.bytes_done = 0
        self.emitted = 0

    def rate_bps(self) -> float:
        """Bytes per second over the recent window (0 before two samples)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def update(self, bytes_done: int, message: str = "", *, force: bool = False) -> None:
        """Record progress; emit an event when the throttle allows (or `force`/first/last)."""
        now = self._clock()
        if self._start_t is None:
            self._start_t = now
        self.bytes_done = bytes_done
        self._samples.append((now, bytes_done))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()
        first = self._last_emit_t is None
        last = bytes_done >= self.bytes_total and self._last_emit_bytes < self.bytes_total
        due = (
            self._last_emit_t is not None
            and (
                now - self._last_emit_t >= self._min_interval_s
                or bytes_done - self._last_emit_bytes >= self._min_step_bytes
            )
            and bytes_done != self._last_emit_bytes
        )
        if not (first or last or due or force):
            return
        rate = self.rate_bps()
        remaining = max(0, self.bytes_total - bytes_done)
        eta = remaining / rate if rate > 0 else None
        self._last_emit_t = now
        self._last_emit_bytes = bytes_done
        self.emitted += 1
        self._emit(
            Progress(
                job_id=self.job_id,
                bytes_done=bytes_done,
                bytes_total=self.bytes_total,
                rate_bps=rate,
                eta_s=eta,
                message=message,
            )
        )

    def average_rate_bps(self) -> float:
        """Bytes per second since the first update."""
        if self._start_t is None or not self._samples:
            return 0.0
        dt = self._samples[-1][0] - self._start_t
        return self.bytes_done / dt if dt > 0 else 0.0
