"""Per-request reports for a service manager: HTML (no Qt needed) and PDF (Qt's own printing).

`request_report_html(ws, request_id)` builds a self-contained HTML page from the request, its
append-only record entries (every step with timestamps, the Checkpoint 1 decision and who made
it, the flash record with its bus-log hash, the Checkpoint 2 results, the final status) and the
hash-chain verdict. `html_to_pdf(html, path)` renders it with QTextDocument + QPdfWriter; it needs
a QGuiApplication and creates an offscreen one when none exists (CLI use). Qt is imported only
inside the PDF function so the CLI's HTML export never loads Qt. Call the PDF export from the GUI
thread (or the CLI's main thread).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from fota_studio.core.update_request import STEP_TITLES, Step
from fota_studio.engine.records import load_flash_record
from fota_studio.infra.requests_store import RecordEntry, RequestsStore


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def status_text(req: Any) -> str:
    """The status as users read it: "Successful", or "Failed (flash failed)"."""
    outcome = str(req.outcome or "")
    if not outcome or outcome == "success":
        return str(req.status.value)
    return f"{req.status.value} ({outcome.replace('_', ' ')})"


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
    if e.kind == "attempt_started":
        return f"re-run: attempt {d.get('attempt')} by {d.get('by')} (after {d.get('after')})"
    return f"{e.kind}: {d}"


def request_report_html(ws: Any, request_id: int) -> str:
    """The report of one request as a self-contained HTML document."""
    store = RequestsStore(ws)
    req = store.get(request_id)
    entries = store.entries(request_id)
    problems = store.verify_chain()
    rows = "".join(
        f"<tr><td>{_esc(e.at)}</td><td>{e.attempt}</td><td>{_esc(describe_entry(e))}</td>"
        f"<td><code>{_esc(e.hash[:12])}</code></td></tr>"
        for e in entries
    )
    flash = ""
    if req.flash_record_id:
        try:
            rec = load_flash_record(ws, req.flash_record_id)
            steps = "".join(
                f"<tr><td>{_esc(s.step)}</td><td>{'ok' if s.ok else 'FAILED'}</td>"
                f"<td>{_esc(s.detail)}</td></tr>"
                for s in rec.steps
            )
            flash = (
                f"<h2>Flash record #{req.flash_record_id}</h2>"
                f"<p>Result {_esc(rec.result)}; {rec.bytes_total} bytes; "
                f"tester {_esc(rec.tester)}; "
                f"image sha256 <code>{_esc(rec.image_sha256)}</code>; bus log "
                f"{rec.buslog_frames} frames, sha256 <code>{_esc(rec.buslog_sha256)}</code></p>"
                f"<table border='1' cellspacing='0' cellpadding='3'><tr><th>UDS step</th>"
                f"<th>Result</th><th>Detail</th></tr>{steps}</table>"
            )
        except Exception as exc:  # a missing record must not hide the rest of the report
            flash = f"<p>Flash record #{req.flash_record_id} unreadable: {_esc(exc)}</p>"
    chain = (
        "intact (every entry matches its hash)"
        if not problems
        else "<b>TAMPERED</b>: " + _esc("; ".join(problems))
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Update request #{req.id}</title></head>
<body style="font-family: sans-serif">
<h1>Update request #{req.id}: {_esc(req.ecu)} {_esc(req.version)} on {_esc(req.machine)}</h1>
<table cellpadding="3">
<tr><td><b>Status</b></td><td>{_esc(status_text(req))}</td></tr>
<tr><td><b>Error</b></td><td>{_esc(req.error) or "—"}</td></tr>
<tr><td><b>Machine / ECU</b></td><td>{_esc(req.machine)} / {_esc(req.ecu)}</td></tr>
<tr><td><b>Firmware</b></td><td>{_esc(req.brand)} / {_esc(req.model)} {_esc(req.version)}
 (installed before: {_esc(req.installed_before) or "?"})</td></tr>
<tr><td><b>Created</b></td><td>{_esc(req.created_at)} by {_esc(req.created_by)}</td></tr>
<tr><td><b>Attempts</b></td><td>{req.attempt}</td></tr>
<tr><td><b>Record chain</b></td><td>{chain}</td></tr>
</table>
<h2>History</h2>
<table border="1" cellspacing="0" cellpadding="3">
<tr><th>Time (UTC)</th><th>Attempt</th><th>Entry</th><th>Hash</th></tr>
{rows}
</table>
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
    text = request_report_html(ws, request_id)
    if fmt == "pdf":
        html_to_pdf(text, out)
    else:
        out.write_text(text, encoding="utf-8")
    return out
