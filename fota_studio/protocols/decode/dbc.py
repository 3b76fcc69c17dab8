"""DBC decoding for the trace through cantools (signal values, multiplexed messages).

`DbcDecoder` loads one or more DBC files and describes a frame as `Msg: sig=val unit, …`.
Loading happens on the caller's thread (do it off the GUI thread for big files); `describe`
is read-only and may be called from any single thread at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fota_studio.core.errors import ConfigurationError

log = logging.getLogger(__name__)


class DbcDecoder:
    """Frame → signal text using the messages of the loaded DBC files."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[int, bool], Any] = {}
        self.files: list[Path] = []

    def load(self, path: Path | str) -> int:
        """Load a DBC file; returns the number of messages added. Raises ConfigurationError."""
        path = Path(path)
        import cantools  # on first use: 0.1 s of every GUI start otherwise

        try:
            db = cantools.database.load_file(str(path), strict=False)
        except Exception as exc:
            raise ConfigurationError(
                f"Cannot read DBC file {path}: {exc}", hint="check the file is a valid DBC"
            ) from exc
        count = 0
        for message in getattr(db, "messages", []):
            self._by_id[(message.frame_id, bool(message.is_extended_frame))] = message
            count += 1
        self.files.append(path)
        return count

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def knows(self, can_id: int, extended: bool) -> bool:
        """True when a loaded DBC defines this frame."""
        return (can_id, extended) in self._by_id

    def signals(self, can_id: int, extended: bool, data: bytes) -> dict[str, Any] | None:
        """Decoded signal values (multiplexed messages decode their active mux), or None."""
        message = self._by_id.get((can_id, extended))
        if message is None:
            return None
        try:
            return dict(
                message.decode(bytes(data), decode_choices=True, scaling=True, allow_truncated=True)
            )
        except Exception as exc:
            log.debug("DBC decode of 0x%X failed: %s", can_id, exc)
            return None

    def signal_list(self) -> list[tuple[int, bool, str, str]]:
        """(frame id, extended, message name, signal name) of every signal, sorted by name."""
        out = [
            (key[0], key[1], message.name, signal.name)
            for key, message in self._by_id.items()
            for signal in message.signals
        ]
        return sorted(out, key=lambda item: (item[2], item[3]))

    def signal_value(self, can_id: int, extended: bool, data: bytes, signal: str) -> float | None:
        """The scaled numeric value of one signal in a frame (None when absent: e.g. another
        multiplexer value is active, or the value is a named choice without a number)."""
        message = self._by_id.get((can_id, extended))
        if message is None:
            return None
        try:
            values = message.decode(bytes(data), decode_choices=False, allow_truncated=True)
        except Exception:
            return None
        value = values.get(signal)
        return float(value) if isinstance(value, int | float) else None

    def describe(self, can_id: int, extended: bool, data: bytes) -> str | None:
        """`Name: sig=value unit, …` for a known frame, else None."""
        message = self._by_id.get((can_id, extended))
        values = self.signals(can_id, extended, data)
        if message is None or values is None:
            return None
        parts = []
        for name, value in values.items():
            try:
                unit = message.get_signal_by_name(name).unit or ""
            except KeyError:
                unit = ""
            parts.append(f"{name}={value}{(' ' + unit) if unit else ''}")
        return f"{message.name}: " + ", ".join(parts)
