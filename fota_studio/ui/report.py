"""Per-request reports for a service manager: HTML (no Qt needed) and PDF (Qt's own printing).

`request_report_html(ws, request_id)` builds a self-contained HTML page from the request, its
append-only record entries (every step with timestamps, the Checkpoint 1 decision and who made
it, the flash record with its bus-log hash, the Checkpoint 2 results, the final status) and the
record verdict (infra/record_verify.py). It shows only chain-verified fields: each request field
comes from the signed record, a table value that differs is flagged "NOT VERIFIED", a flash record
that does not match its signed hash is not shown, and the signing key (with its protection) and
the signed chain head are printed so a later truncation or rollback is detectable.
`html_to_pdf(html, path)` renders it with QTextDocument + QPdfWriter; it needs
a QGuiApplication and creates an offscreen one when none exists (CLI use). Qt is imported only
inside the PDF function so the CLI's HTML export never loads Qt. Call the PDF export from the GUI
thread (or the CLI's main thread).
"""

from __future__ import annotations

import html
import os
from enum import Enum
from pathlib import Path
from typing import Any

from fota_studio.core.flash_outcome import (
    OUTCOME_LABELS,
    FlashOutcome,
    flash_outcome,
    not_verified_reason,
)
from fota_studio.core.flash_record import FlashRecord
from fota_studio.core.update_request import STEP_TITLES, Step
from fota_studio.engine.records import load_flash_record
from fota_studio.infra.record_signing import UNPROTECTED_NOTE, short_fingerprint
from fota_studio.infra.record_verify import request_verdict, verify_workspace
from fota_studio.infra.requests_store import RecordEntry, RequestsStore


def _flash_outcome_text(rec: FlashRecord) -> str:
    """Flashed and verified / Flashed, NOT verified (why) / Failed — as the record says."""
    outcome = flash_outcome(rec)
    label = OUTCOME_LABELS[outcome]
    if outcome is FlashOutcome.NOT_VERIFIED:
        return f"{label}: {not_verified_reason(rec)}"
    if outcome is FlashOutcome.VERIFIED:
        return f"{label} (version {rec.version_after})"
    return label


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def status_text(req: Any) -> str:
    """The status as users read it: "Successful", or "Failed (flash failed)"."""
    return status_words(str(req.status.value), str(req.outcome or ""))


def status_words(status: str, outcome: str) -> str:
    """ "Successful", or "Failed (flash failed)" from a status and an outcome value."""
    if not outcome or outcome == "success":
        return status
    return f"{status} ({outcome.replace('_', ' ')})"


def describe_entry(e: RecordEntry) -> str:
    """A one-line human text of a record entry."""
    d = e.data
    if e.kind == "step":
        try:
            title = STEP_TITLES[Step(d.get("step", ""))]
        except ValueError:
            title = str(d.get("step", ""))
        detail = f": {d['detail']}" if d.get("detail") else ""
        return f"{title} — {d.get('state', '')}{detail}"
    if e.kind == "created":
        warn = d.get("confirmed_warnings") or []
        return (
            f"created by {d.get('by')}: {d.get('ecu')} {d.get('installed_before') or '?'} → "
            f"{d.get('version')} ({d.get('repository')})"
            + (f"; confirmed warnings: {'; '.join(warn)}" if warn else "")
        )
    if e.kind == "decision":
        return f"Checkpoint 1 decision: {d.get('decision')} by {d.get('by')}"
    if e.kind == "flash_record":
        return (
            f"flash record #{d.get('flash_record_id')}: {d.get('result')}, {d.get('bytes')} bytes"
            + (
                {"verified": ", version verified", "not_verified": ", NOT verified"}.get(
                    str(d.get("verification")), ""
                )
            )
            + (f", failed at {d.get('failed_step')}: {d.get('error')}" if d.get("error") else "")
            + (
                f", bus log sha256 {str(d.get('buslog_sha256'))[:16]}…"
                if d.get("buslog_sha256")
                else ""
            )
        )
    if e.kind == "checkpoint_2":
        checks = ", ".join(
            f"{c['name']} {'ok' if c['ok'] else 'FAILED'} ({c['detail']})"
            for c in d.get("checks", [])
        )
        return f"Checkpoint 2: {checks or 'no built-in checks'}; OEM verdict {d.get('oem_verdict')}"
    if e.kind == "status":
        return f"status {d.get('from')} → {d.get('to')}"
    if e.kind == "final":
        return f"final: {d.get('status')}" + (f" — {d.get('error')}" if d.get("error") else "")
    if e.kind == "state":
        changed = ", ".join(f"{k} {v}" for k, v in sorted((e.state or {}).items()))
        return f"fields set: {changed}"
    if e.kind == "attempt_started":
        return f"re-run: attempt {d.get('attempt')} by {d.get('by')} (after {d.get('after')})"
    return f"{e.kind}: {d}"


