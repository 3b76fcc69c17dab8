"""Logging setup: a rotating log file per user, optional console, and an in-memory tap.

The GUI's log panel subscribes to `LogTap`; records are appended from any thread and read by the
GUI on a timer, so logging never blocks a worker on the GUI.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import sys
import threading
from typing import Any

from fota_studio.infra.paths import log_dir

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"


class LogTap(logging.Handler):
    """Keeps the last `capacity` formatted records; `drain()` returns the new ones."""

    def __init__(self, capacity: int = 5000) -> None:
        super().__init__()
        self._lock_tap = threading.Lock()
        self._records: collections.deque[tuple[int, str]] = collections.deque(maxlen=capacity)
        self._new: list[tuple[int, str]] = []
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        """Store one formatted record (any thread)."""
        try:
            text = self.format(record)
        except Exception:  # a bad format argument must never kill a worker
            text = str(record.msg)
        with self._lock_tap:
            self._records.append((record.levelno, text))
            self._new.append((record.levelno, text))
            cap = self._records.maxlen
            if cap is not None and len(self._new) > cap:
                del self._new[: len(self._new) - cap]

    def drain(self) -> list[tuple[int, str]]:
        """Return and forget the records appended since the last drain."""
        with self._lock_tap:
            out, self._new = self._new, []
        return out

    def history(self) -> list[tuple[int, str]]:
        """Return every kept record (for a panel opened late)."""
        with self._lock_tap:
            return list(self._records)


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # stream varies
    """Writes to whatever `sys.stderr` is at emit time, not the stream seen at set-up.

    Logging is configured once per process; a handler bound to an old stderr (replaced by a
    test's capture, or closed) would fail on every later record.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """The current sys.stderr."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


LOG_TAP = LogTap()
_configured = False


def setup_logging(level: str = "INFO", *, console: bool = False, to_file: bool = True) -> None:
    """Configure the root logger once: file (rotating), tap, and optionally stderr."""
    global _configured
    root = logging.getLogger()
    root.setLevel(getattr(logging, level, logging.INFO))
    if _configured:
        return
    _configured = True
    root.addHandler(LOG_TAP)
    if console:
        h = _CurrentStderrHandler()
        h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        h.setLevel(logging.WARNING if level == "INFO" else getattr(logging, level))
        root.addHandler(h)
    if to_file:
        try:
            d = log_dir()
            d.mkdir(parents=True, exist_ok=True)
            fh = logging.handlers.RotatingFileHandler(
                d / "fota-studio.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
            )
            fh.setFormatter(logging.Formatter(LOG_FORMAT))
            root.addHandler(fh)
        except OSError:
            root.warning("cannot write the log file; logging to the panel only")
