"""The EA editor's forms: typed field widgets bound to model paths, and the ECU page.

`FieldBinder` makes each field widget (hex, number, text, yes/no, choice) and records which
model path it edits, relative to the EA ("ea") or the current ECU ("ecu"); an edit goes back to
the panel (`FormHost`), which turns it into one undoable command. `EcuForm` lays out the ECU's
tabs (identity, connection, UDS, sequence, memory and DIDs, preconditions and health) with its
list tables. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from fota_studio.core.can_timing import FD_FRAME_LENGTHS
from fota_studio.core.ea import (
    ERASE_POLICIES,
    AddressingMode,
    DidDefinition,
    MemoryRegion,
    Precondition,
    ProtectedRange,
    RoutinePrecondition,
    SecurityLevel,
)
from fota_studio.ui.panels.ea.codecs import Column
from fota_studio.ui.panels.ea.list_table import ListTable
from fota_studio.ui.widgets.forms import form_box
from fota_studio.ui.widgets.hex_edit import HexLineEdit

#: Makes a list table: (model path suffix, columns, row factory or None, reorder=...).
TableFactory = Callable[..., ListTable]


class FormHost(Protocol):
    """What the field widgets call back on the panel that owns them (the EA editor)."""

    def _commit_scoped(self, scope: str, suffix: str, value: Any) -> None: ...

    def _on_text_edited(self, scope: str, suffix: str, w: QLineEdit, kind: str) -> None: ...

    def _on_entry_toggled(self, on: bool) -> None: ...


class FieldBinder:
    """Builds field widgets and remembers (suffix, widget, kind) per scope ("ea", "ecu")."""

    def __init__(self, host: FormHost) -> None:
        self._host = host
        self.bindings: dict[str, list[tuple[str, QWidget, str]]] = {"ea": [], "ecu": []}

    def bind(self, scope: str, suffix: str, widget: QWidget, kind: str) -> QWidget:
        """Connect a widget to a model path (relative to the EA or the current ECU)."""
        self.bindings[scope].append((suffix, widget, kind))
        if kind == "hex":
            assert isinstance(widget, HexLineEdit)
            widget.value_committed.connect(
                lambda v, s=suffix, sc=scope: self._host._commit_scoped(sc, s, v)
            )
        elif kind in ("text", "bytes", "optint"):
            assert isinstance(widget, QLineEdit)
            widget.editingFinished.connect(
                lambda s=suffix, sc=scope, w=widget, k=kind: self._host._on_text_edited(sc, s, w, k)
            )
        elif kind in ("int", "float"):
            assert isinstance(widget, QSpinBox | QDoubleSpinBox)
            widget.setKeyboardTracking(False)  # one command per value, not per keystroke
            widget.valueChanged.connect(
                lambda v, s=suffix, sc=scope: self._host._commit_scoped(sc, s, v)
            )
        elif kind == "bool":
            assert isinstance(widget, QCheckBox)
            widget.toggled.connect(
                lambda v, s=suffix, sc=scope: self._host._commit_scoped(sc, s, v)
            )
        elif kind == "combo":
            assert isinstance(widget, QComboBox)
            widget.activated.connect(
                lambda i, s=suffix, sc=scope, w=widget: self._host._commit_scoped(
                    sc, s, w.itemData(i)
                )
            )
        elif kind == "entry":
            assert isinstance(widget, QCheckBox)
            widget.toggled.connect(self._host._on_entry_toggled)
        return widget

    def hex(self, suffix: str, digits: int, *, optional: bool = False) -> HexLineEdit:
        """A hex field of `digits` digits (empty allowed when `optional`)."""
        w = HexLineEdit(digits=digits, allow_empty=optional)
        self.bind("ecu", suffix, w, "hex")
        return w

    def spin(self, suffix: str, lo: int, hi: int, unit: str = "") -> QSpinBox:
        """A whole number in [lo, hi] with its unit as suffix."""
        w = QSpinBox()
        w.setRange(lo, hi)
        if unit:
            w.setSuffix(f" {unit}")
        self.bind("ecu", suffix, w, "int")
        return w

    def text(self, suffix: str) -> QLineEdit:
        """Free text."""
        w = QLineEdit()
        self.bind("ecu", suffix, w, "text")
        return w

    def optint(self, suffix: str, hint: str) -> QLineEdit:
        """A whole number that may be unknown (empty = None)."""
        w = QLineEdit()
        w.setPlaceholderText(hint)
        self.bind("ecu", suffix, w, "optint")
        return w

    def double(self, suffix: str, hi: float, unit: str, decimals: int = 2) -> QDoubleSpinBox:
        """A decimal number in [0, hi] with its unit as suffix."""
        w = QDoubleSpinBox()
        w.setRange(0.0, hi)
        w.setDecimals(decimals)
        w.setSuffix(f" {unit}")
        self.bind("ecu", suffix, w, "float")
        return w

    def check(self, suffix: str, text: str) -> QCheckBox:
        """A yes/no field."""
        w = QCheckBox(text)
        self.bind("ecu", suffix, w, "bool")
        return w

    def combo(self, suffix: str, items: list[tuple[str, Any]]) -> QComboBox:
        """One of `items` (label, value)."""
        w = QComboBox()
        for label, data in items:
            w.addItem(label, data)
        self.bind("ecu", suffix, w, "combo")
        return w


_RANGE_COLUMNS = [
    Column("name", "Name"),
    Column("start", "Start", "hex"),
    Column("length", "Length", "hex"),
]
"""A named address range: the memory regions' and protected ranges' first columns."""
_SKIP_COLUMNS = [
    Column("skippable", "Skip", "bool"),
    Column("skip_reason", "Why it may be skipped"),
]
"""A check that may be skipped with a reason: the precondition tables' last columns."""