def _field(label: str, col: str, req: Any, chain: dict[str, Any] | None) -> str:
    table = getattr(req, col)
    if isinstance(table, Enum):
        table = table.value
    if chain is None or col not in chain:
        return (
            f"<tr><td><b>{label}</b></td><td>{_esc(table) or '—'} "
            "<i>(not verified: not in the signed record)</i></td></tr>"
        )
    said = chain[col]
    if col == "approved":
        said, table = bool(said), bool(table)
    if said != table:
        return (
            f"<tr><td><b>{label}</b></td><td>{_esc(said) or '—'} <b>(NOT VERIFIED: the table "
            f"says {_esc(table) or '—'})</b></td></tr>"
        )
    return f"<tr><td><b>{label}</b></td><td>{_esc(said) or '—'}</td></tr>"


def _frames_cell(record_id: int, index: int, step: Any) -> str:
    """A step's bus-log frames as a link that opens them in the trace (issue 19)."""
    from fota_studio.ui.trace_link import frames_href

    first, last = getattr(step, "frame_first", None), getattr(step, "frame_last", None)
    if first is None or last is None:
        return ""
    return f"<a href='{frames_href(record_id, index)}'>{first}–{last}</a>"


def _grid(headers: tuple[str, ...], rows: list[tuple[str, ...]], compact: bool) -> str:
    """A bordered table of `rows` (cells already HTML); `compact`: one line per row with the
    cells joined by " · " (what the Requests panel shows: a QTextDocument table costs a few
    ms of GUI-thread layout on every click, a line almost nothing)."""
    if compact:
        return "".join("<p>" + " · ".join(c for c in row if c) + "</p>" for row in rows)
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table border='1' cellspacing='0' cellpadding='3'><tr>{head}</tr>{body}</table>"


def _fields_block(rows: str, compact: bool) -> str:
    """The label/value rows (`_field` output) as a table, or `compact` as lines."""
    if not compact:
        return f'<table cellpadding="3">\n{rows}\n</table>'
    lines = rows.replace("<tr><td><b>", "<b>").replace("</b></td><td>", "</b>: ")
    return "<p>" + lines.replace("</td></tr>", "<br>") + "</p>"


