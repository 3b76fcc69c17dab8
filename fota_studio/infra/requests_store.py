"""Storage of update requests and their append-only, hash-chained, signed record entries.

Tables (workspace schema v3): `update_requests` holds the latest state of each request (status,
attempt, last step reached, whether Checkpoint 1 approved it, outcome, error, the flash record
of its last flash, the pid of the process running it), and `request_entries` the history: every
creation, step, decision, flash record, Checkpoint 2 result and final status, one row each, never
updated or deleted. Each entry stores the SHA-256 of the previous entry (one chain over the whole
table) and its own hash over (previous hash, request, attempt, time, kind, canonical JSON data,
`state`), where `state` holds the request fields that entry sets (status, outcome, error, step,
approval, versions, the flash record id and the SHA-256 of that flash record's JSON). Every entry
is signed with the workspace's Ed25519 key (infra/record_signing.py), and the signed head (count
+ last hash + time, table `record_head`) is rewritten in the same transaction, so a removed last
entry, a changed table field or a re-hashed chain is detected by `infra/record_verify.py`.
Status changes go through the transition table of `core/update_request.py` inside the same
transaction as their entry. Entries written before schema v3 (no `state`, no signature) keep the
old hash formula and are protected by the signed entries that follow them.

A request whose `owner_pid` is not a live process while In progress was interrupted (app crash,
power cut): `recover_interrupted` marks it Failed (interrupted) with the step it reached.

Thread use: any thread; every access goes through the workspace's serialised transactions.

Why this size: `RequestsStore` is the one writer of the hash-chained, signed request record; the
entry hash, signature message, head payload and flash pins it uses are its format and are kept
beside it so that one file says what a record entry is (the verifier, `record_verify.py`, reads
that format from here).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

from fota_studio.core.errors import WorkspaceError
from fota_studio.core.update_request import (
    OPEN_STATUSES,
    Outcome,
    RequestStateError,
    RequestStatus,
    UpdateRequest,
    check_transition,
)
from fota_studio.infra.locks import pid_alive
from fota_studio.infra.record_signing import RecordSigner, canonical_bytes, signer_for
from fota_studio.infra.user import current_user
from fota_studio.infra.workspace import Workspace, _Cursor

#: The hash the first entry of the chain points back to.
GENESIS_HASH = "0" * 64

# Entry kinds (the `kind` column); readers show unknown kinds as they are.
ENTRY_CREATED = "created"
ENTRY_ATTEMPT = "attempt_started"
ENTRY_STATUS = "status"
ENTRY_STEP = "step"
ENTRY_DECISION = "decision"
ENTRY_FLASH = "flash_record"
ENTRY_CHECKPOINT2 = "checkpoint_2"
ENTRY_LOG = "log"
ENTRY_FINAL = "final"
ENTRY_STATE = "state"

#: The request fields an entry's `state` may set; the table must equal the chain's fold of them.
TRACKED_FIELDS = (
    "machine",
    "ecu",
    "brand",
    "model",
    "version",
    "installed_before",
    "created_at",
    "created_by",
    "status",
    "attempt",
    "step",
    "approved",
    "outcome",
    "error",
    "flash_record_id",
)
#: The `update_requests` columns that go into the `UpdateRequest` field of the same name as
#: they are (the others need a conversion).
_REQUEST_PLAIN_COLUMNS = (
    *(f for f in TRACKED_FIELDS if f not in ("status", "attempt", "approved")),
    "updated_at",
)
#: The key in an entry's state that pins the exact JSON text of the request's flash record.
FLASH_RECORD_SHA = "flash_record_sha256"
#: A flash_record entry's state key re-pinning the record it names: [id, sha256 or null].
FLASH_RECORD_PIN = "flash_record_pin"
#: `flash_records.result` of a job still running: its JSON changes, so it is not pinned yet.
_RESULT_STARTED = "started"
ENTRY_SIG_TYPE = "fota-studio/record-entry/v1"
HEAD_TYPE = "fota-studio/record-head/v1"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str, request_id: int, attempt: int, at: str, kind: str, data_json: str
) -> str:
    """The SHA-256 that chains one entry to the previous one."""
    text = "\x1f".join([prev_hash, str(request_id), str(attempt), at, kind, data_json])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash_v2(
    prev_hash: str,
    request_id: int,
    attempt: int,
    at: str,
    kind: str,
    data_json: str,
    state_json: str,
) -> str:
    """The SHA-256 of a signed entry: the v1 fields plus the request fields it sets."""
    text = "\x1f".join(
        [prev_hash, str(request_id), str(attempt), at, kind, data_json, "state", state_json]
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_sig_message(digest: str) -> bytes:
    """The bytes an entry's signature covers (RFC 8785 JSON naming the entry hash)."""
    return canonical_bytes({"type": ENTRY_SIG_TYPE, "hash": digest})


