"""Self-contained, signed record bundles: one update request's evidence, checkable elsewhere.

`export_bundle(ws, request_id, path)` writes one JSON file holding the request's table row,
every record entry of the request (with hashes, recorded state and signatures), its flash
records (the exact stored JSON), their BLF bus logs (base64), the workspace's signed chain head,
the record-signing public key and a statement signed at export time that lists the entry hashes,
flash-record hashes and bus-log hashes, so a removed entry, record or log is detected.
`verify_bundle(data, key)` checks all of it without a workspace (`fota-studio records verify
--bundle FILE --key PUBKEY`); with no key given, the bundle's own key is used and the report says
that only a key obtained separately (`records export-key`) proves who signed.

Every malformed field is a named problem, never an exception (fuzzed by reliability/fuzz.py).
Thread use: any thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fota_studio.core.errors import WorkspaceError
from fota_studio.infra.record_signing import (
    canonical_bytes,
    fingerprint_of,
    public_key_from_text,
    public_raw,
    short_fingerprint,
    verify_signature,
)
from fota_studio.infra.record_verify import (
    FLASH_COLUMNS,
    EntryRow,
    VerifyReport,
    check_entry,
    compare_request,
)
from fota_studio.infra.requests_store import (
    TRACKED_FIELDS,
    RequestsStore,
    flash_pins,
    flash_record_digest,
    head_payload,
)
from fota_studio.infra.workspace import Workspace, atomic_write, public_file_mode

BUNDLE_FORMAT = "fota-studio/record-bundle/v1"
STATEMENT_TYPE = "fota-studio/record-bundle-statement/v1"
#: A bundle larger than this is refused before parsing (bus logs of a 64 MiB flash fit).
MAX_BUNDLE_BYTES = 1 << 30


class BundleError(WorkspaceError):
    """A bundle that cannot be read at all (not JSON, wrong format, too large)."""


def export_bundle(ws: Workspace, request_id: int, path: Path | str) -> Path:
    """Write the signed bundle of one request to `path` (atomically); return the path."""
    store = RequestsStore(ws)
    signer = store.signer()
    rows = ws.read("SELECT * FROM update_requests WHERE id = ?", (request_id,))
    if not rows:
        raise WorkspaceError(f"no update request #{request_id} in {ws.root}")
    request = {k: v for k, v in dict(rows[0]).items() if k != "owner_pid"}
    entries = [
        dict(r)
        for r in ws.read(
            "SELECT id, request_id, attempt, at, kind, data, prev_hash, hash, state, sig "
            "FROM request_entries WHERE request_id = ? ORDER BY id",
            (request_id,),
        )
    ]
    fids: list[int] = []
    for e in entries:
        st = json.loads(e["state"]) if e["state"] else {}
        for fid, _sha in flash_pins(st if isinstance(st, dict) else {}):
            if fid not in fids:
                fids.append(fid)
    if request.get("flash_record_id") and int(request["flash_record_id"]) not in fids:
        fids.append(int(request["flash_record_id"]))
    flash_records: list[dict[str, Any]] = []
    buslogs: dict[str, str] = {}
    for fid in fids:
        for fr in ws.read("SELECT * FROM flash_records WHERE id = ?", (fid,)):
            flash_records.append(dict(fr))
            sha = fr["buslog_sha256"]
            if sha and ws.blobs.exists(sha):
                buslogs[sha] = base64.b64encode(ws.blobs.get(sha)).decode("ascii")
    head_rows = ws.read("SELECT * FROM record_head")
    head = None
    if head_rows:
        h = head_rows[0]
        head = head_payload(
            int(h["count"]), h["last_hash"], h["at"], int(h["first_signed"]), h["fingerprint"]
        ) | {"sig": h["sig"]}
    statement = {
        "type": STATEMENT_TYPE,
        "request_id": request_id,
        "entry_hashes": [e["hash"] for e in entries],
        "flash_records": {
            str(fr["id"]): flash_record_digest(str(fr["record"])) for fr in flash_records
        },
        "buslogs": sorted(buslogs),
        "head": head,
        "fingerprint": signer.info.fingerprint,
        "key_protection": signer.info.protection,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    bundle = {
        "format": BUNDLE_FORMAT,
        "public_key": signer.info.public_key_hex,
        "statement": statement,
        "statement_sig": signer.sign(canonical_bytes(statement)),
        "request": request,
        "entries": entries,
        "flash_records": flash_records,
        "buslogs": buslogs,
    }
    out = Path(path)
    try:
        data = json.dumps(bundle, indent=1).encode("utf-8")
        atomic_write(out, data, mode=public_file_mode())  # an export, not a secret
    except OSError as exc:
        raise WorkspaceError(
            f"cannot write the bundle {out}: {exc.strerror}", hint="choose another --bundle path"
        ) from None
    return out


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleError(f"bundle: {what} is not a JSON object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise BundleError(f"bundle: {what} is not a JSON list")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BundleError(f"bundle: {what} is not a string")
    return value


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BundleError(f"bundle: {what} is not an integer")
    return value


def _entry_row(e: Any, i: int) -> EntryRow:
    d = _obj(e, f"entry {i}")
    state = d.get("state")
    sig = d.get("sig")
    return EntryRow(
        id=_int(d.get("id"), f"entry {i} id"),
        request_id=_int(d.get("request_id"), f"entry {i} request_id"),
        attempt=_int(d.get("attempt"), f"entry {i} attempt"),
        at=_str(d.get("at"), f"entry {i} at"),
        kind=_str(d.get("kind"), f"entry {i} kind"),
        data=_str(d.get("data"), f"entry {i} data"),
        prev_hash=_str(d.get("prev_hash"), f"entry {i} prev_hash"),
        hash=_str(d.get("hash"), f"entry {i} hash"),
        state=None if state is None else _str(state, f"entry {i} state"),
        sig=None if sig is None else _str(sig, f"entry {i} sig"),
    )


def read_bundle(data: bytes) -> dict[str, Any]:
    """Parse bundle bytes; BundleError naming what is wrong."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle larger than {MAX_BUNDLE_BYTES >> 20} MiB")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"bundle is not JSON ({type(exc).__name__})") from None
    bundle = _obj(value, "the file")
    if bundle.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not a record bundle (format {str(bundle.get('format'))[:60]!r})")
    return bundle