def request_report_html(
    ws: Any, request_id: int, *, full: bool = False, compact: bool = False
) -> str:
    """The report of one request as a self-contained HTML document (chain-verified fields).

    `full=False` (the Requests panel's detail view) uses the incremental verdict: the chain
    from the last verified head on plus this request. `full=True` (exported reports) first
    re-verifies the whole chain, as `records verify` does (bus logs of other requests aside).
    `compact=True` (the panel): the same facts with lines instead of tables (`_grid`).
    """
    store = RequestsStore(ws)
    req = store.get(request_id)
    entries = store.entries(request_id)
    own = request_verdict(ws, request_id)
    whole = verify_workspace(ws, check_blobs=False) if full else own
    problems = list(dict.fromkeys(whole.problems + own.problems))
    chain = own.chain_fields.get(request_id)
    bad_ids = {p.split()[1] for p in problems if p.startswith("entry ")}

    def mark(e: RecordEntry) -> str:
        if str(e.id) in bad_ids:
            return "<b>NOT VERIFIED</b>"
        return "signed" if e.sig else "hash only"

    history = _grid(
        ("Time (UTC)", "Attempt", "Entry", "Hash", "Verified"),
        [
            (
                _esc(e.at),
                f"attempt {e.attempt}" if compact else str(e.attempt),
                _esc(describe_entry(e)),
                f"<code>{_esc(e.hash[:12])}</code>",
                mark(e),
            )
            for e in entries
        ],
        compact,
    )
    flash = ""
    fid = req.flash_record_id
    if fid:
        flash_problems = [p for p in problems if p.startswith(f"flash record #{fid}")]
        if flash_problems:
            flash = (
                f"<h2>Flash record #{fid}</h2><p><b>NOT VERIFIED</b> — not shown: "
                f"{_esc('; '.join(flash_problems))}</p>"
            )
        else:
            try:
                rec = load_flash_record(ws, fid)
                steps = _grid(
                    ("UDS step", "Result", "Detail", "Bus-log frames"),
                    [
                        (
                            _esc(s.step),
                            "ok" if s.ok else "FAILED",
                            _esc(s.detail),
                            _frames_cell(fid, i, s),
                        )
                        for i, s in enumerate(rec.steps)
                    ],
                    compact,
                )
                flash = (
                    f"<h2>Flash record #{fid}</h2>"
                    f"<p>Result {_esc(rec.result)}: <b>{_esc(_flash_outcome_text(rec))}</b>; "
                    f"{rec.bytes_total} bytes; "
                    f"tester {_esc(rec.tester)}; "
                    f"image sha256 <code>{_esc(rec.image_sha256)}</code>; bus log "
                    f"{rec.buslog_frames} frames, sha256 <code>{_esc(rec.buslog_sha256)}</code> "
                    "(re-hashed)</p>"
                    f"{steps}"
                )
            except Exception as exc:  # a missing record must not hide the rest of the report
                flash = f"<p>Flash record #{fid} unreadable: {_esc(exc)}</p>"
    verdict = (
        "intact (signatures, signed head, fields and bus log verified)"
        if not problems
        else "<b>TAMPERED</b>: " + _esc("; ".join(problems))
    )
    key = own.key
    key_text = (
        f"Ed25519 {_esc(short_fingerprint(key.fingerprint))} "
        f"(sha256 <code>{_esc(key.fingerprint)}</code>)"
        + (f"; <b>{_esc(UNPROTECTED_NOTE)}</b>" if key.unprotected else "")
        if key is not None
        else "<b>none: records not signed</b>"
    )
    head = own.head or {}
    head_text = (
        f"{_esc(head.get('count'))} entries, last <code>{_esc(head.get('last_hash'))}</code>, "
        f"{_esc(head.get('at'))}, signature <code>{_esc(str(head.get('sig', ''))[:32])}…</code>"
        if head
        else "—"
    )
    if chain is not None and "status" in chain:
        said = status_words(str(chain["status"]), str(chain.get("outcome") or ""))
        table = status_text(req)
        status_row = (
            f"<tr><td><b>Status</b></td><td>{_esc(said)}</td></tr>"
            if said == table
            else f"<tr><td><b>Status</b></td><td>{_esc(said)} <b>(NOT VERIFIED: the table says "
            f"{_esc(table)})</b></td></tr>"
        )
    else:
        status_row = _field("Status", "status", req, chain)
    fields = f"""{status_row}
{_field("Error", "error", req, chain)}
{_field("Machine", "machine", req, chain)}
{_field("ECU", "ecu", req, chain)}
{_field("Firmware version", "version", req, chain)}
{_field("Installed before", "installed_before", req, chain)}
{_field("Repository", "brand", req, chain)}
{_field("Model", "model", req, chain)}
{_field("Created", "created_at", req, chain)}
{_field("Created by", "created_by", req, chain)}
{_field("Attempts", "attempt", req, chain)}
<tr><td><b>Record chain</b></td><td>{verdict}</td></tr>
<tr><td><b>Signing key</b></td><td>{key_text}</td></tr>
<tr><td><b>Signed head</b></td><td>{head_text}</td></tr>"""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Update request #{req.id}</title></head>
<body style="font-family: sans-serif">
<h1>Update request #{req.id}: {_esc(req.ecu)} {_esc(req.version)} on {_esc(req.machine)}</h1>
{_fields_block(fields, compact)}
<h2>History</h2>
{history}
{flash}
</body></html>
"""


def html_to_pdf(html_text: str, path: Path | str) -> None:
    """Render HTML into a PDF file with QTextDocument + QPdfWriter."""
    from PySide6.QtGui import QGuiApplication, QPageSize, QPdfWriter, QTextDocument

    if QGuiApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _keep.append(QGuiApplication([]))
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setResolution(96)
    writer.setTitle("FOTA Studio update request report")
    doc = QTextDocument()
    doc.setHtml(html_text)
    doc.print_(writer)
    del writer  # the PDF is finished when the writer is destroyed


_keep: list[Any] = []


def export_request_report(ws: Any, request_id: int, path: Path | str, fmt: str = "html") -> Path:
    """Write the report of one request as "html" or "pdf" to `path`."""
    out = Path(path)
    text = request_report_html(ws, request_id, full=True)
    if fmt == "pdf":
        html_to_pdf(text, out)
    else:
        out.write_text(text, encoding="utf-8")
    return out
