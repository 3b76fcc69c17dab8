"""`fota-studio records`: list, show, verify and export the update-request records.

`records list` shows every request with its final status, `records show ID` its history (every
entry with time, attempt and hash), `records verify` runs the full check of
infra/record_verify.py (signatures, signed head, table fields against the chain, flash records,
bus-log blobs, SQLite integrity; one line per problem, exit 1), `records verify --bundle FILE
[--key PUBKEY]` checks an exported bundle without a workspace, `records export ID --format
html|pdf --output F` writes the service report (PDF through Qt's printing, loaded only for PDF),
`records export ID --bundle FILE` the signed bundle, `records export-key` prints the
workspace's record-signing public key and `records protect-key --to keyring|passphrase` moves
its private key out of an unprotected file (admin passphrase needed). Main thread.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from fota_studio.cli.common import (
    Command,
    add_group,
    arg,
    authorised_workspace,
    fail,
    open_workspace,
    print_table,
    succeed,
)
from fota_studio.core.errors import WorkspaceError
from fota_studio.infra.access import Action
from fota_studio.infra.record_verify import VerifyReport
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace


def register(subparsers: Any) -> None:
    """Add the `records` command group."""
    request_id = arg("id", type=int)
    add_group(
        subparsers,
        "records",
        (
            Command("list", _list, "list update requests and their status"),
            Command(
                "show",
                _show,
                "show the history of one request (or one flash job)",
                args=(
                    request_id,
                    arg(
                        "--flash",
                        action="store_true",
                        help="ID is a flash job (the list's Flash jobs table)",
                    ),
                    arg(
                        "--buslog",
                        type=Path,
                        metavar="FILE",
                        help="with --flash: write the job's whole bus log to FILE (.blf, .asc, "
                        ".trc, .csv, …; the TransferData payload kept by reference is put back "
                        "from the image and checked)",
                    ),
                ),
            ),
            Command(
                "verify",
                _verify,
                "check signatures, the signed head, table fields, flash records and bus logs",
                "Exit 0 when the records are intact, 1 naming each problem.",
                args=(
                    arg("--bundle", type=Path, help="check an exported bundle instead"),
                    arg(
                        "--since",
                        type=Path,
                        metavar="BUNDLE",
                        help="a bundle exported earlier from this workspace: its signed head "
                        "must still be in the chain (detects a rollback to an older copy)",
                    ),
                    arg(
                        "--key",
                        help="the expected record-signing public key: a file (PEM or hex, from "
                        "`records export-key`) or 64 hex digits",
                    ),
                ),
            ),
            Command(
                "export",
                _export,
                "export the report or the signed bundle of one request",
                args=(
                    request_id,
                    arg("--format", choices=["html", "pdf"], default="html"),
                    arg("--output", type=Path, help="the report file (HTML or PDF)"),
                    arg("--bundle", type=Path, help="write the self-contained signed bundle here"),
                ),
            ),
            Command(
                "protect-key",
                _protect_key,
                "move the record-signing private key into the OS keyring or a passphrase file",
                "The key (and every signature) stays the same. For --to passphrase the new "
                "passphrase comes from the environment variable "
                "FOTA_STUDIO_RECORD_KEY_PASSPHRASE.",
                args=(arg("--to", choices=["keyring", "passphrase"], default="keyring"),),
                changes_state=True,
            ),
            Command(
                "export-key",
                _export_key,
                "print the workspace's record-signing public key",
                args=(arg("--output", type=Path, help="also write the PEM to this file"),),
            ),
        ),
        help="update-request records: list, show, verify, export",
        description="The traceable records of update requests (append-only, hash-chained).",
        dest="records_cmd",
    )


def differing_rows(ws: Workspace) -> set[int] | None:
    """Ids of the requests whose shown fields the signed chain contradicts (one pass over the
    chain, infra/record_verify.requests_differing); None when the records cannot be read."""
    from fota_studio.infra.record_verify import requests_differing

    try:
        return requests_differing(ws)
    except (sqlite3.DatabaseError, WorkspaceError, ValueError, TypeError, KeyError):
        return None


def mark(rid: int, differing: set[int] | None) -> str:
    """The `!` column's cell of one request row."""
    return "!" if differing is not None and rid in differing else ""


