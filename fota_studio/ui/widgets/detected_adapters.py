"""The adapters python-can can see right now, to pick one instead of typing its channel name.

`DetectedAdapters` lists what `protocols.bus.detect_configs` (python-can's
`detect_available_configs`, bounded in time) finds — "pcan: PCAN_USBBUS1", "socketcan: can0",
"slcan: /dev/ttyACM0" — and emits `picked(interface, channel)` when the user chooses one (click,
Enter or double-click). Detection runs through `ui/background.run_in_background` (some drivers
scan USB or the network for a second or two) and again on "Detect again"; the list says when
nothing was found and what that means. Software buses (`virtual`) are left out: they are not
adapters and always "available". GUI thread only.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fota_studio.protocols.bus import detect_configs
from fota_studio.ui.background import BackgroundTask, run_in_background

#: Interfaces detection may list that are not adapters a technician picks.
NOT_ADAPTERS = frozenset({"virtual", "fota_sim", "udp_multicast"})
#: Item data role holding the (interface, channel) pair.
CONFIG_ROLE = int(Qt.ItemDataRole.UserRole)

Detector = Any  # () -> list[dict[str, Any]]


def adapter_configs(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(interface, channel) of each detected adapter, software buses and duplicates removed,
    in the order found."""
    out: list[tuple[str, str]] = []
    for cfg in found:
        pair = (str(cfg.get("interface", "")), str(cfg.get("channel", "")))
        if pair[0] and pair[1] and pair[0] not in NOT_ADAPTERS and pair not in out:
            out.append(pair)
    return out


class DetectedAdapters(QWidget):
    """A list of detected CAN adapter channels with a "Detect again" button."""

    picked = Signal(str, str)  # interface, channel
    detection_finished = Signal(int)  # adapters found

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        detector: Detector = detect_configs,
        auto_detect: bool = True,
    ) -> None:
        super().__init__(parent)
        self._detector = detector
        self._task: BackgroundTask | None = None
        self.list = QListWidget()
        self.list.setToolTip("Adapters the installed python-can drivers see; pick one to use it")
        self.list.setMaximumHeight(110)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.detect_button = QPushButton("Detect again")
        self.detect_button.setToolTip("Ask the installed drivers again (after plugging in)")
        self.detect_button.clicked.connect(self.detect)
        self.list.itemActivated.connect(self._on_list_item_activated)
        self.list.itemClicked.connect(self._on_list_item_activated)
        row = QHBoxLayout()
        row.addWidget(QLabel("Detected adapters"), 1)
        row.addWidget(self.detect_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.list)
        layout.addWidget(self.status)
        if auto_detect:
            self.detect()

    def detect(self) -> None:
        """Start a detection (ignored while one runs); the list refills when it ends."""
        if self._task is not None:
            return
        self.detect_button.setEnabled(False)
        self.status.setText("Detecting adapters…")
        self._task = run_in_background(
            lambda _progress: self._detector(),
            name="detect adapters",
            on_success=self._on_detected,
            on_error=self._on_detect_failed,
            on_finished=self._on_detect_finished,
            # Not parented to this widget: the dialog may close (and be deleted) before the
            # drivers answer; the task lives until it ends, its slots die with the widget.
            parent=None,
        )

    def adapters(self) -> list[tuple[str, str]]:
        """The (interface, channel) pairs listed now."""
        out = []
        for row in range(self.list.count()):
            interface, channel = self.list.item(row).data(CONFIG_ROLE)
            out.append((str(interface), str(channel)))
        return out

    def _on_detected(self, found: list[dict[str, Any]]) -> None:
        pairs = adapter_configs(found)
        self.list.clear()
        for interface, channel in pairs:
            item = QListWidgetItem(f"{interface}: {channel}")
            item.setData(CONFIG_ROLE, (interface, channel))
            self.list.addItem(item)
        if pairs:
            self.status.setText(f"{len(pairs)} adapter channel(s) found — pick one to use it")
        else:
            self.status.setText(
                "No adapter found. Plug it in and check its driver (CAN ▸ Connection doctor…), "
                "or type the interface and channel below."
            )
        self.detection_finished.emit(len(pairs))

    def _on_detect_failed(self, exc: BaseException, _trace: str) -> None:
        self.status.setText(f"Detection failed: {exc}")
        self.detection_finished.emit(0)

    def _on_detect_finished(self) -> None:
        self._task = None
        self.detect_button.setEnabled(True)

    def _on_list_item_activated(self, item: QListWidgetItem) -> None:
        interface, channel = item.data(CONFIG_ROLE)
        self.picked.emit(str(interface), str(channel))
