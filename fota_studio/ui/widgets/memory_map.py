"""A memory-map strip: a firmware image's segments and gaps drawn along the address axis.

By default the strip is to scale (x ∝ address) from the start of the first segment (or of a
given region) to the end of the last one; a segment too small to see still gets a couple of
pixels so it never disappears. When gaps dominate (a few KiB of code spread over MiBs), the
broken-axis mode draws every large gap as a narrow fixed-width break ("⫽") so the segments get
the width; it is switched from the context menu or `set_broken_axis`. Addresses appear as labels
under the strip and as tooltips on each piece. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPoint, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QContextMenuEvent,
    QFontMetrics,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QMenu, QToolTip, QWidget

#: A gap wider than this share of the total span is drawn as a break in broken-axis mode.
BREAK_MIN_SHARE = 0.05
BREAK_WIDTH_PX = 14
MIN_SEGMENT_PX = 2
STRIP_HEIGHT_PX = 26
MARGIN_PX = 6


@dataclass(frozen=True)
class Piece:
    """One laid-out piece of the strip: a segment, a gap (to scale) or a broken gap."""

    kind: str  # "segment" | "gap" | "break"
    start: int  # first address
    end: int  # one past the last address
    x0: float
    x1: float

    @property
    def length(self) -> int:
        """Bytes covered by the piece."""
        return self.end - self.start

    def describe(self) -> str:
        """Tooltip text: kind, address range and size."""
        what = "segment" if self.kind == "segment" else "gap"
        return (
            f"{what} 0x{self.start:08X} – 0x{self.end - 1:08X}\n"
            f"{self.length:,} bytes ({format_size(self.length)})"
        )


def format_size(n: int) -> str:
    """Human size: bytes, KiB or MiB."""
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def layout_pieces(
    segments: Sequence[tuple[int, int]],
    width_px: float,
    *,
    broken_axis: bool = False,
    region: tuple[int, int] | None = None,
) -> list[Piece]:
    """Lay segments `(address, length)` and the gaps between them out over `width_px` pixels."""
    segs = sorted((a, a + n) for a, n in segments if n > 0)
    if not segs or width_px <= 0:
        return []
    lo, hi = segs[0][0], segs[-1][1]
    if region is not None:
        lo, hi = min(lo, region[0]), max(hi, region[0] + region[1])
    raw: list[tuple[str, int, int]] = []
    cursor = lo
    for a, b in segs:
        if a > cursor:
            raw.append(("gap", cursor, a))
        raw.append(("segment", a, b))
        cursor = max(cursor, b)
    if hi > cursor:
        raw.append(("gap", cursor, hi))
    span = hi - lo
    kinds = [
        "break" if broken_axis and k == "gap" and (e - s) > BREAK_MIN_SHARE * span else k
        for k, s, e in raw
    ]
    fixed = BREAK_WIDTH_PX * kinds.count("break")
    scaled_bytes = sum(e - s for (_, s, e), k in zip(raw, kinds, strict=True) if k != "break")
    avail = max(1.0, width_px - fixed)
    # Segments narrower than MIN_SEGMENT_PX are widened; take that width from the scale.
    min_total = MIN_SEGMENT_PX * kinds.count("segment")
    scale = max(0.0, avail - min_total) / scaled_bytes if scaled_bytes else 0.0
    pieces: list[Piece] = []
    x = 0.0
    for (_, s, e), k in zip(raw, kinds, strict=True):
        if k == "break":
            w = float(BREAK_WIDTH_PX)
        elif k == "segment":
            w = (e - s) * scale + MIN_SEGMENT_PX
        else:
            w = (e - s) * scale
        pieces.append(Piece(k, s, e, x, x + w))
        x += w
    return pieces


def gaps_dominate(segments: Sequence[tuple[int, int]]) -> bool:
    """True when the gaps cover more than 90 % of the span (to-scale drawing is mostly empty)."""
    segs = sorted((a, a + n) for a, n in segments if n > 0)
    if len(segs) < 2:
        return False
    span = segs[-1][1] - segs[0][0]
    data = sum(b - a for a, b in segs)
    return span > 0 and data / span < 0.1


class MemoryMapWidget(QWidget):
    """Draws segments `(address, length)` and gaps to scale; optional broken axis."""

    broken_axis_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._segments: tuple[tuple[int, int], ...] = ()
        self._region: tuple[int, int] | None = None
        self._broken = False
        self.setMouseTracking(True)
        self.setMinimumHeight(STRIP_HEIGHT_PX + 2 * MARGIN_PX + QFontMetrics(self.font()).height())
        self.setToolTip("")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)

    # -- data ----------------------------------------------------------------------------------

    def set_segments(
        self, segments: Sequence[tuple[int, int]], region: tuple[int, int] | None = None
    ) -> None:
        """Show these `(address, length)` segments; `region` widens the axis (optional)."""
        self._segments = tuple((int(a), int(n)) for a, n in segments)
        self._region = region
        self.update()

    def segments(self) -> tuple[tuple[int, int], ...]:
        """The segments shown."""
        return self._segments

    def broken_axis(self) -> bool:
        """True in broken-axis mode."""
        return self._broken

    def set_broken_axis(self, on: bool) -> None:
        """Switch between to-scale (False) and broken-axis (True) drawing."""
        if on != self._broken:
            self._broken = on
            self.broken_axis_changed.emit(on)
            self.update()

    def pieces(self) -> list[Piece]:
        """The current layout in widget pixels (also what paint and tooltips use)."""
        out = layout_pieces(
            self._segments,
            self.width() - 2 * MARGIN_PX,
            broken_axis=self._broken,
            region=self._region,
        )
        return [Piece(p.kind, p.start, p.end, p.x0 + MARGIN_PX, p.x1 + MARGIN_PX) for p in out]

    def piece_at(self, x: float) -> Piece | None:
        """The piece under widget x coordinate `x`, if any."""
        for p in self.pieces():
            if p.x0 <= x < p.x1:
                return p
        return None

    # -- Qt ------------------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        """Wide and one strip plus a label line high."""
        return QSize(400, self.minimumHeight())

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the strip: segments filled, gaps hatched, breaks as ⫽, address labels below."""
        del event
        painter = QPainter(self)
        try:
            pal = self.palette()
            painter.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
            pieces = self.pieces()
            top = MARGIN_PX
            fm = painter.fontMetrics()
            if not pieces:
                painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no image")
                return
            seg_color = QColor(46, 125, 190)
            gap_color = pal.color(QPalette.ColorRole.Mid)
            for p in pieces:
                rect = QRectF(p.x0, top, max(p.x1 - p.x0, 0.5), STRIP_HEIGHT_PX)
                if p.kind == "segment":
                    painter.fillRect(rect, seg_color)
                elif p.kind == "gap":
                    painter.fillRect(
                        rect, QColor(gap_color.red(), gap_color.green(), gap_color.blue(), 60)
                    )
                else:
                    painter.setPen(QPen(pal.color(QPalette.ColorRole.Text), 1.5))
                    mid = (p.x0 + p.x1) / 2
                    for dx in (-3, 3):
                        painter.drawLine(
                            int(mid + dx - 3), top + STRIP_HEIGHT_PX, int(mid + dx + 3), top
                        )
            painter.setPen(pal.color(QPalette.ColorRole.Text))
            painter.drawRect(
                QRectF(pieces[0].x0, top, pieces[-1].x1 - pieces[0].x0, STRIP_HEIGHT_PX)
            )
            # Address labels: first and last address always; segment starts where they fit.
            y = top + STRIP_HEIGHT_PX + fm.ascent() + 2
            taken: list[tuple[float, float]] = []

            def label(x: float, text: str, align_right: bool = False) -> None:
                w = fm.horizontalAdvance(text)
                x0 = x - w if align_right else x
                x0 = min(max(x0, 0.0), self.width() - w)
                if any(x0 < b + 6 and x0 + w > a - 6 for a, b in taken):
                    return
                taken.append((x0, x0 + w))
                painter.drawText(QPoint(int(x0), int(y)), text)

            label(pieces[0].x0, f"0x{pieces[0].start:X}")
            label(pieces[-1].x1, f"0x{pieces[-1].end:X}", align_right=True)
            for p in pieces[1:]:
                if p.kind == "segment":
                    label(p.x0, f"0x{p.start:X}")
        finally:
            painter.end()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Show the piece under the mouse as a tooltip."""
        p = self.piece_at(event.position().x())
        if p is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(event.globalPosition().toPoint(), p.describe(), self)
        super().mouseMoveEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """Offer the broken-axis toggle."""
        menu = QMenu(self)
        act = QAction("Broken axis (compress large gaps)", menu)
        act.setCheckable(True)
        act.setChecked(self._broken)
        act.toggled.connect(self.set_broken_axis)
        menu.addAction(act)
        menu.exec(event.globalPos())
