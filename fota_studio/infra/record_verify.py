"""Verification of the update-request records: what `records verify`, the report and the
Requests panel believe.

`verify_workspace(ws)` is the full check, reading every entry once: SQLite's integrity check; the
hash links; each entry's hash and Ed25519 signature (infra/record_signing.py); the signed head
(count and last hash equal the chain, so a removed last entry or a removed request is seen);
the signing key against the fingerprint this machine pinned; every `update_requests` field
against the fold of the `state` the chain recorded; every flash record's JSON against the hash the
chain pinned and its table columns against its JSON; every bus-log blob re-hashed. Damaged
database pages are a named problem, never a crash. It stores the verified head (count, last id,
last hash) in the workspace setting `records.verified_head`.

`request_verdict(ws, request_id)` is the cheap verdict for one request (Requests panel, report):
the chain from the last verified head on, plus that request's entries, fields, flash record and
bus log. Entries before the verified head are trusted as verified then; `records verify`
re-checks everything.

`requests_differing(ws)` is the cheapest mark, for the `records list` / `request list` tables:
the ids of requests whose `update_requests` fields differ from the fold of the `state` the chain
recorded, or that have no entries at all; one pass reading each entry's state once, no hashes
or signatures (those are `records verify`'s job).

Thread use: any thread (the workspace serialises its reads); nothing here touches Qt.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fota_studio.core.errors import FotaError, WorkspaceError
from fota_studio.core.flash_record import FlashRecord
from fota_studio.infra.record_signing import (
    KEY_SETTING,
    KeyInfo,
    canonical_bytes,
    key_info_from,
    pin_key,
    pinned_fingerprint,
    short_fingerprint,
    verify_signature,
)
from fota_studio.infra.requests_store import (
    GENESIS_HASH,
    TRACKED_FIELDS,
    entry_hash,
    entry_hash_v2,
    entry_sig_message,
    flash_pins,
    flash_record_digest,
    head_payload,
)
from fota_studio.infra.workspace import Workspace

VERIFIED_HEAD_SETTING = "records.verified_head"

#: flash_records columns that must equal the same key of the record's JSON.
FLASH_COLUMNS = ("machine", "ecu", "version", "image_sha256", "result", "error", "buslog_sha256")


@dataclass
class VerifyReport:
    """The outcome of a verification: problems (tampering/damage) and notes (facts to show)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entries: int = 0
    signed: int = 0
    requests: int = 0
    buslogs: int = 0
    key: KeyInfo | None = None
    head: dict[str, Any] | None = None
    #: Per request: the fields the chain says (only requests whose creation was signed).
    chain_fields: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


@dataclass(frozen=True)
class EntryRow:
    """One raw entry row as read for verification."""

    id: int
    request_id: int
    attempt: int
    at: str
    kind: str
    data: str
    prev_hash: str
    hash: str
    state: str | None
    sig: str | None


def _entry(r: sqlite3.Row) -> EntryRow:
    return EntryRow(
        id=int(r["id"]),
        request_id=int(r["request_id"]),
        attempt=int(r["attempt"]),
        at=str(r["at"]),
        kind=str(r["kind"]),
        data=str(r["data"]),
        prev_hash=str(r["prev_hash"]),
        hash=str(r["hash"]),
        state=None if r["state"] is None else str(r["state"]),
        sig=None if r["sig"] is None else str(r["sig"]),
    )


def _canonical_text(text: str) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_entry(e: EntryRow, key: Any | None, out: list[str]) -> dict[str, Any] | None:
    """Check one entry's own hash and signature; return its parsed state (None for legacy).

    `key` is the Ed25519 public key (None when the workspace has none: signed entries are then
    a problem). Problems are appended to `out`.
    """
    where = f"entry {e.id} (request #{e.request_id}, {e.kind})"
    data_json = _canonical_text(e.data)
    if data_json is None or data_json != e.data:
        out.append(f"{where}: data is not the canonical JSON that was hashed (edited)")
        data_json = e.data
    if e.state is None and e.sig is None:
        digest = entry_hash(e.prev_hash, e.request_id, e.attempt, e.at, e.kind, data_json)
        if digest != e.hash:
            out.append(f"{where}: content does not match its hash (edited after it was written)")
        return None
    state_json = e.state if e.state is not None else ""
    state: dict[str, Any] | None = None
    canon = _canonical_text(state_json)
    if canon is None or canon != state_json:
        out.append(f"{where}: recorded state is not canonical JSON (edited)")
    else:
        parsed = json.loads(state_json)
        state = parsed if isinstance(parsed, dict) else None
    digest = entry_hash_v2(
        e.prev_hash, e.request_id, e.attempt, e.at, e.kind, data_json, state_json
    )
    if digest != e.hash:
        out.append(f"{where}: content does not match its hash (edited after it was written)")
    if key is None:
        out.append(f"{where}: signed, but the workspace has no record-signing key")
    elif not verify_signature(key, e.sig, entry_sig_message(e.hash)):
        out.append(
            f"{where}: signature invalid (the entry or its hash was rewritten without the "
            "workspace's signing key)"
        )
    return state if state is not None else {}


