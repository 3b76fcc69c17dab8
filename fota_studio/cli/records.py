"""`fota-studio records`: list, show, verify and export the update-request records.

`records list` shows every request with its final status, `records show ID` its history (every
entry with time, attempt and hash), `records verify` re-hashes the append-only entry chain (exit
1 when tampered), `records export ID --format html|pdf --output F` writes the service report
(PDF through Qt's printing, loaded only for PDF). Runs on the main thread.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fota_studio.cli.common import fail, open_workspace, print_table
from fota_studio.infra.requests_store import RequestsStore


def register(subparsers: Any) -> None:
    """Add the `records` command group."""
    p = subparsers.add_parser(
        "records",
        help="update-request records: list, show, verify, export",
        description="The traceable records of update requests (append-only, hash-chained).",
    )
    sub = p.add_subparsers(dest="records_cmd", metavar="<action>", required=True)
    ls = sub.add_parser("list", help="list update requests and their status")
    ls.set_defaults(func=_list)
    show = sub.add_parser("show", help="show the history of one request (or one flash job)")
    show.add_argument("id", type=int)
    show.set_defaults(func=_show)
    ver = sub.add_parser("verify", help="check the hash chain of every record entry")
    ver.set_defaults(func=_verify)
    exp = sub.add_parser("export", help="export the report of one request")
    exp.add_argument("id", type=int)
    exp.add_argument("--format", choices=["html", "pdf"], default="html")
    exp.add_argument("--output", type=Path, required=True)
    show.add_argument(
        "--flash", action="store_true", help="ID is a flash job (the list's Flash jobs table)"
    )
    exp.set_defaults(func=_export)


def _list(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        rows = [
            [
                str(r.id),
                r.machine,
                r.ecu,
                r.version,
                r.status.value,
                r.outcome,
                str(r.attempt),
                r.created_at,
            ]
            for r in RequestsStore(ws).list()
        ]
    print_table(
        ["ID", "Machine", "ECU", "Version", "Status", "Outcome", "Attempts", "Created"], rows
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from fota_studio.ui.report import describe_entry

    with open_workspace(args) as ws:
        store = RequestsStore(ws)
        req = store.get(args.id)
        print(f"request #{req.id}: {req.ecu} {req.version} on {req.machine}")
        print(f"  status {req.status.value}" + (f" ({req.outcome})" if req.outcome else ""))
        if req.error:
            print(f"  error: {req.error}")
        print(f"  created {req.created_at} by {req.created_by}; attempts {req.attempt}")
        for e in store.entries(req.id):
            print(f"  {e.at}  [{e.attempt}] {describe_entry(e)}  ({e.hash[:12]})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
    _list_flash_jobs(args)
    return 0


def _list_flash_jobs(args: argparse.Namespace) -> None:
    """Every flash job (direct flashes and requests' flashes), interrupted ones included."""
    from fota_studio.engine.records import list_flash_records

    with open_workspace(args) as ws:
        jobs = list_flash_records(ws, limit=1 << 30)
    if not jobs:
        return
    print("\nFlash jobs (`records show --flash ID`):")
    print_table(
        ["ID", "Started", "Machine", "ECU", "Version", "Result", "Bus log"],
        [[str(j.id), j.started_at, j.machine, j.ecu, j.version, j.result, _short(j)] for j in jobs],
    )


def _short(job: Any) -> str:
    return (job.buslog_sha256 or "")[:12] or "-"


def _show_flash_job(args: argparse.Namespace) -> int:
    """`records show --flash ID`: one flash job's record and its bus log."""
    from fota_studio.engine.records import load_flash_record

    with open_workspace(args) as ws:
        rec = load_flash_record(ws, args.id)
        size = ws.blobs.path(rec.buslog_sha256).stat().st_size if rec.buslog_sha256 else 0
    print(f"flash job #{args.id}: {rec.ecu} {rec.version} on {rec.machine or '-'}")
    print(f"  result {rec.result}" + (f" at {rec.failed_step}" if rec.failed_step else ""))
    if rec.error:
        print(f"  error: {rec.error}")
    print(f"  bytes {rec.bytes_sent}/{rec.bytes_total}; tester {rec.tester or '-'}")
    if rec.buslog_sha256:
        print(f"  bus log {rec.buslog_sha256} ({rec.buslog_frames} frames, {size} bytes)")
    for step in rec.steps:
        state = "running" if step.ok is None else ("ok" if step.ok else "FAILED")
        print(f"  step {step.step}: {state}" + (f" - {step.detail}" if step.detail else ""))
        store = RequestsStore(ws)
        problems = store.verify_chain()
        count = len(store.entries())
    if problems:
        for p in problems:
            print(f"TAMPERED: {p}")
    if getattr(args, "flash", False):
        return _show_flash_job(args)
        return 1
    print(f"records intact: {count} entries, hash chain verified")
    return 0


def _export(args: argparse.Namespace) -> int:
    from fota_studio.ui.report import export_request_report

    with open_workspace(args) as ws:
        if RequestsStore(ws).find(args.id) is None:
            return fail(f"no update request #{args.id}")
        out = export_request_report(ws, args.id, args.output, args.format)
    print(f"report of request #{args.id} written to {out}")
    return 0