def head_payload(
    count: int, last_hash: str, at: str, first_signed: int, fingerprint: str
) -> dict[str, Any]:
    """The signed statement about the chain: how many entries, the last hash, when, which key."""
    return {
        "type": HEAD_TYPE,
        "count": count,
        "last_hash": last_hash,
        "at": at,
        "first_signed": first_signed,
        "fingerprint": fingerprint,
    }


def flash_record_digest(record_json: str) -> str:
    """SHA-256 of a flash record's stored JSON text (what the chain pins)."""
    return hashlib.sha256(record_json.encode("utf-8")).hexdigest()


def flash_pins(state: dict[str, Any]) -> builtins.list[tuple[int, str | None]]:
    """The (flash record id, pinned JSON SHA-256 or None) pairs an entry's state records."""
    out: list[tuple[int, str | None]] = []
    fid = state.get("flash_record_id")
    sha = state.get(FLASH_RECORD_SHA)
    if isinstance(fid, int) and not isinstance(fid, bool) and (sha is None or isinstance(sha, str)):
        out.append((fid, sha))
    pin = state.get(FLASH_RECORD_PIN)
    if isinstance(pin, list) and len(pin) == 2:
        pid, psha = pin
        if (
            isinstance(pid, int)
            and not isinstance(pid, bool)
            and (psha is None or isinstance(psha, str))
        ):
            out.append((pid, psha))
    return out


def _flash_pin(cur: _Cursor, record_id: int) -> str | None:
    """SHA-256 of a flash record's JSON as stored now; None while it is still running."""
    row = cur.execute(
        "SELECT record, result FROM flash_records WHERE id = ?", (record_id,)
    ).fetchone()
    if row is None or row["result"] == _RESULT_STARTED:
        return None
    return flash_record_digest(str(row["record"]))


class RequestChanges(TypedDict, total=False):
    """The request fields `RequestsStore.update` may change. A field left out, or given as
    None, stays as it is; except `owner_pid`, where None clears the owner."""

    status: RequestStatus | None
    step: str | None
    approved: bool | None
    outcome: str | None
    error: str | None
    flash_record_id: int | None
    owner_pid: int | None


def _request_row(cur: _Cursor, request_id: int, columns: str) -> sqlite3.Row:
    """These columns of one update request's row; WorkspaceError when there is no such request."""
    return cur.one(
        f"SELECT {columns} FROM update_requests WHERE id = ?",
        (request_id,),
        WorkspaceError(f"no update request #{request_id}"),
    )


@dataclass(frozen=True)
class RecordEntry:
    """One entry of a request's history."""

    id: int
    request_id: int
    attempt: int
    at: str
    kind: str
    data: dict[str, Any]
    prev_hash: str
    hash: str
    state: dict[str, Any] | None = None
    sig: str | None = None