def verify_bundle(data: bytes, key_text: str | None = None) -> VerifyReport:
    """Check a bundle (see the module docstring); problems name what failed."""
    rep = VerifyReport()
    try:
        _verify_bundle(read_bundle(data), key_text, rep)
    except BundleError as exc:
        rep.problems.append(str(exc))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        rep.problems.append(f"bundle malformed: {type(exc).__name__}: {str(exc)[:200]}")
    return rep


def _verify_bundle(bundle: dict[str, Any], key_text: str | None, rep: VerifyReport) -> None:
    embedded = public_key_from_text(_str(bundle.get("public_key"), "public_key"))
    embedded_fp = fingerprint_of(public_raw(embedded))
    if key_text is not None:
        key = public_key_from_text(key_text)
        fp = fingerprint_of(public_raw(key))
        if fp != embedded_fp:
            rep.problems.append(
                f"the bundle was signed by key {short_fingerprint(embedded_fp)}, not by the "
                f"given key {short_fingerprint(fp)}"
            )
        rep.notes.append(f"signatures checked against the given key {short_fingerprint(fp)}")
    else:
        key = embedded
        rep.notes.append(
            f"signatures checked against the bundle's own key {short_fingerprint(embedded_fp)}; "
            "pass --key with the workspace's key (records export-key) to prove who signed"
        )
    statement = _obj(bundle.get("statement"), "statement")
    if not verify_signature(key, bundle.get("statement_sig"), canonical_bytes(statement)):
        rep.problems.append("the bundle statement's signature is invalid (bundle edited)")
    if statement.get("key_protection") == "unprotected":
        rep.notes.append("the signing key was UNPROTECTED (a key file without passphrase)")
    request = _obj(bundle.get("request"), "request")
    rid = _int(request.get("id"), "request id")
    if statement.get("request_id") != rid:
        rep.problems.append(f"the statement is about request {statement.get('request_id')!r}")
    entries = [_entry_row(e, i) for i, e in enumerate(_list(bundle.get("entries"), "entries"))]
    hashes = _list(statement.get("entry_hashes"), "statement entry_hashes")
    if [e.hash for e in entries] != hashes:
        rep.problems.append(
            f"the bundle holds {len(entries)} entries but the signed statement lists "
            f"{len(hashes)} (entries removed, added or reordered)"
        )
    fold: dict[str, Any] = {}
    signed_creation = False
    pins: dict[int, Any] = {}
    for i, e in enumerate(entries):
        rep.entries += 1
        if e.request_id != rid:
            rep.problems.append(f"entry {e.id} belongs to request #{e.request_id}, not #{rid}")
        state = check_entry(e, key, rep.problems)
        if state is None:
            rep.notes.append(f"entry {e.id} was written before record signing (hash only)")
            continue
        rep.signed += 1
        if i == 0 and e.kind == "created":
            signed_creation = True
        fold.update(state)
        for fid, sha in flash_pins(state):
            pins[fid] = sha
    if signed_creation:
        row = {"id": rid} | {k: request.get(k) for k in TRACKED_FIELDS}
        compare_request(row, fold, rep.problems)
        rep.chain_fields[rid] = fold
    else:
        rep.notes.append("the request's creation is not signed: its fields are not proven")
    listed = _obj(statement.get("flash_records"), "statement flash_records")
    buslogs = _obj(bundle.get("buslogs"), "buslogs")
    listed_logs = _list(statement.get("buslogs"), "statement buslogs")
    if sorted(buslogs) != sorted(str(x) for x in listed_logs):
        rep.problems.append("the bus logs in the bundle are not the ones the statement lists")
    seen: set[int] = set()
    for i, fr_any in enumerate(_list(bundle.get("flash_records"), "flash_records")):
        fr = _obj(fr_any, f"flash record {i}")
        fid = _int(fr.get("id"), f"flash record {i} id")
        seen.add(fid)
        text = _str(fr.get("record"), f"flash record {fid} record")
        digest = flash_record_digest(text)
        if listed.get(str(fid)) != digest:
            rep.problems.append(f"flash record #{fid}: not the one the statement lists (edited)")
        if fid in pins and pins[fid] is not None and pins[fid] != digest:
            rep.problems.append(
                f"flash record #{fid}: its JSON does not match the hash the signed record "
                "pinned (edited)"
            )
        try:
            rec = json.loads(text)
        except (ValueError, RecursionError):
            rep.problems.append(f"flash record #{fid}: JSON unreadable")
            continue
        if not isinstance(rec, dict):
            rep.problems.append(f"flash record #{fid}: JSON is not an object")
            continue
        for col in FLASH_COLUMNS:
            if (fr.get(col) or "") != (rec.get(col) or ""):
                rep.problems.append(f"flash record #{fid}: {col} differs from its JSON (edited)")
        sha = rec.get("buslog_sha256")
        if sha:
            blob = buslogs.get(str(sha))
            if blob is None:
                rep.problems.append(f"flash record #{fid}: bus log {str(sha)[:12]}… missing")
                continue
            try:
                raw = base64.b64decode(_str(blob, "bus log"), validate=True)
            except (binascii.Error, ValueError):
                rep.problems.append(f"flash record #{fid}: bus log is not base64")
                continue
            rep.buslogs += 1
            if hashlib.sha256(raw).hexdigest() != sha:
                rep.problems.append(
                    f"flash record #{fid}: bus log does not re-hash to {str(sha)[:12]}… (edited)"
                )
    for fid, pin in pins.items():
        if fid and pin is not None and fid not in seen:
            rep.problems.append(f"flash record #{fid} named by the signed record is missing")
    head_any = statement.get("head")
    if head_any is None:
        rep.notes.append("no signed chain head in the bundle")
    else:
        head = _obj(head_any, "statement head")
        payload = head_payload(
            _int(head.get("count"), "head count"),
            _str(head.get("last_hash"), "head last_hash"),
            _str(head.get("at"), "head at"),
            _int(head.get("first_signed"), "head first_signed"),
            _str(head.get("fingerprint"), "head fingerprint"),
        )
        if not verify_signature(key, head.get("sig"), canonical_bytes(payload)):
            rep.problems.append("the chain head in the bundle has an invalid signature")
        rep.head = payload
        if payload["count"] < len(entries):
            rep.problems.append(
                f"the signed head counts {payload['count']} entries in the whole chain, fewer "
                f"than this request's {len(entries)}"
            )
