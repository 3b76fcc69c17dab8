"""From a flash step to its frames and back (issue 19 part 2).

`TraceLink.open_frames(request)` opens the flash record's session bus log (the BLF blob kept with
the record) in the trace panel, in a document of its own, and when it has loaded selects exactly
the frames the step or TransferData block spans (`StepRecord.frame_first/frame_last/
block_frames`) and scrolls to them. While that document is open, its Messages tab links each
UDS exchange back to its step: selecting an exchange adds "Flash step: …" to the details pane and
emits `step_activated(record, step index, block or None)`, which the Flash panel answers by
selecting the step. Frames that fall between steps (a TesterPresent) say so.

Only the trace panel's public API is used (`open_bytes`, `file_loaded`, `current_document()` with
its `view`/`model`/`messages_view`/`messages_model`/`details`/`tabs`). GUI thread only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QObject, Signal
from PySide6.QtWidgets import QAbstractItemView

from fota_studio.core.flash_record import FlashRecord, step_at_frame
from fota_studio.engine.records import load_buslog
from fota_studio.ui.widgets.step_frames import FramesRequest, step_label

log = logging.getLogger(__name__)


#: The name the trace panel gives a bus log it opens from a flash record (`open_flash_record`).
_RECORD_LOG_NAME = re.compile(r"flash record (\d+) bus log")

#: Link scheme of a step (or block) in the record report: fota-frames:<record id>/<step>[/<block>].
FRAMES_SCHEME = "fota-frames"


def frames_href(record_id: int, step_index: int, block: int | None = None) -> str:
    """The report's link to a step's (or TransferData block's) frames."""
    tail = "" if block is None else f"/{block}"
    return f"{FRAMES_SCHEME}:{record_id}/{step_index}{tail}"


def parse_frames_href(href: str) -> tuple[int, int, int | None] | None:
    """(record id, step index, block or None) of a `frames_href` link; None for other links."""
    prefix = f"{FRAMES_SCHEME}:"
    if not href.startswith(prefix):
        return None
    parts = href[len(prefix) :].split("/")
    try:
        numbers = [int(x) for x in parts]
    except ValueError:
        return None
    if len(numbers) == 2:
        return numbers[0], numbers[1], None
    if len(numbers) == 3:
        return numbers[0], numbers[1], numbers[2]
    return None


def request_from_href(ws: Any, href: str) -> FramesRequest | None:
    """The frames a report link names (reads the flash record from `ws`); None when the link
    is not ours, the record is gone or the step has no frames."""
    from fota_studio.engine.records import load_flash_record

    parsed = parse_frames_href(href)
    if parsed is None or ws is None:
        return None
    record_id, index, block = parsed
    try:
        record = load_flash_record(ws, record_id)
    except Exception:  # a record deleted since the report was built
        log.warning("flash record %s: not readable for link %s", record_id, href)
        return None
    if not 0 <= index < len(record.steps):
        return None
    st = record.steps[index]
    rng = (st.frame_first, st.frame_last) if block is None else st.block_range(block)
    if rng is None or rng[0] is None or rng[1] is None:
        return None
    return FramesRequest(record, rng[0], rng[1], step_label(record, index, block), index, block)


@dataclass
class _Linked:
    """A bus-log document opened from a record: its first frame's store sequence number."""

    record: FlashRecord
    base_seq: int


def select_frames(doc: Any, first_seq: int, last_seq: int) -> int:
    """Select the rows showing store frames first_seq..last_seq in `doc`'s frames table (runs
    of rows, so a filter that hides some keeps the rest); scroll to the first. Returns the
    number of rows selected."""
    model = doc.model
    runs: list[tuple[int, int]] = []
    for seq in range(first_seq, last_seq + 1):
        row = model.row_of_seq(seq)
        if row is None:
            continue
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    tabs = getattr(doc, "tabs", None)
    if tabs is not None:
        tabs.setCurrentWidget(doc.view)
    if not runs:
        doc.view.clearSelection()
        return 0
    last_col = model.columnCount() - 1
    selection = QItemSelection()
    for top, bottom in runs:
        selection.select(model.index(top, 0), model.index(bottom, last_col))
    flags = (
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )
    doc.view.selectionModel().select(selection, flags)
    doc.view.scrollTo(model.index(runs[0][0], 0), QAbstractItemView.ScrollHint.PositionAtTop)
    return sum(bottom - top + 1 for top, bottom in runs)


class TraceLink(QObject):
    """Opens a record's bus log in `trace` with a step's frames selected, and links back."""

    #: (FlashRecord, step index, TransferData block index or None): an exchange of a linked
    #: bus log was selected in the trace's Messages tab.
    step_activated = Signal(object, int, object)
    #: (label, rows selected): the frames of a request are selected in the trace.
    frames_shown = Signal(str, int)

    def __init__(
        self,
        trace: Any,
        workspace: Callable[[], Any],
        *,
        raise_trace: Callable[[], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.trace = trace
        self._workspace = workspace
        self._raise_trace = raise_trace
        self._pending: tuple[str, FramesRequest] | None = None
        self._linked: dict[int, _Linked] = {}  # id(document) -> link
        self.last_selected = 0
        trace.file_loaded.connect(self._on_trace_file_loaded)

    def _say(self, text: str) -> None:
        say = getattr(self.trace, "status_message", None)
        if callable(say):
            say(text)
        else:
            self.trace.status.setText(text)

    def _document(self) -> Any:
        current = getattr(self.trace, "current_document", None)
        return current() if callable(current) else self.trace

    def open_frames(self, request: FramesRequest) -> bool:
        """Open `request.record`'s bus log and select its frames once loaded; False (and a
        status message in the trace) when the record has no bus log."""
        record = request.record
        ws = self._workspace()
        sha = record.buslog_sha256
        if not sha or ws is None:
            self._say(f"The {record.ecu} flash has no bus log (was it run without a workspace?)")
            return False
        if not ws.blobs.exists(sha):  # missing: say it, change nothing
            self._say(f"Bus log of the {record.ecu} flash: blob {sha[:12]}… is missing")
            return False

        def restored() -> bytes:  # on the trace's worker: the payload is put back from the image
            return load_buslog(ws, record) or b""

        name = f"{record.ecu} {record.version or ''} bus log — {request.label}".replace("  ", " ")
        self._pending = (name, request)
        self.trace.open_bytes(name, restored, "blf")
        if self._raise_trace is not None:
            self._raise_trace()
        return True

    def _link(self, doc: Any, record: FlashRecord, total: int) -> None:
        """Remember which record `doc` shows (its last `total` frames) and follow its
        Messages tab."""
        base = int(doc.store.end_seq) - int(total)
        if id(doc) not in self._linked:
            messages_view = getattr(doc, "messages_view", None)
            if messages_view is not None:
                messages_view.selectionModel().selectionChanged.connect(
                    lambda sel, _des, d=doc: self._on_messages_selected(d, sel)
                )
        self._linked[id(doc)] = _Linked(record, base)

    def _on_trace_file_loaded(self, name: str, total: int) -> None:
        if self._pending is None or self._pending[0] != name:
            # A whole bus log opened from a record elsewhere ("Bus log" of a request): link
            # its Messages tab to the record's steps too.
            found = _RECORD_LOG_NAME.fullmatch(name)
            ws = self._workspace()
            if found is not None and ws is not None:
                from fota_studio.engine.records import load_flash_record

                try:
                    record = load_flash_record(ws, int(found.group(1)))
                except Exception:  # the log opened; only the link back is missing
                    log.warning("flash record %s: not readable for its trace link", found[1])
                    return
                self._link(self._document(), record, total)
            return
        _, request = self._pending
        self._pending = None
        doc = self._document()
        self._link(doc, request.record, total)
        base = self._linked[id(doc)].base_seq
        self.last_selected = select_frames(doc, base + request.first, base + request.last)
        shown = request.last - request.first + 1
        hidden = shown - self.last_selected
        text = f"{request.label}: frames {request.first:,}–{request.last:,} selected"
        if hidden:
            text += f" ({hidden:,} hidden by the filter)"
        self._say(text)
        self.frames_shown.emit(request.label, self.last_selected)

    def step_of_line(self, doc: Any, row: int) -> tuple[FlashRecord, int, int | None] | None:
        """The record step (and block) of Messages-tab row `row` of a linked document."""
        linked = self._linked.get(id(doc))
        if linked is None:
            return None
        line = doc.messages_model.line(row)
        if not line.frame_seqs:
            return None
        found = step_at_frame(linked.record.steps, int(line.frame_seqs[0]) - linked.base_seq)
        if found is None:
            return None
        return linked.record, found[0], found[1]

    def _on_messages_selected(self, doc: Any, selected: QItemSelection) -> None:
        indexes = selected.indexes()
        if not indexes or id(doc) not in self._linked:
            return
        found = self.step_of_line(doc, indexes[0].row())
        details = getattr(doc, "details", None)
        if found is None:
            if details is not None:
                details.appendPlainText("\nFlash step: none (between steps)")
            return
        record, index, block = found
        st = record.steps[index]
        text = f"\nFlash step: {step_label(record, index, block)} — {st.detail}"
        if details is not None:
            details.appendPlainText(text)
        self.step_activated.emit(record, index, block)