class RequestsStore:
    """Update requests and their record entries in one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._signer: RecordSigner | None = None

    def signer(self) -> RecordSigner:
        """The workspace's record signer (the key is made on the first record written)."""
        if self._signer is None:
            self._signer = signer_for(self.ws)
        return self._signer

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def _row(r: sqlite3.Row) -> UpdateRequest:
        return UpdateRequest(
            id=int(r["id"]),
            status=RequestStatus(r["status"]),
            attempt=int(r["attempt"]),
            approved=bool(r["approved"]),
            **{key: r[key] for key in _REQUEST_PLAIN_COLUMNS},
        )

    def find(self, request_id: int) -> UpdateRequest | None:
        """The request with this id, or None."""
        rows = self.ws.read("SELECT * FROM update_requests WHERE id = ?", (request_id,))
        return self._row(rows[0]) if rows else None

    def get(self, request_id: int) -> UpdateRequest:
        """The request with this id; WorkspaceError when unknown."""
        req = self.find(request_id)
        if req is None:
            raise WorkspaceError(
                f"no update request #{request_id} in {self.ws.root}",
                hint="list them with `fota-studio request list`",
            )
        return req

    def list(
        self,
        *,
        machine: str | None = None,
        ecu: str | None = None,
        status: RequestStatus | str | None = None,
    ) -> builtins.list[UpdateRequest]:
        """Requests in creation order, optionally filtered."""
        sql = "SELECT * FROM update_requests WHERE 1=1"
        params: list[Any] = []
        for col, val in (("machine", machine), ("ecu", ecu), ("status", status)):
            if val:
                sql += f" AND {col} = ?"
                params.append(str(val))
        return [self._row(r) for r in self.ws.read(sql + " ORDER BY id", tuple(params))]

    def changed_since(self, updated_at: str) -> builtins.list[UpdateRequest]:
        """Requests whose `updated_at` is `updated_at` or later, in id order (indexed: what a
        periodic refresh reads is proportional to what changed, not to the history)."""
        rows = self.ws.read(
            "SELECT * FROM update_requests WHERE updated_at >= ? ORDER BY id", (updated_at,)
        )
        return [self._row(r) for r in rows]

    def latest_update(self) -> str:
        """The newest `updated_at` of any request ("" when there is none; indexed)."""
        rows = self.ws.read("SELECT MAX(updated_at) AS m FROM update_requests")
        return str(rows[0]["m"] or "") if rows else ""

    def distinct(self, column: str) -> builtins.list[str]:
        """The distinct values of `machine` or `ecu`, sorted (for filter lists)."""
        if column not in ("machine", "ecu"):
            raise ValueError(f"distinct: no filter column {column!r} (machine or ecu)")
        rows = self.ws.read(f"SELECT DISTINCT {column} AS v FROM update_requests")
        return sorted(str(r["v"]) for r in rows)

    def open_for_ecu(
        self, machine: str, ecu: str, *, before: int | None = None
    ) -> builtins.list[UpdateRequest]:
        """Pending / In progress requests of one ECU (only those older than `before`)."""
        out = [
            r
            for r in self.list(machine=machine, ecu=ecu)
            if r.status in OPEN_STATUSES and (before is None or r.id < before)
        ]
        return out

    def entries(self, request_id: int | None = None) -> builtins.list[RecordEntry]:
        """Record entries of one request (or all), oldest first."""
        sql = "SELECT * FROM request_entries"
        params: tuple[Any, ...] = ()
        if request_id is not None:
            sql += " WHERE request_id = ?"
            params = (request_id,)
        return [
            RecordEntry(
                id=int(r["id"]),
                request_id=int(r["request_id"]),
                attempt=int(r["attempt"]),
                at=r["at"],
                kind=r["kind"],
                data=json.loads(r["data"]),
                prev_hash=r["prev_hash"],
                hash=r["hash"],
                state=json.loads(r["state"]) if r["state"] else None,
                sig=r["sig"],
            )
            for r in self.ws.read(sql + " ORDER BY id", params)
        ]

    def cached_verdict(self, request_id: int) -> Any:
        """The record verdict of one request: the chain checked from the last verified head on,
        this request's entries, table fields, flash record and bus log (infra/record_verify.py).
        Cost is proportional to the new entries and this request, not to the history; call it
        off the GUI thread (it may re-hash a bus log)."""
        from fota_studio.infra.record_verify import request_verdict

        return request_verdict(self.ws, request_id)

    # -- writing ---------------------------------------------------------------------------

    def _append(
        self,
        cur: _Cursor,
        request_id: int,
        attempt: int,
        kind: str,
        data: dict[str, Any],
        state: dict[str, Any] | None = None,
        *,
        at: str | None = None,
    ) -> str:
        """Insert one signed entry and re-sign the head (inside the caller's transaction).

        Refuses (WorkspaceError) when the stored head does not match the last entry: an entry
        was removed or added behind FOTA Studio's back, and writing on would hide it.
        """
        signer = self.signer()
        last = cur.execute(
            "SELECT hash, sig FROM request_entries ORDER BY id DESC LIMIT 1"
        ).fetchone()
        prev = last["hash"] if last else GENESIS_HASH
        head = cur.execute("SELECT count, last_hash, first_signed FROM record_head").fetchone()
        if head is None:
            if last is not None and last["sig"]:
                raise WorkspaceError(
                    f"{self.ws.root}: the signed record head is missing",
                    hint="the records were tampered with; run `fota-studio records verify`",
                )
            count = int(cur.execute("SELECT COUNT(*) FROM request_entries").fetchone()[0])
            first_signed = count
        else:
            if head["last_hash"] != prev:
                raise WorkspaceError(
                    f"{self.ws.root}: the record head does not match the last entry (an entry "
                    "was removed or added outside FOTA Studio); no record was written",
                    hint="run `fota-studio records verify` and restore the workspace from a backup",
                )
            count, first_signed = int(head["count"]), int(head["first_signed"])
        at = at or _now()
        fid = data.get("flash_record_id") if kind == ENTRY_FLASH else None
        if isinstance(fid, int) and not isinstance(fid, bool):
            # The entry that reports a flash pins the record's final JSON, whenever it was
            # linked to the request (a "started" record changes until the job finishes).
            state = {**(state or {}), FLASH_RECORD_PIN: [fid, _flash_pin(cur, fid)]}
        data_json = _canonical(data)
        state_json = _canonical(state or {})
        digest = entry_hash_v2(prev, request_id, attempt, at, kind, data_json, state_json)
        sig = signer.sign(entry_sig_message(digest))
        cur.execute(
            "INSERT INTO request_entries(request_id, attempt, at, kind, data, prev_hash, hash, "
            "state, sig) VALUES (?,?,?,?,?,?,?,?,?)",
            (request_id, attempt, at, kind, data_json, prev, digest, state_json, sig),
        )
        payload = head_payload(count + 1, digest, at, first_signed, signer.info.fingerprint)
        cur.execute(
            "INSERT INTO record_head(id, count, last_hash, at, first_signed, fingerprint, sig) "
            "VALUES (1,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET count = excluded.count, "
            "last_hash = excluded.last_hash, at = excluded.at, "
            "first_signed = excluded.first_signed, fingerprint = excluded.fingerprint, "
            "sig = excluded.sig",
            (
                count + 1,
                digest,
                at,
                first_signed,
                signer.info.fingerprint,
                signer.sign(canonical_bytes(payload)),
            ),
        )
        return digest

    def create(
        self,
        *,
        machine: str,
        ecu: str,
        brand: str,
        model: str,
        version: str,
        installed_before: str | None = None,
        created_by: str | None = None,
        warnings: builtins.list[str] | None = None,
    ) -> UpdateRequest:
        """Store a new Pending request with its "created" entry (who, when, confirmed warnings)."""
        who = created_by or current_user()
        now = _now()
        self.signer()  # made/unlocked before the transaction (keyring, key file)
        with self.ws.transaction() as cur:
            c = cur.execute(
                "INSERT INTO update_requests(machine, ecu, brand, model, version, created_at, "
                "created_by, status, updated_at, installed_before) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    machine,
                    ecu,
                    brand,
                    model,
                    version,
                    now,
                    who,
                    RequestStatus.PENDING.value,
                    now,
                    installed_before,
                ),
            )
            rid = int(c.lastrowid or 0)
            self._append(
                cur,
                rid,
                1,
                ENTRY_CREATED,
                {
                    "by": who,
                    "machine": machine,
                    "ecu": ecu,
                    "repository": f"{brand} / {model}",
                    "version": version,
                    "installed_before": installed_before,
                    "confirmed_warnings": list(warnings or []),
                },
                {
                    "machine": machine,
                    "ecu": ecu,
                    "brand": brand,
                    "model": model,
                    "version": version,
                    "installed_before": installed_before,
                    "created_at": now,
                    "created_by": who,
                    "status": RequestStatus.PENDING.value,
                    "attempt": 1,
                    "step": "",
                    "approved": False,
                    "outcome": "",
                    "error": "",
                    "flash_record_id": None,
                },
                at=now,
            )
        return self.get(rid)

    def append(self, request_id: int, kind: str, data: dict[str, Any]) -> None:
        """Append one entry to the request's history (current attempt)."""
        self.signer()
        with self.ws.transaction() as cur:
            row = _request_row(cur, request_id, "attempt")
            self._append(cur, request_id, int(row["attempt"]), kind, data)

    def update(
        self,
        request_id: int,
        *,
        entry: tuple[str, dict[str, Any]] | None = None,
        expect: frozenset[RequestStatus] | None = None,
        **changes: Unpack[RequestChanges],
    ) -> UpdateRequest:
        """Change fields of a request (status via the transition table) + optional entry.

        `changes` are the `RequestChanges` fields (see there which are left alone). `expect`
        refuses the update (RequestStateError) unless the current status is one of them. The
        fields that change are recorded in the `state` of the entry written with them (a
        "state" entry when the call writes none), so the table never says what the chain does
        not.
        """
        status = changes.get("status")
        outcome = changes.get("outcome")
        approved = changes.get("approved")
        self.signer()
        with self.ws.transaction() as cur:
            row = _request_row(cur, request_id, "*")
            old = RequestStatus(row["status"])
            if expect is not None and old not in expect:
                raise RequestStateError(
                    f"update request #{request_id} is {old.value}",
                    hint="refresh the list; another action changed it",
                )
            sets: dict[str, Any] = {"updated_at": _now()}
            if status is not None and status != old:
                check_transition(old, status, request_id=request_id)
                sets["status"] = status.value
            for col in ("step", "outcome", "error", "flash_record_id"):
                val = changes.get(col)
                if val is not None:
                    sets[col] = val
            if approved is not None:
                sets["approved"] = int(approved)
            if "owner_pid" in changes:
                sets["owner_pid"] = changes["owner_pid"]
            cols = ", ".join(f"{k} = ?" for k in sets)
            cur.execute(
                f"UPDATE update_requests SET {cols} WHERE id = ?", (*sets.values(), request_id)
            )
            state: dict[str, Any] = {
                k: (bool(v) if k == "approved" else v)
                for k, v in sets.items()
                if k in TRACKED_FIELDS and row[k] != v
            }
            if state.get("flash_record_id") is not None:
                state[FLASH_RECORD_SHA] = _flash_pin(cur, int(state["flash_record_id"]))
            attempt = int(row["attempt"])
            if status is not None and status != old:
                self._append(
                    cur,
                    request_id,
                    attempt,
                    ENTRY_STATUS,
                    {"from": old.value, "to": status.value, "outcome": outcome or ""},
                    state,
                )
                state = {}
            if entry is not None:
                self._append(cur, request_id, attempt, entry[0], entry[1], state)
            elif state:
                self._append(cur, request_id, attempt, ENTRY_STATE, {}, state)
        return self.get(request_id)

    def cancel(self, request_id: int, *, by: str | None = None, reason: str = "") -> UpdateRequest:
        """Cancel a request that no workflow is running; refused after Checkpoint 1 approval."""
        req = self.get(request_id)
        if not req.cancellable:
            why = (
                "the operator already approved it at Checkpoint 1; it runs to an end"
                if req.approved and req.status in OPEN_STATUSES
                else f"it is {req.status.value}"
            )
            raise RequestStateError(f"update request #{request_id} cannot be cancelled: {why}")
        return self.update(
            request_id,
            status=RequestStatus.CANCELLED,
            outcome=Outcome.CANCELLED.value,
            error=reason or "cancelled by the user",
            owner_pid=None,
            expect=OPEN_STATUSES,
            entry=(ENTRY_FINAL, {"status": "Cancelled", "by": by or current_user(), "why": reason}),
        )

    def rerun(self, request_id: int, *, by: str | None = None) -> UpdateRequest:
        """Start a new attempt of a Failed/Cancelled request: Pending again, history kept."""
        req = self.get(request_id)
        if not req.rerunnable:
            raise RequestStateError(
                f"update request #{request_id} is {req.status.value}; only Failed or Cancelled "
                "requests can be re-run"
            )
        self.signer()
        with self.ws.transaction() as cur:
            check_transition(req.status, RequestStatus.PENDING, request_id=request_id)
            attempt = req.attempt + 1
            cur.execute(
                "UPDATE update_requests SET status = ?, attempt = ?, step = '', approved = 0, "
                "outcome = '', error = '', owner_pid = NULL, updated_at = ? WHERE id = ?",
                (RequestStatus.PENDING.value, attempt, _now(), request_id),
            )
            self._append(
                cur,
                request_id,
                attempt,
                ENTRY_ATTEMPT,
                {"attempt": attempt, "by": by or current_user(), "after": req.status.value},
                {
                    "status": RequestStatus.PENDING.value,
                    "attempt": attempt,
                    "step": "",
                    "approved": False,
                    "outcome": "",
                    "error": "",
                },
            )
        return self.get(request_id)

    def recover_interrupted(self) -> builtins.list[UpdateRequest]:
        """Mark In-progress requests whose process is gone as Failed (interrupted)."""
        out: list[UpdateRequest] = []
        if self.ws.read_only:  # read-only media: shown as they are, marked on a writable open
            return out
        rows = self.ws.read(
            "SELECT id, step, owner_pid FROM update_requests WHERE status = ?",
            (RequestStatus.IN_PROGRESS.value,),
        )
        for r in rows:
            if pid_alive(r["owner_pid"]):
                continue
            step = r["step"] or "start"
            msg = f"interrupted (application closed or power lost) during step {step}"
            out.append(
                self.update(
                    int(r["id"]),
                    status=RequestStatus.FAILED,
                    outcome=Outcome.INTERRUPTED.value,
                    error=msg,
                    owner_pid=None,
                    expect=frozenset({RequestStatus.IN_PROGRESS}),
                    entry=(
                        ENTRY_FINAL,
                        {"status": "Failed", "outcome": "interrupted", "step": step},
                    ),
                )
            )
        return out

    # -- integrity -------------------------------------------------------------------------

    def verify_chain(self) -> builtins.list[str]:
        """Every record problem of the workspace, one line each (empty = intact).

        The full check of infra/record_verify.py: links, hashes, signatures, the signed head,
        table fields against the chain, flash records, bus-log blobs, SQLite integrity.
        """
        from fota_studio.infra.record_verify import verify_workspace

        return verify_workspace(self.ws).problems