def _parsed_state(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _fold(into: dict[str, Any], state: dict[str, Any]) -> None:
    for k, v in state.items():
        into[k] = v


def _table_value(col: str, value: Any) -> Any:
    if col == "approved":
        return bool(value)
    if col in ("attempt", "flash_record_id") and value is not None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return value
    return value


def compare_request(
    row: sqlite3.Row | dict[str, Any], chain: dict[str, Any], out: list[str]
) -> None:
    """Append one problem per shown field of the `update_requests` row the chain contradicts."""
    rid = row["id"]
    for col in TRACKED_FIELDS:
        if col not in chain:
            continue
        table = _table_value(col, row[col])
        said = _table_value(col, chain[col])
        if table != said:
            out.append(
                f"request #{rid}: {col} is {table!r} in the table but the signed record says "
                f"{said!r} (table edited)"
            )


def requests_differing(ws: Workspace) -> set[int]:
    """Ids of requests whose table fields the chain contradicts (see the module docstring).

    Only requests whose first entry is a signed "created" are compared (legacy requests have no
    recorded state); a request with no entries at all counts as differing (history removed).
    Raises sqlite3.DatabaseError on a damaged database, like any read.
    """
    folded: dict[int, dict[str, Any]] = {}
    signed_creation: set[int] = set()
    unreadable: set[int] = set()
    for r in ws.read("SELECT request_id, kind, state FROM request_entries ORDER BY id"):
        rid = int(r["request_id"])
        first = rid not in folded
        fold = folded.setdefault(rid, {})
        if r["state"] is None:
            continue
        state = _parsed_state(str(r["state"]))
        if state is None:
            unreadable.add(rid)  # a recorded state that is not a JSON object was edited
            continue
        if first and r["kind"] == "created":
            signed_creation.add(rid)
        _fold(fold, state)
    differing: set[int] = set()
    for row in ws.read("SELECT * FROM update_requests"):
        rid = int(row["id"])
        if rid not in folded or rid in unreadable:
            differing.add(rid)
        elif rid in signed_creation:
            problems: list[str] = []
            compare_request(row, folded[rid], problems)
            if problems:
                differing.add(rid)
    return differing


def _check_flash_row(fr: Any, out: list[str], pinned: str | None = None) -> dict[str, Any] | None:
    """Check one flash_records row's columns against its JSON (and the chain's pin)."""
    fid = fr["id"]
    text = str(fr["record"])
    if pinned is not None and flash_record_digest(text) != pinned:
        out.append(
            f"flash record #{fid}: its JSON does not match the hash the signed record pinned "
            "(edited)"
        )
    try:
        data = json.loads(text)
    except ValueError:
        out.append(f"flash record #{fid}: JSON unreadable (edited or damaged)")
        return None
    if not isinstance(data, dict):
        out.append(f"flash record #{fid}: JSON is not an object (edited or damaged)")
        return None
    for col in FLASH_COLUMNS:
        if (fr[col] or "") != (data.get(col) or ""):
            out.append(
                f"flash record #{fid}: column {col} is {fr[col]!r} but the record says "
                f"{data.get(col)!r} (edited)"
            )
    return data


_blob_ok: dict[tuple[str, str, int, int], bool] = {}
_blob_lock = threading.Lock()


def _blob_matches(ws: Workspace, sha: str) -> bool | None:
    """True/False when the blob re-hashes / does not; None when missing. Memoised by stat."""
    path = ws.blobs.path(sha)
    try:
        st = path.stat()
    except OSError:
        return None
    memo = (str(path), sha, st.st_size, st.st_mtime_ns)
    with _blob_lock:
        if memo in _blob_ok:
            return _blob_ok[memo]
    ok = ws.blobs.verify(sha)
    with _blob_lock:
        _blob_ok[memo] = ok
    return ok


def check_buslog(
    ws: Workspace, fid: int, sha: str, out: list[str], record_json: str | None = None
) -> None:
    """Append a problem when a flash record's bus-log blob is missing or re-hashes wrong, or
    (given the record's JSON) when the TransferData payload it keeps by reference cannot be
    put back exactly (image file missing or changed, a run's CRC-32 wrong)."""
    state = _blob_matches(ws, sha)
    if state is None:
        out.append(f"flash record #{fid}: bus log {sha[:12]}… is missing from {ws.blobs.root}")
    elif not state:
        out.append(
            f"flash record #{fid}: bus log {sha[:12]}… does not re-hash to its recorded SHA-256 "
            "(overwritten or damaged)"
        )
    elif record_json and '"buslog_elided": [[' in record_json:
        from fota_studio.infra.buslog_store import check_restore

        try:
            check_restore(ws, FlashRecord.from_json(record_json))
        except FotaError as exc:
            out.append(f"flash record #{fid}: {exc}")
        except (ValueError, TypeError) as exc:
            out.append(f"flash record #{fid}: its bus-log runs are unreadable ({exc}) (edited)")


def _key_and_pin(ws: Workspace, rep: VerifyReport, key_override: Any | None) -> Any | None:
    """The public key to check signatures with, noting/raising pin and override mismatches."""
    rows = ws.read("SELECT value FROM settings WHERE key = ?", (KEY_SETTING,))
    info = None
    if rows:
        try:
            info = key_info_from(json.loads(rows[0]["value"]))
        except ValueError:
            info = None
        if info is None:
            rep.problems.append("the workspace's record-signing key facts are damaged (edited)")
    rep.key = info
    pinned = pinned_fingerprint(ws)
    if key_override is not None:
        from fota_studio.infra.record_signing import fingerprint_of, public_raw

        fp = fingerprint_of(public_raw(key_override))
        if info is not None and info.fingerprint != fp:
            rep.problems.append(
                f"the workspace's signing key {short_fingerprint(info.fingerprint)} is not the "
                f"key given ({short_fingerprint(fp)})"
            )
        rep.notes.append(f"signatures checked against the given key {short_fingerprint(fp)}")
        return key_override
    if info is None:
        if pinned is not None:
            rep.problems.append(
                f"this machine pinned record-signing key {short_fingerprint(pinned)} for this "
                "workspace, but the workspace has none (key and signatures removed)"
            )
        return None
    if pinned is None:
        if pin_key(ws, info):
            rep.notes.append(
                f"signing key {short_fingerprint(info.fingerprint)} pinned now (first "
                "verification on this machine; later key swaps are detected)"
            )
    elif pinned != info.fingerprint:
        rep.problems.append(
            f"the workspace's signing key is {short_fingerprint(info.fingerprint)} but this "
            f"machine pinned {short_fingerprint(pinned)} (the key was replaced: records may "
            "have been re-signed)"
        )
    if info.unprotected:
        from fota_studio.infra.record_signing import UNPROTECTED_NOTE

        rep.notes.append(UNPROTECTED_NOTE)
    return info.public_key


def _check_head(
    ws: Workspace, key: Any | None, count: int, last_hash: str, any_signed: bool, out: list[str]
) -> dict[str, Any] | None:
    rows = ws.read("SELECT * FROM record_head")
    if not rows:
        if any_signed:
            out.append("the signed record head is missing (removed)")
        return None
    h = rows[0]
    payload = head_payload(
        int(h["count"]), str(h["last_hash"]), str(h["at"]), int(h["first_signed"]), h["fingerprint"]
    )
    if key is None or not verify_signature(key, h["sig"], canonical_bytes(payload)):
        out.append("the record head's signature is invalid (head rewritten without the key)")
    if int(h["count"]) != count:
        out.append(
            f"the signed head counts {h['count']} entries but the chain has {count} "
            f"({'entries removed' if count < int(h['count']) else 'entries added'})"
        )
    if str(h["last_hash"]) != last_hash:
        out.append(
            "the signed head's last hash is not the chain's last entry (the chain was truncated, "
            "rolled back or extended)"
        )
    return payload | {"sig": h["sig"]}


def verify_workspace(
    ws: Workspace,
    *,
    key_override: Any | None = None,
    check_blobs: bool = True,
    seen_head: dict[str, Any] | None = None,
) -> VerifyReport:
    """The full check described in the module docstring; never raises on a damaged database.

    `seen_head` is a signed head exported earlier (from a bundle): the chain must still hold
    its entries, with its last hash at the same position, or the workspace was rolled back.
    """
    return _checked(
        ws,
        lambda rep: _verify_workspace(ws, rep, key_override, check_blobs, seen_head),
        db_note=f" (reading {ws.root / 'workspace.db'})",
    )


def _checked(
    ws: Workspace, check: Callable[[VerifyReport], None], *, db_note: str = ""
) -> VerifyReport:
    """Run `check` on a new report; a damaged database or an odd stored value becomes one of
    its problems (`db_note` is added to a database error), never an exception."""
    rep = VerifyReport()
    try:
        check(rep)
    except sqlite3.DatabaseError as exc:
        rep.problems.append(f"database damaged: {exc}{db_note}")
    except WorkspaceError as exc:
        rep.problems.append(str(exc))
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        rep.problems.append(_odd_value(ws, exc))
    return rep


def _odd_value(ws: Workspace, exc: BaseException) -> str:
    return (
        f"database damaged: a record row holds an impossible value ({type(exc).__name__}: "
        f"{str(exc)[:160]}) in {ws.root / 'workspace.db'}"
    )


def _verify_workspace(
    ws: Workspace,
    rep: VerifyReport,
    key_override: Any | None,
    check_blobs: bool,
    seen_head: dict[str, Any] | None = None,
) -> None:
    try:
        verdict = ws.integrity_check()
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        rep.problems.append(f"database damaged: PRAGMA integrity_check says {verdict[:300]}")
    key = _key_and_pin(ws, rep, key_override)
    prev = GENESIS_HASH
    last_id = 0
    folded: dict[int, dict[str, Any]] = {}
    signed_creation: set[int] = set()
    pins: dict[int, str | None] = {}
    seen_signed = False
    for r in ws.read("SELECT * FROM request_entries ORDER BY id"):
        e = _entry(r)
        rep.entries += 1
        if e.prev_hash != prev:
            rep.problems.append(
                f"entry {e.id} (request #{e.request_id}): previous-hash link broken (an entry "
                "before it was removed, inserted or changed)"
            )
        state = check_entry(e, key, rep.problems)
        if state is None:
            if seen_signed:
                rep.problems.append(
                    f"entry {e.id} (request #{e.request_id}): unsigned after signed entries "
                    "(inserted or stripped of its signature)"
                )
        else:
            seen_signed = True
            rep.signed += 1
            if e.request_id not in folded and e.kind == "created":
                signed_creation.add(e.request_id)
            _fold(folded.setdefault(e.request_id, {}), state)
            for fid, sha in flash_pins(state):
                pins[fid] = sha
        folded.setdefault(e.request_id, {})
        prev = e.hash
        last_id = e.id
        if (
            seen_head is not None
            and rep.entries == seen_head["count"]
            and e.hash != seen_head["last_hash"]
        ):
            rep.problems.append(
                f"entry {e.id} is not the entry {seen_head['count']} the head of "
                f"{seen_head['at']} signed (history rewritten or rolled back since)"
            )
    if seen_head is not None:
        _check_seen_head(seen_head, key, rep)
    rep.head = _check_head(ws, key, rep.entries, prev, seen_signed, rep.problems)
    if rep.entries > rep.signed:
        rep.notes.append(
            f"{rep.entries - rep.signed} entries written before record signing (schema < 3): "
            "protected only by the hash links to the signed entries after them"
        )
    requests = {int(r["id"]): r for r in ws.read("SELECT * FROM update_requests")}
    rep.requests = len(requests)
    for rid, row in requests.items():
        if rid not in folded:
            rep.problems.append(f"request #{rid} has no record entries (history removed)")
        elif rid in signed_creation:
            compare_request(row, folded[rid], rep.problems)
            rep.chain_fields[rid] = folded[rid]
    for rid in sorted(set(folded) - set(requests)):
        rep.problems.append(
            f"request #{rid} has record entries but no row in update_requests (request deleted)"
        )
    for fr in ws.read("SELECT * FROM flash_records"):
        fid = int(fr["id"])
        _check_flash_row(fr, rep.problems, pins.pop(fid, None))
        sha = fr["buslog_sha256"]
        if sha and check_blobs:
            rep.buslogs += 1
            check_buslog(ws, fid, str(sha), rep.problems, str(fr["record"] or ""))
    for fid, sha in pins.items():
        if fid and sha is not None:
            rep.problems.append(f"flash record #{fid} named by the signed record is missing")
    _store_verified_head(ws, rep.entries, last_id, prev, rep.ok)


def _check_seen_head(seen: dict[str, Any], key: Any | None, rep: VerifyReport) -> None:
    payload = head_payload(
        int(seen["count"]),
        str(seen["last_hash"]),
        str(seen["at"]),
        int(seen["first_signed"]),
        str(seen["fingerprint"]),
    )
    if key is None or not verify_signature(key, seen.get("sig"), canonical_bytes(payload)):
        rep.problems.append("the earlier head given is not signed by this workspace's key")
    if rep.entries < payload["count"]:
        rep.problems.append(
            f"the workspace holds {rep.entries} entries but on {payload['at']} its signed head "
            f"counted {payload['count']} (rolled back or truncated since)"
        )
    else:
        rep.notes.append(f"the chain still holds the {payload['count']} entries of {payload['at']}")


def _store_verified_head(ws: Workspace, count: int, last_id: int, last_hash: str, ok: bool) -> None:
    if not ok:
        return
    try:
        ws.set_setting(
            VERIFIED_HEAD_SETTING, {"count": count, "last_id": last_id, "last_hash": last_hash}
        )
    except (sqlite3.Error, WorkspaceError, OSError):
        pass  # read-only workspace: the next verdict starts from the beginning again


def request_verdict(ws: Workspace, request_id: int) -> VerifyReport:
    """The incremental verdict for one request (see the module docstring)."""
    return _checked(ws, lambda rep: _request_verdict(ws, request_id, rep))


def _request_verdict(ws: Workspace, request_id: int, rep: VerifyReport) -> None:
    key = _key_and_pin(ws, rep, None)
    cached = ws.get_setting(VERIFIED_HEAD_SETTING)
    start_id, prev, count = 0, GENESIS_HASH, 0
    if isinstance(cached, dict):
        rows = ws.read(
            "SELECT hash FROM request_entries WHERE id = ?", (int(cached.get("last_id", 0)),)
        )
        if rows and rows[0]["hash"] == cached.get("last_hash"):
            start_id = int(cached["last_id"])
            prev = str(cached["last_hash"])
            count = int(cached["count"])
    seen_signed = start_id > 0 and bool(
        ws.read(
            "SELECT 1 FROM request_entries WHERE id <= ? AND sig IS NOT NULL LIMIT 1", (start_id,)
        )
    )
    last_id = start_id
    for r in ws.read("SELECT * FROM request_entries WHERE id > ? ORDER BY id", (start_id,)):
        e = _entry(r)
        count += 1
        if e.prev_hash != prev:
            rep.problems.append(
                f"entry {e.id} (request #{e.request_id}): previous-hash link broken"
            )
        state = check_entry(e, key, rep.problems)
        seen_signed = seen_signed or state is not None
        prev, last_id = e.hash, e.id
    rep.entries = count
    rep.head = _check_head(ws, key, count, prev, seen_signed, rep.problems)
    if not rep.problems and last_id > start_id:  # nothing new: no write per panel click
        _store_verified_head(ws, count, last_id, prev, True)
    rows = ws.read("SELECT * FROM update_requests WHERE id = ?", (request_id,))
    if not rows:
        rep.problems.append(f"no update request #{request_id}")
        return
    fold: dict[str, Any] = {}
    entries = [
        _entry(r)
        for r in ws.read(
            "SELECT * FROM request_entries WHERE request_id = ? ORDER BY id", (request_id,)
        )
    ]
    if not entries:
        rep.problems.append(f"request #{request_id} has no record entries (history removed)")
        return
    signed_creation = False
    pins: dict[int, str | None] = {}
    for i, e in enumerate(entries):
        state = check_entry(e, key, rep.problems) if e.id <= start_id else None
        if e.id > start_id:  # checked by the incremental pass above; only its state is needed
            state = _parsed_state(e.state)
        if state is None:
            continue
        if i == 0 and e.kind == "created":
            signed_creation = True
        _fold(fold, state)
        for fid_, sha in flash_pins(state):
            pins[fid_] = sha
    if signed_creation:
        compare_request(rows[0], fold, rep.problems)
        rep.chain_fields[request_id] = fold
    fid = rows[0]["flash_record_id"]
    if fid is not None:
        frs = ws.read("SELECT * FROM flash_records WHERE id = ?", (int(fid),))
        if not frs:
            rep.problems.append(f"flash record #{fid} of request #{request_id} is missing")
        else:
            pinned = pins.get(int(fid)) if signed_creation else None
            _check_flash_row(frs[0], rep.problems, pinned)
            if frs[0]["buslog_sha256"]:
                rep.buslogs += 1
                check_buslog(
                    ws,
                    int(fid),
                    str(frs[0]["buslog_sha256"]),
                    rep.problems,
                    str(frs[0]["record"] or ""),
                )
