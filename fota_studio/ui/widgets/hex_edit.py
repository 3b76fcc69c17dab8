"""A small line edit for hexadecimal numbers (CAN IDs, address bytes, DIDs, addresses).

Accepts `7E0`, `0x7E0` or `0X7e0`; shows the value normalised as `0x7E0` with a fixed number of
digits when it loses focus. `value()` is the integer (None when empty and `allow_empty`), and
`value_committed(object)` is emitted on Enter/focus-out when the value changed. Typing anything
that is not hex is refused by the validator; values above `maximum` are shown in red by
`is_acceptable()`. GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QLineEdit, QWidget

from fota_studio.ui.widgets.hex_text import parse_hex


class HexLineEdit(QLineEdit):
    """A validated hex input; `value()` -> int | None."""

    value_committed = Signal(object)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        digits: int = 0,
        maximum: int = 0xFFFF_FFFF,
        allow_empty: bool = False,
    ) -> None:
        super().__init__(parent)
        self._digits, self._maximum, self._allow_empty = digits, maximum, allow_empty
        self._committed: int | None = None
        self.setValidator(
            QRegularExpressionValidator(QRegularExpression(r"^(0[xX])?[0-9A-Fa-f]{0,8}$"), self)
        )
        self.setPlaceholderText("none" if allow_empty else "0x…")
        self.setMaximumWidth(140)
        self.editingFinished.connect(self._on_editing_finished)

    #: Parse `7E0` / `0x7E0`; None for empty or non-hex text.
    parse = staticmethod(parse_hex)

    def format(self, value: int | None) -> str:
        """The normalised text of a value."""
        if value is None:
            return ""
        digits = self._digits or 1
        return f"0x{value:0{digits}X}"

    def value(self) -> int | None:
        """The current value (None when empty)."""
        return self.parse(self.text())

    def setValue(self, value: int | None) -> None:
        """Show a value without emitting `value_committed`."""
        self._committed = value
        self.setText(self.format(value))

    def is_acceptable(self) -> bool:
        """True when the text is a value within range (or empty where allowed)."""
        v = self.value()
        if v is None:
            return self._allow_empty and not self.text().strip()
        return 0 <= v <= self._maximum

    def _on_editing_finished(self) -> None:
        v = self.value()
        if v is None and not self._allow_empty:
            # an empty required field goes back to its last value instead of committing
            self.setText(self.format(self._committed))
            return
        if v != self._committed:
            self._committed = v
            self.setText(self.format(v))
            self.value_committed.emit(v)
        else:
            self.setText(self.format(v))