def print_differing_footer(differing: set[int] | None) -> None:
    """The line under a request table saying which rows are NOT VERIFIED, and what to run."""
    if differing is None:
        print("! the records could not be checked (damaged) — run `fota-studio records verify`")
    elif differing:
        n = len(differing)
        rows = "1 row differs" if n == 1 else f"{n} rows differ"
        print(f"! NOT VERIFIED: {rows} from the signed record — run `fota-studio records verify`")


def _list(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        differing = differing_rows(ws)
        rows = [
            [
                mark(r.id, differing),
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
        ["!", "ID", "Machine", "ECU", "Version", "Status", "Outcome", "Attempts", "Created"], rows
    )
    print_differing_footer(differing)
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
    from fota_studio.core.flash_outcome import outcome_text

    print(f"  outcome: {outcome_text(rec)}")
    if rec.error:
        print(f"  error: {rec.error}")
    print(f"  bytes {rec.bytes_sent}/{rec.bytes_total}; tester {rec.tester or '-'}")
    if rec.buslog_sha256:
        print(f"  bus log {rec.buslog_sha256} ({rec.buslog_frames} frames, {size} bytes)")
        if rec.buslog_elided:
            kept = sum(int(r[5]) for r in rec.buslog_elided)
            file_sha = str((rec.buslog_image or {}).get("file_sha256", ""))
            print(
                f"  TransferData payload of {kept} bytes kept by reference to image file "
                f"{file_sha[:12]}… ({len(rec.buslog_elided)} requests, CRC-32 each)"
            )
    for step in rec.steps:
        state = "running" if step.ok is None else ("ok" if step.ok else "FAILED")
        frames = ""
        if step.frame_first is not None and step.frame_last is not None:
            # Bus-log frame indexes (0-based, inclusive): where to look in the BLF (issue 19).
            frames = f" [frames {step.frame_first}-{step.frame_last}"
            frames += f", {len(step.block_frames)} blocks]" if step.block_frames else "]"
        print(f"  step {step.step}: {state}{frames}" + (f" - {step.detail}" if step.detail else ""))
    if args.buslog is not None:
        return _write_buslog(args, rec)
    return 0


def _write_buslog(args: argparse.Namespace, rec: Any) -> int:
    """`records show --flash ID --buslog FILE`: the whole bus log, restored and checked."""
    import io

    import can

    from fota_studio.engine.records import load_buslog
    from fota_studio.infra.tracefile import write_log

    with open_workspace(args) as ws:
        data = load_buslog(ws, rec)
    if data is None:
        return fail(f"flash job #{args.id} has no bus log (it ran without a workspace)")
    report = write_log(args.buslog, can.BLFReader(io.BytesIO(data)))
    restored = sum(int(r[5]) for r in rec.buslog_elided)
    note = f", {restored} payload bytes put back from the image" if restored else ""
    return succeed(f"wrote {report.written} frames to {args.buslog}{note}")


def _show(args: argparse.Namespace) -> int:
    from fota_studio.ui.report import describe_entry

    if getattr(args, "flash", False):
        return _show_flash_job(args)
    if getattr(args, "buslog", None) is not None:
        return fail("--buslog needs --flash: a bus log belongs to a flash job, not a request")
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


def _key_text(value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value)
    if len(value) != 64 and path.is_file():
        return path.read_text(encoding="utf-8", errors="replace")
    return value


def _head_of(path: Path) -> dict[str, Any]:
    """The signed chain head inside a bundle file; WorkspaceError naming the file."""
    from fota_studio.infra.record_bundle import read_bundle

    try:
        bundle = read_bundle(path.read_bytes())
    except OSError as exc:
        raise WorkspaceError(f"cannot read {path}: {exc.strerror}") from None
    statement = bundle.get("statement")
    head = statement.get("head") if isinstance(statement, dict) else None
    needed = ("count", "last_hash", "at", "first_signed", "fingerprint")
    if not isinstance(head, dict) or not all(k in head for k in needed):
        raise WorkspaceError(f"{path}: the bundle holds no signed chain head")
    if not isinstance(head["count"], int) or not isinstance(head["first_signed"], int):
        raise WorkspaceError(f"{path}: the bundle's chain head is malformed")
    return head


def _print_report(rep: VerifyReport, what: str) -> int:
    for n in rep.notes:
        print(f"note: {n}")
    if rep.problems:
        for p in rep.problems:
            print(f"TAMPERED: {p}")
        print(f"error: {len(rep.problems)} problem(s) in {what}", file=sys.stderr)
        return 1
    head = rep.head or {}
    print(
        f"records intact: {what}: {rep.entries} entries ({rep.signed} signed), signed head "
        f"{head.get('count', '-')} entries at {head.get('at', '-')}, {rep.buslogs} bus log(s) "
        "re-hashed"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from fota_studio.infra.record_signing import public_key_from_text
    from fota_studio.infra.record_verify import verify_workspace

    try:
        key_text = _key_text(args.key)
        if args.bundle is not None:
            from fota_studio.infra.record_bundle import verify_bundle

            try:
                data = args.bundle.read_bytes()
            except OSError as exc:
                return fail(f"cannot read the bundle {args.bundle}: {exc.strerror}")
            return _print_report(verify_bundle(data, key_text), f"bundle {args.bundle}")
        key = public_key_from_text(key_text) if key_text is not None else None
        seen_head = _head_of(args.since) if args.since is not None else None
    except WorkspaceError as exc:
        return fail(str(exc))
    try:
        ws = open_workspace(args, seed_demo=False)
    except (WorkspaceError, sqlite3.DatabaseError) as exc:
        print(f"TAMPERED: database damaged: the workspace cannot be opened: {exc}")
        return 1
    with ws:
        rep = verify_workspace(ws, key_override=key, seen_head=seen_head)
        if rep.key is not None:
            print(f"signing key: {rep.key.describe()}")
        if not rep.problems:
            print("database integrity: ok")
        return _print_report(rep, str(ws.root))


def _export(args: argparse.Namespace) -> int:
    from fota_studio.ui.report import export_request_report

    if args.output is None and args.bundle is None:
        return fail("give --output FILE (report) and/or --bundle FILE (signed bundle)")
    with open_workspace(args) as ws:
        if RequestsStore(ws).find(args.id) is None:
            return fail(f"no update request #{args.id}")
        if args.bundle is not None:
            from fota_studio.infra.record_bundle import export_bundle

            export_bundle(ws, args.id, args.bundle)
            print(f"signed bundle of request #{args.id} written to {args.bundle}")
        if args.output is not None:
            out = export_request_report(ws, args.id, args.output, args.format)
            print(f"report of request #{args.id} written to {out}")
    return 0


def _protect_key(args: argparse.Namespace) -> int:
    from fota_studio.infra.record_signing import protect_key

    with authorised_workspace(args, Action.SETTINGS, seed_demo=False) as ws:
        try:
            info = protect_key(ws, args.to)
        except WorkspaceError as exc:
            return fail(str(exc))
    return succeed(f"record-signing key: {info.describe()}")


def _export_key(args: argparse.Namespace) -> int:
    from fota_studio.infra.record_signing import key_info, public_pem

    with open_workspace(args, seed_demo=False) as ws:
        info = key_info(ws)
        if info is None:
            info = RequestsStore(ws).signer().info
    pem = public_pem(info)
    if args.output is not None:
        args.output.write_text(pem, encoding="utf-8")
    print(f"# {info.describe()}")
    print(f"# fingerprint sha256 {info.fingerprint}")
    print(pem, end="")
    return 0