def _scroll(w: QWidget) -> QScrollArea:
    s = QScrollArea()
    s.setWidgetResizable(True)
    s.setWidget(w)
    return s


class EcuForm:
    """The ECU page: `tabs` (the page widget), the entry-frame switch and the list tables."""

    def __init__(self, b: FieldBinder, table: TableFactory) -> None:
        self.tabs = QTabWidget()

        ident = QWidget()
        f = QFormLayout(ident)
        for key, label in (
            ("name", "Name"),
            ("role", "Role"),
            ("brand", "Brand"),
            ("model", "Model"),
            ("hardware_version", "Hardware version"),
            ("notes", "Notes"),
        ):
            f.addRow(label, b.text(key))
        self.tabs.addTab(ident, "Identity")

        con = QWidget()
        f = QFormLayout(con)
        f.addRow("CAN channel", b.text("channel"))
        f.addRow("Bitrate", b.spin("bitrate_bps", 1, 10_000_000, "bit/s"))
        f.addRow("", b.check("fd", "CAN FD"))
        f.addRow("FD data bitrate", b.spin("data_bitrate_bps", 1, 20_000_000, "bit/s"))
        f.addRow(
            "FD frame length",
            b.combo("fd_frame_length", [(str(n), n) for n in FD_FRAME_LENGTHS]),
        )
        f.addRow("ID length", b.combo("id_bits", [("11-bit", 11), ("29-bit", 29)]))
        f.addRow(
            "ISO-TP addressing",
            b.combo(
                "addressing",
                [
                    ("normal", AddressingMode.NORMAL),
                    ("normal fixed (29-bit)", AddressingMode.NORMAL_FIXED),
                    ("extended", AddressingMode.EXTENDED),
                    ("mixed", AddressingMode.MIXED),
                ],
            ),
        )
        for side, title in (("application", "Application"), ("bootloader", "Bootloader")):
            box, bf = form_box(f"{title} addresses")
            bf.addRow("Request ID", b.hex(f"{side}.request_id", 3))
            bf.addRow("Response ID", b.hex(f"{side}.response_id", 3))
            bf.addRow("Target address", b.hex(f"{side}.target_address", 2, optional=True))
            bf.addRow("Source address", b.hex(f"{side}.source_address", 2, optional=True))
            bf.addRow("Address extension", b.hex(f"{side}.address_extension", 2, optional=True))
            f.addRow(box)
        f.addRow("Functional request ID", b.hex("functional_id", 3))
        fta = b.hex("functional_target_address", 2, optional=True)
        fta.setToolTip(
            "extended/mixed addressing: the address byte of functional requests (e.g. 0xDF); "
            "empty = the physical one"
        )
        f.addRow("Functional address byte", fta)
        f.addRow("Padding byte", b.hex("padding_byte", 2, optional=True))
        f.addRow("Block size offered", b.spin("block_size", 0, 255))
        f.addRow("STmin offered", b.spin("stmin_ms", 0, 127, "ms"))
        entry, ef = form_box("Bootloader entry frame")
        self.entry_enabled = QCheckBox("send an entry frame before programming")
        b.bind("ecu", "bootloader_entry", self.entry_enabled, "entry")
        ef.addRow(self.entry_enabled)
        ef.addRow("CAN ID", b.hex("bootloader_entry.can_id", 3))
        data = QLineEdit()
        data.setPlaceholderText("B0 07 00 00 00 00 00 00")
        b.bind("ecu", "bootloader_entry.data", data, "bytes")
        ef.addRow("Data (hex)", data)
        ef.addRow("", b.check("bootloader_entry.extended_id", "29-bit ID"))
        ef.addRow("Delay after it", b.spin("bootloader_entry_delay_ms", 0, 600_000, "ms"))
        f.addRow(entry)
        f.addRow("Heartbeat ID", b.hex("heartbeat_id", 3, optional=True))
        self.tabs.addTab(_scroll(con), "Connection")

        uds = QWidget()
        f = QFormLayout(uds)
        f.addRow("P2 timeout", b.spin("uds.p2_timeout_ms", 1, 600_000, "ms"))
        f.addRow("P2* timeout", b.spin("uds.p2_star_timeout_ms", 1, 600_000, "ms"))
        f.addRow("S3 (session timeout)", b.spin("uds.s3_ms", 1, 600_000, "ms"))
        f.addRow("TesterPresent period", b.spin("uds.tester_present_period_ms", 1, 600_000, "ms"))
        f.addRow("Default session", b.hex("uds.default_session", 2))
        f.addRow("Extended session", b.hex("uds.extended_session", 2))
        f.addRow("Programming session", b.hex("uds.programming_session", 2))
        f.addRow("addressAndLengthFormatIdentifier", b.hex("uds.address_and_length_format", 2))
        f.addRow("dataFormatIdentifier", b.hex("uds.data_format", 2))
        f.addRow("Active-session DID", b.hex("uds.active_session_did", 4, optional=True))
        f.addRow("Erase policy", b.combo("uds.erase_policy", [(p, p) for p in ERASE_POLICIES]))
        tb, tf = form_box("Timing facts (from the bootloader specification)")
        tf.addRow("Reset time", b.spin("uds.timing.reset_time_ms", 0, 60_000, "ms"))
        tf.addRow(
            "Bootloader ready timeout",
            b.spin("uds.timing.bootloader_ready_timeout_ms", 1, 600_000, "ms"),
        )
        tf.addRow(
            "Application start timeout",
            b.double("uds.timing.application_start_timeout_s", 600.0, "s"),
        )
        tf.addRow("Erase per KiB", b.double("uds.timing.erase_ms_per_kib", 3_600_000, "ms"))
        tf.addRow("Erase per sector", b.double("uds.timing.erase_ms_per_sector", 3_600_000, "ms"))
        tf.addRow(
            "Programming per KiB",
            b.double("uds.timing.programming_ms_per_kib", 3_600_000, "ms"),
        )
        tf.addRow(
            "ECU block length",
            b.optint("uds.timing.ecu_max_block_length", "maxNumberOfBlockLength; empty = unknown"),
        )
        tf.addRow("ECU STmin", b.optint("uds.timing.ecu_stmin_ms", "ms; empty = unknown"))
        tf.addRow("ECU block size", b.optint("uds.timing.ecu_block_size", "empty = unknown"))
        f.addRow(tb)
        self.security_table = table(
            "uds.security_levels",
            [
                Column("name", "Name"),
                Column("seed_subfunction", "Seed sub-function", "hex"),
                Column("algorithm", "Algorithm"),
                Column("secret_ref", "Secret (keyring ref)", "optstr"),
                Column("params", "Parameters", "params"),
            ],
            lambda: SecurityLevel(name="level", seed_subfunction=0x05),
        )
        f.addRow(QLabel("Security levels (secrets are referenced, never stored)"))
        f.addRow(self.security_table)
        self.tabs.addTab(_scroll(uds), "UDS")

        self.sequence_table = table(
            "uds.sequence",
            [
                Column("enabled", "On", "bool"),
                Column("kind", "Step", "ro"),
                Column("params", "Parameters", "step_params"),
            ],
            None,
            reorder=True,
        )
        self.tabs.addTab(self.sequence_table, "Sequence")

        mem = QWidget()
        ml = QVBoxLayout(mem)
        ml.addWidget(QLabel("Writable memory regions"))
        self.region_table = table(
            "uds.memory_regions",
            [*_RANGE_COLUMNS, Column("erase_sector_bytes", "Erase sector", "hex")],
            lambda: MemoryRegion(name="region", start=0, length=0x1000),
        )
        ml.addWidget(self.region_table)
        ml.addWidget(QLabel("Protected ranges (never erased or written, e.g. the bootloader)"))
        self.protected_table = table(
            "uds.protected_ranges",
            _RANGE_COLUMNS,
            lambda: ProtectedRange(name="bootloader", start=0, length=0x1000),
        )
        ml.addWidget(self.protected_table)
        ml.addWidget(QLabel("DIDs to read"))
        self.did_table = table(
            "uds.dids",
            [
                Column("did", "DID", "hex"),
                Column("name", "Name"),
                Column("codec", "Codec (ascii/hex/uint)"),
                Column("length", "Length", "optint"),
            ],
            lambda: DidDefinition(did=0xF100, name="new DID"),
        )
        ml.addWidget(self.did_table)
        self.tabs.addTab(mem, "Memory && DIDs")

        pre = QWidget()
        pl = QVBoxLayout(pre)
        pl.addWidget(QLabel("Preconditions (read a DID, scale, compare before erasing)"))
        self.precondition_table = table(
            "uds.preconditions",
            [
                Column("name", "Name"),
                Column("did", "DID", "hex"),
                Column("length", "Bytes", "int"),
                Column("scale", "Scale", "float"),
                Column("offset", "Offset", "float"),
                Column("unit", "Unit"),
                Column("minimum", "Min", "optfloat"),
                Column("maximum", "Max", "optfloat"),
                *_SKIP_COLUMNS,
            ],
            lambda: Precondition(name="new check", did=0xF400),
        )
        pl.addWidget(self.precondition_table)
        pl.addWidget(
            QLabel(
                "Routine preconditions (31 01 <routine> [record]; the first status byte must "
                "equal the expected one). A check that cannot run fails the flash unless "
                "skippable with a reason."
            )
        )
        self.routine_precondition_table = table(
            "uds.routine_preconditions",
            [
                Column("name", "Name"),
                Column("routine_id", "Routine", "hex"),
                Column("record", "Record (hex)", "bytes"),
                Column("expected_status", "Expected status", "opthex"),
                *_SKIP_COLUMNS,
            ],
            lambda: RoutinePrecondition(name="check programming preconditions"),
        )
        pl.addWidget(self.routine_precondition_table)
        hb, hf = form_box("Checkpoint 2 health checks")
        hf.addRow("", b.check("uds.health.check_version", "software version matches"))
        hf.addRow("Version DID", b.hex("uds.health.version_did", 4))
        hf.addRow("", b.check("uds.health.check_no_active_dtcs", "no active DTCs"))
        hf.addRow("DTC status mask", b.hex("uds.health.dtc_status_mask", 2))
        hf.addRow("", b.check("uds.health.check_heartbeat", "heartbeat seen"))
        within = QDoubleSpinBox()
        within.setRange(0.0, 3600.0)
        within.setSuffix(" s")
        b.bind("ecu", "uds.health.heartbeat_within_s", within, "float")
        hf.addRow("Heartbeat within", within)
        pl.addWidget(hb)
        self.tabs.addTab(pre, "Preconditions && health")
