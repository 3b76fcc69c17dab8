"""The trace's transmit list: several messages, each sent once or periodically, plus replay.

`TransmitList` is a small table: one row per message (candump syntax such as `7DF#02010D`, a
period in ms where 0 means "once", and how many were sent). "Send" sends the selected rows
that are one-shot and starts the selected periodic ones; "Stop" stops the selected rows, "Stop
all" every periodic row. Frames go out through the `send(channel, message)` callable the panel
gives (so they show as Tx in the live trace); errors go to `report(text)`. Nothing is sent
unless the user asks (quiet by default on real buses). The replay controls sit beside it.
GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import can
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fota_studio.ui.widgets.timers import periodic_timer

TX_COLUMNS = ("Frame (ID#DATA)", "Period ms (0 = once)", "Sent", "State")


def parse_candump_frame(text: str) -> can.Message:
    """`123#11223344` (11-bit), `18DA11F1#…` (29-bit: 8 hex digits), `123#R` remote,
    `123##1AABB…` CAN FD with BRS flag nibble. Raises ValueError."""
    text = text.strip()
    if "#" not in text:
        raise ValueError("use ID#DATA, e.g. 7DF#0201050000000000")
    id_part, rest = text.split("#", 1)
    can_id = int(id_part, 16)
    extended = len(id_part) > 3 or can_id > 0x7FF
    if rest.startswith("#"):
        flags = int(rest[1], 16)
        data = bytes.fromhex(rest[2:])
        return can.Message(
            arbitration_id=can_id,
            is_extended_id=extended,
            data=data,
            is_fd=True,
            bitrate_switch=bool(flags & 1),
        )
    if rest.upper().startswith("R"):
        dlc = int(rest[1:] or "0")
        return can.Message(
            arbitration_id=can_id, is_extended_id=extended, is_remote_frame=True, dlc=dlc
        )
    data = bytes.fromhex(rest.replace(".", ""))
    if len(data) > 8:
        raise ValueError("more than 8 bytes: use ID##<flags>DATA for CAN FD")
    return can.Message(arbitration_id=can_id, is_extended_id=extended, data=data)


@dataclass(eq=False)
class _Entry:
    timer: QTimer | None = None
    sent: int = 0
    errors: list[str] = field(default_factory=list)


class TransmitList(QWidget):
    """Transmit list + replay controls (see module docstring)."""

    def __init__(
        self,
        send: Callable[[str, can.Message], None],
        report: Callable[[str], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._send = send
        self._report = report
        self._entries: list[_Entry] = []
        self.channel = QComboBox()
        self.table = QTableWidget(0, len(TX_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TX_COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(lambda: self.add_message("7DF#0201050000000000", 0))
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._on_remove_clicked)
        self.send_button = QPushButton("Send / start")
        self.send_button.setToolTip("Send the selected one-shot rows, start the periodic ones")
        self.send_button.clicked.connect(self._on_send_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.stop_all_button = QPushButton("Stop all")
        self.stop_all_button.clicked.connect(self.stop_all)
        self.replay_speed = QComboBox()
        self.replay_speed.addItems(["0.5", "1", "2", "5", "10"])
        self.replay_speed.setCurrentText("1")
        self.replay_loop = QCheckBox("Loop")
        self.replay_button = QPushButton("Replay shown rows")
        self.replay_button.setCheckable(True)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Channel"))
        buttons.addWidget(self.channel)
        for w in (
            self.add_button,
            self.remove_button,
            self.send_button,
            self.stop_button,
            self.stop_all_button,
        ):
            buttons.addWidget(w)
        buttons.addStretch(1)
        buttons.addWidget(QLabel("Replay ×"))
        buttons.addWidget(self.replay_speed)
        buttons.addWidget(self.replay_loop)
        buttons.addWidget(self.replay_button)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)

    # -- rows -----------------------------------------------------------------------------
    def add_message(self, frame: str, period_ms: int = 0) -> int:
        """Add a row (candump text, period in ms, 0 = once); returns its row."""
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(frame))
        self.table.setItem(row, 1, QTableWidgetItem(str(period_ms)))
        for col, text in ((2, "0"), (3, "")):
            item = QTableWidgetItem(text)
            item.setFlags(item.flags() & ~item.flags().ItemIsEditable)
            self.table.setItem(row, col, item)
        self._entries.append(_Entry())
        return row

    def frame_text(self, row: int) -> str:
        """The candump text of a row."""
        item = self.table.item(row, 0)
        return item.text() if item is not None else ""

    def period_ms(self, row: int) -> int:
        """The period of a row (ValueError for text that is not a number ≥ 0)."""
        item = self.table.item(row, 1)
        value = int((item.text() if item is not None else "0").strip() or "0")
        if value < 0:
            raise ValueError("the period must be 0 (once) or more milliseconds")
        return value

    def sent(self, row: int) -> int:
        """Frames sent from a row so far."""
        return self._entries[row].sent

    def running(self, row: int) -> bool:
        """True while a periodic row transmits."""
        timer = self._entries[row].timer
        return timer is not None and timer.isActive()

    def _selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.table.selectedIndexes()})

    def _set_state(self, row: int, text: str) -> None:
        item = self.table.item(row, 3)
        if item is not None:
            item.setText(text)

    # -- sending --------------------------------------------------------------------------
    def start_row(self, row: int) -> bool:
        """Send a one-shot row, or start a periodic one; False (and a report) on bad input."""
        name = self.channel.currentText()
        if not name:
            self._report("Transmit: connect a channel first")
            return False
        try:
            msg = parse_candump_frame(self.frame_text(row))
            period = self.period_ms(row)
        except ValueError as exc:
            self._report(f"Transmit row {row + 1}: {exc}")
            self._set_state(row, "invalid")
            return False
        entry = self._entries[row]
        if period == 0:
            self._send_entry(entry, name, msg)
            return True
        self.stop_row(row)
        entry.timer = periodic_timer(self, period, lambda: self._send_entry(entry, name, msg))
        self._set_state(row, f"every {period} ms")
        return True

    def _send_entry(self, entry: _Entry, name: str, msg: can.Message) -> None:
        if entry not in self._entries:
            return  # removed meanwhile
        row = self._entries.index(entry)
        try:
            self._send(name, msg)
        except (can.CanError, KeyError) as exc:
            self._report(f"Transmit on {name} failed: {exc}")
            self.stop_row(row)
            self._set_state(row, "failed")
            return
        entry.sent += 1
        item = self.table.item(row, 2)
        if item is not None:
            item.setText(str(entry.sent))

    def stop_row(self, row: int) -> None:
        """Stop a periodic row."""
        entry = self._entries[row]
        if entry.timer is not None:
            entry.timer.stop()
            entry.timer.deleteLater()
            entry.timer = None
            self._set_state(row, "stopped")

    def stop_all(self) -> None:
        """Stop every periodic row."""
        for row in range(len(self._entries)):
            self.stop_row(row)

    @property
    def active(self) -> bool:
        """True while any periodic row transmits."""
        return any(self.running(r) for r in range(len(self._entries)))

    def _on_send_clicked(self) -> None:
        rows = self._selected_rows() or list(range(self.table.rowCount()))
        for row in rows:
            self.start_row(row)

    def _on_stop_clicked(self) -> None:
        for row in self._selected_rows():
            self.stop_row(row)

    def _on_remove_clicked(self) -> None:
        for row in reversed(self._selected_rows()):
            self.stop_row(row)
            self.table.removeRow(row)
            del self._entries[row]
