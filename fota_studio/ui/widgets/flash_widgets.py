"""Pieces the Flash panel and the technician view share: the pre-flight as rich text, the
progress bar's outcome colours, word-wrapped labels that never widen a panel, the Yes/No
question both ask before a flash starts or stops, and byte counts in words. GUI thread only.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QProgressBar, QSizePolicy, QWidget

from fota_studio.engine.preflight import CHANGE_DOWNGRADE, CHANGE_REFLASH, Preflight

#: Progress bar chunk colours per outcome (a failed flash is never left blue at 100 %).
BAR_COLORS = {"running": "", "done": "#2e8b3a", "failed": "#c62828", "cancelled": "#b26a00"}


def set_bar_state(bar: QProgressBar, state: str) -> None:
    """Colour `bar` for `state` (running / done / failed / cancelled); kept as a property."""
    color = BAR_COLORS.get(state, "")
    bar.setProperty("state", state)
    bar.setStyleSheet(f"QProgressBar::chunk {{ background-color: {color}; }}" if color else "")


def wrapping_label(text: str = "") -> QLabel:
    """A word-wrapped label that never widens its panel (long paths and messages wrap)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)
    label.setMinimumWidth(60)
    return label


def ask_question(
    parent: QWidget,
    title: str,
    text: str,
    no: QMessageBox.StandardButton = QMessageBox.StandardButton.No,
) -> bool:
    """A Yes/`no` question (`no`, the default answer, is No or Cancel): the panels' default
    `confirm`."""
    yes = QMessageBox.StandardButton.Yes
    return QMessageBox.question(parent, title, text, yes | no, no) == yes


def preflight_html(pre: Preflight) -> str:
    """The pre-flight as rich text: from → to, warnings, estimate, preconditions, blockers."""
    esc = html.escape
    ecu_line = (
        f"ECU reports <b>{esc(pre.on_ecu)}</b>"
        if pre.on_ecu
        else (
            "<b style='color:#c62828'>ECU in its bootloader (no valid application)</b>"
            if pre.in_bootloader
            else (
                f"<b style='color:#c62828'>{esc(pre.ecu_problem or 'no version read')}</b>"
                if pre.asked_ecu
                else "not read from the ECU yet (Check ECU)"
            )
        )
    )
    lines = [
        f"<b>{esc(pre.ecu)}</b>: {esc(pre.from_version)} → <b>{esc(pre.target)}</b>",
        f"Installed: {ecu_line}; recorded {esc(pre.recorded or 'nothing')}",
    ]
    warn = []
    if pre.change == CHANGE_DOWNGRADE:
        warn.append("DOWNGRADE")
    elif pre.change == CHANGE_REFLASH:
        warn.append("RE-FLASH of the installed version")
    if pre.record_disagrees:
        warn.append("the ECU does not run the recorded version")
    if not pre.signed:
        warn.append("UNSIGNED firmware")
    if warn:
        lines.append("<b style='color:#b26a00'>⚠ " + esc("; ".join(warn)) + "</b>")
    verify = (
        "the version is read and compared after the reset"
        if pre.verified_after
        else "<b>read_version is disabled: the flash will NOT be verified</b>"
    )
    lines.append(
        f"{fmt_bytes(pre.bytes_total)} in {pre.segments} segment(s), estimated "
        f"{pre.estimated_s:.0f} s ({esc(pre.estimate_basis)}); {verify}"
    )
    if not pre.asked_ecu and pre.checks:
        lines.append(
            "Preconditions (read from the ECU by the check): " + esc(", ".join(pre.checks))
        )
    for p in pre.preconditions:
        if p.ok is True:
            mark, what = "✔", f"{esc(p.value)} (allowed {esc(p.limits)})"
        elif p.ok is False:
            mark, what = "✖", f"<b>{esc(p.value)}</b>, allowed {esc(p.limits)}"
        elif p.skippable:
            mark, what = "–", f"skipped ({esc(p.why)}): {esc(p.skip_reason or 'no reason given')}"
        elif p.routine:
            mark, what = "…", esc(p.why)
        else:
            mark, what = "✖", f"<b>cannot be checked: {esc(p.why)}</b>"
        lines.append(f"{mark} {esc(p.name)}: {what}")
    if pre.blocking:
        lines.append(
            "<b style='color:#c62828'>Cannot start: " + esc("; ".join(pre.blocking)) + "</b>"
        )
    return "<br>".join(lines)


def fmt_bytes(n: float) -> str:
    """`1.50 MiB`, `12.0 KiB`, `17 B`."""
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.2f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{int(n)} B"
